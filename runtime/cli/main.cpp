// The taskhost command line: run a deployment, check one, and talk to a running one over HTTP
// (every HTTP command through taskhost::client, client/include/taskhost/client.hpp).
// `taskhost --help` lists the commands; README.md shows them in use.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>
#include <taskhost/client.hpp>

#include "actors/deployment_runtime.hpp"
#include "runtime/allocator.hpp"
#include "runtime/api_keys.hpp"
#include "runtime/ids.hpp"
#include "runtime/log.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/run.hpp"
#include "runtime/run_store.hpp"
#include "runtime/scheduler.hpp"
#include "taskhost/config/deployment.hpp"

#ifndef TASKHOST_VERSION
#define TASKHOST_VERSION "0.0.0"
#endif

namespace fs = std::filesystem;
namespace api = taskhost::api;
using json = nlohmann::json;

namespace {

constexpr int exit_ok = 0, exit_failed = 1, exit_usage = 2;

/// A client-side failure: one line on stderr, exit 2.
struct cli_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The server URL: --url, else $TASKHOST_URL, else the C++ client's variables ($TASKHOST_API_URL,
/// $TRIGGER_API_URL), else http://127.0.0.1:8080.
std::string default_url() {
  for (const char* var : {"TASKHOST_URL", "TASKHOST_API_URL", "TRIGGER_API_URL"})
    if (const char* u = std::getenv(var); u && *u) return u;
  return "http://127.0.0.1:8080";
}

/// The API key client commands send: --key, else $TASKHOST_API_KEY, else $TRIGGER_SECRET_KEY
/// ("" = none). Set once by main() after parsing.
std::string request_key;

std::string default_key() {
  for (const char* var : {"TASKHOST_API_KEY", "TRIGGER_SECRET_KEY"})
    if (const char* k = std::getenv(var); k && *k) return k;
  return "";
}

/// The client every HTTP command goes through. Fewer, shorter retries than a backend's: a person
/// waits at the terminal (a refused connection is reported after about half a second).
taskhost::client make_client(const std::string& url) {
  api::client_options o;
  o.retry = {.max_attempts = 3, .min_delay = std::chrono::milliseconds(150), .max_delay = std::chrono::seconds(2), .factor = 2};
  o.user_agent = "taskhost-cli/" TASKHOST_VERSION;
  return taskhost::client(url, request_key, o);
}

/// Runs one client call; an error answer becomes "WHAT: STATUS MESSAGE" (with a hint for 401).
/// Connection errors pass through as they are (they name the URL).
template <class F>
auto api_call(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const api::api_error& e) {
    std::string msg = e.what();
    if (e.status() == 401)
      msg += request_key.empty() ? " (no key was sent: pass --key, or set $TASKHOST_API_KEY or $TRIGGER_SECRET_KEY)"
                                 : " (the key sent is not an active key of this deployment: see taskhost keys list)";
    throw cli_error(what + ": " + msg);
  } catch (const api::invalid_response_error& e) {
    throw cli_error(what + ": the server's answer is not what the API promises: " + e.what());
  }
}

/// "A,B" and repeated flags alike: every comma-separated value.
std::vector<std::string> split_values(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values)
    for (size_t i = 0; i <= v.size();) {
      size_t j = std::min(v.find(',', i), v.size());
      if (j > i) out.push_back(v.substr(i, j - i));
      i = j + 1;
    }
  return out;
}

std::string str(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }

void print_run(const json& run) {
  std::cout << "run      " << str(run, "id") << "\n"
            << "task     " << str(run, "taskIdentifier") << "\n"
            << "status   " << str(run, "status") << "\n"
            << "created  " << str(run, "createdAt") << "\n";
  if (run.contains("startedAt")) std::cout << "started  " << str(run, "startedAt") << "\n";
  if (run.contains("finishedAt")) std::cout << "finished " << str(run, "finishedAt") << "\n";
  if (run.contains("delayedUntil")) std::cout << "delayed  until " << str(run, "delayedUntil") << "\n";
  if (run.contains("ttl")) std::cout << "ttl      " << str(run, "ttl") << "\n";
  if (run.contains("expiredAt")) std::cout << "expired  " << str(run, "expiredAt") << "\n";
  if (run.contains("idempotencyKey")) std::cout << "key      " << str(run, "idempotencyKey") << "\n";
  if (run.contains("tags") && !run["tags"].empty()) std::cout << "tags     " << run["tags"].dump() << "\n";
  if (run.contains("metadata")) std::cout << "metadata " << run["metadata"].dump() << "\n";
  std::cout << "payload  " << run.value("payload", json()).dump() << "\n";
  if (run.contains("output")) std::cout << "output   " << run["output"].dump() << "\n";
  if (run.contains("error")) std::cout << "error    " << str(run["error"], "name") << ": " << str(run["error"], "message") << "\n";
  if (run.contains("attempts"))
    for (const auto& a : run["attempts"]) {
      std::cout << "attempt " << a.value("number", 0) << "  " << str(a, "status") << "  " << str(a, "startedAt");
      if (a.contains("durationMs")) std::cout << "  " << a["durationMs"].get<int64_t>() << " ms";
      if (a.contains("error")) std::cout << "  " << str(a["error"], "message");
      std::cout << "\n";
      if (a.contains("stages") && a["stages"].size() > 1) {  // with hooks: which stage did what
        std::cout << "          ";
        for (const auto& st : a["stages"]) std::cout << " " << str(st, "name") << (st.value("ok", false) ? " ok" : " FAILED");
        std::cout << "\n";
      }
    }
}

