// Durable runs in-process: recovery of what a previous process left unfinished, delay, TTL,
// idempotency and metadata through the embedding API, on a real SQLite file.
#include "actors/deployment_runtime.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "runtime/ids.hpp"
#include "runtime/run_store.hpp"
#include "support/in_process.hpp"

using namespace std::chrono_literals;
using namespace taskhost;
using taskhost::test::temp_deployment;
namespace fs = std::filesystem;

namespace {

run_record stored_run(const std::string& task, run_status s, json payload = json::object()) {
  run_record r;
  r.id = new_run_id();
  r.task_id = task;
  r.status = s;
  r.payload = std::move(payload);
  r.created_at = r.updated_at = clock_type::now() - 1s;
  return r;
}

void put(run_store& s, run_record r) {
  bool done = false;
  s.create(std::move(r), [&](create_result c) { done = c.status == 200; });
  ASSERT_TRUE(s.flush());
  ASSERT_TRUE(done);
}

run_record wait_status(deployment_runtime& rt, const std::string& id, run_status want, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = rt.get_run(id);
    if (!r) throw std::runtime_error("no run " + id);
    if (r->status == want || std::chrono::steady_clock::now() > deadline) return *r;
    std::this_thread::sleep_for(2ms);
  }
}

/// The good and durable fixtures, 2 executor threads, retries without delay.
struct durable_deployment : temp_deployment {
  durable_deployment() : temp_deployment({test::fixture_plugin("fixture_good"), test::fixture_plugin("fixture_durable")}, 2) {
    cfg.default_retry = {.max_attempts = 3, .factor = 2, .min_timeout_ms = 0, .max_timeout_ms = 0, .randomize = false};
  }
};

}  // namespace

TEST(DurableRunsTest, RestartRecoversQueuedDelayedExecutingAndRetryingRuns) {
  durable_deployment d;
  const auto db = d.cfg.state_dir / "runs.db";
  std::string queued, delayed, interrupted, exhausted, retrying, orphan, succeeded, failed_last;
  auto delayed_until = clock_type::now() + 5s;  // long enough to be seen DELAYED after a slow start (sanitizers)
  {
    // What a previous process left behind when it was killed.
    run_store s({db.string()});
    auto q = stored_run("fixture-echo", run_status::queued, {{"q", 1}});
    queued = q.id;
    put(s, q);
    auto dl = stored_run("fixture-echo", run_status::delayed);
    dl.delay_until = delayed_until;
    delayed = dl.id;
    put(s, dl);
    auto e = stored_run("fixture-echo", run_status::executing);
    e.attempts.push_back({1, attempt_status::executing, clock_type::now() - 500ms, std::nullopt, std::nullopt, {}});
    e.started_at = e.attempts[0].started_at;
    interrupted = e.id;
    put(s, e);
    auto x = stored_run("fixture-echo", run_status::executing);
    x.max_attempts = 1;
    x.attempts.push_back({1, attempt_status::executing, clock_type::now() - 500ms, std::nullopt, std::nullopt, {}});
    exhausted = x.id;
    put(s, x);
    auto r = stored_run("fixture-flaky", run_status::executing, {{"succeed_on", 2}});
    r.attempts.push_back({1, attempt_status::failed, clock_type::now() - 1s, clock_type::now() - 900ms, json{{"message", "flaky"}}, {}});
    r.retry_at = clock_type::now() + 300ms;
    retrying = r.id;
    put(s, r);
    // Stopped while the hooks after a successful attempt ran: done, not run again.
    auto c = stored_run("fixture-echo", run_status::executing);
    c.attempts.push_back({1, attempt_status::completed, clock_type::now() - 900ms, clock_type::now() - 800ms, std::nullopt, {}});
    c.output = json{{"done", "before the stop"}};
    succeeded = c.id;
    put(s, c);
    // Stopped after its last allowed attempt failed, before the run was marked FAILED.
    auto f = stored_run("fixture-throw", run_status::executing);
    f.max_attempts = 1;
    f.attempts.push_back({1, attempt_status::failed, clock_type::now() - 900ms, clock_type::now() - 800ms, json{{"message", "boom"}}, {}});
    failed_last = f.id;
    put(s, f);
    auto o = stored_run("task-not-deployed-anymore", run_status::queued);
    orphan = o.id;
    put(s, o);
  }

  deployment_runtime rt(d.cfg);
  // The delayed run keeps its time: still DELAYED now, COMPLETED after it (checked below).
  auto dl = rt.get_run(delayed);
  ASSERT_TRUE(dl);
  // Read before its time (timers may fire 5 ms early), it must still be DELAYED. Under TSan on a
  // loaded machine the start alone has taken more than 3 s; then only the check below holds.
  if (clock_type::now() + 10ms < delayed_until) {
    EXPECT_EQ(dl->status, run_status::delayed);
    ASSERT_TRUE(dl->delay_until);
    EXPECT_EQ(to_ms(*dl->delay_until), to_ms(delayed_until));
  }

  auto q = wait_status(rt, queued, run_status::completed);
  EXPECT_EQ(q.status, run_status::completed);
  EXPECT_EQ(q.output->at("payload"), json({{"q", 1}}));

  auto i = wait_status(rt, interrupted, run_status::completed);
  ASSERT_EQ(i.status, run_status::completed);
  ASSERT_EQ(i.attempts.size(), 2u) << "the interrupted attempt counts, and a new one ran";
  EXPECT_EQ(i.attempts[0].status, attempt_status::interrupted);
  EXPECT_EQ(i.attempts[0].error->at("name"), "TaskRunInterrupted");
  EXPECT_TRUE(i.attempts[0].finished_at);
  EXPECT_EQ(i.attempts[1].status, attempt_status::completed);
  EXPECT_EQ(i.output->at("attempt"), 2);

  auto x = wait_status(rt, exhausted, run_status::crashed);
  EXPECT_EQ(x.status, run_status::crashed);
  EXPECT_EQ(x.attempts.at(0).status, attempt_status::interrupted);
  EXPECT_NE(x.error->at("message").get<std::string>().find("no attempts are left"), std::string::npos);

  dl = wait_status(rt, delayed, run_status::completed);
  ASSERT_EQ(dl->status, run_status::completed);
  EXPECT_GE(to_ms(*dl->started_at), to_ms(delayed_until));

  auto r = wait_status(rt, retrying, run_status::completed);
  ASSERT_EQ(r.status, run_status::completed);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_GE(to_ms(r.attempts[1].started_at), to_ms(r.attempts[0].finished_at.value()) + 300 - 50) << "its retry time was kept";

  EXPECT_EQ(rt.get_run(orphan)->status, run_status::queued) << "waits for its task to be deployed again";

  auto c = rt.get_run(succeeded);
  EXPECT_EQ(c->status, run_status::completed);
  EXPECT_EQ(c->attempts.size(), 1u) << "a succeeded attempt is never run again";
  EXPECT_EQ(*c->output, json({{"done", "before the stop"}}));
  auto f = rt.get_run(failed_last);
  EXPECT_EQ(f->status, run_status::failed);
  EXPECT_EQ(f->attempts.size(), 1u) << "no attempt beyond maxAttempts";
  EXPECT_EQ(f->error->at("message"), "boom");
}

