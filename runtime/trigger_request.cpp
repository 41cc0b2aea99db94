#include "runtime/trigger_request.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <set>

#include "runtime/run.hpp"
#include "taskhost/config/duration.hpp"

namespace taskhost {
namespace {

using json = nlohmann::json;

trigger_parse_result fail(int status, std::string msg) { return {std::nullopt, {status, std::move(msg)}}; }

// Options that change what a run does and that this taskhost does not implement yet: refusing
// them beats silently running without them (a run started too early, ...).
const std::set<std::string, std::less<>> unsupported_options = {
    "parentRunId", "resumeParentOnCompletion"};

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_iso_time(std::string_view s) {
  // YYYY-MM-DD[T ]HH:MM[:SS[.fff]](Z|±HH[:]MM)
  auto digits = [&](size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, sec = 0;
  if (!digits(0, 4, y) || s.size() < 16 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, mi))
    return std::nullopt;
  size_t i = 16;
  int64_t ms = 0;
  if (i < s.size() && s[i] == ':') {
    if (!digits(i + 1, 2, sec)) return std::nullopt;
    i += 3;
    if (i < s.size() && s[i] == '.') {
      ++i;
      int64_t scale = 100;
      size_t start = i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        ms += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
      }
      if (i == start) return std::nullopt;
    }
  }
  int offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    int sign = s[i] == '-' ? -1 : 1;
    if (!digits(i + 1, 2, oh)) return std::nullopt;
    size_t j = i + 3;
    if (j < s.size() && s[j] == ':') ++j;
    if (!digits(j, 2, om)) return std::nullopt;
    offset_min = sign * (oh * 60 + om);
    i = j + 2;
  } else {
    return std::nullopt;  // a time without a zone is ambiguous
  }
  if (i != s.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1) && y != 1969) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::seconds(t - offset_min * 60) + std::chrono::milliseconds(ms));
}

std::optional<std::chrono::system_clock::time_point> parse_delay(const json& v, std::string& error) {
  auto now = std::chrono::system_clock::now();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (auto d = config::parse_duration(s)) return now + *d;
    if (auto t = parse_iso_time(s)) return std::max(*t, now);
    error = "'" + s.substr(0, 100) + "' is neither a duration like \"30s\" or \"1h30m\" (units w d h m s) nor an ISO date";
    return std::nullopt;
  }
  error = "must be a duration string like \"30s\" or an ISO date string";
  return std::nullopt;
}

std::optional<request_error> decode_payload(std::string_view payload_type, std::string_view data, json& out) {
  if (payload_type == "application/super+json") {
    json packet = json::parse(data, nullptr, false);
    if (packet.is_discarded() || !packet.is_object()) return request_error{400, "payload is not a valid application/super+json packet"};
    out = packet.contains("json") ? std::move(packet["json"]) : json(nullptr);
  } else if (payload_type == "application/json") {
    out = json::parse(data, nullptr, false);
    if (out.is_discarded()) {
      out = nullptr;
      return request_error{400, "payload is not valid JSON (payloadType application/json)"};
    }
  } else if (payload_type == "text/plain") {
    out = std::string(data);
  } else {
    return request_error{400, "unsupported options.payloadType '" + std::string(payload_type).substr(0, 100) + "'"};
  }
  return std::nullopt;
}

std::optional<request_error> resolve_stored_payload(trigger_input& in, const packet_reader& read) {
  if (in.payload_type != "application/store") return std::nullopt;
  if (!in.payload.is_string() || in.payload.get_ref<const std::string&>().empty())
    return request_error{400, "payloadType application/store needs the packet's storagePath as the payload (a string)"};
  const std::string path = in.payload.get<std::string>();
  auto packet = read(path);
  if (!packet)
    return request_error{400, "no packet is stored at storagePath '" + path.substr(0, 300) +
                                  "' (never uploaded, or expired): upload it with PUT /api/v2/packets/{filename} first"};
  json value;
  if (auto e = decode_payload(packet->content_type, packet->data, value))
    return request_error{400, "the packet at storagePath '" + path.substr(0, 300) + "' (" + packet->content_type + "): " + e->message};
  in.payload = std::move(value);
  in.payload_type = std::move(packet->content_type);
  return std::nullopt;
}

trigger_parse_result parse_trigger_body(std::string_view task_id, std::string_view body, uint64_t max_payload_bytes) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    trigger_input in;
    in.task_id = std::string(task_id);
    in.payload = nullptr;  // no body: a run with no payload, like the SDK's `undefined`
    return {std::move(in), {}};
  }
  json b = json::parse(body, nullptr, false);
  if (b.is_discarded()) return fail(400, "request body is not valid JSON");
  if (!b.is_object()) return fail(400, "request body must be a JSON object like {\"payload\": ..., \"options\": {...}}");
  return parse_trigger_json(task_id, b, max_payload_bytes);
}

