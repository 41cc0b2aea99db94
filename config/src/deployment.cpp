#include "taskhost/config/deployment.hpp"

#include "taskhost/config/duration.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

namespace taskhost::config {

std::string source_position::str() const {
  std::ostringstream os;
  os << file;
  if (line > 0) os << ':' << line << ':' << column;
  return os.str();
}

const retry_config& deployment::retry_for(const std::string& task_id) const {
  auto it = tasks.find(task_id);
  return it == tasks.end() ? default_retry : it->second.retry;
}

std::chrono::milliseconds deployment::max_duration_for(const std::string& task_id) const {
  auto it = tasks.find(task_id);
  return it == tasks.end() || it->second.max_duration.count() == 0 ? default_max_duration : it->second.max_duration;
}

namespace {

using handler = std::function<void(const YAML::Node& key, const YAML::Node& value)>;

/// Walks the YAML tree and turns every problem into "file:line:col: message".
class reader {
public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  source_position pos(const YAML::Mark& m) const {
    if (m.is_null()) return {file_, 0, 0};
    return {file_, m.line + 1, m.column + 1};
  }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& msg) const { fail(at.Mark(), msg); }
  [[noreturn]] void fail(const YAML::Mark& m, const std::string& msg) const {
    throw config_error(pos(m).str() + ": " + msg);
  }

  /// Calls the handler of each key of a mapping; unknown and repeated keys are errors.
  void mapping(const YAML::Node& node, const std::string& where,
               const std::map<std::string, handler>& handlers) const {
    if (node.IsNull()) return;  // `http:` with nothing under it: all defaults
    if (!node.IsMap()) fail(node, where + " must be a mapping");
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const YAML::Node& key = kv.first;
      if (!key.IsScalar()) fail(key, "keys in " + where + " must be plain names");
      auto name = key.Scalar();
      if (!seen.insert(name).second) fail(key, "duplicate key '" + name + "' in " + where);
      auto h = handlers.find(name);
      if (h == handlers.end()) {
        std::string known;
        for (const auto& [k, _] : handlers) known += (known.empty() ? "" : ", ") + k;
        fail(key, "unknown key '" + name + "' in " + where + " (known keys: " + known + ")");
      }
      h->second(key, kv.second);
    }
  }

  std::string string(const YAML::Node& v, const std::string& what) const {
    if (!v.IsScalar()) fail(v, what + " must be a string");
    return v.Scalar();
  }

  int64_t integer(const YAML::Node& v, const std::string& what, int64_t lo, int64_t hi) const {
    if (!v.IsScalar()) fail(v, what + " must be an integer");
    int64_t x = 0;
    try {
      x = v.as<int64_t>();
    } catch (const YAML::Exception&) {
      fail(v, what + " must be an integer, got '" + v.Scalar() + "'");
    }
    if (x < lo || x > hi)
      fail(v, what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                  ", got " + std::to_string(x));
    return x;
  }

  double number(const YAML::Node& v, const std::string& what) const {
    if (!v.IsScalar()) fail(v, what + " must be a number");
    try {
      return v.as<double>();
    } catch (const YAML::Exception&) {
      fail(v, what + " must be a number, got '" + v.Scalar() + "'");
    }
  }

  bool boolean(const YAML::Node& v, const std::string& what) const {
    if (!v.IsScalar()) fail(v, what + " must be true or false");
    try {
      return v.as<bool>();
    } catch (const YAML::Exception&) {
      fail(v, what + " must be true or false, got '" + v.Scalar() + "'");
    }
  }

  std::string one_of(const YAML::Node& v, const std::string& what, const std::set<std::string>& allowed) const {
    auto s = string(v, what);
    if (!allowed.count(s)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + a;
      fail(v, what + " must be one of " + list + ", got '" + s + "'");
    }
    return s;
  }

  /// A max duration: a duration string ("30s", "5m", "1h30m"), at least 5 s as in Trigger.dev.
  std::chrono::milliseconds max_duration(const YAML::Node& v, const std::string& what) const {
    auto s = string(v, what);
    auto d = parse_duration(s);
    if (!d) fail(v, what + " must be a duration like \"30s\", \"5m\" or \"1h30m\", got '" + s + "'");
    if (*d < std::chrono::seconds(5)) fail(v, what + " must be at least 5s, got '" + s + "'");
    return *d;
  }

