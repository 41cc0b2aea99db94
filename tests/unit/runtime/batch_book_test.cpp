// API batches on a real store: an index gets one run however often it is sent, the batch seals
// when every index has its run, bad items refuse the whole stream, and what is committed survives
// a restart. The runs are created straight in the store (no supervisors), and committed by calling
// flush() as the writer would.
#include "runtime/batch_book.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "runtime/ids.hpp"
#include "support/process.hpp"

using namespace taskhost;
using taskhost::test::temp_dir;

namespace {

struct fixture {
  explicit fixture(const std::string& path = ":memory:") : store(store_options{path}) {
    batch_book::env e;
    e.store = &store;
    e.has_task = [](const std::string& t) { return t == "echo" || t == "other"; };
    e.has_queue = [](const std::string& q) { return q == "one"; };
    e.read_packet = [this](const std::string& path) -> std::optional<stored_packet> {
      ++packet_reads;
      auto it = packets.find(path);
      if (it == packets.end()) return std::nullopt;
      return it->second;
    };
    e.packet_used = [this](const std::string& path) { used.push_back(path); };
    e.create_run = [this](run_record r, std::function<void(create_result)> done) {
      ++created;
      if (refuse_next > 0) {
        --refuse_next;
        return done({503, {}, false, "the run store's disk is full"});
      }
      store.create(std::move(r), std::move(done));
    };
    book = std::make_unique<batch_book>(std::move(e));
  }
  std::string create(int64_t n, std::vector<std::string> tasks = {"echo"}) {
    batch_create_input in;
    in.run_count = n;
    in.task_ids = std::move(tasks);
    auto a = book->create(in);
    EXPECT_EQ(a.status, 200) << a.body.dump();
    return a.body.value("id", "");
  }
  /// Sends `items` ("index:task" each) and commits; returns the answer.
  api_answer send(const std::string& id, const std::vector<std::pair<int64_t, std::string>>& items, nlohmann::json options = nullptr) {
    std::vector<batch_item> v;
    size_t line = 0;
    for (const auto& [idx, task] : items) {
      nlohmann::json body = {{"payload", {{"i", idx}}}};
      if (!options.is_null()) body["options"] = options;
      auto p = parse_trigger_json(task, body, 1 << 20);
      EXPECT_TRUE(p.input) << p.error.message;
      v.push_back({idx, ++line, std::move(*p.input)});
    }
    std::optional<api_answer> got;
    book->add_items(id, std::move(v), [&](api_answer a) { got = std::move(a); });
    while (store.dirty()) store.flush();
    EXPECT_TRUE(got.has_value()) << "answered once its runs are committed";
    return got.value_or(api_answer{0, {}});
  }
  run_store store;
  std::unique_ptr<batch_book> book;
  int created = 0;
  int refuse_next = 0;
  std::map<std::string, stored_packet> packets;  ///< uploaded packets, by storagePath
  int packet_reads = 0;
  std::vector<std::string> used;
};

std::vector<std::pair<int64_t, std::string>> indexes(std::initializer_list<int64_t> l, const std::string& task = "echo") {
  std::vector<std::pair<int64_t, std::string>> out;
  for (auto i : l) out.emplace_back(i, task);
  return out;
}

}  // namespace

TEST(BatchBookTest, CreateChecksTheTasksAndAnIdempotencyKeyReturnsTheSameBatchCached) {
  fixture f;
  batch_create_input in;
  in.run_count = 2;
  in.task_ids = {"echo", "nope"};
  auto bad = f.book->create(in);
  EXPECT_EQ(bad.status, 404);
  EXPECT_EQ(bad.body["error"], "Task 'nope' not found");
  in.task_ids = {"echo"};
  in.idempotency_key = "k1";
  auto a = f.book->create(in);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["isCached"], false);
  EXPECT_EQ(a.body["runCount"], 2);
  EXPECT_EQ(a.body["id"].get<std::string>().rfind("batch_", 0), 0u);
  in.run_count = 5;
  auto b = f.book->create(in);
  EXPECT_EQ(b.body["id"], a.body["id"]);
  EXPECT_EQ(b.body["isCached"], true);
  EXPECT_EQ(b.body["runCount"], 2) << "the batch as it was made";
  in.idempotency_key = "k2";
  EXPECT_NE(f.book->create(in).body["id"], a.body["id"]);
}

