// The task supervisor: one actor per task. It turns "run this" into attempts on the executor and
// attempt results into run state and retries. User code never runs on this actor's thread.
#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/attempt_runner.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {
namespace {

caf::behavior task_supervisor(caf::event_based_actor* self, std::shared_ptr<supervisor_env> env) {
  return {
      [=](start_atom, const std::string& run_id) {
        auto run = env->store->get(run_id);
        if (!run || is_final(run->status)) return;
        attempt_input in;
        in.run_id = run_id;
        in.task_id = run->task_id;
        in.attempt = static_cast<int>(run->attempts.size()) + 1;
        in.payload = run->payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        in.max_output_bytes = env->max_output_bytes;
        // DEQUEUED until an executor thread really starts the attempt (all threads may be busy).
        env->store->update(run_id, [&](run_record& r) { r.status = run_status::dequeued; });
        auto me = caf::actor_cast<caf::actor>(self);
        bool posted = env->exec->post([env, in = std::move(in), me]() {
          auto started = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch());
          caf::anon_send(me, started_atom::value, in.run_id, in.attempt, int64_t{started.count()});
          attempt_outcome o = run_attempt(env->task, in);
          caf::anon_send(me, done_atom::value, in.run_id, in.attempt, o.ok, std::move(o.json), o.retryable);
        });
        if (!posted) {
          // Shutting down: the attempt never started. Leave the run queued, as it was.
          env->store->update(run_id, [&](run_record& r) { r.status = run_status::queued; });
        }
      },
      [=](started_atom, const std::string& run_id, int attempt, int64_t started_ms) {
        const time_point at{std::chrono::milliseconds(started_ms)};
        env->store->update(run_id, [&](run_record& r) {
          r.status = run_status::executing;
          if (!r.started_at) r.started_at = at;
          r.attempts.push_back({attempt, attempt_status::executing, at, std::nullopt, std::nullopt});
        });
      },
      [=](done_atom, const std::string& run_id, int attempt, bool ok, const std::string& body, bool retryable) {
        auto now = clock_type::now();
        auto value = nlohmann::json::parse(body, nullptr, false);
        if (value.is_discarded()) value = nlohmann::json{{"message", body}};
        std::optional<std::chrono::milliseconds> retry_in;
        run_status final_status = run_status::completed;
        env->store->update(run_id, [&](run_record& r) {
          if (!r.attempts.empty() && r.attempts.back().number == attempt) {
            auto& a = r.attempts.back();
            a.finished_at = now;
            a.status = ok ? attempt_status::completed : attempt_status::failed;
            if (!ok) a.error = value;
          }
          if (ok) {
            r.status = run_status::completed;
            r.output = value;
            r.error.reset();
            r.finished_at = now;
            return;
          }
          if (retryable) retry_in = env->retry.next_delay(attempt, default_random, r.max_attempts);
          if (retry_in) return;  // stays EXECUTING while it waits to be retried, as in Trigger.dev
          r.status = final_status = run_status::failed;
          r.error = value;
          r.finished_at = now;
        });
        const nlohmann::json attrs = {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}};
        if (ok) {
          log::info("run completed", attrs);
        } else if (retry_in) {
          auto a = attrs;
          a["error"] = value.value("message", "");
          a["retry_in_ms"] = retry_in->count();
          log::warn("attempt failed, retrying", a);
          self->delayed_send(self, *retry_in, start_atom::value, run_id);
        } else {
          auto a = attrs;
          a["error"] = value.value("message", "");
          log::warn("run failed", a);
        }
      },
      [=](drain_atom) { return caf::unit; },
  };
}

}  // namespace

caf::actor spawn_task_supervisor(caf::actor_system& sys, std::shared_ptr<supervisor_env> env) {
  return sys.spawn(task_supervisor, std::move(env));
}

}  // namespace taskhost::actors
