// The gateway's signed-URL routes on their own: packets (presign, upload, trigger), token callback
// URLs, the `url` of tokens, idempotencyKeys.reset, and what the access log may show of them.
// (tests/integration/packets_test.cpp does the same through the real binary.)
#include "runtime/api_gateway.hpp"
#include "support/fake_run_service.hpp"

#include <gtest/gtest.h>

#include <map>

#include "runtime/api_keys.hpp"

using namespace taskhost;
using nlohmann::json;

namespace {

/// Keeps packets in a map, records triggers, completions and resets.
class recording_service final : public test::everything_ok {
public:
  void trigger(trigger_input in, std::function<void(trigger_outcome)> done) override {
    triggered.push_back(std::move(in));
    done({200, "run_1", {}, false});
  }
  api_answer create_token(const json&) override { return {200, {{"id", "waitpoint_new"}, {"isCached", false}}}; }
  api_answer complete_token(const std::string& id, const json& data) override {
    completed.emplace_back(id, data);
    return {200, {{"success", true}}};
  }
  api_answer get_token(const std::string& id) override { return {200, {{"id", id}, {"status", "WAITING"}}}; }
  api_answer list_tokens(const token_list_query& q) override {
    last_list = q;
    return {200, {{"data", json::array({{{"id", "waitpoint_1"}}, {{"id", "waitpoint_2"}}})}, {"pagination", json::object()}}};
  }
  api_answer reset_idempotency_key(const std::string& task, const std::string& key) override {
    resets.emplace_back(task, key);
    if (key == "unknown") return {404, {{"error", "No run of task '" + task + "' has the idempotency key 'unknown'"}}};
    return {200, {{"id", key}}};
  }
  api_answer save_packet(const std::string& path, const std::string& type, std::string data) override {
    packets[path] = {type, std::move(data)};
    return {200, json::object()};
  }
  std::optional<stored_packet> get_packet(const std::string& path) override {
    auto it = packets.find(path);
    if (it == packets.end()) return std::nullopt;
    return it->second;
  }
  void packet_used(const std::string& path) override { used.push_back(path); }

  std::vector<trigger_input> triggered;
  std::vector<std::pair<std::string, json>> completed;
  std::vector<std::pair<std::string, std::string>> resets;
  std::map<std::string, stored_packet> packets;
  std::vector<std::string> used;
  token_list_query last_list;
};

const std::string key = "tr_dev_" + std::string(32, 'K');

struct fixture {
  explicit fixture(std::string public_url = "") {
    signed_url_options o;
    o.signer = std::make_shared<const url_signer>(std::string(32, 's'));
    o.public_url = std::move(public_url);
    o.max_packet_bytes = 1000;
    gw = std::make_unique<api_gateway>(svc, 1 << 20, &keys, o);
  }
  http_response call(const std::string& method, const std::string& target, const std::string& body = "", bool with_key = true,
                     std::map<std::string, std::string> headers = {}) {
    http_request req{method, target, body, std::move(headers)};
    if (!req.headers.count("host")) req.headers["host"] = "127.0.0.1:4242";
    if (with_key) req.headers["authorization"] = "Bearer " + key;
    std::optional<http_response> out;
    gw->handle(std::move(req), [&](http_response r) { out = std::move(r); });
    EXPECT_TRUE(out.has_value());
    return out.value_or(http_response{});
  }
  /// presign → {presignedUrl, storagePath}
  json presign(const std::string& filename = "trigger%2Fpacket_abc%2Fpayload.json") {
    auto r = call("PUT", "/api/v2/packets/" + filename);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }
  recording_service svc;
  api_keys keys{{{"", "ci", sha256(key)}}};
  std::unique_ptr<api_gateway> gw;
};

std::string path_of(const std::string& url, const std::string& base) {
  EXPECT_EQ(url.rfind(base, 0), 0u) << url << " does not start with " << base;
  return url.substr(base.size());
}

}  // namespace

