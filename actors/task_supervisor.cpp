// The task supervisor: one actor per task. It drives each attempt of each run through its stages,
// one executor job and one message per stage:
//
//   init → on_start (first attempt) → on_start_attempt → run
//        → ok:   on_success → on_complete → cleanup
//        → fail: catch_error → retry?  yes: cleanup, then a timer starts the next attempt
//                                      no:  on_failure → on_complete → cleanup
//
// A stage without hooks is skipped without a message; a run stage that succeeds with nothing after
// it (no middleware, no on_success / on_complete / cleanup hook, no max duration) is recorded
// COMPLETED by its executor thread, and the supervisor then only frees its slot. Cancellation and
// max duration end the run at once (CANCELED / TIMED_OUT) and run on_cancel / on_failure /
// on_complete for it. User code never runs on this actor's thread.
//
// Two ways in skip a wake-up of the supervisor, which learns of them afterwards from an event
// that wakes nobody (the run's next event brings it along): a new run of a task with nothing
// before its code, started by the thread that committed it (adopt_new_run: supervisor_event::
// adopted), and a suspended run resumed by the thread that completed its last wait (parked_run:
// supervisor_event::resumed).
#include <caf/all.hpp>

#include <atomic>
#include <deque>
#include <unordered_set>
#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/attempt_runner.hpp"
#include "runtime/ids.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

/// One attempt on its way through its stages.
constexpr int decide_marker = -2;
constexpr int enter_stage(size_t i) { return -100 - static_cast<int>(i); }  // into middleware i
constexpr int exit_stage(size_t i) { return -1000 - static_cast<int>(i); }  // out of middleware i
constexpr bool is_enter(int stage) { return stage <= -100 && stage > -1000; }
constexpr bool is_exit(int stage) { return stage <= -1000; }
constexpr size_t mw_index(int stage) { return static_cast<size_t>(is_exit(stage) ? -1000 - stage : -100 - stage); }

struct attempt_flow {
  attempt_input in;                  // what every stage's plugin code sees
  std::shared_ptr<middleware_chain> chain;  // null without middleware
  size_t entered = 0;                // middleware waiting inside next()
  bool unwound = false;              // their exits are queued
  std::deque<int> pending;           // stages still to run (th_hook_kind or run_stage)
  bool started = false;              // `started` was announced (first stage began)
  bool ok = false;                   // outcome of the attempt
  json value;                        // output, or error
  bool retryable = true;
  std::optional<milliseconds> retry_in;
  std::optional<config::retry_config> retry_override;  // from catch_error
  bool skip_retry = false;
  std::shared_ptr<task_execution> exec;  // the run stage's execution (a coroutine frame between waits)
  bool suspended = false;            // its code awaits journal entries
  bool busy = false;                 // a stage's job is on the executor (one at a time)
  std::string wait_kinds;            // what it waits for, for hooks and logs
  int64_t limit_ms = 0;              // max duration of the attempt (time spent waiting excluded)
  bool has_deadline = false;         // it has one (the task's or the trigger's maxDuration)
  time_point executing_since{};      // when it last began or resumed executing
  milliseconds executed{0};          // executing time before that
  bool has_slot = false;             // holds a slot of its queue (every flow that is not suspended)
  bool awaiting_slot = false;        // suspended, its waits done: asked its queue for a slot to resume
  queue_request slot;                // what it asks its queue for when it resumes
  std::shared_ptr<parked_run> parked;  // suspended: its offer to whoever completes its waits
};

// Keyed by run id, hashed by the time in it (run_id_hash): many runs waiting stay cheap to reach.
struct supervisor_state {
  std::unordered_map<std::string, attempt_flow, run_id_hash> flows;  // run id → its current attempt
  std::unordered_map<std::string, std::shared_ptr<run_locals>, run_id_hash> locals;  // run id → its locals, until it ends
  std::unordered_map<std::string, time_point, run_id_hash> armed;  // run id → when its next wake timer fires
  std::deque<std::string> resident;  // suspended runs whose execution is in memory, oldest first
  std::unordered_set<std::string, run_id_hash> ttl_armed;  // queued runs whose TTL timer is set
};

std::string_view level_name(log::level l) {
  switch (l) {
    case log::level::trace:
    case log::level::debug: return "debug";
    case log::level::info: return "info";
    case log::level::warn: return "warn";
    case log::level::error: return "error";
  }
  return "info";
}

std::string stage_name(int stage, const supervisor_env& env) {
  if (stage == run_stage) return "run";
  if (is_enter(stage) || is_exit(stage)) return "middleware " + env.middleware[mw_index(stage)]->name;
  return std::string(hook_kind_name(stage));
}

/// Ends the run's open attempt and the run itself with a final status (CANCELED, TIMED_OUT).
void finish_run(run_record& r, run_status status, attempt_status attempt_end, const std::optional<json>& error) {
  auto now = clock_type::now();
  if (!r.attempts.empty() && !r.attempts.back().finished_at) {
    r.attempts.back().finished_at = now;
    r.attempts.back().status = attempt_end;
    if (error) r.attempts.back().error = error;
  }
  r.status = status;
  r.error = error;
  r.finished_at = now;
}

/// The max duration of the run's attempts: the trigger's maxDuration, else the task's; 0 = none.
milliseconds attempt_limit(const supervisor_env& env, const run_record& r) {
  return r.max_duration_ms > 0 ? milliseconds(r.max_duration_ms) : env.max_duration;
}

/// On the executor thread, as the first stage of an attempt begins: records the attempt (the run
/// is EXECUTING from now) straight into the store, and only when the attempt has a deadline asks
/// the supervisor to arm it — one message fewer per run than announcing every start. False if
/// the run had ended meanwhile (canceled): then nothing changes.
bool begin_attempt(const supervisor_env& env, const attempt_input& in, const caf::actor& me) {
  const auto at = clock_type::now();
  milliseconds limit{0};
  bool live = false;
  env.store->update_live(in.run_id, [&](run_record& r) {  // false: cancelled or expired meanwhile
    live = true;
    r.status = run_status::executing;
    if (!r.started_at) r.started_at = at;
    // A replay goes on with the attempt that was running (or waiting) before the restart.
    if (!(in.replay && !r.attempts.empty() && r.attempts.back().number == in.attempt && !r.attempts.back().finished_at))
      r.attempts.push_back({in.attempt, attempt_status::executing, at, std::nullopt, std::nullopt, {}});
    limit = attempt_limit(env, r);
  });
  if (live && limit.count() > 0) {
    supervisor_event ev{supervisor_event::started, in.run_id, in.attempt};
    ev.started_us = to_us(at);
    ev.limit_ms = limit.count();
    tell(me, *env.inbox, std::move(ev));
  }
  return live;
}

/// A run stage that succeeded with nothing after it (no middleware to unwind, no on_success,
/// on_complete or cleanup hook): its stage, the attempt's end and the run's COMPLETED state go into
/// the store in one change, on the executor thread that ran it. The run's end thus reaches those
/// who wait for it (a parent in trigger_and_wait) without a trip through the supervisor, which
/// hears of it afterwards (supervisor_event::completed) to free the run's slot. False if the run
/// had ended meanwhile (canceled): then nothing changes.
///
/// A cancel is decided in the store, under the same lock as this: whichever comes first wins, and
/// the other changes nothing. Not for an attempt with a max duration (attempt_flow::has_deadline):
/// its supervisor may be timing it out at this moment, and queues the TIMED_OUT hooks before it
/// records TIMED_OUT; such a run's end goes through the supervisor.
bool record_completed(const supervisor_env& env, const attempt_input& in, const std::string& body) {
  auto value = json::parse(body, nullptr, false);
  if (value.is_discarded()) value = json{{"message", body}};
  const auto now = clock_type::now();
  return env.store->update_live(in.run_id, [&](run_record& r) {
    if (!r.attempts.empty() && r.attempts.back().number == in.attempt) {
      auto& a = r.attempts.back();
      a.stages.push_back({stage_name(run_stage, env), true, std::nullopt});
      a.finished_at = now;
      a.status = attempt_status::completed;
    }
    r.status = run_status::completed;
    r.output = std::move(value);
    r.error.reset();
    r.finished_at = now;
  });
}

