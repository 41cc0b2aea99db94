// The gateway's route table against its OpenAPI description (docs/openapi.json, served at
// /api/openapi.json), and the routing rules: 404 for unknown paths, 405 with Allow for another
// method, HEAD as GET, {params} percent-decoded, a queue id that keeps its slash.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>

#include "runtime/api_gateway.hpp"
#include "support/fake_run_service.hpp"

using namespace taskhost;
using json = nlohmann::json;

namespace {

using test::header;

http_response call(api_gateway& gw, const std::string& method, const std::string& target, const std::string& body = "") {
  return test::call(gw, method, target, "", body);
}

/// Records what reached the run service.
class recording : public test::everything_ok {
public:
  std::vector<std::string> seen;
  api_answer get_queue(const std::string& id) override {
    seen.push_back("get_queue " + id);
    return {200, json::object()};
  }
  api_answer pause_queue(const std::string& id, bool pause) override {
    seen.push_back(std::string(pause ? "pause " : "resume ") + id);
    return {200, json::object()};
  }
  api_answer get_schedule(const std::string& id) override {
    seen.push_back("get_schedule " + id);
    return {200, json::object()};
  }
  void trigger(trigger_input in, std::function<void(trigger_outcome)> done) override {
    seen.push_back("trigger " + in.task_id);
    done({200, "run_1", {}, false});
  }
};

const json& document() {
  static const json doc = json::parse(openapi_document());
  return doc;
}

/// Every {"$ref": ...} in `j`.
void collect_refs(const json& j, std::set<std::string>& out) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (k == "$ref" && v.is_string()) out.insert(v.get<std::string>());
      collect_refs(v, out);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_refs(v, out);
  }
}

}  // namespace

TEST(ApiGatewayRoutesTest, EveryRouteIsInTheOpenApiDocumentAndViceVersa) {
  std::set<std::pair<std::string, std::string>> served, documented;
  for (const auto& r : api_gateway::routes()) {
    std::string m = r.method;
    for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_TRUE(served.emplace(m, r.path).second) << "route listed twice: " << r.method << " " << r.path;
  }
  const json& doc = document();
  ASSERT_TRUE(doc["paths"].is_object());
  for (auto& [path, item] : doc["paths"].items())
    for (auto& [method, op] : item.items())
      if (method != "parameters" && method != "summary" && method != "description") documented.emplace(method, path);
  for (const auto& r : served) EXPECT_TRUE(documented.count(r)) << "served but not in docs/openapi.json: " << r.first << " " << r.second;
  for (const auto& d : documented) EXPECT_TRUE(served.count(d)) << "in docs/openapi.json but not served: " << d.first << " " << d.second;
  EXPECT_GE(served.size(), 27u);
}

