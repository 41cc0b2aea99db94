// The wait coordinator on a real (in-memory) run store: journal keys and replays, durations,
// child runs and batches completing their parent's entries, epochs across retries, and tokens.
#include "runtime/waits.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "runtime/ids.hpp"

using namespace taskhost;
using namespace std::chrono_literals;

namespace {

struct fixture {
  run_store store{store_options{":memory:", false}};
  std::vector<std::string> woken;
  std::vector<std::string> created;
  std::unique_ptr<wait_coordinator> waits;
  wait_env env;

  fixture() {
    env.store = &store;
    env.has_task = [](const std::string& t) { return t == "child"; };
    env.create_run = [this](run_record r, std::function<void(create_result)> done) {
      created.push_back(r.id);
      store.create(std::move(r), std::move(done));
    };
    env.wake = [this](const std::string& run, const std::string&) { woken.push_back(run); };
    env.max_payload_bytes = 1000;
    restart();
  }
  /// A coordinator as a new process makes it, on the same store (what it held in memory is gone).
  void restart() {
    waits = std::make_unique<wait_coordinator>(env);
    store.set_final_listener([this](const std::string& id) { waits->run_finished(id); });
  }

  std::string parent(int attempt = 1) {
    run_record r;
    r.id = new_run_id();
    r.task_id = "parent";
    r.status = run_status::executing;
    r.created_at = r.updated_at = clock_type::now();
    r.attempts.push_back({attempt, attempt_status::executing, clock_type::now(), std::nullopt, std::nullopt, {}});
    std::string id = r.id;
    store.create(std::move(r), [](create_result) {});
    store.flush();
    return id;
  }
  json op(const std::string& run, json req) { return waits->call(run, "op", req); }
  void finish(const std::string& id, bool ok, json value) {
    store.update(id, [&](run_record& r) {
      r.status = ok ? run_status::completed : run_status::failed;
      if (ok) r.output = value;
      else r.error = value;
      r.finished_at = clock_type::now();
    });
  }
  run_status status(const std::string& id) { return store.get(id)->status; }
  /// Run `p` starts a batch of `n` children (in `created`) and suspends on it; returns its key.
  std::string batch_wait(const std::string& p, int n) {
    json items = json::array();
    for (int i = 0; i < n; ++i) items.push_back(i + 1);
    const size_t before = created.size();
    auto r = op(p, {{"seq", 0}, {"kind", "batch"}, {"task", "child"}, {"items", items}});
    store.flush();
    if (created.size() != before + static_cast<size_t>(n)) throw std::runtime_error("the batch made " + std::to_string(created.size() - before) + " runs");
    waits->suspend(p, json::array({r["key"]}));
    return r["key"];
  }
};

TEST(WaitCoordinatorTest, PositionalAndKeyedEntriesReplayTheirResults) {
  fixture f;
  auto p = f.parent();
  auto a = f.op(p, {{"seq", 0}, {"kind", "duration"}, {"ms", 0}});
  EXPECT_EQ(a["key"], "e1#0");
  EXPECT_EQ(a["done"], true);
  auto b = f.op(p, {{"key", "mine"}, {"kind", "duration"}, {"ms", 60000}});
  EXPECT_EQ(b["key"], "k:mine");
  EXPECT_EQ(b["done"], false);
  // A replay meets the same entries: nothing new is recorded.
  auto again = f.op(p, {{"key", "mine"}, {"kind", "duration"}, {"ms", 1}});
  EXPECT_EQ(again["done"], false);
  int64_t until = 0;
  f.store.read(p, [&](const run_record& r) { until = r.journal["ops"]["k:mine"]["until"]; });
  EXPECT_GT(until, to_us(clock_type::now()) + 50'000'000) << "the first wait's end is kept, not restarted";
  // Code that does something else at the same position is refused with the rule.
  try {
    f.op(p, {{"seq", 0}, {"kind", "step"}, {"name", "x"}});
    FAIL() << "expected a replay error";
  } catch (const call_error& e) {
    EXPECT_NE(std::string(e.what()).find("replay diverged"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.op(p, {{"seq", 1}, {"kind", "duration"}, {"ms", -5}}), call_error);
  EXPECT_THROW(f.op(p, {{"seq", 1}, {"kind", "teleport"}}), call_error);
  EXPECT_THROW(f.op("run_unknown", {{"seq", 1}, {"kind", "duration"}, {"ms", 1}}), call_error);
}

TEST(WaitCoordinatorTest, SuspendingOnWhatTheRunNeverStartedIsRefused) {
  fixture f;
  auto p = f.parent();
  auto k = f.op(p, {{"seq", 0}, {"kind", "duration"}, {"ms", 60000}})["key"];
  EXPECT_NE(f.waits->suspend(p, json::array({"e1#7"})).invalid, "");
  EXPECT_NE(f.waits->suspend(p, json::array({1})).invalid, "");
  EXPECT_NE(f.waits->suspend(p, json::array()).invalid, "");
  EXPECT_EQ(f.status(p), run_status::executing) << "nothing was recorded";
  auto w = f.waits->suspend(p, json::array({k}));
  EXPECT_EQ(w.invalid, "");
  EXPECT_EQ(f.status(p), run_status::waiting);
}

TEST(WaitCoordinatorTest, DurationsResumeWhenTheirTimeComes) {
  fixture f;
  auto p = f.parent();
  auto k = f.op(p, {{"seq", 0}, {"kind", "duration"}, {"ms", 80}})["key"];
  auto w = f.waits->suspend(p, json::array({k}));
  EXPECT_FALSE(w.all_done);
  ASSERT_TRUE(w.next_wake.has_value());
  EXPECT_EQ(w.kinds, "duration");
  EXPECT_EQ(f.status(p), run_status::waiting);
  std::this_thread::sleep_for(90ms);
  w = f.waits->check(p, true);
  EXPECT_TRUE(w.all_done);
  EXPECT_EQ(f.status(p), run_status::executing);
}

TEST(WaitCoordinatorTest, AChildsEndCompletesItsParentsEntryAndWakesIt) {
  fixture f;
  auto p = f.parent();
  auto r = f.op(p, {{"seq", 0}, {"kind", "task"}, {"task", "child"}, {"payload", {{"x", 1}}}});
  ASSERT_EQ(r["done"], false);
  f.store.flush();
  ASSERT_EQ(f.created.size(), 1u);
  const std::string child = f.created[0];
  auto c = f.store.get(child);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->parent_id, p);
  EXPECT_EQ(c->root_id, p);
  EXPECT_EQ(c->depth, 1);
  EXPECT_FALSE(f.waits->suspend(p, json::array({r["key"]})).all_done);
  f.finish(child, true, {{"y", 2}});
  ASSERT_EQ(f.woken, std::vector<std::string>{p});
  auto done = f.op(p, {{"seq", 0}, {"kind", "task"}, {"task", "child"}});
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["result"]["ok"], true);
  EXPECT_EQ(done["result"]["output"]["y"], 2);
  // An unknown task: an error result at once, not a wait.
  auto unknown = f.op(p, {{"seq", 1}, {"kind", "task"}, {"task", "nope"}});
  EXPECT_EQ(unknown["done"], true);
  EXPECT_EQ(unknown["result"]["ok"], false);
  // ... but a trigger without waiting throws.
  EXPECT_THROW(f.op(p, {{"seq", 2}, {"kind", "trigger"}, {"task", "nope"}}), call_error);
  // A payload over the limit names the problem.
  EXPECT_THROW(f.op(p, {{"seq", 2}, {"kind", "task"}, {"task", "child"}, {"payload", std::string(2000, 'x')}}), call_error);
}

// A supervisor may offer a suspended run (park): the thread that completes its last wait takes
// the offer and resumes it instead of waking the supervisor. Taken once; withdrawn, refused (no
// slot) or absent, the supervisor is woken as before.
TEST(WaitCoordinatorTest, AParkedRunIsResumedByWhoCompletesItsWaitElseItsSupervisorIsWoken) {
  fixture f;
  auto suspended_on_child = [&] {
    auto p = f.parent();
    auto r = f.op(p, {{"seq", 0}, {"kind", "task"}, {"task", "child"}});
    f.store.flush();
    EXPECT_FALSE(f.waits->suspend(p, json::array({r["key"]})).all_done);
    return std::pair{p, f.created.back()};
  };

  // Taken: resume() runs on this thread (the one that ended the child), and nobody is woken.
  auto [p1, c1] = suspended_on_child();
  auto offer = std::make_shared<parked_run>();
  int resumed = 0;
  bool done_when_resumed = false;
  offer->resume = [&](parked_run& self) {
    ++resumed;
    EXPECT_EQ(self.state.load(), parked_run::taken);
    f.store.read(p1, [&](const run_record& r) { done_when_resumed = r.journal["ops"]["e1#0"].value("done", false); });
    return true;
  };
  f.waits->park(p1, offer);
  f.finish(c1, true, {{"y", 1}});
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(done_when_resumed) << "the child's result is in the parent's journal before it resumes";
  EXPECT_TRUE(f.woken.empty()) << "taken: its supervisor is not woken";

  // Refused (no slot now): the supervisor is woken after all.
  auto [p2, c2] = suspended_on_child();
  auto refusing = std::make_shared<parked_run>();
  refusing->resume = [&](parked_run& self) {
    self.state = parked_run::left;
    return false;
  };
  f.waits->park(p2, refusing);
  f.finish(c2, true, json::object());
  EXPECT_EQ(f.woken, std::vector<std::string>{p2});

  auto never_taken = [](const std::string& what) {
    auto p = std::make_shared<parked_run>();
    p->resume = [what](parked_run&) {
      ADD_FAILURE() << "an offer was taken: " << what;
      return true;
    };
    return p;
  };

  // Withdrawn by its supervisor (it resumes or ends the run itself): not taken, supervisor woken.
  auto [p3, c3] = suspended_on_child();
  auto withdrawn = never_taken("withdrawn");
  f.waits->park(p3, withdrawn);
  EXPECT_EQ(withdrawn->state.exchange(parked_run::left), parked_run::parked);
  f.finish(c3, true, json::object());
  EXPECT_EQ(f.woken, (std::vector<std::string>{p2, p3}));

  // Unparked: gone from the coordinator, so the end of the wait wakes the supervisor.
  auto [p4, c4] = suspended_on_child();
  auto unparked = never_taken("unparked");
  f.waits->park(p4, unparked);
  f.waits->unpark(p4);
  f.finish(c4, true, json::object());
  EXPECT_EQ(f.woken, (std::vector<std::string>{p2, p3, p4}));
  EXPECT_EQ(unparked->state.load(), parked_run::parked);
}

TEST(WaitCoordinatorTest, ATriggerWithoutWaitingAnswersOnlyOnceTheChildIsCommitted) {
  fixture f;
  auto p = f.parent();
  std::promise<json> answered;
  auto got = answered.get_future();
  std::thread code([&] { answered.set_value(f.op(p, {{"seq", 0}, {"kind", "trigger"}, {"task", "child"}, {"payload", 1}})); });
  EXPECT_EQ(got.wait_for(150ms), std::future_status::timeout) << "answered before the commit";
  ASSERT_TRUE(f.store.flush());
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  code.join();
  const std::string id = got.get()["result"]["id"];
  ASSERT_EQ(f.created, std::vector<std::string>{id});
  EXPECT_EQ(f.store.get(id)->parent_id, p);
}

TEST(WaitCoordinatorTest, BatchResultsKeepItemOrderWhateverTheOrderOfCompletion) {
  fixture f;
  auto p = f.parent();
  json items = json::array({json{{"payload", 0}}, json{{"payload", 1}}, json{{"payload", 2}}});
  auto r = f.op(p, {{"seq", 0}, {"kind", "batch"}, {"task", "child"}, {"items", items}});
  f.store.flush();
  ASSERT_EQ(f.created.size(), 3u);
  f.waits->suspend(p, json::array({r["key"]}));
  f.finish(f.created[2], true, 20);
  f.finish(f.created[0], false, {{"message", "zero failed"}});
  EXPECT_TRUE(f.woken.empty());
  f.finish(f.created[1], true, 10);
  ASSERT_EQ(f.woken.size(), 1u);
  auto done = f.op(p, {{"seq", 0}, {"kind", "batch"}});
  ASSERT_EQ(done["done"], true);
  const json& runs = done["result"]["runs"];
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0]["ok"], false);
  EXPECT_EQ(runs[0]["error"]["message"], "zero failed");
  EXPECT_EQ(runs[1]["output"], 10);
  EXPECT_EQ(runs[2]["output"], 20);
  EXPECT_EQ(f.store.batch_runs(done["result"]["id"]).size(), 3u);
  // Bad batches are refused whole, naming the item.
  json bad = json::array({json{{"payload", 1}}, json{{"payload", 2}, {"options", {{"ttl", "soon"}}}}});
  try {
    f.op(p, {{"seq", 1}, {"kind", "batch"}, {"task", "child"}, {"items", bad}});
    FAIL();
  } catch (const call_error& e) {
    EXPECT_NE(std::string(e.what()).find("batch item 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.created.size(), 3u);
  json many = json::array();
  for (int i = 0; i < 1001; ++i) many.push_back(json::object());
  EXPECT_THROW(f.op(p, {{"seq", 1}, {"kind", "batch"}, {"task", "child"}, {"items", many}}), call_error);
}

// The parent's journal is written once, with the batch's last item, not at every item's end with
// all results so far (which made a batch of 1,000 write its parent's journal ~1,000 times).
TEST(WaitCoordinatorTest, ABatchEntryIsWrittenOnceWithItsLastItem) {
  fixture f;
  auto p = f.parent();
  const std::string key = f.batch_wait(p, 3);
  const json before = f.store.get(p)->journal;
  f.finish(f.created[0], true, 10);
  f.finish(f.created[2], true, 30);
  EXPECT_EQ(f.store.get(p)->journal, before) << "the parent was written before its batch's last item ended";
  EXPECT_FALSE(before["ops"][key].contains("results"));
  EXPECT_TRUE(f.woken.empty());
  f.finish(f.created[1], true, 20);
  ASSERT_EQ(f.woken, std::vector<std::string>{p});
  const json e = f.store.get(p)->journal["ops"][key];
  EXPECT_EQ(e["done"], true);
  ASSERT_EQ(e["result"]["runs"].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(e["result"]["runs"][i]["output"], 10 * (i + 1)) << i;
  // A child's end told twice changes nothing.
  f.waits->run_finished(f.created[1]);
  EXPECT_EQ(f.woken.size(), 1u);
}

// A parent that ends while its batch is under way (failed, canceled) never reads the batch's
// results: what was held of them is let go, and the children that end later change nothing.
TEST(WaitCoordinatorTest, AParentThatEndsLetsGoOfItsBatchesResultsSoFar) {
  fixture f;
  auto p = f.parent();
  const std::string key = f.batch_wait(p, 3);
  auto other = f.parent();
  f.batch_wait(other, 2);  // children created[3], created[4]
  f.finish(f.created[0], true, 10);
  EXPECT_EQ(f.waits->batches_under_way(), 2u);
  f.finish(p, false, {{"message", "the parent failed"}});
  EXPECT_EQ(f.waits->batches_under_way(), 1u) << "the ended parent's batch is still held";
  const json journal = f.store.get(p)->journal;
  f.finish(f.created[1], true, 20);
  f.finish(f.created[2], true, 30);
  EXPECT_EQ(f.waits->batches_under_way(), 1u);
  EXPECT_EQ(f.store.get(p)->journal, journal) << "an ended parent's journal was written";
  EXPECT_FALSE(journal["ops"][key].value("done", false));
  EXPECT_TRUE(f.woken.empty());
  // The other parent's batch was not touched by it.
  f.finish(f.created[3], true, 1);
  f.finish(f.created[4], true, 2);
  EXPECT_EQ(f.waits->batches_under_way(), 0u);
  EXPECT_EQ(f.woken, std::vector<std::string>{other});
}

// After a restart the items' results are found again from the children: those that ended before
// it (while it was down, or before, when they were only held in memory) and those that end after.
TEST(WaitCoordinatorTest, ABatchHalfDoneAcrossARestartGetsEveryItemsResult) {
  fixture f;
  auto p = f.parent();
  f.batch_wait(p, 3);
  f.finish(f.created[0], true, 10);
  f.store.set_final_listener([](const std::string&) {});  // "down": nobody hears the next end
  f.finish(f.created[1], false, {{"message", "one failed"}});
  f.restart();
  f.waits->restore(p);
  EXPECT_TRUE(f.woken.empty());
  f.finish(f.created[2], true, 30);
  ASSERT_EQ(f.woken, std::vector<std::string>{p});
  auto done = f.op(p, {{"seq", 0}, {"kind", "batch"}});
  ASSERT_EQ(done["done"], true);
  const json& runs = done["result"]["runs"];
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0]["output"], 10);
  EXPECT_EQ(runs[1]["error"]["message"], "one failed");
  EXPECT_EQ(runs[2]["output"], 30);
}

// A store written by a taskhost that kept a batch's results in its journal entry: those results
// are kept (not looked up again), the others come from the children, and the entry ends in the
// form it has now.
TEST(WaitCoordinatorTest, ABatchEntryWithResultsInTheJournalFromAnOlderTaskhostCompletes) {
  fixture f;
  auto p = f.parent();
  auto r = f.op(p, {{"seq", 0}, {"kind", "task"}, {"task", "child"}});  // a child run to wait for
  f.store.flush();
  ASSERT_EQ(f.created.size(), 1u);
  const std::string child = f.created[0];
  const std::string gone = new_run_id();  // ended and recorded in the journal; its run was purged
  f.store.update(p, [&](run_record& rec) {
    rec.journal["ops"].erase(r["key"].get<std::string>());
    rec.journal["ops"]["e1#0"] = {{"kind", "batch"},
                                  {"batchId", "batch_old"},
                                  {"runs", {gone, child}},
                                  {"results", {{{"ok", true}, {"id", gone}, {"output", 5}}, nullptr}},
                                  {"remaining", 1},
                                  {"done", false}};
    rec.journal["waiting"] = json::array({"e1#0"});
    rec.status = run_status::waiting;
  });
  f.restart();
  f.waits->restore(p);
  EXPECT_TRUE(f.woken.empty());
  f.finish(child, true, 7);
  ASSERT_EQ(f.woken, std::vector<std::string>{p});
  const json e = f.store.get(p)->journal["ops"]["e1#0"];
  EXPECT_EQ(e["done"], true);
  EXPECT_EQ(e["result"]["id"], "batch_old");
  EXPECT_EQ(e["result"]["runs"][0]["output"], 5);
  EXPECT_EQ(e["result"]["runs"][1]["output"], 7);
  EXPECT_FALSE(e.contains("results"));
  EXPECT_FALSE(e.contains("remaining"));
}

TEST(WaitCoordinatorTest, ANewEpochForgetsPositionalEntriesButKeepsKeyedOnes) {
  fixture f;
  auto p = f.parent();
  f.op(p, {{"seq", 0}, {"kind", "duration"}, {"ms", 0}});
  f.op(p, {{"key", "k"}, {"kind", "duration"}, {"ms", 0}});
  f.store.update(p, [](run_record& r) { new_journal_epoch(r, 2); });
  auto a = f.op(p, {{"seq", 0}, {"kind", "duration"}, {"ms", 60000}});
  EXPECT_EQ(a["key"], "e2#0");
  EXPECT_EQ(a["done"], false) << "the retry waits again for a positional wait";
  EXPECT_EQ(f.op(p, {{"key", "k"}, {"kind", "duration"}, {"ms", 60000}})["done"], true);
}

TEST(WaitCoordinatorTest, TokensCompleteOnceAndTimeOut) {
  fixture f;
  auto t = f.waits->create_token({{"tags", {"a"}}});
  const std::string id = t["id"];
  EXPECT_EQ(t["status"], "WAITING");
  auto cached = f.waits->create_token({{"idempotencyKey", "k"}});
  EXPECT_EQ(f.waits->create_token({{"idempotencyKey", "k"}})["id"], cached["id"]);
  EXPECT_EQ(f.waits->create_token({{"idempotencyKey", "k"}})["isCached"], true);
  EXPECT_THROW(f.waits->create_token({{"timeout", "soon"}}), call_error);
  EXPECT_THROW(f.waits->create_token({{"tags", json::array({1})}}), call_error);

  auto p = f.parent();
  auto r = f.op(p, {{"seq", 0}, {"kind", "token"}, {"id", id}});
  EXPECT_EQ(r["done"], false);
  f.waits->suspend(p, json::array({r["key"]}));
  std::string err;
  EXPECT_EQ(f.waits->complete_token(id, {{"v", 1}}, err), 200);
  EXPECT_EQ(f.woken, std::vector<std::string>{p});
  EXPECT_EQ(f.waits->complete_token(id, 2, err), 409);
  EXPECT_NE(err.find("already completed"), std::string::npos);
  EXPECT_EQ(f.waits->complete_token(id, {{"v", 1}}, err), 409) << "a run's code completing twice is refused";
  EXPECT_EQ(f.waits->complete_token(id, {{"v", 1}}, err, /*same_data_ok=*/true), 200) << "an HTTP retry with the same data";
  EXPECT_EQ(f.waits->complete_token(id, {{"v", 2}}, err, true), 409);
  EXPECT_NE(err.find("with other data"), std::string::npos) << err;
  EXPECT_EQ(f.woken, std::vector<std::string>{p}) << "a repeat wakes nobody";
  EXPECT_EQ(f.waits->complete_token("waitpoint_nope", 2, err), 404);
  EXPECT_EQ(f.op(p, {{"seq", 0}, {"kind", "token"}, {"id", id}})["result"]["output"]["v"], 1);
  EXPECT_THROW(f.op(p, {{"seq", 1}, {"kind", "token"}, {"id", "waitpoint_nope"}}), call_error);

  // A token that times out while a run waits for it.
  auto short_token = f.waits->create_token({{"timeout", "1s"}});
  auto q = f.parent();
  auto k = f.op(q, {{"seq", 0}, {"kind", "token"}, {"id", short_token["id"]}})["key"];
  auto w = f.waits->suspend(q, json::array({k}));
  ASSERT_TRUE(w.next_wake);
  EXPECT_FALSE(w.all_done);
  std::this_thread::sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(*w.next_wake - clock_type::now()) + 20ms);
  EXPECT_TRUE(f.waits->check(q, true).all_done);
  auto res = f.op(q, {{"seq", 0}, {"kind", "token"}})["result"];
  EXPECT_EQ(res["ok"], false);
  EXPECT_EQ(res["error"]["name"], "WaitpointTimeoutError");
  EXPECT_EQ(f.waits->token(short_token["id"])->status, "TIMED_OUT");
  EXPECT_EQ(f.waits->complete_token(short_token["id"], 1, err), 409);
  EXPECT_NE(err.find("timed out"), std::string::npos);
  EXPECT_EQ(f.waits->complete_token(short_token["id"], 1, err, true), 409) << "a timed-out token stays timed out";
  bool more = true;
  token_list_query q1;
  q1.statuses = {"COMPLETED"};
  EXPECT_EQ(f.waits->list_tokens(q1, more).size(), 1u);
  EXPECT_FALSE(more);
}