trigger_parse_result parse_trigger_json(std::string_view task_id, const json& b, uint64_t max_payload_bytes) {
  trigger_input in;
  in.task_id = std::string(task_id);
  json options = json::object();
  if (auto it = b.find("options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) return fail(400, "options must be an object");
    options = *it;
  }
  for (const auto& [k, v] : options.items())
    if (unsupported_options.count(k) && !v.is_null())
      return fail(400, "option '" + k + "' is not supported by this taskhost yet");

  if (auto it = options.find("payloadType"); it != options.end()) {
    if (!it->is_string()) return fail(400, "options.payloadType must be a string");
    in.payload_type = it->get<std::string>();
  }

  auto p = b.find("payload");
  if (p == b.end()) {
    in.payload = nullptr;
  } else if (p->is_string() && options.contains("payloadType")) {
    const auto& s = p->get_ref<const std::string&>();
    if (s.size() > max_payload_bytes)
      return fail(413, "payload of " + std::to_string(s.size()) + " bytes is over the limit of " +
                           std::to_string(max_payload_bytes) + " bytes");
    if (in.payload_type == "application/store") {
      in.payload = s;  // the storagePath: resolve_stored_payload reads the packet
    } else if (auto e = decode_payload(in.payload_type, s, in.payload)) {
      return {std::nullopt, *e};
    }
  } else {
    in.payload = *p;  // a plain JSON value
    if (p->is_structured() || p->is_string()) {
      auto size = p->dump().size();
      if (size > max_payload_bytes)
        return fail(413, "payload of " + std::to_string(size) + " bytes is over the limit of " +
                             std::to_string(max_payload_bytes) + " bytes");
    }
  }

  if (auto it = options.find("maxAttempts"); it != options.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 250)
      return fail(400, "options.maxAttempts must be an integer from 1 to 250");
    in.max_attempts = it->get<int>();
  }
  if (auto it = options.find("maxDuration"); it != options.end() && !it->is_null()) {
    // Trigger.dev: seconds of compute per attempt, at least 5.
    if (!it->is_number() || it->get<double>() < 5 || it->get<double>() > 365.0 * 86400)
      return fail(400, "options.maxDuration must be a number of seconds, at least 5");
    in.max_duration_ms = static_cast<int64_t>(it->get<double>() * 1000);
  }
  if (auto it = options.find("tags"); it != options.end() && !it->is_null()) {
    json tags = it->is_string() ? json::array({*it}) : *it;
    if (!tags.is_array()) return fail(400, "options.tags must be a string or an array of strings");
    if (tags.size() > 10) return fail(400, "options.tags has " + std::to_string(tags.size()) + " tags; at most 10 are allowed");
    for (const auto& t : tags) {
      if (!t.is_string()) return fail(400, "options.tags must contain strings only");
      const auto& s = t.get_ref<const std::string&>();
      if (s.empty() || s.size() > 128) return fail(400, "options.tags: each tag must be 1 to 128 characters");
      in.tags.push_back(s);
    }
    std::sort(in.tags.begin(), in.tags.end());
    in.tags.erase(std::unique(in.tags.begin(), in.tags.end()), in.tags.end());
  }
  if (auto it = options.find("delay"); it != options.end() && !it->is_null()) {
    std::string err;
    auto at = parse_delay(*it, err);
    if (!at) return fail(400, "options.delay: " + err);
    if (*at > std::chrono::system_clock::now()) in.delay_until = at;
  }
  if (auto it = options.find("ttl"); it != options.end() && !it->is_null()) {
    if (it->is_number()) {
      if (it->get<double>() <= 0) return fail(400, "options.ttl must be positive");
      in.ttl_ms = static_cast<int64_t>(it->get<double>() * 1000);
      in.ttl = std::to_string(static_cast<int64_t>(it->get<double>())) + "s";
    } else if (it->is_string()) {
      auto d = config::parse_duration(it->get<std::string>());
      if (!d || d->count() <= 0)
        return fail(400, "options.ttl: '" + it->get<std::string>().substr(0, 100) + "' is not a duration like \"10m\" or \"1h\"");
      in.ttl_ms = d->count();
      in.ttl = it->get<std::string>();
    } else {
      return fail(400, "options.ttl must be a duration string like \"10m\" or a number of seconds");
    }
  }
  if (auto it = options.find("idempotencyKey"); it != options.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      return fail(400, "options.idempotencyKey must be a non-empty string");
    if (it->get_ref<const std::string&>().size() > max_idempotency_key_chars)
      return fail(400, "options.idempotencyKey is " + std::to_string(it->get_ref<const std::string&>().size()) +
                           " characters; at most " + std::to_string(max_idempotency_key_chars) + " are allowed");
    in.idempotency_key = it->get<std::string>();
    if (auto o = options.find("idempotencyKeyOptions"); o != options.end() && o->is_object())
      if (auto k = o->find("key"); k != o->end() && k->is_string() && k->get_ref<const std::string&>().size() <= max_idempotency_key_chars)
        in.idempotency_key_user = k->get<std::string>();
  }
  if (auto it = options.find("idempotencyKeyTTL"); it != options.end() && !it->is_null()) {
    // Trigger.dev's grammar for this one is stricter: one number and one unit.
    std::string s = it->is_string() ? it->get<std::string>() : "";
    bool ok = s.size() >= 2 && std::string_view("smhd").find(s.back()) != std::string_view::npos &&
              std::all_of(s.begin(), s.end() - 1, [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    auto d = ok ? config::parse_duration(s) : std::nullopt;
    if (!d || d->count() <= 0) return fail(400, "options.idempotencyKeyTTL must be like \"30s\", \"10m\", \"2h\" or \"7d\"");
    in.idempotency_key_ttl_ms = d->count();
  }
  if (auto it = options.find("queue"); it != options.end() && !it->is_null()) {
    // A name, or the SDK's {name}; the runtime checks that the queue exists.
    const json* name = it->is_object() ? (it->contains("name") ? &(*it)["name"] : nullptr) : &*it;
    if (!name || !name->is_string() || name->get_ref<const std::string&>().empty() || name->get_ref<const std::string&>().size() > 200)
      return fail(400, "options.queue must be the name of a queue (a string, or {\"name\": string})");
    in.queue = name->get<std::string>();
  }
  if (auto it = options.find("concurrencyKey"); it != options.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty() || it->get_ref<const std::string&>().size() > max_concurrency_key_chars)
      return fail(400, "options.concurrencyKey must be a string of 1 to " + std::to_string(max_concurrency_key_chars) + " characters");
    in.concurrency_key = it->get<std::string>();
  }
  if (auto it = options.find("priority"); it != options.end() && !it->is_null()) {
    // Trigger.dev: seconds of queue-time credit, not negative.
    if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 10.0 * 365 * 86400)
      return fail(400, "options.priority must be a number of seconds from 0 to 315360000");
    in.priority_ms = static_cast<int64_t>(it->get<double>() * 1000);
  }
  if (auto it = options.find("metadata"); it != options.end() && !it->is_null()) {
    if (!it->is_object()) return fail(400, "options.metadata must be a JSON object");
    auto size = it->dump().size();
    if (size > max_metadata_bytes)
      return fail(413, "options.metadata is " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_metadata_bytes));
    in.metadata = *it;
  }
  return {std::move(in), {}};
}

