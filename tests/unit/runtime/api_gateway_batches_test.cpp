// The batch routes of the gateway on their own (a run service that answers everything): the body
// limit of an item stream, the content type, and request idempotency keys.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/api_gateway.hpp"
#include "runtime/api_keys.hpp"
#include "support/fake_run_service.hpp"

using namespace taskhost;
using json = nlohmann::json;

namespace {

/// Counts triggers; remembers one request key as a run service that records it would.
class keyed : public test::everything_ok {
public:
  int triggers = 0;
  std::optional<request_key_record> recorded;
  std::function<void(trigger_outcome)> held;  ///< a trigger not answered yet
  bool hold = false;
  void trigger(trigger_input in, std::function<void(trigger_outcome)> done) override {
    ++triggers;
    if (!in.request_key.empty()) recorded = request_key_record{in.request_scope, in.request_key, "run_" + std::to_string(triggers), false, {}, {}};
    if (hold) held = std::move(done);
    else done({200, "run_" + std::to_string(triggers), {}, false});
  }
  std::optional<request_key_record> find_request_key(const std::string& scope, const std::string& key) const override {
    if (recorded && recorded->scope == scope && recorded->key == key) return recorded;
    return std::nullopt;
  }
};

std::optional<http_response> call(api_gateway& gw, const std::string& method, const std::string& target, const std::string& body,
                                  std::map<std::string, std::string> headers = {}) {
  std::optional<http_response> out;
  gw.handle(http_request{method, target, body, std::move(headers)}, [&](http_response r) { out = std::move(r); });
  return out;
}

}  // namespace

TEST(ApiGatewayBatchesTest, AnItemStreamHasItsOwnBodyLimitAndOtherRoutesKeepTheServers) {
  test::everything_ok svc;
  api_gateway gw(svc, 1 << 20);
  gw.set_max_batch_body_bytes(5000);
  EXPECT_EQ(gw.body_limit_for("POST", "/api/v3/batches/batch_1/items", ""), 5000u);
  EXPECT_EQ(gw.body_limit_for("POST", "/api/v3/batches/batch_1/items?x=1", ""), 5000u);
  EXPECT_EQ(gw.body_limit_for("GET", "/api/v3/batches/batch_1/items", ""), 0u);
  EXPECT_EQ(gw.body_limit_for("POST", "/api/v3/batches", ""), 0u);
  EXPECT_EQ(gw.body_limit_for("POST", "/api/v3/batches/a/b/items", ""), 0u);
  EXPECT_EQ(gw.body_limit_for("POST", "/api/v1/tasks/t/trigger", ""), 0u);
}

TEST(ApiGatewayBatchesTest, OnlyAKnownCallerMaySendAnItemStreamOverTheServersLimit) {
  test::everything_ok svc;
  const std::string key = "tr_dev_" + std::string(32, 'G');
  api_keys keys({{"", "ci", sha256(key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  gw.set_max_batch_body_bytes(5000);
  const std::string items = "/api/v3/batches/batch_1/items";
  EXPECT_EQ(gw.body_limit_for("POST", items, "Bearer " + key), 5000u);
  EXPECT_EQ(gw.body_limit_for("POST", items, ""), 0u) << "no key: the server's limit (then 401)";
  EXPECT_EQ(gw.body_limit_for("POST", items, "Bearer tr_dev_" + std::string(32, 'H')), 0u);
}

TEST(ApiGatewayBatchesTest, ItemsMustBeNdjson) {
  test::everything_ok svc;
  api_gateway gw(svc, 1 << 20);
  const std::string line = R"({"index":0,"task":"t"})" "\n";
  EXPECT_EQ(call(gw, "POST", "/api/v3/batches/b/items", line, {{"content-type", "application/json"}})->status, 415);
  EXPECT_EQ(call(gw, "POST", "/api/v3/batches/b/items", line)->status, 415);
  EXPECT_EQ(call(gw, "POST", "/api/v3/batches/b/items", line, {{"content-type", "application/x-ndjson"}})->status, 200);
  EXPECT_EQ(call(gw, "POST", "/api/v3/batches/b/items", line, {{"content-type", "application/ndjson; charset=utf-8"}})->status, 200);
  auto created = call(gw, "POST", "/api/v3/batches", R"({"runCount":1})");
  EXPECT_EQ(created->status, 202);
  bool jwt = false;
  for (const auto& [k, v] : created->headers) jwt = jwt || (k == "x-trigger-jwt" && !v.empty());
  EXPECT_TRUE(jwt);
}

TEST(ApiGatewayBatchesTest, ARequestKeyInFlightMakesTheRetryWaitForItsAnswer) {
  keyed svc;
  svc.hold = true;
  api_gateway gw(svc, 1 << 20);
  const std::map<std::string, std::string> key = {{"x-trigger-request-idempotency-key", "k1"}};
  std::optional<http_response> first, second;
  gw.handle(http_request{"POST", "/api/v1/tasks/t/trigger", "{}", key}, [&](http_response r) { first = r; });
  gw.handle(http_request{"POST", "/api/v1/tasks/t/trigger", "{}", key}, [&](http_response r) { second = r; });
  EXPECT_FALSE(first || second) << "both wait for the first trigger's commit";
  EXPECT_EQ(svc.triggers, 1);
  svc.held({200, "run_1", {}, false});
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body, second->body);
  EXPECT_EQ(json::parse(second->body)["id"], "run_1");
  svc.hold = false;
  auto third = call(gw, "POST", "/api/v1/tasks/t/trigger", "{}", key);
  EXPECT_EQ(json::parse(third->body), json({{"id", "run_1"}, {"isCached", false}})) << "after: what the first recorded";
  EXPECT_EQ(svc.triggers, 1);
  EXPECT_NE(json::parse(call(gw, "POST", "/api/v1/tasks/other/trigger", "{}", key)->body)["id"], "run_1") << "scoped to the task";
  EXPECT_EQ(call(gw, "POST", "/api/v1/tasks/t/trigger", "{}", {{"x-trigger-request-idempotency-key", std::string(2049, 'k')}})->status, 400);
}
