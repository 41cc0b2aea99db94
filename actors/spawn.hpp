// Spawn functions of taskhost's actors. Only caf/fwd.hpp here.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <vector>
#include <string>
#include <unordered_map>

#include <caf/fwd.hpp>

#include "runtime/executor.hpp"
#include "runtime/queues.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/retry_policy.hpp"
#include "runtime/run_store.hpp"
#include "runtime/waits.hpp"
#include "actors/supervisor_inbox.hpp"

namespace taskhost::actors {

/// What a task's supervisor works with. OWNERSHIP: store and executor outlive every actor.
struct supervisor_env {
  loaded_task task;
  retry_policy retry;
  run_store* store;
  executor* exec;
  /// The task's max duration per attempt (task definition, else YAML); 0 = none. A trigger's
  /// maxDuration beats it.
  std::chrono::milliseconds max_duration{0};
  uint64_t max_output_bytes = 10u << 20;
  /// The hooks that apply to this task, per th_hook_kind, in calling order: globals then the
  /// task's own (catch_error: the task's own first).
  std::array<std::vector<const loaded_hook*>, TH_HOOK_KIND_COUNT> hooks{};
  /// Keeps the hooks above alive.
  std::shared_ptr<const std::vector<loaded_hook>> all_hooks{};
  /// The middleware of this task, outermost first: the deployment's global list, then the task's.
  std::vector<const loaded_middleware*> middleware{};
  std::shared_ptr<const std::map<std::string, loaded_middleware>> all_middleware{};
  /// Waits, child runs, tokens and steps of the runs' code. OWNERSHIP: outlives every actor.
  wait_coordinator* waits = nullptr;
  /// Suspended executions kept in memory; the longest-waiting beyond it are dropped (and replayed
  /// from the journal when their wait completes).
  size_t resident_waits = 256;
  /// Queues and concurrency: every attempt holds a slot of its run's queue. OWNERSHIP: outlives
  /// every actor.
  queue_book* queues = nullptr;
  /// The task's queue: "task/<id>", or the named queue its definition or the YAML puts it on.
  std::string queue{};
  /// Where starts, grants, wake-ups and the ends of executor jobs reach the supervisor in
  /// batches (see supervisor_inbox.hpp). Shared with whoever produces them.
  std::shared_ptr<supervisor_inbox> inbox = std::make_shared<supervisor_inbox>();
  /// Counts the new runs adopt_new_run took, before any of them can start (or null).
  /// OWNERSHIP: outlives every actor.
  std::atomic<uint64_t>* adopted = nullptr;
};

/// One per task: drives each run of the task attempt by attempt, retrying per its policy.
caf::actor spawn_task_supervisor(caf::actor_system& sys, std::shared_ptr<supervisor_env> env);

/// Starts a run that was just committed on the caller's thread, without a wake-up of its
/// supervisor `sup` (which hears of it quietly, with the job's first event): it takes a slot of
/// the run's queue, marks it DEQUEUED and posts its run stage. Only for a task with nothing to
/// run before its code (no middleware, no init / on_start / on_start_attempt hook, no max
/// duration) and a run that is QUEUED, without TTL, delay or max duration; `payload_json` is its
/// payload as committed. True: started, or queued for a slot (its grant goes to the supervisor),
/// or ended meanwhile. False: nothing was done; send the supervisor `start`.
bool adopt_new_run(const std::shared_ptr<supervisor_env>& env, const caf::actor& sup, const std::string& run_id,
                   std::string payload_json);

/// The run store's writer (detached: its own thread): commits the store in groups and purges
/// final runs older than `retention_days`. OWNERSHIP: the store outlives the actor.
caf::actor spawn_store_writer(caf::actor_system& sys, run_store* store, double retention_days);

/// Maps task ids to supervisors and forwards each new run to its task's supervisor.
caf::actor spawn_router(caf::actor_system& sys, std::unordered_map<std::string, caf::actor> supervisors);

}  // namespace taskhost::actors