/// A stage's end, for its supervisor's inbox.
supervisor_event ended(const attempt_input& in, int stage, bool ok, std::string body, bool retryable) {
  supervisor_event ev{supervisor_event::done, in.run_id, in.attempt, stage, ok, retryable};
  ev.body = std::move(body);
  return ev;
}

/// True if the journal holds positional entries of its current epoch (code to replay).
bool has_epoch_entries(const json& journal) {
  if (!journal.is_object()) return false;
  const std::string prefix = "e" + std::to_string(journal.value("epoch", 0)) + "#";
  auto ops = journal.find("ops");
  if (ops == journal.end() || !ops->is_object()) return false;
  for (const auto& [key, e] : ops->items())
    if (key.rfind(prefix, 0) == 0) return true;
  return false;
}

/// Reads catch_error's "retry" answer on top of the task's policy.
config::retry_config retry_from_answer(config::retry_config base, const json& o) {
  if (auto v = o.find("maxAttempts"); v != o.end() && v->is_number_integer()) base.max_attempts = std::clamp(v->get<int>(), 1, 250);
  if (auto v = o.find("factor"); v != o.end() && v->is_number() && v->get<double>() >= 1) base.factor = v->get<double>();
  if (auto v = o.find("minTimeoutMs"); v != o.end() && v->is_number_integer() && v->get<int64_t>() >= 0) base.min_timeout_ms = v->get<int64_t>();
  if (auto v = o.find("maxTimeoutMs"); v != o.end() && v->is_number_integer() && v->get<int64_t>() >= 0) base.max_timeout_ms = v->get<int64_t>();
  if (auto v = o.find("randomize"); v != o.end() && v->is_boolean()) base.randomize = v->get<bool>();
  base.max_timeout_ms = std::max(base.max_timeout_ms, base.min_timeout_ms);
  return base;
}

// What the run asks its queue for: a slot of its queue (options.queue if that is declared, else
// the task's) and concurrency key, in order of `base` − priority.
queue_request slot_request(const supervisor_env& env, const run_record& r, time_point base) {
  queue_request q;
  q.run_id = r.id;
  q.task_id = env.task.id;
  q.queue = env.queue;
  if (!r.queue.empty()) {
    if (env.queues->exists(r.queue)) q.queue = r.queue;
    else log::warn("the run's queue is not declared any more; it uses its task's queue", {{"run", r.id}, {"queue", r.queue}});
  }
  q.key = r.concurrency_key;
  q.score_us = to_us(base) - r.priority_ms * 1000;
  return q;
}

/// Connects an attempt's input (in.run_id set) to the run: its log, metadata and ctx calls.
void wire_input(const std::shared_ptr<supervisor_env>& env, attempt_input& in) {
  const std::string& run_id = in.run_id;
  in.max_output_bytes = env->max_output_bytes;
  in.on_log = [store = env->store, run_id, attempt = in.attempt](log::level l, std::string_view msg, const json& attrs) {
    json a = attrs;
    for (auto k : {"run", "task", "attempt"}) a.erase(k);
    store->update(run_id, [&](run_record& r) {
      append_log(r, {clock_type::now(), attempt, std::string(level_name(l)), std::string(msg), std::move(a)});
    });
  };
  in.on_metadata = [store = env->store, run_id](const json& op) {
    std::string why = "the run has already finished";
    store->update_live(run_id, [&](run_record& r) { why = apply_metadata_op(r.metadata, op); });
    return why;
  };
  in.get_metadata = [store = env->store, run_id] {
    json m = json::object();
    store->read(run_id, [&](const run_record& r) {
      if (r.metadata.is_object()) m = r.metadata;
    });
    return m;
  };
  if (env->waits)
    in.on_call = [waits = env->waits, run_id](const std::string& method, const json& req) { return waits->call(run_id, method, req); };
}

/// True if the task has nothing to run before a new attempt's code: no middleware, no init,
/// on_start or on_start_attempt hook, no max duration of its own.
bool starts_with_run(const supervisor_env& env) {
  return env.middleware.empty() && env.hooks[TH_HOOK_INIT].empty() && env.hooks[TH_HOOK_ON_START].empty() &&
         env.hooks[TH_HOOK_ON_START_ATTEMPT].empty() && env.max_duration.count() == 0;
}

/// True if nothing follows a successful run stage of the task's attempts without middleware or a
/// deadline: no on_success, on_complete or cleanup hook.
bool nothing_after_run(const supervisor_env& env) {
  return env.hooks[TH_HOOK_ON_SUCCESS].empty() && env.hooks[TH_HOOK_ON_COMPLETE].empty() && env.hooks[TH_HOOK_CLEANUP].empty();
}

/// The job that runs (or resumes) an attempt's run stage on an executor thread. `announce`: it
/// is the attempt's first stage (begin_attempt). `finish_here`: nothing follows its success (see
/// record_completed).
std::function<void()> run_stage_job(std::shared_ptr<supervisor_env> env, std::shared_ptr<task_execution> ex, caf::actor me,
                                    bool announce, bool finish_here) {
  return [env = std::move(env), ex = std::move(ex), me = std::move(me), announce, finish_here] {
    const attempt_input& in = ex->input();
    if (in.token->reason() != TH_CANCEL_NONE) return;  // cancelled while it waited for a thread
    if (announce && !begin_attempt(*env, in, me)) {
      // Ended before it began (a cancel that came before its supervisor knew of it, for a run
      // adopt_new_run started): its code does not run.
      tell(me, *env->inbox, supervisor_event{supervisor_event::completed, in.run_id, in.attempt, run_stage, false});
      return;
    }
    step_outcome s = ex->step();
    if (s.kind == step_outcome::suspended) {
      supervisor_event ev{supervisor_event::suspended, in.run_id, in.attempt};
      ev.body = s.wait_for.dump();
      tell(me, *env->inbox, std::move(ev));
      return;
    }
    if (finish_here && s.outcome.ok) {
      // The job's last steps: a parent this run's end resumes (parked_run) runs next here.
      executor::finishing last_steps(*env->exec);
      const bool live = record_completed(*env, in, s.outcome.json);
      tell(me, *env->inbox, supervisor_event{supervisor_event::completed, in.run_id, in.attempt, run_stage, live});
      return;
    }
    tell(me, *env->inbox, ended(in, run_stage, s.outcome.ok, std::move(s.outcome.json), s.outcome.retryable));
  };
}

}  // namespace

/// A new run started by the thread that committed it (adopt_new_run), on its way to its
/// supervisor (supervisor_event::adopted).
struct adopted_run {
  attempt_input in;
  std::shared_ptr<task_execution> exec;
  queue_request slot;
  std::atomic<bool> abandoned{false};  ///< its job could not be posted (stopping): nothing to adopt
};

