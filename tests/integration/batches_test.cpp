// The two-phase batch API (POST /api/v3/batches, then its NDJSON items) and request idempotency
// (x-trigger-request-idempotency-key) on the real binary, over raw HTTP: what a bad client sends,
// what a retrying client sends, and what a restart must not forget.
// (tests/sdk/compat.test.mjs drives the same endpoints through the official SDK.)
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <set>
#include <thread>

#include "runtime/http_client.hpp"
#include "support/raw_http.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::http_client;
using taskhost::http_result;
using taskhost::test::body_of;
using taskhost::test::deployment_dir;
using taskhost::test::raw_conn;
using taskhost::test::server;
using taskhost::test::status_of;

namespace {

const std::map<std::string, std::string> ndjson = {{"content-type", "application/x-ndjson"}};

std::string header(const http_result& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

/// POST /api/v3/batches; expects 202 and returns the batch id.
std::string create_batch(http_client& c, int run_count, const json& tasks = json::array({"fixture-echo"})) {
  auto r = c.request("POST", "/api/v3/batches", json{{"runCount", run_count}, {"taskIdentifiers", tasks}}.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_FALSE(header(r, "x-trigger-jwt").empty());
  auto b = json::parse(r.body, nullptr, false);
  EXPECT_EQ(b.value("isCached", true), false) << r.body;
  EXPECT_EQ(b.value("runCount", 0), run_count) << r.body;
  return b.value("id", "");
}

/// An NDJSON stream of fixture-echo items with the given indexes.
std::string items(std::initializer_list<int> indexes, const std::string& task = "fixture-echo") {
  std::string out;
  for (int i : indexes) out += json{{"index", i}, {"task", task}, {"payload", {{"i", i}}}}.dump() + "\n";
  return out;
}

http_result send_items(http_client& c, const std::string& id, const std::string& body) {
  return c.request("POST", "/api/v3/batches/" + id + "/items", body, ndjson);
}

/// The ids of the runs of a batch (GET /api/v1/runs?filter[batch]=...).
std::set<std::string> runs_of(http_client& c, const std::string& batch) {
  auto r = c.request("GET", "/api/v1/runs?page[size]=100&filter[batch]=" + batch);
  EXPECT_EQ(r.status, 200) << r.body;
  std::set<std::string> out;
  const json page = json::parse(r.body);  // (a range-for over a member of a temporary would dangle)
  for (const auto& run : page["data"]) out.insert(run["id"].get<std::string>());
  return out;
}

/// A refusal: status, {"error"} mentioning `mentions`, and x-should-retry: false.
void expect_refused(const http_result& r, int status, const std::string& mentions, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  auto b = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(b.is_object() && b["error"].is_string()) << what << ": " << r.body;
  EXPECT_NE(b["error"].get<std::string>().find(mentions), std::string::npos) << what << ": " << r.body;
  EXPECT_EQ(header(r, "x-should-retry"), "false") << what;
}

uint16_t port_of(const server& s) { return uint16_t(std::stoi(s.url.substr(s.url.rfind(':') + 1))); }

}  // namespace

TEST(BatchesTest, CreatingABatchRefusesABadRunCountAndUnknownTasks) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  for (const auto& [body, mentions] : std::vector<std::pair<json, std::string>>{
           {{{"runCount", 0}, {"taskIdentifiers", {"fixture-echo"}}}, "positive whole number"},
           {{{"runCount", 1001}, {"taskIdentifiers", {"fixture-echo"}}}, "at most 1000"},
           {{{"runCount", 2.5}, {"taskIdentifiers", {"fixture-echo"}}}, "positive whole number"},
           {{{"runCount", "ten"}, {"taskIdentifiers", {"fixture-echo"}}}, "positive whole number"},
           {{{"taskIdentifiers", {"fixture-echo"}}}, "runCount is required"}})
    expect_refused(c.request("POST", "/api/v3/batches", body.dump()), 400, mentions, body.dump());
  expect_refused(c.request("POST", "/api/v3/batches", R"({"runCount":2,"taskIdentifiers":["fixture-echo","no-such-task"]})"), 404,
                 "Task 'no-such-task' not found", "an unknown task");
  EXPECT_EQ(c.request("GET", "/api/v3/batches").status, 405);
  EXPECT_EQ(create_batch(c, 1000).rfind("batch_", 0), 0u) << "1000 is allowed";
}

TEST(BatchesTest, BadItemStreamsAreRefusedNamingTheLineOrIndexAndTriggerNothing) {
  deployment_dir d("limits: {max_payload_bytes: 1000}\n");
  server s(d);
  http_client c(s.url);
  auto id = create_batch(c, 3);
  expect_refused(c.request("POST", "/api/v3/batches/" + id + "/items", items({0}), {{"content-type", "application/json"}}), 415, "NDJSON",
                 "a JSON content type");
  expect_refused(c.request("POST", "/api/v3/batches/" + id + "/items", items({0}), {{"content-type", ""}}), 415, "NDJSON",
                 "no content type");
  expect_refused(send_items(c, id, items({0}) + "{\"index\": 1, \"task\": \n"), 400, "line 2 is not valid JSON", "a broken line");
  expect_refused(send_items(c, id, items({0}) + "[1]\n"), 400, "line 2 is not a JSON object", "an array line");
  expect_refused(send_items(c, id, items({0}) + R"({"index":1})" "\n"), 400, "line 2 (index 1): the item needs a task", "no task");
  expect_refused(send_items(c, id, items({0, 3})), 400, "item 3 (line 2): index 3 is out of range", "an index past runCount");
  expect_refused(send_items(c, id, items({0}) + json{{"index", 2}, {"task", "fixture-echo"}, {"payload", std::string(2000, 'x')}}.dump() + "\n"),
                 400, "item 2 (line 2): payload of", "an item over the payload limit");
  expect_refused(send_items(c, id, items({0}, "fixture-throw")), 400, "task 'fixture-throw' is not one of the batch's taskIdentifiers",
                 "a task the batch did not name");
  expect_refused(send_items(c, "batch_nosuchbatch", items({0})), 404, "Batch not found: batch_nosuchbatch", "an unknown batch");
  EXPECT_TRUE(runs_of(c, id).empty()) << "a refused stream triggers nothing";
  auto any = c.request("POST", "/api/v3/batches", R"({"runCount":1})");  // no taskIdentifiers: any deployed task
  ASSERT_EQ(any.status, 202);
  expect_refused(send_items(c, json::parse(any.body)["id"], items({0}, "no-such-task")), 404, "Task 'no-such-task' not found (item 0",
                 "an unknown task");
  auto b = json::parse(c.request("GET", "/api/v2/batches/" + id).body);
  EXPECT_EQ(b["status"], "PENDING");
  EXPECT_EQ(b["runs"], json::array());
  EXPECT_EQ(b["runCount"], 3);
}

TEST(BatchesTest, IndexesAreDeduplicatedWithinAStreamAndAcrossResendsAndTheBatchSeals) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  auto id = create_batch(c, 3);
  auto first = send_items(c, id, items({0, 1, 1, 0}));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(json::parse(first.body), json({{"id", id}, {"itemsAccepted", 2}, {"itemsDeduplicated", 2}, {"sealed", false},
                                           {"enqueuedCount", 2}, {"expectedCount", 3}}));
  auto rest = send_items(c, id, items({0, 1, 2}));  // what the SDK does on a retry: everything again
  EXPECT_EQ(json::parse(rest.body), json({{"id", id}, {"itemsAccepted", 1}, {"itemsDeduplicated", 2}, {"sealed", true}}));
  auto runs = runs_of(c, id);
  EXPECT_EQ(runs.size(), 3u);
  auto again = send_items(c, id, items({2, 1, 0}));
  EXPECT_EQ(again.status, 200) << "items of a sealed batch are deduplicated, not refused";
  EXPECT_EQ(json::parse(again.body), json({{"id", id}, {"itemsAccepted", 0}, {"itemsDeduplicated", 3}, {"sealed", true}}));
  EXPECT_EQ(runs_of(c, id), runs) << "no new runs";

