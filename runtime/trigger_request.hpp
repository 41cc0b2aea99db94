// Parses the body of POST /api/v1/tasks/{taskId}/trigger into what the runtime needs.
//
// The payload may be a plain JSON value (curl users) or the @trigger.dev/sdk encoding: a string
// plus options.payloadType — application/super+json (the task gets the packet's `json` member),
// application/json (the string is JSON), text/plain (the task gets the string). See
// shared/reference/trigger-rest-api.md §4 and §5.1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace taskhost {

struct trigger_input {
  std::string task_id;
  nlohmann::json payload;                        ///< what the task receives
  std::string payload_type = "application/json"; ///< as sent
  int max_attempts = 0;                          ///< 0 = the task's policy
  int64_t max_duration_ms = 0;                   ///< 0 = the task's (options.maxDuration, seconds)
  std::vector<std::string> tags;                 ///< sorted, unique
};

/// A refused trigger: the HTTP status to answer and a message naming the field.
struct request_error {
  int status = 400;
  std::string message;
};

struct trigger_parse_result {
  std::optional<trigger_input> input;
  request_error error;  ///< meaningful when !input
};

trigger_parse_result parse_trigger_body(std::string_view task_id, std::string_view body, uint64_t max_payload_bytes);

}  // namespace taskhost