bool adopt_new_run(const std::shared_ptr<supervisor_env>& env, const caf::actor& sup, const std::string& run_id,
                   std::string payload_json) {
  if (!starts_with_run(*env) || payload_json.empty()) return false;
  std::optional<queue_request> q;
  env->store->read_live(run_id, [&](const run_record& r) {
    if (r.status == run_status::queued && r.attempts.empty() && !r.delay_until && !r.expires_at && !r.retry_at && r.max_duration_ms == 0)
      q = slot_request(*env, r, r.created_at);
  });
  if (!q) return false;
  if (env->adopted) env->adopted->fetch_add(1, std::memory_order_relaxed);  // counted before it can start
  if (!env->queues->enqueue(*q)) return true;  // QUEUED: its grant goes to the supervisor
  auto a = std::make_shared<adopted_run>();
  bool runnable = false;
  env->store->update_live(run_id, [&](run_record& r) {
    if (r.status != run_status::queued || !r.attempts.empty()) return;
    r.status = run_status::dequeued;
    runnable = true;
    a->in.task_id = r.task_id;
    a->in.has_journal = has_epoch_entries(r.journal);
  });
  if (!runnable) {  // ended meanwhile (canceled)
    env->queues->release(run_id);
    return true;
  }
  a->in.run_id = run_id;
  a->in.attempt = 1;
  a->in.payload = std::move(payload_json);
  wire_input(env, a->in);
  a->exec = std::make_shared<task_execution>(env->task, a->in);
  a->slot = std::move(*q);
  auto job = run_stage_job(env, a->exec, sup, /*announce=*/true, nothing_after_run(*env));
  // Quietly, and before the job: the job's first event brings it to the supervisor.
  supervisor_event ev{supervisor_event::adopted, run_id, 1};
  ev.adoption = a;
  env->inbox->push_quietly(std::move(ev));
  if (!env->exec->post(std::move(job))) {
    // Stopping: its code never starts; QUEUED again, for the next start.
    a->abandoned = true;
    env->store->update_live(run_id, [&](run_record& r) {
      if (r.attempts.empty()) r.status = run_status::queued;
    });
    env->queues->release(run_id);
  }
  return true;
}

namespace {

caf::behavior task_supervisor(caf::event_based_actor* self, std::shared_ptr<supervisor_env> env) {
  auto st = std::make_shared<supervisor_state>();
  // Every flow leaves through here: its slot goes back to its queue (which may start another run).
  // A suspended run's offer to the thread that completes its waits (parked_run) is withdrawn
  // before its supervisor resumes, drops or ends it. True if that thread took it first: the run
  // resumes there, and its `resumed` event follows.
  auto withdraw = [=](attempt_flow& f) {
    if (!f.parked) return false;
    auto p = std::move(f.parked);
    env->waits->unpark(f.in.run_id);
    return p->state.exchange(parked_run::left) == parked_run::taken;
  };
  auto erase_flow = [=](decltype(supervisor_state::flows)::iterator it) {
    withdraw(it->second);  // taken: its `resumed` finds no flow and gives the slot back
    const bool had_slot = it->second.has_slot;
    std::string id = it->first;
    st->flows.erase(it);
    if (had_slot) env->queues->release(id);
  };
  auto has_hooks = [env](int kind) { return !env->hooks[kind].empty(); };

  // A run ended: its locals go. Their destructors are user code, so the last reference is
  // dropped on an executor thread, never here.
  auto release_locals = [=](const std::string& run_id) {
    auto it = st->locals.find(run_id);
    if (it == st->locals.end()) return;
    // Held here alone and empty (the common case), it runs no user code when it goes: no job.
    if (it->second.use_count() > 1 || !it->second->empty())
      env->exec->post([l = std::move(it->second)]() mutable { l.reset(); }, /*finish_on_stop=*/true);
    st->locals.erase(it);
  };

  // What hooks get to see: the payload, and after run (or a failed pre-run hook) the outcome.
  auto hook_input = [](const attempt_flow& f, int stage) {
    json in = {{"payload", json::parse(f.in.payload, nullptr, false)}, {"attempt", f.in.attempt}};
    if (stage == TH_HOOK_INIT || stage == TH_HOOK_ON_START || stage == TH_HOOK_ON_START_ATTEMPT) return in;
    if (stage == TH_HOOK_ON_WAIT || stage == TH_HOOK_ON_RESUME) {
      in["wait"] = {{"kinds", f.wait_kinds}};
      return in;
    }
    if (f.ok) in["output"] = f.value;
    else if (!f.value.is_null()) in["error"] = f.value;
    in["ok"] = f.ok;
    in["status"] = f.ok ? "COMPLETED" : "FAILED";
    return in;
  };

  auto record_stage = [env](const std::string& run_id, int attempt, int stage, bool ok, const std::optional<json>& error) {
    env->store->update_live(run_id, [&](run_record& r) {
      if (!r.attempts.empty() && r.attempts.back().number == attempt)
        r.attempts.back().stages.push_back({stage_name(stage, *env), ok, error});
    });
  };

  // The job that runs (or resumes) the run stage of `f`'s attempt on an executor thread.
  auto run_job = [=](attempt_flow& f, bool announce) -> std::function<void()> {
    if (!f.exec) f.exec = std::make_shared<task_execution>(env->task, f.in);
    // Nothing after the run stage if it succeeds: the executor thread records the end itself.
    const bool finish_here = !f.chain && !f.has_deadline && f.pending.empty() && nothing_after_run(*env);
    return run_stage_job(env, f.exec, caf::actor_cast<caf::actor>(self), announce, finish_here);
  };

  // Posts the next pending stage of a run's attempt, or finishes the attempt when none is left.
  auto advance = [=](const std::string& run_id) {
   for (;;) {  // loops only when a stage could not be posted at shutdown
    auto it = st->flows.find(run_id);
    if (it == st->flows.end()) return;
    attempt_flow& f = it->second;
    if (f.busy) return;  // its stage in flight calls advance again when it is done
    if (f.pending.empty() && f.suspended) return;  // waiting: a wake-up resumes it
    if (f.pending.empty() && f.chain && !f.unwound) {
      // Everything inside the middleware is done: resume them, innermost first.
      f.unwound = true;
      for (size_t i = f.entered; i-- > 0;) f.pending.push_back(exit_stage(i));
    }
    if (f.pending.empty()) {
      // The attempt is over: record the run's state and, if it retries, schedule the next one.
      auto now = clock_type::now();
      std::optional<milliseconds> retry_in = f.retry_in;
      bool ok = f.ok;
      json value = f.value;
      int attempt = f.in.attempt;
      erase_flow(it);
      if (!retry_in) release_locals(run_id);
      env->store->update_live(run_id, [&](run_record& r) {
        if (ok) {
          r.status = run_status::completed;
          r.output = value;
          r.error.reset();
          r.finished_at = now;
        } else if (!retry_in) {
          r.status = run_status::failed;
          r.error = value;
          r.finished_at = now;
        } else {
          // Stays EXECUTING while it waits to be retried, as in Trigger.dev; the time is kept so
          // that a restart keeps it. The retry runs its code afresh: positional journal entries
          // go, those with an idempotency key stay.
          r.retry_at = now + *retry_in;
          new_journal_epoch(r, attempt + 1);
        }
      });
      json attrs = {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}};
      if (ok) {
        log::info("run completed", attrs);
      } else if (retry_in) {
        attrs["error"] = value.value("message", "");
        attrs["retry_in_ms"] = retry_in->count();
        log::warn("attempt failed, retrying", attrs);
        // A retry without backoff goes straight back in (a timer of 0 ms is a trip through CAF's
        // clock thread, a wake-up more per attempt).
        if (retry_in->count() <= 0) self->send(self, start_atom::value, run_id);
        else self->delayed_send(self, *retry_in, start_atom::value, run_id);
      } else {
        attrs["error"] = value.value("message", "");
        log::warn("run failed", attrs);
      }
      return;
    }
    const int stage = f.pending.front();
    f.pending.pop_front();
    const bool announce = !f.started;
    f.started = true;
    auto me = caf::actor_cast<caf::actor>(self);
    std::function<void()> job;
    if (is_enter(stage) || is_exit(stage)) {
      json outcome = {{"ok", f.ok}};
      if (!f.ok && !f.value.is_null()) outcome["error"] = f.value;
      job = [env, chain = f.chain, in = f.in, me, announce, stage, outcome = std::move(outcome)] {
        if (in.token->reason() != TH_CANCEL_NONE && is_enter(stage)) return;
        if (announce) begin_attempt(*env, in, me);
        std::string error;
        bool ok = is_enter(stage) ? chain->enter(mw_index(stage), error) : chain->exit(mw_index(stage), outcome, error);
        tell(me, *env->inbox, ended(in, stage, ok, ok ? std::string("null") : std::move(error), true));
      };
    } else if (stage == run_stage) {
      job = run_job(f, announce);
    } else {
      const bool stop_on_error = stage == TH_HOOK_INIT || stage == TH_HOOK_ON_START || stage == TH_HOOK_ON_START_ATTEMPT ||
                                 stage == TH_HOOK_CATCH_ERROR;
      json input = hook_input(f, stage);
      job = [env, in = f.in, me, announce, stage, stop_on_error, input = std::move(input)] {
        if (in.token->reason() != TH_CANCEL_NONE) return;
        if (announce) begin_attempt(*env, in, me);
        auto o = run_hooks(env->hooks[stage], in, input, stop_on_error);
        std::string body = (o.ok ? o.answer : o.error).dump(-1, ' ', false, json::error_handler_t::replace);
        tell(me, *env->inbox, ended(in, stage, o.ok, std::move(body), true));
      };
    }
    f.busy = true;
    if (!env->exec->post(std::move(job))) {
      f.busy = false;
      // Shutting down: the stage never starts. After run, the outcome is known: record it without
      // the remaining hooks (logged), rather than leave a finished run looking interrupted.
      if (stage == TH_HOOK_ON_SUCCESS || stage == TH_HOOK_ON_FAILURE || stage == TH_HOOK_ON_COMPLETE || stage == TH_HOOK_CLEANUP ||
          is_exit(stage)) {
        log::warn("shutting down: remaining hooks of the attempt skipped",
                  {{"run", run_id}, {"task", env->task.id}, {"stage", stage_name(stage, *env)}});
        f.pending.clear();
        continue;  // once more: with nothing pending, the attempt finishes
      }
      // Before run: a run whose attempt never began stays queued.
      erase_flow(it);
      env->store->update_live(run_id, [&](run_record& r) {
        if (r.attempts.empty() || r.attempts.back().finished_at) r.status = run_status::queued;
      });
    }
    return;
   }
  };