  auto b = json::parse(c.request("GET", "/api/v2/batches/" + id).body);
  EXPECT_EQ(b["status"], "COMPLETED");
  EXPECT_EQ(b["runCount"], 3);
  ASSERT_EQ(b["runs"].size(), 3u);
  EXPECT_EQ(std::set<std::string>(b["runs"].begin(), b["runs"].end()), runs);
  EXPECT_TRUE(b["processing"]["completedAt"].is_string());
  EXPECT_EQ(b["processing"]["errors"], json::array());
  for (int i = 0; i < 3; ++i) {
    auto run = s.wait_final(b["runs"][i]);
    EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
    EXPECT_EQ(run["batchId"], id);
    EXPECT_EQ(run["triggerFunction"], "batchTrigger");
    EXPECT_EQ(run["output"]["payload"], json({{"i", i}})) << "runs are listed by index";
  }
  EXPECT_EQ(json::parse(c.request("GET", "/api/v1/batches/" + id).body)["allRunsFinished"], true);
  EXPECT_EQ(c.request("GET", "/api/v2/batches/batch_nosuchbatch").status, 404);
}

TEST(BatchesTest, ABatchIdempotencyKeyReturnsTheSameBatchCached) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  const json body = {{"runCount", 2}, {"taskIdentifiers", {"fixture-echo"}}, {"idempotencyKey", std::string(64, 'a')},
                     {"idempotencyKeyOptions", {{"key", "nightly-2024"}, {"scope", "global"}}}};
  auto a = json::parse(c.request("POST", "/api/v3/batches", body.dump()).body);
  auto b = json::parse(c.request("POST", "/api/v3/batches", body.dump()).body);
  EXPECT_EQ(b["id"], a["id"]);
  EXPECT_EQ(a["isCached"], false);
  EXPECT_EQ(b["isCached"], true);
  EXPECT_EQ(json::parse(c.request("GET", "/api/v2/batches/" + a["id"].get<std::string>()).body)["idempotencyKey"], "nightly-2024");
}

