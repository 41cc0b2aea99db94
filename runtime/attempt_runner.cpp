#include "runtime/attempt_runner.hpp"

#include <algorithm>
#include <cstring>

namespace taskhost {
namespace {

using json = nlohmann::json;

/// What host callbacks receive as `host_run`.
struct host_run_state {
  const attempt_input* in;
  std::string call_buf;    ///< the last response of host_call
  bool replaying = false;  ///< still before the first operation that is not in the journal
};

void host_log(void* host_run, int level, const char* msg, size_t msg_len, const char* attrs, size_t attrs_len) noexcept {
  try {
    auto* st = static_cast<host_run_state*>(host_run);
    if (st->replaying) return;  // written the first time through
    json a = attrs_len ? json::parse(std::string_view(attrs, attrs_len), nullptr, false) : json::object();
    if (!a.is_object()) a = json::object();
    a["run"] = st->in->run_id;
    a["task"] = st->in->task_id;
    a["attempt"] = st->in->attempt;
    log::level l = level <= TH_LOG_DEBUG ? log::level::debug
                   : level == TH_LOG_INFO ? log::level::info
                   : level == TH_LOG_WARN ? log::level::warn
                                          : log::level::error;
    log::write(l, std::string_view(msg, msg_len), a);
    if (st->in->on_log) st->in->on_log(l, std::string_view(msg, msg_len), a);
  } catch (...) {
    // logging must never fail a run
  }
}

int host_cancel_reason(void* host_run) noexcept { return static_cast<host_run_state*>(host_run)->in->token->reason(); }

int host_wait_cancelled(void* host_run, uint64_t timeout_ms) noexcept {
  try {
    auto ms = std::chrono::milliseconds(std::min<uint64_t>(timeout_ms, uint64_t(1) << 40));
    return static_cast<host_run_state*>(host_run)->in->token->wait_for(ms);
  } catch (...) {
    return TH_CANCEL_NONE;
  }
}

int host_local_set(void* host_run, const char* key, const char* type, void* value, void (*destroy)(void*)) noexcept {
  try {
    static_cast<host_run_state*>(host_run)->in->locals->set(key, type, value, destroy);
    return TH_LOCAL_OK;
  } catch (...) {
    destroy(value);  // out of memory: the value is not kept
    return TH_LOCAL_MISSING;
  }
}

int host_local_get(void* host_run, const char* key, const char* type, void** value, const char** stored_type) noexcept {
  try {
    return static_cast<host_run_state*>(host_run)->in->locals->get(key, type, value, stored_type);
  } catch (...) {
    return TH_LOCAL_MISSING;
  }
}

int host_metadata_update(void* host_run, const char* op, size_t op_len, char* err, size_t err_cap) noexcept {
  std::string why;
  try {
    auto* st = static_cast<host_run_state*>(host_run);
    json j = json::parse(std::string_view(op, op_len), nullptr, false);
    if (st->replaying) return 0;  // applied the first time through
    if (j.is_discarded()) why = "metadata operation is not valid JSON";
    else if (!st->in->on_metadata) why = "metadata is not available here";
    else why = st->in->on_metadata(j);
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (why.empty()) return 0;
  if (err && err_cap) {
    size_t n = std::min(why.size(), err_cap - 1);
    std::memcpy(err, why.data(), n);
    err[n] = '\0';
  }
  return 1;
}

size_t host_metadata_get(void* host_run, char* buf, size_t cap) noexcept {
  try {
    auto* st = static_cast<host_run_state*>(host_run);
    json m = st->in->get_metadata ? st->in->get_metadata() : json::object();
    if (!m.is_object()) m = json::object();
    std::string s = m.dump(-1, ' ', false, json::error_handler_t::replace);
    if (buf && s.size() <= cap) std::memcpy(buf, s.data(), s.size());
    return s.size();
  } catch (...) {
    if (buf && cap >= 2) std::memcpy(buf, "{}", 2);
    return 2;
  }
}

int host_call(void* host_run, const char* method, const char* req, size_t req_len, th_bytes* response) noexcept {
  auto* st = static_cast<host_run_state*>(host_run);
  int rc = 1;
  try {
    json r = json::parse(std::string_view(req, req_len), nullptr, false);
    if (r.is_discarded()) {
      st->call_buf = json{{"message", "the request is not JSON"}}.dump();
    } else if (!st->in->on_call) {
      st->call_buf = json{{"message", "waits, child runs and steps are only available in a task's run"}}.dump();
    } else {
      json resp = st->in->on_call(method ? method : "", r);
      if (!(resp.is_object() && resp.value("replayed", false) && resp.value("done", false))) st->replaying = false;
      st->call_buf = resp.dump(-1, ' ', false, json::error_handler_t::replace);
      rc = 0;
    }
  } catch (const std::exception& e) {
    st->call_buf = json{{"message", e.what()}}.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (...) {
    st->call_buf = R"({"message":"internal error"})";
  }
  *response = th_bytes{st->call_buf.data(), st->call_buf.size()};
  return rc;
}

const th_host_api host_api = {sizeof(th_host_api), &host_log,      &host_cancel_reason,   &host_wait_cancelled,
                              &host_local_set,     &host_local_get, &host_metadata_update, &host_metadata_get,
                              &host_call};

std::string internal_error(const std::string& message) {
  return json{{"name", "InternalError"}, {"message", message}}.dump();
}

/// Makes sure an error from a plugin is an object with a string message.
std::string normalize_error(std::string_view bytes, bool& retryable) {
  json e = json::parse(bytes, nullptr, false);
  if (e.is_discarded() || !e.is_object()) {
    return json{{"name", "Error"}, {"message", std::string(bytes.substr(0, 4096))}}.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (!e.contains("message") || !e["message"].is_string()) e["message"] = e.value("message", json("unknown error")).dump();
  if (e.contains("retry") && e["retry"] == false) retryable = false;
  e.erase("retry");
  return e.dump();
}

}  // namespace

namespace {
th_run_info make_run_info(const attempt_input& in, host_run_state& state) {
  th_run_info info{};
  info.struct_size = sizeof(th_run_info);
  info.run_id = in.run_id.c_str();
  info.task_id = in.task_id.c_str();
  info.attempt = static_cast<uint32_t>(in.attempt);
  info.payload = th_bytes{in.payload.data(), in.payload.size()};
  info.host = &host_api;
  info.host_run = &state;
  return info;
}
}  // namespace

hook_stage_outcome run_hooks(const std::vector<const loaded_hook*>& hooks, const attempt_input& in, const json& input,
                             bool stop_on_error) {
  hook_stage_outcome out;
  attempt_input hook_in = in;
  hook_in.on_call = nullptr;  // hooks do not wait
  host_run_state state{&hook_in, {}};
  const th_run_info info = make_run_info(hook_in, state);
  const std::string bytes = input.dump(-1, ' ', false, json::error_handler_t::replace);
  for (const loaded_hook* h : hooks) {
    th_bytes answer{};
    int rc = h->descriptor->call(h->descriptor->user_data, &info, th_bytes{bytes.data(), bytes.size()}, &answer);
    std::string_view a = answer.data ? std::string_view(answer.data, answer.len) : std::string_view();
    if (rc != 0) {
      bool ignored = true;
      json err = json::parse(normalize_error(a, ignored));
      err["stage"] = hook_kind_name(h->kind);
      err["hook"] = h->name;
      if (stop_on_error) {
        out.ok = false;
        out.error = std::move(err);
        return out;
      }
      json attrs = {{"run", in.run_id}, {"task", in.task_id}, {"attempt", in.attempt}, {"hook", h->name},
                    {"stage", hook_kind_name(h->kind)}, {"error", err.value("message", "")}};
      log::warn("hook threw; ignored", attrs);
      if (in.on_log) in.on_log(log::level::warn, "hook threw; ignored", attrs);
      continue;
    }
    json value = a.empty() ? json(nullptr) : json::parse(a, nullptr, false);
    if (h->kind == TH_HOOK_CATCH_ERROR && value.is_object()) {
      out.answer = std::move(value);
      return out;  // the first answer wins
    }
  }
  return out;
}

struct task_execution::impl {
  const loaded_task* task;
  attempt_input in;
  host_run_state state{nullptr, {}};
  th_run_info info{};
  th_execution* ex = nullptr;
  bool started = false;
};

task_execution::task_execution(const loaded_task& task, attempt_input in) : impl_(std::make_unique<impl>()) {
  impl_->task = &task;
  impl_->in = std::move(in);
  impl_->state.in = &impl_->in;
  impl_->state.replaying = impl_->in.has_journal;
  impl_->info = make_run_info(impl_->in, impl_->state);
}

task_execution::~task_execution() {
  if (impl_->ex) impl_->task->descriptor->destroy(impl_->ex);
}

const attempt_input& task_execution::input() const { return impl_->in; }

step_outcome task_execution::step() {
  step_outcome so;
  attempt_outcome& out = so.outcome;
  const th_task_descriptor* d = impl_->task->descriptor;
  const attempt_input& in = impl_->in;
  if (!impl_->started) {
    impl_->started = true;
    th_bytes err{};
    if (d->start(d->user_data, &impl_->info, &impl_->ex, &err) != 0 || impl_->ex == nullptr) {
      impl_->ex = nullptr;
      out.json = err.data ? normalize_error(std::string_view(err.data, err.len), out.retryable)
                          : internal_error("the plugin could not start the run");
      return so;
    }
  } else if (impl_->ex == nullptr) {
    out.json = internal_error("the execution has already ended");
    return so;
  }
  th_bytes result{};
  th_step_status st = d->step(impl_->ex, &result);
  std::string_view bytes = result.data ? std::string_view(result.data, result.len) : std::string_view();
  switch (st) {
    case TH_STEP_COMPLETED:
      if (bytes.size() > in.max_output_bytes) {
        out.json = internal_error("output of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                                  std::to_string(in.max_output_bytes) + " bytes");
        out.retryable = false;
      } else if (!json::accept(bytes)) {
        out.json = internal_error("the plugin returned an output that is not JSON");
      } else {
        out.ok = true;
        out.json = bytes.empty() ? "null" : std::string(bytes);
        so.kind = step_outcome::completed;
      }
      break;
    case TH_STEP_FAILED:
      out.json = normalize_error(bytes, out.retryable);
      break;
    case TH_STEP_SUSPENDED: {
      json req = json::parse(bytes, nullptr, false);
      if (req.is_object() && req.contains("waitFor") && req["waitFor"].is_array() && !req["waitFor"].empty()) {
        so.kind = step_outcome::suspended;
        so.wait_for = req["waitFor"];
        return so;  // the execution stays, suspended
      }
      out.json = internal_error("the task suspended without saying what it waits for");
      out.retryable = false;
      break;
    }
    default:
      out.json = internal_error("the plugin returned unknown step status " + std::to_string(int(st)));
      break;
  }
  d->destroy(std::exchange(impl_->ex, nullptr));
  return so;
}

attempt_outcome run_attempt(const loaded_task& task, const attempt_input& in) {
  task_execution ex(task, in);
  step_outcome s = ex.step();
  if (s.kind == step_outcome::suspended) {
    attempt_outcome out;
    out.json = internal_error("the task suspended on a wait, and nothing here resumes it");
    out.retryable = false;
    return out;
  }
  return s.outcome;
}

struct middleware_chain::impl {
  attempt_input in;
  host_run_state state{nullptr, {}};
  th_run_info info{};
  std::vector<th_execution*> execs;
};

middleware_chain::middleware_chain(std::vector<const loaded_middleware*> mws, attempt_input in)
    : mws_(std::move(mws)), impl_(std::make_unique<impl>()) {
  impl_->in = std::move(in);
  impl_->state.in = &impl_->in;
  impl_->info = make_run_info(impl_->in, impl_->state);
  impl_->execs.assign(mws_.size(), nullptr);
}

middleware_chain::~middleware_chain() {
  for (size_t i = 0; i < mws_.size(); ++i)
    if (impl_->execs[i]) mws_[i]->descriptor->destroy(impl_->execs[i]);
}

bool middleware_chain::enter(size_t i, std::string& error) {
  const th_middleware_descriptor* d = mws_[i]->descriptor;
  th_execution* ex = nullptr;
  th_bytes err{};
  bool ignored = true;
  if (d->start(d->user_data, &impl_->info, &ex, &err) != 0 || ex == nullptr) {
    error = err.data ? normalize_error(std::string_view(err.data, err.len), ignored) : internal_error("the middleware could not start");
    return false;
  }
  th_bytes out{};
  th_step_status st = d->step(ex, th_bytes{nullptr, 0}, &out);
  if (st == TH_STEP_SUSPENDED) {
    impl_->execs[i] = ex;
    return true;
  }
  std::string_view bytes = out.data ? std::string_view(out.data, out.len) : std::string_view();
  error = st == TH_STEP_FAILED ? normalize_error(bytes, ignored)
                               : internal_error("middleware '" + mws_[i]->name + "' returned without calling next()");
  d->destroy(ex);
  return false;
}

bool middleware_chain::exit(size_t i, const json& outcome, std::string& error) {
  th_execution* ex = std::exchange(impl_->execs[i], nullptr);
  if (ex == nullptr) return true;
  const th_middleware_descriptor* d = mws_[i]->descriptor;
  const std::string in = outcome.dump(-1, ' ', false, json::error_handler_t::replace);
  th_bytes out{};
  th_step_status st = d->step(ex, th_bytes{in.data(), in.size()}, &out);
  bool ok = st == TH_STEP_COMPLETED;
  if (!ok) {
    bool ignored = true;
    std::string_view bytes = out.data ? std::string_view(out.data, out.len) : std::string_view();
    error = st == TH_STEP_FAILED ? normalize_error(bytes, ignored)
                                 : internal_error("middleware '" + mws_[i]->name + "' awaited again after next()");
  }
  d->destroy(ex);
  return ok;
}

}  // namespace taskhost
