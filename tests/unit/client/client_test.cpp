// The C++ client's plain parts: times, statuses, and the structs it builds from the API's JSON.
#include <gtest/gtest.h>

#include <taskhost/client.hpp>

using namespace std::chrono_literals;
namespace api = taskhost::api;
using taskhost::json;

TEST(ClientTimeTest, FormatsAndParsesTheApisTimestamps) {
  const api::time_point t = api::time_point(std::chrono::milliseconds(1'767'225'600'123));  // 2026-01-01T00:00:00.123Z
  EXPECT_EQ(api::format_time(t), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(api::parse_time("2026-01-01T00:00:00.123Z"), t);
  EXPECT_EQ(api::parse_time("2026-01-01T01:00:00.123+01:00"), t);
  EXPECT_EQ(api::parse_time("2025-12-31T23:30:00.123-00:30"), t);
  EXPECT_EQ(api::parse_time(1'767'225'600'123LL), t) << "epoch milliseconds";
  EXPECT_EQ(api::parse_time("2026-01-01T00:00:00Z"), t - 123ms);
  EXPECT_EQ(api::parse_time("2026-01-01T00:00:00.123456Z"), t + 456us);
  for (const char* bad : {"garbage", "2026-01-01", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00Zx"})
    EXPECT_FALSE(api::parse_time(bad)) << bad;
  EXPECT_FALSE(api::parse_time(nullptr));
}

TEST(ClientTimeTest, TimeSpecTakesTheApisTextDurationsAndTimes) {
  api::time_spec none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(api::time_spec("1h30m").text(), "1h30m");
  EXPECT_EQ(api::time_spec(std::chrono::minutes(5)).text(), "300s");
  EXPECT_EQ(api::time_spec(1500ms).text(), "2s") << "rounded up to whole seconds";
  EXPECT_EQ(api::time_spec(-3s).text(), "0s");
  EXPECT_EQ(api::time_spec(api::time_point(std::chrono::milliseconds(1'767'225'600'123))).text(), "2026-01-01T00:00:00.123Z");
}

TEST(ClientStatusTest, FinalAndSuccessFollowTheApisVocabulary) {
  for (auto s : {"COMPLETED", "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"}) {
    EXPECT_TRUE(api::is_final(api::parse_run_status(s))) << s;
    EXPECT_EQ(api::to_string(api::parse_run_status(s)), s);
  }
  for (auto s : {"PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "DELAYED"}) {
    EXPECT_FALSE(api::is_final(api::parse_run_status(s))) << s;
    EXPECT_EQ(api::to_string(api::parse_run_status(s)), s);
  }
  EXPECT_TRUE(api::is_success(api::run_status::completed));
  EXPECT_FALSE(api::is_success(api::run_status::canceled));
  EXPECT_EQ(api::parse_run_status("REATTEMPTING"), api::run_status::unknown);
  EXPECT_FALSE(api::is_final(api::run_status::unknown));
  EXPECT_EQ(api::parse_token_status("TIMED_OUT"), api::token_status::timed_out);
}

TEST(ClientJsonTest, RunFromTheApisJsonKeepsEveryFieldAndTheRaw) {
  json j = {{"id", "run_1"},
            {"taskIdentifier", "hello-world"},
            {"status", "FAILED"},
            {"payload", {{"message", "hi"}}},
            {"error", {{"message", "boom"}, {"name", "Error"}}},
            {"tags", {"a", "b"}},
            {"metadata", {{"progress", 1}}},
            {"createdAt", "2026-01-01T00:00:00.000Z"},
            {"updatedAt", "2026-01-01T00:00:01.000Z"},
            {"startedAt", "2026-01-01T00:00:00.500Z"},
            {"finishedAt", "2026-01-01T00:00:01.000Z"},
            {"attemptCount", 3},
            {"durationMs", 420},
            {"batchId", "batch_1"},
            {"parentId", "run_0"},
            {"depth", 1},
            {"attempts", json::array()}};
  auto r = api::run::from_json(j);
  EXPECT_EQ(r.id, "run_1");
  EXPECT_EQ(r.task, "hello-world");
  EXPECT_EQ(r.status, api::run_status::failed);
  EXPECT_TRUE(r.is_final());
  EXPECT_FALSE(r.is_success());
  EXPECT_EQ(r.payload, json({{"message", "hi"}}));
  EXPECT_TRUE(r.output.is_null());
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "boom");
  EXPECT_EQ(r.error->name, "Error");
  EXPECT_EQ(r.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.metadata["progress"], 1);
  EXPECT_EQ(r.finished_at, *api::parse_time("2026-01-01T00:00:01.000Z"));
  EXPECT_EQ(*r.started_at - r.created_at, 500ms);
  EXPECT_FALSE(r.delayed_until);
  EXPECT_EQ(r.attempt_count, 3);
  EXPECT_EQ(r.duration, 420ms);
  EXPECT_EQ(r.batch_id, "batch_1");
  EXPECT_EQ(r.parent_id, "run_0");
  EXPECT_EQ(r.depth, 1);
  EXPECT_EQ(r.raw, j);
  EXPECT_THROW(api::run::from_json(json{{"status", "QUEUED"}}), api::invalid_response_error);
  EXPECT_THROW(api::run::from_json(json::array()), api::invalid_response_error);
  // A status newer than this client: final by isCompleted.
  auto newer = api::run::from_json({{"id", "run_2"}, {"status", "ARCHIVED"}, {"isCompleted", true}});
  EXPECT_TRUE(newer.is_final());
  EXPECT_EQ(newer.status_text, "ARCHIVED");
}

TEST(ClientJsonTest, TokenOutputIsDecodedFromTheApisStringPacket) {
  auto packet = api::token::from_json({{"id", "waitpoint_1"}, {"status", "COMPLETED"}, {"output", R"({"ok":true})"},
                                       {"outputType", "application/json"}});
  EXPECT_EQ(packet.output, json({{"ok", true}}));
  EXPECT_EQ(packet.status, api::token_status::completed);
  auto plain = api::token::from_json({{"id", "waitpoint_2"}, {"output", {{"ok", true}}}});
  EXPECT_EQ(plain.output, json({{"ok", true}})) << "a server that sends the data itself";
  auto text = api::token::from_json({{"id", "waitpoint_3"}, {"output", "hello"}, {"outputType", "text/plain"}});
  EXPECT_EQ(text.output, "hello");
  auto super = api::token::from_json({{"id", "waitpoint_4"}, {"output", R"({"json":[1,2]})"}, {"outputType", "application/super+json"}});
  EXPECT_EQ(super.output, json({1, 2}));
}

TEST(ClientJsonTest, ScheduleAndQueueFromTheApisJson) {
  auto s = api::schedule::from_json({{"id", "sched_1"}, {"type", "IMPERATIVE"}, {"task", "t"}, {"active", true},
                                     {"generator", {{"type", "CRON"}, {"expression", "0 9 * * *"}, {"description", "at 9"}}},
                                     {"timezone", "UTC"}, {"externalId", nullptr}, {"nextRun", "2026-01-01T09:00:00.000Z"}});
  EXPECT_EQ(s.cron, "0 9 * * *");
  EXPECT_EQ(s.external_id, "") << "nullish";
  EXPECT_TRUE(s.next_run);
  auto q = api::queue::from_json({{"id", "task/t"}, {"name", "task/t"}, {"type", "task"}, {"running", 2}, {"queued", 5},
                                  {"paused", true}, {"concurrencyLimit", nullptr}, {"concurrency", {{"override", 3}}}});
  EXPECT_FALSE(q.concurrency_limit) << "null: unlimited";
  EXPECT_EQ(q.concurrency_override, 3);
  EXPECT_TRUE(q.paused);
}

TEST(ClientLocalTest, ABadUrlIsRefusedAtConstruction) {
  EXPECT_THROW(taskhost::client("https://example.com", ""), std::invalid_argument);
  EXPECT_THROW(taskhost::client("localhost:8080", ""), std::invalid_argument);
  taskhost::client ok("http://127.0.0.1:8080/prefix/", "tr_dev_x");
  EXPECT_EQ(ok.url(), "http://127.0.0.1:8080/prefix");
  EXPECT_TRUE(ok.has_key());
}

TEST(ClientLocalTest, BatchTriggerRefusesEmptyAndOversizedBatchesLocally) {
  taskhost::client c("http://127.0.0.1:1", "");
  EXPECT_THROW(c.batch_trigger(std::vector<api::batch_item>{}), std::invalid_argument);
  EXPECT_THROW(c.batch_trigger("t", std::vector<json>(1001, json::object())), std::invalid_argument);
}
