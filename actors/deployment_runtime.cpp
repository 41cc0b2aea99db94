#include "actors/deployment_runtime.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/allocator.hpp"
#include "runtime/api_gateway.hpp"
#include "runtime/api_keys.hpp"
#include "runtime/batch_book.hpp"
#include "runtime/cpu_latency.hpp"
#include "runtime/http_server.hpp"
#include "runtime/ids.hpp"
#include "runtime/log.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/signed_urls.hpp"

namespace taskhost {

using json = nlohmann::json;

namespace {

caf::actor_system_config& configure(caf::actor_system_config& cfg) {
  // Two scheduler threads, one per core of the machines we target: actors only route and record,
  // all user code runs on the executor, so more threads would only contend. The 'sharing' policy
  // wakes a thread per message instead of polling: messages from non-actor threads (the HTTP
  // server, the executor) reach actors in ~17 µs instead of ~110 µs with work stealing, and idle
  // runtimes burn no CPU (see shared/notes/caf-0.17-and-friends.md).
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("scheduler.policy", caf::atom("sharing"));
  return cfg;
}

// The most new runs a commit may answer for the writer to start them itself (adopt_new_run).
// Beyond it the runtime is busy, the writer is what bounds throughput, and the runs' supervisors
// start them.
constexpr size_t adopt_max_commit = 8;

}  // namespace

struct deployment_runtime::impl {
  config::deployment cfg;
  std::unique_ptr<cpu_latency_request> cpu_latency;  ///< power.cpu_latency_us, held while the deployment lives
  plugin_load_report report;
  std::unique_ptr<run_store> store;
  std::unique_ptr<api_keys> keys;  ///< reads the store: declared after it, destroyed before it
  std::shared_ptr<const url_signer> signer;  ///< the deployment's secret (in the store): upload and callback URLs
  std::unique_ptr<wait_coordinator> waits;
  std::unique_ptr<batch_book> batches;  ///< API batches (two phases); its runs' callbacks need it until the store's last flush
  caf::actor writer;
  std::unique_ptr<executor> exec;
  std::unique_ptr<queue_book> queues;
  std::map<std::string, std::string> task_queue;  ///< task id → its queue
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  caf::actor router;
  std::unordered_map<std::string, caf::actor> supervisors;
  std::unordered_map<std::string, std::shared_ptr<actors::supervisor_env>> envs;  ///< task id → its supervisor's env (inbox)
  std::unique_ptr<api_gateway> gateway;
  std::unique_ptr<http_server> http;
  std::unique_ptr<scheduler> schedules;
  std::mutex schedules_mu;  ///< one schedule change (API, sync) at a time: store, then scheduler
  std::atomic<bool> accepting{true};
  std::atomic<uint64_t> started_at_commit{0}, sent_to_supervisor{0};  ///< start_stats()
  std::mutex shutdown_mu;
  std::shared_mutex actors_mu;  ///< guards router and supervisors against shutdown() dropping them
  bool shut_down = false;
  bool shutdown_clean = true;
};

/// executor.max_threads, or when automatic: room for every run the declared queues let execute at
/// once (a queue's total limit, else its limit; the tasks' own queues' limits), beyond the threads
/// kept ready — at least 256, at most 4096.
static unsigned automatic_max_threads(const config::deployment& cfg, const plugin_load_report& report) {
  if (cfg.executor_max_threads) return cfg.executor_max_threads;
  uint64_t limits = cfg.executor_threads ? cfg.executor_threads : executor::default_threads();
  std::set<std::string> yaml;
  for (const auto& q : cfg.queues) {
    yaml.insert(q.name);
    if (auto l = q.total_concurrency_limit ? q.total_concurrency_limit : q.concurrency_limit) limits += uint64_t(*l);
  }
  std::set<std::string> seen;
  for (const auto& [id, t] : report.tasks)
    if (t.queue_concurrency_limit > 0 && !yaml.count(t.queue_name) && (t.queue_name.empty() || seen.insert(t.queue_name).second))
      limits += uint64_t(t.queue_concurrency_limit);
  return unsigned(std::clamp<uint64_t>(limits, 256, 4096));
}

deployment_runtime::deployment_runtime(config::deployment cfg) : impl_(std::make_unique<impl>()) {
  auto& i = *impl_;
  i.cfg = std::move(cfg);
  if (i.cfg.store.path.empty()) i.cfg.store.path = i.cfg.state_dir / "runs.db";  // a config built in code
  try {
    i.store = std::make_unique<run_store>(store_options{i.cfg.store.path.string(), i.cfg.store.full_durability});
  } catch (const store_error& e) {
    throw std::runtime_error(e.what());
  }
  log::info("run store open", {{"path", i.cfg.store.path.string()}, {"durability", i.cfg.store.full_durability ? "full" : "normal"},
                               {"unfinished_runs", i.store->unfinished_runs().size()}});
  open_keys();
  try {
    // The same secret on every start: callback URLs handed out keep working across restarts.
    i.signer = std::make_shared<const url_signer>(i.store->secret("url-signing", url_signer::new_secret));
  } catch (const store_error& e) {
    throw std::runtime_error(e.what());
  }
  try {
    i.report = load_plugins(i.cfg.plugins_dir, i.cfg.state_dir / "plugin-cache");
  } catch (const plugin_error& e) {
    throw std::runtime_error(i.cfg.file.string() + ": " + e.what());
  }
  for (const auto& p : i.report.plugins)
    log::info("plugin loaded", {{"plugin", p.name}, {"version", p.version}, {"file", p.file.string()},
                                {"abi", std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor)},
                                {"tasks", p.tasks.size()}});
  for (const auto& r : i.report.refused)
    log::error("plugin refused", {{"file", r.file.string()}, {"reason", r.reason}});
  if (auto unknown = unknown_middleware(i.cfg, i.report); !unknown.empty()) {
    std::string all;
    for (const auto& u : unknown) all += (all.empty() ? "" : "\n") + u;
    throw std::runtime_error(all);
  }
  for (const auto& [id, t] : i.cfg.tasks)
    if (!i.report.tasks.count(id))
      log::warn(t.position.str() + ": tasks." + id + " configures a task that no loaded plugin provides", {{"task", id}});
  if (auto errors = schedule_config_errors(i.cfg, i.report); !errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
    throw std::runtime_error(all);
  }

