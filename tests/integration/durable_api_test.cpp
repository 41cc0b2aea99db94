// End to end: durable runs through the real taskhost binary — trigger options (delay, ttl,
// idempotency, metadata, tags), listing, replay, reschedule, limits, retention and restarts — over
// HTTP and through the CLI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "runtime/http_client.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::http_client;
using taskhost::http_result;
using taskhost::test::deployment_dir;
using taskhost::test::server;

namespace {

using sys_clock = std::chrono::system_clock;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys_clock::now().time_since_epoch()).count();
}

/// Epoch milliseconds of "YYYY-MM-DDTHH:MM:SS.mmmZ" (the API's time format); -1 if it is not one.
int64_t parse_ms(const std::string& s) {
  int y, mo, d, h, mi, sec, ms;
  char z = 0;
  if (s.size() != 24 || std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &sec, &ms, &z) != 8 ||
      z != 'Z')
    return -1;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return int64_t(timegm(&tm)) * 1000 + ms;
}

/// RFC 3339 UTC with milliseconds: 2025-01-01T00:00:00.000Z
std::string iso_ms(int64_t ms) {
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms % 1000));
  return buf;
}

std::string error_of(const http_result& r) {
  auto j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : r.body;
}

http_result post_trigger(http_client& c, const std::string& task, const json& body) {
  return c.request("POST", "/api/v1/tasks/" + task + "/trigger", body.dump());
}

/// Triggers and returns the run id (fails the test on a non-200 answer).
std::string trigger(http_client& c, const std::string& task, const json& body) {
  auto r = post_trigger(c, task, body);
  EXPECT_EQ(r.status, 200) << task << " " << body.dump() << " → " << r.body;
  if (r.status != 200) return "";
  return json::parse(r.body).value("id", "");
}

/// Polls the run until `pred` holds or `timeout` passes; returns the last state seen.
template <class Pred>
json poll_run(server& s, const std::string& id, Pred pred, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = s.get_run(id);
    if (pred(r) || std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(5ms);
  }
}

json get_json(http_client& c, const std::string& target, int expect_status = 200) {
  auto r = c.request("GET", target);
  EXPECT_EQ(r.status, expect_status) << target << " → " << r.body;
  return json::parse(r.body, nullptr, false);
}