  // After a failed run (or a failed pre-run hook): ask catch_error, or decide at once.
  auto after_failure = [=](attempt_flow& f) {
    f.pending.clear();
    if (f.retryable && has_hooks(TH_HOOK_CATCH_ERROR)) f.pending.push_back(TH_HOOK_CATCH_ERROR);
    else f.pending.push_back(decide_marker);
  };

  // Decides whether a failed attempt is retried; queues the stages that follow either way.
  auto decide = [=](attempt_flow& f, int trigger_max_attempts) {
    if (f.retryable && !f.skip_retry && !f.retry_in) {
      retry_policy policy(f.retry_override ? *f.retry_override : env->retry.config());
      f.retry_in = policy.next_delay(f.in.attempt, default_random, f.retry_override ? 0 : trigger_max_attempts);
    } else if (f.skip_retry || !f.retryable) {
      f.retry_in.reset();
    } else if (f.retry_in && f.in.attempt >= env->retry.max_attempts(trigger_max_attempts)) {
      f.retry_in.reset();  // retry_at / retry_delay answers still respect max_attempts
    }
    f.pending.clear();
    if (!f.retry_in) {
      if (has_hooks(TH_HOOK_ON_FAILURE)) f.pending.push_back(TH_HOOK_ON_FAILURE);
      if (has_hooks(TH_HOOK_ON_COMPLETE)) f.pending.push_back(TH_HOOK_ON_COMPLETE);
    }
    if (has_hooks(TH_HOOK_CLEANUP)) f.pending.push_back(TH_HOOK_CLEANUP);
  };

  // A run ended from outside: its middleware frames and its run's execution (a coroutine frame
  // when it waits) are destroyed on an executor thread: their destructors are user code.
  auto drop_frames = [=](attempt_flow& f) {
    if (f.chain || f.exec)
      env->exec->post([c = std::move(f.chain), e = std::move(f.exec)]() mutable {
        c.reset();
        e.reset();
      }, /*finish_on_stop=*/true);
  };
  auto release_chain = [=](attempt_flow& f) {
    st->armed.erase(f.in.run_id);
    drop_frames(f);
  };

  // Runs on_cancel (if cancelled), on_failure and on_complete for a run that was ended from outside.
  auto final_hooks = [=](const attempt_input& in, int reason, const json& error) {
    std::vector<int> kinds;
    if (reason == TH_CANCEL_CANCELED && has_hooks(TH_HOOK_ON_CANCEL)) kinds.push_back(TH_HOOK_ON_CANCEL);
    if (has_hooks(TH_HOOK_ON_FAILURE)) kinds.push_back(TH_HOOK_ON_FAILURE);
    if (has_hooks(TH_HOOK_ON_COMPLETE)) kinds.push_back(TH_HOOK_ON_COMPLETE);
    if (kinds.empty()) return;
    json input = {{"payload", json::parse(in.payload, nullptr, false)}, {"attempt", in.attempt}, {"ok", false},
                  {"status", reason == TH_CANCEL_CANCELED ? "CANCELED" : "TIMED_OUT"}};
    if (!error.is_null()) input["error"] = error;
    env->exec->post([env, in, kinds, input] {
      for (int k : kinds) run_hooks(env->hooks[k], in, input, false);
    }, /*finish_on_stop=*/true);
  };

  // Builds the rest of an attempt's flow and posts its first stage. A replay (after a restart)
  // goes on with the attempt that was waiting: on_start and on_start_attempt do not run again.
  auto launch = [=](const std::string& run_id, attempt_flow f) {
    f.in.run_id = run_id;
    auto& locals = st->locals[run_id];
    if (!locals) locals = std::make_shared<run_locals>();
    f.in.locals = locals;
    wire_input(env, f.in);
    if (!env->middleware.empty()) {
      f.chain = std::make_shared<middleware_chain>(env->middleware, f.in);
      for (size_t i = 0; i < env->middleware.size(); ++i) f.pending.push_back(enter_stage(i));
    }
    if (has_hooks(TH_HOOK_INIT)) f.pending.push_back(TH_HOOK_INIT);
    if (!f.in.replay) {
      if (f.in.attempt == 1 && has_hooks(TH_HOOK_ON_START)) f.pending.push_back(TH_HOOK_ON_START);
      if (has_hooks(TH_HOOK_ON_START_ATTEMPT)) f.pending.push_back(TH_HOOK_ON_START_ATTEMPT);
    } else if (has_hooks(TH_HOOK_ON_RESUME)) {
      f.pending.push_back(TH_HOOK_ON_RESUME);
    }
    f.pending.push_back(run_stage);
    f.has_slot = true;  // every launch holds a slot of its queue
    st->flows.emplace(run_id, std::move(f));
    advance(run_id);
  };