  if (i.cfg.cpu_latency_us) {
    i.cpu_latency = std::make_unique<cpu_latency_request>(*i.cfg.cpu_latency_us);
    if (i.cpu_latency->held())
      log::info("cpu latency request held: idle CPUs wake within it while taskhost runs",
                {{"cpu_latency_us", *i.cfg.cpu_latency_us}, {"device", i.cpu_latency->device()}});
    else
      log::warn("power.cpu_latency_us: the CPU latency request could not be made; taskhost runs without it "
                "(it needs write access to the device: root, or a udev rule)",
                {{"cpu_latency_us", *i.cfg.cpu_latency_us}, {"error", i.cpu_latency->error()}});
  }
  i.exec = std::make_unique<executor>(i.cfg.executor_threads, automatic_max_threads(i.cfg, i.report));
  declare_queues();
  {
    wait_env we;
    we.store = i.store.get();
    we.has_task = [this](const std::string& t) { return impl_->report.tasks.count(t) > 0; };
    we.create_run = [this](run_record r, std::function<void(create_result)> done) { create_run(std::move(r), std::move(done)); };
    we.wake = [this](const std::string& run_id, const std::string& task) {
      auto& im = *impl_;
      std::shared_lock lock(im.actors_mu);
      if (auto it = im.supervisors.find(task); it != im.supervisors.end())
        actors::tell(it->second, *im.envs.at(task)->inbox, {actors::supervisor_event::wake, run_id});
    };
    we.max_payload_bytes = i.cfg.max_payload_bytes;
    i.waits = std::make_unique<wait_coordinator>(std::move(we));
    i.store->set_final_listener([w = i.waits.get()](const std::string& id) { w->run_finished(id); });
  }
  {
    batch_book::env be;
    be.store = i.store.get();
    be.has_task = [this](const std::string& t) { return impl_->report.tasks.count(t) > 0; };
    be.has_queue = [this](const std::string& q) { return impl_->queues->exists(q); };
    be.create_run = [this](run_record r, std::function<void(create_result)> done) { create_run(std::move(r), std::move(done)); };
    be.read_packet = [this](const std::string& path) { return get_packet(path); };
    be.packet_used = [this](const std::string& path) { packet_used(path); };
    i.batches = std::make_unique<batch_book>(std::move(be));
  }
  i.system = std::make_unique<caf::actor_system>(configure(i.caf_cfg));
  auto all_hooks = std::make_shared<const std::vector<loaded_hook>>(i.report.hooks);
  auto all_middleware = std::make_shared<const std::map<std::string, loaded_middleware>>(i.report.middleware);
  for (const auto& [id, task] : i.report.tasks) {
    // Precedence: the task definition in code, then tasks.<id> in the YAML, then its defaults
    // (a trigger's own options beat all three, per run).
    auto retry = apply_task_retry(i.cfg.retry_for(id), task.retry);
    auto max_duration = task.max_duration_ms > 0 ? std::chrono::milliseconds(task.max_duration_ms) : i.cfg.max_duration_for(id);
    auto env = std::make_shared<actors::supervisor_env>(
        actors::supervisor_env{.task = task, .retry = retry_policy(retry), .store = i.store.get(), .exec = i.exec.get()});
    env->max_duration = max_duration;
    env->max_output_bytes = i.cfg.max_output_bytes;
    // Hooks: globals (in plugin load order) before the task's own — except catch_error, where
    // the task's own answers first.
    env->all_hooks = all_hooks;
    for (const auto& h : *all_hooks)
      if (h.task_id.empty() && h.kind != TH_HOOK_CATCH_ERROR) env->hooks[h.kind].push_back(&h);
    for (const auto& h : *all_hooks)
      if (h.task_id == id) env->hooks[h.kind].push_back(&h);
    for (const auto& h : *all_hooks)
      if (h.task_id.empty() && h.kind == TH_HOOK_CATCH_ERROR) env->hooks[h.kind].push_back(&h);
    env->all_middleware = all_middleware;
    env->waits = i.waits.get();
    env->resident_waits = i.cfg.resident_waits_per_task;
    env->queues = i.queues.get();
    env->adopted = &i.started_at_commit;
    env->queue = i.task_queue.at(id);
    for (const auto& m : i.cfg.middleware) env->middleware.push_back(&all_middleware->at(m.name));
    if (auto t = i.cfg.tasks.find(id); t != i.cfg.tasks.end())
      for (const auto& m : t->second.middleware) env->middleware.push_back(&all_middleware->at(m.name));
    i.envs.emplace(id, env);
    i.supervisors.emplace(id, actors::spawn_task_supervisor(*i.system, std::move(env)));
  }
  // A run that got a slot of its queue while it was queued goes to its task's supervisor.
  i.queues->set_dispatch([this](std::vector<queue_grant> grants) {
    // (Once shutdown has dropped the supervisors, grants are dropped too: nothing starts any more.)
    auto& im = *impl_;
    std::shared_lock lock(im.actors_mu);
    // Grants for the same task in a row go into its inbox together (usually all of them: one task).
    std::vector<actors::supervisor_event> evs;
    for (size_t k = 0; k < grants.size(); ++k) {
      evs.push_back({actors::supervisor_event::granted, std::move(grants[k].run_id)});
      if (k + 1 < grants.size() && grants[k + 1].task_id == grants[k].task_id) continue;
      if (auto it = im.supervisors.find(grants[k].task_id); it != im.supervisors.end()) actors::tell(it->second, *im.envs.at(it->first)->inbox, evs);
      evs.clear();
    }
  });
  i.queues->start_timer();
  i.router = actors::spawn_router(*i.system, i.supervisors);
  i.writer = actors::spawn_store_writer(*i.system, i.store.get(), i.cfg.store.retention_days);
  i.store->set_notify([w = i.writer] { caf::anon_send(w, actors::flush_atom::value); });
  recover();
  sync_schedules();
  log::info("deployment ready", {{"name", i.cfg.name}, {"tasks", i.report.tasks.size()},
                                 {"executor_threads", i.exec->threads()}, {"executor_max_threads", i.exec->max_threads()},
                                 {"malloc", allocator_description()}});
}

deployment_runtime::~deployment_runtime() {
  if (!shutdown() && impl_->store) {
    // Abandoned attempts may still log into the store and call the wait coordinator (which
    // refuses them now): keep both alive (and reachable) until exit.
    static auto* abandoned = new std::vector<std::unique_ptr<run_store>>();
    static auto* abandoned_waits = new std::vector<std::unique_ptr<wait_coordinator>>();
    abandoned->push_back(std::move(impl_->store));
    abandoned_waits->push_back(std::move(impl_->waits));
  }
}