TEST(ApiGatewayRoutesTest, TheDocumentIsWellFormedOpenApi) {
  const json& doc = document();
  EXPECT_EQ(doc.value("openapi", ""), "3.1.0");
  EXPECT_TRUE(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
  // Every $ref points at something the document defines.
  std::set<std::string> refs;
  collect_refs(doc, refs);
  EXPECT_FALSE(refs.empty());
  for (const auto& ref : refs) {
    ASSERT_EQ(ref.rfind("#/", 0), 0u) << ref;
    EXPECT_NO_THROW(doc.at(json::json_pointer(ref.substr(1)))) << "dangling $ref " << ref;
  }
  std::set<std::string> open;
  for (const auto& r : api_gateway::routes())
    if (r.open) open.insert(r.path);
  for (auto& [path, item] : doc["paths"].items()) {
    // Every {param} of the path is declared as a required path parameter, and nothing else is.
    std::set<std::string> in_path, declared;
    for (size_t i = path.find('{'); i != std::string::npos; i = path.find('{', i + 1)) in_path.insert(path.substr(i + 1, path.find('}', i) - i - 1));
    for (auto& [method, op] : item.items()) {
      SCOPED_TRACE(method + " " + path);
      declared.clear();
      for (const auto& p : op.value("parameters", json::array()))
        if (p.value("in", "") == "path") {
          declared.insert(p.value("name", ""));
          EXPECT_TRUE(p.value("required", false));
        }
      EXPECT_EQ(declared, in_path);
      EXPECT_TRUE(op["operationId"].is_string());
      ASSERT_TRUE(op["responses"].is_object());
      bool has_2xx = false;
      for (auto& [status, _] : op["responses"].items()) has_2xx = has_2xx || status[0] == '2';
      EXPECT_TRUE(has_2xx);
      // Routes that need a key say so (the document's default security) and document the 401;
      // open routes override security with [].
      const bool documented_open = op.contains("security") && op["security"].empty();
      EXPECT_EQ(documented_open, open.count(path) > 0);
      if (!documented_open) EXPECT_TRUE(op["responses"].contains("401"));
    }
  }
}

TEST(ApiGatewayRoutesTest, TheDocumentIsServed) {
  test::everything_ok svc;
  api_gateway gw(svc, 1 << 20);
  auto r = call(gw, "GET", "/api/openapi.json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, openapi_document());
}

TEST(ApiGatewayRoutesTest, UnknownPathsAre404AndOtherMethods405WithAllow) {
  test::everything_ok svc;
  api_gateway gw(svc, 1 << 20);
  for (const char* path : {"/api/v9/nothing", "/", "/api/v1/runs/run_1/nothing", "/api/v1/schedules/a/b/c", "/healthz/x"}) {
    auto r = call(gw, "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(header(r, "x-should-retry"), "false");
    EXPECT_EQ(json::parse(r.body)["error"], std::string("No route for GET ") + path);
  }
  struct want { std::string method, path, allow; };
  for (const auto& w : std::vector<want>{{"GET", "/api/v1/tasks/t/trigger", "POST"},
                                         {"DELETE", "/api/v1/runs", "GET"},
                                         {"POST", "/healthz", "GET"},
                                         {"PUT", "/api/v1/waitpoints/tokens", "GET, POST"},
                                         {"POST", "/api/v1/schedules/sched_1", "GET, PUT, DELETE"},
                                         {"GET", "/api/v1/queues/task/x/pause", "POST"}}) {
    auto r = call(gw, w.method, w.path);
    EXPECT_EQ(r.status, 405) << w.method << " " << w.path;
    EXPECT_EQ(header(r, "allow"), w.allow) << w.method << " " << w.path;
    EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("use " + w.allow), std::string::npos) << r.body;
  }
}

TEST(ApiGatewayRoutesTest, HeadIsAnsweredAsGet) {
  test::everything_ok svc;
  api_gateway gw(svc, 1 << 20);
  EXPECT_EQ(call(gw, "HEAD", "/healthz").status, 200);
  EXPECT_EQ(call(gw, "HEAD", "/api/v1/runs").status, 200);
  EXPECT_EQ(call(gw, "HEAD", "/api/v1/tasks/t/trigger").status, 405);
}

TEST(ApiGatewayRoutesTest, ParamsArePercentDecodedAndAQueueIdKeepsItsSlash) {
  recording svc;
  api_gateway gw(svc, 1 << 20);
  EXPECT_EQ(call(gw, "POST", "/api/v1/tasks/my%2Ftask%20x/trigger", "{}").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/queues/task/send-email").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/queues/task%2Fsend-email").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/queues/pause").status, 200) << "a queue named pause";
  EXPECT_EQ(call(gw, "POST", "/api/v1/queues/task/send-email/pause", R"({"action":"pause"})").status, 200);
  EXPECT_EQ(call(gw, "POST", "/api/v1/queues/email/pause", R"({"action":"resume"})").status, 200);
  EXPECT_EQ(call(gw, "GET", "/api/v1/schedules/sched%5F1").status, 200);
  EXPECT_EQ(svc.seen, (std::vector<std::string>{"trigger my/task x", "get_queue task/send-email", "get_queue task/send-email",
                                                "get_queue pause", "pause task/send-email", "resume email", "get_schedule sched_1"}));
  auto bad = call(gw, "GET", "/api/v3/runs/run%zz");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"], "bad percent-escape in the path");
}