  // A wake-up at `at` (in steps of at most a day); one timer per run, the earliest.
  auto arm = [=](const std::string& run_id, std::optional<time_point> at) {
    if (!at) return;
    const auto now = clock_type::now();
    if (auto a = st->armed.find(run_id); a != st->armed.end() && a->second > now && a->second <= *at) return;
    auto in = std::min<clock_type::duration>(std::max<clock_type::duration>(*at - now, clock_type::duration::zero()), std::chrono::hours(24));
    st->armed[run_id] = now + in;
    self->delayed_send(self, std::chrono::ceil<milliseconds>(in), wake_atom::value, run_id);
  };

  // A suspended run executes again, holding a slot (resumed here, or where its waits completed).
  auto executing_again = [=](attempt_flow& f) {
    f.suspended = false;
    f.awaiting_slot = false;
    f.has_slot = true;
    f.executing_since = clock_type::now();
    st->armed.erase(f.in.run_id);
  };
  // The waits of a suspended run are all done and it holds a slot again: it executes again (and
  // its deadline runs again). `waited` false: everything it awaited was done before it began to
  // wait (on_suspended), so it never waited, and no on_resume hook fires (nor did on_wait).
  auto continue_run = [=](attempt_flow& f, bool waited) {
    withdraw(f);  // (not taken: its callers withdrew it first, or never offered it)
    if (waited && env->waits) env->waits->check(f.in.run_id, true);  // WAITING → EXECUTING
    executing_again(f);
    if (waited && has_hooks(TH_HOOK_ON_RESUME)) f.pending.push_back(TH_HOOK_ON_RESUME);
    f.pending.push_back(run_stage);
    if (f.limit_ms > 0)
      self->delayed_send(self, std::max(milliseconds(0), milliseconds(f.limit_ms) - f.executed), timeout_atom::value, f.in.run_id, f.in.attempt);
    if (waited) log::debug("run resumed", {{"run", f.in.run_id}, {"task", env->task.id}, {"wait", f.wait_kinds}});
    advance(f.in.run_id);
  };
  // The waits are done: it asks its queue for a slot (WAITING until it has one; a run that waits
  // holds none, so a parent and its child on a queue with limit 1 do not deadlock).
  auto resume = [=](attempt_flow& f) {
    if (f.awaiting_slot) return;
    st->armed.erase(f.in.run_id);
    if (env->queues->enqueue(f.slot)) return continue_run(f, true);
    f.awaiting_slot = true;
  };

  // Keeps at most env->resident_waits suspended executions in memory: the longest-waiting beyond
  // it are dropped (frames destroyed on an executor thread) and replayed from the journal when
  // their wait completes. A run whose on_wait hooks still run is dropped once they are done.
  auto evict_waiting = [=]() {
    while (st->resident.size() > env->resident_waits) {
      const std::string id = st->resident.front();
      auto it = st->flows.find(id);
      if (it == st->flows.end() || !it->second.suspended) {  // ended or resumed meanwhile
        st->resident.pop_front();
        continue;
      }
      attempt_flow& f = it->second;
      if (f.busy || !f.pending.empty()) return;  // on_wait hooks in flight: again when they are done
      st->resident.pop_front();
      if (withdraw(f)) continue;  // resuming on the thread that completed its waits
      drop_frames(f);  // its wake timer stays armed
      release_locals(id);
      erase_flow(it);  // its wake timer stays armed; the wake-up finds no flow and replays
      env->store->let_go(id);  // and its record may leave memory too
    }
  };

  // A run that waits without an execution in memory (the runtime restarted since it suspended,
  // or it was evicted): once everything it waits for is done and its queue gives it a slot, its
  // attempt is replayed from the start of `run`.
  auto replay = [=](const std::string& run_id) {
    auto w = env->waits->check(run_id, true);  // WAITING → EXECUTING (and in memory again)
    if (!w.known || !w.all_done) {
      env->queues->release(run_id);
      if (w.known) arm(run_id, w.next_wake);
      return;
    }
    attempt_flow f;
    json payload;
    bool ok = false;
    env->store->read_live(run_id, [&](const run_record& r) {
      if (r.attempts.empty()) return;
      ok = true;
      f.in.task_id = r.task_id;
      f.in.attempt = r.attempts.back().number;
      f.has_deadline = attempt_limit(*env, r).count() > 0;
      f.in.has_journal = has_epoch_entries(r.journal);
      f.slot = slot_request(*env, r, r.created_at);
      payload = r.payload;
    });
    if (!ok) return env->queues->release(run_id), void();
    f.in.payload = payload.dump(-1, ' ', false, json::error_handler_t::replace);
    f.in.replay = true;
    f.wait_kinds = w.kinds;
    log::info("run resumes: replaying its attempt from the journal", {{"run", run_id}, {"task", env->task.id}, {"attempt", f.in.attempt}});
    launch(run_id, std::move(f));
  };
  std::function<void(const std::string&)> look_at_waits = [=](const std::string& run_id) {
    if (!env->waits) return;
    auto w = env->waits->check(run_id, false);
    if (!w.known) return;
    if (!w.all_done) {
      arm(run_id, w.next_wake);
      env->store->let_go(run_id);  // nothing here holds it while it waits
      return;
    }
    st->armed.erase(run_id);
    std::optional<queue_request> q;
    env->store->read(run_id, [&](const run_record& r) {
      if (r.status == run_status::waiting) q = slot_request(*env, r, r.created_at);
    });
    if (!q) return;
    if (env->queues->enqueue(*q)) replay(run_id);
    // else: WAITING until its queue dispatches it (granted_atom)
  };

  // The run holds a slot of its queue: its next attempt starts (DEQUEUED until an executor thread
  // takes its first stage), unless it ended meanwhile (canceled, expired), which gives the slot
  // back. A WAITING run, or one not in memory, is left to the caller (with its slot).
  enum class begun { started, ended, waiting, not_in_memory };
  auto begin = [=](const std::string& run_id) {
    const auto now = clock_type::now();
    attempt_flow f;
    json payload;
    bool runnable = false;
    bool expired = false;
    bool waiting = false;
    std::optional<clock_type::duration> expire_in;
    const bool live = env->store->update_live(run_id, [&](run_record& r) {
      if (r.status == run_status::waiting) {
        waiting = true;
        return;
      }
      if (r.status == run_status::delayed && r.delay_until && *r.delay_until > now) return;
      if (r.status == run_status::delayed) {  // its time has come: queued from now on
        r.status = run_status::queued;
        r.delay_until.reset();
        if (r.ttl_ms > 0) r.expires_at = now + milliseconds(r.ttl_ms);
      }
      if (r.attempts.empty() && r.expires_at) {
        if (*r.expires_at <= now) {
          r.status = run_status::expired;
          r.finished_at = now;
          expired = true;
          return;
        }
        expire_in = *r.expires_at - now;
      }
      r.retry_at.reset();
      r.status = run_status::dequeued;
      runnable = true;
      f.in.task_id = r.task_id;
      f.in.attempt = static_cast<int>(r.attempts.size()) + 1;
      f.has_deadline = attempt_limit(*env, r).count() > 0;
      f.in.has_journal = has_epoch_entries(r.journal);
      f.slot = slot_request(*env, r, r.created_at);  // what it asks for when it resumes after a wait
      payload = r.payload;  // serialized below, outside the store's lock
    });
    if (!live) return begun::not_in_memory;
    if (waiting) return begun::waiting;
    st->ttl_armed.erase(run_id);
    if (!runnable) {
      env->queues->release(run_id);
      if (expired) log::warn("run expired: its TTL passed before it started", {{"run", run_id}, {"task", env->task.id}});
      return begun::ended;
    }
    f.in.payload = payload.dump(-1, ' ', false, json::error_handler_t::replace);
    if (expire_in)
      self->delayed_send(self, std::chrono::ceil<milliseconds>(*expire_in), expire_atom::value, run_id);
    launch(run_id, std::move(f));
    return begun::started;
  };

