// End to end: tasks that trigger tasks and wait — child runs, batches, nested runs, tokens, steps,
// th::all, idempotent waits across retries, cancel cascades — and runs killed (SIGKILL) while they
// wait, restarted, and finished from their journal. All through the real binary, over HTTP and the CLI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
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

deployment_dir waits_dir() { return deployment_dir("", {"fixture_waits"}); }


/// Polls the run until `pred` holds (or 20 s pass); returns the last state.
template <class P>
json wait_until(server& s, const std::string& id, P pred) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    json r = s.get_run(id);
    if (pred(r) || std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(10ms);
  }
}

int lines(const std::filesystem::path& f) {
  std::ifstream in(f);
  int n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}

TEST(WaitsTest, ChildResultsErrorsAndLineage) {
  auto d = waits_dir();
  server s(d);
  auto ok = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 21}}}}));
  ASSERT_EQ(ok["status"], "COMPLETED") << ok.dump() << s.log();
  EXPECT_EQ(ok["output"]["ok"], true);
  EXPECT_EQ(ok["output"]["child"]["doubled"], 42);
  const std::string child_id = ok["output"]["childId"];
  auto child = s.get_run(child_id);
  EXPECT_EQ(child["parentId"], ok["id"]);
  EXPECT_EQ(child["rootId"], ok["id"]);
  EXPECT_EQ(child["depth"], 1);
  EXPECT_EQ(child["relatedRuns"]["parent"]["id"], ok["id"]);

  auto failed = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 3}, {"fail", true}}}}));
  ASSERT_EQ(failed["status"], "COMPLETED") << failed.dump();
  EXPECT_EQ(failed["output"]["ok"], false);
  EXPECT_EQ(failed["output"]["status"], "FAILED");
  EXPECT_NE(failed["output"]["error"].get<std::string>().find("child refused 3"), std::string::npos) << failed.dump();

  // unwrap() turns a failed child into a failed parent, with the child's message.
  auto unwrapped = s.wait_final(s.trigger("w-unwrap", {{"value", 1}, {"fail", true}}));
  EXPECT_EQ(unwrapped["status"], "FAILED");
  EXPECT_NE(unwrapped["error"]["message"].get<std::string>().find("child refused 1"), std::string::npos) << unwrapped.dump();

  // An unknown task is an error result, not a hang.
  auto unknown = s.wait_final(s.trigger("w-parent", {{"task", "no-such-task"}}));
  ASSERT_EQ(unknown["status"], "COMPLETED") << unknown.dump();
  EXPECT_EQ(unknown["output"]["ok"], false);
  EXPECT_NE(unknown["output"]["error"].get<std::string>().find("no-such-task"), std::string::npos);
}

TEST(WaitsTest, BatchOfAThousandChildrenAndItsBatchResource) {
  auto d = waits_dir();
  server s(d);
  json items = json::array();
  int expected = 0;
  for (int i = 0; i < 1000; ++i) {
    bool fail = i % 100 == 7;
    items.push_back({{"value", i}, {"fail", fail}});
    if (!fail) expected += 2 * i;
  }
  auto r = s.wait_final(s.trigger("w-batch", {{"items", items}}));
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump().substr(0, 2000) << s.log();
  EXPECT_EQ(r["output"]["count"], 1000);
  EXPECT_EQ(r["output"]["failed"], 10);
  EXPECT_EQ(r["output"]["sum"], expected);
  http_client c(s.url);
  auto b = c.request("GET", "/api/v1/batches/" + r["output"]["batchId"].get<std::string>());
  ASSERT_EQ(b.status, 200) << b.body;
  auto bj = json::parse(b.body);
  EXPECT_EQ(bj["runCount"], 1000);
  EXPECT_EQ(bj["runs"].size(), 1000u);
  EXPECT_EQ(bj["allRunsFinished"], true);
  EXPECT_EQ(bj["parentId"], r["id"]);
  EXPECT_EQ(c.request("GET", "/api/v1/batches/batch_nope").status, 404);

  // An item over the payload limit fails the parent, naming the item.
  auto bad = s.wait_final(s.trigger("w-batch", {{"items", json::array({json{{"value", 1}}})}, {"big_item_bytes", (3u << 20) + 10}}));
  EXPECT_EQ(bad["status"], "FAILED") << bad.dump().substr(0, 500);
  EXPECT_NE(bad.dump().find("batch item 1"), std::string::npos) << bad.dump().substr(0, 500);
}

