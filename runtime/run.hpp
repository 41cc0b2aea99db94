// The run model: statuses in Trigger.dev's public vocabulary, attempts, and the JSON shape of a run
// as GET /api/v3/runs/{id} returns it (shared/reference/trigger-rest-api.md §5.3).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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

/// `interrupted`: the process stopped (crash, kill -9, power loss) while the attempt ran; the run
/// goes on with a new attempt after a restart.
enum class attempt_status { pending, executing, paused, completed, failed, canceled, interrupted };
std::optional<attempt_status> attempt_status_from_string(std::string_view s);
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

/// What few runs carry: kept apart from run_record (allocated only when one is set), so that the
/// many runs held in memory stay small. See run_record::rare().
struct run_rare_fields {
  std::string ttl;  ///< as given ("10m"), for display; "" = none
  /// Its index in a batch made through the API (POST /api/v3/batches and its items): the run's
  /// insert records (batch_id, index) → run in batch_items, in the same transaction, so that an
  /// index has its run exactly when the run exists. -1 = none. Not a runs column.
  int batch_index = -1;
  /// The x-trigger-request-idempotency-key of the request that made the run, and its scope
  /// ("trigger:<task id>"): the run's insert records it in request_keys in the same transaction, so
  /// that a retry of the request after a crash finds the run. "" = none. Not runs columns.
  std::string request_scope;
  std::string request_key;
  /// The occurrence a scheduled run was triggered for: its insert moves the schedule's
  /// last_occurrence in the same transaction. Not kept in the runs table (the payload's timestamp
  /// carries it).
  std::optional<time_point> schedule_occurrence;
};

/// A run as the store holds it. Its size matters: every run that is not final (a million queued
/// ones, say) is one in memory, in a map node the size of this plus about 80 bytes; the store
/// checks (static_assert in run_store.cpp) that the node stays in jemalloc's 768-byte size class.
/// Small fields sit together (no padding between them); fields few runs use are in rare().
struct run_record {
  std::string id;
  std::string task_id;
  run_status status = run_status::queued;
  int max_attempts = 0;               ///< 0 = the task's policy
  json payload;                       ///< what the task receives
  std::string payload_type = "application/json";
  std::optional<json> output;         ///< set when COMPLETED
  std::optional<json> error;          ///< set when the run failed
  std::vector<std::string> tags;      ///< sorted
  json metadata;                      ///< an object, or null when never set
  int64_t max_duration_ms = 0;        ///< trigger's maxDuration; 0 = the task's
  std::string idempotency_key;        ///< as the trigger sent it (SDK: 64 hex chars); "" = none
  std::string idempotency_key_user;   ///< the caller's own key (idempotencyKeyOptions.key), for display
  std::optional<time_point> idempotency_expires_at;
  std::optional<time_point> delay_until;  ///< DELAYED until then
  int64_t ttl_ms = 0;                 ///< not started within this long after it is queued → EXPIRED
  std::optional<time_point> expires_at;   ///< the TTL deadline, once the run is queued
  std::optional<time_point> retry_at;     ///< when the next attempt starts, while waiting to retry
  time_point created_at{};
  time_point updated_at{};
  std::optional<time_point> started_at;
  std::optional<time_point> finished_at;
  std::vector<attempt_record> attempts;
  std::vector<log_line> logs;         ///< capped: see append_log
  size_t log_bytes = 0;
  // --- runs triggered by runs (ctx.trigger, trigger_and_wait, batches) ---
  std::string parent_id;              ///< the run that triggered this one; "" = triggered from outside
  std::string root_id;                ///< the first run of the chain; "" = this is a root
  int depth = 0;                      ///< 0 for a root, parent's depth + 1 for a child
  bool logs_truncated = false;
  std::string batch_id;               ///< the batch this run was triggered in; "" = none
  // --- queues ---
  std::string queue;                  ///< options.queue: a declared queue; "" = the task's queue
  std::string concurrency_key;        ///< options.concurrencyKey; "" = none
  int64_t priority_ms = 0;            ///< options.priority (seconds of queue-time credit), in ms
  // --- scheduled runs ---
  std::string schedule_id;            ///< the schedule that triggered it; "" = none
  /// The run's wait journal (see runtime/waits.hpp): {"epoch": n, "ops": {key: entry}, "waiting":
  /// [keys]}; null until the run first waits, triggers or steps.
  json journal;

