// Waits without threads: the journal of a run's waits, child runs and steps, and what completes
// them. Plain code (no actors): the supervisor asks it what a run waits for; the deployment wires
// it to the store, to run creation and to the supervisors' wake-ups.
//
// The journal (run_record::journal) is {"epoch": n, "ops": {key: entry}, "waiting": [keys]}.
// Every ctx operation of a run's code that must not happen twice — a wait, a child run, a batch, a
// token, a step — is an entry. Its key is positional ("e<epoch>#<seq>": the seq-th operation since
// the start of `run`) or the caller's idempotency key ("k:<key>"). When an attempt is replayed
// (after a restart) its code meets its entries in the same order and gets their recorded results
// at once. A failed attempt's retry starts a new epoch: positional entries are forgotten, keyed
// ones are kept (so a retried attempt does not wait again for a keyed wait). An attempt
// interrupted by a crash keeps the epoch: its replay continues where the journal stops.
//
// Entries: {"kind", "done", "result"?, ...}:
//   duration  "until" (epoch µs)                     result {}
//   task      "runId"                                result {"ok", "id", "output" | "error"}
//   batch     "batchId", "runs" (child ids)           result {"id", "runs": [task results]}
//             (the items' results are held in memory until the last child ends, then written
//             once: not the whole entry again at each child's end. After a restart, restore()
//             reads them from the children, which retention keeps while their parent is
//             unfinished. Journals written before that held "results" and "remaining" here.)
//   token     "tokenId", "timeoutAt"?                result {"ok": true, "output"} | {"ok": false, "error"}
//   step      "name"                                 result: the step's value
//   trigger / batch_trigger / create_token / complete_token: done at once, result as returned
//
// Example (what the supervisor does when a run's code suspends):
//
//   auto w = waits.suspend(run_id, keys);   // records WAITING's keys; tells if all are done
//   if (w.all_done) resume(); else arm_timer(w.next_wake);
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/run.hpp"
#include "runtime/run_store.hpp"
#include "runtime/trigger_request.hpp"

namespace taskhost {

/// A refused ctx operation: the run's code gets it as an exception.
class call_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Starts a new journal epoch for `attempt` (a failed attempt is retried): positional entries go.
void new_journal_epoch(run_record& r, int attempt);

/// The kinds of the entries `keys` names ("duration", "task", "batch", "token"), unique, joined
/// with ",", for hooks and logs.
std::string wait_kinds(const json& journal, const json& keys);

constexpr size_t max_batch_items = 1000;

struct wait_env {
  run_store* store = nullptr;
  /// True if a task with this id is deployed.
  std::function<bool(const std::string& task_id)> has_task;
  /// Records a new run (a child) under its own id and hands it to its task once committed.
  /// `done` gets the store's answer (a cached run has another id).
  std::function<void(run_record r, std::function<void(create_result)> done)> create_run;
  /// The run should look at its waits again: something it waits for completed.
  std::function<void(const std::string& run_id, const std::string& task_id)> wake;
  uint64_t max_payload_bytes = 3u << 20;
};

/// A suspended run that the thread completing the last thing it waits for may resume at once,
/// without a hop through its supervisor (see wait_coordinator::park).
struct parked_run {
  enum : int { parked = 0, taken = 1, left = 2 };
  /// parked → taken by the completing thread, or → left by the supervisor (which then resumes or
  /// ends the run itself). Exactly one of them wins.
  std::atomic<int> state{parked};
  /// Called once by the thread that took it: resumes the run (true), or gives it back to its
  /// supervisor (false: no slot now; the supervisor's wake-up follows).
  std::function<bool(parked_run&)> resume;
};

class wait_coordinator {
public:
  explicit wait_coordinator(wait_env env);

  /// A ctx operation of a run's code (from the executor thread running it). Methods:
  ///   "op"        {"seq" | "key", "kind", ...args} → {"key", "done", "result"?}
  ///   "step_done" {"key", "result"}                → {}
  /// Throws call_error with a message for the run's code.
  json call(const std::string& run_id, const std::string& method, const json& req);

  /// The supervisor of a suspended run offers it: when what completes its waits finds it parked
  /// and takes it, it calls `p.resume` instead of waking the supervisor. Replaces an earlier offer.
  void park(const std::string& run_id, std::shared_ptr<parked_run> p);
  /// Withdraws the offer (the run resumed or ended otherwise). No effect if none.
  void unpark(const std::string& run_id);

  /// The store saw `id` turn final: whoever waits for it gets its result, and the results its
  /// own batches under way held in memory are dropped (it will never read them).
  void run_finished(const std::string& id);
  /// Batch entries whose results so far are held in memory (until their last child ends, or
  /// their parent does).
  size_t batches_under_way();