  // The run may start its next attempt: not yet when DELAYED or waiting to be retried (a timer
  // comes back then, in steps of at most a day, so that a timer never spans months); a WAITING
  // one (after a restart) is looked at; else it asks its queue for a slot and starts when it has
  // one — QUEUED (as an id in its queue, nothing more) until then.
  std::function<void(const std::string&)> start_run = [=](const std::string& run_id) {
    if (st->flows.count(run_id)) return;
    const auto now = clock_type::now();
    std::optional<clock_type::duration> wait;
    bool waiting = false;
    std::optional<queue_request> q;
    std::optional<time_point> expires;
    env->store->read_live(run_id, [&](const run_record& r) {
      waiting = r.status == run_status::waiting;
      std::optional<time_point> at;
      if (r.status == run_status::delayed && r.delay_until && *r.delay_until > now) at = r.delay_until;
      else if (r.retry_at && *r.retry_at > now + milliseconds(5)) at = r.retry_at;
      if (at) wait = std::min<clock_type::duration>(*at - now, std::chrono::hours(24));
      if (waiting || at) return;
      // Its place in the queue: when it was triggered (a delayed run: now, its delay over; a
      // retry: now), less its priority.
      const bool fresh = r.attempts.empty() && r.status != run_status::delayed;
      q = slot_request(*env, r, fresh ? r.created_at : now);
      if (r.attempts.empty() && r.status != run_status::delayed) expires = r.expires_at;
    });
    if (waiting) {  // after a restart: replayed once what it waits for is done
      look_at_waits(run_id);
      return;
    }
    if (wait) {
      self->delayed_send(self, std::chrono::ceil<milliseconds>(*wait), start_atom::value, run_id);
      return;
    }
    if (!q) return;  // unknown or final
    if (env->queues->enqueue(*q)) {
      // It was not WAITING a moment ago; should it have begun to wait or left memory since, its
      // slot goes back (its wake-up asks again).
      if (auto b = begin(run_id); b == begun::waiting || b == begun::not_in_memory) env->queues->release(run_id);
      return;
    }
    // QUEUED: its TTL runs out while it waits for a slot.
    if (expires && st->ttl_armed.insert(run_id).second)
      self->delayed_send(self, std::chrono::ceil<milliseconds>(std::max<clock_type::duration>(*expires - now, clock_type::duration::zero())),
                         expire_atom::value, run_id);
  };

  // Its queue gave the run a slot (see queue_book::set_dispatch in the deployment runtime).
  auto granted = [=](const std::string& run_id) {
    if (auto it = st->flows.find(run_id); it != st->flows.end()) {
      attempt_flow& f = it->second;
      if (f.suspended && f.awaiting_slot) return continue_run(f, true);
      if (!f.has_slot) env->queues->release(run_id);  // not asked for (any more)
      return;
    }
    const begun b = begin(run_id);  // the common case: a queued run starts
    if (b == begun::started || b == begun::ended) return;
    if (b == begun::not_in_memory) {
      bool waiting = false;
      env->store->read(run_id, [&](const run_record& r) { waiting = r.status == run_status::waiting; });  // a waiting run may be cold
      if (!waiting) return env->queues->release(run_id), void();  // ended meanwhile, or unknown
    }
    if (!env->waits) return env->queues->release(run_id), void();
    replay(run_id);
  };

  auto on_started = [=](const std::string& run_id, int attempt, int64_t started_us, int64_t limit_ms) {
    // The deadline counts from the moment the attempt started, not from now.
    const time_point at{std::chrono::microseconds(started_us)};
    if (auto f = st->flows.find(run_id); f != st->flows.end() && f->second.in.attempt == attempt) {
      f->second.limit_ms = limit_ms;
      if (!f->second.suspended) f->second.executing_since = at;
    }
    const auto left = milliseconds(limit_ms) - (clock_type::now() - at);
    self->delayed_send(self, std::max<clock_type::duration>(left, clock_type::duration::zero()), timeout_atom::value, run_id, attempt);
  };

  auto on_suspended = [=](const std::string& run_id, int attempt, const std::string& keys_json) {
    auto it = st->flows.find(run_id);
    if (it == st->flows.end() || it->second.in.attempt != attempt) return;  // canceled or timed out meanwhile
    attempt_flow& f = it->second;
    f.busy = false;
    json keys = json::parse(keys_json, nullptr, false);
    if (!keys.is_array()) keys = json::array();
    f.suspended = true;
    if (f.executing_since != time_point{})
      f.executed += std::chrono::duration_cast<milliseconds>(clock_type::now() - f.executing_since);
    auto w = env->waits->suspend(run_id, keys);
    if (!w.invalid.empty() && w.known) {
      // A plugin that suspends on something it never started would wait forever: its
      // attempt fails instead (not retried: the same code would do it again).
      f.suspended = false;
      if (f.exec) env->exec->post([e = std::move(f.exec)]() mutable { e.reset(); }, /*finish_on_stop=*/true);
      f.busy = true;
      json error = {{"name", "InvalidWaitError"}, {"message", w.invalid}};
      self->send(self, done_atom::value, run_id, attempt, run_stage, false, error.dump(), false);
      return;
    }
    if (!w.known) return;
    f.wait_kinds = w.kinds;
    if (w.all_done) return continue_run(f, false);  // everything it awaits completed while it ran: it keeps its slot
    // WAITING: no thread, no slot. on_wait hooks run; a wake-up resumes it.
    f.has_slot = false;
    env->queues->release(run_id);
    log::debug("run waiting", {{"run", run_id}, {"task", env->task.id}, {"wait", w.kinds}});
    arm(run_id, w.next_wake);
    if (has_hooks(TH_HOOK_ON_WAIT)) {
      f.pending.push_back(TH_HOOK_ON_WAIT);
      advance(run_id);
    }
    // Nothing to run between its waits and its code: whoever completes its last wait may take a
    // slot and post its code at once (parked_run), a wake-up of this actor fewer on the way.
    if (!has_hooks(TH_HOOK_ON_WAIT) && !has_hooks(TH_HOOK_ON_RESUME) && !f.chain && !f.has_deadline && f.limit_ms == 0 && f.exec) {
      auto p = std::make_shared<parked_run>();
      auto me = caf::actor_cast<caf::actor>(self);
      // Its job tells the supervisor how it went, which brings the quiet `resumed` along; one that
      // finds its run cancelled says so itself.
      std::function<void()> job = [env, me, inner = run_job(f, false), token = f.in.token, run_id, attempt] {
        inner();
        if (token->reason() != TH_CANCEL_NONE)
          tell(me, *env->inbox, supervisor_event{supervisor_event::completed, run_id, attempt, run_stage, false});
      };
      p->resume = [env, job = std::move(job), slot = f.slot, attempt](parked_run& p) {
        if (!env->queues->enqueue(slot)) {  // no slot now: its queue grants one to the supervisor
          p.state = parked_run::left;
          return false;
        }
        env->waits->check(slot.run_id, true);  // WAITING → EXECUTING
        // Quietly: the supervisor need not wake for it now (its job's end wakes it), and it comes
        // before anything the job tells.
        env->inbox->push_quietly(supervisor_event{supervisor_event::resumed, slot.run_id, attempt});
        if (!env->exec->post(job)) log::warn("shutting down: a resumed run's code was not started", {{"run", slot.run_id}});
        return true;
      };
      f.parked = p;
      env->waits->park(run_id, std::move(p));
    }
    st->resident.push_back(run_id);
    evict_waiting();
  };

