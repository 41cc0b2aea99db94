// Deployment configuration: the YAML file a deployment is started from, as plain validated structs.
//
// Example:
//
//   auto d = taskhost::config::load_file("config/dev.yaml");   // throws config_error
//   std::cout << d.http.host << ":" << d.http.port;
//
// Every key is documented in config/README.md. Unknown keys, wrong types and out-of-range values
// are errors whose message starts with `file:line:col: `. Relative paths are resolved against the
// folder of the YAML file.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskhost::config {

/// A configuration error; what() is "file:line:col: message" (or "file: message" without a place).
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Trigger.dev's retry options with Trigger.dev's defaults.
struct retry_config {
  int max_attempts = 3;         ///< counts the first attempt; 1..250
  double factor = 2.0;          ///< >= 1
  int64_t min_timeout_ms = 1000;
  int64_t max_timeout_ms = 60000;
  bool randomize = true;
  bool operator==(const retry_config&) const = default;
};

/// Where a key was written, for messages that point back into the file.
struct source_position {
  std::string file;
  int line = 0;    ///< 1-based
  int column = 0;  ///< 1-based
  std::string str() const;  ///< "file:line:col"
};

/// A middleware name as written in the deployment, with its place (for "no such middleware").
struct middleware_ref {
  std::string name;
  source_position position;
};

/// A queue's start-rate cap: at most `limit` runs start in any window of `period`.
struct rate_limit_config {
  int limit = 0;                        ///< 1..1000000
  std::chrono::milliseconds period{0};  ///< > 0 (a duration: "1s", "1m", "1h")
  bool per_key = false;                 ///< true: each concurrency key gets the whole allowance
  bool operator==(const rate_limit_config&) const = default;
};

/// A named queue from the `queues:` section (tasks may also be put on queues their plugin declares).
struct queue_config {
  std::string name;                           ///< [A-Za-z0-9_.-], 1..128 characters
  std::optional<int> concurrency_limit;       ///< runs executing at once, per concurrency key; 0..100000; none = unlimited
  std::optional<int> total_concurrency_limit; ///< across all keys of the queue; 0..100000; none = no cap
  std::optional<rate_limit_config> rate_limit;
  source_position position;                   ///< where its `name` stands
};

/// A declarative schedule from the `schedules:` section: runs of a scheduled task on a cron
/// expression. The cron and the time zone are checked when the deployment starts (and by
/// `taskhost validate`), against the plugins: see validate_schedules in runtime/plugin_loader.
struct schedule_config {
  std::string task;                  ///< a scheduled task (th::scheduled_task)
  std::string cron;                  ///< 5 fields, or 6 with leading seconds
  std::string timezone = "UTC";      ///< IANA name
  std::string key;                   ///< identity across restarts; default the task id
  std::string external_id;           ///< "" = none; given to each run as payload.externalId
  source_position position;          ///< the entry
  source_position task_position;
  source_position cron_position;
  source_position timezone_position;
};

/// Per-task overrides from the `tasks:` section.
struct task_config {
  std::string id;
  retry_config retry;           ///< defaults.retry overlaid with the task's own retry keys
  source_position position;     ///< where the task's key stands, for "no such task" warnings
  std::chrono::milliseconds max_duration{0};  ///< 0 = defaults.max_duration
  std::vector<middleware_ref> middleware;     ///< run inside the global middleware, in this order
  std::string queue;                          ///< tasks.<id>.queue: a queue name; "" = the plugin's choice, else the task's own
  source_position queue_position;             ///< where `queue` stands, for "no such queue"
};