  /// The deployment is going: from now on calls from runs' code are refused and nothing is
  /// created or woken (attempts abandoned at shutdown may still call in).
  void stop() { stopped_ = true; }

  struct wait_state {
    bool known = false;       ///< the run is live
    bool all_done = false;    ///< every entry it waits for is done
    std::optional<time_point> next_wake;  ///< earliest pending duration or token timeout
    std::string kinds;        ///< wait_kinds of what it waits for
    std::string invalid;      ///< suspend: why the keys cannot be waited for (nothing recorded)
  };
  /// The run's code suspended awaiting `keys`: records them (the run is WAITING unless all are
  /// done already) and tells what is left.
  wait_state suspend(const std::string& run_id, const json& keys);
  /// Completes what is due (durations whose time came, tokens past their timeout) and tells what
  /// the run still waits for. When all is done the run is EXECUTING again and `waiting` cleared.
  wait_state check(const std::string& run_id, bool resume_if_done);

  /// After a restart: registers the run's pending entries again (children, tokens) and completes
  /// those that ended while the runtime was down.
  void restore(const std::string& run_id);

  // --- tokens (ctx.create_token, the HTTP API, the CLI) ---
  /// {"timeout"?: "1h" | ISO date, "idempotencyKey"?, "idempotencyKeyTTL"?, "tags"?}: the token
  /// (an earlier one with the same idempotency key: `cached`). Throws call_error for bad options
  /// (400), store_error when it cannot be recorded (503).
  token_record new_token(const json& opts, bool& cached);
  /// new_token as a run's code gets it: token_to_json and "isCached".
  json create_token(const json& opts);
  /// 200 completed, 404 unknown, 409 already completed or timed out (`error` says why). With
  /// `same_data_ok` (the HTTP API: a retry after a lost answer), completing a completed token with
  /// the data it was completed with is 200 again and changes nothing.
  int complete_token(const std::string& id, const json& data, std::string& error, bool same_data_ok = false);
  /// The token (a WAITING one past its timeout is timed out first); nullopt if unknown.
  std::optional<token_record> token(const std::string& id);
  /// Newest first; `more` is set when tokens beyond q.limit match.
  std::vector<token_record> list_tokens(token_list_query q, bool& more);

private:
  struct waiter {
    std::string run_id;
    std::string key;
    int index = -1;  ///< position in a batch
  };
  json op(const std::string& run_id, const json& req);
  void start_child(const std::string& parent_id, const std::string& key, int index, const std::string& batch_id,
                   const std::string& id, trigger_input in, const run_record& parent);
  /// Blocks (the run's executor thread) until what was changed so far is committed, so that the
  /// run's code only gets ids of recorded runs; on failure forgets the entry `key` and throws.
  void wait_committed(const std::string& run_id, const std::string& key);
  void watch(const std::string& target, waiter w);
  /// Who waits for a child run or a token (removed: each is told once).
  std::vector<waiter> take_waiters(const std::string& target);
  void complete_op(const std::string& run_id, const std::string& key, int index, json result);
  /// Item `index` of the batch entry `key` of `run_id` ended with `result`: the results of all
  /// items (in item order) once it was the last, else nothing.
  std::optional<json> batch_item_done(const std::string& run_id, const std::string& key, size_t index, json result);
  json run_result(const std::string& id);
  void finish_token(const std::string& token_id, const json& result);

  wait_env env_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<waiter>> waiters_;  ///< child run or token id → who waits
  std::unordered_map<std::string, std::shared_ptr<parked_run>> parked_;  ///< run id → its supervisor's offer
  /// A batch entry's results so far, until its last child ends (see batch_item_done).
  struct batch_progress {
    std::vector<json> results;  ///< null: not ended yet
    size_t left = 0;
  };
  /// run id + '\n' + entry key → progress; ordered, so that a parent's entries are found together.
  std::map<std::string, batch_progress> batches_;
};

/// A token as a run's code gets it (ctx.create_token): its fields, `output` the raw data.
json token_to_json(const token_record& t);
/// A token as the HTTP API shows it (Trigger.dev's WaitpointTokenItem and retrieve response,
/// §5.9), without `url` (the gateway adds it): `output` the data as a JSON string with
/// `outputType` and `outputIsError`; a timed-out token's output is
/// {"message", "code": "TRIGGER_WAITPOINT_TIMEOUT"} with outputIsError true.
json token_to_api_json(const token_record& t);

}  // namespace taskhost