TEST(ApiGatewaySignedTest, APacketIsPresignedUploadedWithoutAKeyAndTriggeredByItsStoragePath) {
  fixture f;
  EXPECT_EQ(f.call("PUT", "/api/v2/packets/trigger%2Fpacket_abc%2Fpayload.json", "", /*with_key=*/false).status, 401)
      << "presigning needs a key";
  auto p = f.presign();
  const std::string storage = p["storagePath"];
  EXPECT_EQ(storage.rfind("packets/", 0), 0u);
  EXPECT_TRUE(storage.ends_with("/trigger/packet_abc/payload.json")) << storage;
  EXPECT_NE(f.presign()["storagePath"], storage) << "each presign its own path";
  const std::string upload = path_of(p["presignedUrl"], "http://127.0.0.1:4242");
  EXPECT_EQ(f.call("GET", upload, "", false).status, 405);
  auto put = f.call("PUT", upload, R"({"json":{"big":"value"}})", false, {{"content-type", "application/super+json"}});
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_EQ(f.svc.packets.count(storage), 1u);
  EXPECT_EQ(f.svc.packets[storage].content_type, "application/super+json");
  EXPECT_EQ(f.call("PUT", upload, R"({"json":{"big":"value"}})", false, {{"content-type", "application/super+json"}}).status, 200)
      << "the same upload again";

  auto t = f.call("POST", "/api/v1/tasks/t/trigger",
                  json{{"payload", storage}, {"options", {{"payloadType", "application/store"}, {"payloadSize", 200000}}}}.dump());
  ASSERT_EQ(t.status, 200) << t.body;
  ASSERT_EQ(f.svc.triggered.size(), 1u);
  EXPECT_EQ(f.svc.triggered[0].payload, json({{"big", "value"}}));
  EXPECT_EQ(f.svc.triggered[0].payload_type, "application/super+json");
  EXPECT_EQ(f.svc.used, std::vector<std::string>{storage});

  auto unknown = f.call("POST", "/api/v1/tasks/t/trigger", R"({"payload":"packets/nope","options":{"payloadType":"application/store"}})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("no packet is stored at storagePath 'packets/nope'"), std::string::npos) << unknown.body;
  EXPECT_EQ(f.svc.triggered.size(), 1u);
}

TEST(ApiGatewaySignedTest, AForgedExpiredOrOversizeUploadStoresNothing) {
  fixture f;
  auto p = f.presign();
  std::string upload = path_of(p["presignedUrl"], "http://127.0.0.1:4242");
  // /api/v2/packets/upload/{expires}/{hmac}/{path}
  auto forged = upload;
  const auto hmac_at = forged.find('/', std::string("/api/v2/packets/upload/").size()) + 1;
  forged[hmac_at] = forged[hmac_at] == 'a' ? 'b' : 'a';
  auto r = f.call("PUT", forged, "x", false);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("signature does not match"), std::string::npos) << r.body;
  auto later = upload;
  later.replace(std::string("/api/v2/packets/upload/").size(), 1, "9");  // another expiry written in
  EXPECT_EQ(f.call("PUT", later, "x", false).status, 403);
  // A genuine URL whose time has passed.
  url_signer same(std::string(32, 's'));
  auto expired = same.upload_path("packets/old/payload.json", 1000);
  r = f.call("PUT", expired, "x", false);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("expired"), std::string::npos) << r.body;
  EXPECT_EQ(f.call("PUT", upload, std::string(1001, 'x'), false).status, 413);
  EXPECT_TRUE(f.svc.packets.empty());
  // The server lets an upload be max_packet_bytes, other requests keep its own limit.
  EXPECT_EQ(f.gw->body_limit_for("PUT", upload, ""), 1000u);
  EXPECT_EQ(f.gw->body_limit_for("POST", upload, ""), 0u);
  EXPECT_EQ(f.gw->body_limit_for("PUT", "/api/v1/schedules/x", ""), 0u);
}

TEST(ApiGatewaySignedTest, ACallbackUrlCompletesItsTokenWithTheBodyAndAWrongHmacNothing) {
  fixture f;
  auto create = f.call("POST", "/api/v1/waitpoints/tokens", "{}");
  bool jwt = false;
  for (const auto& [k, v] : create.headers) jwt = jwt || (k == "x-trigger-jwt" && v == "taskhost-waitpoint_new");
  EXPECT_TRUE(jwt) << "x-trigger-jwt, so that the SDK need not self-sign a publicAccessToken";
  auto created = json::parse(create.body);
  const std::string url = created["url"];
  const std::string path = path_of(url, "http://127.0.0.1:4242");
  EXPECT_EQ(path.rfind("/api/v1/waitpoints/tokens/waitpoint_new/callback/", 0), 0u) << path;
  EXPECT_EQ(json::parse(f.call("GET", "/api/v1/waitpoints/tokens/waitpoint_x").body)["url"].get<std::string>().find("/waitpoint_x/callback/"),
            std::string("http://127.0.0.1:4242/api/v1/waitpoints/tokens").size());
  auto list = json::parse(f.call("GET", "/api/v1/waitpoints/tokens").body);
  for (const auto& t : list["data"]) EXPECT_TRUE(t["url"].is_string()) << list.dump();

  auto wrong = path;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(f.call("POST", wrong, R"({"a":1})", false).status, 404);
  auto other = "/api/v1/waitpoints/tokens/waitpoint_other/callback/" + path.substr(path.rfind('/') + 1);
  EXPECT_EQ(f.call("POST", other, R"({"a":1})", false).status, 404) << "a token's HMAC is not another's";
  EXPECT_TRUE(f.svc.completed.empty());

  EXPECT_EQ(f.call("POST", path, R"({"approved":true})", false).status, 200);
  EXPECT_EQ(f.call("POST", path, "", false).status, 200);
  EXPECT_EQ(f.call("POST", path, "not json", false).status, 400);
  EXPECT_EQ(f.call("GET", path, "", false).status, 405);
  ASSERT_EQ(f.svc.completed.size(), 2u);
  EXPECT_EQ(f.svc.completed[0], (std::pair<std::string, json>{"waitpoint_new", {{"approved", true}}}));
  EXPECT_EQ(f.svc.completed[1].second, json::object()) << "an empty body is {}";
}

