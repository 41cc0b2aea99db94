// Parses the body of POST /api/v1/tasks/{taskId}/trigger into what the runtime needs.
//
// The payload may be a plain JSON value (curl users) or the @trigger.dev/sdk encoding: a string
// plus options.payloadType — application/super+json (the task gets the packet's `json` member),
// application/json (the string is JSON), text/plain (the task gets the string). See
// shared/reference/trigger-rest-api.md §4 and §5.1.
#pragma once

#include <chrono>
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
  std::vector<std::string> tags;                 ///< sorted, unique (≤ 10, each ≤ 128 chars)
  /// DELAYED until then (options.delay: a duration from now, or an ISO date; a past date = none).
  std::optional<std::chrono::system_clock::time_point> delay_until;
  std::string ttl;                               ///< options.ttl as given, e.g. "10m"
  int64_t ttl_ms = 0;                            ///< 0 = no TTL
  /// options.idempotencyKey (≤ 2048 chars): a second trigger of the same task with the same key
  /// returns the first run, until that run fails or the key's TTL passes.
  std::string idempotency_key;
  std::string idempotency_key_user;              ///< options.idempotencyKeyOptions.key, for display
  int64_t idempotency_key_ttl_ms = 30LL * 86400 * 1000;  ///< options.idempotencyKeyTTL; default 30 days
  nlohmann::json metadata;                       ///< options.metadata: an object ≤ 256 KB, or null
  /// options.queue: a declared queue ("" = the task's); the runtime answers 400 for an unknown one.
  std::string queue;
  /// options.concurrencyKey: the run takes a slot of this key's copy of the queue.
  std::string concurrency_key;
  int64_t priority_ms = 0;                       ///< options.priority: seconds of queue-time credit, in ms
  /// The request's x-trigger-request-idempotency-key and its scope, set by the gateway (never
  /// from the body): recorded with the run (run_record::request_key). "" = none.
  std::string request_scope;
  std::string request_key;
  /// Set by the scheduler only (never from a request): the schedule and occurrence of the run.
  std::string schedule_id;
  std::optional<std::chrono::system_clock::time_point> schedule_occurrence;
};

/// options.concurrencyKey is at most this long.
constexpr size_t max_concurrency_key_chars = 1024;

/// A refused trigger: the HTTP status to answer and a message naming the field.
struct request_error {
  int status = 400;
  std::string message;
};

struct trigger_parse_result {
  std::optional<trigger_input> input;
  request_error error;  ///< meaningful when !input
};

struct run_record;

/// The run a trigger creates: QUEUED, or DELAYED until its delay; TTL and idempotency key applied.
run_record new_run_record(trigger_input in, std::string id, std::chrono::system_clock::time_point now);

trigger_parse_result parse_trigger_body(std::string_view task_id, std::string_view body, uint64_t max_payload_bytes);

/// The same for a body already parsed into a JSON object ({"payload"?, "options"?}; other members
/// are ignored): a line of a batch's NDJSON item stream is parsed once and read by this.
trigger_parse_result parse_trigger_json(std::string_view task_id, const nlohmann::json& body, uint64_t max_payload_bytes);

/// An ISO 8601 / RFC 3339 date-time ("2026-01-02T03:04:05.678Z", "...+02:00"); nullopt if not one.
std::optional<std::chrono::system_clock::time_point> parse_iso_time(std::string_view s);

/// A delay as Trigger.dev takes it: a duration ("30s", "1h30m") from now, or an ISO date. A date
/// in the past gives `now` (no delay). nullopt (and `error` set) if it is neither.
std::optional<std::chrono::system_clock::time_point> parse_delay(const nlohmann::json& v, std::string& error);

}  // namespace taskhost