TEST(WaitsTest, NestedFiveDeepAndFireAndForget) {
  auto d = waits_dir();
  server s(d);
  auto r = s.wait_final(s.trigger("w-nested", {{"n", 5}}));
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
  EXPECT_EQ(r["output"]["depth"], 5);
  // The deepest run knows the root and its depth.
  http_client c(s.url);
  auto page = json::parse(c.request("GET", "/api/v1/runs?filter%5BtaskIdentifier%5D=w-nested&page%5Bsize%5D=10").body);
  ASSERT_EQ(page["data"].size(), 6u);
  int max_depth = 0;
  for (const auto& run : page["data"]) {
    auto full = s.get_run(run["id"]);
    max_depth = std::max(max_depth, full["depth"].get<int>());
    if (full["depth"] != 0) EXPECT_EQ(full["rootId"], r["id"]);
  }
  EXPECT_EQ(max_depth, 5);

  auto f = s.wait_final(s.trigger("w-fire", json::object()));
  ASSERT_EQ(f["status"], "COMPLETED") << f.dump();
  auto child = s.wait_final(f["output"]["child"]);
  EXPECT_EQ(child["output"]["doubled"], 8);
  EXPECT_EQ(child["parentId"], f["id"]);
  ASSERT_EQ(f["output"]["batch_runs"].size(), 2u);
  EXPECT_EQ(s.wait_final(f["output"]["batch_runs"][1])["output"]["doubled"], 4);
}

