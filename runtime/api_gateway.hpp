// The HTTP API: Trigger.dev's REST paths and JSON shapes, mapped onto a run_service.
//
// Routes: api_gateway::routes() lists them (a table in api_gateway.cpp); docs/openapi.json
// describes each one and is served at GET /api/openapi.json (a test keeps the two in step).
// Every route but /healthz and /api/v1/timezones needs `Authorization: Bearer <key>` with an active API key once the
// deployment has any (api_keys::enforcing): else 401 {"error"} with x-should-retry: false, so the
// SDK throws AuthenticationError at once. A key in the query string is never read.
// Errors are {"error": "..."}; 404s and permanent failures carry `x-should-retry: false` so the
// official SDK does not spend 9 s retrying them; a 503 (shutting down, store disk full) carries
// `x-should-retry: true`.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/http_server.hpp"
#include "runtime/request_gate.hpp"
#include "runtime/run_service.hpp"

namespace taskhost {

class api_keys;

/// A route the gateway serves: method and OpenAPI-style path ("/api/v3/runs/{runId}").
struct api_route {
  std::string method;
  std::string path;
  bool open = false;  ///< answered without an API key
};

/// The OpenAPI 3 description of the API (docs/openapi.json, compiled in).
std::string_view openapi_document();

class api_gateway {
public:
  /// `keys` (may be null: nothing is checked) must outlive the gateway.
  api_gateway(run_service& runs, uint64_t max_payload_bytes, api_keys* keys = nullptr);

  void handle(http_request req, http_responder respond);

  /// Who made `req`: the name of the active API key its Authorization header shows (the key's id
  /// when it has no name; "" when it shows none or no active one). Never the key itself. For the
  /// access log; callable from any thread.
  std::string principal_of(const http_request& req) const;

  /// From now on triggers are answered 503 (the runtime is shutting down); reads keep working.
  void refuse_triggers() { refusing_ = true; }

  /// Whether a request may send a body larger than http.max_body_bytes, from its head: a batch's
  /// item stream (POST /api/v3/batches/{id}/items) with an API key of the deployment (or none
  /// needed). For http_server_options::large_body; callable from any thread.
  bool takes_large_body(std::string_view method, std::string_view target, std::string_view authorization) const;

  /// Decodes %XX escapes (task ids arrive encodeURIComponent-ed). Returns false on a bad escape.
  static bool percent_decode(std::string_view in, std::string& out);

  /// Every route, in the order they are matched. Unknown paths are 404, known paths with another
  /// method 405 with `Allow`.
  static std::vector<api_route> routes();

  struct call;  ///< a request as a route function sees it (its path params decoded)

private:
  struct route_entry;
  static const std::vector<route_entry>& table();
  // Route functions, one per route of table().
  void trigger(call& c);
  void list(call& c);
  void retrieve(call& c);
  void cancel(call& c);
  void replay(call& c);
  void reschedule(call& c);
  void logs(call& c);
  void retrieve_batch(call& c);
  void create_batch(call& c);
  void batch_items(call& c);
  void create_token(call& c);
  void list_tokens(call& c);
  void retrieve_token(call& c);
  void complete_token(call& c);
  void list_queues(call& c);
  void retrieve_queue(call& c);
  void pause_queue(call& c);
  void override_queue(call& c);
  void reset_queue(call& c);
  void list_schedules(call& c);
  void create_schedule(call& c);
  void retrieve_schedule(call& c);
  void update_schedule(call& c);
  void delete_schedule(call& c);
  void activate_schedule(call& c);
  void deactivate_schedule(call& c);
  void timezones(call& c);
  void openapi(call& c);
  void healthz(call& c);
  std::optional<std::pair<nlohmann::json, std::string>> queue_action(call& c);
  // The two-phase batch API (api_gateway_batches.cpp): phase 1 and phase 2.
  void start_batch(const http_request& req, http_responder respond);
  void stream_batch_items(const std::string& batch_id, const http_request& req, http_responder respond);
  /// Request idempotency (x-trigger-request-idempotency-key, trigger-rest-api.md §3.3): without the
  /// header, `work("", respond)`. With it, once per (scope, key): a key that made something
  /// already is answered with `replay` of it; a request whose key is in flight gets that one's
  /// answer; otherwise `work(key, respond)`, which records the key with what it makes before it
  /// answers.
  void once_per_request_key(const std::string& scope, const http_request& req, http_responder respond,
                            const std::function<http_response(const request_key_record&)>& replay,
                            const std::function<void(const std::string& key, http_responder)>& work);
  /// Authenticates `req` once: `principal` gets the name of the active key it shows (else stays
  /// ""); the 401 to answer with if `required` (and keys are enforced) and it shows none.
  std::optional<http_response> check_key(const http_request& req, bool required, std::string& principal) const;
  run_service& runs_;
  uint64_t max_payload_bytes_;
  api_keys* keys_;
  std::atomic<bool> refusing_{false};
  request_gate request_gate_;
};

/// {"error": msg} with the given status and x-should-retry: false.
http_response error_response(int status, std::string_view msg);

}  // namespace taskhost