TEST(WaitCoordinatorTest, TheHttpShapeOfATokenHasItsOutputAsAJsonString) {
  fixture f;
  bool cached = true;
  auto t = f.waits->new_token({{"tags", {"x"}}, {"idempotencyKey", "shape"}}, cached);
  EXPECT_FALSE(cached);
  json waiting = token_to_api_json(t);
  EXPECT_EQ(waiting["status"], "WAITING");
  EXPECT_FALSE(waiting.contains("output"));
  EXPECT_FALSE(waiting.contains("outputIsError"));
  EXPECT_EQ(waiting["tags"], json::array({"x"}));
  EXPECT_EQ(waiting["idempotencyKey"], "shape");
  std::string err;
  ASSERT_EQ(f.waits->complete_token(t.id, {{"approved", true}, {"n", 2}}, err), 200);
  json done = token_to_api_json(*f.waits->token(t.id));
  EXPECT_EQ(done["status"], "COMPLETED");
  ASSERT_TRUE(done["output"].is_string());
  EXPECT_EQ(json::parse(done["output"].get<std::string>()), (json{{"approved", true}, {"n", 2}}));
  EXPECT_EQ(done["outputType"], "application/json");
  EXPECT_EQ(done["outputIsError"], false);
  EXPECT_TRUE(done["completedAt"].is_string());
  // What a run's code gets is unchanged: the data itself.
  EXPECT_EQ(token_to_json(*f.waits->token(t.id))["output"]["n"], 2);

  auto s = f.waits->new_token({{"timeout", "1s"}}, cached);
  std::this_thread::sleep_for(1100ms);
  json timed = token_to_api_json(*f.waits->token(s.id));
  EXPECT_EQ(timed["status"], "TIMED_OUT");
  EXPECT_EQ(timed["outputIsError"], true);
  json out = json::parse(timed["output"].get<std::string>());
  EXPECT_EQ(out["code"], "TRIGGER_WAITPOINT_TIMEOUT");
  EXPECT_NE(out["message"].get<std::string>().find("timed out"), std::string::npos);
}

}  // namespace
