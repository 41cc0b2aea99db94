// The gateway's key check on its own: a run_service that answers everything, and requests with and
// without keys. (tests/integration/api_keys_test.cpp does the same through the real binary.)
#include "runtime/api_gateway.hpp"

#include <gtest/gtest.h>

#include "runtime/api_keys.hpp"

using namespace taskhost;

namespace {

/// Answers every call with 200 and an empty object (or a made-up run).
class everything_ok final : public run_service {
public:
  void trigger(trigger_input, std::function<void(trigger_outcome)> done) override { done({200, "run_1", {}, false}); }
  std::optional<run_record> get_run(const std::string& id) const override {
    run_record r;
    r.id = id;
    r.task_id = "t";
    return r;
  }
  void cancel(const std::string& id, std::function<void(trigger_outcome)> done) override { done({200, id, {}, false}); }
  run_list_page list_runs(const run_list_query&) const override { return {}; }
  void reschedule(const std::string& id, time_point, std::function<void(trigger_outcome)> done) override { done({200, id, {}, false}); }
  api_answer create_token(const nlohmann::json&) override { return ok(); }
  api_answer complete_token(const std::string&, const nlohmann::json&) override { return ok(); }
  api_answer get_token(const std::string&) override { return ok(); }
  api_answer list_tokens(const std::string&, size_t, const std::string&) override { return ok(); }
  api_answer get_batch(const std::string&) const override { return ok(); }
  api_answer create_batch(batch_create_input) override { return {200, {{"id", "batch_1"}, {"runCount", 1}, {"isCached", false}}}; }
  void add_batch_items(const std::string&, std::vector<batch_item>, std::function<void(api_answer)> done) override { done(ok()); }
  std::optional<request_key_record> find_request_key(const std::string&, const std::string&) const override { return std::nullopt; }
  api_answer list_queues(size_t, size_t) override { return ok(); }
  api_answer get_queue(const std::string&) override { return ok(); }
  api_answer pause_queue(const std::string&, bool) override { return ok(); }
  api_answer override_queue(const std::string&, std::optional<int>) override { return ok(); }
  api_answer list_schedules(size_t, size_t) override { return ok(); }
  api_answer get_schedule(const std::string&) override { return ok(); }
  api_answer create_schedule(const nlohmann::json&) override { return ok(); }
  api_answer update_schedule(const std::string&, const nlohmann::json&) override { return ok(); }
  api_answer delete_schedule(const std::string&) override { return ok(); }
  api_answer activate_schedule(const std::string&, bool) override { return ok(); }

private:
  static api_answer ok() { return {200, nlohmann::json::object()}; }
};

const std::string good_key = "tr_dev_" + std::string(32, 'G');
const std::string other_key = "tr_dev_" + std::string(32, 'H');

http_response call(api_gateway& gw, const std::string& method, const std::string& target, const std::string& authorization = "",
                   const std::string& body = "") {
  http_request req{method, target, body, {}};
  if (!authorization.empty()) req.headers["authorization"] = authorization;
  std::optional<http_response> out;
  gw.handle(std::move(req), [&](http_response r) { out = std::move(r); });
  EXPECT_TRUE(out.has_value()) << method << " " << target;
  return out.value_or(http_response{});
}

std::string header(const http_response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

/// One request per route the gateway serves, with a body where one is needed.
const std::vector<std::pair<std::string, std::string>> routes = {
    {"POST", "/api/v1/tasks/t/trigger"}, {"GET", "/api/v3/runs/run_1"}, {"GET", "/api/v1/runs"},
    {"POST", "/api/v2/runs/run_1/cancel"}, {"POST", "/api/v1/runs/run_1/replay"}, {"POST", "/api/v1/runs/run_1/reschedule"},
    {"GET", "/api/v1/runs/run_1/logs"}, {"GET", "/api/v1/batches/batch_1"}, {"POST", "/api/v1/waitpoints/tokens"},
    {"GET", "/api/v1/waitpoints/tokens"}, {"GET", "/api/v1/waitpoints/tokens/waitpoint_1"},
    {"POST", "/api/v1/waitpoints/tokens/waitpoint_1/complete"}, {"GET", "/api/v1/queues"}, {"GET", "/api/v1/queues/q"},
    {"POST", "/api/v1/queues/q/pause"}, {"POST", "/api/v1/queues/q/concurrency/override"},
    {"POST", "/api/v1/queues/q/concurrency/reset"}, {"POST", "/api/v1/schedules"}, {"GET", "/api/v1/schedules"},
    {"GET", "/api/v1/schedules/sched_1"}, {"PUT", "/api/v1/schedules/sched_1"}, {"DELETE", "/api/v1/schedules/sched_1"},
    {"POST", "/api/v1/schedules/sched_1/activate"}, {"POST", "/api/v1/schedules/sched_1/deactivate"},
    // not routes: still 401 before 404 or 405 (deny by default)
    {"GET", "/api/v1/tasks/t/trigger"}, {"GET", "/api/v9/nothing"}, {"GET", "//api/v1/runs"}, {"GET", "/nothing"}};

}  // namespace

TEST(ApiGatewayAuthTest, EveryRouteAnswers401WithoutAnActiveKey) {
  everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  for (const auto& [method, path] : routes) {
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
  everything_ok svc;
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
  everything_ok svc;
  api_keys keys({{"", "ci", sha256(good_key)}});
  api_gateway gw(svc, 1 << 20, &keys);
  EXPECT_EQ(call(gw, "GET", "/api/v1/timezones").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/timezones?excludeUtc=true", "Bearer wrong").status, 200);
  EXPECT_EQ(call(gw, "GET", "/healthz").status, 200);
}

TEST(ApiGatewayAuthTest, WithoutKeysNothingIsChecked) {
  everything_ok svc;
  api_keys none({});
  api_gateway gw(svc, 1 << 20, &none);
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/runs", "Bearer " + other_key).status, 200);
  api_gateway unchecked(svc, 1 << 20);
  EXPECT_EQ(call(unchecked, "GET", "/api/v1/runs").status, 200);
}

TEST(ApiGatewayAuthTest, PrincipalIsTheKeysNameNeverTheKey) {
  everything_ok svc;
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