TEST(BatchesTest, ARequestIdempotencyKeyGivesTheSameAnswerEvenAfterAKill) {
  deployment_dir d;
  std::string run, batch, jwt;
  const std::map<std::string, std::string> key1 = {{"x-trigger-request-idempotency-key", "3f1c7a52-0000-4000-8000-000000000001"}};
  const std::string trigger_body = json{{"payload", {{"n", 1}}}}.dump();
  const std::string batch_body = json{{"runCount", 2}, {"taskIdentifiers", {"fixture-echo"}}}.dump();
  {
    server s(d);
    http_client c(s.url);
    auto r = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", trigger_body, key1);
    ASSERT_EQ(r.status, 200) << r.body;
    run = json::parse(r.body)["id"];
    jwt = header(r, "x-trigger-jwt");
    auto again = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", trigger_body, key1);
    EXPECT_EQ(json::parse(again.body), json({{"id", run}, {"isCached", false}})) << "the original answer, not a cached run";
    EXPECT_EQ(header(again, "x-trigger-jwt"), jwt);
    auto other_task = c.request("POST", "/api/v1/tasks/hello-world/trigger", json{{"payload", {{"message", "x"}}}}.dump(), key1);
    EXPECT_NE(json::parse(other_task.body)["id"], run) << "the key is scoped to the task";
    auto bt = c.request("POST", "/api/v3/batches", batch_body, key1);
    ASSERT_EQ(bt.status, 202) << bt.body;
    batch = json::parse(bt.body)["id"];
    EXPECT_NE(batch, run) << "triggers and batches do not share keys";
    auto bt2 = c.request("POST", "/api/v3/batches", batch_body, key1);
    EXPECT_EQ(bt2.status, 202);
    EXPECT_EQ(json::parse(bt2.body), json({{"id", batch}, {"runCount", 2}, {"isCached", false}}));
    s.proc.signal(SIGKILL);  // what the SDK's retry after a connection error meets
    s.proc.wait_exit(10s);
  }
  server s(d, "server2.log");
  http_client c(s.url);
  auto r = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", trigger_body, key1);
  EXPECT_EQ(json::parse(r.body), json({{"id", run}, {"isCached", false}}));
  EXPECT_EQ(header(r, "x-trigger-jwt"), jwt);
  auto bt = c.request("POST", "/api/v3/batches", batch_body, key1);
  EXPECT_EQ(json::parse(bt.body)["id"], batch);
  auto fresh = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", trigger_body,
                         {{"x-trigger-request-idempotency-key", "3f1c7a52-0000-4000-8000-000000000002"}});
  EXPECT_NE(json::parse(fresh.body)["id"], run) << "another key: another run";
  auto none = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", trigger_body);
  EXPECT_NE(json::parse(none.body)["id"], run) << "no key: a new run each time";
}