TEST(ApiGatewaySignedTest, TokenListFiltersReachTheService) {
  fixture f;
  auto r = f.call("GET", "/api/v1/waitpoints/tokens?filter%5Bstatus%5D=WAITING,COMPLETED&filter%5BidempotencyKey%5D=k"
                         "&filter%5Btags%5D=a,b&filter%5BcreatedAt%5D%5Bperiod%5D=1d&page%5Bsize%5D=5&page%5Bafter%5D=waitpoint_9");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(f.svc.last_list.statuses, (std::vector<std::string>{"WAITING", "COMPLETED"}));
  EXPECT_EQ(f.svc.last_list.idempotency_key, "k");
  EXPECT_EQ(f.svc.last_list.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(f.svc.last_list.created_from);
  EXPECT_EQ(f.svc.last_list.limit, 5u);
  EXPECT_EQ(f.svc.last_list.after, "waitpoint_9");
  EXPECT_EQ(f.call("GET", "/api/v1/waitpoints/tokens?filter%5Bstatus%5D=DONE").status, 400);
  EXPECT_EQ(f.call("GET", "/api/v1/waitpoints/tokens?page%5Bbefore%5D=x").status, 400);
}

TEST(ApiGatewaySignedTest, ResettingAKeyNeedsItsTask) {
  fixture f;
  auto r = f.call("POST", "/api/v1/idempotencyKeys/abc%20def/reset", R"({"taskIdentifier":"t"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json({{"id", "abc def"}}));
  EXPECT_EQ(f.svc.resets, (std::vector<std::pair<std::string, std::string>>{{"t", "abc def"}}));
  EXPECT_EQ(f.call("POST", "/api/v1/idempotencyKeys/abc/reset", "{}").status, 400);
  EXPECT_EQ(f.call("POST", "/api/v1/idempotencyKeys/abc/reset", "").status, 400);
  EXPECT_EQ(f.call("POST", "/api/v1/idempotencyKeys/abc/reset", R"({"taskIdentifier":3})").status, 400);
  EXPECT_EQ(f.call("GET", "/api/v1/idempotencyKeys/abc/reset").status, 405);
  EXPECT_EQ(f.call("POST", "/api/v1/idempotencyKeys/unknown/reset", R"({"taskIdentifier":"t"})").status, 404);
  EXPECT_EQ(f.call("POST", "/api/v1/idempotencyKeys/abc/reset", R"({"taskIdentifier":"t"})", false).status, 401);
}

TEST(ApiGatewaySignedTest, APublicUrlWithAPathIsWhereUrlsStartAndIsServedWithOrWithoutIt) {
  fixture f("https://tasks.example.com/th");
  auto p = f.presign();
  const std::string upload = path_of(p["presignedUrl"], "https://tasks.example.com/th");
  EXPECT_EQ(f.call("PUT", "/th" + upload, "[1]", false).status, 200) << "a proxy that keeps the prefix";
  EXPECT_EQ(f.call("PUT", upload, "[1]", false).status, 200) << "a proxy that strips it";
  EXPECT_EQ(f.gw->body_limit_for("PUT", "/th" + upload, ""), 1000u);
  EXPECT_EQ(f.call("GET", "/th/api/v1/waitpoints/tokens/waitpoint_x").status, 200);
  EXPECT_EQ(json::parse(f.call("POST", "/th/api/v1/waitpoints/tokens", "{}").body)["url"].get<std::string>().rfind(
                "https://tasks.example.com/th/api/v1/waitpoints/tokens/waitpoint_new/callback/", 0),
            0u);
  EXPECT_EQ(f.call("GET", "/thx/api/v1/waitpoints/tokens/waitpoint_x").status, 404) << "only the whole segment";
}

TEST(ApiGatewaySignedTest, TheAccessLogNeverShowsAnHmac) {
  fixture f;
  url_signer s(std::string(32, 's'));
  const std::string upload = s.upload_path("packets/a/payload.json", 99);
  const std::string hmac = s.sign("packet-upload/v1", "99\npackets/a/payload.json");
  EXPECT_EQ(api_gateway::loggable_path(upload), "/api/v2/packets/upload/99/<hmac>/packets%2Fa%2Fpayload.json");
  const std::string cb = s.callback_path("waitpoint_1");
  EXPECT_EQ(api_gateway::loggable_path(cb), "/api/v1/waitpoints/tokens/waitpoint_1/callback/<hmac>");
  EXPECT_EQ(api_gateway::loggable_path("/prefix" + cb), "/prefix/api/v1/waitpoints/tokens/waitpoint_1/callback/<hmac>");
  EXPECT_EQ(api_gateway::loggable_path("/api/v1/runs/run_1"), "/api/v1/runs/run_1");
  EXPECT_EQ(upload.find(hmac) != std::string::npos, true);
}
