// The deployment runtime in-process (the embedding API): real plugins, real actors, real executor.
#include "actors/deployment_runtime.hpp"

#include <gtest/gtest.h>

#include <future>
#include <iostream>
#include <thread>

#include "support/in_process.hpp"

using namespace std::chrono_literals;
using taskhost::deployment_runtime;
using taskhost::run_record;
using taskhost::run_status;
using taskhost::trigger_input;
using taskhost::trigger_outcome;
namespace fs = std::filesystem;

namespace {

class DeploymentRuntimeTest : public ::testing::Test {
protected:
  DeploymentRuntimeTest() {
    cfg_.default_retry = {.max_attempts = 3, .factor = 2, .min_timeout_ms = 0, .max_timeout_ms = 0, .randomize = false};
  }

  trigger_outcome trigger(deployment_runtime& rt, const std::string& task, taskhost::json payload, int max_attempts = 0,
                          int64_t max_duration_ms = 0) {
    trigger_input in;
    in.task_id = task;
    in.payload = std::move(payload);
    in.max_attempts = max_attempts;
    in.max_duration_ms = max_duration_ms;
    return taskhost::test::trigger_run(rt, std::move(in));
  }

  trigger_outcome cancel(deployment_runtime& rt, const std::string& id) { return taskhost::test::cancel_run(rt, id); }

  void wait_status(deployment_runtime& rt, const std::string& id, run_status s) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (rt.get_run(id)->status != s && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(rt.get_run(id)->status, s);
  }

  run_record wait_final(deployment_runtime& rt, const std::string& id, std::chrono::milliseconds timeout = 20s) {
    return taskhost::test::wait_final(rt, id, timeout);
  }

  taskhost::test::temp_deployment dep_{{taskhost::test::fixture_plugin("fixture_good"), taskhost::test::built_plugin("hello")}, 4};
  taskhost::test::temp_dir& tmp_ = dep_.tmp;
  taskhost::config::deployment& cfg_ = dep_.cfg;
};

}  // namespace

TEST_F(DeploymentRuntimeTest, HelloWorldCompletesWithItsOutput) {
  deployment_runtime rt(cfg_);
  EXPECT_EQ(rt.plugins().tasks.size(), 14u);  // hello.so: hello-world and daily-report
  auto o = trigger(rt, "hello-world", {{"message", "Hello world!"}});
  ASSERT_EQ(o.status, 200) << o.error;
  EXPECT_EQ(o.run_id.rfind("run_", 0), 0u);
  EXPECT_EQ(o.run_id.size(), 4u + 21u);
  auto r = wait_final(rt, o.run_id);
  EXPECT_EQ(r.status, run_status::completed);
  EXPECT_EQ(*r.output, taskhost::json({{"echo", "Hello world!"}}));
  ASSERT_EQ(r.attempts.size(), 1u);
  EXPECT_TRUE(r.started_at && r.finished_at);
}

// An embedder's answer callback runs on the store's writer thread. One that throws is logged; its
// run still starts and completes, and the runtime goes on taking triggers.
TEST_F(DeploymentRuntimeTest, AnAnswerCallbackThatThrowsLosesNeitherTheRunNorTheRuntime) {
  deployment_runtime rt(cfg_);
  std::promise<std::string> id;
  trigger_input in;
  in.task_id = "hello-world";
  in.payload = {{"message", "thrown"}};
  rt.trigger(std::move(in), [&](trigger_outcome o) {
    id.set_value(o.run_id);
    throw std::runtime_error("the embedder's bug");
  });
  auto f = id.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  const std::string thrown = f.get();
  ASSERT_FALSE(thrown.empty());
  EXPECT_EQ(wait_final(rt, thrown).status, run_status::completed);
  auto o = trigger(rt, "hello-world", {{"message", "after"}});
  ASSERT_EQ(o.status, 200) << o.error;
  EXPECT_EQ(wait_final(rt, o.run_id).status, run_status::completed);
}