void deployment_runtime::recover() {
  // The runs the last process left unfinished. An attempt that was running when it died is
  // recorded as INTERRUPTED and counts as an attempt; the run goes on with the next one, or ends
  // CRASHED when it has none left. A run whose last attempt had ended (the process died while the
  // hooks after it ran) is finished: COMPLETED with its output, or FAILED if that was its last
  // allowed attempt. Queued, delayed and retry-waiting runs go back to their task.
  auto& i = *impl_;
  const auto ids = i.store->unfinished_runs();
  if (ids.empty()) return;
  size_t interrupted = 0, crashed = 0, finished = 0, waiting_for_task = 0, resumed = 0, waiting = 0;
  std::map<std::string, size_t> missing_tasks;
  const auto now = clock_type::now();
  for (const auto& id : ids) {
    std::string task;
    bool route = false;
    i.store->update_live(id, [&](run_record& r) {
      task = r.task_id;
      auto t = i.report.tasks.find(r.task_id);
      // A task no plugin provides any more: the deployment's policy for it, as it will have when
      // it comes back.
      const auto policy = t == i.report.tasks.end() ? i.cfg.retry_for(r.task_id) : apply_task_retry(i.cfg.retry_for(r.task_id), t->second.retry);
      const int max = retry_policy(policy).max_attempts(r.max_attempts);
      if (r.status == run_status::waiting) {
        // It waits without holding anything: it is replayed from its journal once its wait is done.
        ++waiting;
        route = true;
        return;
      }
      if (!r.attempts.empty() && !r.attempts.back().finished_at) {
        auto& a = r.attempts.back();
        a.status = attempt_status::interrupted;
        a.finished_at = now;
        a.error = json{{"name", "TaskRunInterrupted"},
                       {"message", "taskhost stopped (crash, kill or power loss) while attempt " + std::to_string(a.number) +
                                       " was running; the run continues with a new attempt"}};
        ++interrupted;
        if (static_cast<int>(r.attempts.size()) >= max) {
          r.status = run_status::crashed;
          r.finished_at = now;
          r.error = json{{"name", "TaskRunCrashed"},
                         {"message", "attempt " + std::to_string(a.number) + " was interrupted by a taskhost restart and no attempts are left (" +
                                         std::to_string(max) + " allowed)"}};
          ++crashed;
          return;
        }
        r.status = run_status::queued;
        r.retry_at.reset();
      } else if (!r.attempts.empty() && r.attempts.back().status == attempt_status::completed) {
        // It succeeded; the process stopped while the hooks after it ran. It is not run again.
        r.status = run_status::completed;
        r.finished_at = r.attempts.back().finished_at;
        ++finished;
        return;
      } else if (!r.attempts.empty() && !r.retry_at && static_cast<int>(r.attempts.size()) >= max) {
        // Its last allowed attempt failed; the process stopped before that was recorded as final.
        r.status = run_status::failed;
        r.error = r.attempts.back().error;
        r.finished_at = r.attempts.back().finished_at;
        ++finished;
        return;
      } else if (r.status == run_status::dequeued || r.status == run_status::executing) {
        r.status = r.attempts.empty() ? run_status::queued : run_status::executing;  // executing: waiting to retry
      }
      route = true;
    });
    // Children and tokens it waits for are watched again; those that ended meanwhile count now.
    i.waits->restore(id);
    if (!route) continue;
    if (!i.supervisors.count(task)) {
      ++missing_tasks[task];
      ++waiting_for_task;
      continue;
    }
    ++resumed;
    caf::anon_send(i.router, actors::trigger_atom::value, task, id);
  }
  log::info("recovered unfinished runs", {{"runs", ids.size()}, {"resumed", resumed}, {"interrupted_attempts", interrupted},
                                          {"crashed", crashed}, {"finished_before_the_stop", finished}, {"waiting", waiting},
                                          {"waiting_for_their_task", waiting_for_task}});
  for (const auto& [task, n] : missing_tasks)
    log::error("runs of a task that no loaded plugin provides stay queued until it is deployed again",
               {{"task", task}, {"runs", n}});
}

void deployment_runtime::open_keys() {
  auto& i = *impl_;
  // The keys file and variables (a start error when unreadable or malformed), and the store's
  // keys, re-read while the server runs so that `taskhost keys create|revoke` take effect.
  auto fixed = read_configured_keys(i.cfg.auth);
  if (!i.cfg.auth.keys_file.empty())
    if (auto w = keys_file_mode_warning(i.cfg.auth.keys_file); !w.empty()) log::warn(w);
  auto from_store = [store = i.store.get()] {
    store_api_keys out;
    for (auto& k : store->api_keys()) {
      out.any = true;
      auto h = hash_from_hex(k.hash);
      if (k.revoked_at || !h) continue;
      out.active.push_back({k.id, k.name.empty() ? k.id : k.name, *h});
    }
    return out;
  };
  try {
    i.keys = std::make_unique<api_keys>(std::move(fixed), std::move(from_store));
  } catch (const store_error& e) {
    throw std::runtime_error(e.what());
  }
  // Refused here, before any run is recovered or any schedule fires: an API open to the network.
  if (!i.keys->enforcing() && !is_loopback_host(i.cfg.http.host))
    throw std::runtime_error(
        i.cfg.file.string() + ": http.listen is " + i.cfg.http.host + ":" + std::to_string(i.cfg.http.port) +
        ", not a loopback address, and no API key is configured: anyone who reaches it could run tasks. Create a key "
        "(taskhost keys create --config " + i.cfg.file.string() + "), or name keys with auth.keys_file or "
        "auth.keys_from_env, or listen on 127.0.0.1");
}

void deployment_runtime::start_http() {
  auto& i = *impl_;
  if (!i.keys->enforcing())
    log::warn("no API key is configured: the HTTP API answers every process on this machine without a key (it listens on "
              "loopback only). Add one with `taskhost keys create --config " + i.cfg.file.string() +
              "`, auth.keys_file or auth.keys_from_env; the server requires keys within a second of the first one's creation");
  else if (i.keys->active_count() == 0)
    log::warn("every API key of this deployment is revoked: every /api/ request is refused until one is created "
              "(taskhost keys create --config " + i.cfg.file.string() + ")");
  else
    log::info("API keys required", {{"active_keys", i.keys->active_count()}});
  signed_url_options urls;
  urls.signer = i.signer;
  urls.public_url = i.cfg.http.public_url;
  urls.max_packet_bytes = i.cfg.max_packet_bytes;
  urls.upload_url_ttl = std::chrono::milliseconds(i.cfg.packet_upload_url_ttl_ms);
  i.gateway = std::make_unique<api_gateway>(*this, i.cfg.max_payload_bytes, i.keys.get(), std::move(urls));
  http_server_options o;
  o.host = i.cfg.http.host;
  o.port = i.cfg.http.port;
  o.max_body_bytes = i.cfg.http.max_body_bytes;
  i.gateway->set_max_batch_body_bytes(i.cfg.http.max_batch_body_bytes);  // a batch's item stream
  o.header_timeout = std::chrono::milliseconds(i.cfg.http.header_timeout_ms);
  o.body_timeout = std::chrono::milliseconds(i.cfg.http.body_timeout_ms);
  o.idle_timeout = std::chrono::milliseconds(i.cfg.http.idle_timeout_ms);
  o.max_connections = i.cfg.http.max_connections;
  o.access_log = i.cfg.http.access_log;
  o.busy_poll = std::chrono::microseconds(i.cfg.http.busy_poll_us);
  o.body_limit_for = [gw = i.gateway.get()](std::string_view method, std::string_view target, std::string_view authorization) {
    return gw->body_limit_for(method, target, authorization);
  };
  o.log_path = &api_gateway::loggable_path;
  i.http = std::make_unique<http_server>(o, [gw = i.gateway.get()](http_request req, http_responder res) {
    gw->handle(std::move(req), std::move(res));
  });
  i.http->start();
  const bool v6 = i.cfg.http.host.find(':') != std::string::npos;
  i.gateway->set_listen_address((v6 ? "[" + i.cfg.http.host + "]" : i.cfg.http.host) + ":" + std::to_string(i.http->port()));
  log::info("http api listening", {{"address", "http://" + i.cfg.http.host + ":" + std::to_string(i.http->port())}});
}