TEST(WaitsTest, TokensCompletedOverHttpAndTheCliAndTimedOut) {
  auto d = waits_dir();
  server s(d);
  http_client c(s.url);
  const std::string id = s.trigger("w-token", json::object());
  auto waiting = wait_until(s, id, [](const json& r) { return r["status"] == "WAITING"; });
  ASSERT_EQ(waiting["status"], "WAITING") << waiting.dump() << s.log();
  ASSERT_EQ(waiting["waitingFor"][0]["kind"], "token");
  const std::string token = waiting["metadata"]["token"];
  auto t = json::parse(c.request("GET", "/api/v1/waitpoints/tokens/" + token).body);
  EXPECT_EQ(t["status"], "WAITING");
  auto done = c.request("POST", "/api/v1/waitpoints/tokens/" + token + "/complete", R"({"data":{"approved":true}})");
  ASSERT_EQ(done.status, 200) << done.body;
  auto r = s.wait_final(id);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
  EXPECT_EQ(r["output"]["ok"], true);
  EXPECT_EQ(r["output"]["output"]["approved"], true);
  EXPECT_EQ(json::parse(c.request("GET", "/api/v1/waitpoints/tokens/" + token).body)["status"], "COMPLETED");
  // Completing it again: 409; an unknown token: 404.
  auto again = c.request("POST", "/api/v1/waitpoints/tokens/" + token + "/complete", R"({"data":1})");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(again.body.find("already completed"), std::string::npos);
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens/waitpoint_nope/complete", R"({"data":1})").status, 404);

  // The CLI completes one too.
  const std::string id2 = s.trigger("w-token", json::object());
  auto w2 = wait_until(s, id2, [](const json& r) { return r["status"] == "WAITING"; });
  auto out = s.cli({"tokens", "complete", w2["metadata"]["token"], R"({"via":"cli"})"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(s.wait_final(id2)["output"]["output"]["via"], "cli");

  // A token created by a backend, completed by another run.
  auto created = c.request("POST", "/api/v1/waitpoints/tokens", R"({"timeout":"1h","tags":["t1"]})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string backend_token = json::parse(created.body)["id"];
  auto comp = s.wait_final(s.trigger("w-complete", {{"token", backend_token}, {"data", 7}}));
  EXPECT_EQ(comp["status"], "COMPLETED") << comp.dump();
  // Over HTTP the data is a JSON string (Trigger.dev's retrieveToken shape); the run got the value.
  auto got = json::parse(c.request("GET", "/api/v1/waitpoints/tokens/" + backend_token).body);
  EXPECT_EQ(got["output"], "7");
  EXPECT_EQ(got["outputType"], "application/json");
  EXPECT_EQ(got["outputIsError"], false);
  EXPECT_TRUE(got["url"].is_string()) << got.dump();
  auto list = json::parse(c.request("GET", "/api/v1/waitpoints/tokens?filter%5Bstatus%5D=COMPLETED").body);
  EXPECT_GE(list["data"].size(), 3u);

  // A token that times out resumes its run with a timeout result.
  auto timed = s.wait_final(s.trigger("w-token", {{"timeout_ms", 300}}));
  ASSERT_EQ(timed["status"], "COMPLETED") << timed.dump();
  EXPECT_EQ(timed["output"]["ok"], false);
  EXPECT_NE(timed["output"]["error"].get<std::string>().find("WaitpointTimeoutError"), std::string::npos);
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens/" + timed["output"]["token"].get<std::string>() + "/complete", "{}").status, 409);
  auto timed_token = json::parse(c.request("GET", "/api/v1/waitpoints/tokens/" + timed["output"]["token"].get<std::string>()).body);
  EXPECT_EQ(timed_token["status"], "TIMED_OUT");
  EXPECT_EQ(timed_token["outputIsError"], true);
  EXPECT_EQ(json::parse(timed_token["output"].get<std::string>())["code"], "TRIGGER_WAITPOINT_TIMEOUT") << timed_token.dump();

  // Bad input.
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens", R"({"timeout":"soon"})").status, 400);
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens", "[1]").status, 400);
  EXPECT_EQ(c.request("GET", "/api/v1/waitpoints/tokens/waitpoint_nope").status, 404);
}

TEST(WaitsTest, AllOfMixedWaitsIdempotentWaitsAndNegativeWaits) {
  auto d = waits_dir();
  server s(d);
  auto a = s.wait_final(s.trigger("w-all", {{"value", 5}, {"ms", 300}}));
  ASSERT_EQ(a["status"], "COMPLETED") << a.dump() << s.log();
  EXPECT_EQ(a["output"]["child"]["doubled"], 10);
  EXPECT_GE(a["output"]["took_ms"].get<int>(), 290);  // it waited for the longer of the two

  // The keyed wait of attempt 1 is not waited again by attempt 2.
  auto started = std::chrono::steady_clock::now();
  auto r = s.wait_final(s.trigger("w-retry-wait", {{"ms", 1500}}));
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
  EXPECT_EQ(r["output"]["attempt"], 2);
  EXPECT_EQ(r["attempts"].size(), 2u);
  EXPECT_LT(took, 2900ms) << "attempt 2 waited again";

  auto u = s.wait_final(s.trigger("w-until", {{"ms", 300}}));
  ASSERT_EQ(u["status"], "COMPLETED") << u.dump();
  EXPECT_GE(u["output"]["took_ms"].get<int>(), 290);
  EXPECT_LT(u["output"]["took_ms"].get<int>(), 5000);

  auto neg = s.wait_final(s.trigger("w-negative", json::object()));
  EXPECT_EQ(neg["status"], "FAILED");
  EXPECT_NE(neg["error"]["message"].get<std::string>().find("negative"), std::string::npos) << neg.dump();
}

TEST(WaitsTest, CancellingAParentCancelsItsChildren) {
  auto d = waits_dir();
  server s(d);
  const std::string parent = s.trigger("w-parent", {{"task", "w-slow"}});
  auto w = wait_until(s, parent, [](const json& r) { return r["status"] == "WAITING"; });
  ASSERT_EQ(w["status"], "WAITING") << w.dump() << s.log();
  const std::string child = w["waitingFor"][0]["runId"];
  wait_until(s, child, [](const json& r) { return r["status"] == "EXECUTING"; });
  http_client c(s.url);
  ASSERT_EQ(c.request("POST", "/api/v2/runs/" + parent + "/cancel").status, 200);
  EXPECT_EQ(s.get_run(parent)["status"], "CANCELED");
  EXPECT_EQ(s.wait_final(child)["status"], "CANCELED");
}

/// SIGKILL while a run waits; restart; the run finishes with each step run exactly once.
TEST(WaitsTest, RunsWaitingAcrossAKillNineFinishFromTheirJournal) {
  auto d = waits_dir();
  auto marks = d.tmp / "marks";
  std::filesystem::create_directories(marks / "sleep");
  std::filesystem::create_directories(marks / "token");
  std::filesystem::create_directories(marks / "parent");
  std::string sleeper, token_run, parent, child;
  {
    server s(d, "first.log");
    sleeper = s.trigger("w-sleep", {{"ms", 2500}, {"dir", (marks / "sleep").string()}});
    token_run = s.trigger("w-token", {{"dir", (marks / "token").string()}});
    parent = s.trigger("w-parent", {{"task", "w-token"}, {"child", {{"dir", (marks / "parent").string()}}}});
    for (const auto& id : {sleeper, token_run, parent}) {
      auto r = wait_until(s, id, [](const json& r) { return r["status"] == "WAITING"; });
      ASSERT_EQ(r["status"], "WAITING") << r.dump() << s.log();
    }
    child = s.get_run(parent)["waitingFor"][0]["runId"];
    ASSERT_EQ(wait_until(s, child, [](const json& r) { return r["status"] == "WAITING"; })["status"], "WAITING");
    std::this_thread::sleep_for(100ms);  // the WAITING state is committed (group commit)
    s.proc.signal(SIGKILL);
    ASSERT_EQ(s.proc.wait_exit(10s), 128 + SIGKILL);
  }
  server s(d, "second.log");
  EXPECT_EQ(s.get_run(token_run)["status"], "WAITING") << s.log();
  http_client c(s.url);
  auto complete = [&](const std::string& run, const json& data) {
    const std::string tok = s.get_run(run)["metadata"]["token"];
    auto r = c.request("POST", "/api/v1/waitpoints/tokens/" + tok + "/complete", json{{"data", data}}.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  };
  complete(token_run, "yes");
  complete(child, "child-data");
  auto a = s.wait_final(sleeper);
  auto b = s.wait_final(token_run);
  auto p = s.wait_final(parent);
  ASSERT_EQ(a["status"], "COMPLETED") << a.dump() << s.log();
  ASSERT_EQ(b["status"], "COMPLETED") << b.dump() << s.log();
  ASSERT_EQ(p["status"], "COMPLETED") << p.dump() << s.log();
  EXPECT_EQ(b["output"]["output"], "yes");
  EXPECT_EQ(p["output"]["child"]["output"], "child-data");
  for (const char* dir : {"sleep", "token", "parent"}) {
    EXPECT_EQ(lines(marks / dir / "before"), 1) << dir << ": the step before the wait ran again";
    EXPECT_EQ(lines(marks / dir / "after"), 1) << dir;
  }
  // One attempt each: a wait is not an interruption.
  EXPECT_EQ(a["attempts"].size(), 1u) << a.dump();
  EXPECT_EQ(b["attempts"].size(), 1u);
}

TEST(WaitsTest, WaitingHoldsNoThreadAndFiresWaitHooks) {
  // One executor thread: a parent waiting for its child must not hold it (else: deadlock), and
  // twenty runs waiting at once must not keep anything else from running.
  auto d = deployment_dir("executor:\n  threads: 1\n", {"fixture_waits"});
  server s(d);
  std::vector<std::string> sleepers;
  for (int i = 0; i < 20; ++i) sleepers.push_back(s.trigger("w-sleep", {{"ms", 3000}}));
  // The child waits for a token the test completes once parent and child both wait, so that the
  // parent surely waited (a child that ends before its parent suspends ends no wait: no hooks).
  const auto parent = s.trigger("w-parent", {{"task", "w-token"}});
  ASSERT_EQ(wait_until(s, parent, [](const json& r) { return r["status"] == "WAITING"; })["status"], "WAITING") << s.log();
  const std::string child = s.get_run(parent)["waitingFor"][0]["runId"];
  const auto waiting_child = wait_until(s, child, [](const json& r) { return r["status"] == "WAITING"; });
  ASSERT_EQ(waiting_child["status"], "WAITING") << waiting_child.dump();
  http_client c(s.url);
  auto done = c.request("POST", "/api/v1/waitpoints/tokens/" + waiting_child["metadata"]["token"].get<std::string>() + "/complete",
                        R"({"data":"approved"})");
  ASSERT_EQ(done.status, 200) << done.body;
  auto p = s.wait_final(parent);
  ASSERT_EQ(p["status"], "COMPLETED") << p.dump() << s.log();
  EXPECT_EQ(p["output"]["child"]["output"], "approved");
  for (const auto& id : sleepers) EXPECT_EQ(s.get_run(id)["status"], "WAITING") << "finished before its wait ended";
  for (const auto& id : sleepers) {
    auto r = s.wait_final(id);
    ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
    EXPECT_EQ(r["metadata"]["hooks"], json::array({"wait:duration", "resume:duration"})) << r.dump();
  }
  EXPECT_EQ(p["metadata"]["hooks"], json::array({"wait:task", "resume:task"}));
}

// A wait whose token was completed before the run awaited it ends at once: the run never waits,
// so neither on_wait nor on_resume fires (a resume without a wait would be a lie to the hooks).
TEST(WaitsTest, AWaitDoneBeforeItBeganFiresNoWaitHooks) {
  auto d = waits_dir();
  server s(d);
  http_client c(s.url);
  auto created = c.request("POST", "/api/v1/waitpoints/tokens", R"({"timeout":"1h"})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string token = json::parse(created.body)["id"];
  ASSERT_EQ(c.request("POST", "/api/v1/waitpoints/tokens/" + token + "/complete", R"({"data":"early"})").status, 200);
  auto r = s.wait_final(s.trigger("w-token-id", {{"token", token}}));
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
  EXPECT_EQ(r["output"]["output"], "early");
  EXPECT_FALSE(r["metadata"].contains("hooks")) << r.dump();

  // A child that an idempotency key finds already COMPLETED.
  auto first = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 5}}}, {"options", {{"idempotencyKey", "once"}}}}));
  ASSERT_EQ(first["status"], "COMPLETED") << first.dump();
  auto again = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 6}}}, {"options", {{"idempotencyKey", "once"}}}}));
  ASSERT_EQ(again["status"], "COMPLETED") << again.dump();
  EXPECT_EQ(again["output"]["childId"], first["output"]["childId"]);
  EXPECT_EQ(again["output"]["child"]["doubled"], 10) << "the first child's output";
  EXPECT_FALSE(again["metadata"].contains("hooks")) << again.dump();
}