// A task without middleware or hooks after run: its stage, its attempt's end and the run's
// COMPLETED state are one change of the store. What was committed, read back after a restart:
TEST_F(DeploymentRuntimeTest, RunWithoutHooksRecordsItsEndCompletelyInTheStore) {
  std::string id;
  {
    deployment_runtime rt(cfg_);
    auto o = trigger(rt, "hello-world", {{"message", "stored"}});
    ASSERT_EQ(o.status, 200) << o.error;
    id = o.run_id;
    ASSERT_EQ(wait_final(rt, id).status, run_status::completed);
  }
  deployment_runtime rt(cfg_);
  auto r = rt.get_run(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, run_status::completed);
  ASSERT_TRUE(r->output);
  EXPECT_EQ(*r->output, taskhost::json({{"echo", "stored"}}));
  EXPECT_FALSE(r->error);
  ASSERT_EQ(r->attempts.size(), 1u);
  const auto& a = r->attempts[0];
  EXPECT_EQ(a.status, taskhost::attempt_status::completed);
  ASSERT_TRUE(a.finished_at && r->finished_at && r->started_at);
  EXPECT_EQ(taskhost::to_us(*a.finished_at), taskhost::to_us(*r->finished_at));
  EXPECT_LE(taskhost::to_us(a.started_at), taskhost::to_us(*a.finished_at));
  ASSERT_EQ(a.stages.size(), 1u);
  EXPECT_EQ(a.stages[0].name, "run");
  EXPECT_TRUE(a.stages[0].ok);
  EXPECT_FALSE(a.stages[0].error);
}

TEST_F(DeploymentRuntimeTest, ACancelRacingARunsEndLeavesOneConsistentOutcome) {
  // A run without hooks records its own end on its executor thread while its supervisor may be
  // cancelling it: whichever reaches the store first wins, and the run shows that one only.
  deployment_runtime rt(cfg_);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    auto o = trigger(rt, "hello-world", {{"message", std::to_string(i)}});
    ASSERT_EQ(o.status, 200) << o.error;
    ids.push_back(o.run_id);
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50 * (i % 7)));
    auto c = cancel(rt, o.run_id);
    ASSERT_TRUE(c.status == 200 || c.status == 400) << c.status << " " << c.error;  // 400: it had finished
  }
  size_t completed = 0, canceled = 0;
  for (const auto& id : ids) {
    auto r = wait_final(rt, id);
    SCOPED_TRACE(id);
    if (r.status == run_status::completed) {
      ++completed;
      ASSERT_EQ(r.attempts.size(), 1u);
      EXPECT_EQ(r.attempts[0].status, taskhost::attempt_status::completed);
      ASSERT_TRUE(r.output);
      EXPECT_TRUE(r.output->contains("echo"));
    } else {
      ASSERT_EQ(r.status, run_status::canceled);
      ++canceled;
      EXPECT_FALSE(r.output) << "a canceled run has no output";
      for (const auto& a : r.attempts) EXPECT_NE(a.status, taskhost::attempt_status::completed);
    }
  }
  EXPECT_EQ(completed + canceled, ids.size());
  std::cout << completed << " completed, " << canceled << " canceled\n";
  EXPECT_GT(canceled, 0u) << "no cancel came in time: the race was not exercised";
  // Every run's slot came back: more runs still start and finish.
  EXPECT_EQ(wait_final(rt, trigger(rt, "hello-world", {{"message", "after"}}).run_id).status, run_status::completed);
}

