#include "runtime/run.hpp"

#include <array>
#include <cstdio>
#include <ctime>

namespace taskhost {
namespace {
constexpr std::array<std::string_view, 12> run_names = {
    "QUEUED", "DELAYED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED",
    "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"};
constexpr std::array<std::string_view, 6> attempt_names = {
    "PENDING", "EXECUTING", "PAUSED", "COMPLETED", "FAILED", "CANCELED"};
}  // namespace

std::string_view to_string(run_status s) { return run_names[static_cast<size_t>(s)]; }

std::optional<run_status> run_status_from_string(std::string_view s) {
  for (size_t i = 0; i < run_names.size(); ++i)
    if (run_names[i] == s) return static_cast<run_status>(i);
  return std::nullopt;
}

bool is_final(run_status s) { return s >= run_status::completed; }

std::string_view to_string(attempt_status s) { return attempt_names[static_cast<size_t>(s)]; }

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

json to_api_json(const run_record& r) {
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
      {"depth", 0},
      {"triggerFunction", "trigger"},
      {"relatedRuns", json::object()},
      {"payload", r.payload},
      {"attemptCount", r.attempts.size()},
  };
  int64_t duration_ms = 0;
  json attempts = json::array();
  for (const auto& a : r.attempts) {
    json aj = {{"number", a.number}, {"status", to_string(a.status)}, {"startedAt", format_time(a.started_at)}};
    if (a.finished_at) {
      aj["finishedAt"] = format_time(*a.finished_at);
      auto d = std::chrono::duration_cast<std::chrono::milliseconds>(*a.finished_at - a.started_at).count();
      aj["durationMs"] = d;
      duration_ms += d;
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
  j["durationMs"] = duration_ms;
  j["attempts"] = std::move(attempts);
  if (r.started_at) j["startedAt"] = format_time(*r.started_at);
  if (r.finished_at) j["finishedAt"] = format_time(*r.finished_at);
  if (s == run_status::completed && r.output) j["output"] = *r.output;
  if (r.error) j["error"] = *r.error;
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