TEST(WaitsTest, AChildEndingInAnyFinalStatusResumesItsParent) {
  auto d = waits_dir();
  server s(d);
  http_client c(s.url);
  // Canceled child.
  const std::string parent = s.trigger("w-parent", {{"task", "w-slow"}});
  auto w = wait_until(s, parent, [](const json& r) { return r["status"] == "WAITING"; });
  ASSERT_EQ(w["status"], "WAITING") << w.dump();
  ASSERT_EQ(c.request("POST", "/api/v2/runs/" + w["waitingFor"][0]["runId"].get<std::string>() + "/cancel").status, 200);
  auto r = s.wait_final(parent);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
  EXPECT_EQ(r["output"]["ok"], false);
  EXPECT_EQ(r["output"]["status"], "CANCELED");
  // Trigger options reach the child (a delay, a TTL counted from when it is queued, tags).
  auto e = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 1}}}, {"options", {{"delay", "1s"}, {"ttl", "1s"}, {"tags", "x"}}}}));
  ASSERT_EQ(e["status"], "COMPLETED") << e.dump();
  EXPECT_EQ(e["output"]["ok"], true) << e.dump();
  EXPECT_EQ(s.get_run(e["output"]["childId"])["tags"], json::array({"x"}));
  // Two parents, one child: the second parent's trigger hits the first child's idempotency key.
  json opts = {{"idempotencyKey", "shared-child"}};
  auto a = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 8}}}, {"options", opts}}));
  auto b = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 9}}}, {"options", opts}}));
  ASSERT_EQ(a["status"], "COMPLETED") << a.dump();
  ASSERT_EQ(b["status"], "COMPLETED") << b.dump();
  EXPECT_EQ(b["output"]["childId"], a["output"]["childId"]);
  EXPECT_EQ(b["output"]["child"]["doubled"], 16);
  // Invalid child options fail the parent with the field named.
  auto bad = s.wait_final(s.trigger("w-parent", {{"child", 1}, {"options", {{"ttl", "soon"}}}}));
  EXPECT_EQ(bad["status"], "FAILED");
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("ttl"), std::string::npos) << bad.dump();
}