uint16_t deployment_runtime::http_port() const { return impl_->http ? impl_->http->port() : 0; }
const plugin_load_report& deployment_runtime::plugins() const { return impl_->report; }
const config::deployment& deployment_runtime::config() const { return impl_->cfg; }

void deployment_runtime::trigger(trigger_input in, std::function<void(trigger_outcome)> done) {
  auto& i = *impl_;
  if (!i.accepting) return done({503, {}, "taskhost is shutting down; not accepting new runs"});
  if (!i.report.tasks.count(in.task_id)) return done({404, {}, "Task '" + in.task_id + "' not found"});
  if (!in.queue.empty() && !i.queues->exists(in.queue))
    return done({400, {}, "Queue '" + in.queue + "' not found: options.queue must name a queue of the deployment"});
  // The request's idempotency key is recorded with the run, in its transaction; a run found by its
  // idempotency key (cached) has no insert, so the key is recorded on its own, before the answer.
  request_key_record rk{in.request_scope, in.request_key, {}, true, {}, {}};
  run_record r = new_run_record(std::move(in), new_run_id(), clock_type::now());
  // Acknowledged, and handed to its task, only once its transaction has committed.
  // Straight to the task's supervisor: a hop fewer than through the router.
  create_run(std::move(r), [store = i.store.get(), rk = std::move(rk), done = std::move(done)](create_result c) mutable {
    if (c.status != 200) return done({c.status, {}, c.error});
    if (c.cached && !rk.key.empty()) {
      rk.id = c.run_id;
      rk.created_at = clock_type::now();
      rk.expires_at = rk.created_at + request_key_ttl;
      try {
        store->save_request_key(rk);
      } catch (const store_error& e) {
        log::warn("request idempotency key not recorded; a retry of the request will find the run by its idempotency key",
                  {{"run", c.run_id}, {"error", e.what()}});
      }
    }
    done({200, std::move(c.run_id), {}, c.cached});
  });
}

void deployment_runtime::create_run(run_record r, std::function<void(create_result)> done) {
  auto& i = *impl_;
  caf::actor sup;
  std::shared_ptr<actors::supervisor_env> env;
  {
    std::shared_lock lock(i.actors_mu);  // shutdown() drops the handles
    if (auto it = i.supervisors.find(r.task_id); it != i.supervisors.end()) {
      sup = it->second;
      env = i.envs.at(r.task_id);
    }
  }
  if (!sup || !i.accepting) return done({503, {}, false, "taskhost is shutting down; not accepting new runs"});
  if (!r.queue.empty() && !i.queues->exists(r.queue)) return done({400, {}, false, "Queue '" + r.queue + "' not found"});
  // On the writer's thread after the commit. The caller is answered first: it waits for the
  // answer, and no one waits for the start (on two cores, the run's supervisor and executor
  // thread waking first held the answer back by 15–30 µs). Then the run starts:
  //  - from a small commit (the runtime is not busy), the writer starts it itself
  //    (adopt_new_run): its executor thread is woken at once, not its supervisor first;
  //  - else the runs of one commit gather in their supervisor's inbox, which costs it a message
  //    or a few per commit, not one per run, and the writer no more than a push per run.
  i.store->create(std::move(r), [sup = std::move(sup), env = std::move(env), im = &i, done = std::move(done)](create_result c) {
    const bool start = c.status == 200 && !c.cached;
    const bool adopt = start && c.committed_with <= adopt_max_commit && im->accepting;
    std::string payload = std::move(c.payload_json);
    std::string id = c.run_id;
    // The caller's code, on the writer's thread: what it throws is logged, and the run starts.
    try {
      done(std::move(c));
    } catch (const std::exception& e) {
      log::error("a trigger's answer callback threw; the run goes on", {{"run", id}, {"error", e.what()}});
    } catch (...) {
      log::error("a trigger's answer callback threw; the run goes on", {{"run", id}});
    }
    if (adopt && actors::adopt_new_run(env, sup, id, std::move(payload))) return;  // counts itself
    if (!start) return;
    im->sent_to_supervisor.fetch_add(1, std::memory_order_relaxed);
    actors::tell(sup, *env->inbox, {actors::supervisor_event::start, std::move(id)});
  });
}

api_answer deployment_runtime::create_batch(batch_create_input in) {
  if (!impl_->accepting) return {503, {{"error", "taskhost is shutting down; not accepting new runs"}}};
  return impl_->batches->create(in);
}

void deployment_runtime::add_batch_items(const std::string& id, std::vector<batch_item> items, std::function<void(api_answer)> done) {
  if (!impl_->accepting) return done({503, {{"error", "taskhost is shutting down; not accepting new runs"}}});
  impl_->batches->add_items(id, std::move(items), std::move(done));
}

std::optional<request_key_record> deployment_runtime::find_request_key(const std::string& scope, const std::string& key) const {
  return impl_->store->find_request_key(scope, key, clock_type::now());
}

std::optional<run_record> deployment_runtime::get_run(const std::string& id) const { return impl_->store->get(id); }

run_list_page deployment_runtime::list_runs(const run_list_query& q) const { return impl_->store->list(q); }

run_store::stats_t deployment_runtime::store_stats() const { return impl_->store->stats(); }

deployment_runtime::start_stats_t deployment_runtime::start_stats() const {
  return {impl_->started_at_commit.load(std::memory_order_relaxed), impl_->sent_to_supervisor.load(std::memory_order_relaxed)};
}

void deployment_runtime::reschedule(const std::string& id, time_point delay_until, std::function<void(trigger_outcome)> done) {
  auto& i = *impl_;
  std::lock_guard lock(i.shutdown_mu);
  if (i.shut_down) return done({503, {}, "taskhost is shutting down"});
  bool delayed = false;
  std::string task;
  if (!i.store->update_live(id, [&](run_record& r) {
        if (r.status != run_status::delayed) return;
        delayed = true;
        task = r.task_id;
        r.delay_until = delay_until;
      })) {
    if (!i.store->get(id)) return done({404, {}, "Run not found: " + id});
  }
  if (!delayed) return done({400, {}, "Cannot reschedule a run that is not delayed"});
  // The supervisor looks again: it waits for the new time (or starts the run if it has come).
  if (auto sup = i.supervisors.find(task); sup != i.supervisors.end()) caf::anon_send(sup->second, actors::start_atom::value, id);
  i.store->after_commit([id, done = std::move(done)](bool ok, const std::string& err) {
    done(ok ? trigger_outcome{200, id, {}} : trigger_outcome{503, {}, err});
  });
}