  /// A queue name: 1..128 of [A-Za-z0-9_.-]. "/" is never allowed, which keeps the "task/<id>"
  /// names of task-owned queues out of reach of the YAML.
  std::string queue_name(const YAML::Node& v, const std::string& what) const {
    auto s = string(v, what);
    bool ok = !s.empty() && s.size() <= 128;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) ok = false;
    if (!ok)
      fail(v, what + " must be 1 to 128 characters of A-Z a-z 0-9 _ . - (no '/', no spaces), got '" + s + "'");
    return s;
  }

  /// A rate limit: {limit: 1..1000000, period: duration > 0, per_key: bool}; limit and period required.
  rate_limit_config rate_limit(const YAML::Node& key, const YAML::Node& node, const std::string& where) const {
    rate_limit_config r;
    bool has_limit = false, has_period = false;
    mapping(node, where,
            {{"limit", [&](auto&, auto& v) { r.limit = int(integer(v, where + ".limit", 1, 1000000)); has_limit = true; }},
             {"period", [&](auto&, auto& v) {
                auto s = string(v, where + ".period");
                auto d = parse_duration(s);
                if (!d)
                  fail(v, where + ".period must be a duration like \"1s\", \"1m\" or \"1h30m\" (one or more "
                          "<integer><unit> pairs, units w d hr h m s), got '" + s + "'");
                if (d->count() <= 0) fail(v, where + ".period must be above 0, got '" + s + "'");
                r.period = *d;
                has_period = true;
              }},
             {"per_key", [&](auto&, auto& v) { r.per_key = boolean(v, where + ".per_key"); }}});
    const YAML::Node& at = node.IsNull() ? key : node;  // `rate_limit:` with nothing under it
    if (!has_limit) fail(at, where + " is missing required key 'limit' (the most runs started per period)");
    if (!has_period) fail(at, where + " is missing required key 'period' (a duration like \"1m\")");
    return r;
  }

  /// A list of middleware names; a name listed twice is an error.
  std::vector<middleware_ref> middleware_list(const YAML::Node& v, const std::string& what) const {
    if (!v.IsSequence()) fail(v, what + " must be a list of middleware names, like [db, tracing]");
    std::vector<middleware_ref> out;
    std::set<std::string> seen;
    for (const auto& item : v) {
      auto name = string(item, what + " entries");
      if (name.empty()) fail(item, what + " entries must not be empty");
      if (!seen.insert(name).second) fail(item, "middleware '" + name + "' is listed twice in " + what);
      out.push_back({name, pos(item.Mark())});
    }
    return out;
  }

  /// Reads the keys of a `retry:` mapping on top of `r`.
  void retry(const YAML::Node& node, const std::string& where, retry_config& r) const {
    mapping(node, where,
            {{"max_attempts", [&](auto&, auto& v) { r.max_attempts = int(integer(v, where + ".max_attempts", 1, 250)); }},
             {"factor", [&](auto&, auto& v) {
                r.factor = number(v, where + ".factor");
                if (!(r.factor >= 1.0 && r.factor <= 1000.0)) fail(v, where + ".factor must be between 1 and 1000");
              }},
             {"min_timeout_ms", [&](auto&, auto& v) { r.min_timeout_ms = integer(v, where + ".min_timeout_ms", 0, 365LL * 86400000); }},
             {"max_timeout_ms", [&](auto&, auto& v) { r.max_timeout_ms = integer(v, where + ".max_timeout_ms", 0, 365LL * 86400000); }},
             {"randomize", [&](auto&, auto& v) { r.randomize = boolean(v, where + ".randomize"); }}});
    if (r.max_timeout_ms < r.min_timeout_ms)
      fail(node, where + ".max_timeout_ms (" + std::to_string(r.max_timeout_ms) + ") is below min_timeout_ms (" +
                     std::to_string(r.min_timeout_ms) + ")");
  }

private:
  std::string file_;
};

/// Splits "host:port" (IPv6 as "[::1]:8080").
void parse_listen(const reader& rd, const YAML::Node& v, http_config& http) {
  auto s = rd.string(v, "http.listen");
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      rd.fail(v, "http.listen must be host:port, got '" + s + "'");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) rd.fail(v, "http.listen must be host:port, got '" + s + "'");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) rd.fail(v, "http.listen has no host in '" + s + "'");
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535)
    rd.fail(v, "http.listen has an invalid port in '" + s + "' (0..65535)");
  http.host = host;
  http.port = static_cast<uint16_t>(std::stoi(port));
}