int cmd_run(const std::string& config_file) {
  // Block the stop signals in every thread (threads inherit the mask), then wait for them here.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout or socket is an error to handle, not a death

  auto cfg = taskhost::config::load_file(config_file);
  taskhost::log::setup(cfg.log.level, cfg.log.format);
  taskhost::deployment_runtime rt(std::move(cfg));
  try {
    rt.start_http();
  } catch (const std::exception& e) {
    std::cerr << "taskhost: " << e.what() << "\n";
    return exit_usage;
  }
  std::cout << "taskhost: deployment '" << rt.config().name << "' serving " << rt.plugins().tasks.size()
            << " task(s) on http://" << rt.config().http.host << ":" << rt.http_port() << std::endl;
  int sig = 0;
  sigwait(&sigs, &sig);
  taskhost::log::info("signal received", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  bool clean = rt.shutdown();
  if (!clean) {
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(exit_ok);  // attempts still blocked in user code are abandoned (documented)
  }
  return exit_ok;
}

/// Loads config and plugins without starting anything (plugins copied into a temporary cache).
int cmd_check(const std::string& config_file, bool list) {
  auto cfg = taskhost::config::load_file(config_file);
  taskhost::log::setup("error", "text");
  fs::path cache = fs::temp_directory_path() / ("taskhost-validate-" + std::to_string(::getpid()));
  taskhost::plugin_load_report report;
  try {
    report = taskhost::load_plugins(cfg.plugins_dir, cache);
  } catch (const std::exception& e) {
    fs::remove_all(cache);
    std::cerr << cfg.file.string() << ": " << e.what() << "\n";
    return exit_failed;
  }
  fs::remove_all(cache);
  if (list) {
    for (const auto& p : report.plugins) {
      std::cout << p.name << " " << p.version << "  (ABI " << p.abi_major << "." << p.abi_minor << ", "
                << p.file.string() << ")\n";
      for (const auto& t : p.tasks)
        std::cout << "  " << t.id << (t.description.empty() ? "" : "  — " + t.description) << "\n";
      for (const auto& m : p.middleware) std::cout << "  middleware " << m.name << "\n";
      for (const auto& h : p.hooks)
        if (h.task_id.empty()) std::cout << "  global hook " << taskhost::hook_kind_name(h.kind) << " (" << h.name << ")\n";
    }
  }
  for (const auto& r : report.refused) std::cerr << r.file.string() << ": refused: " << r.reason << "\n";
  auto unknown = taskhost::unknown_middleware(cfg, report);
  for (auto& u : taskhost::unknown_queues(cfg, report)) unknown.push_back(std::move(u));
  for (auto& u : taskhost::schedule_config_errors(cfg, report)) unknown.push_back(std::move(u));
  try {
    taskhost::read_configured_keys(cfg.auth);  // the keys file and variables, as a start reads them
  } catch (const taskhost::config::config_error& e) {
    unknown.push_back(e.what());
  }
  if (!unknown.empty()) {
    for (const auto& u : unknown) std::cerr << u << "\n";
    return exit_usage;
  }
  for (const auto& [id, t] : cfg.tasks)
    if (!report.tasks.count(id))
      std::cerr << t.position.str() << ": warning: tasks." << id << " configures a task that no plugin provides\n";
  for (const auto& s : cfg.schedules)
    if (!report.tasks.count(s.task))
      std::cerr << s.task_position.str() << ": warning: a schedule names task '" << s.task << "', which no plugin provides\n";
  if (!list)
    std::cout << cfg.file.string() << ": ok — " << report.plugins.size() << " plugin(s), " << report.tasks.size()
              << " task(s)" << (report.refused.empty() ? "" : ", " + std::to_string(report.refused.size()) + " refused")
              << "\n";
  return report.refused.empty() ? exit_ok : exit_failed;
}

/// The trigger options the CLI takes, as the client's.
struct trigger_flags {
  int max_attempts = 0;
  double max_duration_s = 0;
  std::vector<std::string> tags;
  std::string delay, ttl, idempotency_key, idempotency_key_ttl, metadata, queue, concurrency_key;
  double priority_s = 0;
  api::trigger_options options() const {
    api::trigger_options o;
    if (max_attempts > 0) o.max_attempts = max_attempts;
    if (max_duration_s > 0) o.max_duration = std::chrono::duration<double>(max_duration_s);
    o.tags = tags;
    o.delay = delay;
    o.ttl = ttl;
    o.idempotency_key = idempotency_key;
    o.idempotency_key_ttl = idempotency_key_ttl;
    o.queue = queue;
    o.concurrency_key = concurrency_key;
    if (priority_s > 0) o.priority = std::chrono::duration<double>(priority_s);
    if (!metadata.empty()) {
      o.metadata = json::parse(metadata, nullptr, false);
      if (o.metadata.is_discarded()) throw cli_error("--metadata is not valid JSON: " + metadata);
    }
    return o;
  }
};

int cmd_trigger(const std::string& url, const std::string& task, const std::string& payload_text, bool wait,
                const trigger_flags& flags, double timeout_s) {
  json payload;
  if (!payload_text.empty()) {
    payload = json::parse(payload_text, nullptr, false);
    if (payload.is_discarded()) throw cli_error("the payload is not valid JSON: " + payload_text);
  }
  auto c = make_client(url);
  auto handle = api_call("trigger " + task, [&] { return c.trigger(task, payload, flags.options()); });
  std::cout << handle.id << (handle.is_cached ? "  (existing run for this idempotency key)" : "") << std::endl;
  if (!wait) return exit_ok;
  api::run run;
  try {
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(timeout_s));
    run = api_call("runs get " + handle.id, [&] { return c.wait_for_completion(handle.id, timeout, std::chrono::milliseconds(250)); });
  } catch (const api::wait_timeout_error& e) {
    throw cli_error("run " + handle.id + " did not finish within " + std::to_string(int(timeout_s)) + " s (status " +
                    e.last_run().status_text + ")");
  }
  std::cout << run.status_text << "\n";
  if (run.raw.contains("output")) std::cout << run.output.dump() << "\n";
  if (run.error) std::cout << run.error->message << "\n";
  return run.is_success() ? exit_ok : exit_failed;
}

