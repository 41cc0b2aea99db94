// taskhost C++ client — trigger and manage runs from a C++ backend, over taskhost's HTTP API
// (Trigger.dev's REST paths and JSON shapes).
//
// Example:
//
//   #include <taskhost/client.hpp>
//   namespace api = taskhost::api;
//
//   taskhost::client tc = taskhost::client::from_env();  // $TASKHOST_API_URL, $TASKHOST_API_KEY
//   api::run_handle h = tc.trigger("hello-world", {{"message", "Hello world!"}}, {.tags = {"user:1"}});
//   api::run run = tc.wait_for_completion(h.id, std::chrono::minutes(1));
//   if (run.is_success()) std::cout << run.output.dump() << "\n";   // {"echo":"Hello world!"}
//
//   try {
//     tc.retrieve("run_nope");
//   } catch (const api::not_found_error& e) {   // e.status() == 404, e.error_message() "Run not found: ..."
//   } catch (const api::connection_error& e) {  // no answer, after the retries
//   }
//
// More: batch_trigger (one task or many, ≤ 1,000 items), list / for_each_run (filters, cursor
// pages), cancel, replay, reschedule, logs, wait tokens (create_token, complete_token,
// retrieve_token, list_tokens), schedules and queues.
//
// Build: find_package(taskhost) and target_link_libraries(app PRIVATE taskhost::client) (a static
// library; it needs nlohmann-json and threads, nothing of the server).
//
// Errors mirror the official SDK's: api_error (status, the answer's {"error"} message, body,
// headers) with a subclass per status, connection_error when no answer came, invalid_response_error
// for a 2xx answer that is not what the API promises. Calls are retried like the SDK's: on connection
// errors, 408, 409, 429 and ≥ 500 — unless the answer says `x-should-retry: false` — and on any
// answer that says `x-should-retry: true`; with bounded attempts and backoff (retry_options). Every
// POST carries one `x-trigger-request-idempotency-key` per call, the same on each retry, so a server
// that honours it makes a retried trigger safe.
//
// Threads: a client may be shared; its calls are serialized on its one kept-alive connection (a
// mutex held per request, not while it sleeps between retries or polls). For calls in parallel, use
// one client per thread. A client is movable, not copyable; a moved-from client may only be
// assigned to or destroyed. Calls block the calling thread (no callbacks, no threads of its own).
//
// Only http:// URLs (put a TLS proxy in front of a remote taskhost and reach it over loopback, or
// add HTTPS here later).
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace taskhost {

using json = nlohmann::json;  // the same alias as the plugin SDK's

namespace api {

using time_point = std::chrono::system_clock::time_point;

/// RFC 3339 UTC with milliseconds, "2026-12-01T10:00:00.123Z" (what the API writes).
std::string format_time(time_point t);
/// An RFC 3339 date ("...Z" or "+01:00", fractions optional) or epoch milliseconds; nullopt if
/// it is neither.
std::optional<time_point> parse_time(const json& v);

/// A length of time or an instant, as the API takes it for delay, ttl, timeouts and key TTLs: the
/// API's text ("30s", "1h30m", "2d", an ISO date) or a C++ value — a duration (whole seconds,
/// rounded up; negative counts as 0) or a system_clock time. Empty means "not set".
class time_spec {
public:
  time_spec() = default;
  time_spec(const char* text) : text_(text ? text : "") {}
  time_spec(std::string text) : text_(std::move(text)) {}
  template <class Rep, class Period>
  time_spec(std::chrono::duration<Rep, Period> d) : text_(seconds_text(std::chrono::ceil<std::chrono::seconds>(d).count())) {}
  time_spec(time_point t) : text_(format_time(t)) {}
  const std::string& text() const { return text_; }
  bool empty() const { return text_.empty(); }

private:
  static std::string seconds_text(long long s) { return std::to_string(s < 0 ? 0 : s) + "s"; }
  std::string text_;
};

// ---------------------------------------------------------------------------------------------
// Errors

/// Everything the client throws for a failed call derives from this (caller mistakes, such as an
/// empty batch, are std::invalid_argument).
class client_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// No answer: the host does not resolve, the connection was refused, timed out or broke — after
/// the retries. what() names the URL and says how many attempts were made.
class connection_error : public client_error {
public:
  connection_error(const std::string& what, int attempts) : client_error(what), attempts_(attempts) {}
  int attempts() const { return attempts_; }

private:
  int attempts_;
};

/// An answer with a status outside 2xx (after the retries, when the status is retried).
/// what() is "<status> <message>", as the SDK's ApiError: "404 Run not found: run_x".
class api_error : public client_error {
public:
  api_error(int status, std::string message, json body, std::map<std::string, std::string> headers);
  int status() const { return status_; }
  /// The answer's {"error"}: a string, or an object's "message"; else the start of the body.
  const std::string& error_message() const { return message_; }
  const json& body() const { return body_; }  ///< the parsed body (discarded if not JSON)
  const std::map<std::string, std::string>& headers() const { return headers_; }  ///< names lower-cased

private:
  int status_;
  std::string message_;
  json body_;
  std::map<std::string, std::string> headers_;
};

class bad_request_error : public api_error { using api_error::api_error; };          ///< 400
class authentication_error : public api_error { using api_error::api_error; };       ///< 401
class permission_denied_error : public api_error { using api_error::api_error; };    ///< 403
class not_found_error : public api_error { using api_error::api_error; };            ///< 404
class conflict_error : public api_error { using api_error::api_error; };             ///< 409
class unprocessable_entity_error : public api_error { using api_error::api_error; }; ///< 422
class internal_server_error : public api_error { using api_error::api_error; };      ///< ≥ 500
/// 429; millis_until_reset from `x-ratelimit-reset` (epoch ms) when the server sent it.
class rate_limit_error : public api_error {
public:
  using api_error::api_error;
  std::optional<std::chrono::milliseconds> millis_until_reset() const;
};

/// A 2xx answer that is not the JSON the API promises (not JSON, or a required field missing).
/// Not retried.
class invalid_response_error : public client_error {
public:
  invalid_response_error(int status, const std::string& what) : client_error(what), status_(status) {}
  int status() const { return status_; }

private:
  int status_;
};

// ---------------------------------------------------------------------------------------------
// Runs

enum class run_status {
  pending_version, queued, dequeued, executing, waiting, delayed,        // not final
  completed, canceled, failed, crashed, system_failure, expired, timed_out,  // final
  unknown,  ///< a status this client does not know (a newer server)
};
/// The API's name ("COMPLETED"), and back (unknown for anything else).
std::string_view to_string(run_status s);
run_status parse_run_status(std::string_view s);
/// Final: the run will not change any more (COMPLETED, CANCELED, FAILED, CRASHED, SYSTEM_FAILURE,
/// EXPIRED, TIMED_OUT).
bool is_final(run_status s);
bool is_success(run_status s);  ///< COMPLETED

struct run_error {
  std::string message, name, stack_trace;
};

/// A run as GET /api/v3/runs/{id} (or an item of GET /api/v1/runs) describes it. Fields the answer
/// does not carry stay empty; `raw` keeps the whole JSON (attempts, relatedRuns, waitingFor, ...).
struct run {
  std::string id;
  std::string task;  ///< taskIdentifier
  run_status status = run_status::unknown;
  std::string status_text;  ///< as the server wrote it
  json payload;             ///< null in list items
  json output;              ///< the task's return value once COMPLETED; else null
  std::optional<run_error> error;
  std::vector<std::string> tags;
  json metadata;  ///< an object, or null
  std::string idempotency_key, ttl;
  time_point created_at{}, updated_at{};
  std::optional<time_point> started_at, finished_at, delayed_until, expired_at;
  int attempt_count = 0;
  std::chrono::milliseconds duration{0};  ///< time spent executing
  std::string batch_id, parent_id, root_id, schedule_id;
  int depth = 0;
  json raw;

  bool is_final() const { return api::is_final(status); }
  bool is_success() const { return api::is_success(status); }
  /// Throws invalid_response_error if `j` is not an object with a string id.
  static run from_json(const json& j);
};

struct run_handle {
  std::string id;
  bool is_cached = false;  ///< an idempotency key matched a live run: this is that run
};

/// Options of a trigger (the API's `options`); unset ones are not sent.
struct trigger_options {
  std::vector<std::string> tags;                   ///< ≤ 10, each 1-128 characters
  time_spec delay;                                 ///< "30s", "1h30m", a date, std::chrono::minutes(5), ...
  time_spec ttl;                                   ///< expire if not started this long after it was queued
  std::string idempotency_key;                     ///< a live run of the task with this key is returned instead
  time_spec idempotency_key_ttl;                   ///< how long the key holds (default 30 days)
  std::optional<int> max_attempts;                 ///< 1-250
  std::optional<std::chrono::duration<double>> max_duration;  ///< per attempt, ≥ 5 s
  std::string queue;                               ///< a declared queue
  std::string concurrency_key;
  std::optional<std::chrono::duration<double>> priority;  ///< queue-time credit
  json metadata;                                   ///< an object, or null for none
  json extra = json::object();                     ///< any other option, sent as is ({"machine": ...})
};

/// Filters of list() (GET /api/v1/runs). Several values of one filter match any of them.
struct run_filter {
  std::vector<run_status> status;
  std::vector<std::string> tasks, tags;
  std::optional<time_point> created_from, created_to;
  std::string period;    ///< "7d": created within the last ...
  std::string schedule;  ///< sched_...
  std::string batch;     ///< batch_...
  int page_size = 0;     ///< 1-100; 0: the server's default (25)
  std::string after;     ///< a page's `next` cursor
  std::string before;    ///< a page's `previous` cursor
};

struct run_page {
  std::vector<run> data;  ///< newest first
  std::string next;       ///< "" on the last page
  std::string previous;
  json raw;
};

/// One line a run logged through ctx.logger (GET /api/v1/runs/{id}/logs).
struct log_line {
  std::string time, level, message;
  int attempt = 0;
  json attributes;  ///< an object, or null
};
struct run_logs {
  std::vector<log_line> lines;
  bool truncated = false;  ///< the run logged more than the server keeps
  json raw;
};

/// wait_for_completion() gave up: the run was not final within the timeout. last_run() is the
/// run as last seen.
class wait_timeout_error : public client_error {
public:
  wait_timeout_error(const std::string& what, run last) : client_error(what), last_(std::move(last)) {}
  const run& last_run() const { return last_; }

private:
  run last_;
};

// ---------------------------------------------------------------------------------------------
// Batches

struct batch_item {
  std::string task;
  json payload;
  trigger_options options;
};

struct batch_options {
  std::string idempotency_key;  ///< the same key again returns the same batch (is_cached)
  time_spec idempotency_key_ttl;
};

struct batch_handle {
  std::string id;
  size_t run_count = 0;
  bool is_cached = false;
  std::vector<std::string> run_ids;  ///< in item order, when the server told them
};

/// A batch as GET /api/v1/batches/{id} describes it.
struct batch_info {
  std::string id, status;
  size_t run_count = 0;
  std::vector<std::string> runs;
  json raw;
};

/// batch_trigger() failed. phase() is "create" (POST /api/v3/batches: nothing was triggered) or
/// "items" (POST /api/v3/batches/{id}/items, batch_id() set); cause() is the error behind it
/// (an api_error, connection_error, ...; rethrow it to inspect).
class batch_trigger_error : public client_error {
public:
  batch_trigger_error(const std::string& what, std::string phase, std::string batch_id, std::exception_ptr cause)
      : client_error(what), phase_(std::move(phase)), batch_id_(std::move(batch_id)), cause_(std::move(cause)) {}
  const std::string& phase() const { return phase_; }
  const std::string& batch_id() const { return batch_id_; }
  std::exception_ptr cause() const { return cause_; }

private:
  std::string phase_, batch_id_;
  std::exception_ptr cause_;
};

// ---------------------------------------------------------------------------------------------
// Wait tokens

enum class token_status { waiting, completed, timed_out, unknown };
std::string_view to_string(token_status s);
token_status parse_token_status(std::string_view s);

struct token_options {
  time_spec timeout;             ///< none: waits until completed
  std::string idempotency_key;   ///< the same key again returns the same token (is_cached)
  time_spec idempotency_key_ttl;
  std::vector<std::string> tags;
};

struct token {
  std::string id, url;
  token_status status = token_status::unknown;
  std::vector<std::string> tags;
  time_point created_at{};
  std::optional<time_point> completed_at, timeout_at;
  std::string idempotency_key;
  json output;  ///< the data it was completed with (decoded from the API's string packet if need be)
  bool output_is_error = false;
  bool is_cached = false;  ///< create_token only
  json raw;
  static token from_json(const json& j);
};

struct token_filter {
  std::vector<token_status> status;
  int page_size = 0;
  std::string after;
};

struct token_page {
  std::vector<token> data;  ///< newest first
  std::string next, previous;
  json raw;
};

// ---------------------------------------------------------------------------------------------
// Schedules and queues

struct schedule_options {
  std::string task, cron;
  std::string timezone;           ///< IANA name; "" = UTC
  std::string external_id;
  std::string deduplication_key;  ///< create: the same key updates that schedule
};

struct schedule {
  std::string id;
  std::string type;  ///< "DECLARATIVE" (the deployment's) or "IMPERATIVE" (the API's)
  std::string task, cron, cron_description, timezone, external_id, deduplication_key;
  bool active = false;
  std::optional<time_point> next_run;
  json raw;
  static schedule from_json(const json& j);
};

/// Trigger.dev's offset pages (schedules and queues): page numbers from 1.
template <class T>
struct offset_page {
  std::vector<T> data;
  int current_page = 1, total_pages = 1, count = 0;
  json raw;
  bool has_next() const { return current_page < total_pages; }
};

struct queue {
  std::string id;    ///< its name, or task/<task id>
  std::string name;
  std::string type;  ///< "task" or "custom"
  int running = 0, queued = 0;
  bool paused = false;
  std::optional<int> concurrency_limit;     ///< none: unlimited
  std::optional<int> concurrency_override;  ///< set by override_queue_concurrency
  json raw;
  static queue from_json(const json& j);
};

// ---------------------------------------------------------------------------------------------
// The client

/// Retries of one call (the official SDK's defaults). A 429 with `x-ratelimit-reset` waits until
/// then instead (plus up to a second), within the same attempts.
struct retry_options {
  int max_attempts = 5;  ///< including the first; 1 = no retries
  std::chrono::milliseconds min_delay{1000};
  std::chrono::milliseconds max_delay{30'000};
  double factor = 1.6;
  bool randomize = false;  ///< multiply each delay by a random factor in [1, 2)
};

struct client_options {
  retry_options retry;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};  ///< to send a request and read its answer
  std::string user_agent = "taskhost-client";
};

class client {
public:
  /// `url` like "http://127.0.0.1:8080" (a path prefix is kept); `api_key` is sent as
  /// `authorization: Bearer <key>` ("" sends none: a taskhost without keys, on loopback).
  /// Throws std::invalid_argument for a URL that is not http://host[:port][/prefix].
  client(std::string url, std::string api_key, client_options options = {});
  /// The URL from $TASKHOST_API_URL, else $TRIGGER_API_URL, else http://127.0.0.1:8080; the key
  /// from $TASKHOST_API_KEY, else $TRIGGER_SECRET_KEY, else none.
  static client from_env(client_options options = {});
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  const std::string& url() const;
  bool has_key() const;

  // Runs ---------------------------------------------------------------------------------------
  /// POST /api/v1/tasks/{task}/trigger; returns once the run is committed.
  run_handle trigger(std::string_view task, const json& payload, const trigger_options& options = {});
  /// One run per item (one task or several), ≤ 1,000 items, through the two-phase batch API:
  /// POST /api/v3/batches, then the items as NDJSON to /api/v3/batches/{id}/items (re-sent until
  /// the server says the batch is sealed, within the retries). run_ids come from the answer, else
  /// from GET /api/v1/batches/{id}. A cached batch (same idempotency key) is not sent again.
  batch_handle batch_trigger(const std::vector<batch_item>& items, const batch_options& options = {});
  /// The same for one task: one run per payload, all with `options`.
  batch_handle batch_trigger(std::string_view task, const std::vector<json>& payloads, const trigger_options& options = {},
                             const batch_options& batch = {});
  batch_info retrieve_batch(std::string_view batch_id);

  run retrieve(std::string_view run_id);
  /// One page; pass page.next as filter.after for the next.
  run_page list(const run_filter& filter = {});
  /// Every run the filter matches, page after page; `fn` returns false to stop.
  void for_each_run(run_filter filter, const std::function<bool(const run&)>& fn);
  /// Cancels a run (a finished run is left as it is).
  void cancel(std::string_view run_id);
  /// A new run of the same task with the same payload and tags; `overrides` replace options
  /// (payload, tags, metadata, delay, ...). Returns the new run.
  run_handle replay(std::string_view run_id, const json& overrides = json::object());
  /// Moves a DELAYED run (bad_request_error otherwise); returns it with its new delayed_until.
  run reschedule(std::string_view run_id, const time_spec& delay);
  run_logs logs(std::string_view run_id);
  /// Polls the run until it is final and returns it; throws wait_timeout_error after `timeout`.
  /// It asks at once, then after 10 ms, the gaps doubling up to `poll_interval`. A run that failed
  /// is returned, not thrown: check run.is_success().
  run wait_for_completion(std::string_view run_id, std::chrono::milliseconds timeout = std::chrono::minutes(10),
                          std::chrono::milliseconds poll_interval = std::chrono::milliseconds(500));

  // Wait tokens --------------------------------------------------------------------------------
  token create_token(const token_options& options = {});
  /// Completes a token: the runs waiting for it resume with `data`. An unknown token is a
  /// not_found_error, one already completed or timed out a conflict_error.
  void complete_token(std::string_view token_id, const json& data = nullptr);
  token retrieve_token(std::string_view token_id);
  token_page list_tokens(const token_filter& filter = {});

  // Schedules ----------------------------------------------------------------------------------
  schedule create_schedule(const schedule_options& options);
  schedule retrieve_schedule(std::string_view schedule_id);
  /// Replaces an IMPERATIVE schedule (task, cron, timezone, external_id).
  schedule update_schedule(std::string_view schedule_id, const schedule_options& options);
  void delete_schedule(std::string_view schedule_id);
  schedule activate_schedule(std::string_view schedule_id);
  schedule deactivate_schedule(std::string_view schedule_id);
  /// One page (oldest first); per_page ≤ 100, 0: the server's default (20).
  offset_page<schedule> list_schedules(int page = 1, int per_page = 0);
  std::vector<schedule> list_all_schedules();
  /// IANA time zone names the server knows.
  std::vector<std::string> timezones(bool exclude_utc = false);

  // Queues (a queue id is its name, or task/<task id>) -----------------------------------------
  offset_page<queue> list_queues(int page = 1, int per_page = 0);
  std::vector<queue> list_all_queues();
  queue retrieve_queue(std::string_view queue_id);
  queue pause_queue(std::string_view queue_id);
  queue resume_queue(std::string_view queue_id);
  /// Replaces the queue's concurrency limit (0-100,000) until reset_queue_concurrency.
  queue override_queue_concurrency(std::string_view queue_id, int limit);
  queue reset_queue_concurrency(std::string_view queue_id);

  // Anything else --------------------------------------------------------------------------------
  /// One call to any path of the API, with the client's headers, retries and errors: the 2xx
  /// answer's JSON. POSTs get a request idempotency key. `path` includes the query string.
  json request(std::string_view method, const std::string& path, const json& body = nullptr);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace api

/// taskhost::client — the class most code names.
using client = api::client;

}  // namespace taskhost
