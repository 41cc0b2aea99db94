// The run model: statuses in Trigger.dev's public vocabulary, attempts, and the JSON shape of a run
// as GET /api/v3/runs/{id} returns it (shared/reference/trigger-rest-api.md §5.3).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace taskhost {

using json = nlohmann::json;
using clock_type = std::chrono::system_clock;
using time_point = clock_type::time_point;

enum class run_status {
  queued, delayed, dequeued, executing, waiting,                               // not final
  completed, canceled, failed, crashed, system_failure, expired, timed_out,    // final
};

std::string_view to_string(run_status s);
std::optional<run_status> run_status_from_string(std::string_view s);
bool is_final(run_status s);

enum class attempt_status { pending, executing, paused, completed, failed, canceled };
std::string_view to_string(attempt_status s);

/// One stage of an attempt that ran: a kind of hook, or "run".
struct stage_record {
  std::string name;
  bool ok = true;
  std::optional<json> error;
};

struct attempt_record {
  int number = 1;
  attempt_status status = attempt_status::executing;
  time_point started_at{};
  std::optional<time_point> finished_at;
  std::optional<json> error;  ///< {"message", "name"?, "stackTrace"?, "stage"?}
  std::vector<stage_record> stages;  ///< in the order they ran
};

/// One line a task logged through ctx.logger, kept with its run.
struct log_line {
  time_point time{};
  int attempt = 0;
  std::string level;     ///< debug | info | warn | error
  std::string message;
  json attributes;       ///< the task's own attributes (run/task/attempt tags removed)
};

struct run_record {
  std::string id;
  std::string task_id;
  run_status status = run_status::queued;
  json payload;                       ///< what the task receives
  std::string payload_type = "application/json";
  std::optional<json> output;         ///< set when COMPLETED
  std::optional<json> error;          ///< set when the run failed
  std::vector<std::string> tags;      ///< sorted
  int max_attempts = 0;               ///< 0 = the task's policy
  int64_t max_duration_ms = 0;        ///< trigger's maxDuration; 0 = the task's
  time_point created_at{};
  time_point updated_at{};
  std::optional<time_point> started_at;
  std::optional<time_point> finished_at;
  std::vector<attempt_record> attempts;
  std::vector<log_line> logs;         ///< capped: see append_log
  size_t log_bytes = 0;
  bool logs_truncated = false;
};

/// Limits on what a run keeps of its logs; lines beyond them are dropped (and counted as such).
constexpr size_t max_log_lines_per_run = 1000;
constexpr size_t max_log_bytes_per_run = 1u << 20;

/// Appends a line unless the run's log is full (then marks it truncated).
void append_log(run_record& r, log_line line);

/// {"data": [{"time", "attempt", "level", "message", "attributes"}...], "truncated"?: true}
json logs_to_api_json(const run_record& r);

/// RFC 3339 UTC with milliseconds: 2025-01-01T00:00:00.000Z
std::string format_time(time_point t);

/// The run as the HTTP API shows it: Trigger.dev's RetrieveRunResponse plus our `attempts`.
/// Absent optional fields are omitted, never null.
json to_api_json(const run_record& r);

}  // namespace taskhost