int cmd_runs_cancel(const std::string& url, const std::string& id) {
  auto c = make_client(url);
  api_call("runs cancel " + id, [&] { c.cancel(id); });
  auto run = api_call("runs get " + id, [&] { return c.retrieve(id); });
  std::cout << id << " " << run.status_text << "\n";
  return exit_ok;
}

int cmd_tokens_complete(const std::string& url, const std::string& id, const std::string& data) {
  json d = json::parse(data.empty() ? std::string("null") : data, nullptr, false);
  if (d.is_discarded()) throw cli_error("the token's data is not JSON: " + data);
  auto c = make_client(url);
  api_call("tokens complete " + id, [&] { c.complete_token(id, d); });
  std::cout << id << " COMPLETED\n";
  return exit_ok;
}

int cmd_tokens_create(const std::string& url, const std::string& timeout, const std::string& key, const std::vector<std::string>& tags) {
  api::token_options o;
  o.timeout = timeout;
  o.idempotency_key = key;
  o.tags = tags;
  auto c = make_client(url);
  auto t = api_call("tokens create", [&] { return c.create_token(o); });
  std::cout << t.id << (t.is_cached ? "  (existing token for this idempotency key)" : "") << "\n";
  return exit_ok;
}

int cmd_tokens_get(const std::string& url, const std::string& id) {
  auto c = make_client(url);
  auto t = api_call("tokens get " + id, [&] { return c.retrieve_token(id); });
  std::cout << t.raw.dump(2) << "\n";
  return exit_ok;
}

int cmd_tokens_list(const std::string& url, const std::string& status) {
  api::token_filter f;
  for (const auto& s : split_values({status})) {
    f.status.push_back(api::parse_token_status(s));
    if (f.status.back() == api::token_status::unknown) throw cli_error("tokens list: --status must be WAITING, COMPLETED or TIMED_OUT, not " + s);
  }
  auto c = make_client(url);
  auto page = api_call("tokens list", [&] { return c.list_tokens(f); });
  for (const auto& t : page.data) std::cout << t.id << "  " << str(t.raw, "status") << "  " << str(t.raw, "createdAt") << "\n";
  return exit_ok;
}