void deployment_runtime::cancel(const std::string& id, std::function<void(trigger_outcome)> done) {
  auto& i = *impl_;
  std::lock_guard lock(i.shutdown_mu);  // the actors must outlive the request
  if (i.shut_down) return done({503, {}, "taskhost is shutting down"});
  std::string task;
  if (!i.store->read_live(id, [&](const run_record& r) { task = r.task_id; })) {
    // Finished (left as it is), waiting out of memory, or unknown: only then is SQLite asked.
    auto r = i.store->get(id);
    if (!r) return done({404, {}, "Run not found: " + id});
    if (is_final(r->status)) return done({200, id, {}});
    task = r->task_id;
  }
  auto sup = i.supervisors.find(task);
  if (sup == i.supervisors.end()) return done({200, id, {}});
  // A short blocking request (cancels are rare): the answer comes once the supervisor has
  // recorded the new state, so a read right after the response sees CANCELED.
  caf::scoped_actor self{*i.system};
  trigger_outcome out{200, id, {}};
  self->request(sup->second, std::chrono::seconds(10), actors::cancel_atom::value, id)
      .receive([](bool) {}, [&](caf::error& e) { out = {503, {}, "cancel did not complete: " + i.system->render(e)}; });
  if (out.status != 200) return done(std::move(out));
  cancel_children(id);
  i.store->after_commit([id, done = std::move(done)](bool ok, const std::string& err) {
    done(ok ? trigger_outcome{200, id, {}} : trigger_outcome{503, {}, err});
  });
}

void deployment_runtime::cancel_children(const std::string& parent_id) {
  // Cancelling a run cancels its runs in progress, and theirs (caller holds shutdown_mu).
  auto& i = *impl_;
  for (const auto& [child, task] : i.store->live_children(parent_id)) {
    if (auto sup = i.supervisors.find(task); sup != i.supervisors.end()) {
      caf::scoped_actor self{*i.system};
      self->request(sup->second, std::chrono::seconds(10), actors::cancel_atom::value, child).receive([](bool) {}, [](caf::error&) {});
    }
    log::info("child run canceled with its parent", {{"run", child}, {"parent", parent_id}});
    cancel_children(child);
  }
}

