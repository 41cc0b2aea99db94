// End to end: queues and concurrency, through the real binary over HTTP and the CLI — limits under
// a burst, shared queues, concurrency keys and the cap across them, rate limits, priority, pause
// and overrides surviving a restart, a parent and child on a queue of one, the queue API's errors,
// and a task that blocks its threads for seconds while another task's runs keep flowing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <thread>

#include "runtime/http_client.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::http_client;
using taskhost::test::deployment_dir;
using taskhost::test::server;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

deployment_dir queues_dir(const std::string& yaml) { return deployment_dir(yaml, {"fixture_queues"}); }



std::vector<json> finish_all(server& s, const std::vector<std::string>& ids) {
  std::vector<json> out;
  for (const auto& id : ids) {
    auto r = s.wait_final(id);
    EXPECT_EQ(r["status"], "COMPLETED") << r.dump();
    out.push_back(r);
  }
  return out;
}

int max_concurrency(const std::vector<json>& runs) {
  int m = 0;
  for (const auto& r : runs) m = std::max(m, r["output"].value("concurrentAtStart", 0));
  return m;
}

TEST(QueuesTest, ALimitIsNeverExceededUnderABurstOf1000Runs) {
  auto d = queues_dir("queues:\n  - name: work\n    concurrency_limit: 3\ntasks:\n  q-work:\n    queue: work\n");
  server s(d);
  std::vector<std::string> ids;
  // The burst arrives while the queue is paused (so that it is a burst even on a slow build),
  // then the queue lets it go at once.
  s.api("POST", "/api/v1/queues/work/pause", {{"action", "pause"}});
  for (int i = 0; i < 1000; ++i) ids.push_back(s.trigger("q-work", {{"ms", 2}}));
  // A trigger is answered once committed; its run reaches the queue just after (its supervisor).
  auto q = s.api("GET", "/api/v1/queues/work");
  for (int i = 0; i < 500 && q["queued"] != 1000; ++i) {
    std::this_thread::sleep_for(10ms);
    q = s.api("GET", "/api/v1/queues/work");
  }
  EXPECT_EQ(q["queued"], 1000) << q.dump();
  EXPECT_EQ(q["running"], 0);
  EXPECT_EQ(q["concurrencyLimit"], 3);
  EXPECT_EQ(q["type"], "custom");
  s.api("POST", "/api/v1/queues/work/pause", {{"action", "resume"}});
  for (int i = 0; i < 20; ++i) {
    q = s.api("GET", "/api/v1/queues/work");
    EXPECT_LE(q["running"].get<int>(), 3) << q.dump();
    std::this_thread::sleep_for(5ms);
  }
  auto runs = finish_all(s, ids);
  EXPECT_EQ(max_concurrency(runs), 3) << "the limit is reached and never exceeded";
  q = s.api("GET", "/api/v1/queues/work");
  EXPECT_EQ(q["running"], 0);
  EXPECT_EQ(q["queued"], 0);
}

TEST(QueuesTest, TwoTasksShareAQueueDeclaredByTheirPlugin) {
  auto d = queues_dir("");
  server s(d);
  std::vector<std::string> ids;
  s.api("POST", "/api/v1/queues/shared/pause", {{"action", "pause"}});  // all queued first, then let go
  for (int i = 0; i < 40; ++i) ids.push_back(s.trigger(i % 2 ? "q-share-b" : "q-share-a", {{"ms", 5}, {"tag", i}}));
  // A trigger is answered once committed; its run reaches the queue just after (router, supervisor).
  for (int i = 0; i < 500 && s.api("GET", "/api/v1/queues/shared")["queued"] != 40; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s.api("GET", "/api/v1/queues/shared")["queued"], 40);
  s.api("POST", "/api/v1/queues/shared/pause", {{"action", "resume"}});
  auto runs = finish_all(s, ids);
  EXPECT_EQ(max_concurrency(runs), 2) << "both tasks count against the plugin's limit of 2";
  // Their runs interleave: one task does not go first with all of its runs.
  std::vector<std::pair<int, std::string>> order;
  for (const auto& r : runs) order.emplace_back(r["output"]["seq"].get<int>(), r["taskIdentifier"].get<std::string>());
  std::sort(order.begin(), order.end());
  int switches = 0;
  for (size_t i = 1; i < order.size(); ++i) switches += order[i].second != order[i - 1].second;
  // Granted in trigger order, alternating; two may swap as they start side by side, but one task
  // never goes first with all its runs (that would be 1 switch).
  EXPECT_GT(switches, 10) << "they start in trigger order, whichever task they belong to";
  auto q = s.api("GET", "/api/v1/queues/shared");
  EXPECT_EQ(q["concurrencyLimit"], 2);
  // A task on its own queue with a limit from its definition.
  auto own = s.api("GET", "/api/v1/queues/task%2Fq-limited");
  EXPECT_EQ(own["type"], "task");
  EXPECT_EQ(own["name"], "q-limited");
  EXPECT_EQ(own["concurrencyLimit"], 1);
  EXPECT_EQ(s.api("GET", "/api/v1/queues/q-limited?type=task")["id"], "task/q-limited");
}