TEST(BatchBookTest, EachIndexGetsOneRunAndTheBatchSealsWhenAllHaveOne) {
  fixture f;
  auto id = f.create(3);
  auto first = f.send(id, indexes({0, 1}));
  ASSERT_EQ(first.status, 200) << first.body.dump();
  EXPECT_EQ(first.body, nlohmann::json({{"id", id}, {"itemsAccepted", 2}, {"itemsDeduplicated", 0}, {"sealed", false},
                                        {"enqueuedCount", 2}, {"expectedCount", 3}}));
  EXPECT_EQ(f.book->get(id).body["status"], "PENDING");
  auto all = f.send(id, indexes({0, 1, 2}));  // the SDK re-sends the whole stream
  EXPECT_EQ(all.body, nlohmann::json({{"id", id}, {"itemsAccepted", 1}, {"itemsDeduplicated", 2}, {"sealed", true}}));
  auto again = f.send(id, indexes({0, 1, 2}));
  EXPECT_EQ(again.body, nlohmann::json({{"id", id}, {"itemsAccepted", 0}, {"itemsDeduplicated", 3}, {"sealed", true}}));
  EXPECT_EQ(f.created, 3);
  auto got = f.book->get(id).body;
  EXPECT_EQ(got["status"], "COMPLETED");
  EXPECT_EQ(got["runCount"], 3);
  ASSERT_EQ(got["runs"].size(), 3u);
  EXPECT_TRUE(got["processing"].contains("completedAt"));
  EXPECT_EQ(got["processing"]["errors"], nlohmann::json::array());
  EXPECT_FALSE(got.contains("idempotencyKey"));
  for (int i = 0; i < 3; ++i) {
    auto r = f.store.get(got["runs"][i]);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->batch_id, id);
    EXPECT_EQ(r->payload, nlohmann::json({{"i", i}})) << "runs are listed by index";
  }
  EXPECT_EQ(f.book->live(), 0u) << "no state kept once no stream is in flight";
}

TEST(BatchBookTest, DuplicateIndexesInOneStreamAreDeduplicated) {
  fixture f;
  auto id = f.create(2);
  auto a = f.send(id, indexes({1, 1, 0, 1}));
  EXPECT_EQ(a.body["itemsAccepted"], 2);
  EXPECT_EQ(a.body["itemsDeduplicated"], 2);
  EXPECT_EQ(a.body["sealed"], true);
  EXPECT_EQ(f.created, 2);
}

TEST(BatchBookTest, ABadItemRefusesTheWholeStreamNamingItsIndex) {
  fixture f;
  auto id = f.create(3, {"echo"});
  auto out_of_range = f.send(id, indexes({0, 3}));
  EXPECT_EQ(out_of_range.status, 400);
  EXPECT_NE(out_of_range.body["error"].get<std::string>().find("item 3 (line 2): index 3 is out of range"), std::string::npos)
      << out_of_range.body;
  auto not_listed = f.send(id, {{0, "echo"}, {1, "other"}});
  EXPECT_EQ(not_listed.status, 400);
  EXPECT_NE(not_listed.body["error"].get<std::string>().find("item 1 (line 2): task 'other' is not one of the batch's taskIdentifiers (echo)"),
            std::string::npos)
      << not_listed.body;
  auto bad_queue = f.send(id, indexes({0}), {{"queue", "nope"}});
  EXPECT_EQ(bad_queue.status, 400);
  EXPECT_EQ(f.created, 0) << "nothing of a refused stream is triggered";
  auto any = f.create(1, {});  // no taskIdentifiers: any deployed task
  auto unknown = f.send(any, indexes({0}, "missing"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body["error"], "Task 'missing' not found (item 0 (line 1))");
  EXPECT_EQ(f.send(any, indexes({0}, "other")).body["sealed"], true);
  EXPECT_EQ(f.send("batch_unknown", indexes({0})).status, 404);
  EXPECT_EQ(f.book->get("batch_unknown").status, 404);
}

TEST(BatchBookTest, AnIndexClaimedByAStreamInFlightIsNotTriggeredAgain) {
  fixture f;
  auto id = f.create(2);
  auto make = [](int64_t idx) {
    auto p = parse_trigger_json("echo", nlohmann::json::object(), 100);
    return batch_item{idx, 1, std::move(*p.input)};
  };
  std::optional<api_answer> first, second;
  std::vector<batch_item> a, b;
  a.push_back(make(0));
  a.push_back(make(1));
  b.push_back(make(1));
  b.push_back(make(0));
  f.book->add_items(id, std::move(a), [&](api_answer x) { first = x; });
  EXPECT_FALSE(first) << "not answered before its runs are committed";
  f.book->add_items(id, std::move(b), [&](api_answer x) { second = x; });  // a retry while the first is in flight
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body["itemsDeduplicated"], 2);
  EXPECT_EQ(second->body["sealed"], false) << "the first stream's runs are not committed yet";
  while (f.store.dirty()) f.store.flush();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body["itemsAccepted"], 2);
  EXPECT_EQ(first->body["sealed"], true);
  EXPECT_EQ(f.created, 2);
}

TEST(BatchBookTest, ARefusedRunFreesItsIndexForTheRetry) {
  fixture f;
  auto id = f.create(2);
  f.refuse_next = 1;
  auto a = f.send(id, indexes({0, 1}));
  EXPECT_EQ(a.status, 503);
  EXPECT_NE(a.body["error"].get<std::string>().find("disk is full"), std::string::npos);
  auto b = f.send(id, indexes({0, 1}));
  EXPECT_EQ(b.body["itemsAccepted"], 1);
  EXPECT_EQ(b.body["itemsDeduplicated"], 1);
  EXPECT_EQ(b.body["sealed"], true);
}

