// Large payloads through packets, wait tokens' callback URLs and idempotencyKeys.reset — on the
// real binary over real HTTP: what a forged or expired upload URL, an oversize packet, an unknown
// storagePath, a restart between upload and trigger and a wrong callback HMAC do.
#include <gtest/gtest.h>

#include "support/taskhost_server.hpp"

using namespace taskhost;
using namespace taskhost::test;

namespace {

/// The path (and query) of a URL the server handed out; fails the test if it is not on `base`.
std::string path_of(const std::string& url, const std::string& base) {
  EXPECT_EQ(url.rfind(base, 0), 0u) << url << " is not on " << base;
  return url.rfind(base, 0) == 0 ? url.substr(base.size()) : url;
}

/// PUT /api/v2/packets/{filename} with the key → {presignedUrl, storagePath}.
json presign(server& s, const std::string& filename = "trigger/packet_itest/payload.json") {
  std::string enc;
  for (char c : filename) enc += c == '/' ? std::string("%2F") : std::string(1, c);
  return s.api("PUT", "/api/v2/packets/" + enc);
}

/// The upload: no Authorization header at all, as the SDK sends it.
http_result upload(server& s, const std::string& path, const std::string& body, const std::string& type = "application/super+json") {
  http_client anonymous(s.url);
  return anonymous.request("PUT", path, body, {{"content-type", type}});
}

http_result trigger_stored(server& s, const std::string& task, const std::string& storage_path, const std::string& type = "application/store") {
  http_client c(s.url);
  s.authorize(c);
  return c.request("POST", "/api/v1/tasks/" + task + "/trigger",
                   json{{"payload", storage_path}, {"options", {{"payloadType", type}, {"payloadSize", 300000}}}}.dump());
}

json big_object(size_t kib) {
  json items = json::array();
  for (size_t i = 0, size = 0; size < kib * 1024; ++i) {
    items.push_back({{"i", i}, {"text", "item number " + std::to_string(i) + " ü€"}});
    size += items.back().dump().size() + 1;
  }
  return {{"items", items}, {"nested", {{"ok", true}, {"n", nullptr}}}};
}

}  // namespace

TEST(PacketsTest, AnUploadedPacketBecomesTheRunsPayloadExactly) {
  deployment_dir d;
  d.add_key();
  server s(d);
  const json value = big_object(140);  // over the SDK's 128 KiB (the server has no threshold); small enough for ASan builds
  auto p = presign(s);
  ASSERT_TRUE(p["presignedUrl"].is_string() && p["storagePath"].is_string()) << p.dump();
  const std::string path = path_of(p["presignedUrl"], s.url);
  auto up = upload(s, path, json{{"json", value}}.dump());
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(upload(s, path, json{{"json", value}}.dump()).status, 200) << "the SDK's retry of the same upload";
  auto t = trigger_stored(s, "fixture-echo", p["storagePath"]);
  ASSERT_EQ(t.status, 200) << t.body;
  auto run = s.wait_final(json::parse(t.body)["id"]);
  ASSERT_EQ(run["status"], "COMPLETED") << run.dump().substr(0, 500);
  EXPECT_EQ(run["payload"], value);
  EXPECT_EQ(run["output"]["payload"], value);

  // A text packet (.txt; the SDK's offloaded string) is the string, whatever it looks like.
  auto pt = presign(s, "trigger/packet_text/payload.txt");
  const std::string text(130 * 1024, '{');
  ASSERT_EQ(upload(s, path_of(pt["presignedUrl"], s.url), text, "text/plain").status, 200);
  auto tt = trigger_stored(s, "fixture-echo", pt["storagePath"]);
  ASSERT_EQ(tt.status, 200) << tt.body;
  EXPECT_EQ(s.wait_final(json::parse(tt.body)["id"])["output"]["payload"], text);

  // The access log shows the upload without its HMAC.
  const std::string hmac = path.substr(0, path.rfind('/')).substr(path.substr(0, path.rfind('/')).rfind('/') + 1);
  ASSERT_EQ(hmac.size(), 64u) << path;
  std::this_thread::sleep_for(300ms);  // the access log's batch
  EXPECT_EQ(s.log().find(hmac), std::string::npos) << "the HMAC is in the log";
  EXPECT_NE(s.log().find("/api/v2/packets/upload/"), std::string::npos);
}