TEST(QueuesTest, AConcurrencyKeyWithOneRunIsNotBehindAKeyWithAThousand) {
  // One slot for the whole queue: the keys take turns.
  auto d = queues_dir("queues:\n  - name: tenants\n    concurrency_limit: 1\n    total_concurrency_limit: 1\n"
                      "tasks:\n  q-work:\n    queue: tenants\n");
  server s(d);
  std::vector<std::string> big;
  // tenant-a's thousand runs are all queued (the queue paused while they arrive), then start.
  s.api("POST", "/api/v1/queues/tenants/pause", {{"action", "pause"}});
  // Each run holds the queue's one slot for 50 ms: far longer than a trigger takes to be queued.
  for (int i = 0; i < 1000; ++i) big.push_back(s.trigger("q-work", {{"ms", 50}, {"tag", "a"}}, {{"concurrencyKey", "tenant-a"}}));
  s.api("POST", "/api/v1/queues/tenants/pause", {{"action", "resume"}});
  std::this_thread::sleep_for(20ms);
  auto small_id = s.trigger("q-work", {{"tag", "b"}}, {{"concurrencyKey", "tenant-b"}});
  auto small = s.wait_final(small_id);
  ASSERT_EQ(small["status"], "COMPLETED") << small.dump();
  auto q = s.api("GET", "/api/v1/queues/tenants");
  EXPECT_GT(q["queued"].get<int>(), 500) << "tenant-a still has most of its runs queued";
  EXPECT_GE(q["concurrencyKeys"].get<int>(), 1);
  // tenant-a's runs that started between tenant-b's trigger and its start: one slot turn (plus,
  // should b's trigger have taken long to be queued, the one that started meanwhile).
  const std::string created = small["createdAt"];  // 2026-...T..:..:..mmmZ
  std::tm tm{};
  strptime(created.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  const int64_t b_created_us = (int64_t(timegm(&tm)) * 1000 + std::stoi(created.substr(20, 3))) * 1000 + 999;
  const int64_t b_started_us = small["output"]["startedUs"];
  int between = 0;
  for (const auto& id : big) {
    auto r = s.get_run(id);
    if (r["status"] != "COMPLETED") continue;
    const int64_t at = r["output"]["startedUs"];
    if (at > b_created_us && at < b_started_us) ++between;
  }
  EXPECT_LE(between, 2);
  for (const auto& id : big) s.api("POST", "/api/v2/runs/" + id + "/cancel", json::object());
}

TEST(QueuesTest, TotalLimitCapsAllKeysTogether) {
  auto d = queues_dir("queues:\n  - name: capped\n    concurrency_limit: 5\n    total_concurrency_limit: 2\n"
                      "tasks:\n  q-work:\n    queue: capped\n");
  server s(d);
  std::vector<std::string> ids;
  s.api("POST", "/api/v1/queues/capped/pause", {{"action", "pause"}});
  for (int i = 0; i < 30; ++i) ids.push_back(s.trigger("q-work", {{"ms", 10}}, {{"concurrencyKey", "k" + std::to_string(i % 3)}}));
  EXPECT_EQ(s.api("GET", "/api/v1/queues/capped")["concurrencyKeys"], 3);
  s.api("POST", "/api/v1/queues/capped/pause", {{"action", "resume"}});
  EXPECT_EQ(max_concurrency(finish_all(s, ids)), 2);
}

TEST(QueuesTest, RateLimitCapsStartsPerPeriod) {
  auto d = queues_dir("queues:\n  - name: rated\n    rate_limit: {limit: 5, period: 1s}\ntasks:\n  q-work:\n    queue: rated\n");
  server s(d);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(s.trigger("q-work", json::object()));
  auto runs = finish_all(s, ids);
  std::vector<int64_t> starts;
  for (const auto& r : runs) starts.push_back(r["output"]["startedUs"].get<int64_t>());
  std::sort(starts.begin(), starts.end());
  // A run starts a little after its slot is granted (an executor thread takes it), so the runs'
  // own start times may bunch by that much: tolerance 100 ms.
  for (size_t i = 0; i + 5 < starts.size(); ++i)
    EXPECT_GE(starts[i + 5] - starts[i], 900'000) << "six starts within one second, at " << i;
  EXPECT_GE(starts.back() - starts.front(), 1'900'000);
  EXPECT_EQ(s.api("GET", "/api/v1/queues/rated")["rateLimit"]["limit"], 5);
}

TEST(QueuesTest, PriorityIsSecondsOfQueueTimeCredit) {
  auto d = queues_dir("queues:\n  - name: prio\n    concurrency_limit: 1\ntasks:\n  q-work:\n    queue: prio\n");
  server s(d);
  auto blocker = s.trigger("q-work", {{"ms", 300}, {"tag", "blocker"}});
  std::this_thread::sleep_for(50ms);
  std::vector<std::string> plain;
  for (int i = 0; i < 3; ++i) plain.push_back(s.trigger("q-work", {{"tag", "plain"}}));
  auto urgent = s.trigger("q-work", {{"tag", "urgent"}}, {{"priority", 10}});
  auto u = s.wait_final(urgent);
  auto b = s.wait_final(blocker);
  EXPECT_EQ(u["output"]["seq"].get<int>(), b["output"]["seq"].get<int>() + 1) << "the prioritized run goes next";
  for (const auto& id : plain) EXPECT_GT(s.wait_final(id)["output"]["seq"].get<int>(), u["output"]["seq"].get<int>());
}

TEST(QueuesTest, PauseAndOverrideSurviveARestart) {
  auto d = queues_dir("queues:\n  - name: p\n    concurrency_limit: 2\ntasks:\n  q-work:\n    queue: p\n");
  std::vector<std::string> ids;
  {
    server s(d);
    auto q = s.api("POST", "/api/v1/queues/p/pause", {{"action", "pause"}});
    EXPECT_EQ(q["paused"], true);
    auto o = s.api("POST", "/api/v1/queues/p/concurrency/override", {{"concurrencyLimit", 1}});
    EXPECT_EQ(o["concurrencyLimit"], 1);
    EXPECT_EQ(o["concurrency"]["base"], 2);
    EXPECT_EQ(o["concurrency"]["override"], 1);
    EXPECT_TRUE(o["concurrency"]["overriddenAt"].is_string());
    for (int i = 0; i < 5; ++i) ids.push_back(s.trigger("q-work", {{"ms", 20}}));
    std::this_thread::sleep_for(300ms);
    for (const auto& id : ids) EXPECT_EQ(s.get_run(id)["status"], "QUEUED");
    EXPECT_EQ(s.api("GET", "/api/v1/queues/p")["queued"], 5);
    s.proc.signal(SIGTERM);
    ASSERT_EQ(s.proc.wait_exit(20s), 0) << s.log();
  }
  server s(d, "server2.log");
  json q;
  for (auto until = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(10ms)) {
    q = s.api("GET", "/api/v1/queues/p");
    if (q["queued"] == 5) break;
  }
  EXPECT_EQ(q["paused"], true) << q.dump();
  EXPECT_EQ(q["concurrencyLimit"], 1);
  EXPECT_EQ(q["queued"], 5) << "its runs are queued again after the restart";
  std::this_thread::sleep_for(200ms);
  for (const auto& id : ids) EXPECT_EQ(s.get_run(id)["status"], "QUEUED");
  auto list = s.cli({"queues", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("p  running 0/1  queued 5  PAUSED"), std::string::npos) << list.out;
  auto resumed = s.cli({"queues", "resume", "p"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(max_concurrency(finish_all(s, ids)), 1) << "the override holds after the restart";
  auto reset = s.cli({"queues", "reset", "p"});
  EXPECT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_NE(reset.out.find("running 0/2"), std::string::npos) << reset.out;
  auto paused = s.cli({"queues", "pause", "p"});
  EXPECT_NE(paused.out.find("PAUSED"), std::string::npos) << paused.out;
}

TEST(QueuesTest, ParentAndChildOnAQueueOfOneDoNotDeadlock) {
  auto d = queues_dir("");
  server s(d);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(s.trigger("q-parent", {{"n", i}}));
  for (int i = 0; i < 5; ++i) {
    auto r = s.wait_final(ids[static_cast<size_t>(i)]);
    ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
    EXPECT_EQ(r["output"]["child"]["n"], i * 2);
  }
  EXPECT_EQ(s.api("GET", "/api/v1/queues/family")["concurrencyLimit"], 1);
}

TEST(QueuesTest, BadQueueRequestsAreClearErrors) {
  auto d = queues_dir("queues:\n  - name: email\n    concurrency_limit: 1\n");
  server s(d);
  http_client c(s.url);
  auto unknown = c.request("POST", "/api/v1/tasks/q-fast/trigger", R"({"payload":{},"options":{"queue":"nope"}})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("Queue 'nope' not found"), std::string::npos) << unknown.body;
  // A trigger may pick a declared queue.
  auto picked = s.trigger("q-fast", json::object(), {{"queue", {{"name", "email"}}}});
  EXPECT_EQ(s.wait_final(picked)["status"], "COMPLETED");
  EXPECT_EQ(c.request("GET", "/api/v1/queues/nope").status, 404);
  EXPECT_EQ(c.request("POST", "/api/v1/queues/nope/pause", R"({"action":"pause"})").status, 404);
  EXPECT_EQ(c.request("POST", "/api/v1/queues/email/pause", R"({"action":"stop"})").status, 400);
  EXPECT_EQ(c.request("POST", "/api/v1/queues/email/pause", "not json").status, 400);
  EXPECT_EQ(c.request("POST", "/api/v1/queues/email/concurrency/override", R"({"concurrencyLimit":-1})").status, 400);
  EXPECT_EQ(c.request("POST", "/api/v1/queues/email/concurrency/override", R"({"concurrencyLimit":100001})").status, 400);
  EXPECT_EQ(c.request("DELETE", "/api/v1/queues/email").status, 405);
  EXPECT_EQ(c.request("GET", "/api/v1/queues?perPage=0").status, 400);
  auto page = s.api("GET", "/api/v1/queues?perPage=1&page=2");
  EXPECT_EQ(page["data"].size(), 1u);
  EXPECT_GE(page["pagination"]["count"].get<int>(), 3);
  auto bad_cli = s.cli({"queues", "pause", "nope"});
  EXPECT_NE(bad_cli.exit_code, 0);
  EXPECT_NE(bad_cli.err.find("Queue not found: nope"), std::string::npos) << bad_cli.err;
}

TEST(QueuesTest, ConfigErrorsNameTheirPlace) {
  auto dup = queues_dir("queues:\n  - name: a\n  - name: a\n");
  auto r = taskhost::test::run_command({taskhost::test::bin, "validate", "--config", dup.config().string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("deploy.yaml:9:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'a'"), std::string::npos) << r.err;
  auto unknown = queues_dir("tasks:\n  q-work:\n    queue: nowhere\n");
  auto u = taskhost::test::run_command({taskhost::test::bin, "validate", "--config", unknown.config().string()});
  EXPECT_NE(u.exit_code, 0);
  EXPECT_NE(u.err.find("deploy.yaml:9:"), std::string::npos) << u.err;
  EXPECT_NE(u.err.find("tasks.q-work.queue names queue 'nowhere'"), std::string::npos) << u.err;
  auto run = taskhost::test::run_command({taskhost::test::bin, "run", "--config", unknown.config().string()});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("tasks.q-work.queue names queue 'nowhere'"), std::string::npos) << run.err;
}

TEST(QueuesTest, TasksThatBlockTheirThreadsDoNotStallOtherTasks) {
  // 20 runs block a thread each for 2 s — more than the executor's 4 threads. Meanwhile another
  // task's triggers are acknowledged fast, and its runs complete long before the blockers end.
  auto d = queues_dir("executor:\n  threads: 4\n");
  server s(d);
  std::vector<std::string> blockers;
  for (int i = 0; i < 20; ++i) blockers.push_back(s.trigger("q-block", {{"ms", 2000}}));
  std::this_thread::sleep_for(100ms);
  std::vector<double> latency_ms;
  std::vector<std::string> fast;
  http_client c(s.url);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 1s) {
    auto a = std::chrono::steady_clock::now();
    auto r = c.request("POST", "/api/v1/tasks/q-fast/trigger", R"({"payload":{}})");
    latency_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    ASSERT_EQ(r.status, 200);
    fast.push_back(json::parse(r.body)["id"]);
    std::this_thread::sleep_for(20ms);
  }
  std::sort(latency_ms.begin(), latency_ms.end());
  const double p90 = latency_ms[latency_ms.size() * 9 / 10];
  EXPECT_LT(p90, sanitized ? 50.0 : 10.0) << "trigger latency of the other task during the blockage";
  // The other task's runs completed while the blockers still held their threads.
  std::string last_fast;
  for (const auto& id : fast) {
    auto r = s.wait_final(id);
    ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
    last_fast = std::max(last_fast, r["finishedAt"].get<std::string>());
  }
  std::string first_start = "9", last_start;
  for (const auto& id : blockers) {
    auto r = s.wait_final(id);
    ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
    EXPECT_LT(last_fast, r["finishedAt"].get<std::string>()) << "a run of the other task waited for the blockers";
    first_start = std::min(first_start, r["startedAt"].get<std::string>());
    last_start = std::max(last_start, r["startedAt"].get<std::string>());
  }
  // And the blockers themselves did not wait for one another: the executor grew for all 20.
  auto ms_of = [](const std::string& t) {  // ...THH:MM:SS.mmmZ, within one day
    return ((std::stoi(t.substr(11, 2)) * 60 + std::stoi(t.substr(14, 2))) * 60 + std::stoi(t.substr(17, 2))) * 1000 +
           std::stoi(t.substr(20, 3));
  };
  EXPECT_LT(ms_of(last_start) - ms_of(first_start), 1500) << first_start << " .. " << last_start;
}

}  // namespace

namespace {

TEST(QueuesTest, TheExecutorMayGrowAsFarAsTheQueuesLetRunsExecute) {
  // Automatic executor.max_threads: the threads kept ready plus the declared queues' limits
  // (here 1000, and the plugin's shared 2, family 1 and q-limited 1), at least 256.
  auto d = queues_dir("executor: {threads: 4}\nqueues:\n  - {name: big, concurrency_limit: 1000}\n");
  server s(d);
  for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until && s.log().find("deployment ready") == std::string::npos;)
    std::this_thread::sleep_for(10ms);
  EXPECT_NE(s.log().find("executor_max_threads=1008"), std::string::npos) << s.log();
  auto small = queues_dir("executor: {threads: 4}\n");
  server t(small, "small.log");
  for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until && t.log().find("deployment ready") == std::string::npos;)
    std::this_thread::sleep_for(10ms);
  EXPECT_NE(t.log().find("executor_max_threads=256"), std::string::npos) << t.log();
}

}  // namespace
