// taskhost::client: the API calls, their JSON, retries and errors. The bytes go through
// http_transport (Beast).
#include <taskhost/client.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "http_transport.hpp"

namespace taskhost::api {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// --- text helpers ------------------------------------------------------------------------------

/// encodeURIComponent's unreserved set stays; everything else is %XX.
std::string encode(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '!' || ch == '*' || ch == '\'' ||
        ch == '(' || ch == ')') {
      out += ch;
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

/// A query string built from the pairs whose value is not empty: "?k=v&..." or "".
std::string query(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string q;
  for (const auto& [k, v] : pairs)
    if (!v.empty()) q += (q.empty() ? "?" : "&") + encode(k) + "=" + encode(v);
  return q;
}

/// A random RFC 4122 version-4 UUID, for x-trigger-request-idempotency-key.
std::string uuid_v4() {
  thread_local std::mt19937_64 gen{(static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}() ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  uint64_t hi = gen(), lo = gen();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char b[37];
  std::snprintf(b, sizeof b, "%08x-%04x-%04x-%04x-%012llx", unsigned(hi >> 32), unsigned((hi >> 16) & 0xFFFF), unsigned(hi & 0xFFFF),
                unsigned(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return b;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// --- JSON field readers (absent or of another type: the default) -------------------------------

std::string str(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int num(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<int>() : 0;
}
bool flag(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
std::optional<time_point> when(const json& j, const char* k) {
  auto it = j.find(k);
  return it == j.end() ? std::nullopt : parse_time(*it);
}
std::vector<std::string> strings(const json& j, const char* k) {
  std::vector<std::string> out;
  auto it = j.find(k);
  if (it != j.end() && it->is_array())
    for (const auto& x : *it)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}
json field(const json& j, const char* k) {
  auto it = j.find(k);
  return it == j.end() ? json() : *it;
}

void require_object_with_id(const json& j, const char* what) {
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string())
    throw invalid_response_error(200, std::string("the server's ") + what + " has no string \"id\": " + j.dump().substr(0, 200));
}

json options_json(const trigger_options& o) {
  json j = o.extra.is_object() ? o.extra : json::object();
  if (!o.tags.empty()) j["tags"] = o.tags;
  if (!o.delay.empty()) j["delay"] = o.delay.text();
  if (!o.ttl.empty()) j["ttl"] = o.ttl.text();
  if (!o.idempotency_key.empty()) j["idempotencyKey"] = o.idempotency_key;
  if (!o.idempotency_key_ttl.empty()) j["idempotencyKeyTTL"] = o.idempotency_key_ttl.text();
  if (o.max_attempts) j["maxAttempts"] = *o.max_attempts;
  if (o.max_duration) j["maxDuration"] = o.max_duration->count();
  if (!o.queue.empty()) j["queue"] = o.queue;
  if (!o.concurrency_key.empty()) j["concurrencyKey"] = o.concurrency_key;
  if (o.priority) j["priority"] = o.priority->count();
  if (!o.metadata.is_null()) j["metadata"] = o.metadata;
  return j;
}

/// A queue's path: its id ("task/<id>" keeps its slash, each part encoded).
std::string queue_path(std::string_view id) {
  auto slash = id.find('/');
  if (slash == std::string_view::npos) return "/api/v1/queues/" + encode(id);
  return "/api/v1/queues/" + encode(id.substr(0, slash)) + "/" + encode(id.substr(slash + 1));
}

template <class T>
offset_page<T> offset_page_from(const json& j, T (*item)(const json&)) {
  offset_page<T> p;
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
    throw invalid_response_error(200, "the server's page has no \"data\" array");
  for (const auto& x : j["data"]) p.data.push_back(item(x));
  const json pg = field(j, "pagination");
  auto number = [&](const char* k, int dflt) {  // Trigger.dev coerces these: numbers or strings
    auto it = pg.find(k);
    if (it == pg.end()) return dflt;
    if (it->is_number()) return it->get<int>();
    if (it->is_string()) return std::atoi(it->get<std::string>().c_str());
    return dflt;
  };
  p.current_page = number("currentPage", 1);
  p.total_pages = number("totalPages", 1);
  p.count = number("count", static_cast<int>(p.data.size()));
  p.raw = j;
  return p;
}

bool retryable_status(int status) { return status == 408 || status == 409 || status == 429 || status >= 500; }

[[noreturn]] void throw_api_error(const detail::http_reply& r) {
  json body = json::parse(r.body, nullptr, false);
  std::string msg;
  if (body.is_object() && body.contains("error")) {
    const json& e = body["error"];
    msg = e.is_string() ? e.get<std::string>() : e.is_object() && e.contains("message") && e["message"].is_string()
                                                     ? e["message"].get<std::string>()
                                                     : e.dump();
  } else {
    msg = r.body.substr(0, 200);
    if (msg.empty()) msg = "(no body)";
  }
  switch (r.status) {
    case 400: throw bad_request_error(r.status, msg, body, r.headers);
    case 401: throw authentication_error(r.status, msg, body, r.headers);
    case 403: throw permission_denied_error(r.status, msg, body, r.headers);
    case 404: throw not_found_error(r.status, msg, body, r.headers);
    case 409: throw conflict_error(r.status, msg, body, r.headers);
    case 422: throw unprocessable_entity_error(r.status, msg, body, r.headers);
    case 429: throw rate_limit_error(r.status, msg, body, r.headers);
    default:
      if (r.status >= 500) throw internal_server_error(r.status, msg, body, r.headers);
      throw api_error(r.status, msg, body, r.headers);
  }
}

/// 429 with x-ratelimit-reset (epoch ms): how long until then.
std::optional<milliseconds> until_reset(const std::map<std::string, std::string>& headers) {
  auto it = headers.find("x-ratelimit-reset");
  if (it == headers.end()) return std::nullopt;
  char* end = nullptr;
  long long reset = std::strtoll(it->second.c_str(), &end, 10);
  if (end == it->second.c_str()) return std::nullopt;
  auto now = std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return milliseconds(std::max<long long>(0, reset - now));
}

}  // namespace

// --- time ----------------------------------------------------------------------------------------

std::string format_time(time_point t) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(t);
  auto days = floor<std::chrono::days>(ms);
  year_month_day ymd{sys_days(days)};
  long long rest = (ms - days).count();
  char b[64];
  std::snprintf(b, sizeof b, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()),
                rest / 3'600'000, rest / 60'000 % 60, rest / 1000 % 60, rest % 1000);
  return b;
}

std::optional<time_point> parse_time(const json& v) {
  using namespace std::chrono;
  if (v.is_number()) return time_point(milliseconds(v.get<long long>()));
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  int y, mo, d, h, mi, sec, n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) return std::nullopt;
  year_month_day ymd{year(y), month(unsigned(mo)), day(unsigned(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t i = 19;
  long long micros = 0;
  if (i < s.size() && s[i] == '.') {
    long long scale = 100'000;
    for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i, scale /= 10)
      if (scale > 0) micros += (s[i] - '0') * scale;
  }
  long long offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(sec) + microseconds(micros) - minutes(offset_min);
  return time_point(duration_cast<time_point::duration>(t.time_since_epoch()));
}

// --- statuses ------------------------------------------------------------------------------------

namespace {
constexpr std::pair<run_status, std::string_view> run_status_names[] = {
    {run_status::pending_version, "PENDING_VERSION"}, {run_status::queued, "QUEUED"},
    {run_status::dequeued, "DEQUEUED"},               {run_status::executing, "EXECUTING"},
    {run_status::waiting, "WAITING"},                 {run_status::delayed, "DELAYED"},
    {run_status::completed, "COMPLETED"},             {run_status::canceled, "CANCELED"},
    {run_status::failed, "FAILED"},                   {run_status::crashed, "CRASHED"},
    {run_status::system_failure, "SYSTEM_FAILURE"},   {run_status::expired, "EXPIRED"},
    {run_status::timed_out, "TIMED_OUT"},
};
constexpr std::pair<token_status, std::string_view> token_status_names[] = {
    {token_status::waiting, "WAITING"}, {token_status::completed, "COMPLETED"}, {token_status::timed_out, "TIMED_OUT"}};
}  // namespace

std::string_view to_string(run_status s) {
  for (auto [v, n] : run_status_names)
    if (v == s) return n;
  return "UNKNOWN";
}
run_status parse_run_status(std::string_view s) {
  for (auto [v, n] : run_status_names)
    if (n == s) return v;
  return run_status::unknown;
}
bool is_final(run_status s) { return s >= run_status::completed && s <= run_status::timed_out; }
bool is_success(run_status s) { return s == run_status::completed; }

std::string_view to_string(token_status s) {
  for (auto [v, n] : token_status_names)
    if (v == s) return n;
  return "UNKNOWN";
}
token_status parse_token_status(std::string_view s) {
  for (auto [v, n] : token_status_names)
    if (n == s) return v;
  return token_status::unknown;
}

// --- errors --------------------------------------------------------------------------------------

api_error::api_error(int status, std::string message, json body, std::map<std::string, std::string> headers)
    : client_error(std::to_string(status) + " " + message),
      status_(status),
      message_(std::move(message)),
      body_(std::move(body)),
      headers_(std::move(headers)) {}

std::optional<std::chrono::milliseconds> rate_limit_error::millis_until_reset() const { return until_reset(headers()); }

// --- JSON → structs ------------------------------------------------------------------------------

run run::from_json(const json& j) {
  require_object_with_id(j, "run");
  run r;
  r.id = j["id"].get<std::string>();
  r.task = str(j, "taskIdentifier");
  r.status_text = str(j, "status");
  r.status = parse_run_status(r.status_text);
  if (r.status == run_status::unknown && flag(j, "isCompleted"))  // a status newer than this client
    r.status = flag(j, "isSuccess") ? run_status::completed : run_status::failed;
  r.payload = field(j, "payload");
  r.output = field(j, "output");
  if (auto e = field(j, "error"); e.is_object())
    r.error = run_error{str(e, "message"), str(e, "name"), str(e, "stackTrace")};
  r.tags = strings(j, "tags");
  r.metadata = field(j, "metadata");
  r.idempotency_key = str(j, "idempotencyKey");
  r.ttl = str(j, "ttl");
  r.created_at = when(j, "createdAt").value_or(time_point{});
  r.updated_at = when(j, "updatedAt").value_or(time_point{});
  r.started_at = when(j, "startedAt");
  r.finished_at = when(j, "finishedAt");
  r.delayed_until = when(j, "delayedUntil");
  r.expired_at = when(j, "expiredAt");
  r.attempt_count = num(j, "attemptCount");
  if (auto d = field(j, "durationMs"); d.is_number()) r.duration = std::chrono::milliseconds(d.get<long long>());
  r.batch_id = str(j, "batchId");
  r.parent_id = str(j, "parentId");
  r.root_id = str(j, "rootId");
  r.schedule_id = str(j, "scheduleId");
  r.depth = num(j, "depth");
  r.raw = j;
  return r;
}

token token::from_json(const json& j) {
  require_object_with_id(j, "token");
  token t;
  t.id = j["id"].get<std::string>();
  t.url = str(j, "url");
  t.status = parse_token_status(str(j, "status"));
  t.tags = strings(j, "tags");
  t.created_at = when(j, "createdAt").value_or(time_point{});
  t.completed_at = when(j, "completedAt");
  t.timeout_at = when(j, "timeoutAt");
  t.idempotency_key = str(j, "idempotencyKey");
  t.output_is_error = flag(j, "outputIsError");
  t.is_cached = flag(j, "isCached");
  // The API's output is a string packet with outputType (Trigger.dev's shape); an older taskhost
  // sent the data itself.
  if (auto o = field(j, "output"); o.is_string()) {
    const std::string type = j.contains("outputType") ? str(j, "outputType") : "application/json";
    const std::string text = o.get<std::string>();
    if (type == "application/json" || type == "application/super+json") {
      json parsed = json::parse(text, nullptr, false);
      if (parsed.is_discarded()) t.output = text;
      else t.output = type == "application/super+json" && parsed.is_object() ? field(parsed, "json") : parsed;
    } else {
      t.output = text;
    }
  } else {
    t.output = o;
  }
  t.raw = j;
  return t;
}

schedule schedule::from_json(const json& j) {
  require_object_with_id(j, "schedule");
  schedule s;
  s.id = j["id"].get<std::string>();
  s.type = str(j, "type");
  s.task = str(j, "task");
  s.active = flag(j, "active");
  const json g = field(j, "generator");
  if (g.is_object()) {
    s.cron = str(g, "expression");
    s.cron_description = str(g, "description");
  }
  s.timezone = str(j, "timezone");
  s.external_id = str(j, "externalId");
  s.deduplication_key = str(j, "deduplicationKey");
  s.next_run = when(j, "nextRun");
  s.raw = j;
  return s;
}

queue queue::from_json(const json& j) {
  require_object_with_id(j, "queue");
  queue q;
  q.id = j["id"].get<std::string>();
  q.name = str(j, "name");
  q.type = str(j, "type");
  q.running = num(j, "running");
  q.queued = num(j, "queued");
  q.paused = flag(j, "paused");
  if (auto l = field(j, "concurrencyLimit"); l.is_number()) q.concurrency_limit = l.get<int>();
  if (auto c = field(j, "concurrency"); c.is_object() && c.contains("override") && c["override"].is_number())
    q.concurrency_override = c["override"].get<int>();
  q.raw = j;
  return q;
}

// --- the client ----------------------------------------------------------------------------------

struct client::impl {
  std::string url, key;
  client_options options;
  std::mutex mutex;  // guards transport: one request at a time on the one connection
  detail::http_transport transport;

  impl(std::string u, std::string k, client_options o)
      : url(std::move(u)), key(std::move(k)), options(std::move(o)), transport(url, make_timeouts(options)) {}

  static detail::http_transport::timeouts make_timeouts(const client_options& o) { return {o.connect_timeout, o.request_timeout}; }

  milliseconds backoff(int failed_attempt) const {
    const auto& r = options.retry;
    double ms = double(r.min_delay.count()) * std::pow(r.factor, failed_attempt - 1);
    ms = std::min(ms, double(r.max_delay.count()));
    if (r.randomize) {
      thread_local std::mt19937 gen{std::random_device{}()};
      ms *= std::uniform_real_distribution<double>(1.0, 2.0)(gen);
    }
    return milliseconds(static_cast<long long>(ms));
  }

  /// One logical call: sends, retries per the policy, and returns the 2xx answer — or throws
  /// api_error / connection_error. `again(reply)` may ask for a retry of a 2xx answer too (a batch
  /// not yet sealed); after the last attempt that answer is returned as it is.
  detail::http_reply send(std::string_view method, const std::string& path, const std::string& body,
                          const std::string& content_type = "application/json", bool request_key = true,
                          const std::function<bool(const detail::http_reply&)>& again = {}) {
    detail::header_list headers = {{"user-agent", options.user_agent}, {"content-type", content_type}, {"accept", "application/json"}};
    if (!key.empty()) headers.emplace_back("authorization", "Bearer " + key);
    if (request_key && method == "POST") headers.emplace_back("x-trigger-request-idempotency-key", uuid_v4());
    const int max_attempts = std::max(1, options.retry.max_attempts);
    for (int attempt = 1;; ++attempt) {
      detail::http_reply reply;
      try {
        std::lock_guard lock(mutex);
        reply = transport.request(method, path, body, headers);
      } catch (const detail::transport_error& e) {
        if (attempt >= max_attempts)
          throw connection_error(std::string(e.what()) + (attempt > 1 ? " (" + std::to_string(attempt) + " attempts)" : ""), attempt);
        std::this_thread::sleep_for(backoff(attempt));
        continue;
      }
      const bool ok = reply.status / 100 == 2;
      bool retry;
      if (ok) {
        retry = again && again(reply);
      } else {
        auto xsr = reply.headers.find("x-should-retry");
        if (xsr != reply.headers.end() && xsr->second == "true") retry = true;
        else if (xsr != reply.headers.end() && xsr->second == "false") retry = false;
        else retry = retryable_status(reply.status);
      }
      if (!retry || attempt >= max_attempts) {
        if (ok) return reply;
        throw_api_error(reply);
      }
      milliseconds delay = backoff(attempt);
      if (reply.status == 429)
        if (auto reset = until_reset(reply.headers)) {
          thread_local std::mt19937 gen{std::random_device{}()};
          delay = std::min(*reset + milliseconds(std::uniform_int_distribution<int>(0, 1000)(gen)), options.retry.max_delay);
        }
      std::this_thread::sleep_for(delay);
    }
  }

  json parse(const detail::http_reply& r, std::string_view method, const std::string& path) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded())
      throw invalid_response_error(r.status, std::to_string(r.status) + " the answer to " + std::string(method) + " " + path +
                                                 " is not JSON: " + r.body.substr(0, 200));
    return j;
  }

  json call(std::string_view method, const std::string& path, const json& body = nullptr) {
    auto r = send(method, path, body.is_null() ? std::string() : body.dump(-1, ' ', false, json::error_handler_t::replace));
    return parse(r, method, path);
  }
};

client::client(std::string url, std::string api_key, client_options options) {
  try {
    impl_ = std::make_unique<impl>(std::move(url), std::move(api_key), std::move(options));
  } catch (const detail::transport_error& e) {
    throw std::invalid_argument(e.what());
  }
}

client client::from_env(client_options options) {
  std::string url = env("TASKHOST_API_URL");
  if (url.empty()) url = env("TRIGGER_API_URL");
  if (url.empty()) url = "http://127.0.0.1:8080";
  std::string key = env("TASKHOST_API_KEY");
  if (key.empty()) key = env("TRIGGER_SECRET_KEY");
  return client(std::move(url), std::move(key), std::move(options));
}

client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

const std::string& client::url() const { return impl_->transport.base_url(); }
bool client::has_key() const { return !impl_->key.empty(); }

json client::request(std::string_view method, const std::string& path, const json& body) { return impl_->call(method, path, body); }

// Runs

run_handle client::trigger(std::string_view task, const json& payload, const trigger_options& options) {
  json j = impl_->call("POST", "/api/v1/tasks/" + encode(task) + "/trigger", json{{"payload", payload}, {"options", options_json(options)}});
  require_object_with_id(j, "trigger answer");
  return {j["id"].get<std::string>(), flag(j, "isCached")};
}

batch_handle client::batch_trigger(std::string_view task, const std::vector<json>& payloads, const trigger_options& options,
                                   const batch_options& batch) {
  std::vector<batch_item> items;
  items.reserve(payloads.size());
  for (const auto& p : payloads) items.push_back({std::string(task), p, options});
  return batch_trigger(items, batch);
}

batch_handle client::batch_trigger(const std::vector<batch_item>& items, const batch_options& options) {
  if (items.empty()) throw std::invalid_argument("batch_trigger needs at least one item");
  if (items.size() > 1000) throw std::invalid_argument("batch_trigger takes at most 1,000 items, not " + std::to_string(items.size()));
  std::set<std::string> tasks;
  for (const auto& it : items) {
    if (it.task.empty()) throw std::invalid_argument("batch_trigger: an item has no task");
    tasks.insert(it.task);
  }
  // Phase 1: the batch.
  json create = {{"runCount", items.size()}, {"taskIdentifiers", std::vector<std::string>(tasks.begin(), tasks.end())}};
  if (!options.idempotency_key.empty()) create["idempotencyKey"] = options.idempotency_key;
  if (!options.idempotency_key_ttl.empty()) create["idempotencyKeyTTL"] = options.idempotency_key_ttl.text();
  batch_handle h;
  try {
    json j = impl_->call("POST", "/api/v3/batches", create);
    require_object_with_id(j, "batch");
    h.id = j["id"].get<std::string>();
    h.run_count = j.contains("runCount") && j["runCount"].is_number() ? j["runCount"].get<size_t>() : items.size();
    h.is_cached = flag(j, "isCached");
  } catch (const client_error& e) {
    throw batch_trigger_error(std::string("batch trigger: creating the batch failed: ") + e.what(), "create", "", std::current_exception());
  }
  // Phase 2: its items, as NDJSON, re-sent whole until the batch is sealed.
  json items_answer;
  if (!h.is_cached) {
    std::string ndjson;
    for (size_t i = 0; i < items.size(); ++i) {
      json line = {{"index", i}, {"task", items[i].task}, {"payload", items[i].payload}, {"options", options_json(items[i].options)}};
      ndjson += line.dump(-1, ' ', false, json::error_handler_t::replace);
      ndjson += '\n';
    }
    const std::string path = "/api/v3/batches/" + encode(h.id) + "/items";
    auto unsealed = [](const detail::http_reply& r) {
      json j = json::parse(r.body, nullptr, false);
      return !j.is_object() || !j.value("sealed", false);
    };
    try {
      auto r = impl_->send("POST", path, ndjson, "application/x-ndjson", false, unsealed);
      items_answer = impl_->parse(r, "POST", path);
    } catch (const client_error& e) {
      throw batch_trigger_error("batch trigger: sending the items of " + h.id + " failed: " + e.what(), "items", h.id,
                                std::current_exception());
    }
    if (!items_answer.is_object() || !items_answer.value("sealed", false))
      throw batch_trigger_error("batch trigger: the server did not seal " + h.id + " after " +
                                    std::to_string(std::max(1, impl_->options.retry.max_attempts)) + " attempts: " +
                                    items_answer.dump().substr(0, 200),
                                "items", h.id, nullptr);
  }
  // The run ids: from the answer if it has them, else from the batch (whose runs may still be
  // being created: asked again for a short while).
  if (items_answer.is_object() && items_answer.contains("runs") && items_answer["runs"].is_array()) {
    h.run_ids = strings(items_answer, "runs");
  } else {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (milliseconds gap = 5ms;; gap = std::min(gap * 2, milliseconds(250))) {
      try {
        h.run_ids = retrieve_batch(h.id).runs;
      } catch (const not_found_error&) {
        break;  // a server that does not show batches: the runs are triggered, their ids unknown
      }
      if (h.run_ids.size() >= h.run_count || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(gap);
    }
  }
  return h;
}

batch_info client::retrieve_batch(std::string_view batch_id) {
  json j = impl_->call("GET", "/api/v1/batches/" + encode(batch_id));
  require_object_with_id(j, "batch");
  batch_info b;
  b.id = j["id"].get<std::string>();
  b.status = str(j, "status");
  b.run_count = static_cast<size_t>(num(j, "runCount"));
  b.runs = strings(j, "runs");
  b.raw = j;
  return b;
}

run client::retrieve(std::string_view run_id) { return run::from_json(impl_->call("GET", "/api/v3/runs/" + encode(run_id))); }

run_page client::list(const run_filter& f) {
  std::vector<std::string> statuses;
  for (auto s : f.status) statuses.emplace_back(to_string(s));
  auto ms = [](const std::optional<time_point>& t) {
    return t ? std::to_string(std::chrono::duration_cast<milliseconds>(t->time_since_epoch()).count()) : std::string();
  };
  const std::string path = "/api/v1/runs" + query({{"filter[status]", join(statuses)},
                                                   {"filter[taskIdentifier]", join(f.tasks)},
                                                   {"filter[tag]", join(f.tags)},
                                                   {"filter[createdAt][from]", ms(f.created_from)},
                                                   {"filter[createdAt][to]", ms(f.created_to)},
                                                   {"filter[createdAt][period]", f.period},
                                                   {"filter[schedule]", f.schedule},
                                                   {"filter[batch]", f.batch},
                                                   {"page[size]", f.page_size > 0 ? std::to_string(f.page_size) : ""},
                                                   {"page[after]", f.after},
                                                   {"page[before]", f.before}});
  json j = impl_->call("GET", path);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
    throw invalid_response_error(200, "the server's run page has no \"data\" array");
  run_page p;
  for (const auto& r : j["data"]) p.data.push_back(run::from_json(r));
  const json pg = field(j, "pagination");
  p.next = str(pg, "next");
  p.previous = str(pg, "previous");
  p.raw = std::move(j);
  return p;
}

void client::for_each_run(run_filter filter, const std::function<bool(const run&)>& fn) {
  filter.before.clear();
  for (;;) {
    run_page p = list(filter);
    for (const auto& r : p.data)
      if (!fn(r)) return;
    if (p.next.empty() || p.data.empty()) return;
    filter.after = p.next;
  }
}

void client::cancel(std::string_view run_id) { impl_->call("POST", "/api/v2/runs/" + encode(run_id) + "/cancel"); }

run_handle client::replay(std::string_view run_id, const json& overrides) {
  json j = impl_->call("POST", "/api/v1/runs/" + encode(run_id) + "/replay",
                       overrides.is_object() && !overrides.empty() ? overrides : json());
  require_object_with_id(j, "replay answer");
  return {j["id"].get<std::string>(), false};
}

run client::reschedule(std::string_view run_id, const time_spec& delay) {
  return run::from_json(impl_->call("POST", "/api/v1/runs/" + encode(run_id) + "/reschedule", json{{"delay", delay.text()}}));
}

run_logs client::logs(std::string_view run_id) {
  json j = impl_->call("GET", "/api/v1/runs/" + encode(run_id) + "/logs");
  run_logs out;
  for (const auto& l : j.is_object() ? field(j, "data") : json())
    out.lines.push_back({str(l, "time"), str(l, "level"), str(l, "message"), num(l, "attempt"), field(l, "attributes")});
  out.truncated = j.is_object() && flag(j, "truncated");
  out.raw = std::move(j);
  return out;
}

run client::wait_for_completion(std::string_view run_id, milliseconds timeout, milliseconds poll_interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (milliseconds gap = std::min(milliseconds(10), poll_interval);; gap = std::min(gap * 2, poll_interval)) {
    run r = retrieve(run_id);
    if (r.is_final()) return r;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      const std::string within = timeout.count() % 1000 == 0 ? std::to_string(timeout.count() / 1000) + " s"
                                                             : std::to_string(timeout.count()) + " ms";
      std::string what = "run " + r.id + " did not finish within " + within + " (status " + r.status_text + ")";
      throw wait_timeout_error(what, std::move(r));
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(gap, deadline - now));
  }
}

// Wait tokens

token client::create_token(const token_options& o) {
  json body = json::object();
  if (!o.timeout.empty()) body["timeout"] = o.timeout.text();
  if (!o.idempotency_key.empty()) body["idempotencyKey"] = o.idempotency_key;
  if (!o.idempotency_key_ttl.empty()) body["idempotencyKeyTTL"] = o.idempotency_key_ttl.text();
  if (!o.tags.empty()) body["tags"] = o.tags;
  return token::from_json(impl_->call("POST", "/api/v1/waitpoints/tokens", body));
}

void client::complete_token(std::string_view token_id, const json& data) {
  impl_->call("POST", "/api/v1/waitpoints/tokens/" + encode(token_id) + "/complete", json{{"data", data}});
}

token client::retrieve_token(std::string_view token_id) {
  return token::from_json(impl_->call("GET", "/api/v1/waitpoints/tokens/" + encode(token_id)));
}

token_page client::list_tokens(const token_filter& f) {
  std::vector<std::string> statuses;
  for (auto s : f.status) statuses.emplace_back(to_string(s));
  json j = impl_->call("GET", "/api/v1/waitpoints/tokens" + query({{"filter[status]", join(statuses)},
                                                                   {"page[size]", f.page_size > 0 ? std::to_string(f.page_size) : ""},
                                                                   {"page[after]", f.after}}));
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
    throw invalid_response_error(200, "the server's token page has no \"data\" array");
  token_page p;
  for (const auto& t : j["data"]) p.data.push_back(token::from_json(t));
  p.next = str(field(j, "pagination"), "next");
  p.previous = str(field(j, "pagination"), "previous");
  p.raw = std::move(j);
  return p;
}

// Schedules

namespace {
json schedule_body(const schedule_options& o, bool with_dedup) {
  json body = {{"task", o.task}, {"cron", o.cron}};
  if (!o.timezone.empty()) body["timezone"] = o.timezone;
  if (!o.external_id.empty()) body["externalId"] = o.external_id;
  if (with_dedup && !o.deduplication_key.empty()) body["deduplicationKey"] = o.deduplication_key;
  return body;
}
std::string schedule_path(std::string_view id) { return "/api/v1/schedules/" + encode(id); }
std::string page_query(int page, int per_page) {
  return query({{"page", page > 1 ? std::to_string(page) : ""}, {"perPage", per_page > 0 ? std::to_string(per_page) : ""}});
}
}  // namespace

schedule client::create_schedule(const schedule_options& o) {
  return schedule::from_json(impl_->call("POST", "/api/v1/schedules", schedule_body(o, true)));
}
schedule client::retrieve_schedule(std::string_view id) { return schedule::from_json(impl_->call("GET", schedule_path(id))); }
schedule client::update_schedule(std::string_view id, const schedule_options& o) {
  return schedule::from_json(impl_->call("PUT", schedule_path(id), schedule_body(o, false)));
}
void client::delete_schedule(std::string_view id) { impl_->call("DELETE", schedule_path(id)); }
schedule client::activate_schedule(std::string_view id) {
  return schedule::from_json(impl_->call("POST", schedule_path(id) + "/activate"));
}
schedule client::deactivate_schedule(std::string_view id) {
  return schedule::from_json(impl_->call("POST", schedule_path(id) + "/deactivate"));
}
offset_page<schedule> client::list_schedules(int page, int per_page) {
  return offset_page_from<schedule>(impl_->call("GET", "/api/v1/schedules" + page_query(page, per_page)), &schedule::from_json);
}
std::vector<schedule> client::list_all_schedules() {
  std::vector<schedule> all;
  for (int page = 1;; ++page) {
    auto p = list_schedules(page, 100);
    for (auto& s : p.data) all.push_back(std::move(s));
    if (!p.has_next() || p.data.empty()) return all;
  }
}
std::vector<std::string> client::timezones(bool exclude_utc) {
  json j = impl_->call("GET", std::string("/api/v1/timezones") + (exclude_utc ? "?excludeUtc=true" : ""));
  return strings(j, "timezones");
}

// Queues

offset_page<queue> client::list_queues(int page, int per_page) {
  return offset_page_from<queue>(impl_->call("GET", "/api/v1/queues" + page_query(page, per_page)), &queue::from_json);
}
std::vector<queue> client::list_all_queues() {
  std::vector<queue> all;
  for (int page = 1;; ++page) {
    auto p = list_queues(page, 100);
    for (auto& q : p.data) all.push_back(std::move(q));
    if (!p.has_next() || p.data.empty()) return all;
  }
}
queue client::retrieve_queue(std::string_view id) { return queue::from_json(impl_->call("GET", queue_path(id))); }
queue client::pause_queue(std::string_view id) {
  return queue::from_json(impl_->call("POST", queue_path(id) + "/pause", json{{"action", "pause"}}));
}
queue client::resume_queue(std::string_view id) {
  return queue::from_json(impl_->call("POST", queue_path(id) + "/pause", json{{"action", "resume"}}));
}
queue client::override_queue_concurrency(std::string_view id, int limit) {
  return queue::from_json(impl_->call("POST", queue_path(id) + "/concurrency/override", json{{"concurrencyLimit", limit}}));
}
queue client::reset_queue_concurrency(std::string_view id) {
  return queue::from_json(impl_->call("POST", queue_path(id) + "/concurrency/reset"));
}

}  // namespace taskhost::api