TEST(DurableRunsTest, FinishedRunsSurviveARestart) {
  durable_deployment d;
  std::string id;
  {
    deployment_runtime rt(d.cfg);
    id = test::trigger_run(rt, {.task_id = "fixture-echo", .payload = {{"k", "v"}}, .tags = {"keep"}}).run_id;
    ASSERT_EQ(test::wait_final(rt, id).status, run_status::completed);
  }
  deployment_runtime rt(d.cfg);
  auto r = rt.get_run(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, run_status::completed);
  EXPECT_EQ(r->output->at("payload"), json({{"k", "v"}}));
  EXPECT_EQ(r->tags, std::vector<std::string>{"keep"});
  EXPECT_EQ(rt.list_runs({}).runs.size(), 1u);
}

TEST(DurableRunsTest, DelayedRunStartsAtItsTimeAndCanBeRescheduled) {
  durable_deployment d;
  deployment_runtime rt(d.cfg);
  auto at = clock_type::now() + 300ms;
  auto id = test::trigger_run(rt, {.task_id = "fixture-echo", .delay_until = at}).run_id;
  auto r = rt.get_run(id);
  EXPECT_EQ(r->status, run_status::delayed);
  r = test::wait_final(rt, id);
  ASSERT_EQ(r->status, run_status::completed);
  EXPECT_GE(to_ms(*r->started_at), to_ms(at));

  // A month away, then moved to now.
  auto later = test::trigger_run(rt, {.task_id = "fixture-echo", .delay_until = clock_type::now() + 24h * 30}).run_id;
  std::promise<trigger_outcome> p;
  rt.reschedule(later, clock_type::now() + 50ms, [&](trigger_outcome o) { p.set_value(o); });
  EXPECT_EQ(p.get_future().get().status, 200);
  EXPECT_EQ(test::wait_final(rt, later, 5s).status, run_status::completed);

  std::promise<trigger_outcome> p2;
  rt.reschedule(later, clock_type::now() + 1h, [&](trigger_outcome o) { p2.set_value(o); });
  auto o = p2.get_future().get();
  EXPECT_EQ(o.status, 400);
  EXPECT_EQ(o.error, "Cannot reschedule a run that is not delayed");
}