TEST(PacketsTest, AForgedOrExpiredUploadUrlIsRefusedAndStoresNothing) {
  deployment_dir d("limits:\n  packet_upload_url_ttl_ms: 1000\n");
  d.add_key();
  server s(d);
  auto p = presign(s);
  const std::string path = path_of(p["presignedUrl"], s.url);
  // /api/v2/packets/upload/{expires}/{hmac}/{storagePath}
  std::string forged = path;
  const size_t hmac_at = path.find('/', std::string("/api/v2/packets/upload/").size()) + 1;
  forged[hmac_at] = forged[hmac_at] == 'a' ? 'b' : 'a';
  auto r = upload(s, forged, "{\"json\":1}");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.headers["x-should-retry"], "false");
  std::string longer = path;
  longer.insert(std::string("/api/v2/packets/upload/").size(), "9");  // a later expiry written in
  EXPECT_EQ(upload(s, longer, "{\"json\":1}").status, 403);
  EXPECT_EQ(trigger_stored(s, "fixture-echo", p["storagePath"]).status, 400) << "nothing was stored";

  std::this_thread::sleep_for(1100ms);
  r = upload(s, path, "{\"json\":1}");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("expired"), std::string::npos) << r.body;
  auto t = trigger_stored(s, "fixture-echo", p["storagePath"]);
  EXPECT_EQ(t.status, 400) << t.body;
  EXPECT_NE(t.body.find("no packet is stored at storagePath"), std::string::npos) << t.body;
}

TEST(PacketsTest, APacketOverTheLimitIs413AndAnUnknownStoragePathIs400) {
  deployment_dir d("limits:\n  max_packet_bytes: 100000\n");
  d.add_key();
  server s(d);
  auto p = presign(s);
  const std::string path = path_of(p["presignedUrl"], s.url);
  auto r = upload(s, path, std::string(100001, 'x'), "text/plain");
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(trigger_stored(s, "fixture-echo", p["storagePath"]).status, 400);
  EXPECT_EQ(upload(s, path, std::string(100000, 'x'), "text/plain").status, 200) << "at the limit";
  EXPECT_EQ(trigger_stored(s, "fixture-echo", p["storagePath"]).status, 200);
  // Over http.max_body_bytes (4 MiB) is fine for a packet whose own limit allows it; other
  // routes keep theirs.
  http_client c(s.url);
  s.authorize(c);
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens", std::string(5u << 20, ' ')).status, 413);

  auto unknown = trigger_stored(s, "fixture-echo", "packets/never/uploaded.json");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.headers["x-should-retry"], "false");
  EXPECT_NE(unknown.body.find("no packet is stored at storagePath 'packets/never/uploaded.json'"), std::string::npos) << unknown.body;
  // Without the key, presigning is refused; the upload URL needs none.
  http_client anonymous(s.url);
  EXPECT_EQ(anonymous.request("PUT", "/api/v2/packets/x.json").status, 401);
}

TEST(PacketsTest, APacketAndATokensCallbackUrlSurviveARestart) {
  deployment_dir d;
  d.add_key();
  json p;
  std::string callback_path, token;
  const json value = big_object(32);
  {
    server s(d);
    p = presign(s);
    ASSERT_EQ(upload(s, path_of(p["presignedUrl"], s.url), json{{"json", value}}.dump()).status, 200);
    auto t = s.api("POST", "/api/v1/waitpoints/tokens", json{{"timeout", "1h"}});
    token = t["id"];
    callback_path = path_of(t["url"], s.url);
    s.proc.signal(SIGTERM);
    ASSERT_EQ(s.proc.wait_exit(20s), 0) << s.log();
  }
  server s(d, "server2.log");
  auto t = trigger_stored(s, "fixture-echo", p["storagePath"]);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(s.wait_final(json::parse(t.body)["id"])["payload"], value);
  http_client anonymous(s.url);
  auto done = anonymous.request("POST", callback_path, R"({"after":"restart"})");
  EXPECT_EQ(done.status, 200) << done.body << " (the deployment's signing secret is kept in its store)";
  auto got = s.api("GET", "/api/v1/waitpoints/tokens/" + token);
  EXPECT_EQ(got["status"], "COMPLETED");
  EXPECT_EQ(json::parse(got["output"].get<std::string>()), json({{"after", "restart"}}));
}