// In an idle runtime the thread that commits a new run starts it (adopt_new_run), and its
// supervisor hears of it afterwards. From there each path ends as it does through the supervisor:
// completing, failing and being retried, being canceled while it runs, waiting for a slot of its
// queue. Runs with something to arm before their code (a deadline, a TTL, a delay) and tasks with
// a max duration of their own go to their supervisor.
TEST_F(DeploymentRuntimeTest, AnIdleRuntimesNewRunsAreStartedByTheThreadThatCommitsThem) {
  cfg_.queues.push_back({.name = "one", .concurrency_limit = 1});
  deployment_runtime rt(cfg_);
  for (int i = 0; i < 20; ++i) {
    auto o = trigger(rt, "fixture-echo", {{"i", i}});
    ASSERT_EQ(o.status, 200) << o.error;
    auto r = wait_final(rt, o.run_id);
    ASSERT_EQ(r.status, run_status::completed);
    EXPECT_EQ((*r.output)["payload"]["i"], i);
  }
  EXPECT_EQ(rt.start_stats().at_commit, 20u);
  EXPECT_EQ(rt.start_stats().to_supervisor, 0u);

  auto flaky = wait_final(rt, trigger(rt, "fixture-flaky", {{"succeed_on", 3}}).run_id);
  EXPECT_EQ(flaky.status, run_status::completed);
  EXPECT_EQ(flaky.attempts.size(), 3u) << "its supervisor retried it";

  auto waiting = trigger(rt, "fixture-wait-cancel", {{"max_s", 30}}).run_id;
  wait_status(rt, waiting, run_status::executing);
  EXPECT_EQ(cancel(rt, waiting).status, 200);
  EXPECT_EQ(wait_final(rt, waiting).status, run_status::canceled);

  // A queue of one: the second run waits for the first's slot, and its supervisor starts it.
  std::vector<std::string> queued;
  for (int i = 0; i < 2; ++i) {
    trigger_input in;
    in.task_id = "fixture-sleep";
    in.payload = {{"ms", 400}};  // the second is triggered (and queued) long before the first ends
    in.queue = "one";
    auto o = taskhost::test::trigger_run(rt, std::move(in));
    ASSERT_EQ(o.status, 200) << o.error;
    queued.push_back(o.run_id);
  }
  EXPECT_EQ(rt.get_run(queued[1])->status, run_status::queued);
  auto first = wait_final(rt, queued[0]), second = wait_final(rt, queued[1]);
  ASSERT_EQ(first.status, run_status::completed);
  ASSERT_EQ(second.status, run_status::completed);
  EXPECT_GE(taskhost::to_us(*second.started_at), taskhost::to_us(*first.finished_at));
  EXPECT_EQ(rt.start_stats().at_commit, 24u);
  EXPECT_EQ(rt.start_stats().to_supervisor, 0u);

  // Something to arm before the code: the supervisor starts them.
  EXPECT_EQ(wait_final(rt, trigger(rt, "fixture-echo", {{"deadline", true}}, 0, 10'000).run_id).status, run_status::completed);
  trigger_input ttl;
  ttl.task_id = "fixture-echo";
  ttl.ttl = "1m";
  ttl.ttl_ms = 60'000;
  EXPECT_EQ(wait_final(rt, taskhost::test::trigger_run(rt, std::move(ttl)).run_id).status, run_status::completed);
  EXPECT_EQ(wait_final(rt, trigger(rt, "fixture-defined-max-duration", {}).run_id).status, run_status::completed);
  trigger_input delayed;
  delayed.task_id = "fixture-echo";
  delayed.delay_until = std::chrono::system_clock::now() + 50ms;
  auto d = wait_final(rt, taskhost::test::trigger_run(rt, std::move(delayed)).run_id);
  EXPECT_EQ(d.status, run_status::completed);
  EXPECT_GE(taskhost::to_us(*d.started_at) - taskhost::to_us(d.created_at), 40'000) << "it waited for its delay";
  EXPECT_EQ(rt.start_stats().at_commit, 24u);
  EXPECT_EQ(rt.start_stats().to_supervisor, 4u);
}

// A cancel that comes right after the trigger may reach the supervisor before it has heard that
// the committing thread started the run, or while the run's code begins: the code then either
// never runs or sees its signal — never runs on unaware of a cancel (with max_s 5, a missed
// signal shows as fired=false).
TEST_F(DeploymentRuntimeTest, ACancelRightAfterTheTriggerStopsARunStartedAtItsCommit) {
  deployment_runtime rt(cfg_);
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    auto o = trigger(rt, "fixture-wait-cancel", {{"max_s", 5}});
    ASSERT_EQ(o.status, 200) << o.error;
    ids.push_back(o.run_id);
    if (i % 2) std::this_thread::sleep_for(std::chrono::microseconds(20 * (i % 9)));
    ASSERT_EQ(cancel(rt, o.run_id).status, 200);
  }
  ASSERT_GT(rt.start_stats().at_commit, 0u);
  rt.shutdown();  // waits for the runs' code, which their signals woke
  size_t ran = 0;
  for (const auto& id : ids) {
    SCOPED_TRACE(id);
    auto r = rt.get_run(id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, run_status::canceled);
    EXPECT_FALSE(r->output);
    if (r->attempts.empty()) {
      EXPECT_TRUE(r->logs.empty()) << "code ran for a run canceled before it began";
      continue;
    }
    EXPECT_EQ(r->attempts[0].status, taskhost::attempt_status::canceled);
    for (const auto& l : r->logs)
      if (l.message == "woke") {
        ++ran;
        EXPECT_EQ(l.attributes["fired"], true) << "its code ran on without its cancel";
      }
  }
  std::cout << ran << " of " << ids.size() << " runs' code began before the cancel\n";
}

TEST_F(DeploymentRuntimeTest, FailedAttemptIsRetriedUntilItSucceeds) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-flaky", {{"succeed_on", 3}}).run_id);
  EXPECT_EQ(r.status, run_status::completed);
  ASSERT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ(r.attempts[0].status, taskhost::attempt_status::failed);
  EXPECT_EQ((*r.attempts[0].error)["message"], "flaky attempt 1");
  EXPECT_EQ(r.attempts[2].status, taskhost::attempt_status::completed);
  EXPECT_EQ((*r.output)["succeeded_on"], 3);
}

TEST_F(DeploymentRuntimeTest, RunFailsOnceAttemptsAreUsedUp) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-throw", nullptr).run_id);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 3u);
  EXPECT_EQ((*r.error)["message"], "boom: the task failed");
  EXPECT_FALSE(r.output);
}

TEST_F(DeploymentRuntimeTest, TriggerMaxAttemptsBeatsTheTaskPolicy) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-throw", nullptr, 1).run_id);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 1u);
}