  // The thread that completed its waits resumed it (parked_run): it holds a slot, and its run
  // stage is on the executor.
  auto on_resumed = [=](const std::string& run_id, int attempt) {
    auto it = st->flows.find(run_id);
    if (it == st->flows.end() || it->second.in.attempt != attempt) {
      env->queues->release(run_id);  // ended meanwhile (its job finds it cancelled): the slot goes back
      return;
    }
    attempt_flow& f = it->second;
    f.parked.reset();
    executing_again(f);
    f.busy = true;
    log::debug("run resumed", {{"run", run_id}, {"task", env->task.id}, {"wait", f.wait_kinds}});
  };

  // The thread that committed a new run started it (adopt_new_run): it holds a slot, and its run
  // stage is on the executor (begun, or even over: its event follows this one).
  auto on_adopted = [=](const supervisor_event& ev) {
    const adopted_run& a = *ev.adoption;
    if (a.abandoned) return;  // stopping: the thread that committed it gave it back
    st->locals.try_emplace(ev.run_id, a.in.locals);
    const bool live = env->store->read_live(ev.run_id, [](const run_record&) {});
    if (!live) {
      // Ended already: completed by its job (whose event follows), or canceled — before it began,
      // or while its code ran, by a cancel that came before this event: its signal fires now.
      a.in.token->cancel(TH_CANCEL_CANCELED);
      env->queues->release(ev.run_id);
      release_locals(ev.run_id);
      return;
    }
    attempt_flow f;
    f.in = a.in;
    f.exec = a.exec;
    f.slot = a.slot;
    f.started = true;
    f.busy = true;
    f.has_slot = true;
    f.executing_since = clock_type::now();
    st->flows.emplace(ev.run_id, std::move(f));
  };

  auto on_wake = [=](const std::string& run_id) {
    if (auto a = st->armed.find(run_id); a != st->armed.end() && a->second <= clock_type::now() + milliseconds(5)) st->armed.erase(a);
    auto it = st->flows.find(run_id);
    if (it == st->flows.end()) return look_at_waits(run_id);
    attempt_flow& f = it->second;
    if (!f.suspended) return;
    auto w = env->waits->check(run_id, false);
    if (!w.known) return;
    if (w.all_done) {
      if (withdraw(f)) return;  // resumed by the thread that completed its waits
      return resume(f);
    }
    arm(run_id, w.next_wake);
  };

