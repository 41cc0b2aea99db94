// A run_service that answers every call with success, for tests of the HTTP gateway on its own
// (tests/integration/ drive the real runtime).
#pragma once

#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "runtime/api_gateway.hpp"
#include "runtime/run_service.hpp"

namespace taskhost::test {

/// Answers every call with 200 and an empty object (or a made-up run).
class everything_ok : public run_service {
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
  api_answer list_tokens(const token_list_query&) override { return ok(); }
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

/// A request path for an OpenAPI-style route path: each {param} replaced by a sample value.
inline std::string sample_path(const std::string& route_path) {
  return std::regex_replace(route_path, std::regex("\\{([A-Za-z]+)\\}"), "$1_1");
}

/// One request through the gateway (with `Authorization: <authorization>` unless empty); its answer.
inline http_response call(api_gateway& gw, const std::string& method, const std::string& target, const std::string& authorization = "",
                          const std::string& body = "") {
  http_request req{method, target, body, {}};
  if (!authorization.empty()) req.headers["authorization"] = authorization;
  std::optional<http_response> out;
  gw.handle(std::move(req), [&](http_response r) { out = std::move(r); });
  EXPECT_TRUE(out.has_value()) << method << " " << target;
  return out.value_or(http_response{});
}

/// A response header's value ("" if absent).
inline std::string header(const http_response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

}  // namespace taskhost::test
