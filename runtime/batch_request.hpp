// Parses the two requests of Trigger.dev's two-phase batch API (trigger-rest-api.md §5.2):
//
//   POST /api/v3/batches             {"runCount": 3, "taskIdentifiers": ["a", "b"], "idempotencyKey"?: "..."}
//   POST /api/v3/batches/{id}/items  NDJSON, one item a line:
//                                    {"index": 0, "task": "a", "payload": "...", "options": {...}}
//
// An item is a trigger plus its index: its payload and options are read by parse_trigger_json,
// the code that reads a single trigger's body, so both accept exactly the same options.
//
// Example:
//
//   auto c = taskhost::parse_batch_create_body(req.body);
//   if (!c.input) return respond(error_response(c.error.status, c.error.message));
//   auto items = taskhost::parse_batch_items(req.body, max_payload_bytes);
//   if (!items.ok()) ...;  // items.error names the line (and the index, once it is known)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/trigger_request.hpp"

namespace taskhost {

/// Items a batch holds at most (Trigger.dev's limit; ctx.batch_trigger's too).
constexpr int64_t max_batch_run_count = 1000;

/// Phase 1: the batch to record.
struct batch_create_input {
  int64_t run_count = 0;                ///< 1..max_batch_run_count
  std::vector<std::string> task_ids;    ///< taskIdentifiers, sorted and unique; empty = not given (any task)
  std::string idempotency_key;          ///< "" = none
  std::string idempotency_key_user;     ///< idempotencyKeyOptions.key, for display
  int64_t idempotency_key_ttl_ms = 30LL * 86400 * 1000;
  /// The request's x-trigger-request-idempotency-key, set by the gateway (never from the body).
  std::string request_key;
};

struct batch_create_parse_result {
  std::optional<batch_create_input> input;
  request_error error;  ///< meaningful when !input
};

/// The body of POST /api/v3/batches. 400 naming the field for anything wrong (runCount missing,
/// not a whole number, under 1 or over max_batch_run_count; taskIdentifiers not a non-empty list
/// of names; an idempotencyKey that is not a string of 1..2048 characters; parentRunId or
/// resumeParentOnCompletion, which this taskhost does not support).
batch_create_parse_result parse_batch_create_body(std::string_view body);

/// Phase 2: one item of the stream.
struct batch_item {
  int64_t index = 0;   ///< 0-based, as sent (the batch checks it against its runCount)
  size_t line = 0;     ///< its line in the stream, from 1 (for error messages)
  trigger_input in;    ///< the trigger it stands for (task_id = the item's "task")
};

struct batch_items_parse_result {
  std::vector<batch_item> items;  ///< in stream order
  request_error error;            ///< meaningful when !ok()
  bool ok() const { return error.message.empty(); }
};

/// Reads an NDJSON item stream ("\n" or "\r\n" line ends; blank lines skipped). The first bad
/// line fails it all with 400: not JSON, not an object, no whole-number index ≥ 0, no task
/// (messages name the line); a payload over `max_payload_bytes` or a bad option (messages name
/// the item's index and line).
batch_items_parse_result parse_batch_items(std::string_view body, uint64_t max_payload_bytes);

}  // namespace taskhost
