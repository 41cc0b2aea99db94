// The HTTP API: Trigger.dev's REST paths and JSON shapes, mapped onto a run_service.
//
// Routes served (shared/reference/trigger-rest-api.md):
//   POST /api/v1/tasks/{taskId}/trigger   → 200 {"id": "run_...", "isCached"}   (§5.1)
//   GET  /api/v1/runs?filter[..]&page[..] → {"data": [runs], "pagination"}     (§5.4)
//   GET  /api/v3/runs/{runId}             → the run                 (§5.3)
//   POST /api/v2/runs/{runId}/cancel      → 200 {"id": "run_..."}   (§5.5)
//   POST /api/v1/runs/{runId}/replay      → 200 {"id": "run_<new>"} (§5.6)
//   POST /api/v1/runs/{runId}/reschedule  → 200 the run             (§5.7)
//   GET  /api/v1/runs/{runId}/logs        → {"data": [log lines]}
//   GET|POST /api/v1/schedules, GET|PUT|DELETE /api/v1/schedules/{id},
//   POST /api/v1/schedules/{id}/activate|deactivate → ScheduleObject (§5.10)
//   POST /api/v1/waitpoints/tokens, GET /api/v1/waitpoints/tokens[/{id}],
//   POST /api/v1/waitpoints/tokens/{id}/complete → wait tokens (§5.9), each with its callback `url`
//   POST /api/v1/idempotencyKeys/{key}/reset  → {"id": key}                  (§5.8)
//   PUT  /api/v2/packets/{filename}       → {"presignedUrl", "storagePath"} (§4)
//   GET  /api/v1/timezones[?excludeUtc=true] → {"timezones": [...]}
//   GET  /healthz                         → {"ok": true}
// and two routes that carry their own authority, an HMAC in the path (runtime/signed_urls.hpp):
//   PUT  /api/v2/packets/upload/{expires}/{hmac}/{storagePath} → a packet's bytes (the presignedUrl)
//   POST /api/v1/waitpoints/tokens/{id}/callback/{hmac}       → completes the token with the body
// Every other route needs `Authorization: Bearer <key>` with an active API key once the
// deployment has any (api_keys::enforcing): else 401 {"error"} with x-should-retry: false, so the
// SDK throws AuthenticationError at once. A key in the query string is never read.
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

  /// For http_server_options::body_limit_for: a packet upload may be max_packet_bytes; 0 (the
  /// server's limit) for everything else.
  uint64_t body_limit_for(std::string_view method, std::string_view target) const;
  /// For http_server_options::log_path: the path with the HMAC of an upload or callback URL
  /// replaced by "<hmac>", so that the access log holds no usable URL.
  static std::string loggable_path(std::string_view path);
  /// host:port the server is bound to: the URLs handed out to a request without a Host header.
  void set_listen_address(std::string host_port);
  /// /api/v2/packets/upload/{expires}/{hmac}/{storagePath} and
  /// /api/v1/waitpoints/tokens/{id}/callback/{hmac}, as split path segments.
  static bool is_upload_route(const std::vector<std::string_view>& parts);
  static bool is_callback_route(const std::vector<std::string_view>& parts);
  /// Reads the packets uploaded to this gateway's URLs (for resolve_stored_payload): the single
  /// trigger uses it, and so can each item of a batch.
  packet_reader stored_packets() const;

private:
  void trigger(const std::string& task_id, const http_request& req, http_responder respond);
  void list(std::string_view query, http_responder respond);
  void queues(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond);
  void schedules(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond);
  void replay(const std::string& run_id, const http_request& req, http_responder respond);
  void reschedule(const std::string& run_id, const http_request& req, http_responder respond);
  void list_tokens(const http_request& req, http_responder respond);
  /// PUT /api/v2/packets/{filename}: a storagePath and a signed URL to upload its bytes to.
  void create_packet_url(std::string_view encoded_filename, const http_request& req, http_responder respond);
  /// PUT /api/v2/packets/upload/{expires}/{hmac}/{storagePath}: no key; the HMAC must check out.
  void upload_packet(const std::vector<std::string_view>& parts, const http_request& req, http_responder respond);
  /// POST /api/v1/waitpoints/tokens/{id}/callback/{hmac}: no key; the body is the data.
  void token_callback(std::string_view encoded_id, std::string_view hmac, const http_request& req, http_responder respond);
  /// POST /api/v1/idempotencyKeys/{key}/reset {"taskIdentifier"}.
  void reset_idempotency_key(std::string_view encoded_key, const http_request& req, http_responder respond);
  /// Where the URLs handed out to `req` start: http.public_url, else http://<Host>.
  std::string base_url(const http_request& req) const;
  /// A token (or each token of a page's "data") with its callback `url`.
  nlohmann::json with_callback_urls(nlohmann::json body, const http_request& req) const;
  /// The path prefix of http.public_url ("/x"; "" = none).
  std::string_view path_prefix() const { return path_prefix_; }
  /// Authenticates `req` once: `principal` gets the name of the active key it shows (else stays
  /// ""); the 401 to answer with if `required` (and keys are enforced) and it shows none.
  std::optional<http_response> check_key(const http_request& req, bool required, std::string& principal) const;
  run_service& runs_;
  uint64_t max_payload_bytes_;
  api_keys* keys_;
  signed_url_options urls_;
  std::string path_prefix_;
  mutable std::mutex listen_mu_;
  std::string listen_address_;
  std::atomic<bool> refusing_{false};
};

/// {"error": msg} with the given status and x-should-retry: false.
http_response error_response(int status, std::string_view msg);

}  // namespace taskhost
