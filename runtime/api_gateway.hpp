// The HTTP API: Trigger.dev's REST paths and JSON shapes, mapped onto a run_service.
//
// Routes: api_gateway::routes() lists them (a table in api_gateway.cpp); docs/openapi.json
// describes each one and is served at GET /api/openapi.json (a test keeps the two in step).
// Every route but /healthz, /api/v1/timezones and the two signed ones needs `Authorization: Bearer
// <key>` with an active API key once the deployment has any (api_keys::enforcing): else 401
// {"error"} with x-should-retry: false, so the SDK throws AuthenticationError at once. A key in the
// query string is never read. The signed routes carry their own authority, an HMAC in their path
// (runtime/signed_urls.hpp), checked by their function before anything else:
//   PUT  /api/v2/packets/upload/{expires}/{signature}/{storagePath} → a packet's bytes (a presignedUrl)
//   POST /api/v1/waitpoints/tokens/{waitpointId}/callback/{signature} → completes the token with the body
// Errors are {"error": "..."}; 404s and permanent failures carry `x-should-retry: false` so the
// official SDK does not spend 9 s retrying them; a 503 (shutting down, store disk full) carries
// `x-should-retry: true`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/http_server.hpp"
#include "runtime/request_gate.hpp"
#include "runtime/run_service.hpp"
#include "runtime/signed_urls.hpp"

namespace taskhost {

class api_keys;

/// The URLs the gateway hands out that work without a key, and the packets uploaded to them.
struct signed_url_options {
  /// Signs and checks them (the deployment's secret). Null: a random secret of this gateway's own
  /// (its URLs stop working when it goes; for tests).
  std::shared_ptr<const url_signer> signer;
  /// http.public_url ("https://h/x", no trailing '/'): the start of every URL handed out; a
  /// request path that starts with its path is served without that part. "" = http://<Host>.
  std::string public_url;
  uint64_t max_packet_bytes = 64u << 20;                  ///< a larger upload is answered 413
  std::chrono::milliseconds upload_url_ttl{3600 * 1000};  ///< how long a presignedUrl works
};

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
  api_gateway(run_service& runs, uint64_t max_payload_bytes, api_keys* keys = nullptr, signed_url_options urls = {});

  void handle(http_request req, http_responder respond);

  /// Who made `req`: the name of the active API key its Authorization header shows (the key's id
  /// when it has no name; "" when it shows none or no active one). Never the key itself. For the
  /// access log; callable from any thread.
  std::string principal_of(const http_request& req) const;

  /// From now on triggers are answered 503 (the runtime is shutting down); reads keep working.
  void refuse_triggers() { refusing_ = true; }

  /// Decodes %XX escapes (task ids arrive encodeURIComponent-ed). Returns false on a bad escape.
  static bool percent_decode(std::string_view in, std::string& out);

  /// Every route, in the order they are matched. Unknown paths are 404, known paths with another
  /// method 405 with `Allow`.
  static std::vector<api_route> routes();

  struct call;  ///< a request as a route function sees it (its path params decoded)

  /// For http_server_options::body_limit_for, from a request's head: a packet upload may send
  /// max_packet_bytes; a batch's item stream (POST /api/v3/batches/{id}/items) with an API key of
  /// the deployment (or none needed) set_max_batch_body_bytes; anything else 0 (the server's
  /// http.max_body_bytes). Callable from any thread.
  uint64_t body_limit_for(std::string_view method, std::string_view target, std::string_view authorization) const;
  /// http.max_batch_body_bytes (0: a batch's item stream has the server's limit too). Before the
  /// server starts.
  void set_max_batch_body_bytes(uint64_t n) { max_batch_body_bytes_ = n; }
  /// For http_server_options::log_path: the path with the HMAC of an upload or callback URL
  /// replaced by "<hmac>", so that the access log holds no usable URL.
  static std::string loggable_path(std::string_view path);
  /// host:port the server is bound to: the URLs handed out to a request without a Host header.
  void set_listen_address(std::string host_port);
  /// Reads the packets uploaded to this gateway's URLs (for resolve_stored_payload): the single
  /// trigger uses it, and so can each item of a batch.
  packet_reader stored_packets() const;

private:
  struct route_entry;
  static const std::vector<route_entry>& table();
  /// The upload and callback routes, as split path segments (for the access log and body limits).
  static bool is_upload_route(const std::vector<std::string_view>& parts);
  static bool is_callback_route(const std::vector<std::string_view>& parts);
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
  // api_gateway_signed.cpp: packets, token callback URLs, idempotency key reset.
  void create_packet_url(call& c);       ///< PUT /api/v2/packets/{filename}
  void upload_packet(call& c);           ///< PUT /api/v2/packets/upload/{expires}/{signature}/{storagePath} (open)
  void token_callback(call& c);          ///< POST /api/v1/waitpoints/tokens/{waitpointId}/callback/{signature} (open)
  void reset_idempotency_key(call& c);   ///< POST /api/v1/idempotencyKeys/{idempotencyKey}/reset
  // Their work, on the decoded path params (the route functions above pass them on).
  void packet_url(const std::string& filename, const http_request& req, http_responder respond);
  void store_packet(const std::string& expires, const std::string& signature, const std::string& storage_path, const http_request& req,
                    http_responder respond);
  void complete_by_callback(const std::string& token_id, const std::string& signature, const http_request& req, http_responder respond);
  void reset_key(const std::string& key, const http_request& req, http_responder respond);
  /// Where the URLs handed out to `req` start: http.public_url, else http://<Host>.
  std::string base_url(const http_request& req) const;
  /// A token (or each token of a page's "data") with its callback `url`.
  nlohmann::json with_callback_urls(nlohmann::json body, const http_request& req) const;
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
  signed_url_options urls_;
  std::string path_prefix_;  ///< the path of http.public_url ("/x"; "" = none)
  uint64_t max_batch_body_bytes_ = 0;
  /// Whether a request's head allows it a batch's larger body: POST /api/v3/batches/{id}/items by
  /// a caller with a key of the deployment (or when none is needed).
  bool takes_large_body(std::string_view method, std::string_view path, std::string_view authorization) const;
  mutable std::mutex listen_mu_;
  std::string listen_address_;
  std::atomic<bool> refusing_{false};
  request_gate request_gate_;
};

/// The segments of a URL path, empty ones skipped ("/a//b/" → {"a", "b"}); views into `path`.
std::vector<std::string_view> split_path(std::string_view path);

/// {"error": msg} with the given status and x-should-retry: false.
http_response error_response(int status, std::string_view msg);

}  // namespace taskhost