/// Every id GET /api/v1/runs lists for this query (one page of 100 is enough here).
std::vector<std::string> list_ids(http_client& c, const std::string& query) {
  auto page = get_json(c, "/api/v1/runs?page[size]=100" + query);
  std::vector<std::string> ids;
  if (!page.is_object()) return ids;
  for (const auto& r : page["data"]) ids.push_back(r["id"]);
  EXPECT_FALSE(page["pagination"].contains("next")) << query;
  return ids;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

TEST(DurableApiTest, DelayedRunIsRescheduledAndStartsNoEarlier) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  const int64_t before = now_ms();
  std::string id = trigger(c, "fixture-echo", {{"payload", {{"x", 1}}}, {"options", {{"delay", "1h"}}}});
  ASSERT_FALSE(id.empty());
  auto run = s.get_run(id);
  EXPECT_EQ(run["status"], "DELAYED");
  EXPECT_EQ(run["isQueued"], true);
  EXPECT_EQ(run["isCompleted"], false);
  ASSERT_TRUE(run.contains("delayedUntil")) << run.dump();
  int64_t until = parse_ms(run["delayedUntil"]);
  EXPECT_GE(until, before + 3600 * 1000 - 1000) << run["delayedUntil"];
  EXPECT_LE(until, now_ms() + 3600 * 1000 + 1000) << run["delayedUntil"];
  EXPECT_FALSE(run.contains("startedAt"));

  // A new time ~300 ms from now, as an ISO date (the duration grammar has no milliseconds).
  const std::string at = iso_ms(now_ms() + 300);
  auto r = c.request("POST", "/api/v1/runs/" + id + "/reschedule", json{{"delay", at}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto rescheduled = json::parse(r.body);
  EXPECT_EQ(rescheduled["id"], id);
  EXPECT_EQ(rescheduled["status"], "DELAYED");
  EXPECT_EQ(rescheduled["delayedUntil"], at) << "the full run with the new delayedUntil";
  EXPECT_EQ(rescheduled["payload"], json({{"x", 1}})) << "a full RetrieveRunResponse";
  EXPECT_TRUE(rescheduled.contains("attempts"));

  auto done = s.wait_final(id);
  EXPECT_EQ(done["status"], "COMPLETED") << done.dump();
  EXPECT_EQ(done["output"]["payload"], json({{"x", 1}}));
  ASSERT_TRUE(done.contains("startedAt")) << done.dump();
  EXPECT_GE(parse_ms(done["startedAt"]), parse_ms(at)) << "started " << done["startedAt"] << " before " << at;
  EXPECT_FALSE(done.contains("delayedUntil")) << "only a DELAYED run shows delayedUntil";

  auto not_delayed = c.request("POST", "/api/v1/runs/" + id + "/reschedule", R"({"delay":"1h"})");
  EXPECT_EQ(not_delayed.status, 400);
  EXPECT_EQ(error_of(not_delayed), "Cannot reschedule a run that is not delayed");

  std::string other = trigger(c, "fixture-echo", {{"options", {{"delay", "1h"}}}});
  const auto other_until = s.get_run(other)["delayedUntil"];
  auto bad = c.request("POST", "/api/v1/runs/" + other + "/reschedule", R"({"delay":"5 parsecs"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(error_of(bad).rfind("Invalid delay", 0), 0u) << bad.body;
  EXPECT_EQ(s.get_run(other)["delayedUntil"], other_until);
  EXPECT_EQ(s.get_run(other)["status"], "DELAYED") << "a refused reschedule leaves the run as it was";

  auto unknown = c.request("POST", "/api/v1/runs/run_doesnotexist/reschedule", R"({"delay":"1h"})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(error_of(unknown), "Run not found: run_doesnotexist");
}

TEST(DurableApiTest, BadTriggerOptionsAreRefusedNamingTheFieldAndRecordNothing) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  json tags11 = json::array();
  for (int i = 0; i < 11; ++i) tags11.push_back("t" + std::to_string(i));
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"idempotencyKey", std::string(2049, 'k')}}, "idempotencyKey"},
      {{{"tags", tags11}}, "tags"},
      {{{"tags", json::array({std::string(129, 't')})}}, "tags"},
      {{{"metadata", json::array({1})}}, "metadata"},
      {{{"delay", "5 parsecs"}}, "delay"},
      {{{"ttl", "soon"}}, "ttl"},
  };
  for (const auto& [options, field] : cases) {
    auto r = post_trigger(c, "fixture-echo", {{"payload", {{"x", 1}}}, {"options", options}});
    EXPECT_EQ(r.status, 400) << options.dump().substr(0, 200) << " → " << r.body;
    EXPECT_NE(error_of(r).find(field), std::string::npos) << "the error names " << field << ": " << r.body.substr(0, 300);
  }
  // Boundaries that are allowed.
  json tags10 = json::array();
  for (int i = 0; i < 10; ++i) tags10.push_back(std::string(128, char('a' + i)));
  auto ok = post_trigger(c, "fixture-echo", {{"options", {{"tags", tags10}, {"idempotencyKey", std::string(2048, 'k')}}}});
  EXPECT_EQ(ok.status, 200) << ok.body.substr(0, 300);
  std::string ok_id = json::parse(ok.body).value("id", "");
  // Only the accepted run is recorded.
  auto ids = list_ids(c, "");
  EXPECT_EQ(ids, std::vector<std::string>{ok_id});
}

