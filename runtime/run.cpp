#include "runtime/run.hpp"

#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>

namespace taskhost {
namespace {
constexpr std::array<std::string_view, 12> run_names = {
    "QUEUED", "DELAYED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED",
    "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"};
constexpr std::array<std::string_view, 7> attempt_names = {
    "PENDING", "EXECUTING", "PAUSED", "COMPLETED", "FAILED", "CANCELED", "INTERRUPTED"};
}  // namespace

std::string_view to_string(run_status s) { return run_names[static_cast<size_t>(s)]; }

std::optional<run_status> run_status_from_string(std::string_view s) {
  for (size_t i = 0; i < run_names.size(); ++i)
    if (run_names[i] == s) return static_cast<run_status>(i);
  return std::nullopt;
}

bool is_final(run_status s) { return s >= run_status::completed; }

std::string_view to_string(attempt_status s) { return attempt_names[static_cast<size_t>(s)]; }

std::optional<attempt_status> attempt_status_from_string(std::string_view s) {
  for (size_t i = 0; i < attempt_names.size(); ++i)
    if (attempt_names[i] == s) return static_cast<attempt_status>(i);
  return std::nullopt;
}

bool releases_idempotency_key(run_status s) {
  return s == run_status::failed || s == run_status::crashed || s == run_status::system_failure ||
         s == run_status::timed_out || s == run_status::expired;
}

int64_t to_ms(time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count(); }
time_point from_ms(int64_t ms) { return time_point(std::chrono::milliseconds(ms)); }
int64_t to_us(time_point t) { return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count(); }
time_point from_us(int64_t us) { return time_point(std::chrono::microseconds(us)); }

std::string apply_metadata_op(json& metadata, const json& op) {
  if (!op.is_object()) return "a metadata operation must be an object";
  const std::string kind = op.value("op", "");
  json next = metadata.is_object() ? metadata : json::object();
  if (kind == "replace") {
    auto v = op.find("value");
    if (v == op.end() || !v->is_object()) return "metadata.replace needs an object";
    next = *v;
  } else {
    auto k = op.find("key");
    if (k == op.end() || !k->is_string() || k->get_ref<const std::string&>().empty()) return "metadata." + kind + " needs a key";
    const auto& key = k->get_ref<const std::string&>();
    const json value = op.contains("value") ? op["value"] : json(nullptr);
    if (kind == "set") {
      next[key] = value;
    } else if (kind == "remove") {
      next.erase(key);
    } else if (kind == "append") {
      auto& slot = next[key];
      if (slot.is_null()) slot = json::array();
      else if (!slot.is_array()) slot = json::array({slot});
      slot.push_back(value);
    } else if (kind == "increment") {
      if (!value.is_number()) return "metadata.increment needs a number";
      auto& slot = next[key];
      if (slot.is_null()) slot = 0;
      if (!slot.is_number()) return "metadata.increment: '" + key + "' is not a number";
      if (slot.is_number_integer() && value.is_number_integer()) slot = slot.get<int64_t>() + value.get<int64_t>();
      else slot = slot.get<double>() + value.get<double>();
    } else {
      return "unknown metadata operation '" + kind + "' (set, append, increment, remove, replace)";
    }
  }
  auto size = next.dump().size();
  if (size > max_metadata_bytes)
    return "metadata would be " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_metadata_bytes);
  metadata = std::move(next);
  return {};
}

