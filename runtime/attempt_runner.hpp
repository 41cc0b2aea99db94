// Runs one attempt of one run through the plugin C ABI, on the calling thread. The executor calls
// it; nothing here touches actors.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cancel_token.hpp"
#include "runtime/log.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/run_locals.hpp"

namespace taskhost {

struct attempt_outcome {
  bool ok = false;
  /// ok: the output (JSON). Not ok: the error, {"message", "name"?, "stackTrace"?}.
  std::string json;
  /// false when the error must not be retried (abort, payload parse error, ...).
  bool retryable = true;
};

struct attempt_input {
  std::string run_id;
  std::string task_id;
  int attempt = 1;
  std::string payload;  ///< JSON bytes
  uint64_t max_output_bytes = 10u << 20;
  /// Fired by the supervisor on cancel or max duration; the task sees it as ctx.signal.
  std::shared_ptr<cancel_token> token = std::make_shared<cancel_token>();
  /// The run's locals (shared by all its attempts and stages).
  std::shared_ptr<run_locals> locals = std::make_shared<run_locals>();
  /// Also receives every line the task logs (already written to the runtime's log), tagged
  /// attributes included. Called on the executor thread. May be empty.
  std::function<void(log::level, std::string_view msg, const nlohmann::json& attrs)> on_log;
  /// Applies a ctx.metadata operation to the run (see apply_metadata_op); returns "" or why it
  /// was refused. May be empty (then metadata operations are refused).
  std::function<std::string(const nlohmann::json& op)> on_metadata;
  /// The run's current metadata (an object). May be empty.
  std::function<nlohmann::json()> get_metadata;
  /// Serves th_host_api.call (waits, child runs, tokens, steps): returns the response or throws
  /// (the message goes to the plugin as its error). May be empty (then calls are refused).
  std::function<nlohmann::json(const std::string& method, const nlohmann::json& request)> on_call;
  /// True when this execution replays an attempt that was running before a restart.
  bool replay = false;
  /// True when the run's journal holds entries of this attempt's epoch: the code first replays
  /// them, and until it meets its first new operation its log lines and metadata changes (made
  /// already, the first time through) are dropped.
  bool has_journal = false;
};

/// How one step of a task's execution ended.
struct step_outcome {
  enum kind_t { completed, failed, suspended } kind = failed;
  attempt_outcome outcome;   ///< completed / failed
  nlohmann::json wait_for;   ///< suspended: the journal keys it awaits (array)
};

/// One execution of one attempt of a task (for a coroutine task: its frame), stepped until it
/// completes or fails; between steps it may be suspended on waits, holding no thread. Use from
/// one executor thread at a time; destroy it on one (the frame's destructors are user code).
class task_execution {
public:
  task_execution(const loaded_task& task, attempt_input in);
  ~task_execution();
  task_execution(const task_execution&) = delete;
  task_execution& operator=(const task_execution&) = delete;

  /// Starts (first call) or resumes the execution.
  step_outcome step();
  const attempt_input& input() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct hook_stage_outcome {
  bool ok = true;               ///< false: a hook threw and the stage stops at it
  nlohmann::json answer;        ///< catch_error: the first non-null answer; else null
  nlohmann::json error;         ///< when !ok: {"name", "message", "stage", "hook"}
};

/// Calls each hook of one kind in order with `input` ({"payload", "attempt", ...}). When
/// `stop_on_error`, the first throw ends the stage with !ok; otherwise throws are logged (runtime
/// log and the run's log through on_log) and the remaining hooks still run. catch_error stops at
/// the first non-null answer. Never throws.
hook_stage_outcome run_hooks(const std::vector<const loaded_hook*>& hooks, const attempt_input& in,
                             const nlohmann::json& input, bool stop_on_error);

/// The middleware of one attempt, outermost first. Their coroutine frames live in their plugins
/// between stages; this object keeps the run info they point to alive and destroys whatever
/// execution is left when it goes. Use from one executor thread at a time; destroy it on one.
class middleware_chain {
public:
  middleware_chain(std::vector<const loaded_middleware*> mws, attempt_input in);
  ~middleware_chain();
  middleware_chain(const middleware_chain&) = delete;
  middleware_chain& operator=(const middleware_chain&) = delete;

  size_t size() const { return mws_.size(); }
  const std::string& name(size_t i) const { return mws_[i]->name; }
  /// Starts middleware i and runs it to its `co_await next()`. True if it now waits there;
  /// otherwise `error` is set (error JSON) and the execution is gone.
  bool enter(size_t i, std::string& error);
  /// Resumes middleware i with the inner outcome ({"ok", "error"?}) and destroys it. True if it
  /// completed; otherwise `error` is set.
  bool exit(size_t i, const nlohmann::json& outcome, std::string& error);

private:
  struct impl;
  std::vector<const loaded_middleware*> mws_;
  std::unique_ptr<impl> impl_;
};

/// Calls start/step/destroy of the task's descriptor and turns every outcome, including broken
/// plugin answers and oversize or non-JSON outputs, into an attempt_outcome. Never throws.
attempt_outcome run_attempt(const loaded_task& task, const attempt_input& in);

}  // namespace taskhost