/// http.public_url: http:// or https://, a host, an optional port and path; no query, fragment or
/// credentials. Returned without a trailing '/'.
std::string parse_public_url(const reader& rd, const YAML::Node& v) {
  auto s = rd.string(v, "http.public_url");
  const char* hint = " (like \"https://tasks.example.com\" or \"http://10.0.0.5:8080/taskhost\")";
  std::string rest;
  if (s.rfind("http://", 0) == 0) rest = s.substr(7);
  else if (s.rfind("https://", 0) == 0) rest = s.substr(8);
  else rd.fail(v, "http.public_url must start with http:// or https://, got '" + s + "'" + hint);
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string::npos)
    rd.fail(v, "http.public_url needs a host (and no user:password@), got '" + s + "'" + hint);
  for (char c : s)
    if (c == '?' || c == '#' || c == ' ' || c < 0x21 || c > 0x7e)
      rd.fail(v, "http.public_url must be a plain URL without a query, fragment or spaces, got '" + s + "'" + hint);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  return (path.is_absolute() ? path : base / path).lexically_normal();
}

/// A key pasted into the YAML: any string value under `auth` that starts like an API key. Checked
/// before anything else under `auth`, so that the message says what to do rather than "unknown key".
void refuse_inline_keys(const reader& rd, const YAML::Node& node) {
  if (node.IsScalar()) {
    if (node.Scalar().rfind("tr_", 0) == 0)
      rd.fail(node, "keys never go in the YAML; use auth.keys_file or auth.keys_from_env");
    return;
  }
  if (node.IsSequence())
    for (const auto& item : node) refuse_inline_keys(rd, item);
  if (node.IsMap())
    for (const auto& kv : node) {
      refuse_inline_keys(rd, kv.first);
      refuse_inline_keys(rd, kv.second);
    }
}

void parse_auth(const reader& rd, const YAML::Node& v, const std::filesystem::path& base, auth_config& auth) {
  refuse_inline_keys(rd, v);
  rd.mapping(v, "auth",
    {{"keys_file", [&](auto&, auto& x) {
        auto p = rd.string(x, "auth.keys_file");
        if (p.empty()) rd.fail(x, "auth.keys_file must not be empty");
        auth.keys_file = resolve(base, p);
        auth.keys_file_position = rd.pos(x.Mark());
      }},
     {"keys_from_env", [&](auto&, auto& x) {
        if (!x.IsSequence()) rd.fail(x, "auth.keys_from_env must be a list of environment variable names, like [TASKHOST_API_KEY]");
        std::set<std::string> seen;
        for (const auto& item : x) {
          auto name = rd.string(item, "auth.keys_from_env entries");
          bool ok = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
          for (char c : name)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) ok = false;
          if (!ok) rd.fail(item, "auth.keys_from_env entries must be environment variable names (A-Z a-z 0-9 _, not starting with a digit), got '" + name + "'");
          if (!seen.insert(name).second) rd.fail(item, "environment variable '" + name + "' is listed twice in auth.keys_from_env");
          auth.keys_from_env.push_back({name, rd.pos(item.Mark())});
        }
      }}});
}

}  // namespace

