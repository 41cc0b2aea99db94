#include "runtime/trigger_request.hpp"

#include <gtest/gtest.h>

using nlohmann::json;
using taskhost::parse_trigger_body;

namespace {
constexpr uint64_t limit = 3u << 20;
}

TEST(TriggerRequestTest, PlainJsonPayloadIsTakenAsIs) {
  auto r = parse_trigger_body("t", R"({"payload":{"message":"hi"}})", limit);
  ASSERT_TRUE(r.input) << r.error.message;
  EXPECT_EQ(r.input->task_id, "t");
  EXPECT_EQ(r.input->payload, json({{"message", "hi"}}));
}

TEST(TriggerRequestTest, SuperJsonPacketGivesItsJsonMember) {
  // Exactly what @trigger.dev/sdk 4.8.3 sends (reference §5.1).
  auto r = parse_trigger_body("t",
      R"({"payload":"{\"json\":{\"message\":\"Hello world!\"}}","options":{"payloadType":"application/super+json","payloadSize":35}})",
      limit);
  ASSERT_TRUE(r.input) << r.error.message;
  EXPECT_EQ(r.input->payload, json({{"message", "Hello world!"}}));
  EXPECT_EQ(r.input->payload_type, "application/super+json");
}

TEST(TriggerRequestTest, SuperJsonWithMetaStillGivesJson) {
  auto r = parse_trigger_body("t",
      R"({"payload":"{\"json\":{\"at\":\"2025-01-01T00:00:00.000Z\"},\"meta\":{\"values\":{\"at\":[\"Date\"]}}}","options":{"payloadType":"application/super+json"}})",
      limit);
  ASSERT_TRUE(r.input);
  EXPECT_EQ(r.input->payload, json({{"at", "2025-01-01T00:00:00.000Z"}}));
}

TEST(TriggerRequestTest, JsonStringAndTextPayloadTypes) {
  auto j = parse_trigger_body("t", R"({"payload":"[1,2]","options":{"payloadType":"application/json"}})", limit);
  ASSERT_TRUE(j.input);
  EXPECT_EQ(j.input->payload, json::array({1, 2}));
  auto t = parse_trigger_body("t", R"({"payload":"just words","options":{"payloadType":"text/plain"}})", limit);
  ASSERT_TRUE(t.input);
  EXPECT_EQ(t.input->payload, "just words");
  // A string with no payloadType is a plain JSON string (curl users).
  auto s = parse_trigger_body("t", R"({"payload":"[1,2]"})", limit);
  ASSERT_TRUE(s.input);
  EXPECT_EQ(s.input->payload, "[1,2]");
}

TEST(TriggerRequestTest, MissingPayloadOrEmptyBodyGivesNull) {
  auto a = parse_trigger_body("t", "", limit);
  ASSERT_TRUE(a.input);
  EXPECT_TRUE(a.input->payload.is_null());
  auto b = parse_trigger_body("t", R"({"options":{}})", limit);
  ASSERT_TRUE(b.input);
  EXPECT_TRUE(b.input->payload.is_null());
}

TEST(TriggerRequestTest, MalformedBodiesAre400) {
  for (const char* body : {"{", "not json", "[1,2]", "42", R"({"options":[]})"}) {
    auto r = parse_trigger_body("t", body, limit);
    EXPECT_FALSE(r.input) << body;
    EXPECT_EQ(r.error.status, 400) << body;
  }
  auto bad_packet = parse_trigger_body("t", R"({"payload":"{oops","options":{"payloadType":"application/super+json"}})", limit);
  EXPECT_EQ(bad_packet.error.message, "payload is not a valid application/super+json packet");
  auto bad_type = parse_trigger_body("t", R"({"payload":"x","options":{"payloadType":"image/png"}})", limit);
  EXPECT_EQ(bad_type.error.message, "unsupported options.payloadType 'image/png'");
}

TEST(TriggerRequestTest, OversizePayloadIs413) {
  std::string big(2000, 'x');
  auto r = parse_trigger_body("t", R"({"payload":{"b":")" + big + R"("}})", 1000);
  ASSERT_FALSE(r.input);
  EXPECT_EQ(r.error.status, 413);
  EXPECT_NE(r.error.message.find("over the limit of 1000 bytes"), std::string::npos);
  auto s = parse_trigger_body("t", R"({"payload":")" + big + R"(","options":{"payloadType":"text/plain"}})", 1000);
  EXPECT_EQ(s.error.status, 413);
}

TEST(TriggerRequestTest, UnsupportedOptionsAreRefusedNotIgnored) {
  auto r = parse_trigger_body("t", R"({"payload":1,"options":{"delay":"1h"}})", limit);
  ASSERT_FALSE(r.input);
  EXPECT_EQ(r.error.message, "option 'delay' is not supported by this taskhost yet");
  // Options that only matter to Trigger.dev's cloud are accepted and ignored (reference §5.1).
  EXPECT_TRUE(parse_trigger_body("t", R"({"payload":1,"options":{"machine":"small-1x","queue":{"name":"q"}}})", limit).input);
}

TEST(TriggerRequestTest, MaxAttemptsAndTagsAreValidated) {
  auto ok = parse_trigger_body("t", R"({"options":{"maxAttempts":5,"tags":["b","a","b"]}})", limit);
  ASSERT_TRUE(ok.input);
  EXPECT_EQ(ok.input->max_attempts, 5);
  EXPECT_EQ(ok.input->tags, (std::vector<std::string>{"a", "b"}));
  auto one = parse_trigger_body("t", R"({"options":{"tags":"solo"}})", limit);
  ASSERT_TRUE(one.input);
  EXPECT_EQ(one.input->tags, std::vector<std::string>{"solo"});
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"maxAttempts":0}})", limit).input);
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"maxAttempts":"3"}})", limit).input);
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"tags":["1","2","3","4","5","6","7","8","9","10","11"]}})", limit).input);
  auto long_tag = parse_trigger_body("t", R"({"options":{"tags":[")" + std::string(129, 'a') + R"("]}})", limit);
  EXPECT_EQ(long_tag.error.message, "options.tags: each tag must be 1 to 128 characters");
}

TEST(TriggerRequestTest, MaxDurationIsSecondsAtLeastFive) {
  auto ok = parse_trigger_body("t", R"({"options":{"maxDuration":7.5}})", limit);
  ASSERT_TRUE(ok.input);
  EXPECT_EQ(ok.input->max_duration_ms, 7500);
  for (const char* bad : {R"({"options":{"maxDuration":4}})", R"({"options":{"maxDuration":"10"}})", R"({"options":{"maxDuration":-1}})"}) {
    auto r = parse_trigger_body("t", bad, limit);
    EXPECT_FALSE(r.input) << bad;
    EXPECT_EQ(r.error.message, "options.maxDuration must be a number of seconds, at least 5") << bad;
  }
}