TEST_F(DeploymentRuntimeTest, TaskOverrideFromConfigApplies) {
  cfg_.tasks["fixture-throw"] = {"fixture-throw", {.max_attempts = 2, .factor = 1, .min_timeout_ms = 0, .max_timeout_ms = 0, .randomize = false}, {}};
  deployment_runtime rt(cfg_);
  EXPECT_EQ(wait_final(rt, trigger(rt, "fixture-throw", nullptr).run_id).attempts.size(), 2u);
}

TEST_F(DeploymentRuntimeTest, AbortFailsAtOnceWithoutRetry) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-abort", nullptr).run_id);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 1u);
  EXPECT_EQ((*r.error)["name"], "AbortTaskRunError");
}

TEST_F(DeploymentRuntimeTest, RetryWaitsTheBackoffDelay) {
  cfg_.default_retry = {.max_attempts = 2, .factor = 2, .min_timeout_ms = 300, .max_timeout_ms = 300, .randomize = false};
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-throw", nullptr).run_id);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_GE(r.attempts[1].started_at - *r.attempts[0].finished_at, 290ms);  // a lower bound only
}

TEST_F(DeploymentRuntimeTest, UnknownTaskIsRefusedAndNothingIsRecorded) {
  deployment_runtime rt(cfg_);
  auto o = trigger(rt, "no-such-task", nullptr);
  EXPECT_EQ(o.status, 404);
  EXPECT_EQ(o.error, "Task 'no-such-task' not found");
  EXPECT_TRUE(o.run_id.empty());
}

TEST_F(DeploymentRuntimeTest, ManyRunsAllComplete) {
  deployment_runtime rt(cfg_);
  std::vector<std::string> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(trigger(rt, "fixture-echo", i).run_id);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto r = wait_final(rt, ids[i]);
    ASSERT_EQ(r.status, run_status::completed);
    ASSERT_EQ((*r.output)["payload"], int(i));
  }
}