deployment load_string(const std::string& yaml, const std::filesystem::path& file) {
  const std::string fname = file.string();
  reader rd(fname);
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    rd.fail(e.mark, e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) throw config_error(fname + ": the file is empty; expected a deployment mapping");
  if (!root.IsMap()) rd.fail(root, "a deployment file must be a mapping of keys (name, plugins_dir, ...)");

  deployment d;
  d.file = std::filesystem::absolute(file).lexically_normal();
  const auto base = d.file.parent_path();
  d.state_dir = base / ".taskhost";
  bool has_plugins_dir = false;
  bool has_store_path = false;
  YAML::Node tasks_node;  // read after `defaults`, whatever the order in the file

  rd.mapping(root, "the deployment",
    {{"name", [&](auto&, auto& v) {
        d.name = rd.string(v, "name");
        if (d.name.empty()) rd.fail(v, "name must not be empty");
      }},
     {"plugins_dir", [&](auto&, auto& v) {
        d.plugins_dir = resolve(base, rd.string(v, "plugins_dir"));
        has_plugins_dir = true;
      }},
     {"state_dir", [&](auto&, auto& v) { d.state_dir = resolve(base, rd.string(v, "state_dir")); }},
     {"http", [&](auto&, auto& v) {
        rd.mapping(v, "http",
          {{"listen", [&](auto&, auto& x) { parse_listen(rd, x, d.http); }},
           {"max_body_bytes", [&](auto&, auto& x) {
              d.http.max_body_bytes = uint64_t(rd.integer(x, "http.max_body_bytes", 1024, int64_t(1) << 34)); }},
           {"max_batch_body_bytes", [&](auto&, auto& x) {
              d.http.max_batch_body_bytes = uint64_t(rd.integer(x, "http.max_batch_body_bytes", 1024, int64_t(1) << 34)); }},
           {"header_timeout_ms", [&](auto&, auto& x) { d.http.header_timeout_ms = rd.integer(x, "http.header_timeout_ms", 1, 3'600'000); }},
           {"body_timeout_ms", [&](auto&, auto& x) { d.http.body_timeout_ms = rd.integer(x, "http.body_timeout_ms", 1, 3'600'000); }},
           {"idle_timeout_ms", [&](auto&, auto& x) { d.http.idle_timeout_ms = rd.integer(x, "http.idle_timeout_ms", 1, 86'400'000); }},
           {"max_connections", [&](auto&, auto& x) {
              d.http.max_connections = uint64_t(rd.integer(x, "http.max_connections", 1, 1'000'000)); }},
           {"access_log", [&](auto&, auto& x) { d.http.access_log = rd.boolean(x, "http.access_log"); }},
           {"busy_poll_us", [&](auto&, auto& x) { d.http.busy_poll_us = rd.integer(x, "http.busy_poll_us", 0, 10'000); }},
           {"public_url", [&](auto&, auto& x) { d.http.public_url = parse_public_url(rd, x); }}});
      }},
     {"log", [&](auto&, auto& v) {
        rd.mapping(v, "log",
          {{"level", [&](auto&, auto& x) { d.log.level = rd.one_of(x, "log.level", {"trace", "debug", "info", "warn", "error"}); }},
           {"format", [&](auto&, auto& x) { d.log.format = rd.one_of(x, "log.format", {"text", "json"}); }}});
      }},
     {"executor", [&](auto&, auto& v) {
        YAML::Node max_node;
        rd.mapping(v, "executor",
          {{"threads", [&](auto&, auto& x) { d.executor_threads = unsigned(rd.integer(x, "executor.threads", 0, 1024)); }},
           {"max_threads", [&](auto&, auto& x) {
              d.executor_max_threads = unsigned(rd.integer(x, "executor.max_threads", 0, 4096));
              max_node = x;
            }}});
        if (d.executor_threads > 0 && d.executor_max_threads > 0 && d.executor_max_threads < d.executor_threads)
          rd.fail(max_node, "executor.max_threads (" + std::to_string(d.executor_max_threads) +
                                ") must not be below executor.threads (" + std::to_string(d.executor_threads) +
                                "); use 0 for automatic");
      }},
     {"queues", [&](auto&, auto& v) {
        if (v.IsNull()) return;  // `queues:` with nothing under it
        if (!v.IsSequence()) rd.fail(v, "queues must be a list of queue entries, like [{name: email, concurrency_limit: 10}]");
        std::map<std::string, source_position> first;
        size_t i = 0;
        for (const auto& entry : v) {
          const std::string where = "queues[" + std::to_string(i++) + "]";
          // A bare `-` has no useful place of its own: point at the list, the index names the entry.
          if (!entry.IsMap()) rd.fail(entry.IsNull() ? v : entry, where + " must be a mapping with at least a name, like {name: email}");
          queue_config q;
          YAML::Node name_node;
          bool has_name = false;
          rd.mapping(entry, where,
            {{"name", [&](auto&, auto& x) {
                q.name = rd.queue_name(x, where + ".name");
                q.position = rd.pos(x.Mark());
                name_node = x;
                has_name = true;
              }},
             {"concurrency_limit", [&](auto&, auto& x) {
                q.concurrency_limit = int(rd.integer(x, where + ".concurrency_limit", 0, 100000)); }},
             {"total_concurrency_limit", [&](auto&, auto& x) {
                q.total_concurrency_limit = int(rd.integer(x, where + ".total_concurrency_limit", 0, 100000)); }},
             {"rate_limit", [&](auto& k, auto& x) { q.rate_limit = rd.rate_limit(k, x, where + ".rate_limit"); }}});
          if (!has_name) rd.fail(entry, where + " is missing required key 'name'");
          auto [it, fresh] = first.emplace(q.name, q.position);
          if (!fresh)
            rd.fail(name_node, "queue '" + q.name + "' is declared twice (first at line " +
                                       std::to_string(it->second.line) + ")");
          d.queues.push_back(std::move(q));
        }
      }},
     {"schedules", [&](auto&, auto& v) {
        if (v.IsNull()) return;
        if (!v.IsSequence())
          rd.fail(v, "schedules must be a list of schedule entries, like [{task: daily-report, cron: \"0 9 * * 1-5\"}]");
        std::map<std::string, std::pair<size_t, source_position>> first;
        size_t i = 0;
        for (const auto& entry : v) {
          const std::string where = "schedules[" + std::to_string(i) + "]";
          if (!entry.IsMap()) rd.fail(entry.IsNull() ? v : entry, where + " must be a mapping like {task: daily-report, cron: \"0 9 * * *\"}");
          schedule_config s;
          s.position = rd.pos(entry.Mark());
          bool has_task = false, has_cron = false;
          YAML::Node key_node;
          rd.mapping(entry, where,
            {{"task", [&](auto&, auto& x) {
                s.task = rd.string(x, where + ".task");
                if (s.task.empty()) rd.fail(x, where + ".task must not be empty");
                s.task_position = rd.pos(x.Mark());
                has_task = true;
              }},
             {"cron", [&](auto&, auto& x) {
                s.cron = rd.string(x, where + ".cron");
                s.cron_position = rd.pos(x.Mark());
                has_cron = true;
              }},
             {"timezone", [&](auto&, auto& x) {
                s.timezone = rd.string(x, where + ".timezone");
                if (s.timezone.empty()) rd.fail(x, where + ".timezone must not be empty (the default is UTC)");
                s.timezone_position = rd.pos(x.Mark());
              }},
             {"key", [&](auto&, auto& x) {
                s.key = rd.string(x, where + ".key");
                if (s.key.empty() || s.key.size() > 256) rd.fail(x, where + ".key must be 1..256 characters");
                key_node = x;
              }},
             {"external_id", [&](auto&, auto& x) {
                s.external_id = rd.string(x, where + ".external_id");
                if (s.external_id.size() > 1024) rd.fail(x, where + ".external_id must be at most 1024 characters");
              }}});
          if (!has_task) rd.fail(entry, where + " is missing required key 'task'");
          if (!has_cron) rd.fail(entry, where + " is missing required key 'cron'");
          if (s.timezone_position.line == 0) s.timezone_position = s.position;
          const bool own_key = !s.key.empty();
          if (!own_key) s.key = s.task;
          auto [it, fresh] = first.emplace(s.key, std::make_pair(i, s.position));
          if (!fresh)
            rd.fail(own_key ? key_node : YAML::Node(entry),
                    own_key ? where + ".key '" + s.key + "' is used twice (first by schedules[" + std::to_string(it->second.first) +
                                  "] at line " + std::to_string(it->second.second.line) + ")"
                            : where + ": task '" + s.task + "' already has a schedule (schedules[" +
                                  std::to_string(it->second.first) + "] at line " + std::to_string(it->second.second.line) +
                                  "); give each schedule of a task its own `key`");
          d.schedules.push_back(std::move(s));
          ++i;
        }
      }},
     {"waits", [&](auto&, auto& v) {
        rd.mapping(v, "waits",
          {{"resident_per_task", [&](auto&, auto& x) {
              d.resident_waits_per_task = size_t(rd.integer(x, "waits.resident_per_task", 0, 1000000)); }}});
      }},
     {"power", [&](auto&, auto& v) {
        rd.mapping(v, "power",
          {{"cpu_latency_us", [&](auto&, auto& x) {
              d.cpu_latency_us = static_cast<int32_t>(rd.integer(x, "power.cpu_latency_us", 0, 1'000'000)); }}});
      }},
     {"shutdown", [&](auto&, auto& v) {
        rd.mapping(v, "shutdown",
          {{"grace_period_ms", [&](auto&, auto& x) {
              d.shutdown_grace_ms = rd.integer(x, "shutdown.grace_period_ms", 0, 24LL * 3600 * 1000); }}});
      }},
     {"limits", [&](auto&, auto& v) {
        rd.mapping(v, "limits",
          {{"max_payload_bytes", [&](auto&, auto& x) {
              d.max_payload_bytes = uint64_t(rd.integer(x, "limits.max_payload_bytes", 1, int64_t(1) << 32)); }},
           {"max_output_bytes", [&](auto&, auto& x) {
              d.max_output_bytes = uint64_t(rd.integer(x, "limits.max_output_bytes", 1, int64_t(1) << 32)); }},
           // SQLite holds a packet as one BLOB: at most 1,000,000,000 bytes; 512 MiB leaves room.
           {"max_packet_bytes", [&](auto&, auto& x) {
              d.max_packet_bytes = uint64_t(rd.integer(x, "limits.max_packet_bytes", 1024, int64_t(512) << 20)); }},
           {"packet_ttl_ms", [&](auto&, auto& x) {
              d.packet_ttl_ms = rd.integer(x, "limits.packet_ttl_ms", 1000, 30LL * 86400 * 1000); }},
           {"packet_upload_url_ttl_ms", [&](auto&, auto& x) {
              d.packet_upload_url_ttl_ms = rd.integer(x, "limits.packet_upload_url_ttl_ms", 1000, 7LL * 86400 * 1000); }}});
      }},
     {"store", [&](auto&, auto& v) {
        rd.mapping(v, "store",
          {{"path", [&](auto&, auto& x) {
              auto p = rd.string(x, "store.path");
              if (p.empty()) rd.fail(x, "store.path must not be empty (use \":memory:\" for a store that is not kept)");
              d.store.path = p == ":memory:" ? std::filesystem::path(p) : resolve(base, p);
              has_store_path = true;
            }},
           {"durability", [&](auto&, auto& x) { d.store.full_durability = rd.one_of(x, "store.durability", {"normal", "full"}) == "full"; }},
           {"retention_days", [&](auto&, auto& x) {
              d.store.retention_days = rd.number(x, "store.retention_days");
              if (!(d.store.retention_days > 0) || d.store.retention_days > 36500)
                rd.fail(x, "store.retention_days must be a number of days above 0 (fractions allowed) and at most 36500");
            }}});
      }},
     {"auth", [&](auto&, auto& v) { parse_auth(rd, v, base, d.auth); }},
     {"defaults", [&](auto&, auto& v) {
        rd.mapping(v, "defaults",
          {{"retry", [&](auto&, auto& x) { rd.retry(x, "defaults.retry", d.default_retry); }},
           {"max_duration", [&](auto&, auto& x) { d.default_max_duration = rd.max_duration(x, "defaults.max_duration"); }}});
      }},
     {"middleware", [&](auto&, auto& v) { d.middleware = rd.middleware_list(v, "middleware"); }},
     {"tasks", [&](auto&, auto& v) { tasks_node = v; }}});

  if (!has_plugins_dir) rd.fail(root, "missing required key 'plugins_dir' (the folder with the task plugins)");
  if (d.name.empty()) rd.fail(root, "missing required key 'name' (the deployment's name)");
  if (!has_store_path) d.store.path = d.state_dir / "runs.db";
  if (d.http.max_body_bytes < d.max_payload_bytes)
    d.http.max_body_bytes = d.max_payload_bytes + (64u << 10);  // room for the envelope around a payload
  d.http.max_batch_body_bytes = std::max(d.http.max_batch_body_bytes, d.http.max_body_bytes);

  if (tasks_node && !tasks_node.IsNull()) {
    if (!tasks_node.IsMap()) rd.fail(tasks_node, "tasks must be a mapping of task id to overrides");
    std::set<std::string> seen;
    for (const auto& kv : tasks_node) {
      if (!kv.first.IsScalar()) rd.fail(kv.first, "task ids under tasks must be plain names");
      std::string id = kv.first.Scalar();
      if (!seen.insert(id).second) rd.fail(kv.first, "duplicate task '" + id + "' under tasks");
      task_config tc;
      tc.id = id;
      tc.retry = d.default_retry;
      tc.position = rd.pos(kv.first.Mark());
      const std::string where = "tasks." + id;
      rd.mapping(kv.second, where,
                 {{"retry", [&](auto&, auto& x) { rd.retry(x, where + ".retry", tc.retry); }},
                  {"max_duration", [&](auto&, auto& x) { tc.max_duration = rd.max_duration(x, where + ".max_duration"); }},
                  {"middleware", [&](auto&, auto& x) { tc.middleware = rd.middleware_list(x, where + ".middleware"); }},
                  {"queue", [&](auto&, auto& x) {
                     tc.queue = rd.queue_name(x, where + ".queue");
                     tc.queue_position = rd.pos(x.Mark());
                   }}});
      d.tasks.emplace(id, std::move(tc));
    }
  }
  return d;
}

deployment load_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw config_error(file.string() + ": cannot read the file (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), file);
}

}  // namespace taskhost::config