std::string queue_line(const api::queue& q) {
  std::string line = q.id + "  running " + std::to_string(q.running) + "/" +
                     (q.concurrency_limit ? std::to_string(*q.concurrency_limit) : std::string("unlimited")) + "  queued " +
                     std::to_string(q.queued);
  if (q.paused) line += "  PAUSED";
  if (q.concurrency_override) line += "  (limit overridden)";
  return line;
}

int cmd_queues_list(const std::string& url) {
  auto c = make_client(url);
  for (const auto& q : api_call("queues list", [&] { return c.list_all_queues(); })) std::cout << queue_line(q) << "\n";
  return exit_ok;
}

int cmd_queues_action(const std::string& url, const std::string& id, const std::string& action, int limit) {
  auto c = make_client(url);
  api::queue q;
  if (action == "pause") q = api_call("queues pause " + id, [&] { return c.pause_queue(id); });
  else if (action == "resume") q = api_call("queues resume " + id, [&] { return c.resume_queue(id); });
  else if (action == "override") q = api_call("queues override " + id, [&] { return c.override_queue_concurrency(id, limit); });
  else if (action == "reset") q = api_call("queues reset " + id, [&] { return c.reset_queue_concurrency(id); });
  else q = api_call("queues get " + id, [&] { return c.retrieve_queue(id); });
  std::cout << queue_line(q) << "\n";
  return exit_ok;
}

std::string schedule_line(const api::schedule& s) {
  std::string line = s.id + "  " + s.task + "  \"" + s.cron + "\" " + s.timezone + "  " + s.type + (s.active ? "" : "  INACTIVE");
  line += "  next " + (s.next_run ? str(s.raw, "nextRun") : std::string("-"));
  if (!s.external_id.empty()) line += "  external " + s.external_id;
  return line;
}

struct schedule_flags {
  std::string task, cron, timezone, external_id, dedup_key;
};

int cmd_schedules(const std::string& url, const std::string& action, const std::string& id, const schedule_flags& f, bool as_json) {
  auto c = make_client(url);
  if (action == "list") {
    auto all = api_call("schedules list", [&] { return c.list_all_schedules(); });
    if (as_json) {
      json arr = json::array();
      for (const auto& s : all) arr.push_back(s.raw);
      std::cout << arr.dump(2) << "\n";
    } else {
      for (const auto& s : all) std::cout << schedule_line(s) << "\n";
    }
    return exit_ok;
  }
  api::schedule s;
  if (action == "create") {
    s = api_call("schedules create", [&] {
      return c.create_schedule(
          {.task = f.task, .cron = f.cron, .timezone = f.timezone, .external_id = f.external_id, .deduplication_key = f.dedup_key});
    });
  } else if (action == "delete") {
    api_call("schedules delete " + id, [&] { c.delete_schedule(id); });
    std::cout << "deleted " << id << "\n";
    return exit_ok;
  } else if (action == "activate") {
    s = api_call("schedules activate " + id, [&] { return c.activate_schedule(id); });
  } else if (action == "deactivate") {
    s = api_call("schedules deactivate " + id, [&] { return c.deactivate_schedule(id); });
  } else {
    s = api_call("schedules get " + id, [&] { return c.retrieve_schedule(id); });
  }
  if (as_json) std::cout << s.raw.dump(2) << "\n";
  else std::cout << schedule_line(s) << "\n";
  return exit_ok;
}

int cmd_runs_logs(const std::string& url, const std::string& id, bool as_json) {
  auto c = make_client(url);
  auto logs = api_call("runs logs " + id, [&] { return c.logs(id); });
  if (as_json) {
    std::cout << logs.raw.dump(2) << "\n";
    return exit_ok;
  }
  for (const auto& l : logs.lines) {
    std::cout << l.time << " " << l.level << " [attempt " << l.attempt << "] " << l.message;
    if (l.attributes.is_object())
      for (const auto& [k, v] : l.attributes.items()) std::cout << " " << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump());
    std::cout << "\n";
  }
  if (logs.truncated) std::cout << "(later lines were dropped: the run's log is full)\n";
  return exit_ok;
}

struct list_flags {
  std::vector<std::string> statuses, tasks, tags;
  int limit = 25;
  std::string after;
};