  // Its executor thread recorded the run COMPLETED (record_completed): the flow ends here. `live`
  // false: the run had been canceled meanwhile, and the cancel took the flow.
  auto on_completed = [=](const std::string& run_id, int attempt, bool live) {
    if (!live) {
      log::info("stage ended after its run ended (canceled or timed out); result dropped",
                {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}, {"stage", stage_name(run_stage, *env)}});
      return;
    }
    if (auto it = st->flows.find(run_id); it != st->flows.end() && it->second.in.attempt == attempt) erase_flow(it);
    release_locals(run_id);
    log::info("run completed", {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}});
  };

  auto on_done = [=](const std::string& run_id, int attempt, int stage, bool ok, const std::string& body, bool retryable) {
    auto it = st->flows.find(run_id);
    bool live = false;
    int trigger_max_attempts = 0;
    env->store->read_live(run_id, [&](const run_record& r) {
      live = true;
      trigger_max_attempts = r.max_attempts;
    });
    if (it == st->flows.end() || it->second.in.attempt != attempt || !live) {
      log::info("stage ended after its run ended (canceled or timed out); result dropped",
                {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}, {"stage", stage_name(stage, *env)}});
      return;
    }
    attempt_flow& f = it->second;
    f.busy = false;
    auto value = json::parse(body, nullptr, false);
    if (value.is_discarded()) value = json{{"message", body}};
    if (stage == run_stage && !ok && value.is_object() && !value.contains("stage")) value["stage"] = "run";
    const bool failed = !ok;
    record_stage(run_id, attempt, stage, ok, failed ? std::optional<json>(value) : std::nullopt);

    // The attempt's end and, on success, the run's output are recorded together: a commit
    // (and a crash right after it) never shows a completed attempt without its output. The
    // run turns COMPLETED once the hooks after it have run; recovery finishes it otherwise.
    auto end_attempt = [&](bool success) {
      env->store->update_live(run_id, [&](run_record& r) {
        if (r.attempts.empty() || r.attempts.back().number != attempt) return;
        auto& a = r.attempts.back();
        a.finished_at = clock_type::now();
        a.status = success ? attempt_status::completed : attempt_status::failed;
        if (success) r.output = f.value;
        else a.error = f.value;
      });
    };

    if (is_enter(stage)) {
      if (ok) {
        f.entered = mw_index(stage) + 1;
      } else {  // fails the attempt; nothing inside it runs (hooks included), the outer ones unwind
        f.ok = false;
        f.value = value;
        f.value["stage"] = stage_name(stage, *env);
        f.retryable = true;
        end_attempt(false);
        decide(f, trigger_max_attempts);
        f.pending.clear();
      }
    } else if (is_exit(stage)) {
      if (!ok && f.ok) {  // a throw after next() fails an attempt that had succeeded
        f.ok = false;
        f.value = value;
        f.value["stage"] = stage_name(stage, *env);
        f.retryable = true;
        env->store->update_live(run_id, [&](run_record& r) {
          if (!r.attempts.empty() && r.attempts.back().number == attempt) {
            r.attempts.back().status = attempt_status::failed;
            r.attempts.back().error = f.value;
            r.output.reset();
          }
        });
        f.retry_in = env->retry.next_delay(attempt, default_random, trigger_max_attempts);
      } else if (!ok) {
        log::warn("middleware threw after next() of a failed attempt; ignored",
                  {{"run", run_id}, {"stage", stage_name(stage, *env)}, {"error", value.value("message", "")}});
      }
    } else if (stage == run_stage) {
      f.ok = ok;
      f.value = value;
      f.retryable = retryable;
      end_attempt(ok);
      if (ok) {
        if (has_hooks(TH_HOOK_ON_SUCCESS)) f.pending.push_back(TH_HOOK_ON_SUCCESS);
        if (has_hooks(TH_HOOK_ON_COMPLETE)) f.pending.push_back(TH_HOOK_ON_COMPLETE);
        if (has_hooks(TH_HOOK_CLEANUP)) f.pending.push_back(TH_HOOK_CLEANUP);
      } else {
        after_failure(f);
      }
    } else if (stage == TH_HOOK_INIT || stage == TH_HOOK_ON_START || stage == TH_HOOK_ON_START_ATTEMPT) {
      if (failed) {  // a throw before run fails the attempt; it may be retried
        f.ok = false;
        f.value = value;
        f.retryable = true;
        end_attempt(false);
        after_failure(f);
      }
    } else if (stage == TH_HOOK_CATCH_ERROR) {
      if (failed) {
        f.value = json{{"name", "CatchErrorHookError"}, {"message", "catch_error threw: " + value.value("message", "")},
                       {"stage", "catch_error"}};
      } else if (value.is_object()) {
        if (auto e = value.find("error"); e != value.end()) {
          f.value = e->is_object() && e->contains("message") ? *e : json{{"message", e->dump()}};
        }
        if (value.value("skipRetrying", false)) f.skip_retry = true;
        if (auto v = value.find("retryDelayMs"); v != value.end() && v->is_number()) f.retry_in = milliseconds(std::max<int64_t>(0, v->get<int64_t>()));
        if (auto v = value.find("retryAtMs"); v != value.end() && v->is_number()) {
          auto at = time_point(milliseconds(v->get<int64_t>()));
          f.retry_in = std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(at - clock_type::now()));
        }
        if (auto v = value.find("retry"); v != value.end() && v->is_object()) f.retry_override = retry_from_answer(env->retry.config(), *v);
      }
      env->store->update_live(run_id, [&](run_record& r) {
        if (!r.attempts.empty() && r.attempts.back().number == attempt) r.attempts.back().error = f.value;
      });
      f.pending.clear();
      f.pending.push_back(decide_marker);
    }
    // on_success / on_failure / on_complete / cleanup: throws were logged; carry on.

    if (!f.pending.empty() && f.pending.front() == decide_marker) decide(f, trigger_max_attempts);
    advance(run_id);
    if (stage == TH_HOOK_ON_WAIT) evict_waiting();
  };

  // Everything in the inbox, in the order it was pushed.
  auto take_events = [=] {
    for (auto& ev : env->inbox->take()) {
      switch (ev.kind) {
        case supervisor_event::start: start_run(ev.run_id); break;
        case supervisor_event::granted: granted(ev.run_id); break;
        case supervisor_event::wake: on_wake(ev.run_id); break;
        case supervisor_event::started: on_started(ev.run_id, ev.attempt, ev.started_us, ev.limit_ms); break;
        case supervisor_event::done: on_done(ev.run_id, ev.attempt, ev.stage, ev.ok, ev.body, ev.retryable); break;
        case supervisor_event::completed: on_completed(ev.run_id, ev.attempt, ev.ok); break;
        case supervisor_event::suspended: on_suspended(ev.run_id, ev.attempt, ev.body); break;
        case supervisor_event::resumed: on_resumed(ev.run_id, ev.attempt); break;
        case supervisor_event::adopted: on_adopted(ev); break;
      }
    }
  };

  // When the actor goes: the executions still suspended in it point into env (their task), so
  // they go first, while env lives.
  self->attach_functor([st, withdraw] {
    for (auto& [id, f] : st->flows) withdraw(f);
    st->flows.clear();
    st->locals.clear();
  });

  return {
      [=](start_atom, const std::string& run_id) { start_run(run_id); },
      [=](granted_atom, const std::string& run_id) { granted(run_id); },
      [=](started_atom, const std::string& run_id, int attempt, int64_t started_us, int64_t limit_ms) { on_started(run_id, attempt, started_us, limit_ms); },
      [=](suspended_atom, const std::string& run_id, int attempt, const std::string& keys_json) { on_suspended(run_id, attempt, keys_json); },
      [=](wake_atom, const std::string& run_id) { on_wake(run_id); },
      [=](done_atom, const std::string& run_id, int attempt, int stage, bool ok, const std::string& body, bool retryable) { on_done(run_id, attempt, stage, ok, body, retryable); },
      [=](timeout_atom, const std::string& run_id, int attempt) {
        bool live = false;
        milliseconds took{0};
        env->store->read_live(run_id, [&](const run_record& r) {
          live = !r.attempts.empty() && r.attempts.back().number == attempt && !r.attempts.back().finished_at &&
                 r.status != run_status::waiting;  // time spent waiting does not count
          if (live) took = std::chrono::duration_cast<milliseconds>(clock_type::now() - r.attempts.back().started_at);
        });
        if (!live) return;  // the attempt ended in time (the common case: no write)
        if (auto f = st->flows.find(run_id); f != st->flows.end() && f->second.in.attempt == attempt) {
          // Time spent waiting does not count: a waiting run is checked again when it resumes.
          const attempt_flow& fl = f->second;
          if (fl.suspended) return;
          auto used = fl.executed + (fl.executing_since == time_point{} ? milliseconds(0)
                                     : std::chrono::duration_cast<milliseconds>(clock_type::now() - fl.executing_since));
          if (fl.limit_ms > 0 && used < milliseconds(fl.limit_ms) - milliseconds(2)) return;
          took = used;
        }
        const json error = {{"name", "MaxDurationExceededError"},
                            {"message", "attempt " + std::to_string(attempt) + " ran past its max duration (" +
                                            std::to_string(took.count()) + " ms)"}};
        // Its final hooks are queued before the run shows TIMED_OUT: whoever sees that status
        // (a shutdown, say) finds them already on their way.
        if (auto f = st->flows.find(run_id); f != st->flows.end()) {
          f->second.in.token->cancel(TH_CANCEL_TIMED_OUT);
          final_hooks(f->second.in, TH_CANCEL_TIMED_OUT, error);
          release_chain(f->second);
          erase_flow(f);
        }
        release_locals(run_id);
        env->queues->remove(run_id);  // if it waited for a slot
        env->store->update_live(run_id, [&](run_record& r) { finish_run(r, run_status::timed_out, attempt_status::failed, error); });
        log::warn("run timed out", {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}, {"error", error["message"]}});
      },
      [=](cancel_atom, const std::string& run_id) {
        // A run started where it was committed (adopted) is known here before it is canceled;
        // one whose event comes while this cancel is recorded is taken after (on_adopted fires
        // its signal, as its run is no longer live then).
        take_events();
        bool cancelled = false;
        bool was_running = false;
        env->store->update_unfinished(run_id, [&](run_record& r) {  // finished runs stay as they are
          was_running = !r.attempts.empty() && !r.attempts.back().finished_at;
          finish_run(r, run_status::canceled, attempt_status::canceled, std::nullopt);
          cancelled = true;
        });
        take_events();
        if (auto f = st->flows.find(run_id); f != st->flows.end()) {
          f->second.in.token->cancel(TH_CANCEL_CANCELED);
          if (was_running) final_hooks(f->second.in, TH_CANCEL_CANCELED, json());
          release_chain(f->second);
          erase_flow(f);
        } else if (was_running && cancelled) {
          // Waiting without an execution in memory: its hooks still hear of the end.
          attempt_input in;
          in.run_id = run_id;
          in.task_id = env->task.id;
          json payload;
          env->store->read(run_id, [&](const run_record& r) {
            in.attempt = r.attempts.empty() ? 1 : r.attempts.back().number;
            payload = r.payload;
          });
          in.payload = payload.dump(-1, ' ', false, json::error_handler_t::replace);
          final_hooks(in, TH_CANCEL_CANCELED, json());
        }
        st->armed.erase(run_id);
        st->ttl_armed.erase(run_id);
        release_locals(run_id);
        env->queues->remove(run_id);  // if it waited for a slot
        if (cancelled) log::info("run canceled", {{"run", run_id}, {"task", env->task.id}});
        return true;
      },
      [=](expire_atom, const std::string& run_id) {
        // The TTL passed and the run has still not started (its queue had no slot for it, or
        // every executor thread was busy).
        st->ttl_armed.erase(run_id);
        const auto now = clock_type::now();
        bool due = false;
        env->store->read_live(run_id, [&](const run_record& r) {
          due = r.attempts.empty() && r.expires_at && *r.expires_at <= now + milliseconds(5) &&
                (r.status == run_status::queued || r.status == run_status::dequeued);
        });
        if (!due) return;
        env->store->update_live(run_id, [&](run_record& r) {
          r.status = run_status::expired;
          r.finished_at = now;
        });
        if (auto f = st->flows.find(run_id); f != st->flows.end()) {
          f->second.in.token->cancel(TH_CANCEL_CANCELED);  // its first stage must not start now
          release_chain(f->second);
          erase_flow(f);
        }
        release_locals(run_id);
        env->queues->remove(run_id);  // if it waited for a slot
        log::warn("run expired: its TTL passed before it started", {{"run", run_id}, {"task", env->task.id}});
      },
      [=](events_atom) { take_events(); },
      [=](drain_atom) {
        take_events();  // what was pushed before the drain counts as sent before it
        return caf::unit;
      },
  };
}

}  // namespace

caf::actor spawn_task_supervisor(caf::actor_system& sys, std::shared_ptr<supervisor_env> env) {
  return sys.spawn(task_supervisor, std::move(env));
}

}  // namespace taskhost::actors