TEST(DurableApiTest, IdempotencyKeysReturnTheFirstRunUntilItFailsOrTheKeyExpires) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  auto first = post_trigger(c, "fixture-echo", {{"payload", 1}, {"options", {{"idempotencyKey", "key-1"}}}});
  auto second = post_trigger(c, "fixture-echo", {{"payload", 2}, {"options", {{"idempotencyKey", "key-1"}}}});
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(second.status, 200) << second.body;
  auto h1 = json::parse(first.body), h2 = json::parse(second.body);
  EXPECT_EQ(h1["isCached"], false);
  EXPECT_EQ(h2["isCached"], true);
  EXPECT_EQ(h1["id"], h2["id"]);
  auto run = s.wait_final(h1["id"]);
  EXPECT_EQ(run["idempotencyKey"], "key-1");
  EXPECT_EQ(run["payload"], 1) << "the first trigger's run";
  // A completed run keeps its key.
  auto third = json::parse(post_trigger(c, "fixture-echo", {{"payload", 3}, {"options", {{"idempotencyKey", "key-1"}}}}).body);
  EXPECT_EQ(third["id"], h1["id"]);
  EXPECT_EQ(third["isCached"], true);

  // The SDK sends a hash plus the user's key: the run shows the user's.
  const std::string hashed(64, 'a');
  std::string sdk_id = trigger(c, "fixture-echo", {{"options", {{"idempotencyKey", hashed}, {"idempotencyKeyOptions", {{"key", "user-key"}, {"scope", "global"}}}}}});
  EXPECT_EQ(s.get_run(sdk_id)["idempotencyKey"], "user-key");

  // A failed run frees its key.
  auto f1 = json::parse(post_trigger(c, "fixture-throw", {{"options", {{"idempotencyKey", "key-f"}}}}).body);
  auto failed = s.wait_final(f1["id"]);
  EXPECT_EQ(failed["status"], "FAILED");
  auto f2 = json::parse(post_trigger(c, "fixture-throw", {{"options", {{"idempotencyKey", "key-f"}}}}).body);
  EXPECT_EQ(f2["isCached"], false);
  EXPECT_NE(f2["id"], f1["id"]);
  s.wait_final(f2["id"]);

  // A key with a TTL holds for that long, then a new run is created.
  const json ttl_body = {{"options", {{"idempotencyKey", "key-t"}, {"idempotencyKeyTTL", "1s"}}}};
  auto t1 = json::parse(post_trigger(c, "fixture-echo", ttl_body).body);
  auto t2 = json::parse(post_trigger(c, "fixture-echo", ttl_body).body);
  EXPECT_EQ(t1["isCached"], false);
  EXPECT_EQ(t2["isCached"], true);
  EXPECT_EQ(t2["id"], t1["id"]);
  std::this_thread::sleep_for(1200ms);
  auto t3 = json::parse(post_trigger(c, "fixture-echo", ttl_body).body);
  EXPECT_EQ(t3["isCached"], false);
  EXPECT_NE(t3["id"], t1["id"]);
  EXPECT_EQ(s.wait_final(t3["id"])["status"], "COMPLETED");
}

TEST(DurableApiTest, RunNotStartedWithinItsTtlExpires) {
  // Not started in time: its queue had no slot for it (both tasks on a queue of one), or no
  // executor thread was free (one thread, which may not grow).
  for (const char* yaml : {"queues:\n  - {name: one, concurrency_limit: 1}\ntasks:\n  fixture-sleep: {queue: one}\n"
                           "  fixture-echo: {queue: one}\n",
                           "executor: {threads: 1, max_threads: 1}\n"}) {
    SCOPED_TRACE(yaml);
    deployment_dir d(yaml);
    server s(d);
    http_client c(s.url);
    std::string busy = trigger(c, "fixture-sleep", {{"payload", {{"ms", 3000}}}});
    auto b = poll_run(s, busy, [](const json& r) { return r["status"] == "EXECUTING"; });
    ASSERT_EQ(b["status"], "EXECUTING") << b.dump();
    std::string id = trigger(c, "fixture-echo", {{"payload", 1}, {"options", {{"ttl", 1}}}});
    EXPECT_EQ(s.get_run(id)["ttl"], "1s");
    auto run = s.wait_final(id);
    EXPECT_EQ(run["status"], "EXPIRED") << run.dump();
    EXPECT_TRUE(run.contains("expiredAt")) << run.dump();
    EXPECT_EQ(run["isCompleted"], true);
    EXPECT_EQ(run["attemptCount"], 0);
    EXPECT_FALSE(run.contains("output"));
    EXPECT_FALSE(run.contains("startedAt")) << "it never started";
    if (run.contains("expiredAt")) {
      int64_t lived = parse_ms(run["expiredAt"]) - parse_ms(run["createdAt"]);
      EXPECT_GE(lived, 1000 - 5) << "expired no earlier than its TTL";
      EXPECT_LT(lived, 2000) << "expired while the thread was still busy, not when it freed";
    }
    EXPECT_EQ(s.wait_final(busy)["status"], "COMPLETED");
  }
}