api_answer deployment_runtime::create_token(const json& options) {
  try {
    bool cached = false;
    json j = token_to_api_json(impl_->waits->new_token(options, cached));
    j["isCached"] = cached;
    return {200, std::move(j)};
  } catch (const call_error& e) {
    return {400, {{"error", e.what()}}};
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
}

api_answer deployment_runtime::complete_token(const std::string& id, const json& data) {
  std::string error;
  int status = impl_->waits->complete_token(id, data, error, /*same_data_ok=*/true);
  if (status != 200) return {status, {{"error", error}}};
  return {200, {{"success", true}}};
}

api_answer deployment_runtime::get_token(const std::string& id) {
  if (auto t = impl_->waits->token(id)) return {200, token_to_api_json(*t)};
  return {404, {{"error", "Waitpoint token not found: " + id}}};
}

api_answer deployment_runtime::list_tokens(const token_list_query& q) {
  bool more = false;
  auto ts = impl_->waits->list_tokens(q, more);
  json data = json::array();
  for (const auto& t : ts) {
    json j = token_to_api_json(t);
    for (const char* k : {"output", "outputType", "outputIsError"}) j.erase(k);  // a list item has none (§5.9)
    data.push_back(std::move(j));
  }
  json page = json::object();
  if (more && !ts.empty()) page["next"] = ts.back().id;
  return {200, {{"data", std::move(data)}, {"pagination", std::move(page)}}};
}

api_answer deployment_runtime::reset_idempotency_key(const std::string& task_id, const std::string& key) {
  try {
    if (!impl_->store->reset_idempotency_key(task_id, key))
      return {404, {{"error", "No run of task '" + task_id + "' has the idempotency key '" + key.substr(0, 200) + "'"}}};
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  return {200, {{"id", key}}};
}

namespace {
/// How long a packet stays once a recorded run took its payload from it: a request retried after
/// a lost answer (or a batch re-streamed) still finds it.
constexpr std::chrono::minutes packet_grace_after_use{10};
}  // namespace

api_answer deployment_runtime::save_packet(const std::string& storage_path, const std::string& content_type, std::string data) {
  auto& i = *impl_;
  packet_record p;
  p.storage_path = storage_path;
  p.content_type = content_type;
  p.data = std::move(data);
  p.created_at = clock_type::now();
  p.expires_at = p.created_at + std::chrono::milliseconds(i.cfg.packet_ttl_ms);
  try {
    i.store->save_packet(p);
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  log::debug("packet stored", {{"storage_path", storage_path}, {"bytes", p.data.size()}, {"type", content_type}});
  return {200, json::object()};
}

std::optional<stored_packet> deployment_runtime::get_packet(const std::string& storage_path) {
  try {
    auto p = impl_->store->get_packet(storage_path, clock_type::now());
    if (!p) return std::nullopt;
    return stored_packet{std::move(p->content_type), std::move(p->data)};
  } catch (const store_error& e) {
    log::error("packet could not be read", {{"storage_path", storage_path}, {"error", e.what()}});
    return std::nullopt;
  }
}

void deployment_runtime::packet_used(const std::string& storage_path) {
  try {
    impl_->store->packet_used(storage_path, clock_type::now(), packet_grace_after_use);
  } catch (const store_error& e) {
    log::warn("packet could not be marked used; it goes at its TTL", {{"storage_path", storage_path}, {"error", e.what()}});
  }
}

api_answer deployment_runtime::get_batch(const std::string& id) const { return impl_->batches->get(id); }

namespace {

queue_limits limits_of(const config::queue_config& q) {
  queue_limits l;
  l.concurrency = q.concurrency_limit;
  l.total = q.total_concurrency_limit;
  if (q.rate_limit) l.rate = queue_limits::rate_t{q.rate_limit->limit, q.rate_limit->period, q.rate_limit->per_key};
  return l;
}

}  // namespace

void deployment_runtime::declare_queues() {
  // The deployment's queues; then those the task definitions name (the YAML's limits win); then
  // each task's own queue, "task/<id>", for the tasks on no named queue.
  auto& i = *impl_;
  queue_book::options o;
  // An unlimited queue lets twice as many runs execute as the executor has threads now (at least
  // 8): enough to keep every thread busy with a stage queued behind each; more would only hold
  // memory while they wait for a thread. When threads block and the executor grows, so does this.
  o.unlimited_cap = [ex = i.exec.get()] { return std::max<size_t>(8, 2 * ex->live_threads()); };
  i.queues = std::make_unique<queue_book>(std::move(o));
  i.exec->set_on_grow([q = i.queues.get()] { q->refill(); });
  std::set<std::string> from_yaml;
  for (const auto& q : i.cfg.queues) {
    i.queues->declare(q.name, limits_of(q));
    from_yaml.insert(q.name);
  }
  std::map<std::string, std::pair<int, std::string>> named;  // queue → (limit, task that set it)
  for (const auto& [id, t] : i.report.tasks) {
    if (t.queue_name.empty() || from_yaml.count(t.queue_name)) continue;
    auto [it, fresh] = named.emplace(t.queue_name, std::make_pair(t.queue_concurrency_limit, id));
    if (!fresh && it->second.first != t.queue_concurrency_limit) {
      // Two definitions disagree: the lower limit holds (the safe side), and the logs say so.
      auto lower = [](int a, int b) { return a < 0 ? b : b < 0 ? a : std::min(a, b); };
      log::warn("tasks declare different concurrency limits for one queue; the lower one applies",
                {{"queue", t.queue_name}, {"task", id}, {"limit", t.queue_concurrency_limit},
                 {"other_task", it->second.second}, {"other_limit", it->second.first}});
      it->second.first = lower(it->second.first, t.queue_concurrency_limit);
    }
  }
  for (const auto& [name, l] : named) {
    queue_limits limits;
    if (l.first >= 0) limits.concurrency = l.first;
    i.queues->declare(name, limits);
  }
  if (auto unknown = unknown_queues(i.cfg, i.report); !unknown.empty()) {
    std::string all;
    for (const auto& u : unknown) all += (all.empty() ? "" : "\n") + u;
    throw std::runtime_error(all);
  }
  for (const auto& [id, t] : i.report.tasks) {
    std::string q = t.queue_name;
    if (auto tc = i.cfg.tasks.find(id); tc != i.cfg.tasks.end() && !tc->second.queue.empty()) q = tc->second.queue;
    if (q.empty()) {
      q = "task/" + id;
      queue_limits limits;
      if (t.queue_concurrency_limit >= 0) limits.concurrency = t.queue_concurrency_limit;
      i.queues->declare(q, limits, /*task_queue=*/true);
    }
    i.task_queue[id] = q;
  }
  // What the API changed (pause, concurrency override) outlives restarts.
  for (const auto& p : i.store->queue_states())
    if (i.queues->exists(p.name)) i.queues->restore(p.name, {p.paused, p.override_limit, p.overridden_at_ms});
}

namespace {

json queue_json(const queue_info& q) {
  const auto limit = q.limit();
  auto num_or_null = [](const std::optional<int>& v) { return v ? json(*v) : json(nullptr); };
  json j = {{"id", q.name},
            {"name", q.task_queue ? q.name.substr(5) : q.name},
            {"type", q.task_queue ? "task" : "custom"},
            {"running", q.running},
            {"queued", q.queued},
            {"paused", q.paused},
            {"concurrencyLimit", num_or_null(limit)},
            {"concurrency",
             {{"current", num_or_null(limit)},
              {"base", num_or_null(q.base.concurrency)},
              {"override", num_or_null(q.override_limit)},
              {"overriddenAt", q.overridden_at_ms ? json(format_time(from_ms(*q.overridden_at_ms))) : json(nullptr)},
              {"overriddenBy", nullptr}}},
            // Beyond Trigger.dev:
            {"totalConcurrencyLimit", num_or_null(q.base.total)},
            {"concurrencyKeys", q.keys}};
  if (q.base.rate)
    j["rateLimit"] = {{"limit", q.base.rate->limit}, {"periodMs", q.base.rate->period.count()}, {"perKey", q.base.rate->per_key}};
  else
    j["rateLimit"] = nullptr;
  return j;
}

}  // namespace

api_answer deployment_runtime::list_queues(size_t page, size_t per_page) {
  auto all = impl_->queues->list();
  json data = json::array();
  for (size_t k = (page - 1) * per_page; k < all.size() && k < page * per_page; ++k) data.push_back(queue_json(all[k]));
  const size_t pages = all.empty() ? 1 : (all.size() + per_page - 1) / per_page;
  return {200, {{"data", data}, {"pagination", {{"currentPage", page}, {"totalPages", pages}, {"count", all.size()}}}}};
}

api_answer deployment_runtime::get_queue(const std::string& id) {
  if (auto q = impl_->queues->info(id)) return {200, queue_json(*q)};
  return {404, {{"error", "Queue not found: " + id}}};
}

api_answer deployment_runtime::pause_queue(const std::string& id, bool pause) {
  auto& i = *impl_;
  auto q = i.queues->info(id);
  if (!q) return {404, {{"error", "Queue not found: " + id}}};
  try {
    // Recorded first: an answer means it holds after a restart too.
    i.store->save_queue_state({id, pause, q->override_limit, q->overridden_at_ms});
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  i.queues->set_paused(id, pause);
  log::info(pause ? "queue paused" : "queue resumed", {{"queue", id}});
  return get_queue(id);
}

api_answer deployment_runtime::override_queue(const std::string& id, std::optional<int> limit) {
  auto& i = *impl_;
  auto q = i.queues->info(id);
  if (!q) return {404, {{"error", "Queue not found: " + id}}};
  std::optional<int64_t> at;
  if (limit) at = to_ms(clock_type::now());
  try {
    i.store->save_queue_state({id, q->paused, limit, at});
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  i.queues->set_override(id, limit);
  log::info(limit ? "queue concurrency overridden" : "queue concurrency reset", {{"queue", id}, {"limit", limit ? json(*limit) : json(nullptr)}});
  return get_queue(id);
}

// --- schedules ---

namespace {

bool is_scheduled_task(const plugin_load_report& report, const std::string& task) {
  auto t = report.tasks.find(task);
  return t != report.tasks.end() && t->second.scheduled;
}

}  // namespace

void deployment_runtime::sync_schedules() {
  // The declarative schedules (task definitions, then the YAML's, which win for the same key)
  // against those the store holds from the last start: added, changed, removed. Then every
  // schedule goes to the scheduler; those of tasks that are not loaded wait, unarmed.
  auto& i = *impl_;
  struct declared {
    std::string task, cron, timezone, external_id;
  };
  std::map<std::string, declared> want;
  for (const auto& [id, t] : i.report.tasks)
    if (t.scheduled && !t.schedule_cron.empty())
      want[id] = {id, t.schedule_cron, t.schedule_timezone.empty() ? "UTC" : t.schedule_timezone, {}};
  for (const auto& s : i.cfg.schedules) {
    if (!i.report.tasks.count(s.task))
      log::warn(s.position.str() + ": schedules names task '" + s.task + "', which no loaded plugin provides; it fires once the task is deployed",
                {{"task", s.task}});
    want[s.key] = {s.task, s.cron, s.timezone, s.external_id};
  }
  i.schedules = std::make_unique<scheduler>([this](schedule_fire f) {
    trigger_input in;
    in.task_id = f.schedule.task_id;
    in.payload = schedule_payload_json(f);
    // The commit of the run records the occurrence as fired (same transaction); the key keeps a
    // second trigger of the same occurrence from making a second run.
    in.idempotency_key = "schedule:" + f.schedule.id + ":" + format_time(f.occurrence);
    in.schedule_id = f.schedule.id;
    in.schedule_occurrence = f.occurrence;
    trigger(std::move(in), [this, f](trigger_outcome o) {
      if (o.status == 200) {
        log::debug("scheduled run triggered", {{"schedule", f.schedule.id}, {"run", o.run_id}, {"occurrence", format_time(f.occurrence)}});
        return;
      }
      if (!impl_->accepting) return;  // stopping: the occurrence fires after the next start (catch-up)
      log::error("a scheduled run could not be recorded; trying again",
                 {{"schedule", f.schedule.id}, {"occurrence", format_time(f.occurrence)}, {"error", o.error}});
      impl_->schedules->failed(f);
    });
  });
  std::lock_guard lock(i.schedules_mu);
  const auto now = clock_type::now();
  size_t added = 0, changed = 0, removed = 0;
  std::vector<schedule_record> all;
  try {
    for (auto& r : i.store->schedules()) {
      if (r.type != "DECLARATIVE") {
        all.push_back(std::move(r));
        continue;
      }
      auto w = want.find(r.dedup_key);
      if (w == want.end() && !i.report.tasks.count(r.task_id)) {
        // Its plugin did not load this time (a broken build, a file being replaced): whether the
        // schedule is still declared cannot be known. It stays, unarmed, with its history.
        all.push_back(std::move(r));
        continue;
      }
      if (w == want.end()) {
        i.store->delete_schedule(r.id);
        log::info("declarative schedule removed", {{"schedule", r.id}, {"task", r.task_id}, {"cron", r.cron}});
        ++removed;
        continue;
      }
      const declared& d = w->second;
      if (r.task_id != d.task || r.cron != d.cron || r.timezone != d.timezone || r.external_id != d.external_id) {
        // A new plan starts now: no catch-up of what the old one missed.
        if (r.task_id != d.task || r.cron != d.cron || r.timezone != d.timezone) r.since = now;
        r.task_id = d.task;
        r.cron = d.cron;
        r.timezone = d.timezone;
        r.external_id = d.external_id;
        r.updated_at = now;
        i.store->save_schedule(r);
        log::info("declarative schedule changed", {{"schedule", r.id}, {"task", r.task_id}, {"cron", r.cron}, {"timezone", r.timezone}});
        ++changed;
      }
      want.erase(w);
      all.push_back(std::move(r));
    }
    for (auto& [key, d] : want) {
      schedule_record r;
      r.id = new_id("sched_");
      r.type = "DECLARATIVE";
      r.task_id = d.task;
      r.cron = d.cron;
      r.timezone = d.timezone;
      r.external_id = d.external_id;
      r.dedup_key = key;
      r.created_at = r.updated_at = r.since = now;
      i.store->save_schedule(r);
      log::info("declarative schedule added", {{"schedule", r.id}, {"task", r.task_id}, {"cron", r.cron}, {"timezone", r.timezone}});
      ++added;
      all.push_back(std::move(r));
    }
  } catch (const store_error& e) {
    throw std::runtime_error(std::string("schedules: ") + e.what());
  }
  size_t waiting = 0;
  for (auto& r : all) {
    const bool armed = is_scheduled_task(i.report, r.task_id);
    if (!armed && r.active) ++waiting;
    try {
      i.schedules->put(r, armed);
    } catch (const std::exception& e) {
      log::error("a stored schedule cannot be read; it does not fire", {{"schedule", r.id}, {"cron", r.cron}, {"error", e.what()}});
    }
  }
  if (!all.empty())
    log::info("schedules", {{"schedules", all.size()}, {"declarative_added", added}, {"declarative_changed", changed},
                            {"declarative_removed", removed}, {"waiting_for_their_task", waiting}});
  i.schedules->start();
}

namespace {

/// The fields of a schedule body, checked: {task, cron, deduplicationKey?, externalId?, timezone?}.
struct schedule_body {
  std::string task, cron, timezone = "UTC", external_id, dedup_key;
};

std::optional<schedule_body> read_schedule_body(const json& b, const plugin_load_report& report, bool with_key, std::string& error) {
  schedule_body out;
  auto str = [&](const char* name, std::string& to, bool required, size_t max) {
    auto it = b.find(name);
    if (it == b.end() || it->is_null()) {
      if (required) error = std::string(name) + " is required";
      return !required;
    }
    if (!it->is_string()) {
      error = std::string(name) + " must be a string";
      return false;
    }
    to = it->get<std::string>();
    if (to.size() > max) {
      error = std::string(name) + " must be at most " + std::to_string(max) + " characters";
      return false;
    }
    return true;
  };
  if (!str("task", out.task, true, 128) || !str("cron", out.cron, true, 256) || !str("externalId", out.external_id, false, 1024) ||
      !str("timezone", out.timezone, false, 64) || (with_key && !str("deduplicationKey", out.dedup_key, false, 1024)))
    return std::nullopt;
  if (b.contains("window") && !b["window"].is_null()) {
    error = "window is not supported by taskhost: a schedule fires at its occurrence";
    return std::nullopt;
  }
  if (out.timezone.empty()) out.timezone = "UTC";
  auto t = report.tasks.find(out.task);
  if (t == report.tasks.end()) {
    error = "Task '" + out.task + "' not found";
    return std::nullopt;
  }
  if (!t->second.scheduled) {
    error = "Task '" + out.task + "' is not a scheduled task: only tasks defined with th::scheduled_task accept schedules";
    return std::nullopt;
  }
  try {
    (void)cron_expression::parse(out.cron);
  } catch (const std::exception& e) {
    error = "Invalid cron expression \"" + out.cron + "\": " + e.what();
    return std::nullopt;
  }
  try {
    (void)time_zone::locate(out.timezone);
  } catch (const std::exception& e) {
    error = std::string("Invalid timezone: ") + e.what() + " (GET /api/v1/timezones lists the known ones)";
    return std::nullopt;
  }
  return out;
}

}  // namespace

api_answer deployment_runtime::list_schedules(size_t page, size_t per_page) {
  auto& i = *impl_;
  auto all = i.schedules->list();
  json data = json::array();
  for (size_t k = (page - 1) * per_page; k < all.size() && k < page * per_page; ++k)
    data.push_back(schedule_json(all[k], i.schedules->next_run(all[k].id)));
  const size_t pages = all.empty() ? 1 : (all.size() + per_page - 1) / per_page;
  return {200, {{"data", data}, {"pagination", {{"currentPage", page}, {"totalPages", pages}, {"count", all.size()}}}}};
}

api_answer deployment_runtime::get_schedule(const std::string& id) {
  auto& i = *impl_;
  auto s = i.schedules->get(id);
  if (!s) return {404, {{"error", "Schedule not found: " + id}}};
  return {200, schedule_json(*s, i.schedules->next_run(id))};
}

api_answer deployment_runtime::create_schedule(const json& body) { return save_schedule({}, body); }

api_answer deployment_runtime::update_schedule(const std::string& id, const json& body) {
  if (!impl_->schedules->get(id)) return {404, {{"error", "Schedule not found: " + id}}};
  return save_schedule(id, body);
}

api_answer deployment_runtime::save_schedule(const std::string& id, const json& body) {
  // id "": create, or update the IMPERATIVE schedule with the body's deduplicationKey.
  auto& i = *impl_;
  std::string error;
  auto b = read_schedule_body(body, i.report, id.empty(), error);
  if (!b) return {400, {{"error", error}}};
  std::lock_guard lock(i.schedules_mu);
  const auto now = clock_type::now();
  std::optional<schedule_record> old = id.empty() ? i.schedules->find_by_key("IMPERATIVE", b->dedup_key) : i.schedules->get(id);
  if (!id.empty() && !old) return {404, {{"error", "Schedule not found: " + id}}};
  if (old && old->type == "DECLARATIVE")
    return {400, {{"error", "Schedule " + old->id + " is DECLARATIVE: change it in the deployment YAML or the task definition"}}};
  schedule_record r;
  if (old) {
    r = *old;
    if (r.task_id != b->task || r.cron != b->cron || r.timezone != b->timezone) r.since = now;  // a new plan: no catch-up
  } else {
    r.id = new_id("sched_");
    r.type = "IMPERATIVE";
    r.created_at = r.since = now;
    r.dedup_key = b->dedup_key;
  }
  r.task_id = b->task;
  r.cron = b->cron;
  r.timezone = b->timezone;
  r.external_id = b->external_id;
  r.updated_at = now;
  try {
    i.store->save_schedule(r);
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  i.schedules->put(r, true);
  log::info(old ? "schedule updated" : "schedule created", {{"schedule", r.id}, {"task", r.task_id}, {"cron", r.cron}, {"timezone", r.timezone}});
  return {200, schedule_json(r, i.schedules->next_run(r.id))};
}

api_answer deployment_runtime::delete_schedule(const std::string& id) {
  auto& i = *impl_;
  std::lock_guard lock(i.schedules_mu);
  auto s = i.schedules->get(id);
  if (!s) return {404, {{"error", "Schedule not found: " + id}}};
  if (s->type == "DECLARATIVE")
    return {400, {{"error", "Schedule " + id + " is DECLARATIVE: remove it from the deployment YAML or the task definition"}}};
  try {
    i.store->delete_schedule(id);
  } catch (const store_error& e) {
    return {503, {{"error", e.what()}}};
  }
  i.schedules->remove(id);
  log::info("schedule deleted", {{"schedule", id}, {"task", s->task_id}});
  return {200, {{"id", id}}};
}

api_answer deployment_runtime::activate_schedule(const std::string& id, bool active) {
  auto& i = *impl_;
  std::lock_guard lock(i.schedules_mu);
  auto s = i.schedules->get(id);
  if (!s) return {404, {{"error", "Schedule not found: " + id}}};
  if (s->active != active) {
    const auto now = clock_type::now();
    s->active = active;
    s->updated_at = now;
    if (active) s->since = now;  // what it missed while inactive does not fire
    try {
      i.store->save_schedule(*s);
    } catch (const store_error& e) {
      return {503, {{"error", e.what()}}};
    }
    i.schedules->put(*s, is_scheduled_task(i.report, s->task_id));
    log::info(active ? "schedule activated" : "schedule deactivated", {{"schedule", id}, {"task", s->task_id}});
  }
  return {200, schedule_json(*s, i.schedules->next_run(id))};
}

bool deployment_runtime::shutdown() {
  auto& i = *impl_;
  std::lock_guard lock(i.shutdown_mu);
  if (i.shut_down) return i.shutdown_clean;
  i.shut_down = true;
  if (i.schedules) i.schedules->stop();  // no occurrence fires from here on (one firing now has finished)
  i.accepting = false;
  // Nothing new starts from here on: slots that free up are not handed to queued runs (they stay
  // QUEUED, or WAITING, for the next start), instead of each being started and put back.
  i.queues->set_dispatch({});
  i.exec->set_on_grow({});
  if (i.gateway) i.gateway->refuse_triggers();
  if (i.http) i.http->stop_accepting();
  auto grace = std::chrono::milliseconds(i.cfg.shutdown_grace_ms);
  log::info("shutting down", {{"running_attempts", i.exec->in_flight()}, {"grace_period_ms", grace.count()}});
  i.queues->stop();  // no rate-limit timer from now on
  i.shutdown_clean = i.exec->stop(grace);
  i.waits->stop();  // attempts still running (abandoned) may call in: refused from now on
  if (!i.shutdown_clean)
    log::warn("grace period over; attempts still running are abandoned", {{"running_attempts", i.exec->in_flight()}});
  {
    // Every attempt result already sent is in the supervisors' mailboxes; a drain request is
    // answered after them, so the store holds every result before the actors stop.
    caf::scoped_actor self{*i.system};
    for (auto& [id, sup] : i.supervisors)
      self->request(sup, std::chrono::seconds(5), actors::drain_atom::value).receive([] {}, [&](caf::error&) {});
    // Then the store: everything the supervisors recorded is committed before the process goes.
    self->request(i.writer, std::chrono::seconds(30), actors::flush_atom::value).receive([](bool) {}, [&](caf::error&) {});
    self->send_exit(i.writer, caf::exit_reason::user_shutdown);
    self->wait_for(i.writer);
    self->send_exit(i.router, caf::exit_reason::user_shutdown);
    for (auto& [id, sup] : i.supervisors) self->send_exit(sup, caf::exit_reason::user_shutdown);
  }
  i.store->set_notify({});
  if (i.store->dirty() && !i.store->flush()) log::error("run store: the last commit failed; the next start recovers from the last good one");
  i.writer = nullptr;
  {
    std::unique_lock lock(i.actors_mu);
    i.router = nullptr;
    i.supervisors.clear();
    i.envs.clear();
  }
  if (i.http) i.http->stop();
  if (i.shutdown_clean) {
    i.system.reset();
  } else {
    // Abandoned attempts may still finish and message their supervisor: keep the actor system
    // (deliberately leaked) so that they never touch a destroyed one. The process is exiting.
    (void)i.system.release();
    // Their log lines may still reach the store: the destructor keeps it alive until the exit.
  }
  log::info("stopped", {{"clean", i.shutdown_clean}});
  return i.shutdown_clean;
}

}  // namespace taskhost
