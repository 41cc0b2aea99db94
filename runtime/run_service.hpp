// What the HTTP gateway (and later the CLI's embedded mode and the C++ client) needs from a running
// deployment. Implemented in actors/ by the deployment runtime; the gateway depends only on this.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "runtime/batch_request.hpp"
#include "runtime/run.hpp"
#include "runtime/run_store.hpp"
#include "runtime/trigger_request.hpp"

namespace taskhost {

struct trigger_outcome {
  int status = 200;       ///< HTTP status: 200, or 404 / 503 / ...
  std::string run_id;     ///< set when status == 200
  std::string error;      ///< set otherwise
  bool cached = false;    ///< an earlier run with the same idempotency key (run_id is that run)
};

/// An answer of the API's other resources (tokens, batches): status and JSON body ({"error"} when
/// status is not 200).
struct api_answer {
  int status = 200;
  nlohmann::json body;
};

class run_service {
public:
  virtual ~run_service() = default;
  /// Records a new run and hands it to its task's supervisor. `done` is called exactly once, on any
  /// thread, after the run is recorded (or with the reason it was not), before the run starts. It
  /// should return quickly (it may run on the store's writer thread); what it throws is logged.
  virtual void trigger(trigger_input in, std::function<void(trigger_outcome)> done) = 0;
  virtual std::optional<run_record> get_run(const std::string& id) const = 0;
  /// Cancels a run: one not started yet ends CANCELED at once; an executing one gets its
  /// cancellation signal and ends CANCELED; a finished one is left as it is. `done` is called
  /// once, after the run's new state is recorded: status 200, or 404 for an unknown run.
  virtual void cancel(const std::string& id, std::function<void(trigger_outcome)> done) = 0;
  /// Runs newest first, filtered, one page at a time.
  virtual run_list_page list_runs(const run_list_query& q) const = 0;
  /// Moves a DELAYED run to a new time. `done` gets 200 once the change is committed, 400 if the
  /// run is not DELAYED, 404 if unknown.
  virtual void reschedule(const std::string& id, time_point delay_until, std::function<void(trigger_outcome)> done) = 0;

  /// Wait tokens, in the HTTP API's shapes (token_to_api_json; the gateway adds each `url`):
  /// create ({"timeout"?, "idempotencyKey"?, "idempotencyKeyTTL"?, "tags"?} → the token and
  /// "isCached"), complete ({"success": true}; the same data again is 200 too; 404 unknown; 409
  /// timed out or completed with other data), retrieve, list ({"data", "pagination"}).
  virtual api_answer create_token(const nlohmann::json& options) = 0;
  virtual api_answer complete_token(const std::string& id, const nlohmann::json& data) = 0;
  virtual api_answer get_token(const std::string& id) = 0;
  virtual api_answer list_tokens(const token_list_query& q) = 0;
  /// A batch of runs triggered together (through the API, or by a task's ctx.batch_trigger):
  /// Trigger.dev's RetrieveBatchV2Response {"id", "status", "runCount", "runs": [ids],
  /// "processing": {...}, ...}; 404 unknown.
  virtual api_answer get_batch(const std::string& id) const = 0;
  /// The two phases of an API batch (runtime/batch_book.hpp). Create: 200 {"id", "runCount",
  /// "isCached"} once recorded (an earlier batch with the same idempotency key: that one, cached);
  /// 404 for a task of taskIdentifiers that is not deployed; 503 if the store cannot record it.
  virtual api_answer create_batch(batch_create_input in) = 0;
  /// Items: `done` is called once, on any thread, after the runs of the new indexes are recorded:
  /// 200 {"id", "itemsAccepted", "itemsDeduplicated", "sealed", "enqueuedCount"?, "expectedCount"?};
  /// 404 unknown batch; 400 / 404 for a bad item (naming its index), and then no item is triggered.
  virtual void add_batch_items(const std::string& id, std::vector<batch_item> items, std::function<void(api_answer)> done) = 0;
  /// What the request with this x-trigger-request-idempotency-key made, while the key is kept
  /// (scope "trigger:<task id>" or "batch"); nullopt if nothing.
  virtual std::optional<request_key_record> find_request_key(const std::string& scope, const std::string& key) const = 0;

  /// Queues (Trigger.dev's shapes): a page of them ({"data", "pagination": {"currentPage",
  /// "totalPages", "count"}}); one by id ("task/<task id>" or a queue's name; 404 unknown);
  /// pause / resume; a concurrency override (nullopt: back to the declared limit). Changes are
  /// recorded before the answer (503 if they cannot be) and survive restarts.
  virtual api_answer list_queues(size_t page, size_t per_page) = 0;
  virtual api_answer get_queue(const std::string& id) = 0;
  virtual api_answer pause_queue(const std::string& id, bool pause) = 0;
  virtual api_answer override_queue(const std::string& id, std::optional<int> limit) = 0;

  /// Cron schedules (Trigger.dev's ScheduleObject; runtime/scheduler.hpp): a page, oldest first;
  /// one (404 unknown); create ({task, cron, deduplicationKey?, externalId?, timezone?}; the
  /// same deduplicationKey updates that schedule); update (a full replacement); delete ({"id"});
  /// activate / deactivate. 400 {"error"} for a bad body, a task that is not a scheduled task, an
  /// invalid cron or time zone; 400 for changing or deleting a DECLARATIVE schedule; 503 when
  /// the store cannot record the change. Changes are recorded before the answer.
  virtual api_answer list_schedules(size_t page, size_t per_page) = 0;
  virtual api_answer get_schedule(const std::string& id) = 0;
  virtual api_answer create_schedule(const nlohmann::json& body) = 0;
  virtual api_answer update_schedule(const std::string& id, const nlohmann::json& body) = 0;
  virtual api_answer delete_schedule(const std::string& id) = 0;
  virtual api_answer activate_schedule(const std::string& id, bool active) = 0;

  /// idempotencyKeys.reset: the runs of `task_id` holding `key` let go of it, so that the next
  /// trigger with it makes a new run. {"id": key}; 404 if no run of the task has it; 503 when the
  /// change cannot be recorded.
  virtual api_answer reset_idempotency_key(const std::string& task_id, const std::string& key) {
    (void)task_id, (void)key;
    return {501, {{"error", "idempotency keys cannot be reset here"}}};
  }

  /// Packets, the payloads the SDK uploads before a trigger names them (§4; the gateway signs and
  /// checks their upload URLs). save_packet records one at once (200; 503 when the store cannot);
  /// get_packet reads an unexpired one; packet_used says a recorded run took its payload from it
  /// (it goes soon after). The defaults keep no packets.
  virtual api_answer save_packet(const std::string& storage_path, const std::string& content_type, std::string data) {
    (void)storage_path, (void)content_type, (void)data;
    return {501, {{"error", "packets are not kept here"}}};
  }
  virtual std::optional<stored_packet> get_packet(const std::string& storage_path) {
    (void)storage_path;
    return std::nullopt;
  }
  virtual void packet_used(const std::string& storage_path) { (void)storage_path; }
};

}  // namespace taskhost