TEST(BatchesTest, ConcurrentRequestsWithOneRequestKeyMakeOneRun) {
  deployment_dir d;
  server s(d);
  const std::string tag = "concurrent-key";
  const std::string body = json{{"payload", 1}, {"options", {{"tags", {tag}}}}}.dump();
  std::vector<std::string> ids(8);
  std::vector<std::thread> ts;
  for (size_t i = 0; i < ids.size(); ++i)
    ts.emplace_back([&, i] {
      http_client c(s.url);
      auto r = c.request("POST", "/api/v1/tasks/fixture-echo/trigger", body, {{"x-trigger-request-idempotency-key", "same-for-all"}});
      if (r.status == 200) ids[i] = json::parse(r.body)["id"];
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u);
  EXPECT_FALSE(ids[0].empty());
  http_client c(s.url);
  EXPECT_EQ(json::parse(c.request("GET", "/api/v1/runs?filter[tag]=" + tag).body)["data"].size(), 1u);
}

TEST(BatchesTest, AChunkedItemStreamIsAcceptedAndOneThatNeverEndsIsClosedAfterTheBodyTimeout) {
  deployment_dir d;
  d.tmp.write("deploy.yaml", "name: itest\nplugins_dir: plugins\nhttp:\n  listen: 127.0.0.1:0\n  body_timeout_ms: 400\n");
  server s(d);
  http_client c(s.url);
  auto id = create_batch(c, 2);
  const std::string head = "POST /api/v3/batches/" + id + "/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n";
  auto chunk = [](const std::string& data) {
    char len[32];
    std::snprintf(len, sizeof len, "%zx\r\n", data.size());
    return std::string(len) + data + "\r\n";
  };
  {
    // The SDK streams its items in chunks, a line cut anywhere.
    raw_conn conn(port_of(s));
    ASSERT_TRUE(conn.ok());
    auto all = items({0, 1});
    ASSERT_TRUE(conn.send(head + chunk(all.substr(0, 10)) + chunk(all.substr(10)) + "0\r\n\r\n"));
    auto resp = conn.read_response();
    EXPECT_EQ(status_of(resp), 200) << resp;
    EXPECT_EQ(json::parse(body_of(resp), nullptr, false).value("sealed", false), true) << resp;
  }
  raw_conn conn(port_of(s));
  ASSERT_TRUE(conn.ok());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(conn.send(head + chunk(items({0}))));  // and never the last chunk
  EXPECT_FALSE(conn.closed_within(0ms)) << "open while the body may still come";
  EXPECT_TRUE(conn.closed_within(5s)) << "a body that never ends is closed";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 350ms) << "after http.body_timeout_ms, not before";
  EXPECT_EQ(runs_of(c, id).size(), 2u) << "the unfinished stream triggered nothing";
}