TEST(DurableApiTest, MetadataOpsAreVisibleWhileTheRunExecutes) {
  deployment_dir d("", {"fixture_durable"});
  server s(d);
  http_client c(s.url);
  std::string id = trigger(c, "durable-metadata", {{"payload", {{"hold_ms", 1500}}}, {"options", {{"metadata", {{"initial", true}}}}}});
  ASSERT_FALSE(id.empty());
  auto live = poll_run(s, id, [](const json& r) {
    return r.contains("metadata") && r["metadata"].value("holding", false);
  });
  ASSERT_EQ(live["status"], "EXECUTING") << live.dump().substr(0, 2000);
  const json& m = live["metadata"];
  EXPECT_EQ(m["holding"], true);
  EXPECT_EQ(m["progress"], 2.5);
  EXPECT_EQ(m["events"], json::array({"step 0", "step 1", "step 2"}));
  EXPECT_FALSE(m.contains("stage"));
  EXPECT_FALSE(m.contains("blob")) << "the oversize set was refused";
  ASSERT_TRUE(m.contains("oversize_refused") && m["oversize_refused"].is_string()) << m.dump().substr(0, 500);
  const std::string refused = m["oversize_refused"];
  EXPECT_FALSE(refused.empty());
  EXPECT_TRUE(refused.find("262144") != std::string::npos || refused.find("limit") != std::string::npos) << refused;
  EXPECT_EQ(m["initial"], true) << "ctx ops keep the trigger's metadata";
  EXPECT_EQ(list_ids(c, "&filter[status]=EXECUTING"), std::vector<std::string>{id}) << "the list sees it executing";

  auto done = s.wait_final(id);
  EXPECT_EQ(done["status"], "COMPLETED") << done.dump().substr(0, 2000);
  ASSERT_TRUE(done.contains("output"));
  EXPECT_FALSE(done["output"].contains("holding"));
  EXPECT_EQ(done["output"], done["metadata"]) << "the output is the final metadata";
  json expected = m;
  expected.erase("holding");
  EXPECT_EQ(done["output"], expected);
}