run_record new_run_record(trigger_input in, std::string id, std::chrono::system_clock::time_point now) {
  run_record r;
  r.id = std::move(id);
  r.task_id = std::move(in.task_id);
  r.created_at = r.updated_at = now;
  r.status = in.delay_until ? run_status::delayed : run_status::queued;
  r.delay_until = in.delay_until;
  r.payload = std::move(in.payload);
  r.payload_type = std::move(in.payload_type);
  r.tags = std::move(in.tags);
  r.metadata = std::move(in.metadata);
  r.max_attempts = in.max_attempts;
  r.max_duration_ms = in.max_duration_ms;
  if (!in.ttl.empty()) r.set_rare().ttl = std::move(in.ttl);
  r.ttl_ms = in.ttl_ms;
  r.queue = std::move(in.queue);
  r.concurrency_key = std::move(in.concurrency_key);
  r.priority_ms = in.priority_ms;
  r.schedule_id = std::move(in.schedule_id);
  if (in.schedule_occurrence) r.set_rare().schedule_occurrence = in.schedule_occurrence;
  if (!in.request_key.empty()) {
    r.set_rare().request_scope = std::move(in.request_scope);
    r.set_rare().request_key = std::move(in.request_key);
  }
  if (r.ttl_ms > 0 && !r.delay_until) r.expires_at = r.created_at + std::chrono::milliseconds(r.ttl_ms);
  if (!in.idempotency_key.empty()) {
    r.idempotency_key = std::move(in.idempotency_key);
    r.idempotency_key_user = std::move(in.idempotency_key_user);
    r.idempotency_expires_at = r.created_at + std::chrono::milliseconds(in.idempotency_key_ttl_ms);
  }
  return r;
}

}  // namespace taskhost
