#include "actors/deployment_runtime.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/api_gateway.hpp"
#include "runtime/http_server.hpp"
#include "runtime/ids.hpp"
#include "runtime/log.hpp"

namespace taskhost {

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

}  // namespace

struct deployment_runtime::impl {
  config::deployment cfg;
  plugin_load_report report;
  memory_run_store store;
  std::unique_ptr<executor> exec;
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  caf::actor router;
  std::unordered_map<std::string, caf::actor> supervisors;
  std::unique_ptr<api_gateway> gateway;
  std::unique_ptr<http_server> http;
  std::atomic<bool> accepting{true};
  std::mutex shutdown_mu;
  bool shut_down = false;
  bool shutdown_clean = true;
};

deployment_runtime::deployment_runtime(config::deployment cfg) : impl_(std::make_unique<impl>()) {
  auto& i = *impl_;
  i.cfg = std::move(cfg);
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

  i.exec = std::make_unique<executor>(i.cfg.executor_threads);
  i.system = std::make_unique<caf::actor_system>(configure(i.caf_cfg));
  auto all_hooks = std::make_shared<const std::vector<loaded_hook>>(i.report.hooks);
  auto all_middleware = std::make_shared<const std::map<std::string, loaded_middleware>>(i.report.middleware);
  for (const auto& [id, task] : i.report.tasks) {
    // Precedence: the task definition in code, then tasks.<id> in the YAML, then its defaults
    // (a trigger's own options beat all three, per run).
    auto retry = apply_task_retry(i.cfg.retry_for(id), task.retry);
    auto max_duration = task.max_duration_ms > 0 ? std::chrono::milliseconds(task.max_duration_ms) : i.cfg.max_duration_for(id);
    auto env = std::make_shared<actors::supervisor_env>(
        actors::supervisor_env{task, retry_policy(retry), &i.store, i.exec.get(), max_duration, 10u << 20, {}, {}, {}, {}});
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
    for (const auto& m : i.cfg.middleware) env->middleware.push_back(&all_middleware->at(m.name));
    if (auto t = i.cfg.tasks.find(id); t != i.cfg.tasks.end())
      for (const auto& m : t->second.middleware) env->middleware.push_back(&all_middleware->at(m.name));
    i.supervisors.emplace(id, actors::spawn_task_supervisor(*i.system, std::move(env)));
  }
  i.router = actors::spawn_router(*i.system, i.supervisors);
  log::info("deployment ready", {{"name", i.cfg.name}, {"tasks", i.report.tasks.size()},
                                 {"executor_threads", i.exec->threads()}});
}

deployment_runtime::~deployment_runtime() { shutdown(); }

void deployment_runtime::start_http() {
  auto& i = *impl_;
  i.gateway = std::make_unique<api_gateway>(*this, i.cfg.max_payload_bytes);
  http_server_options o;
  o.host = i.cfg.http.host;
  o.port = i.cfg.http.port;
  o.max_body_bytes = i.cfg.http.max_body_bytes;
  i.http = std::make_unique<http_server>(o, [gw = i.gateway.get()](http_request req, http_responder res) {
    gw->handle(std::move(req), std::move(res));
  });
  i.http->start();
  log::info("http api listening", {{"address", "http://" + i.cfg.http.host + ":" + std::to_string(i.http->port())}});
}

uint16_t deployment_runtime::http_port() const { return impl_->http ? impl_->http->port() : 0; }
const plugin_load_report& deployment_runtime::plugins() const { return impl_->report; }
const config::deployment& deployment_runtime::config() const { return impl_->cfg; }

void deployment_runtime::trigger(trigger_input in, std::function<void(trigger_outcome)> done) {
  auto& i = *impl_;
  if (!i.accepting) return done({503, {}, "taskhost is shutting down; not accepting new runs"});
  if (!i.report.tasks.count(in.task_id)) return done({404, {}, "Task '" + in.task_id + "' not found"});
  run_record r;
  r.id = new_run_id();
  r.task_id = in.task_id;
  r.status = run_status::queued;
  r.payload = std::move(in.payload);
  r.payload_type = std::move(in.payload_type);
  r.tags = std::move(in.tags);
  r.max_attempts = in.max_attempts;
  r.max_duration_ms = in.max_duration_ms;
  r.created_at = r.updated_at = clock_type::now();
  std::string id = r.id;
  i.store.insert(std::move(r));
  caf::anon_send(i.router, actors::trigger_atom::value, in.task_id, id);
  done({200, std::move(id), {}});
}

std::optional<run_record> deployment_runtime::get_run(const std::string& id) const { return impl_->store.get(id); }

void deployment_runtime::cancel(const std::string& id, std::function<void(trigger_outcome)> done) {
  auto& i = *impl_;
  std::lock_guard lock(i.shutdown_mu);  // the actors must outlive the request
  if (i.shut_down) return done({503, {}, "taskhost is shutting down"});
  auto run = i.store.get(id);
  if (!run) return done({404, {}, "Run not found: " + id});
  auto sup = i.supervisors.find(run->task_id);
  if (is_final(run->status) || sup == i.supervisors.end()) return done({200, id, {}});
  // A short blocking request (cancels are rare): the answer comes once the supervisor has
  // recorded the new state, so a read right after the response sees CANCELED.
  caf::scoped_actor self{*i.system};
  trigger_outcome out{200, id, {}};
  self->request(sup->second, std::chrono::seconds(10), actors::cancel_atom::value, id)
      .receive([](bool) {}, [&](caf::error& e) { out = {503, {}, "cancel did not complete: " + i.system->render(e)}; });
  done(std::move(out));
}

bool deployment_runtime::shutdown() {
  auto& i = *impl_;
  std::lock_guard lock(i.shutdown_mu);
  if (i.shut_down) return i.shutdown_clean;
  i.shut_down = true;
  i.accepting = false;
  if (i.gateway) i.gateway->refuse_triggers();
  if (i.http) i.http->stop_accepting();
  auto grace = std::chrono::milliseconds(i.cfg.shutdown_grace_ms);
  log::info("shutting down", {{"running_attempts", i.exec->in_flight()}, {"grace_period_ms", grace.count()}});
  i.shutdown_clean = i.exec->stop(grace);
  if (!i.shutdown_clean)
    log::warn("grace period over; attempts still running are abandoned", {{"running_attempts", i.exec->in_flight()}});
  {
    // Every attempt result already sent is in the supervisors' mailboxes; a drain request is
    // answered after them, so the store holds every result before the actors stop.
    caf::scoped_actor self{*i.system};
    for (auto& [id, sup] : i.supervisors)
      self->request(sup, std::chrono::seconds(5), actors::drain_atom::value).receive([] {}, [&](caf::error&) {});
    self->send_exit(i.router, caf::exit_reason::user_shutdown);
    for (auto& [id, sup] : i.supervisors) self->send_exit(sup, caf::exit_reason::user_shutdown);
  }
  i.router = nullptr;
  i.supervisors.clear();
  if (i.http) i.http->stop();
  if (i.shutdown_clean) {
    i.system.reset();
  } else {
    // Abandoned attempts may still finish and message their supervisor: keep the actor system
    // (deliberately leaked) so that they never touch a destroyed one. The process is exiting.
    (void)i.system.release();
  }
  log::info("stopped", {{"clean", i.shutdown_clean}});
  return i.shutdown_clean;
}

}  // namespace taskhost