TEST(DurableApiTest, ListPagesFiltersAndRefusesBadQueries) {
  deployment_dir d("", {"fixture_durable"});
  server s(d);
  http_client c(s.url);
  std::vector<std::string> ids;  // in trigger order
  std::set<std::string> work_ids, tag_ab, from_ids;
  int64_t from = 0;
  const char* tag_names[] = {"a", "b", "c"};
  for (int i = 0; i < 30; ++i) {
    if (i == 20) {
      std::this_thread::sleep_for(3ms);
      from = now_ms();
      std::this_thread::sleep_for(3ms);
    }
    const std::string task = i % 2 ? "durable-work" : "fixture-echo";
    json payload = i % 2 ? json{{"ms", 1}, {"n", i}} : json{{"i", i}};
    std::string id = trigger(c, task, {{"payload", payload}, {"options", {{"tags", json::array({tag_names[i % 3], "all"})}}}});
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
    if (i % 2) work_ids.insert(id);
    if (i % 3 != 2) tag_ab.insert(id);
    if (i >= 20) from_ids.insert(id);
    std::this_thread::sleep_for(2ms);  // distinct createdAt, so "newest first" is trigger order
  }
  std::string delayed = trigger(c, "fixture-echo", {{"options", {{"delay", "1h"}, {"tags", "d"}}}});
  from_ids.insert(delayed);
  std::set<std::string> completed;
  for (const auto& id : ids) {
    auto r = s.wait_final(id);
    EXPECT_EQ(r["status"], "COMPLETED");
    completed.insert(id);
  }

  // Paging: every run once, newest first.
  std::vector<json> seen;
  std::vector<std::vector<std::string>> page_ids;
  std::string target = "/api/v1/runs?page[size]=7";
  std::string previous;
  int pages = 0;
  for (;;) {
    auto page = get_json(c, target);
    ASSERT_TRUE(page.is_object());
    ++pages;
    EXPECT_LE(page["data"].size(), 7u);
    page_ids.emplace_back();
    for (const auto& r : page["data"]) {
      seen.push_back(r);
      page_ids.back().push_back(r["id"]);
    }
    EXPECT_EQ(page["pagination"].contains("previous"), pages > 1) << "page " << pages;
    previous = page["pagination"].value("previous", "");
    if (!page["pagination"].contains("next")) break;
    ASSERT_LT(pages, 10) << "pagination does not end";
    target = "/api/v1/runs?page[size]=7&page[after]=" + page["pagination"]["next"].get<std::string>();
  }
  EXPECT_EQ(pages, 5);  // 31 runs / 7
  ASSERT_EQ(seen.size(), 31u);
  std::set<std::string> seen_ids;
  for (size_t i = 0; i < seen.size(); ++i) {
    const auto& r = seen[i];
    EXPECT_TRUE(seen_ids.insert(r["id"].get<std::string>()).second) << "seen twice: " << r["id"];
    if (i > 0) EXPECT_LE(parse_ms(r["createdAt"]), parse_ms(seen[i - 1]["createdAt"])) << "newest first at " << i;
    ASSERT_TRUE(r.contains("env") && r["env"].is_object()) << r.dump();
    EXPECT_TRUE(r["env"].contains("id") && r["env"]["id"].is_string());
    EXPECT_TRUE(r["env"].contains("name") && r["env"]["name"].is_string());
    EXPECT_FALSE(r.contains("payload")) << r.dump();
    EXPECT_FALSE(r.contains("output")) << r.dump();
  }
  std::vector<std::string> newest_first{delayed};
  newest_first.insert(newest_first.end(), ids.rbegin(), ids.rend());
  std::vector<std::string> seen_order;
  for (const auto& r : seen) seen_order.push_back(r["id"]);
  EXPECT_EQ(seen_order, newest_first);
  // And back again with page[before]: the same pages, in the same order.
  for (int p = pages - 2; p >= 0 && !previous.empty(); --p) {
    auto page = get_json(c, "/api/v1/runs?page[size]=7&page[before]=" + previous);
    std::vector<std::string> back_ids;
    for (const auto& r : page["data"]) back_ids.push_back(r["id"]);
    EXPECT_EQ(back_ids, page_ids[size_t(p)]) << "page " << p + 1 << " going back";
    EXPECT_EQ(page["pagination"].contains("previous"), p > 0) << "page " << p + 1 << " going back";
    previous = page["pagination"].value("previous", "");
  }
  std::set<std::string> all(ids.begin(), ids.end());
  all.insert(delayed);
  EXPECT_EQ(seen_ids, all);

  auto as_set = [](const std::vector<std::string>& v) { return std::set<std::string>(v.begin(), v.end()); };
  EXPECT_EQ(as_set(list_ids(c, "&filter[status]=COMPLETED")), completed);
  EXPECT_EQ(list_ids(c, "&filter[status]=DELAYED"), std::vector<std::string>{delayed});
  EXPECT_EQ(as_set(list_ids(c, "&filter[status]=DELAYED,COMPLETED")), all);
  EXPECT_EQ(as_set(list_ids(c, "&filter[taskIdentifier]=durable-work")), work_ids);
  EXPECT_EQ(as_set(list_ids(c, "&filter[tag]=a,b")), tag_ab);
  EXPECT_EQ(list_ids(c, "&filter[tag]=d"), std::vector<std::string>{delayed});
  EXPECT_EQ(as_set(list_ids(c, "&filter[createdAt][from]=" + std::to_string(from))), from_ids);
  EXPECT_EQ(as_set(list_ids(c, "&filter[createdAt][from]=" + iso_ms(from))), from_ids) << "an ISO date works too";
  EXPECT_EQ(list_ids(c, "&filter[createdAt][to]=" + std::to_string(from)).size(), 20u);
  EXPECT_EQ(as_set(list_ids(c, "&filter[taskIdentifier]=durable-work&filter[tag]=a")).size(), 5u) << "filters combine";

  auto bad_status = c.request("GET", "/api/v1/runs?filter[status]=NOPE");
  EXPECT_EQ(bad_status.status, 400);
  EXPECT_EQ(error_of(bad_status), "Invalid status values: NOPE");
  auto bad_cursor = c.request("GET", "/api/v1/runs?page[after]=garbage");
  EXPECT_EQ(bad_cursor.status, 400) << bad_cursor.body;
  EXPECT_NE(error_of(bad_cursor).find("page[after]"), std::string::npos) << bad_cursor.body;
}

