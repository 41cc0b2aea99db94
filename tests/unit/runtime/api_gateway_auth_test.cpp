// The gateway's key check on its own: a run_service that answers everything, and requests with and
// without keys. (tests/integration/api_keys_test.cpp does the same through the real binary.)
#include "runtime/api_gateway.hpp"

#include <gtest/gtest.h>

#include "runtime/api_keys.hpp"
#include "support/fake_run_service.hpp"

using namespace taskhost;

namespace {

const std::string good_key = "tr_dev_" + std::string(32, 'G');
const std::string other_key = "tr_dev_" + std::string(32, 'H');

using test::call;
using test::header;

/// One request per route the gateway serves (its {params} filled in), and paths that are not routes.
std::vector<std::pair<std::string, std::string>> requests() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : api_gateway::routes()) {
    if (r.open) continue;
    out.emplace_back(r.method, test::sample_path(r.path));
  }
  // not routes: still 401 before 404 or 405 (deny by default)
  for (const char* path : {"/api/v1/tasks/t/trigger", "/api/v9/nothing", "//api/v1/runs", "/nothing", "/healthz/x"})
    out.emplace_back("GET", path);
  out.emplace_back("POST", "/api/v1/timezones/x");
  return out;
}

}  // namespace

TEST(ApiGatewayAuthTest, EveryRouteAnswers401WithoutAnActiveKey) {
  test::everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  const auto reqs = requests();
  ASSERT_GT(reqs.size(), 25u);
  for (const auto& [method, path] : reqs) {
    for (const std::string& auth : std::vector<std::string>{"", "Bearer " + other_key, "Bearer", "Bearer  ", "Basic " + good_key, good_key,
                                    "Bearer " + good_key + " extra", "Bearer " + good_key.substr(0, 20)}) {
      auto r = call(gw, method, path, auth);
      EXPECT_EQ(r.status, 401) << method << " " << path << " with '" << auth << "'";
      EXPECT_EQ(header(r, "x-should-retry"), "false");
      EXPECT_EQ(header(r, "www-authenticate"), "Bearer");
      auto body = nlohmann::json::parse(r.body, nullptr, false);
      EXPECT_TRUE(body.is_object() && body["error"].is_string()) << r.body;
    }
    // The key in the query string is never read.
    for (const std::string& q : {"?key=", "?apiKey=", "?token=", "?access_token=", "?authorization=Bearer%20"})
      EXPECT_EQ(call(gw, method, path + q + good_key).status, 401) << method << " " << path << q;
    EXPECT_NE(call(gw, method, path, "Bearer " + good_key).status, 401) << method << " " << path;
  }
}

TEST(ApiGatewayAuthTest, MessagesSayWhatIsWrong) {
  test::everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  EXPECT_EQ(nlohmann::json::parse(call(gw, "GET", "/api/v1/runs").body)["error"],
            "Missing Authorization header: send 'Authorization: Bearer <key>' with an API key of this deployment");
  EXPECT_EQ(nlohmann::json::parse(call(gw, "GET", "/api/v1/runs", "Token x").body)["error"], "Invalid Authorization header: expected 'Bearer <key>'");
  EXPECT_EQ(nlohmann::json::parse(call(gw, "GET", "/api/v1/runs", "Bearer " + other_key).body)["error"], "Invalid API key");
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs", "bearer " + good_key).status, 200) << "the scheme is case-insensitive";
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs", "  Bearer \t" + good_key + " ").status, 200);
}

TEST(ApiGatewayAuthTest, TimezonesAndHealthStayOpen) {
  test::everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  EXPECT_EQ(call(gw, "GET", "/api/v1/timezones").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/timezones?excludeUtc=true", "Bearer wrong").status, 200);
  EXPECT_EQ(call(gw, "GET", "/healthz").status, 200);
}

TEST(ApiGatewayAuthTest, WithoutKeysNothingIsChecked) {
  test::everything_ok svc;
  api_keys none({});
  api_gateway gw(svc, 1 << 20, &none);
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs", "Bearer " + other_key).status, 200);
  api_gateway unchecked(svc, 1 << 20);
  EXPECT_EQ(call(unchecked, "GET", "/api/v1/runs").status, 200);
}

TEST(ApiGatewayAuthTest, PrincipalIsTheKeysNameNeverTheKey) {
  test::everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  auto req = [](const std::string& auth) {
    http_request r{"GET", "/api/v1/runs", "", {}};
    if (!auth.empty()) r.headers["authorization"] = auth;
    return r;
  };
  EXPECT_EQ(gw.principal_of(req("Bearer " + good_key)), "ci");
  EXPECT_EQ(gw.principal_of(req("Bearer " + other_key)), "");
  EXPECT_EQ(gw.principal_of(req("")), "");
  EXPECT_EQ(gw.principal_of(req(good_key)), "");
  EXPECT_EQ(api_gateway(svc, 1 << 20).principal_of(req("Bearer " + good_key)), "");
}
