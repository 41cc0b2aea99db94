// The two requests of the two-phase batch API, parsed: the batch (runCount, taskIdentifiers,
// idempotency key) and the NDJSON item stream (lines, indexes, tasks, and a trigger's options).
#include "runtime/batch_request.hpp"

#include <gtest/gtest.h>

using namespace taskhost;
using json = nlohmann::json;

TEST(BatchRequestTest, CreateBodyTakesRunCountSortedTasksAndTheIdempotencyKey) {
  auto r = parse_batch_create_body(
      R"({"runCount":3,"taskIdentifiers":["b","a","b"],"idempotencyKey":"k64","idempotencyKeyOptions":{"key":"mine","scope":"global"}})");
  ASSERT_TRUE(r.input) << r.error.message;
  EXPECT_EQ(r.input->run_count, 3);
  EXPECT_EQ(r.input->task_ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.input->idempotency_key, "k64");
  EXPECT_EQ(r.input->idempotency_key_user, "mine");
  EXPECT_TRUE(r.input->request_key.empty()) << "never from the body";
  auto bare = parse_batch_create_body(R"({"runCount":1000})");
  ASSERT_TRUE(bare.input) << bare.error.message;
  EXPECT_TRUE(bare.input->task_ids.empty());
  EXPECT_TRUE(parse_batch_create_body(R"({"runCount":2.0,"taskIdentifiers":["a"]})").input) << "JavaScript's 2 and 2.0 are one number";
}

TEST(BatchRequestTest, CreateBodyRefusesABadRunCountAndBadFieldsNamingThem) {
  auto refused = [](const std::string& body, const std::string& mentions) {
    auto r = parse_batch_create_body(body);
    EXPECT_FALSE(r.input) << body;
    EXPECT_EQ(r.error.status, 400) << body;
    EXPECT_NE(r.error.message.find(mentions), std::string::npos) << body << " → " << r.error.message;
  };
  refused(R"({"taskIdentifiers":["a"]})", "runCount is required");
  refused(R"({"runCount":0})", "positive whole number");
  refused(R"({"runCount":-3})", "positive whole number");
  refused(R"({"runCount":2.5})", "positive whole number");
  refused(R"({"runCount":"10"})", "positive whole number");
  refused(R"({"runCount":1001})", "at most 1000");
  refused(R"({"runCount":1,"taskIdentifiers":[]})", "taskIdentifiers");
  refused(R"({"runCount":1,"taskIdentifiers":"a"})", "taskIdentifiers");
  refused(R"({"runCount":1,"taskIdentifiers":[""]})", "taskIdentifiers");
  refused(R"({"runCount":1,"idempotencyKey":7})", "idempotencyKey");
  refused(R"({"runCount":1,"idempotencyKey":")" + std::string(2049, 'k') + R"("})", "idempotencyKey");
  refused(R"({"runCount":1,"parentRunId":"run_x"})", "parentRunId");
  refused(R"({"runCount":1,"resumeParentOnCompletion":true})", "resumeParentOnCompletion");
  refused("[1]", "JSON object");
  refused("{", "JSON object");
}

TEST(BatchRequestTest, ItemsAreReadLineByLineWithTheTriggersOptions) {
  std::string body =
      R"({"index":1,"task":"echo","payload":"{\"json\":{\"n\":1}}","options":{"payloadType":"application/super+json","tags":["t2","t1"],"maxAttempts":3}})"
      "\r\n\n   \n"
      R"({"index":0,"task":"other","payload":{"plain":true}})"
      "\n";
  auto r = parse_batch_items(body, 1 << 20);
  ASSERT_TRUE(r.ok()) << r.error.message;
  ASSERT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.items[0].index, 1);
  EXPECT_EQ(r.items[0].line, 1u);
  EXPECT_EQ(r.items[0].in.task_id, "echo");
  EXPECT_EQ(r.items[0].in.payload, json({{"n", 1}}));
  EXPECT_EQ(r.items[0].in.tags, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(r.items[0].in.max_attempts, 3);
  EXPECT_EQ(r.items[1].index, 0);
  EXPECT_EQ(r.items[1].line, 4u);
  EXPECT_EQ(r.items[1].in.payload, json({{"plain", true}}));
  EXPECT_TRUE(parse_batch_items("", 100).ok()) << "an empty stream holds no items";
}

TEST(BatchRequestTest, ABadLineFailsTheStreamNamingTheLineOrTheIndex) {
  auto refused = [](const std::string& body, const std::string& mentions, uint64_t limit = 1 << 20) {
    auto r = parse_batch_items(body, limit);
    EXPECT_FALSE(r.ok()) << body;
    EXPECT_TRUE(r.items.empty());
    EXPECT_EQ(r.error.status, 400) << body;
    EXPECT_NE(r.error.message.find(mentions), std::string::npos) << body << " → " << r.error.message;
  };
  const std::string good = R"({"index":0,"task":"echo"})" "\n";
  refused(good + "{not json\n", "line 2 is not valid JSON");
  refused(good + good + "[1,2]\n", "line 3 is not a JSON object");
  refused(good + R"({"task":"echo"})", "line 2: the item needs an index");
  refused(good + R"({"index":-1,"task":"echo"})", "line 2: the item needs an index");
  refused(good + R"({"index":1.5,"task":"echo"})", "line 2: the item needs an index");
  refused(good + R"({"index":4})", "line 2 (index 4): the item needs a task");
  refused(good + R"({"index":4,"task":""})", "needs a task");
  // A payload over the limit names the item (400 here, where a single trigger answers 413).
  refused(good + R"({"index":7,"task":"echo","payload":")" + std::string(200, 'x') + R"("})", "item 7 (line 2): payload of", 100);
  refused(good + R"({"index":3,"task":"echo","options":{"maxAttempts":0}})", "item 3 (line 2): options.maxAttempts");
  refused(good + R"({"index":3,"task":"echo","options":{"parentRunId":"run_x"}})", "item 3 (line 2): option 'parentRunId'");
}
