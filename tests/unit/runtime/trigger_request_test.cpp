#include "runtime/trigger_request.hpp"

#include "runtime/run.hpp"

#include <gtest/gtest.h>

using nlohmann::json;
using taskhost::format_time;
using taskhost::parse_iso_time;
using taskhost::parse_trigger_body;
using taskhost::parse_trigger_json;

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
  auto r = parse_trigger_body("t", R"({"payload":1,"options":{"parentRunId":"run_1"}})", limit);
  ASSERT_FALSE(r.input);
  EXPECT_EQ(r.error.message, "option 'parentRunId' is not supported by this taskhost yet");
  // Options that only matter to Trigger.dev's cloud are accepted and ignored (reference §5.1).
  EXPECT_TRUE(parse_trigger_body("t", R"({"payload":1,"options":{"machine":"small-1x"}})", limit).input);
}

TEST(TriggerRequestTest, QueueConcurrencyKeyAndPriority) {
  auto sdk = parse_trigger_body("t", R"({"options":{"queue":{"name":"email"},"concurrencyKey":"tenant-1","priority":1.5}})", limit);
  ASSERT_TRUE(sdk.input) << sdk.error.message;
  EXPECT_EQ(sdk.input->queue, "email");
  EXPECT_EQ(sdk.input->concurrency_key, "tenant-1");
  EXPECT_EQ(sdk.input->priority_ms, 1500);
  auto plain = parse_trigger_body("t", R"({"options":{"queue":"email"}})", limit);
  ASSERT_TRUE(plain.input);
  EXPECT_EQ(plain.input->queue, "email");
  for (const char* bad : {R"({"options":{"queue":{}}})", R"({"options":{"queue":7}})", R"({"options":{"queue":""}})"}) {
    auto b = parse_trigger_body("t", bad, limit);
    ASSERT_FALSE(b.input) << bad;
    EXPECT_EQ(b.error.status, 400);
    EXPECT_NE(b.error.message.find("options.queue"), std::string::npos);
  }
  for (const char* bad : {R"({"options":{"priority":-1}})", R"({"options":{"priority":"high"}})"}) {
    auto b = parse_trigger_body("t", bad, limit);
    ASSERT_FALSE(b.input) << bad;
    EXPECT_NE(b.error.message.find("options.priority"), std::string::npos);
  }
  auto key = parse_trigger_body("t", R"({"options":{"concurrencyKey":""}})", limit);
  ASSERT_FALSE(key.input);
  EXPECT_NE(key.error.message.find("options.concurrencyKey"), std::string::npos);
  auto rec = new_run_record(*sdk.input, "run_x", std::chrono::system_clock::now());
  EXPECT_EQ(rec.queue, "email");
  EXPECT_EQ(rec.concurrency_key, "tenant-1");
  EXPECT_EQ(rec.priority_ms, 1500);
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

TEST(TriggerRequestTest, DelayIsADurationOrAnIsoDate) {
  auto before = std::chrono::system_clock::now();
  auto d = parse_trigger_body("t", R"({"options":{"delay":"1h30m"}})", limit);
  ASSERT_TRUE(d.input) << d.error.message;
  ASSERT_TRUE(d.input->delay_until);
  auto in = std::chrono::duration_cast<std::chrono::seconds>(*d.input->delay_until - before).count();
  EXPECT_GE(in, 5399);
  EXPECT_LE(in, 5401);

  auto iso = parse_trigger_body("t", R"({"options":{"delay":"2099-01-02T03:04:05.250Z"}})", limit);
  ASSERT_TRUE(iso.input && iso.input->delay_until);
  EXPECT_EQ(format_time(*iso.input->delay_until), "2099-01-02T03:04:05.250Z");
  auto offset = parse_trigger_body("t", R"({"options":{"delay":"2099-01-02T05:04:05+02:00"}})", limit);
  ASSERT_TRUE(offset.input && offset.input->delay_until);
  EXPECT_EQ(format_time(*offset.input->delay_until), "2099-01-02T03:04:05.000Z");

  auto past = parse_trigger_body("t", R"({"options":{"delay":"2001-01-01T00:00:00Z"}})", limit);
  ASSERT_TRUE(past.input);
  EXPECT_FALSE(past.input->delay_until) << "a date in the past means no delay";

  auto bad = parse_trigger_body("t", R"({"options":{"delay":"5 parsecs"}})", limit);
  ASSERT_FALSE(bad.input);
  EXPECT_EQ(bad.error.status, 400);
  EXPECT_NE(bad.error.message.find("options.delay"), std::string::npos) << bad.error.message;
  EXPECT_NE(bad.error.message.find("5 parsecs"), std::string::npos) << bad.error.message;
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"delay":30}})", limit).input);
  EXPECT_FALSE(parse_iso_time("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_iso_time("2026-01-01T00:00:00")) << "no zone: ambiguous";
}

TEST(TriggerRequestTest, TtlIsADurationOrSeconds) {
  auto s = parse_trigger_body("t", R"({"options":{"ttl":"10m"}})", limit);
  ASSERT_TRUE(s.input);
  EXPECT_EQ(s.input->ttl_ms, 600000);
  EXPECT_EQ(s.input->ttl, "10m");
  auto n = parse_trigger_body("t", R"({"options":{"ttl":90}})", limit);
  ASSERT_TRUE(n.input);
  EXPECT_EQ(n.input->ttl_ms, 90000);
  auto bad = parse_trigger_body("t", R"({"options":{"ttl":"soon"}})", limit);
  ASSERT_FALSE(bad.input);
  EXPECT_NE(bad.error.message.find("options.ttl"), std::string::npos);
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"ttl":-5}})", limit).input);
}

