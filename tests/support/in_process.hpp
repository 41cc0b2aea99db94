// Test support: a temp deployment of real plugins, driven in-process through deployment_runtime
// (the embedding API): trigger, cancel, and wait for a run to finish.
#pragma once

#include <chrono>
#include <future>
#include <initializer_list>
#include <string>
#include <thread>

#include "actors/deployment_runtime.hpp"
#include "support/process.hpp"

namespace taskhost::test {

inline std::filesystem::path fixture_plugin(const std::string& name) {
  return std::filesystem::path(TASKHOST_FIXTURE_DIR) / (name + ".so");
}
inline std::filesystem::path built_plugin(const std::string& name) {
  return std::filesystem::path(TASKHOST_PLUGIN_DIR) / (name + ".so");
}

/// A deployment folder in a temp dir holding copies of `plugins`, and a config for it (port 0,
/// `executor_threads` threads, everything else at its default).
struct temp_deployment {
  temp_deployment(std::initializer_list<std::filesystem::path> plugins, unsigned executor_threads) {
    std::filesystem::create_directories(tmp / "plugins");
    for (const auto& p : plugins) std::filesystem::copy_file(p, tmp / "plugins" / p.filename());
    cfg.file = tmp / "deploy.yaml";
    cfg.name = "test";
    cfg.plugins_dir = tmp / "plugins";
    cfg.state_dir = tmp / "state";
    cfg.http.port = 0;
    cfg.executor_threads = executor_threads;
  }
  temp_dir tmp;
  config::deployment cfg;
};

/// Triggers and returns the outcome (the runtime answers through a callback).
inline trigger_outcome trigger_run(deployment_runtime& rt, trigger_input in) {
  std::promise<trigger_outcome> p;
  rt.trigger(std::move(in), [&](trigger_outcome o) { p.set_value(std::move(o)); });
  return p.get_future().get();
}

inline trigger_outcome cancel_run(deployment_runtime& rt, const std::string& id) {
  std::promise<trigger_outcome> p;
  rt.cancel(id, [&](trigger_outcome o) { p.set_value(std::move(o)); });
  return p.get_future().get();
}

/// The run once it reached a final status, or as it is after `timeout`.
inline run_record wait_final(deployment_runtime& rt, const std::string& id,
                             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = rt.get_run(id);
    if (!r) throw std::runtime_error("no such run: " + id);
    if (is_final(r->status) || std::chrono::steady_clock::now() > deadline) return *r;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace taskhost::test