/// SIGKILL while a batch is half done: the results of the children that ended before (held in
/// memory, not yet in the parent's journal) are found again from the children after the restart.
TEST(WaitsTest, ABatchHalfDoneAcrossAKillNineGetsEveryChildsResult) {
  auto d = waits_dir();
  std::string parent;
  {
    server s(d, "first.log");
    json items = json::array({json{{"value", 1}}, json{{"value", 2}}, json{{"value", 3}, {"sleep_ms", 20000}}});
    parent = s.trigger("w-batch", {{"items", items}});
    auto p = wait_until(s, parent, [](const json& r) { return r["status"] == "WAITING"; });
    ASSERT_EQ(p["status"], "WAITING") << p.dump() << s.log();
    http_client c(s.url);
    auto b = c.request("GET", "/api/v1/batches/" + p["waitingFor"][0]["batchId"].get<std::string>());
    ASSERT_EQ(b.status, 200) << b.body;
    auto runs = json::parse(b.body)["runs"];
    ASSERT_EQ(runs.size(), 3u) << b.body;
    for (int i = 0; i < 2; ++i) {
      auto k = wait_until(s, runs[i].get<std::string>(), [](const json& r) { return r["status"] == "COMPLETED"; });
      ASSERT_EQ(k["status"], "COMPLETED") << k.dump();
    }
    EXPECT_EQ(s.get_run(runs[2].get<std::string>())["status"], "EXECUTING");
    std::this_thread::sleep_for(100ms);  // the children's ends are committed (group commit)
    s.proc.signal(SIGKILL);
    ASSERT_EQ(s.proc.wait_exit(10s), 128 + SIGKILL);
  }
  server s(d, "second.log");
  auto r = s.wait_final(parent);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
  EXPECT_EQ(r["output"]["count"], 3);
  EXPECT_EQ(r["output"]["sum"], 6) << "the two children that ended before the kill: 2 + 4";
  EXPECT_EQ(r["output"]["failed"], 1) << "the child killed mid-run (one attempt allowed) crashed";
}

