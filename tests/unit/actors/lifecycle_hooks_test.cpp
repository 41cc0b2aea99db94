// Lifecycle hooks as message stages: exact order, errors per stage, catch_error answers, and the
// hooks that fire when a run is ended from outside. Real plugins (fixture-hooks and a second plugin
// with a global hook), real actors, real executor.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "actors/deployment_runtime.hpp"
#include "support/in_process.hpp"

using namespace std::chrono_literals;
using taskhost::deployment_runtime;
using taskhost::json;
using taskhost::run_record;
using taskhost::run_status;
namespace fs = std::filesystem;

namespace {

class LifecycleHooksTest : public ::testing::Test {
protected:
  std::string trigger(deployment_runtime& rt, const std::string& task, json payload = json::object(), int64_t max_duration_ms = 0) {
    taskhost::trigger_input in;
    in.task_id = task;
    in.payload = std::move(payload);
    in.max_duration_ms = max_duration_ms;
    auto o = taskhost::test::trigger_run(rt, std::move(in));
    EXPECT_EQ(o.status, 200) << o.error;
    return o.run_id;
  }

  run_record wait_final(deployment_runtime& rt, const std::string& id) { return taskhost::test::wait_final(rt, id); }

  /// The run's log lines as "attempt:message", the hooks' own trace of the stage order.
  static std::vector<std::string> trace(const run_record& r) {
    std::vector<std::string> out;
    for (const auto& l : r.logs) out.push_back(std::to_string(l.attempt) + ":" + l.message);
    return out;
  }

  taskhost::test::temp_deployment dep_{{taskhost::test::fixture_plugin("fixture_hooks"), taskhost::test::fixture_plugin("fixture_hooks_other")}, 4};
  taskhost::test::temp_dir& tmp_ = dep_.tmp;
  taskhost::config::deployment& cfg_ = dep_.cfg;
};

using lines = std::vector<std::string>;

}  // namespace

TEST_F(LifecycleHooksTest, SuccessRunsEveryStageInOrder) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-ok"));
  EXPECT_EQ(r.status, run_status::completed);
  EXPECT_EQ(trace(r), (lines{"1:init:global", "1:init:task", "1:on_start:global", "1:on_start:other", "1:on_start:task",
                             "1:on_start_attempt:global", "1:on_start_attempt:task", "1:run", "1:on_success:global",
                             "1:on_success:task", "1:on_complete:global", "1:on_complete:task", "1:cleanup:global",
                             "1:cleanup:task"}));
  ASSERT_EQ(r.attempts.size(), 1u);
  std::vector<std::string> stages;
  for (const auto& s : r.attempts[0].stages) stages.push_back(s.name);
  EXPECT_EQ(stages, (lines{"init", "on_start", "on_start_attempt", "run", "on_success", "on_complete", "cleanup"}));
  EXPECT_EQ(r.logs.back().attributes["status"], "COMPLETED");
}

TEST_F(LifecycleHooksTest, FailureThenRetryThenSuccess) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-flaky"));
  EXPECT_EQ(r.status, run_status::completed);
  EXPECT_EQ(trace(r), (lines{"1:init:global", "1:init:task", "1:on_start:global", "1:on_start:other", "1:on_start:task",
                             "1:on_start_attempt:global", "1:on_start_attempt:task", "1:run", "1:catch_error:task",
                             "1:catch_error:global", "1:cleanup:global", "1:cleanup:task",
                             // on_start is for the first attempt only
                             "2:init:global", "2:init:task", "2:on_start_attempt:global", "2:on_start_attempt:task",
                             "2:run", "2:on_success:global", "2:on_success:task", "2:on_complete:global",
                             "2:on_complete:task", "2:cleanup:global", "2:cleanup:task"}));
}

TEST_F(LifecycleHooksTest, FinalFailureRunsOnFailureAndOnComplete) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail"));
  EXPECT_EQ(r.status, run_status::failed);
  auto t = trace(r);
  lines last_attempt(t.begin() + static_cast<long>(std::find(t.begin(), t.end(), "2:init:global") - t.begin()), t.end());
  EXPECT_EQ(last_attempt, (lines{"2:init:global", "2:init:task", "2:on_start_attempt:global", "2:on_start_attempt:task",
                                 "2:run", "2:catch_error:task", "2:catch_error:global", "2:on_failure:global",
                                 "2:on_failure:task", "2:on_complete:global", "2:on_complete:task", "2:cleanup:global",
                                 "2:cleanup:task"}));
  EXPECT_EQ(r.logs.back().attributes["ok"], false);
  EXPECT_EQ((*r.error)["stage"], "run");
}

TEST_F(LifecycleHooksTest, AbortSkipsCatchErrorAndRetries) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-abort"));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 1u);
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:catch_error:task"), 0);
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:on_failure:task"), 1);
}

TEST_F(LifecycleHooksTest, ThrowBeforeRunFailsTheAttemptAndIsRetried) {
  for (std::string stage : {"init", "on_start_attempt"}) {
    deployment_runtime rt(cfg_);
    auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"throw_in", stage}}));
    EXPECT_EQ(r.status, run_status::failed) << stage;
    EXPECT_EQ(r.attempts.size(), 2u) << stage << ": retryable";
    auto t = trace(r);
    EXPECT_EQ(std::count(t.begin(), t.end(), "1:run"), 0) << stage << ": run never started";
    EXPECT_EQ((*r.error)["stage"], stage);
    EXPECT_EQ((*r.error)["message"], "hook " + stage + ":task failed on purpose");
    EXPECT_EQ(std::count(t.begin(), t.end(), "2:on_failure:task"), 1) << stage;
  }
}