struct http_config {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;         ///< 0 picks a free port (tests)
  uint64_t max_body_bytes = 4u << 20;  ///< request bodies beyond this are answered 413
  /// A batch's item stream (POST /api/v3/batches/{id}/items, an API key's request) may be this
  /// big: up to 1,000 items of up to 128 KiB each (the SDK offloads larger payloads). At least
  /// max_body_bytes.
  uint64_t max_batch_body_bytes = 128u << 20;
  int64_t header_timeout_ms = 10'000;  ///< a request's headers, from its first byte (a new connection: from its accept)
  int64_t body_timeout_ms = 30'000;    ///< a request's body, from the end of its headers; also sending a response
  int64_t idle_timeout_ms = 60'000;    ///< a kept-alive connection with no request in flight
  uint64_t max_connections = 10'000;   ///< open connections at most (the idle longest is closed for a new one)
  bool access_log = true;              ///< one info line per request
  /// While a lone request waits for its answer, a server thread polls for it this long after
  /// handing it over instead of sleeping (0: never polls).
  int64_t busy_poll_us = 200;
  /// http.public_url: where clients reach this server ("https://tasks.example.com/x"), without a
  /// trailing '/'. The URLs taskhost hands out (packet uploads, token callbacks) start with it,
  /// and a request whose path starts with its path is served with that part removed. "" = the
  /// URLs are built from each request's Host header (http://<host>).
  std::string public_url;
};

struct store_config {
  std::filesystem::path path;        ///< absolute, or ":memory:"; default <state_dir>/runs.db
  bool full_durability = false;      ///< durability: full (synchronous=FULL) vs normal
  double retention_days = 30;        ///< final runs older than this are purged
};

/// Where the API keys that are not in the store come from (`auth:`). Keys themselves never appear
/// in the YAML: the file and the variables are read when the deployment starts
/// (runtime/api_keys.hpp), so that this struct holds no secret.
struct auth_config {
  std::filesystem::path keys_file;      ///< absolute; empty = none. One key per line, `name: ` prefix optional
  source_position keys_file_position;
  struct env_ref {
    std::string name;                   ///< an environment variable holding one key
    source_position position;
  };
  std::vector<env_ref> keys_from_env;
};

struct log_config {
  std::string level = "info";   ///< trace | debug | info | warn | error
  std::string format = "text";  ///< text | json
};

struct deployment {
  std::filesystem::path file;        ///< the YAML file (absolute)
  std::string name;
  std::filesystem::path plugins_dir; ///< absolute
  std::filesystem::path state_dir;   ///< absolute; default <yaml folder>/.taskhost
  http_config http;
  log_config log;
  unsigned executor_threads = 0;     ///< threads kept ready; 0 = automatic (see config/README.md)
  unsigned executor_max_threads = 0; ///< the most the executor grows to when threads block; 0 = automatic
  int64_t shutdown_grace_ms = 30000;
  uint64_t max_payload_bytes = 3u << 20;
  uint64_t max_output_bytes = 10u << 20;
  uint64_t max_packet_bytes = 64u << 20;         ///< limits.max_packet_bytes: an uploaded packet (offloaded payload)
  int64_t packet_ttl_ms = 24LL * 3600 * 1000;    ///< limits.packet_ttl_ms: an unused packet is deleted after it
  int64_t packet_upload_url_ttl_ms = 3600 * 1000;  ///< limits.packet_upload_url_ttl_ms: an upload URL works this long
  /// Suspended executions of a task kept in memory while their runs wait (waits.resident_per_task);
  /// beyond it the longest-waiting are dropped and replayed from their journal when they resume.
  size_t resident_waits_per_task = 256;
  /// power.cpu_latency_us: a CPU latency request (Linux PM QoS) held while the deployment runs;
  /// none = no request. 0 keeps idle CPUs polling, so that a thread handed a run wakes at once.
  std::optional<int32_t> cpu_latency_us;
  store_config store;
  auth_config auth;
  retry_config default_retry;
  std::chrono::milliseconds default_max_duration{0};  ///< 0 = no limit
  std::vector<middleware_ref> middleware;              ///< global middleware, outermost first
  std::map<std::string, task_config> tasks;
  std::vector<queue_config> queues;                    ///< in file order; names unique
  std::vector<schedule_config> schedules;              ///< in file order; keys unique

  /// The retry policy of a task: its override if the deployment has one, else defaults.retry.
  const retry_config& retry_for(const std::string& task_id) const;
  /// The YAML's max duration of a task (tasks.<id>.max_duration, else defaults.max_duration);
  /// 0 = no limit.
  std::chrono::milliseconds max_duration_for(const std::string& task_id) const;
};

/// Parses and validates a deployment file. Throws config_error.
deployment load_file(const std::filesystem::path& file);

/// Parses YAML text; `file` names it in messages and its folder anchors relative paths.
deployment load_string(const std::string& yaml, const std::filesystem::path& file);

}  // namespace taskhost::config