TEST(WaitsTest, AnAttemptKilledMidRunReplaysItsJournalInItsNextAttempt) {
  auto d = waits_dir();
  auto marks = d.tmp / "marks";
  std::filesystem::create_directories(marks);
  std::string id;
  {
    server s(d, "first.log");
    id = s.trigger("w-step-block", {{"dir", marks.string()}});
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (lines(marks / "a") < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(lines(marks / "a"), 1);
    std::this_thread::sleep_for(100ms);  // the step's journal entry is committed
    s.proc.signal(SIGKILL);
    ASSERT_EQ(s.proc.wait_exit(10s), 128 + SIGKILL);
  }
  server s(d, "second.log");
  auto r = s.wait_final(id);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
  EXPECT_EQ(r["output"]["attempt"], 2);
  EXPECT_EQ(r["output"]["a"], 1);
  EXPECT_EQ(r["attempts"][0]["status"], "INTERRUPTED");
  EXPECT_EQ(lines(marks / "a"), 1) << "the journaled step ran again";
}

TEST(WaitsTest, AGracefulRestartKeepsWaitingRunsWaiting) {
  auto d = waits_dir();
  std::string id;
  const auto started = std::chrono::system_clock::now();
  {
    server s(d, "first.log");
    id = s.trigger("w-sleep", {{"ms", 1200}});
    ASSERT_EQ(wait_until(s, id, [](const json& r) { return r["status"] == "WAITING"; })["status"], "WAITING");
    s.proc.signal(SIGTERM);
    ASSERT_EQ(s.proc.wait_exit(20s), 0) << s.log();
  }
  server s(d, "second.log");
  // Still WAITING after the restart, unless (a slow machine, a sanitizer build) its time has
  // already come; either way the same attempt goes on, and not before the wait's end.
  auto after = s.get_run(id);
  EXPECT_NE(after["status"], "QUEUED") << after.dump();
  EXPECT_NE(after["attempts"][0]["status"], "INTERRUPTED") << "the wait was taken for an interruption";
  auto r = s.wait_final(id);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump() << s.log();
  EXPECT_EQ(r["attempts"].size(), 1u);
  EXPECT_GE(std::chrono::system_clock::now() - started, 1200ms);
  EXPECT_NE(s.log().find("replaying its attempt from the journal"), std::string::npos);
}

/// With no suspended execution kept in memory, every resume is a replay from the journal: the
/// results are the same, and log lines and metadata changes before the wait are not repeated.
TEST(WaitsTest, RunsDroppedFromMemoryWhileWaitingResumeByReplay) {
  auto d = deployment_dir("waits:\n  resident_per_task: 0\n", {"fixture_waits"});
  auto marks = d.tmp / "marks";
  std::filesystem::create_directories(marks);
  server s(d);
  auto sleeper = s.wait_final(s.trigger("w-sleep", {{"ms", 300}, {"dir", marks.string()}}));
  ASSERT_EQ(sleeper["status"], "COMPLETED") << sleeper.dump() << s.log();
  EXPECT_EQ(sleeper["metadata"]["passes"], 1) << sleeper.dump();
  EXPECT_EQ(sleeper["metadata"]["hooks"], json::array({"wait:duration", "resume:duration"}));
  EXPECT_EQ(lines(marks / "before"), 1);
  EXPECT_EQ(lines(marks / "after"), 1);
  http_client c(s.url);
  auto logs = json::parse(c.request("GET", "/api/v1/runs/" + sleeper["id"].get<std::string>() + "/logs").body);
  int sleeping = 0;
  for (const auto& l : logs["data"]) sleeping += l["message"] == "going to sleep";
  EXPECT_EQ(sleeping, 1) << logs.dump();
  EXPECT_NE(s.log().find("replaying its attempt from the journal"), std::string::npos);

  auto p = s.wait_final(s.trigger("w-parent", {{"child", {{"value", 6}}}}));
  EXPECT_EQ(p["output"]["child"]["doubled"], 12) << p.dump();
  auto a = s.wait_final(s.trigger("w-all", {{"value", 3}, {"ms", 100}}));
  EXPECT_EQ(a["output"]["child"]["doubled"], 6) << a.dump();
  auto n = s.wait_final(s.trigger("w-nested", {{"n", 3}}));
  EXPECT_EQ(n["output"]["depth"], 3) << n.dump();
  // Cancelling a run that waits without an execution in memory.
  const std::string id = s.trigger("w-token", json::object());
  ASSERT_EQ(wait_until(s, id, [](const json& r) { return r["status"] == "WAITING"; })["status"], "WAITING");
  ASSERT_EQ(c.request("POST", "/api/v2/runs/" + id + "/cancel").status, 200);
  EXPECT_EQ(s.get_run(id)["status"], "CANCELED");
}

TEST(WaitsTest, TheWorkflowsExamplePluginWorksAsItsCommentSays) {
  deployment_dir d;
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_PLUGIN_DIR) / "workflows.so", d.tmp / "plugins/workflows.so");
  server s(d);
  auto out = s.cli({"trigger", "greet-team", R"({"names":["ada","linus"]})", "--wait"});
  ASSERT_EQ(out.exit_code, 0) << out.err << s.log();
  EXPECT_NE(out.out.find(R"("greetings":["hello ada","hello linus"])"), std::string::npos) << out.out;

  auto started = s.cli({"trigger", "await-approval", R"({"item":"laptop"})"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string id = started.out.substr(0, started.out.find_first_of(" \n"));
  auto w = wait_until(s, id, [](const json& r) { return r["status"] == "WAITING"; });
  ASSERT_EQ(w["status"], "WAITING") << w.dump();
  auto done = s.cli({"tokens", "complete", w["metadata"]["token"], R"({"approved":true})"});
  ASSERT_EQ(done.exit_code, 0) << done.err;
  auto r = s.wait_final(id);
  ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
  EXPECT_EQ(r["output"]["decision"]["approved"], true);
  EXPECT_EQ(r["output"]["audit"], "decided at attempt 1");
  auto listed = s.cli({"tokens", "list", "--status", "COMPLETED"});
  EXPECT_NE(listed.out.find(w["metadata"]["token"].get<std::string>()), std::string::npos) << listed.out;
  auto bad = s.cli({"tokens", "complete", "waitpoint_nope", "1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not found"), std::string::npos) << bad.err;
  auto not_json = s.cli({"tokens", "complete", "waitpoint_nope", "{oops"});
  EXPECT_EQ(not_json.exit_code, 2);
  EXPECT_NE(not_json.err.find("not JSON"), std::string::npos) << not_json.err;
}

TEST(WaitsTest, TimeSpentWaitingDoesNotCountTowardMaxDuration) {
  auto d = waits_dir();
  server s(d);
  // max_duration 5 s: a 5.5 s wait is fine; 2 s of work after a 4 s wait is fine too...
  const std::string waited = s.trigger("w-long-wait", {{"ms", 5500}});
  const std::string both = s.trigger("w-long-wait", {{"ms", 4000}, {"then_busy_ms", 2000}});
  // ... but 6 s of work after the wait is not.
  const std::string busy = s.trigger("w-long-wait", {{"ms", 100}, {"then_busy_ms", 6000}});
  auto a = s.wait_final(waited);
  auto b = s.wait_final(both);
  auto c = s.wait_final(busy);
  EXPECT_EQ(a["status"], "COMPLETED") << a.dump();
  EXPECT_EQ(b["status"], "COMPLETED") << b.dump();
  EXPECT_EQ(c["status"], "TIMED_OUT") << c.dump();
}

// Many chains of runs of one task (each waits for its child), none kept in memory while it waits,
// one chain after the other: every chain ends. A run let go while its wait's completion was being
// committed used to be read back from SQLite as still waiting, and slept for ever
// (run_store::let_go).
TEST(WaitsTest, ManyChainsDroppedFromMemoryWhileWaitingAllFinish) {
  auto d = deployment_dir("waits:\n  resident_per_task: 0\n", {"fixture_waits"});
  server s(d);
  for (int i = 0; i < 50; ++i) {  // one after the other: each into an idle runtime, whose writer commits at once
    auto n = s.wait_final(s.trigger("w-nested", {{"n", 3}}));
    ASSERT_EQ(n["status"], "COMPLETED") << "chain " << i << ": " << n.dump() << "\n" << s.log();
    EXPECT_EQ(n["output"]["depth"], 3) << n.dump();
  }
}

}  // namespace
