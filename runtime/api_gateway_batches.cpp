// The two-phase batch API of the gateway (trigger-rest-api.md §5.2): POST /api/v3/batches, then
// POST /api/v3/batches/{id}/items with the items as NDJSON. What a batch is and how its items are
// deduplicated lives in runtime/batch_book; this file reads the requests and writes the answers.
#include <nlohmann/json.hpp>

#include "runtime/api_gateway.hpp"

namespace taskhost {

namespace {

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

http_response shutting_down() {
  return error_response(503, "taskhost is shutting down; not accepting new runs");  // x-should-retry: true
}

/// Trigger.dev answers 202 to a batch's creation, with the batch's public access token (opaque
/// here, like a trigger's: the SDK never reads it).
http_response created_batch(const json& body) {
  return {202, dump(body), {{"x-trigger-jwt", "taskhost-" + body.value("id", std::string())}}};
}

}  // namespace

bool api_gateway::takes_large_body(std::string_view method, std::string_view path, std::string_view authorization) const {
  if (method != "POST") return false;
  constexpr std::string_view prefix = "/api/v3/batches/", suffix = "/items";
  if (path.size() <= prefix.size() + suffix.size() || path.substr(0, prefix.size()) != prefix ||
      path.substr(path.size() - suffix.size()) != suffix)
    return false;
  std::string_view id = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (id.find('/') != std::string_view::npos) return false;
  // Only a caller the deployment knows may send this much; anyone else gets max_body_bytes (and
  // then its 401).
  http_request head;
  if (!authorization.empty()) head.headers.emplace("authorization", std::string(authorization));
  std::string who;
  return !check_key(head, /*required=*/true, who);
}

void api_gateway::start_batch(const http_request& req, http_responder respond) {
  if (refusing_) return respond(shutting_down());
  once_per_request_key(
      "batch", req, std::move(respond),
      [&](const request_key_record& k) {
        // The same answer as the first time: the batch as it was created (or found, cached).
        auto b = runs_.get_batch(k.id);
        if (b.status != 200) return error_response(b.status, b.body.value("error", std::string("error")));
        json body = {{"id", k.id}, {"runCount", b.body.value("runCount", 0)}, {"isCached", k.cached}};
        return created_batch(body);
      },
      [&](const std::string& key, http_responder respond) {
        auto parsed = parse_batch_create_body(req.body);
        if (!parsed.input) return respond(error_response(parsed.error.status, parsed.error.message));
        parsed.input->request_key = key;
        auto a = runs_.create_batch(std::move(*parsed.input));
        if (a.status != 200) return respond(error_response(a.status, a.body.value("error", std::string("error"))));
        respond(created_batch(a.body));
      });
}

void api_gateway::stream_batch_items(const std::string& batch_id, const http_request& req, http_responder respond) {
  if (refusing_) return respond(shutting_down());
  auto ct = req.headers.find("content-type");
  if (ct == req.headers.end() || (ct->second.find("application/x-ndjson") == std::string::npos &&
                                  ct->second.find("application/ndjson") == std::string::npos))
    return respond(error_response(415, "batch items must be sent as NDJSON: content-type application/x-ndjson, one item a line"));
  auto parsed = parse_batch_items(req.body, max_payload_bytes_);
  if (!parsed.ok()) return respond(error_response(parsed.error.status, parsed.error.message));
  // Items the SDK offloaded (§4) name their packets: the batch reads those of the items that get
  // a run (batch_book), as a single trigger reads its own.
  runs_.add_batch_items(batch_id, std::move(parsed.items), [respond = std::move(respond)](api_answer a) {
    if (a.status != 200) return respond(error_response(a.status, a.body.value("error", std::string("error"))));
    respond({200, dump(a.body), {}});
  });
}

}  // namespace taskhost