int cmd_runs_list(const std::string& url, const list_flags& f, bool as_json) {
  api::run_filter filter;
  filter.tasks = split_values(f.tasks);
  filter.tags = split_values(f.tags);
  filter.page_size = f.limit;
  filter.after = f.after;
  for (const auto& s : split_values(f.statuses)) {
    filter.status.push_back(api::parse_run_status(s));
    if (filter.status.back() == api::run_status::unknown)
      throw cli_error("runs list: unknown status " + s +
                      " (QUEUED, DELAYED, EXECUTING, WAITING, COMPLETED, CANCELED, FAILED, CRASHED, SYSTEM_FAILURE, EXPIRED, "
                      "TIMED_OUT, ...)");
  }
  auto c = make_client(url);
  auto page = api_call("runs list", [&] { return c.list(filter); });
  if (as_json) {
    std::cout << page.raw.dump(2) << "\n";
    return exit_ok;
  }
  if (page.data.empty()) std::cout << "no runs\n";
  for (const auto& r : page.data) {
    std::string tags;
    for (const auto& t : r.tags) tags += (tags.empty() ? "" : ",") + t;
    std::printf("%-26s %-14s %-24s %s%s%s\n", r.id.c_str(), r.status_text.c_str(), r.task.c_str(), str(r.raw, "createdAt").c_str(),
                tags.empty() ? "" : "  ", tags.c_str());
  }
  std::fflush(stdout);
  if (!page.next.empty()) std::cout << "more: taskhost runs list --after " << page.next << "\n";
  return exit_ok;
}

int cmd_runs_replay(const std::string& url, const std::string& id) {
  auto c = make_client(url);
  auto h = api_call("runs replay " + id, [&] { return c.replay(id); });
  std::cout << h.id << std::endl;
  return exit_ok;
}

int cmd_runs_reschedule(const std::string& url, const std::string& id, const std::string& delay) {
  auto c = make_client(url);
  auto r = api_call("runs reschedule " + id, [&] { return c.reschedule(id, delay); });
  std::cout << id << " " << r.status_text << " until " << r.raw.value("delayedUntil", std::string("?")) << "\n";
  return exit_ok;
}

int cmd_runs_get(const std::string& url, const std::string& id, bool as_json) {
  auto c = make_client(url);
  auto run = api_call("runs get " + id, [&] { return c.retrieve(id); });
  if (as_json) std::cout << run.raw.dump(2) << "\n";
  else print_run(run.raw);
  return exit_ok;
}

/// The store file of a deployment, for `taskhost keys ...`.
std::string store_path(const std::string& config_file) { return taskhost::config::load_file(config_file).store.path.string(); }

int cmd_keys_create(const std::string& config_file, const std::string& name, bool prod) {
  if (name.size() > 128) throw cli_error("--name must be at most 128 characters");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) throw cli_error("--name must not hold control characters");
  const std::string path = store_path(config_file);
  taskhost::api_key_table table(path);
  const std::string key = taskhost::generate_api_key(prod);
  taskhost::api_key_record rec{taskhost::new_id("key_"), name, taskhost::to_hex(taskhost::sha256(key)), taskhost::key_display(key),
                               taskhost::clock_type::now(), std::nullopt};
  table.insert(rec);
  std::cout << key << std::endl;
  std::cerr << "taskhost: created API key " << rec.id << (name.empty() ? "" : " '" + name + "'") << " in " << path
            << "; it is shown only this once (the store keeps its SHA-256)\n";
  return exit_ok;
}

int cmd_keys_list(const std::string& config_file, bool as_json) {
  taskhost::api_key_table table(store_path(config_file));
  auto keys = table.list();
  if (as_json) {
    json all = json::array();
    for (const auto& k : keys) {
      json j = {{"id", k.id}, {"display", k.display}, {"createdAt", taskhost::format_time(k.created_at)}, {"active", !k.revoked_at}};
      if (!k.name.empty()) j["name"] = k.name;
      if (k.revoked_at) j["revokedAt"] = taskhost::format_time(*k.revoked_at);
      all.push_back(std::move(j));
    }
    std::cout << all.dump(2) << "\n";
    return exit_ok;
  }
  if (keys.empty()) std::cout << "no keys (taskhost keys create makes one)\n";
  for (const auto& k : keys) {
    std::printf("%-26s %-20s %s   created %s%s\n", k.id.c_str(), k.name.empty() ? "-" : k.name.c_str(), k.display.c_str(),
                taskhost::format_time(k.created_at).c_str(),
                k.revoked_at ? ("  REVOKED " + taskhost::format_time(*k.revoked_at)).c_str() : "");
  }
  std::fflush(stdout);
  return exit_ok;
}

int cmd_keys_revoke(const std::string& config_file, const std::string& id) {
  const std::string path = store_path(config_file);
  taskhost::api_key_table table(path);
  switch (table.revoke(id, taskhost::clock_type::now())) {
    case taskhost::api_key_table::revoke_result::revoked:
      std::cout << id << " revoked\n";
      return exit_ok;
    case taskhost::api_key_table::revoke_result::already_revoked:
      std::cout << id << " was already revoked\n";
      return exit_ok;
    case taskhost::api_key_table::revoke_result::unknown:
      break;
  }
  throw cli_error("keys revoke: no key " + id + " in " + path + " (taskhost keys list shows the ids; keys from auth.keys_file or "
                  "auth.keys_from_env are revoked by removing them there and restarting)");
}

}  // namespace