TEST(DurableApiTest, ReplayRunsTheSamePayloadAndTagsWithOverrides) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  const json payload = {{"x", 1}, {"s", "hi"}};
  std::string id = trigger(c, "fixture-echo", {{"payload", payload}, {"options", {{"tags", {"t1", "t2"}}}}});
  ASSERT_EQ(s.wait_final(id)["status"], "COMPLETED");

  auto r = c.request("POST", "/api/v1/runs/" + id + "/replay", "", {{"content-type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string replay_id = json::parse(r.body)["id"];
  EXPECT_NE(replay_id, id);
  auto replayed = s.wait_final(replay_id);
  EXPECT_EQ(replayed["status"], "COMPLETED") << replayed.dump();
  EXPECT_EQ(replayed["taskIdentifier"], "fixture-echo");
  EXPECT_EQ(replayed["payload"], payload);
  EXPECT_EQ(replayed["output"]["payload"], payload);
  EXPECT_EQ(replayed["output"]["run"], replay_id);
  EXPECT_EQ(replayed["tags"], json::array({"t1", "t2"}));

  auto r2 = c.request("POST", "/api/v1/runs/" + id + "/replay", R"({"tags":["x"]})");
  ASSERT_EQ(r2.status, 200) << r2.body;
  std::string replay2 = json::parse(r2.body)["id"];
  auto replayed2 = s.wait_final(replay2);
  EXPECT_EQ(replayed2["tags"], json::array({"x"}));
  EXPECT_EQ(replayed2["payload"], payload);
  EXPECT_EQ(replayed2["status"], "COMPLETED");

  auto unknown = c.request("POST", "/api/v1/runs/run_doesnotexist/replay", "");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(error_of(unknown), "Run not found: run_doesnotexist");
}

TEST(DurableApiTest, CliListsReplaysReschedulesAndShowsTriggerOptions) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  std::vector<std::string> echo_ids;
  for (int i = 0; i < 3; ++i) {
    echo_ids.push_back(trigger(c, "fixture-echo", {{"payload", i}}));
    std::this_thread::sleep_for(2ms);  // distinct createdAt: newest first is trigger order
  }
  std::string throw_id = trigger(c, "fixture-throw", json::object());
  for (const auto& id : echo_ids) ASSERT_EQ(s.wait_final(id)["status"], "COMPLETED");
  ASSERT_EQ(s.wait_final(throw_id)["status"], "FAILED");

  auto l = s.cli({"runs", "list", "--task", "fixture-echo", "--status", "COMPLETED"});
  EXPECT_EQ(l.exit_code, 0) << l.err;
  for (const auto& id : echo_ids) EXPECT_NE(l.out.find(id), std::string::npos) << l.out;
  EXPECT_EQ(l.out.find(throw_id), std::string::npos) << l.out;
  EXPECT_EQ(l.out.find("more:"), std::string::npos) << l.out;

  auto p1 = s.cli({"runs", "list", "--limit", "2"});
  EXPECT_EQ(p1.exit_code, 0) << p1.err;
  std::smatch m;
  static const std::regex more(R"(more: taskhost runs list --after (\S+))");
  ASSERT_TRUE(std::regex_search(p1.out, m, more)) << p1.out;
  const std::string cursor = m[1];
  static const std::regex run_id(R"(run_[0-9A-Za-z]+)");
  auto ids_in = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("run_", 0) == 0) out.push_back(line.substr(0, line.find(' ')));
    return out;
  };
  auto first_page = ids_in(p1.out);
  EXPECT_EQ(first_page, (std::vector<std::string>{throw_id, echo_ids[2]})) << p1.out;
  auto p2 = s.cli({"runs", "list", "--limit", "2", "--after", cursor});
  EXPECT_EQ(p2.exit_code, 0) << p2.err;
  EXPECT_EQ(ids_in(p2.out), (std::vector<std::string>{echo_ids[1], echo_ids[0]})) << p2.out;
  EXPECT_EQ(p2.out.find("more:"), std::string::npos) << "the last page: " << p2.out;

  auto rp = s.cli({"runs", "replay", echo_ids[0]});
  EXPECT_EQ(rp.exit_code, 0) << rp.err;
  std::string new_id = first_line(rp.out);
  EXPECT_TRUE(std::regex_match(new_id, run_id)) << rp.out;
  EXPECT_NE(new_id, echo_ids[0]);
  auto replayed = s.wait_final(new_id);
  EXPECT_EQ(replayed["status"], "COMPLETED");
  EXPECT_EQ(replayed["payload"], 0);

  auto t = s.cli({"trigger", "fixture-echo", "{}", "--delay", "1h", "--idempotency-key", "k", "--metadata", R"({"a":1})"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  std::string delayed = first_line(t.out);
  ASSERT_TRUE(std::regex_match(delayed, run_id)) << t.out;
  auto before = s.get_run(delayed);
  EXPECT_EQ(before["status"], "DELAYED");
  auto rs = s.cli({"runs", "reschedule", delayed, "--delay", "2h"});
  EXPECT_EQ(rs.exit_code, 0) << rs.err;
  EXPECT_EQ(rs.out.rfind(delayed + " DELAYED until ", 0), 0u) << rs.out;
  auto after = s.get_run(delayed);
  EXPECT_EQ(after["status"], "DELAYED");
  EXPECT_GE(parse_ms(after["delayedUntil"]), now_ms() + 2 * 3600 * 1000 - 60 * 1000) << after["delayedUntil"];
  EXPECT_NE(rs.out.find(after["delayedUntil"].get<std::string>()), std::string::npos) << rs.out;
  auto rs1h = s.cli({"runs", "reschedule", delayed, "--delay", "1h"});
  EXPECT_EQ(rs1h.exit_code, 0) << rs1h.err;

  auto g = s.cli({"runs", "get", delayed});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.out.find("status   DELAYED"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("delayed  until " + s.get_run(delayed)["delayedUntil"].get<std::string>()), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("key      k\n"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(R"(metadata {"a":1})"), std::string::npos) << g.out;

  auto again = s.cli({"trigger", "fixture-echo", "{}", "--idempotency-key", "k"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, delayed + "  (existing run for this idempotency key)\n");

  auto done = s.cli({"runs", "reschedule", echo_ids[0], "--delay", "1h"});
  EXPECT_EQ(done.exit_code, 2);
  EXPECT_NE(done.err.find("400 Cannot reschedule a run that is not delayed"), std::string::npos) << done.err;
}

TEST(DurableApiTest, OutputAndPayloadLimitsFromTheYaml) {
  deployment_dir d("limits: {max_output_bytes: 1000, max_payload_bytes: 1000}\n", {"fixture_durable"});
  server s(d);
  http_client c(s.url);
  std::string big = trigger(c, "durable-big-output", {{"payload", {{"bytes", 5000}}}});
  auto run = s.wait_final(big);
  EXPECT_EQ(run["status"], "FAILED") << run.dump().substr(0, 1000);
  EXPECT_FALSE(run.contains("output"));
  const std::string msg = run["error"].value("message", "");
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1000"), std::string::npos) << msg;
  std::string small = trigger(c, "durable-big-output", {{"payload", {{"bytes", 500}}}});
  auto ok = s.wait_final(small);
  EXPECT_EQ(ok["status"], "COMPLETED");
  EXPECT_EQ(ok["output"], std::string(500, 'o'));

  auto too_big = post_trigger(c, "fixture-echo", {{"payload", {{"s", std::string(1200, 'x')}}}});
  EXPECT_EQ(too_big.status, 413) << too_big.body.substr(0, 300);
  EXPECT_NE(error_of(too_big).find("limit"), std::string::npos) << too_big.body.substr(0, 300);
  EXPECT_NE(error_of(too_big).find("1000"), std::string::npos) << too_big.body.substr(0, 300);
  auto fits = post_trigger(c, "fixture-echo", {{"payload", {{"s", std::string(900, 'x')}}}});
  EXPECT_EQ(fits.status, 200) << fits.body.substr(0, 300);
}

TEST(DurableApiTest, RetentionPurgesFinishedRunsEndedTokensAndEmptiedBatchesButKeepsWhatLives) {
  deployment_dir d("store: {retention_days: 0.00002}\n");  // ≈ 1.7 s
  server s(d);
  http_client c(s.url);
  std::string done = trigger(c, "fixture-echo", {{"payload", 1}});
  std::string delayed = trigger(c, "fixture-echo", {{"options", {{"delay", "1h"}}}});
  // A wait token completed, one still WAITING, and an API batch whose one run finishes.
  auto token = [&] {
    auto r = c.request("POST", "/api/v1/waitpoints/tokens", "{}");
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false).value("id", "");
  };
  const std::string completed_token = token(), waiting_token = token();
  ASSERT_EQ(c.request("POST", "/api/v1/waitpoints/tokens/" + completed_token + "/complete", R"({"data": 1})").status, 200);
  auto b = c.request("POST", "/api/v3/batches", R"({"runCount": 1, "taskIdentifiers": ["fixture-echo"]})");
  ASSERT_EQ(b.status, 202) << b.body;
  const std::string batch = json::parse(b.body).value("id", "");
  auto items = c.request("POST", "/api/v3/batches/" + batch + "/items", R"({"index": 0, "task": "fixture-echo", "payload": 2})" "\n",
                         {{"content-type", "application/x-ndjson"}});
  ASSERT_EQ(items.status, 200) << items.body;
  ASSERT_EQ(s.wait_final(done)["status"], "COMPLETED");
  const auto start = std::chrono::steady_clock::now();
  int status = 200, token_status = 200, batch_status = 200;
  while (std::chrono::steady_clock::now() - start < 6s) {
    status = c.request("GET", "/api/v3/runs/" + done).status;
    token_status = c.request("GET", "/api/v1/waitpoints/tokens/" + completed_token).status;
    batch_status = c.request("GET", "/api/v1/batches/" + batch).status;
    if (status == 404 && token_status == 404 && batch_status == 404) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(status, 404) << "the finished run is purged after its retention";
  EXPECT_EQ(token_status, 404) << "so is the completed token";
  EXPECT_EQ(batch_status, 404) << "and the batch whose runs are gone";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 1s) << "but not before";
  auto r = c.request("GET", "/api/v3/runs/" + delayed);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["status"], "DELAYED");
  EXPECT_EQ(list_ids(c, ""), std::vector<std::string>{delayed});
  auto w = c.request("GET", "/api/v1/waitpoints/tokens/" + waiting_token);
  EXPECT_EQ(w.status, 200) << "a WAITING token stays";
  EXPECT_EQ(json::parse(w.body, nullptr, false).value("status", ""), "WAITING") << w.body;
}

TEST(DurableApiTest, RunsSurviveARestart) {
  deployment_dir d;
  std::string done, delayed, delayed_until;
  {
    server s(d);
    http_client c(s.url);
    done = trigger(c, "fixture-echo", {{"payload", {{"keep", "me"}}}, {"options", {{"tags", "persist"}}}});
    delayed = trigger(c, "fixture-echo", {{"payload", 2}, {"options", {{"delay", "1h"}, {"metadata", {{"m", 1}}}}}});
    ASSERT_EQ(s.wait_final(done)["status"], "COMPLETED");
    delayed_until = s.get_run(delayed).value("delayedUntil", "");
    ASSERT_FALSE(delayed_until.empty());
    s.proc.signal(SIGTERM);
    EXPECT_EQ(s.proc.wait_exit(10s).value_or(-1), 0) << s.log();
  }
  server s(d, "server2.log");
  auto a = s.get_run(done);
  EXPECT_EQ(a["status"], "COMPLETED") << a.dump();
  EXPECT_EQ(a["output"]["payload"], json({{"keep", "me"}}));
  EXPECT_EQ(a["output"]["run"], done);
  EXPECT_EQ(a["payload"], json({{"keep", "me"}}));
  EXPECT_EQ(a["tags"], json::array({"persist"}));
  EXPECT_EQ(a["attemptCount"], 1);
  auto b = s.get_run(delayed);
  EXPECT_EQ(b["status"], "DELAYED") << b.dump();
  EXPECT_EQ(b["delayedUntil"], delayed_until);
  EXPECT_EQ(b["metadata"], json({{"m", 1}}));
  EXPECT_EQ(b["payload"], 2);
  auto l = s.cli({"runs", "list"});
  EXPECT_EQ(l.exit_code, 0) << l.err;
  EXPECT_NE(l.out.find(done), std::string::npos) << l.out;
  EXPECT_NE(l.out.find(delayed), std::string::npos) << l.out;
  EXPECT_LT(l.out.find(delayed), l.out.find(done)) << "newest first";
}