TEST(BatchBookTest, AnItemWhoseIdempotencyKeyFindsAnEarlierRunGetsThatRun) {
  fixture f;
  run_record earlier;
  earlier.id = new_run_id();
  earlier.task_id = "echo";
  earlier.idempotency_key = "item-key";
  earlier.created_at = earlier.updated_at = clock_type::now();
  f.store.create(earlier, [](create_result) {});
  f.store.flush();
  auto id = f.create(1);
  auto a = f.send(id, indexes({0}), {{"idempotencyKey", "item-key"}});
  EXPECT_EQ(a.body["itemsAccepted"], 1);
  EXPECT_EQ(a.body["sealed"], true);
  EXPECT_EQ(f.book->get(id).body["runs"], nlohmann::json::array({earlier.id}));
  EXPECT_EQ(f.store.batch_items(id), (std::vector<std::pair<int64_t, std::string>>{{0, earlier.id}}));
}

TEST(BatchBookTest, WhatIsCommittedSurvivesARestart) {
  temp_dir tmp;
  const auto path = (tmp / "runs.db").string();
  std::string id;
  {
    fixture f(path);
    id = f.create(3);
    EXPECT_EQ(f.send(id, indexes({0, 2})).body["itemsAccepted"], 2);
  }
  fixture f(path);
  auto a = f.send(id, indexes({0, 1, 2}));
  EXPECT_EQ(a.body["itemsAccepted"], 1);
  EXPECT_EQ(a.body["itemsDeduplicated"], 2);
  EXPECT_EQ(a.body["sealed"], true);
  EXPECT_EQ(f.created, 1);
}

TEST(BatchBookTest, ATasksBatchWithoutARecordIsShownFromItsRuns) {
  fixture f;
  std::string parent = new_run_id();
  for (int i = 0; i < 2; ++i) {
    run_record r;
    r.id = new_run_id();
    r.task_id = "echo";
    r.batch_id = "batch_intask";
    r.parent_id = parent;
    r.created_at = r.updated_at = clock_type::now();
    f.store.create(r, [](create_result) {});
  }
  f.store.flush();
  auto got = f.book->get("batch_intask");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body["status"], "COMPLETED");
  EXPECT_EQ(got.body["runCount"], 2);
  EXPECT_EQ(got.body["runs"].size(), 2u);
  EXPECT_EQ(got.body["parentId"], parent);
  EXPECT_EQ(got.body["allRunsFinished"], false);
}

TEST(BatchBookTest, AnOffloadedPayloadIsReadFromItsPacketOnlyByAnItemThatGetsARun) {
  fixture f;
  f.packets["packets/a/payload.json"] = {"application/super+json", R"({"json":{"big":"a"}})"};
  auto id = f.create(2);
  const nlohmann::json stored = {{"payloadType", "application/store"}};
  auto item = [&](int64_t index, const std::string& path) {
    auto p = parse_trigger_json("echo", {{"payload", path}, {"options", stored}}, 1 << 20);
    EXPECT_TRUE(p.input) << p.error.message;
    return batch_item{index, size_t(index + 1), std::move(*p.input)};
  };
  auto send = [&](std::vector<batch_item> items) {
    std::optional<api_answer> got;
    f.book->add_items(id, std::move(items), [&](api_answer a) { got = std::move(a); });
    while (f.store.dirty()) f.store.flush();
    return got.value_or(api_answer{0, {}});
  };
  std::vector<batch_item> first;
  first.push_back(item(0, "packets/a/payload.json"));
  first.push_back(item(1, "packets/missing/payload.json"));
  auto refused = send(std::move(first));
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body["error"].get<std::string>().find("item 1 (line 2): no packet is stored at storagePath 'packets/missing"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(f.created, 0) << "a refused stream triggers nothing";
  EXPECT_TRUE(f.used.empty());
  f.packets["packets/b/payload.json"] = {"text/plain", "plain b"};
  std::vector<batch_item> second;
  second.push_back(item(0, "packets/a/payload.json"));
  second.push_back(item(1, "packets/b/payload.json"));
  auto ok = send(std::move(second));
  EXPECT_EQ(ok.body["sealed"], true) << ok.body;
  EXPECT_EQ(f.used, (std::vector<std::string>{"packets/a/payload.json", "packets/b/payload.json"}));
  auto runs = f.book->get(id).body["runs"];
  EXPECT_EQ(f.store.get(runs[0])->payload, nlohmann::json({{"big", "a"}}));
  EXPECT_EQ(f.store.get(runs[1])->payload, "plain b");
  EXPECT_EQ(f.store.get(runs[1])->payload_type, "text/plain");
  // The SDK re-sends the whole stream; the packets may be gone by then.
  f.packets.clear();
  const int reads = f.packet_reads;
  std::vector<batch_item> again;
  again.push_back(item(0, "packets/a/payload.json"));
  again.push_back(item(1, "packets/b/payload.json"));
  auto resent = send(std::move(again));
  EXPECT_EQ(resent.status, 200) << resent.body;
  EXPECT_EQ(resent.body["itemsDeduplicated"], 2);
  EXPECT_EQ(f.packet_reads, reads) << "a deduplicated item reads no packet";
}
