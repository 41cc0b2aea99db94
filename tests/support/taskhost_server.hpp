// Test support: the real taskhost binary in a temp deployment (integration tests).
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/api_keys.hpp"
#include "runtime/http_client.hpp"
#include "support/process.hpp"

namespace taskhost::test {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

inline const std::string bin = TASKHOST_BIN;

/// A temp deployment with hello.so, the good fixture and every kind of broken plugin.
class deployment_dir {
public:
  /// `extra_fixtures`: more fixture plugins to copy in (by target name, e.g. "fixture_durable").
  explicit deployment_dir(const std::string& extra_yaml = "", const std::vector<std::string>& extra_fixtures = {}) {
    fs::create_directories(tmp / "plugins");
    for (const auto& f : extra_fixtures) fs::copy_file(fixture(f), tmp / "plugins" / (f + ".so"));
    fs::copy_file(fs::path(TASKHOST_PLUGIN_DIR) / "hello.so", tmp / "plugins/hello.so");
    fs::copy_file(fixture("fixture_good"), tmp / "plugins/fixture_good.so");
    fs::copy_file(fixture("fixture_wrong_major"), tmp / "plugins/wrong_major.so");
    fs::copy_file(fixture("fixture_no_entry"), tmp / "plugins/no_entry.so");
    fs::copy_file(fixture("fixture_duplicate"), tmp / "plugins/zz_duplicate.so");
    tmp.write("plugins/x.so", "I am a text file\n");
    tmp.write("deploy.yaml", "name: itest\nplugins_dir: plugins\nhttp:\n  listen: 127.0.0.1:0\n"
                             "defaults:\n  retry: {max_attempts: 2, min_timeout_ms: 0, max_timeout_ms: 0}\n" + extra_yaml);
  }
  static fs::path fixture(const std::string& n) { return fs::path(TASKHOST_FIXTURE_DIR) / (n + ".so"); }
  fs::path config() const { return tmp / "deploy.yaml"; }
  /// Gives the deployment an API key — in `keys` (mode 0600), named by auth.keys_file — which
  /// `server` then sends with every request and CLI command. Without it the deployment has no key
  /// and its loopback server answers without one. Returns the key.
  const std::string& add_key(const std::string& name = "tests") {
    key = taskhost::generate_api_key(false);
    tmp.write("keys", name + ": " + key + "\n");
    fs::permissions(tmp / "keys", fs::perms::owner_read | fs::perms::owner_write);
    std::ofstream(config(), std::ios::app) << "auth:\n  keys_file: keys\n";
    return key;
  }
  temp_dir tmp;
  std::string key;  ///< "" = none
};

/// `taskhost run` in the background; knows its URL once it printed its ready line.
class server {
public:
  /// `env`: "NAME=value" entries added to the server's environment.
  explicit server(const deployment_dir& d, const std::string& log_name = "server.log", const std::vector<std::string>& env = {})
      : err_file(d.tmp / log_name), proc({bin, "run", "--config", d.config().string()}, err_file, env), key(d.key) {
    // 60 s: a liveness bound, not a speed check. Under AddressSanitizer loading one plugin took
    // ~3 s on an idle 2-core host, and with the host busy the ready line once took over 20 s.
    auto line = proc.read_line(60s);
    if (!line) throw std::runtime_error("taskhost did not start:\n" + taskhost::test::read_text(err_file));
    std::smatch m;
    static const std::regex ready(R"(on (http://127\.0\.0\.1:\d+))");
    if (!std::regex_search(*line, m, ready)) throw std::runtime_error("unexpected first line: " + *line);
    url = m[1];
  }
  std::string log() const { return taskhost::test::read_text(err_file); }
  command_result cli(std::vector<std::string> args) {
    args.insert(args.begin(), bin);
    args.push_back("--url");
    args.push_back(url);
    if (!key.empty()) {
      args.push_back("--key");
      args.push_back(key);
    }
    return run_command(args);
  }
  /// Sends the deployment's key (if it has one) with every request of `c`.
  void authorize(http_client& c) const {
    if (!key.empty()) c.set_default_header("authorization", "Bearer " + key);
  }
  /// POST /api/v1/tasks/{task}/trigger; expects 200 and returns the run id.
  std::string trigger(const std::string& task, const json& payload, const json& options = json::object()) {
    http_client c(url);
    authorize(c);
    auto r = c.request("POST", "/api/v1/tasks/" + task + "/trigger", json{{"payload", payload}, {"options", options}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).value("id", "");
  }
  /// One API request; expects status `want` and returns the body as JSON (discarded if not JSON).
  json api(const std::string& method, const std::string& path, const json& body = nullptr, int want = 200) {
    http_client c(url);
    authorize(c);
    auto r = c.request(method, path, body.is_null() ? std::string() : body.dump());
    EXPECT_EQ(r.status, want) << method << " " << path << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  json get_run(const std::string& id) {
    http_client c(url);
    authorize(c);
    return json::parse(c.request("GET", "/api/v3/runs/" + id).body);
  }
  /// The run once it ended, or as it is after `timeout` (60 s: under ThreadSanitizer one attempt
  /// that builds a 3 MB payload took 14 s, and a run may retry).
  json wait_final(const std::string& id, std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto r = get_run(id);
      if (r.value("isCompleted", false) || std::chrono::steady_clock::now() > deadline) return r;
      std::this_thread::sleep_for(5ms);
    }
  }

  fs::path err_file;
  child_process proc;
  std::string url;
  std::string key;  ///< the deployment's key, sent with every request; "" = none
};


}  // namespace taskhost::test