TEST_F(DeploymentRuntimeTest, ShutdownLetsRunningAttemptsFinishThenRefusesTriggers) {
  deployment_runtime rt(cfg_);
  auto id = trigger(rt, "fixture-sleep", {{"ms", 300}}).run_id;
  while (rt.get_run(id)->status != run_status::executing) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(rt.shutdown());
  auto r = rt.get_run(id);
  EXPECT_EQ(r->status, run_status::completed) << "finished within the grace period and recorded";
  EXPECT_EQ(trigger(rt, "hello-world", nullptr).status, 503);
}

TEST_F(DeploymentRuntimeTest, ShutdownGivesUpAfterTheGracePeriod) {
  cfg_.shutdown_grace_ms = 100;
  auto rt = std::make_unique<deployment_runtime>(cfg_);
  auto id = trigger(*rt, "fixture-sleep", {{"ms", 1500}}).run_id;
  while (rt->get_run(id)->status != run_status::executing) std::this_thread::sleep_for(1ms);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(rt->shutdown());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);
  // The abandoned attempt still owns its thread; let it end before the runtime is destroyed.
  std::this_thread::sleep_for(1600ms);
}

TEST_F(DeploymentRuntimeTest, MissingPluginsDirIsAStartError) {
  cfg_.plugins_dir = tmp_ / "nope";
  try {
    deployment_runtime rt(cfg_);
    FAIL() << "started without plugins_dir";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a folder"), std::string::npos) << e.what();
  }
}

TEST_F(DeploymentRuntimeTest, CancelQueuedRunEndsItAtOnceAndItNeverRuns) {
  cfg_.executor_threads = 1;
  deployment_runtime rt(cfg_);
  auto busy = trigger(rt, "fixture-sleep", {{"ms", 300}}).run_id;
  wait_status(rt, busy, run_status::executing);
  auto waiting = trigger(rt, "fixture-echo", 1).run_id;
  wait_status(rt, waiting, run_status::dequeued);  // all threads busy: picked, not started
  auto o = cancel(rt, waiting);
  EXPECT_EQ(o.status, 200);
  auto r = rt.get_run(waiting);
  EXPECT_EQ(r->status, run_status::canceled) << "recorded before cancel() answered";
  EXPECT_TRUE(r->finished_at);
  EXPECT_EQ(wait_final(rt, busy).status, run_status::completed);
  rt.shutdown();  // every attempt that was going to run has run
  EXPECT_TRUE(rt.get_run(waiting)->attempts.empty()) << "the cancelled run's code never ran";
  EXPECT_FALSE(rt.get_run(waiting)->output);
}

TEST_F(DeploymentRuntimeTest, CancelExecutingRunFiresItsSignalAndDropsItsLateResult) {
  deployment_runtime rt(cfg_);
  auto id = trigger(rt, "fixture-wait-cancel", {{"max_s", 30}}).run_id;
  wait_status(rt, id, run_status::executing);
  EXPECT_EQ(cancel(rt, id).status, 200);
  auto r = rt.get_run(id);
  EXPECT_EQ(r->status, run_status::canceled);
  ASSERT_EQ(r->attempts.size(), 1u);
  EXPECT_EQ(r->attempts[0].status, taskhost::attempt_status::canceled);
  rt.shutdown();  // waits for the task, which the signal woke long before its 30 s
  r = rt.get_run(id);
  EXPECT_EQ(r->status, run_status::canceled) << "the task's own result does not change a final run";
  EXPECT_FALSE(r->output);
  ASSERT_EQ(r->logs.size(), 2u);
  EXPECT_EQ(r->logs[1].attributes["reason"], TH_CANCEL_CANCELED);
}

