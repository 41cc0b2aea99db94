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
  /// Counts those of them whose code adopt_new_run gave to the writer's own thread (or null).
  std::atomic<uint64_t>* on_writer = nullptr;
  /// A run of this task has suspended (waited): its new runs no longer run on the writer's thread.
  std::shared_ptr<std::atomic<bool>> runs_wait = std::make_shared<std::atomic<bool>>(false);
};

/// One per task: drives each run of the task attempt by attempt, retrying per its policy.
caf::actor spawn_task_supervisor(caf::actor_system& sys, std::shared_ptr<supervisor_env> env);

/// Starts a run that was just committed on the caller's thread, without a wake-up of its
/// supervisor `sup` (which hears of it quietly, with the job's first event): it takes a slot of
/// the run's queue, marks it DEQUEUED and posts its run stage (or, on the main store writer's
/// thread, leaves it in after_commit_slot for that thread). Only for a task with nothing to
/// run before its code (no middleware, no init / on_start / on_start_attempt hook, no max
/// duration) and a run that is QUEUED, without TTL, delay or max duration; `payload_json` is its
/// payload as committed. True: started, or queued for a slot (its grant goes to the supervisor),
/// or ended meanwhile. False: nothing was done; send the supervisor `start`.
bool adopt_new_run(const std::shared_ptr<supervisor_env>& env, const caf::actor& sup, const std::string& run_id,
                   std::string payload_json);

/// The run store's writers (store_writer.cpp): two detached actors, each its own thread, that
/// commit the store in groups, one commit at a time. The main one also purges final runs older
/// than `retention_days`, and may lend its thread to a run it has just committed
/// (after_commit_slot); the standby one commits meanwhile. OWNERSHIP: the store outlives them.
class store_writers;
std::shared_ptr<store_writers> spawn_store_writers(caf::actor_system& sys, run_store* store, double retention_days);

/// The store's notify: wakes the writer that is free to commit. Any thread.
void wake_store_writer(store_writers& w);

/// At shutdown, once the executor has stopped: a last commit, the writers stop, the store's
/// notify is cleared, and what changed since is committed on the caller's thread. A main writer
/// still running a run's code (an attempt abandoned after the grace period) is not waited for.
/// False if the last commit failed.
bool stop_store_writers(caf::actor_system& sys, store_writers& w);

/// On the main writer's thread during a commit's callbacks: where the caller may put one job
/// (the code of a run just committed, when the runtime is not busy), which that thread calls as
/// soon as the commit's callbacks have returned: with true when it lends itself to the job (the
/// standby writer committing meanwhile), with false when a writer was woken since the commit
/// began, i.e. more waits to be committed (the job should go to the executor then). Null on
/// every other thread, and once a job was put there in this commit: post it as usual. A change
/// the caller makes meanwhile should not wake a writer (run_store::update_live_quietly), or the
/// job never runs there.
std::function<void(bool)>* after_commit_slot();

/// Maps task ids to supervisors and forwards each new run to its task's supervisor.
caf::actor spawn_router(caf::actor_system& sys, std::unordered_map<std::string, caf::actor> supervisors);

}  // namespace taskhost::actors
