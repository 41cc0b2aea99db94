#include "runtime/api_gateway.hpp"

#include <nlohmann/json.hpp>

#include <vector>

namespace taskhost {

using json = nlohmann::json;

http_response error_response(int status, std::string_view msg) {
  return {status, json{{"error", msg}}.dump(-1, ' ', false, json::error_handler_t::replace), {{"x-should-retry", "false"}}};
}

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') { ++i; continue; }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    parts.push_back(path.substr(i, j - i));
    i = j;
  }
  return parts;
}

}  // namespace

api_gateway::api_gateway(run_service& runs, uint64_t max_payload_bytes) : runs_(runs), max_payload_bytes_(max_payload_bytes) {}

bool api_gateway::percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') { out.push_back(in[i]); continue; }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return false;
    out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return true;
}

void api_gateway::handle(http_request req, http_responder respond) {
  std::string_view target = req.target;
  std::string_view path = target.substr(0, target.find('?'));
  auto parts = split_path(path);
  auto is = [&](std::initializer_list<std::string_view> want, size_t wildcard) {
    if (parts.size() != want.size()) return false;
    size_t i = 0;
    for (auto w : want) {
      if (i != wildcard && parts[i] != w) return false;
      ++i;
    }
    return true;
  };
  auto method_not_allowed = [&](std::string_view allowed) {
    auto r = error_response(405, "method " + req.method + " is not allowed on " + std::string(path) + "; use " + std::string(allowed));
    r.headers.emplace_back("allow", std::string(allowed));
    respond(std::move(r));
  };

  if (is({"api", "v1", "tasks", "*", "trigger"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string task_id;
    if (!percent_decode(parts[3], task_id)) return respond(error_response(400, "bad percent-escape in task id"));
    return trigger(task_id, req, std::move(respond));
  }
  if (is({"api", "v3", "runs", "*"}, 3)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    auto run = runs_.get_run(run_id);
    if (!run) return respond(error_response(404, "Run not found: " + run_id));
    return respond({200, to_api_json(*run).dump(-1, ' ', false, json::error_handler_t::replace), {}});
  }
  if (is({"api", "v2", "runs", "*", "cancel"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    return runs_.cancel(run_id, [respond = std::move(respond), run_id](trigger_outcome o) {
      if (o.status != 200) return respond(error_response(o.status, o.error));
      respond({200, json{{"id", run_id}}.dump(), {}});
    });
  }
  if (is({"api", "v1", "runs", "*", "logs"}, 3)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    auto run = runs_.get_run(run_id);
    if (!run) return respond(error_response(404, "Run not found: " + run_id));
    return respond({200, logs_to_api_json(*run).dump(-1, ' ', false, json::error_handler_t::replace), {}});
  }
  if (is({"healthz"}, 99)) return respond({200, R"({"ok":true})", {}});
  respond(error_response(404, "No route for " + req.method + " " + std::string(path)));
}

void api_gateway::trigger(const std::string& task_id, const http_request& req, http_responder respond) {
  if (refusing_) {
    auto r = error_response(503, "taskhost is shutting down; not accepting new runs");
    r.headers = {{"x-should-retry", "true"}};  // another instance, or this one restarted, may take it
    return respond(std::move(r));
  }
  auto parsed = parse_trigger_body(task_id, req.body, max_payload_bytes_);
  if (!parsed.input) return respond(error_response(parsed.error.status, parsed.error.message));
  runs_.trigger(std::move(*parsed.input), [respond = std::move(respond)](trigger_outcome o) {
    if (o.status != 200) return respond(error_response(o.status, o.error));
    // The SDK turns x-trigger-jwt into handle.publicAccessToken and must not self-sign (§8);
    // an opaque value is enough until taskhost accepts public tokens anywhere.
    respond({200, json{{"id", o.run_id}, {"isCached", false}}.dump(), {{"x-trigger-jwt", "taskhost-" + o.run_id}}});
  });
}

}  // namespace taskhost
