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
//   POST /api/v3/batches                  → 202 {"id": "batch_...", "runCount", "isCached"}  (§5.2, phase 1)
//   POST /api/v3/batches/{id}/items       → 200 {"id", "itemsAccepted", "itemsDeduplicated", "sealed"} (NDJSON, phase 2)
//   GET  /api/v2/batches/{id}, /api/v1/batches/{id} → the batch (RetrieveBatchV2Response)
//   GET|POST /api/v1/schedules, GET|PUT|DELETE /api/v1/schedules/{id},
//   POST /api/v1/schedules/{id}/activate|deactivate → ScheduleObject (§5.10)
//   GET  /api/v1/timezones[?excludeUtc=true] → {"timezones": [...]}
//   GET  /healthz                         → {"ok": true}
// Every route but those two needs `Authorization: Bearer <key>` with an active API key once the
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

  /// Decodes %XX escapes (task ids arrive encodeURIComponent-ed). Returns false on a bad escape.
  static bool percent_decode(std::string_view in, std::string& out);

private:
  void trigger(const std::string& task_id, const http_request& req, http_responder respond);
  void list(std::string_view query, http_responder respond);
  void queues(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond);
  void schedules(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond);
  void replay(const std::string& run_id, const http_request& req, http_responder respond);
  void reschedule(const std::string& run_id, const http_request& req, http_responder respond);
  // The two-phase batch API (api_gateway_batches.cpp).
  void create_batch(const http_request& req, http_responder respond);
  void batch_items(const std::string& batch_id, const http_request& req, http_responder respond);
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