TEST(DurableRunsTest, RunNotStartedWithinItsTtlExpires) {
  durable_deployment d;
  d.cfg.executor_threads = 1;
  d.cfg.executor_max_threads = 1;  // its one thread is busy and may not grow
  deployment_runtime rt(d.cfg);
  auto busy = test::trigger_run(rt, {.task_id = "fixture-sleep", .payload = {{"ms", 800}}}).run_id;
  wait_status(rt, busy, run_status::executing);
  auto id = test::trigger_run(rt, {.task_id = "fixture-echo", .ttl = "200ms", .ttl_ms = 200}).run_id;
  auto r = test::wait_final(rt, id);
  EXPECT_EQ(r.status, run_status::expired);
  EXPECT_TRUE(r.attempts.empty()) << "it never ran";
  EXPECT_TRUE(r.finished_at);
  EXPECT_EQ(to_api_json(r)["expiredAt"], format_time(*r.finished_at));
  EXPECT_EQ(test::wait_final(rt, busy).status, run_status::completed);

  // Started in time: the TTL no longer matters.
  auto ok = test::trigger_run(rt, {.task_id = "fixture-sleep", .payload = {{"ms", 400}}, .ttl = "1s", .ttl_ms = 200}).run_id;
  EXPECT_EQ(test::wait_final(rt, ok).status, run_status::completed);
}

TEST(DurableRunsTest, IdempotencyKeyReturnsTheExistingRunUntilItFails) {
  durable_deployment d;
  deployment_runtime rt(d.cfg);
  auto first = test::trigger_run(rt, {.task_id = "fixture-echo", .idempotency_key = "order-7"});
  EXPECT_FALSE(first.cached);
  auto second = test::trigger_run(rt, {.task_id = "fixture-echo", .idempotency_key = "order-7"});
  EXPECT_TRUE(second.cached);
  EXPECT_EQ(second.run_id, first.run_id);
  EXPECT_EQ(test::wait_final(rt, first.run_id).status, run_status::completed);
  EXPECT_EQ(test::trigger_run(rt, {.task_id = "fixture-echo", .idempotency_key = "order-7"}).run_id, first.run_id);

  auto failing = test::trigger_run(rt, {.task_id = "fixture-throw", .max_attempts = 1, .idempotency_key = "k"});
  EXPECT_EQ(test::wait_final(rt, failing.run_id).status, run_status::failed);
  auto retry = test::trigger_run(rt, {.task_id = "fixture-throw", .max_attempts = 1, .idempotency_key = "k"});
  EXPECT_FALSE(retry.cached) << "a FAILED run releases its key";
  EXPECT_NE(retry.run_id, failing.run_id);
}

TEST(DurableRunsTest, MetadataSetInsideARunIsVisibleWhileItExecutesAndKept) {
  durable_deployment d;
  deployment_runtime rt(d.cfg);
  auto id = test::trigger_run(rt, {.task_id = "durable-metadata", .payload = {{"hold_ms", 1000}}, .metadata = {{"initial", true}}}).run_id;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<run_record> r;
  while (std::chrono::steady_clock::now() < deadline) {
    r = rt.get_run(id);
    if (r->metadata.is_object() && r->metadata.value("holding", false)) break;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(r->metadata.value("holding", false)) << r->metadata.dump();
  EXPECT_EQ(r->status, run_status::executing);
  EXPECT_EQ(r->metadata["progress"], 2.5);
  EXPECT_EQ(r->metadata["events"], json({"step 0", "step 1", "step 2"}));
  EXPECT_FALSE(r->metadata.contains("stage"));
  EXPECT_TRUE(r->metadata["initial"]);
  EXPECT_NE(r->metadata["oversize_refused"].get<std::string>().find("limit is 262144"), std::string::npos);
  EXPECT_FALSE(r->metadata.contains("blob"));

  auto done = test::wait_final(rt, id);
  ASSERT_EQ(done.status, run_status::completed);
  EXPECT_FALSE(done.metadata.contains("holding"));
  EXPECT_EQ(*done.output, done.metadata) << "the task saw what was stored";
}

TEST(DurableRunsTest, InMemoryStoreRunsTheSameButKeepsNothing) {
  durable_deployment d;
  d.cfg.store.path = ":memory:";
  std::string id;
  {
    deployment_runtime rt(d.cfg);
    id = test::trigger_run(rt, {.task_id = "fixture-echo"}).run_id;
    EXPECT_EQ(test::wait_final(rt, id).status, run_status::completed);
  }
  EXPECT_FALSE(fs::exists(d.cfg.state_dir / "runs.db"));
  deployment_runtime rt(d.cfg);
  EXPECT_FALSE(rt.get_run(id));
}

TEST(DurableRunsTest, APluginThatSuspendsOnNothingItStartedFailsInsteadOfWaitingForever) {
  temp_deployment d({test::fixture_plugin("fixture_bad_suspend")}, 2);
  deployment_runtime rt(d.cfg);
  for (const char* task : {"suspend-unknown-key", "suspend-no-keys", "suspend-not-json"}) {
    auto id = test::trigger_run(rt, {.task_id = task}).run_id;
    auto r = test::wait_final(rt, id);
    EXPECT_EQ(r.status, run_status::failed) << task;
    ASSERT_TRUE(r.error) << task;
    EXPECT_EQ(r.attempts.size(), 1u) << task << ": a broken suspension is not retried";
    const std::string msg = r.error->value("message", "");
    EXPECT_TRUE(msg.find("not an operation it started") != std::string::npos || msg.find("without saying what it waits for") != std::string::npos)
        << task << ": " << msg;
  }
}