int main(int argc, char** argv) {
  // A file size limit (ulimit -f) must surface as a failed write (the store answers 503), not kill
  // the process.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"taskhost — a native runtime for background tasks"};
  app.set_version_flag("--version", "taskhost " TASKHOST_VERSION " (plugin ABI " +
                                        std::to_string(TASKHOST_ABI_MAJOR) + "." + std::to_string(TASKHOST_ABI_MINOR) +
                                        ")\nmalloc: " + taskhost::allocator_description());
  app.require_subcommand(1);
  std::string url = default_url();
  std::string key_flag;
  auto add_url = [&](CLI::App* c) {
    c->add_option("--url", url, "taskhost server URL (default: $TASKHOST_URL, $TASKHOST_API_URL or $TRIGGER_API_URL, else http://127.0.0.1:8080)");
    c->add_option("--key", key_flag, "API key to send (default: $TASKHOST_API_KEY, else $TRIGGER_SECRET_KEY)");
  };

  std::string config_file;
  auto* run = app.add_subcommand("run", "Start a deployment in the foreground (SIGINT/SIGTERM stop it gracefully)");
  run->add_option("--config,-c", config_file, "deployment YAML file")->required();
  auto* validate = app.add_subcommand("validate", "Check a deployment's config and plugins; start nothing");
  validate->add_option("--config,-c", config_file, "deployment YAML file")->required();
  auto* plugins = app.add_subcommand("plugins", "Inspect plugins");
  plugins->require_subcommand(1);
  auto* plugins_list = plugins->add_subcommand("list", "List the plugins and tasks a deployment would load");
  plugins_list->add_option("--config,-c", config_file, "deployment YAML file")->required();

  std::string task, payload;
  bool wait = false;
  double timeout_s = 3600;
  trigger_flags tf;
  auto* trigger = app.add_subcommand("trigger", "Trigger a run of a task; prints the run id");
  trigger->add_option("task", task, "task id")->required();
  trigger->add_option("payload", payload, "payload as JSON (default: null)");
  trigger->add_flag("--wait,-w", wait, "wait for the run to finish; print status and output; exit 0 only on COMPLETED");
  trigger->add_option("--max-attempts", tf.max_attempts, "attempts for this run (1-250), overriding the task's retry policy");
  trigger->add_option("--max-duration", tf.max_duration_s, "seconds an attempt may run (at least 5), overriding the task's");
  trigger->add_option("--tag", tf.tags, "a tag for the run (repeatable, at most 10)");
  trigger->add_option("--delay", tf.delay, "start no earlier than this: a duration (30s, 1h30m) or an ISO date");
  trigger->add_option("--ttl", tf.ttl, "expire the run if it has not started this long after it is queued (e.g. 10m)");
  trigger->add_option("--idempotency-key", tf.idempotency_key, "a second trigger with this key returns the first run");
  trigger->add_option("--idempotency-key-ttl", tf.idempotency_key_ttl, "how long the key holds (e.g. 10m, 2h, 7d; default 30d)");
  trigger->add_option("--metadata", tf.metadata, "the run's initial metadata, a JSON object");
  trigger->add_option("--queue", tf.queue, "run on this declared queue instead of the task's");
  trigger->add_option("--concurrency-key", tf.concurrency_key, "take a slot of this key's copy of the queue (e.g. a tenant id)");
  trigger->add_option("--priority", tf.priority_s, "seconds of queue-time credit: starts ahead of runs queued up to this much earlier");
  trigger->add_option("--timeout", timeout_s, "with --wait: give up after this many seconds (default 3600)");
  add_url(trigger);

  auto* runs = app.add_subcommand("runs", "Inspect runs");
  runs->require_subcommand(1);
  std::string run_id;
  bool as_json = false;
  auto* runs_get = runs->add_subcommand("get", "Show a run: status, payload, output, attempts");
  runs_get->add_option("id", run_id, "run id (run_...)")->required();
  runs_get->add_flag("--json", as_json, "print the run as the API returns it");
  add_url(runs_get);
  list_flags lf;
  auto* runs_list = runs->add_subcommand("list", "List runs, newest first");
  runs_list->add_option("--status", lf.statuses, "only runs with this status (repeatable: QUEUED, EXECUTING, COMPLETED, FAILED, ...)");
  runs_list->add_option("--task", lf.tasks, "only runs of this task (repeatable)");
  runs_list->add_option("--tag", lf.tags, "only runs with this tag (repeatable: any of them)");
  runs_list->add_option("--limit", lf.limit, "runs per page (1-100, default 25)");
  runs_list->add_option("--after", lf.after, "the cursor printed after the previous page");
  runs_list->add_flag("--json", as_json, "print the page as the API returns it");
  add_url(runs_list);
  auto* runs_replay = runs->add_subcommand("replay", "Trigger a new run of the same task with the same payload and tags");
  runs_replay->add_option("id", run_id, "run id (run_...)")->required();
  add_url(runs_replay);
  std::string delay;
  auto* runs_reschedule = runs->add_subcommand("reschedule", "Move a DELAYED run to another time");
  runs_reschedule->add_option("id", run_id, "run id (run_...)")->required();
  runs_reschedule->add_option("--delay", delay, "a duration from now (30s, 2h) or an ISO date")->required();
  add_url(runs_reschedule);
  auto* runs_cancel = runs->add_subcommand("cancel", "Cancel a run (a finished run is left as it is)");
  runs_cancel->add_option("id", run_id, "run id (run_...)")->required();
  add_url(runs_cancel);
  auto* runs_logs = runs->add_subcommand("logs", "Show what a run logged through ctx.logger");
  runs_logs->add_option("id", run_id, "run id (run_...)")->required();
  runs_logs->add_flag("--json", as_json, "print the lines as the API returns them");
  add_url(runs_logs);

  auto* tokens = app.add_subcommand("tokens", "Wait tokens: create, inspect and complete them");
  tokens->require_subcommand(1);
  std::string token_id, token_data, token_timeout, token_key, token_status;
  std::vector<std::string> token_tags;
  auto* tokens_complete = tokens->add_subcommand("complete", "Complete a wait token; runs waiting for it resume with DATA");
  tokens_complete->add_option("id", token_id, "token id (waitpoint_...)")->required();
  tokens_complete->add_option("data", token_data, "JSON the waiting runs receive (default null)");
  add_url(tokens_complete);
  auto* tokens_create = tokens->add_subcommand("create", "Create a wait token; prints its id");
  tokens_create->add_option("--timeout", token_timeout, "a duration (30s, 2h, 7d) or an ISO date; none: waits until completed");
  tokens_create->add_option("--idempotency-key", token_key, "a second create with the same key returns the same token");
  tokens_create->add_option("--tag", token_tags, "a tag (repeatable)");
  add_url(tokens_create);
  auto* tokens_get = tokens->add_subcommand("get", "Show a wait token");
  tokens_get->add_option("id", token_id, "token id (waitpoint_...)")->required();
  add_url(tokens_get);
  auto* tokens_list = tokens->add_subcommand("list", "List wait tokens, newest first");
  tokens_list->add_option("--status", token_status, "WAITING, COMPLETED or TIMED_OUT");
  add_url(tokens_list);

  auto* queues = app.add_subcommand("queues", "Queues: see what runs and waits, pause and resume, override limits");
  queues->require_subcommand(1);
  std::string queue_id;
  int queue_limit = 0;
  auto* queues_list = queues->add_subcommand("list", "List every queue: running/limit, queued, paused");
  add_url(queues_list);
  std::map<std::string, CLI::App*> queue_cmds;
  for (auto [name, help] : {std::pair{"get", "Show one queue"}, {"pause", "Pause a queue: nothing new starts, queued runs stay queued"},
                            {"resume", "Resume a paused queue"}, {"override", "Override a queue's concurrency limit"},
                            {"reset", "Drop a queue's concurrency override"}}) {
    auto* sub = queues->add_subcommand(name, help);
    sub->add_option("queue", queue_id, "queue id: a queue's name, or task/<task id> for a task's own queue")->required();
    if (std::string(name) == "override") sub->add_option("limit", queue_limit, "the new limit (0..100000)")->required()->check(CLI::Range(0, 100000));
    add_url(sub);
    queue_cmds[name] = sub;
  }

  auto* schedules = app.add_subcommand("schedules", "Cron schedules of scheduled tasks: list, create, delete, activate, deactivate");
  schedules->require_subcommand(1);
  std::string schedule_id;
  schedule_flags sf;
  std::map<std::string, CLI::App*> schedule_cmds;
  for (auto [name, help] : {std::pair{"list", "List every schedule: id, task, cron, time zone, next run"},
                            {"get", "Show one schedule"},
                            {"create", "Create a schedule (or update the one with the same --dedup-key)"},
                            {"delete", "Delete an IMPERATIVE schedule (its runs stay)"},
                            {"activate", "Activate a schedule: it fires from its next occurrence on"},
                            {"deactivate", "Deactivate a schedule: it stops firing"}}) {
    auto* sub = schedules->add_subcommand(name, help);
    const std::string n = name;
    if (n == "create") {
      sub->add_option("--task", sf.task, "a scheduled task's id")->required();
      sub->add_option("--cron", sf.cron, "a cron expression: 5 fields, or 6 with leading seconds")->required();
      sub->add_option("--timezone", sf.timezone, "an IANA time zone (default UTC)");
      sub->add_option("--external-id", sf.external_id, "your id for it (a customer, ...), passed to each run");
      sub->add_option("--dedup-key", sf.dedup_key, "a second create with the same key updates that schedule");
    } else if (n != "list") {
      sub->add_option("id", schedule_id, "schedule id (sched_...)")->required();
    }
    sub->add_flag("--json", as_json, "print JSON");
    add_url(sub);
    schedule_cmds[n] = sub;
  }

  auto* keys = app.add_subcommand("keys", "API keys: create, list and revoke the keys a deployment's store holds");
  keys->require_subcommand(1);
  std::string key_name, key_id;
  bool key_prod = false;
  auto* keys_create = keys->add_subcommand("create", "Create a key in the deployment's store; prints it, only this once");
  keys_create->add_option("--name", key_name, "a name for the key (who uses it), shown by keys list and in the access log");
  keys_create->add_flag("--prod", key_prod, "a tr_prod_ key instead of tr_dev_");
  keys_create->add_option("--config,-c", config_file, "deployment YAML file")->required();
  auto* keys_list = keys->add_subcommand("list", "List the store's keys: id, name, first characters, created, revoked");
  keys_list->add_option("--config,-c", config_file, "deployment YAML file")->required();
  keys_list->add_flag("--json", as_json, "print JSON");
  auto* keys_revoke = keys->add_subcommand("revoke", "Revoke a key of the store: requests with it get 401 within a second");
  keys_revoke->add_option("id", key_id, "key id (key_...)")->required();
  keys_revoke->add_option("--config,-c", config_file, "deployment YAML file")->required();
  auto* keys_generate = keys->add_subcommand("generate", "Print a new random key without storing it (for auth.keys_file or a variable)");
  keys_generate->add_flag("--prod", key_prod, "a tr_prod_ key instead of tr_dev_");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }

  request_key = key_flag.empty() ? default_key() : key_flag;

  try {
    if (*keys_create) return cmd_keys_create(config_file, key_name, key_prod);
    if (*keys_list) return cmd_keys_list(config_file, as_json);
    if (*keys_revoke) return cmd_keys_revoke(config_file, key_id);
    if (*keys_generate) {
      std::cout << taskhost::generate_api_key(key_prod) << "\n";
      return exit_ok;
    }
    if (*run) return cmd_run(config_file);
    if (*validate) return cmd_check(config_file, false);
    if (*plugins_list) return cmd_check(config_file, true);
    if (*trigger) return cmd_trigger(url, task, payload, wait, tf, timeout_s);
    if (*runs_list) return cmd_runs_list(url, lf, as_json);
    if (*runs_replay) return cmd_runs_replay(url, run_id);
    if (*runs_reschedule) return cmd_runs_reschedule(url, run_id, delay);
    if (*runs_get) return cmd_runs_get(url, run_id, as_json);
    if (*runs_cancel) return cmd_runs_cancel(url, run_id);
    if (*runs_logs) return cmd_runs_logs(url, run_id, as_json);
    if (*tokens_complete) return cmd_tokens_complete(url, token_id, token_data);
    if (*tokens_create) return cmd_tokens_create(url, token_timeout, token_key, token_tags);
    if (*tokens_get) return cmd_tokens_get(url, token_id);
    if (*tokens_list) return cmd_tokens_list(url, token_status);
    if (*queues_list) return cmd_queues_list(url);
    for (const auto& [name, sub] : queue_cmds)
      if (*sub) return cmd_queues_action(url, queue_id, name, queue_limit);
    for (const auto& [name, sub] : schedule_cmds)
      if (*sub) return cmd_schedules(url, name, schedule_id, sf, as_json);
  } catch (const taskhost::config::config_error& e) {
    std::cerr << e.what() << "\n";
    return exit_usage;
  } catch (const api::connection_error& e) {
    std::cerr << "taskhost: " << e.what() << "\n";
    return exit_usage;
  } catch (const cli_error& e) {
    std::cerr << "taskhost: " << e.what() << "\n";
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "taskhost: " << e.what() << "\n";
    return exit_usage;
  }
  return exit_usage;
}