TEST(PacketsTest, ACallbackUrlCompletesItsTokenWithoutAKeyAndAWrongHmacCompletesNothing) {
  deployment_dir d;
  d.add_key();
  server s(d);
  auto t = s.api("POST", "/api/v1/waitpoints/tokens", json{{"tags", {"cb"}}});
  const std::string id = t["id"];
  ASSERT_TRUE(t["url"].is_string()) << t.dump();
  const std::string path = path_of(t["url"], s.url);
  EXPECT_EQ(path.rfind("/api/v1/waitpoints/tokens/" + id + "/callback/", 0), 0u) << path;
  http_client anonymous(s.url);
  std::string wrong = path;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  auto r = anonymous.request("POST", wrong, R"({"forged":true})");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.headers["x-should-retry"], "false");
  EXPECT_EQ(anonymous.request("POST", path.substr(0, path.rfind('/') + 1) + std::string(64, '0'), "{}").status, 404);
  EXPECT_EQ(s.api("GET", "/api/v1/waitpoints/tokens/" + id)["status"], "WAITING");

  r = anonymous.request("POST", path, R"({"approved":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json({{"success", true}}));
  auto got = s.api("GET", "/api/v1/waitpoints/tokens/" + id);
  EXPECT_EQ(got["status"], "COMPLETED");
  EXPECT_EQ(got["output"], R"({"approved":true})");
  EXPECT_EQ(got["outputType"], "application/json");
  EXPECT_EQ(got["outputIsError"], false);
  EXPECT_EQ(got["url"], t["url"]);
  // The same data again (a retry): 200; other data: 409 that the SDK does not retry.
  EXPECT_EQ(anonymous.request("POST", path, R"({"approved":true})").status, 200);
  EXPECT_EQ(s.api("POST", "/api/v1/waitpoints/tokens/" + id + "/complete", json{{"data", {{"approved", true}}}})["success"], true);
  http_client c(s.url);
  s.authorize(c);
  auto other = c.request("POST", "/api/v1/waitpoints/tokens/" + id + "/complete", R"({"data":{"approved":false}})");
  EXPECT_EQ(other.status, 409) << other.body;
  EXPECT_EQ(other.headers["x-should-retry"], "false");
  EXPECT_NE(other.body.find("already completed with other data"), std::string::npos) << other.body;
  EXPECT_EQ(anonymous.request("POST", path, R"({"approved":false})").status, 409);
  EXPECT_EQ(c.request("POST", "/api/v1/waitpoints/tokens/waitpoint_nope/complete", "{}").status, 404);

  // An empty body is {}.
  auto t2 = s.api("POST", "/api/v1/waitpoints/tokens", json::object());
  EXPECT_EQ(anonymous.request("POST", path_of(t2["url"], s.url), "").status, 200);
  EXPECT_EQ(s.api("GET", "/api/v1/waitpoints/tokens/" + t2["id"].get<std::string>())["output"], "{}");
  std::this_thread::sleep_for(300ms);  // the access log's batch
  EXPECT_EQ(s.log().find(path.substr(path.rfind('/') + 1)), std::string::npos) << "the callback's HMAC is in the log";
}

TEST(PacketsTest, ResettingAnIdempotencyKeyMakesTheNextTriggerANewRun) {
  deployment_dir d;
  d.add_key();
  server s(d);
  const std::string key(64, 'a');
  const std::string first = s.trigger("fixture-echo", {{"n", 1}}, {{"idempotencyKey", key}});
  EXPECT_EQ(s.trigger("fixture-echo", {{"n", 2}}, {{"idempotencyKey", key}}), first);
  s.wait_final(first);
  auto r = s.api("POST", "/api/v1/idempotencyKeys/" + key + "/reset", json{{"taskIdentifier", "fixture-echo"}});
  EXPECT_EQ(r, json({{"id", key}}));
  const std::string second = s.trigger("fixture-echo", {{"n", 3}}, {{"idempotencyKey", key}});
  EXPECT_NE(second, first);
  EXPECT_EQ(s.wait_final(second)["output"]["payload"]["n"], 3);
  EXPECT_EQ(s.trigger("fixture-echo", {{"n", 4}}, {{"idempotencyKey", key}}), second) << "the new run holds the key";

  auto unknown = s.api("POST", "/api/v1/idempotencyKeys/" + std::string(64, 'b') + "/reset", json{{"taskIdentifier", "fixture-echo"}}, 404);
  EXPECT_NE(unknown.value("error", "").find("No run of task 'fixture-echo' has the idempotency key"), std::string::npos) << unknown.dump();
  s.api("POST", "/api/v1/idempotencyKeys/" + key + "/reset", json{{"taskIdentifier", "hello-world"}}, 404);
  s.api("POST", "/api/v1/idempotencyKeys/" + key + "/reset", json::object(), 400);
}
