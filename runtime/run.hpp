// The run model: statuses in Trigger.dev's public vocabulary, attempts, and the JSON shape of a run
// as GET /api/v3/runs/{id} returns it (shared/reference/trigger-rest-api.md §5.3).
#pragma once

#include <chrono>
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

struct attempt_record {
  int number = 1;
  attempt_status status = attempt_status::executing;
  time_point started_at{};
  std::optional<time_point> finished_at;
  std::optional<json> error;  ///< {"message", "name"?, "stackTrace"?}
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
  time_point created_at{};
  time_point updated_at{};
  std::optional<time_point> started_at;
  std::optional<time_point> finished_at;
  std::vector<attempt_record> attempts;
};

/// RFC 3339 UTC with milliseconds: 2025-01-01T00:00:00.000Z
std::string format_time(time_point t);

/// The run as the HTTP API shows it: Trigger.dev's RetrieveRunResponse plus our `attempts`.
/// Absent optional fields are omitted, never null.
json to_api_json(const run_record& r);

}  // namespace taskhost