namespace {

void append_dump(std::string& out, const json& j) { out += j.dump(-1, ' ', false, json::error_handler_t::replace); }

/// A JSON string as nlohmann's dump() writes it: ASCII here, anything else through nlohmann
/// (its UTF-8 checks and replacement).
void append_string(std::string& out, std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return append_dump(out, json(std::string(s)));
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

std::string attempts_to_storage(const std::vector<attempt_record>& attempts) {
  // Keys in nlohmann's (sorted) order: e, n, s, st, t0, t1; a stage's e, n, ok.
  std::string out = "[";
  for (const auto& a : attempts) {
    if (out.size() > 1) out += ',';
    out += '{';
    if (a.error) {
      out += "\"e\":";
      append_dump(out, *a.error);
      out += ',';
    }
    out += "\"n\":";
    append_int(out, a.number);
    out += ",\"s\":";
    append_string(out, to_string(a.status));
    if (!a.stages.empty()) {
      out += ",\"st\":[";
      for (size_t i = 0; i < a.stages.size(); ++i) {
        const auto& s = a.stages[i];
        if (i) out += ',';
        out += '{';
        if (s.error) {
          out += "\"e\":";
          append_dump(out, *s.error);
          out += ',';
        }
        out += "\"n\":";
        append_string(out, s.name);
        out += s.ok ? ",\"ok\":true}" : ",\"ok\":false}";
      }
      out += ']';
    }
    out += ",\"t0\":";
    append_int(out, to_us(a.started_at));
    if (a.finished_at) {
      out += ",\"t1\":";
      append_int(out, to_us(*a.finished_at));
    }
    out += '}';
  }
  out += ']';
  return out;
}

std::vector<attempt_record> attempts_from_storage(const json& j) {
  std::vector<attempt_record> out;
  if (!j.is_array()) return out;
  for (const auto& a : j) {
    attempt_record r;
    r.number = a.value("n", 0);
    r.status = attempt_status_from_string(a.value("s", "")).value_or(attempt_status::failed);
    r.started_at = from_us(a.value("t0", int64_t{0}));
    if (a.contains("t1")) r.finished_at = from_us(a["t1"].get<int64_t>());
    if (a.contains("e")) r.error = a["e"];
    if (auto st = a.find("st"); st != a.end())
      for (const auto& s : *st) r.stages.push_back({s.value("n", ""), s.value("ok", true), s.contains("e") ? std::optional<json>(s["e"]) : std::nullopt});
    out.push_back(std::move(r));
  }
  return out;
}

std::string format_time(time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int rem = static_cast<int>(ms % 1000);
  if (rem < 0) { rem += 1000; --secs; }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
  return buf;
}

std::string format_time_us(int64_t us) { return format_time(from_us(us)); }

namespace {

/// The fields GET /api/v3/runs/{id} and GET /api/v1/runs share.
json common_api_json(const run_record& r) {
  const run_status s = r.status;
  const bool final = is_final(s);
  json j = {
      {"id", r.id},
      {"taskIdentifier", r.task_id},
      {"status", to_string(s)},
      {"isQueued", s == run_status::queued || s == run_status::delayed},
      {"isExecuting", s == run_status::executing || s == run_status::dequeued},
      {"isWaiting", s == run_status::waiting},
      {"isCompleted", final},
      {"isSuccess", s == run_status::completed},
      // Trigger.dev counts CANCELED as failed; we also count EXPIRED and TIMED_OUT (see §6).
      {"isFailed", final && s != run_status::completed},
      {"isCancelled", s == run_status::canceled},
      {"isTest", false},
      {"createdAt", format_time(r.created_at)},
      {"updatedAt", format_time(r.updated_at)},
      {"tags", r.tags},
      {"costInCents", 0},
      {"baseCostInCents", 0},
      {"attemptCount", r.attempts.size()},
  };
  int64_t duration_ms = 0;
  for (const auto& a : r.attempts)
    if (a.finished_at) duration_ms += std::chrono::duration_cast<std::chrono::milliseconds>(*a.finished_at - a.started_at).count();
  j["durationMs"] = duration_ms;
  if (r.started_at) j["startedAt"] = format_time(*r.started_at);
  if (r.finished_at) j["finishedAt"] = format_time(*r.finished_at);
  if (s == run_status::expired && r.finished_at) j["expiredAt"] = format_time(*r.finished_at);
  if (s == run_status::delayed && r.delay_until) j["delayedUntil"] = format_time(*r.delay_until);
  if (!r.rare().ttl.empty()) j["ttl"] = r.rare().ttl;
  if (!r.idempotency_key.empty()) j["idempotencyKey"] = r.idempotency_key_user.empty() ? r.idempotency_key : r.idempotency_key_user;
  if (r.metadata.is_object()) j["metadata"] = r.metadata;
  if (r.error) j["error"] = *r.error;
  if (!r.parent_id.empty()) j["parentId"] = r.parent_id;
  if (!r.root_id.empty()) j["rootId"] = r.root_id;
  if (!r.batch_id.empty()) j["batchId"] = r.batch_id;
  if (!r.schedule_id.empty()) j["scheduleId"] = r.schedule_id;
  return j;
}

}  // namespace

json to_api_list_item_json(const run_record& r) {
  json j = common_api_json(r);
  j["env"] = {{"id", "taskhost"}, {"name", "taskhost"}};
  return j;
}

json to_api_json(const run_record& r) {
  json j = common_api_json(r);
  j["depth"] = r.depth;
  j["triggerFunction"] = r.batch_id.empty() ? "trigger" : "batchTrigger";
  json related = json::object();
  if (!r.parent_id.empty()) {
    related["parent"] = {{"id", r.parent_id}};
    related["root"] = {{"id", r.root_id.empty() ? r.parent_id : r.root_id}};
  }
  j["relatedRuns"] = std::move(related);
  if (r.status == run_status::waiting && r.journal.is_object()) {
    // What the run waits for, as the journal records it.
    json waits = json::array();
    const json& ops = r.journal.value("ops", json::object());
    for (const auto& k : r.journal.value("waiting", json::array()))
      if (k.is_string() && ops.contains(k.get<std::string>())) {
        const json& e = ops[k.get<std::string>()];
        json w = {{"kind", e.value("kind", "")}, {"done", e.value("done", false)}};
        for (auto f : {"runId", "batchId", "tokenId"})
          if (e.contains(f)) w[f] = e[f];
        if (e.contains("until")) w["until"] = format_time_us(e["until"].get<int64_t>());
        waits.push_back(std::move(w));
      }
    j["waitingFor"] = std::move(waits);
  }
  j["payload"] = r.payload;
  json attempts = json::array();
  for (const auto& a : r.attempts) {
    json aj = {{"number", a.number}, {"status", to_string(a.status)}, {"startedAt", format_time(a.started_at)}};
    if (a.finished_at) {
      aj["finishedAt"] = format_time(*a.finished_at);
      aj["durationMs"] = std::chrono::duration_cast<std::chrono::milliseconds>(*a.finished_at - a.started_at).count();
    }
    if (a.error) aj["error"] = *a.error;
    json stages = json::array();
    for (const auto& st : a.stages) {
      json sj = {{"name", st.name}, {"ok", st.ok}};
      if (st.error) sj["error"] = *st.error;
      stages.push_back(std::move(sj));
    }
    aj["stages"] = std::move(stages);
    attempts.push_back(std::move(aj));
  }
  j["attempts"] = std::move(attempts);
  if (r.status == run_status::completed && r.output) j["output"] = *r.output;
  return j;
}

void append_log(run_record& r, log_line line) {
  size_t bytes = line.message.size() + (line.attributes.is_null() ? 0 : line.attributes.dump().size());
  if (r.logs.size() >= max_log_lines_per_run || r.log_bytes + bytes > max_log_bytes_per_run) {
    r.logs_truncated = true;
    return;
  }
  r.log_bytes += bytes;
  r.logs.push_back(std::move(line));
}

json logs_to_api_json(const run_record& r) {
  json data = json::array();
  for (const auto& l : r.logs) {
    json j = {{"time", format_time(l.time)}, {"attempt", l.attempt}, {"level", l.level}, {"message", l.message}};
    if (l.attributes.is_object() && !l.attributes.empty()) j["attributes"] = l.attributes;
    data.push_back(std::move(j));
  }
  json out = {{"data", std::move(data)}};
  if (r.logs_truncated) out["truncated"] = true;
  return out;
}

}  // namespace taskhost