TEST(TriggerRequestTest, IdempotencyKeyAndItsTtl) {
  auto k = parse_trigger_body(
      "t", R"({"options":{"idempotencyKey":"abc","idempotencyKeyOptions":{"key":"order-1","scope":"run"},"idempotencyKeyTTL":"2h"}})", limit);
  ASSERT_TRUE(k.input) << k.error.message;
  EXPECT_EQ(k.input->idempotency_key, "abc");
  EXPECT_EQ(k.input->idempotency_key_user, "order-1");
  EXPECT_EQ(k.input->idempotency_key_ttl_ms, 2 * 3600 * 1000);
  auto def = parse_trigger_body("t", R"({"options":{"idempotencyKey":"abc"}})", limit);
  ASSERT_TRUE(def.input);
  EXPECT_EQ(def.input->idempotency_key_ttl_ms, 30LL * 86400 * 1000) << "30 days by default";

  std::string long_key(2049, 'k');
  auto too_long = parse_trigger_body("t", R"({"options":{"idempotencyKey":")" + long_key + R"("}})", limit);
  ASSERT_FALSE(too_long.input);
  EXPECT_NE(too_long.error.message.find("options.idempotencyKey is 2049 characters"), std::string::npos) << too_long.error.message;
  EXPECT_TRUE(parse_trigger_body("t", R"({"options":{"idempotencyKey":")" + std::string(2048, 'k') + R"("}})", limit).input);
  auto bad_ttl = parse_trigger_body("t", R"({"options":{"idempotencyKey":"a","idempotencyKeyTTL":"1h30m"}})", limit);
  ASSERT_FALSE(bad_ttl.input) << "one number and one unit only";
  EXPECT_NE(bad_ttl.error.message.find("options.idempotencyKeyTTL"), std::string::npos);
  EXPECT_FALSE(parse_trigger_body("t", R"({"options":{"idempotencyKey":5}})", limit).input);
}

TEST(TriggerRequestTest, MetadataMustBeAnObjectWithinTheLimit) {
  auto ok = parse_trigger_body("t", R"({"options":{"metadata":{"progress":0}}})", limit);
  ASSERT_TRUE(ok.input);
  EXPECT_EQ(ok.input->metadata, json({{"progress", 0}}));
  for (auto bad : {R"([1])", R"("text")", R"(3)"}) {
    auto r = parse_trigger_body("t", std::string(R"({"options":{"metadata":)") + bad + "}}", limit);
    ASSERT_FALSE(r.input) << bad;
    EXPECT_EQ(r.error.message, "options.metadata must be a JSON object");
  }
  json big = {{"blob", std::string(256 * 1024, 'x')}};
  auto over = parse_trigger_body("t", json{{"options", {{"metadata", big}}}}.dump(), 8u << 20);
  ASSERT_FALSE(over.input);
  EXPECT_EQ(over.error.status, 413);
  EXPECT_NE(over.error.message.find("options.metadata"), std::string::npos);
}

TEST(TriggerRequestTest, ElevenTagsOrALongTagAreRefusedNamingTheField) {
  json eleven = json::array();
  for (int i = 0; i < 11; ++i) eleven.push_back("t" + std::to_string(i));
  auto r = parse_trigger_body("t", json{{"options", {{"tags", eleven}}}}.dump(), limit);
  ASSERT_FALSE(r.input);
  EXPECT_NE(r.error.message.find("options.tags has 11 tags"), std::string::npos);
  auto longtag = parse_trigger_body("t", json{{"options", {{"tags", {std::string(129, 'x')}}}}}.dump(), limit);
  ASSERT_FALSE(longtag.input);
  EXPECT_NE(longtag.error.message.find("options.tags"), std::string::npos);
  EXPECT_TRUE(parse_trigger_body("t", json{{"options", {{"tags", {std::string(128, 'x')}}}}}.dump(), limit).input);
}

TEST(TriggerRequestTest, AnAlreadyParsedBodyIsReadTheSameAsItsText) {
  const std::string body =
      R"({"payload":"{\"json\":{\"a\":1}}","options":{"payloadType":"application/super+json","tags":["x"],"ttl":"10m","maxAttempts":2},"index":3,"task":"ignored"})";
  auto from_text = parse_trigger_body("echo", body, 1 << 20);
  auto from_json = parse_trigger_json("echo", nlohmann::json::parse(body), 1 << 20);
  ASSERT_TRUE(from_text.input && from_json.input);
  EXPECT_EQ(from_json.input->task_id, "echo");
  EXPECT_EQ(from_json.input->payload, from_text.input->payload);
  EXPECT_EQ(from_json.input->tags, from_text.input->tags);
  EXPECT_EQ(from_json.input->ttl_ms, from_text.input->ttl_ms);
  EXPECT_EQ(from_json.input->max_attempts, 2);
  auto bad = parse_trigger_json("echo", nlohmann::json::parse(R"({"options":{"maxAttempts":0}})"), 1 << 20);
  EXPECT_FALSE(bad.input);
  EXPECT_EQ(bad.error.status, 400);
}