TEST_F(DeploymentRuntimeTest, CancelDuringRetryDelayStopsFurtherAttempts) {
  cfg_.default_retry = {.max_attempts = 3, .factor = 1, .min_timeout_ms = 300, .max_timeout_ms = 300, .randomize = false};
  deployment_runtime rt(cfg_);
  auto id = trigger(rt, "fixture-throw", nullptr).run_id;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rt.get_run(id)->attempts.empty() || !rt.get_run(id)->attempts[0].finished_at) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(cancel(rt, id).status, 200);
  std::this_thread::sleep_for(500ms);  // past the retry delay
  auto r = rt.get_run(id);
  EXPECT_EQ(r->status, run_status::canceled);
  EXPECT_EQ(r->attempts.size(), 1u);
}

TEST_F(DeploymentRuntimeTest, CancelFinishedRunLeavesItAndUnknownRunIs404) {
  deployment_runtime rt(cfg_);
  auto id = trigger(rt, "fixture-echo", 1).run_id;
  wait_final(rt, id);
  EXPECT_EQ(cancel(rt, id).status, 200);
  EXPECT_EQ(rt.get_run(id)->status, run_status::completed);
  auto unknown = cancel(rt, "run_nope");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error, "Run not found: run_nope");
}

TEST_F(DeploymentRuntimeTest, AttemptPastItsMaxDurationIsTimedOutAndNotRetried) {
  deployment_runtime rt(cfg_);
  // The task ignores its signal: the run is recorded TIMED_OUT at the deadline all the same.
  auto id = trigger(rt, "fixture-ignore-cancel", {{"ms", 8000}}, 0, 5000).run_id;
  wait_status(rt, id, run_status::executing);
  auto started = *rt.get_run(id)->started_at;
  auto r = wait_final(rt, id, 20s);
  EXPECT_EQ(r.status, run_status::timed_out);
  EXPECT_GE(*r.finished_at - started, 4900ms);
  EXPECT_LT(*r.finished_at - started, 7500ms) << "at the deadline, not when the code returned";
  ASSERT_EQ(r.attempts.size(), 1u) << "TIMED_OUT is never retried";
  EXPECT_EQ(r.attempts[0].status, taskhost::attempt_status::failed);
  EXPECT_EQ((*r.error)["name"], "MaxDurationExceededError");
  EXPECT_NE((*r.error)["message"].get<std::string>().find("ran past its max duration"), std::string::npos);
}

TEST_F(DeploymentRuntimeTest, TaskDefinitionRetryBeatsYamlAndTriggerBeatsBoth) {
  cfg_.tasks["fixture-defined-retry"] = {"fixture-defined-retry", {.max_attempts = 2, .factor = 1, .min_timeout_ms = 0, .max_timeout_ms = 0, .randomize = false}, {}};
  deployment_runtime rt(cfg_);
  EXPECT_EQ(wait_final(rt, trigger(rt, "fixture-defined-retry", nullptr).run_id).attempts.size(), 4u);
  EXPECT_EQ(wait_final(rt, trigger(rt, "fixture-defined-retry", nullptr, 1).run_id).attempts.size(), 1u);
}

TEST_F(DeploymentRuntimeTest, TaskLogsAreKeptWithTheRun) {
  deployment_runtime rt(cfg_);
  auto r = wait_final(rt, trigger(rt, "fixture-logs", {{"lines", 2}}).run_id);
  ASSERT_EQ(r.logs.size(), 4u);
  EXPECT_EQ(r.logs[0].message, "line");
  EXPECT_EQ(r.logs[0].level, "warn");
  EXPECT_EQ(r.logs[0].attributes, taskhost::json({{"i", 0}})) << "run/task/attempt tags are not repeated";
  EXPECT_EQ(r.logs[0].attempt, 1);
  EXPECT_EQ(r.logs[2].level, "debug") << "kept even when the runtime's log level hides it";
  EXPECT_EQ(r.logs[3].attributes["code"], 7);
  auto many = wait_final(rt, trigger(rt, "fixture-logs", {{"lines", 1500}}).run_id);
  EXPECT_EQ(many.logs.size(), taskhost::max_log_lines_per_run);
  EXPECT_TRUE(many.logs_truncated);
}