  /// The fields few runs have (empty ones when none is set); set_rare() to change them.
  const run_rare_fields& rare() const {
    static const run_rare_fields none;
    return rare_.p ? *rare_.p : none;
  }
  run_rare_fields& set_rare() {
    if (!rare_.p) rare_.p = std::make_unique<run_rare_fields>();
    return *rare_.p;
  }

private:
  /// A pointer that copies what it points to (a run_record copies as a whole).
  struct rare_box {
    std::unique_ptr<run_rare_fields> p;
    rare_box() = default;
    rare_box(const rare_box& o) : p(o.p ? std::make_unique<run_rare_fields>(*o.p) : nullptr) {}
    rare_box(rare_box&&) noexcept = default;
    rare_box& operator=(const rare_box& o) {
      if (this != &o) p = o.p ? std::make_unique<run_rare_fields>(*o.p) : nullptr;
      return *this;
    }
    rare_box& operator=(rare_box&&) noexcept = default;
  };
  rare_box rare_;
};

/// Limits on what a trigger may attach to a run (Trigger.dev's).
constexpr size_t max_tags_per_run = 10;
constexpr size_t max_tag_chars = 128;
constexpr size_t max_metadata_bytes = 256u << 10;
constexpr size_t max_idempotency_key_chars = 2048;

/// True if a run that ended with this status frees its idempotency key for a new run (FAILED,
/// CRASHED, SYSTEM_FAILURE, TIMED_OUT, EXPIRED); COMPLETED and CANCELED keep it.
bool releases_idempotency_key(run_status s);

/// Applies one ctx.metadata operation: {"op": "set"|"append"|"increment"|"remove"|"replace",
/// "key": "...", "value": ...}. Returns "" on success, else why it was refused (the metadata is
/// then unchanged). The result must stay within max_metadata_bytes.
std::string apply_metadata_op(json& metadata, const json& op);

/// The attempts in the store's JSON form (times as epoch microseconds), as text, and back. The
/// text is what nlohmann's dump() of the same document gives (keys in order, errors as dumped
/// with invalid UTF-8 replaced), written without building the document: the store writes it for
/// every row change of a run.
std::string attempts_to_storage(const std::vector<attempt_record>& attempts);
std::vector<attempt_record> attempts_from_storage(const json& j);

int64_t to_ms(time_point t);
time_point from_ms(int64_t ms);
int64_t to_us(time_point t);  ///< epoch microseconds: how the store keeps times
time_point from_us(int64_t us);

/// Limits on what a run keeps of its logs; lines beyond them are dropped (and counted as such).
constexpr size_t max_log_lines_per_run = 1000;
constexpr size_t max_log_bytes_per_run = 1u << 20;

/// Appends a line unless the run's log is full (then marks it truncated).
void append_log(run_record& r, log_line line);

/// {"data": [{"time", "attempt", "level", "message", "attributes"}...], "truncated"?: true}
json logs_to_api_json(const run_record& r);

/// RFC 3339 UTC with milliseconds: 2025-01-01T00:00:00.000Z
std::string format_time(time_point t);
/// format_time of epoch microseconds.
std::string format_time_us(int64_t us);

/// The run as the HTTP API shows it: Trigger.dev's RetrieveRunResponse plus our `attempts`.
/// Absent optional fields are omitted, never null.
json to_api_json(const run_record& r);

/// A run as GET /api/v1/runs lists it (ListRunResponseItem): the common fields, without payload,
/// output, attempts, depth, triggerFunction and relatedRuns, plus `env`.
json to_api_list_item_json(const run_record& r);

}  // namespace taskhost