TEST_F(LifecycleHooksTest, ThrowInOnStartFailsTheFirstAttemptOnly) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-ok", {{"throw_in", "on_start"}}));
  EXPECT_EQ(r.status, run_status::completed) << "on_start does not run again on attempt 2";
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ((*r.attempts[0].error)["stage"], "on_start");
}

TEST_F(LifecycleHooksTest, ThrowAfterRunIsLoggedAndSwallowed) {
  for (std::string stage : {"on_success", "on_complete", "cleanup"}) {
    deployment_runtime rt(cfg_);
    auto r = wait_final(rt, trigger(rt, "hooks-ok", {{"throw_in", stage}}));
    EXPECT_EQ(r.status, run_status::completed) << stage;
    EXPECT_EQ(r.attempts.size(), 1u) << stage;
    auto t = trace(r);
    EXPECT_EQ(std::count(t.begin(), t.end(), "1:hook threw; ignored"), 1) << stage;
    EXPECT_EQ(std::count(t.begin(), t.end(), "1:cleanup:task"), 1) << stage << ": later hooks still ran";
  }
}

TEST_F(LifecycleHooksTest, ThrowInOnFailureIsLoggedAndSwallowed) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"throw_in", "on_failure"}}));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ((*r.error)["message"], "always fails") << "the run's own error, not the hook's";
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "2:hook threw; ignored"), 1);
  EXPECT_EQ(std::count(t.begin(), t.end(), "2:on_complete:task"), 1) << "later hooks still ran";
}

TEST_F(LifecycleHooksTest, CatchErrorCanSkipRetrying) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"answer", "skip"}}));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 1u);
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:catch_error:global"), 0) << "the first answer wins";
}

TEST_F(LifecycleHooksTest, CatchErrorCanRetryAfterADelayOrAtATime) {
  for (std::string answer : {"delay", "at"}) {
    deployment_runtime rt(cfg_);
    auto r = wait_final(rt, trigger(rt, "hooks-flaky", {{"answer", answer}}));
    EXPECT_EQ(r.status, run_status::completed) << answer;
    ASSERT_EQ(r.attempts.size(), 2u) << answer;
    EXPECT_GE(r.attempts[1].started_at - *r.attempts[0].finished_at, 250ms) << answer << " (the policy says 0 ms)";
  }
}

TEST_F(LifecycleHooksTest, CatchErrorCanRetryWithOtherOptions) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"answer", "retry_opts"}}));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 5u) << "the task's policy says 2";
}

TEST_F(LifecycleHooksTest, CatchErrorCanReplaceTheError) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"answer", "replace"}}));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ((*r.error)["message"], "replaced by catch_error");
  EXPECT_EQ((*r.error)["name"], "Friendly");
  EXPECT_EQ((*r.attempts[0].error)["message"], "replaced by catch_error");
}

TEST_F(LifecycleHooksTest, ThrowInCatchErrorIsARetryableInternalError) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-fail", {{"answer", "throw"}}));
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ((*r.error)["name"], "CatchErrorHookError");
  EXPECT_NE((*r.error)["message"].get<std::string>().find("catch_error itself failed"), std::string::npos);
}

TEST_F(LifecycleHooksTest, CancelRunsOnCancelOnFailureAndOnCompleteWithTheStatus) {
  deployment_runtime rt(cfg_);
  auto id = trigger(rt, "hooks-wait");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {  // until run has begun: its "run" line is logged
    auto t = trace(*rt.get_run(id));
    if (std::find(t.begin(), t.end(), "1:run") != t.end()) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(2ms);
  }
  taskhost::test::cancel_run(rt, id);
  rt.shutdown();  // waits for the hooks job
  auto r = *rt.get_run(id);
  EXPECT_EQ(r.status, run_status::canceled);
  auto t = trace(r);
  lines after(std::find(t.begin(), t.end(), "1:run") + 1, t.end());
  EXPECT_EQ(after, (lines{"1:on_cancel:global", "1:on_cancel:task", "1:on_failure:global", "1:on_failure:task",
                          "1:on_complete:global", "1:on_complete:task"}));
  EXPECT_EQ(r.logs.back().attributes["status"], "CANCELED");
}

TEST_F(LifecycleHooksTest, TimedOutRunGetsOnFailureAndOnComplete) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "hooks-wait", json::object(), 5000));
  EXPECT_EQ(r.status, run_status::timed_out);
  rt.shutdown();
  r = *rt.get_run(r.id);
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:on_cancel:task"), 0) << "a time-out is not a cancel";
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:on_failure:task"), 1);
  EXPECT_EQ(r.logs.back().message, "on_complete:task");
  EXPECT_EQ(r.logs.back().attributes["status"], "TIMED_OUT");
}

TEST_F(LifecycleHooksTest, GlobalHooksApplyToTasksOfOtherPlugins) {
  fs::copy_file(fs::path(TASKHOST_FIXTURE_DIR) / "fixture_good.so", tmp_ / "plugins" / "fixture_good.so");
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-echo", 1));
  EXPECT_EQ(r.status, run_status::completed);
  EXPECT_EQ(trace(r), (lines{"1:init:global", "1:on_start:global", "1:on_start:other", "1:on_start_attempt:global",
                             "1:on_success:global", "1:on_complete:global", "1:cleanup:global"}));
}
