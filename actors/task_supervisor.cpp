// The task supervisor: one actor per task. It turns "run this" into attempts on the executor and
// attempt results into run state, retries, time-outs and cancellations. User code never runs on
// this actor's thread.
#include <caf/all.hpp>

#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/attempt_runner.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {
namespace {

using json = nlohmann::json;

/// What the supervisor tracks between messages: the cancellation signal of each run that has an
/// attempt queued on, or running in, the executor.
struct supervisor_state {
  std::unordered_map<std::string, std::shared_ptr<cancel_token>> tokens;
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

caf::behavior task_supervisor(caf::event_based_actor* self, std::shared_ptr<supervisor_env> env) {
  auto st = std::make_shared<supervisor_state>();
  return {
      [=](start_atom, const std::string& run_id) {
        auto run = env->store->get(run_id);
        if (!run || is_final(run->status)) return;
        attempt_input in;
        in.run_id = run_id;
        in.task_id = run->task_id;
        in.attempt = static_cast<int>(run->attempts.size()) + 1;
        in.payload = run->payload.dump(-1, ' ', false, json::error_handler_t::replace);
        in.max_output_bytes = env->max_output_bytes;
        in.on_log = [store = env->store, run_id, attempt = in.attempt](log::level l, std::string_view msg, const json& attrs) {
          json a = attrs;
          for (auto k : {"run", "task", "attempt"}) a.erase(k);
          store->update(run_id, [&](run_record& r) {
            append_log(r, {clock_type::now(), attempt, std::string(level_name(l)), std::string(msg), std::move(a)});
          });
        };
        st->tokens[run_id] = in.token;
        // DEQUEUED until an executor thread really starts the attempt (all threads may be busy).
        env->store->update(run_id, [&](run_record& r) { r.status = run_status::dequeued; });
        auto me = caf::actor_cast<caf::actor>(self);
        bool posted = env->exec->post([env, in = std::move(in), me]() {
          if (in.token->reason() != TH_CANCEL_NONE) return;  // cancelled while it waited for a thread
          auto started = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch());
          caf::anon_send(me, started_atom::value, in.run_id, in.attempt, int64_t{started.count()});
          attempt_outcome o = run_attempt(env->task, in);
          caf::anon_send(me, done_atom::value, in.run_id, in.attempt, o.ok, std::move(o.json), o.retryable);
        });
        if (!posted) {
          // Shutting down: the attempt never started. Leave the run queued, as it was.
          st->tokens.erase(run_id);
          env->store->update(run_id, [&](run_record& r) { r.status = run_status::queued; });
        }
      },
      [=](started_atom, const std::string& run_id, int attempt, int64_t started_ms) {
        const time_point at{std::chrono::milliseconds(started_ms)};
        std::chrono::milliseconds limit = env->max_duration;
        bool live = false;
        env->store->update(run_id, [&](run_record& r) {
          if (is_final(r.status)) return;  // cancelled meanwhile
          live = true;
          r.status = run_status::executing;
          if (!r.started_at) r.started_at = at;
          r.attempts.push_back({attempt, attempt_status::executing, at, std::nullopt, std::nullopt});
          if (r.max_duration_ms > 0) limit = std::chrono::milliseconds(r.max_duration_ms);
        });
        // The deadline counts from the moment the attempt started, not from now.
        if (live && limit.count() > 0)
          self->delayed_send(self, std::max(limit - (clock_type::now() - at), clock_type::duration::zero()),
                             timeout_atom::value, run_id, attempt);
      },
      [=](timeout_atom, const std::string& run_id, int attempt) {
        bool timed_out = false;
        std::string message;
        env->store->update(run_id, [&](run_record& r) {
          if (is_final(r.status) || r.attempts.empty() || r.attempts.back().number != attempt ||
              r.attempts.back().finished_at)
            return;  // the attempt ended in time
          auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - r.attempts.back().started_at);
          message = "attempt " + std::to_string(attempt) + " ran past its max duration (" + std::to_string(limit.count()) + " ms)";
          finish_run(r, run_status::timed_out, attempt_status::failed,
                     json{{"name", "MaxDurationExceededError"}, {"message", message}});
          timed_out = true;
        });
        if (!timed_out) return;
        if (auto t = st->tokens.find(run_id); t != st->tokens.end()) {
          t->second->cancel(TH_CANCEL_TIMED_OUT);
          st->tokens.erase(t);
        }
        log::warn("run timed out", {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}, {"error", message}});
      },
      [=](cancel_atom, const std::string& run_id) {
        bool cancelled = false;
        env->store->update(run_id, [&](run_record& r) {
          if (is_final(r.status)) return;  // finished runs stay as they are
          finish_run(r, run_status::canceled, attempt_status::canceled, std::nullopt);
          cancelled = true;
        });
        if (auto t = st->tokens.find(run_id); t != st->tokens.end()) {
          t->second->cancel(TH_CANCEL_CANCELED);
          st->tokens.erase(t);
        }
        if (cancelled) log::info("run canceled", {{"run", run_id}, {"task", env->task.id}});
        return true;
      },
      [=](done_atom, const std::string& run_id, int attempt, bool ok, const std::string& body, bool retryable) {
        auto now = clock_type::now();
        auto value = json::parse(body, nullptr, false);
        if (value.is_discarded()) value = json{{"message", body}};
        std::optional<std::chrono::milliseconds> retry_in;
        bool late = false;  // the run was cancelled or timed out while this attempt ran
        env->store->update(run_id, [&](run_record& r) {
          if (is_final(r.status)) {
            late = true;
            return;
          }
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
          r.status = run_status::failed;
          r.error = value;
          r.finished_at = now;
        });
        st->tokens.erase(run_id);
        json attrs = {{"run", run_id}, {"task", env->task.id}, {"attempt", attempt}};
        if (late) {
          log::info("attempt returned after its run ended (canceled or timed out); result dropped", attrs);
        } else if (ok) {
          log::info("run completed", attrs);
        } else if (retry_in) {
          attrs["error"] = value.value("message", "");
          attrs["retry_in_ms"] = retry_in->count();
          log::warn("attempt failed, retrying", attrs);
          self->delayed_send(self, *retry_in, start_atom::value, run_id);
        } else {
          attrs["error"] = value.value("message", "");
          log::warn("run failed", attrs);
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
