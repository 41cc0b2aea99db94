// A running deployment: plugins loaded, one supervisor actor per task, the executor, the run store
// and (optionally) the HTTP API. This is also the embedding API: a C++ program can start a
// deployment from a config object and trigger runs directly. No CAF type appears here.
//
// Example:
//
//   auto cfg = taskhost::config::load_file("config/dev.yaml");
//   taskhost::deployment_runtime rt(cfg);   // loads plugins, spawns actors
//   rt.start_http();                        // optional
//   rt.trigger({.task_id = "hello-world", .payload = {{"message", "hi"}}},
//              [](taskhost::trigger_outcome o) { /* o.run_id */ });
//   rt.shutdown();                          // graceful, per shutdown.grace_period_ms
#pragma once

#include <memory>

#include "runtime/plugin_loader.hpp"
#include "runtime/run_service.hpp"
#include "taskhost/config/deployment.hpp"

namespace taskhost {

class deployment_runtime final : public run_service {
public:
  /// Opens the run store (store.path), loads the plugins (refusals are logged and listed in
  /// plugins()), spawns the actors and recovers the runs the last process left unfinished.
  /// Throws std::runtime_error when the deployment cannot start at all (no plugins_dir, a store
  /// that is corrupt, locked, from a newer taskhost or not writable, an unreadable or malformed
  /// keys file, an unset key variable, no API key with a non-loopback http.listen).
  explicit deployment_runtime(config::deployment cfg);
  ~deployment_runtime() override;

  /// Starts the HTTP API on http.listen. Throws std::runtime_error if it cannot bind. Once any API
  /// key is configured (the store, auth.keys_file, auth.keys_from_env), every route but
  /// GET /api/v1/timezones and /healthz needs `Authorization: Bearer <key>`; without any, the
  /// constructor refuses an http.listen that is not a loopback address.
  void start_http();
  /// The bound HTTP port (after start_http).
  uint16_t http_port() const;

  const plugin_load_report& plugins() const;
  const config::deployment& config() const;

  /// Stops accepting triggers, lets attempts in flight finish within shutdown.grace_period_ms, and
  /// stops the actors and the HTTP server. Returns true if every attempt finished in time.
  /// Idempotent; the destructor calls it.
  bool shutdown();

  // run_service
  void trigger(trigger_input in, std::function<void(trigger_outcome)> done) override;
  std::optional<run_record> get_run(const std::string& id) const override;
  void cancel(const std::string& id, std::function<void(trigger_outcome)> done) override;
  run_list_page list_runs(const run_list_query& q) const override;
  void reschedule(const std::string& id, time_point delay_until, std::function<void(trigger_outcome)> done) override;

  api_answer create_token(const nlohmann::json& options) override;
  api_answer complete_token(const std::string& id, const nlohmann::json& data) override;
  api_answer get_token(const std::string& id) override;
  api_answer list_tokens(const token_list_query& q) override;
  api_answer get_batch(const std::string& id) const override;
  api_answer create_batch(batch_create_input in) override;
  void add_batch_items(const std::string& id, std::vector<batch_item> items, std::function<void(api_answer)> done) override;
  std::optional<request_key_record> find_request_key(const std::string& scope, const std::string& key) const override;
  api_answer list_queues(size_t page, size_t per_page) override;
  api_answer get_queue(const std::string& id) override;
  api_answer pause_queue(const std::string& id, bool pause) override;
  api_answer override_queue(const std::string& id, std::optional<int> limit) override;
  api_answer list_schedules(size_t page, size_t per_page) override;
  api_answer get_schedule(const std::string& id) override;
  api_answer create_schedule(const nlohmann::json& body) override;
  api_answer update_schedule(const std::string& id, const nlohmann::json& body) override;
  api_answer delete_schedule(const std::string& id) override;
  api_answer activate_schedule(const std::string& id, bool active) override;
  api_answer reset_idempotency_key(const std::string& task_id, const std::string& key) override;
  api_answer save_packet(const std::string& storage_path, const std::string& content_type, std::string data) override;
  std::optional<stored_packet> get_packet(const std::string& storage_path) override;
  void packet_used(const std::string& storage_path) override;

  /// The run store's counters (commits, rows written, runs in memory).
  run_store::stats_t store_stats() const;
  /// How new runs were handed over once committed: started by the committing thread itself
  /// (`at_commit`: a small commit of a task with nothing before its code, see create_run), or
  /// sent to their task's supervisor (`to_supervisor`).
  struct start_stats_t {
    uint64_t at_commit = 0;
    uint64_t to_supervisor = 0;
  };
  start_stats_t start_stats() const;

private:
  void open_keys();
  void recover();
  void declare_queues();
  void sync_schedules();
  api_answer save_schedule(const std::string& id, const nlohmann::json& body);
  void cancel_children(const std::string& parent_id);
  /// Records a run and hands it to its task's supervisor once committed (a trigger, a task's child
  /// run, an API batch's item). `done` once: 200 (cached: an earlier run with its idempotency key),
  /// 503 shutting down or the store failing, 400 an unknown queue.
  void create_run(run_record r, std::function<void(create_result)> done);
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace taskhost
