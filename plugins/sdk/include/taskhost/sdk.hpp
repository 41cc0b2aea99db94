// taskhost C++ SDK — write tasks in C++20, build them as a plugin, run them with taskhost.
//
// Example:
//
//   #include <taskhost/sdk.hpp>
//   namespace th = taskhost;
//
//   th::task hello_world{{
//       .id = "hello-world",
//       .run = [](th::json payload, th::run_context& ctx) -> th::json {
//           ctx.logger.info("greeting", {{"message", payload.at("message")}});
//           return {{"echo", payload.at("message")}};
//       },
//   }};
//   TASKHOST_PLUGIN("hello", "1.0.0", hello_world);
//
// More: a task's own `.retry`, `.max_duration` and lifecycle hooks (`.on_success = ...`, see
// task_definition); global hooks with th::hook; `ctx.signal` for cancellation and time-outs.
//
// Build it with `taskhost_add_plugin(hello SOURCES hello_world.cpp)` (plugins/sdk/TaskhostPlugin.cmake).
//
// This header is header-only and depends on the C++ standard library and nlohmann-json only. It
// sits on top of the C ABI in plugin_abi.h: no C++ type and no exception crosses into the host.
// Every entry point the host calls catches all exceptions and turns them into an error result.
#pragma once

#include <taskhost/plugin_abi.h>

#include <cxxabi.h>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#define TASKHOST_SDK_VERSION "0.2.0"

namespace taskhost {

using json = nlohmann::json;

/// Thrown from `run` to fail the run at once, without further attempts.
class abort_run : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Structured logger of one run. Each line goes to the runtime's log tagged with the run id, the
/// task id and the attempt number. Cheap to copy; valid while the run's context is.
class logger {
public:
  explicit logger(const th_run_info* run = nullptr) : run_(run) {}
  void debug(std::string_view msg, const json& attrs = json::object()) const { write(TH_LOG_DEBUG, msg, attrs); }
  void info(std::string_view msg, const json& attrs = json::object()) const { write(TH_LOG_INFO, msg, attrs); }
  void warn(std::string_view msg, const json& attrs = json::object()) const { write(TH_LOG_WARN, msg, attrs); }
  void error(std::string_view msg, const json& attrs = json::object()) const { write(TH_LOG_ERROR, msg, attrs); }

private:
  void write(int level, std::string_view msg, const json& attrs) const {
    if (run_ == nullptr || run_->host == nullptr) return;
    const th_host_api* host = run_->host;
    // A field is only read when the host's struct is large enough to have it.
    if (host->struct_size < offsetof(th_host_api, log) + sizeof(host->log) || host->log == nullptr) return;
    std::string a = attrs.is_object() ? attrs.dump(-1, ' ', false, json::error_handler_t::replace) : "{}";
    host->log(run_->host_run, level, msg.data(), msg.size(), a.data(), a.size());
  }
  const th_run_info* run_;
};

/// The run's cancellation signal: fires when the run is cancelled or the attempt passes its max
/// duration. Code in-process cannot be killed, so a task that may run long should poll
/// `cancelled()` or sleep with `wait_for()` and return early; until it returns it keeps its
/// executor thread (the run itself is already recorded CANCELED or TIMED_OUT).
class cancel_signal {
public:
  explicit cancel_signal(const th_run_info* run = nullptr) : run_(run) {}
  /// True once the run was cancelled or timed out.
  bool cancelled() const { return reason() != TH_CANCEL_NONE; }
  /// TH_CANCEL_NONE, TH_CANCEL_CANCELED or TH_CANCEL_TIMED_OUT.
  int reason() const {
    const th_host_api* h = host_with(offsetof(th_host_api, cancel_reason) + sizeof(void*));
    return h && h->cancel_reason ? h->cancel_reason(run_->host_run) : TH_CANCEL_NONE;
  }
  /// Sleeps up to `d`, waking early when the signal fires. Returns true if it fired.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    const th_host_api* h = host_with(offsetof(th_host_api, wait_cancelled) + sizeof(void*));
    if (!h || !h->wait_cancelled) {  // an older host: sleep, then report what we know
      std::this_thread::sleep_for(d);
      return cancelled();
    }
    return h->wait_cancelled(run_->host_run, ms < 0 ? 0 : static_cast<uint64_t>(ms)) != TH_CANCEL_NONE;
  }

private:
  const th_host_api* host_with(size_t needed) const {
    if (run_ == nullptr || run_->host == nullptr || run_->host->struct_size < needed) return nullptr;
    return run_->host;
  }
  const th_run_info* run_;
};

namespace detail {
/// A readable C++ type name ("std::runtime_error") from a mangled one.
inline std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(mangled);
}
}  // namespace detail

namespace locals {
/// The typed name of a local. Create once, at namespace scope, and use it from any plugin that
/// was built with the same definition of T:
///
///   static auto db_local = th::locals::create<db_client>("db");
template <class T>
struct key {
  std::string name;
};
template <class T>
key<T> create(std::string name) {
  return key<T>{std::move(name)};
}
}  // namespace locals

/// Values scoped to one run, shared by its hooks and run — across plugins and attempts — and
/// destroyed when the run ends. A value is checked against the type it was set with: reading it
/// as another type is an error, never undefined behaviour.
class locals_view {
public:
  explicit locals_view(const th_run_info* run) : run_(run) {}

  /// Stores `value` under the key (replacing any value) and returns a reference to the stored one.
  template <class T>
  T& set(const locals::key<T>& k, T value) {
    const th_host_api* h = host();
    T* p = new T(std::move(value));
    h->local_set(run_->host_run, k.name.c_str(), type_of<T>().c_str(), p, [](void* v) { delete static_cast<T*>(v); });
    return *p;
  }
  /// The value, or nullptr if the key is not set. Throws std::logic_error if it holds another type.
  template <class T>
  T* get(const locals::key<T>& k) const {
    void* v = nullptr;
    const char* stored = nullptr;
    int rc = host()->local_get(run_->host_run, k.name.c_str(), type_of<T>().c_str(), &v, &stored);
    if (rc == TH_LOCAL_MISSING) return nullptr;
    if (rc == TH_LOCAL_TYPE_MISMATCH)
      throw std::logic_error("local '" + k.name + "' holds a value of type " + (stored ? stored : "?") + ", not " + type_of<T>());
    return static_cast<T*>(v);
  }
  /// The value; throws std::runtime_error naming the key if it is not set.
  template <class T>
  T& get_or_throw(const locals::key<T>& k) const {
    if (T* v = get(k)) return *v;
    throw std::runtime_error("local '" + k.name + "' is not set");
  }

private:
  template <class T>
  static std::string type_of() {
    return detail::demangle(typeid(T).name()) + " (" + std::to_string(sizeof(T)) + " bytes)";
  }
  const th_host_api* host() const {
    if (run_ == nullptr || run_->host == nullptr ||
        run_->host->struct_size < offsetof(th_host_api, local_get) + sizeof(void*))
      throw std::logic_error("locals need taskhost with plugin ABI 1.2 or newer");
    return run_->host;
  }
  const th_run_info* run_;
};

/// The run's metadata: a JSON object (≤ 256 KB) stored with the run and shown as `metadata` in its
/// JSON while it executes (GET /api/v3/runs/{id}), e.g. for progress. Every change is recorded at
/// once; a change that would pass 256 KB (or an increment of a non-number) throws
/// std::runtime_error and leaves the metadata as it was.
class metadata_view {
public:
  explicit metadata_view(const th_run_info* run) : run_(run) {}
  metadata_view& set(const std::string& key, json value) { return op("set", key, std::move(value)); }
  /// Appends to the array at `key` (a missing key becomes an array, a scalar one becomes [scalar]).
  metadata_view& append(const std::string& key, json value) { return op("append", key, std::move(value)); }
  metadata_view& increment(const std::string& key, double by = 1) {
    return op("increment", key, by == static_cast<double>(static_cast<int64_t>(by)) ? json(static_cast<int64_t>(by)) : json(by));
  }
  metadata_view& decrement(const std::string& key, double by = 1) { return increment(key, -by); }
  metadata_view& remove(const std::string& key) { return op("remove", key, nullptr); }
  /// Replaces the whole metadata with `object`.
  metadata_view& replace(json object) { return op("replace", "", std::move(object)); }
  /// The whole metadata (an object; empty when nothing was set).
  json current() const {
    const th_host_api* h = host();
    std::string buf(256, '\0');
    size_t n = h->metadata_get(run_->host_run, buf.data(), buf.size());
    if (n > buf.size()) {
      buf.resize(n);
      n = h->metadata_get(run_->host_run, buf.data(), buf.size());
    }
    buf.resize(std::min(n, buf.size()));
    return json::parse(buf, nullptr, false);
  }
  /// One key's value, or null.
  json get(const std::string& key) const {
    json m = current();
    return m.is_object() && m.contains(key) ? m[key] : json(nullptr);
  }

private:
  metadata_view& op(const char* kind, const std::string& key, json value) {
    const th_host_api* h = host();
    json j = {{"op", kind}, {"value", std::move(value)}};
    if (!key.empty()) j["key"] = key;
    std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
    char err[512] = {0};
    if (h->metadata_update(run_->host_run, s.data(), s.size(), err, sizeof err) != 0)
      throw std::runtime_error(std::string("metadata: ") + err);
    return *this;
  }
  const th_host_api* host() const {
    if (run_ == nullptr || run_->host == nullptr ||
        run_->host->struct_size < offsetof(th_host_api, metadata_get) + sizeof(void*))
      throw std::logic_error("ctx.metadata needs taskhost with plugin ABI 1.3 or newer");
    return run_->host;
  }
  const th_run_info* run_;
};

/// What a run's code can see and use while it executes. Passed by reference to `run`; valid until
/// `run` returns. Not thread-safe: use it from the thread that runs the task.
class run_context {
public:
  explicit run_context(const th_run_info* run) : logger(run), signal(run), locals(run), metadata(run), run_(run) {}
  std::string_view run_id() const { return run_->run_id; }
  std::string_view task_id() const { return run_->task_id; }
  /// 1 for the first attempt, 2 for the first retry, ...
  unsigned attempt() const { return run_->attempt; }
  /// Shorthand for signal.cancelled().
  bool cancelled() const { return signal.cancelled(); }

  taskhost::logger logger;
  cancel_signal signal;
  locals_view locals;   ///< the run's locals (see locals_view)
  metadata_view metadata;  ///< the run's metadata (see metadata_view)

private:
  const th_run_info* run_;
};

/// The body of a task. Accepts any callable `R(json payload, run_context&)` where R converts to
/// json (or is void, which gives a null output).
class run_function {
public:
  run_function() = default;
  template <class F,
            class = std::enable_if_t<std::is_invocable_v<F&, json, run_context&> &&
                                     !std::is_same_v<std::decay_t<F>, run_function>>>
  run_function(F f) {  // NOLINT: implicit on purpose, so `.run = [](...) {...}` reads naturally
    fn_ = [f = std::move(f)](json payload, run_context& ctx) mutable -> json {
      using R = std::invoke_result_t<F&, json, run_context&>;
      if constexpr (std::is_void_v<R>) {
        f(std::move(payload), ctx);
        return nullptr;
      } else {
        return json(f(std::move(payload), ctx));
      }
    };
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }
  json operator()(json payload, run_context& ctx) const { return fn_(std::move(payload), ctx); }

private:
  std::function<json(json, run_context&)> fn_;
};


/// A task's own retry policy; unset fields come from the deployment (tasks.<id>.retry, then
/// defaults.retry). The trigger's maxAttempts beats max_attempts here.
struct retry_options {
  std::optional<int> max_attempts;     ///< counts the first attempt; 1..250
  std::optional<double> factor;        ///< >= 1
  std::optional<std::chrono::milliseconds> min_timeout;
  std::optional<std::chrono::milliseconds> max_timeout;
  std::optional<bool> randomize;
};

/// Kinds of lifecycle hooks. Global hooks (th::hook) of a kind run before the task's own, except
/// catch_error, where the task's runs first; the first non-empty catch_error answer wins.
enum class hook_kind : int {
  init = TH_HOOK_INIT,
  on_start = TH_HOOK_ON_START,
  on_start_attempt = TH_HOOK_ON_START_ATTEMPT,
  on_success = TH_HOOK_ON_SUCCESS,
  on_failure = TH_HOOK_ON_FAILURE,
  on_complete = TH_HOOK_ON_COMPLETE,
  cleanup = TH_HOOK_CLEANUP,
  catch_error = TH_HOOK_CATCH_ERROR,
  on_wait = TH_HOOK_ON_WAIT,
  on_resume = TH_HOOK_ON_RESUME,
  on_cancel = TH_HOOK_ON_CANCEL,
};
inline constexpr hook_kind init = hook_kind::init;
inline constexpr hook_kind on_start = hook_kind::on_start;
inline constexpr hook_kind on_start_attempt = hook_kind::on_start_attempt;
inline constexpr hook_kind on_success = hook_kind::on_success;
inline constexpr hook_kind on_failure = hook_kind::on_failure;
inline constexpr hook_kind on_complete = hook_kind::on_complete;
inline constexpr hook_kind cleanup = hook_kind::cleanup;
inline constexpr hook_kind catch_error = hook_kind::catch_error;
inline constexpr hook_kind on_wait = hook_kind::on_wait;
inline constexpr hook_kind on_resume = hook_kind::on_resume;
inline constexpr hook_kind on_cancel = hook_kind::on_cancel;

/// What a hook sees. Valid during the hook call only.
class hook_context {
public:
  hook_context(const th_run_info* run, json input) : ctx(run), logger(ctx.logger), locals(ctx.locals), in_(std::move(input)) {}
  /// The run's payload.
  const json& payload() const { return field("payload"); }
  unsigned attempt() const { return ctx.attempt(); }
  /// on_success / on_complete of a successful run: the output; else null.
  const json& output() const { return field("output"); }
  /// catch_error / on_failure / on_complete of a failed run: {"message", "name"?}; else null.
  const json& error() const { return field("error"); }
  /// on_complete: whether the run succeeded.
  bool ok() const { return in_.value("ok", false); }
  /// on_failure / on_complete: the run's final status ("COMPLETED", "FAILED", "CANCELED",
  /// "TIMED_OUT"); catch_error: the status the run would end in without an answer.
  std::string status() const { return in_.value("status", ""); }

  run_context ctx;          ///< run id, attempt, signal
  taskhost::logger& logger; ///< logs like ctx.logger in run
  locals_view& locals;      ///< the run's locals, as ctx.locals in run

private:
  const json& field(const char* k) const {
    static const json null_value;
    auto it = in_.find(k);
    return it == in_.end() ? null_value : *it;
  }
  json in_;
};

/// What catch_error may answer; an empty optional means "no opinion" (the next handler is asked,
/// then the retry policy decides).
struct catch_error_result {
  bool skip_retrying = false;                                   ///< fail the run now
  std::optional<std::chrono::system_clock::time_point> retry_at;  ///< retry at this time
  std::optional<std::chrono::milliseconds> retry_delay;         ///< retry after this delay
  std::optional<retry_options> retry;                    ///< retry per these options
  std::optional<json> error;                                    ///< record this error instead
};

using hook_fn = std::function<void(hook_context&)>;
using catch_error_fn = std::function<std::optional<catch_error_result>(hook_context&)>;

/// A task's definition. Fields are added at the end only, so designated initializers keep working.
struct task_definition {
  std::string id;            ///< unique task id, kebab-case by convention ("hello-world")
  run_function run;          ///< the body
  std::string description;   ///< optional, shown by `taskhost plugins list`
  retry_options retry = {};  ///< optional; see retry_options
  /// Optional: longest an attempt may run (at least 5 s); past it the run is TIMED_OUT, not
  /// retried, and `ctx.signal` fires. The trigger's maxDuration beats it; it beats the YAML's.
  std::chrono::seconds max_duration{0};
  // Lifecycle hooks of this task (each optional). A throw in init / on_start / on_start_attempt
  // fails the attempt (retryable); a throw in on_success / on_failure / on_complete / cleanup /
  // on_cancel is logged with the run and otherwise ignored; a throw in catch_error is a retryable
  // internal error.
  hook_fn init = {};
  hook_fn on_start = {};          ///< first attempt only
  hook_fn on_start_attempt = {};  ///< every attempt
  hook_fn on_success = {};
  hook_fn on_failure = {};        ///< no retry follows; also for CANCELED and TIMED_OUT runs
  hook_fn on_complete = {};       ///< after on_success / on_failure; ctx.ok() tells which
  hook_fn cleanup = {};           ///< end of every attempt
  catch_error_fn catch_error = {};
  hook_fn on_cancel = {};         ///< the run was cancelled while executing
};

/// A task. Declare one per task at namespace scope and list them in TASKHOST_PLUGIN.
class task {
public:
  explicit task(task_definition def) : def_(std::move(def)) {}
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  const task_definition& definition() const { return def_; }

private:
  task_definition def_;
};

/// The coroutine type of middleware: `[](th::middleware_context& mw, th::next next) -> th::async<void> { ... }`.
/// Inside a middleware, `co_await next()` is the one thing to await for now (waits come later).
template <class T = void>
class async;

template <>
class async<void> {
public:
  struct promise_type {
    std::exception_ptr error;
    async get_return_object() { return async{std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };
  explicit async(std::coroutine_handle<promise_type> h) : h_(h) {}
  async(async&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  async(const async&) = delete;
  ~async() {
    if (h_) h_.destroy();
  }
  std::coroutine_handle<promise_type> handle() const { return h_; }

private:
  std::coroutine_handle<promise_type> h_;
};

/// What `co_await next()` gives a middleware: how everything inside it (hooks, run, the
/// middleware further in) ended. It never throws for a failed attempt.
struct next_result {
  bool ok = true;
  json error;  ///< {"message", "name"?, "stage"?} when !ok
};

namespace detail {
struct next_state {
  bool called = false;
  bool waiting = false;
  next_result result;
};
}  // namespace detail

/// The continuation of a middleware. Call and await it exactly once: `co_await next();`.
class next {
public:
  explicit next(detail::next_state* st) : st_(st) {}
  struct awaiter {
    detail::next_state* st;
    bool await_ready() const {
      if (st->called) throw std::logic_error("next() called twice");
      return false;
    }
    void await_suspend(std::coroutine_handle<>) noexcept {
      st->called = true;
      st->waiting = true;
    }
    next_result await_resume() noexcept {
      st->waiting = false;
      return st->result;
    }
  };
  awaiter operator()() const { return awaiter{st_}; }

private:
  detail::next_state* st_;
};

/// What a middleware sees. Valid for the whole attempt.
class middleware_context {
public:
  middleware_context(const th_run_info* run, json payload) : ctx(run), logger(ctx.logger), locals(ctx.locals), payload_(std::move(payload)) {}
  const json& payload() const { return payload_; }
  unsigned attempt() const { return ctx.attempt(); }
  run_context ctx;
  taskhost::logger& logger;
  locals_view& locals;

private:
  json payload_;
};

using middleware_fn = std::function<async<void>(middleware_context&, next)>;

namespace detail {

inline std::string type_name_of(const std::exception& e) { return demangle(typeid(e).name()); }

inline std::string error_json(std::string_view name, std::string_view message, bool retry = true) {
  json e = {{"name", name}, {"message", message}};
  if (!retry) e["retry"] = false;
  return e.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// One attempt of one run, as the plugin sees it. OWNERSHIP: created by `start`, freed by `destroy`.
struct execution {
  const task* t;
  const th_run_info* run;
  std::string out;  // bytes handed to the host by step; valid until the next step or destroy
};

inline int start(void* user_data, const th_run_info* run, th_execution** out, th_bytes* error) noexcept {
  try {
    auto* e = new execution{static_cast<const task*>(user_data), run, {}};
    *out = reinterpret_cast<th_execution*>(e);
    return 0;
  } catch (...) {
    static thread_local std::string msg;
    msg = error_json("InternalError", "out of memory starting the execution");
    *error = th_bytes{msg.data(), msg.size()};
    return 1;
  }
}

inline th_step_status step(th_execution* raw, th_bytes* out) noexcept {
  auto* e = reinterpret_cast<execution*>(raw);
  th_step_status status = TH_STEP_FAILED;
  try {
    json payload;
    try {
      const th_bytes& p = e->run->payload;
      payload = p.len == 0 ? json(nullptr) : json::parse(std::string_view(p.data, p.len));
    } catch (const json::parse_error& pe) {
      e->out = error_json("PayloadParseError", pe.what(), false);
      *out = th_bytes{e->out.data(), e->out.size()};
      return TH_STEP_FAILED;
    }
    run_context ctx(e->run);
    const task_definition& def = e->t->definition();
    json result = def.run(std::move(payload), ctx);
    e->out = result.dump(-1, ' ', false, json::error_handler_t::replace);
    status = TH_STEP_COMPLETED;
  } catch (const abort_run& ex) {
    e->out = error_json("AbortTaskRunError", ex.what(), false);
  } catch (const std::exception& ex) {
    e->out = error_json(type_name_of(ex), ex.what());
  } catch (...) {
    e->out = error_json("UnknownError", "the task threw something that is not a std::exception");
  }
  *out = th_bytes{e->out.data(), e->out.size()};
  return status;
}

inline void destroy(th_execution* raw) noexcept { delete reinterpret_cast<execution*>(raw); }

/// One hook as the plugin registers it. OWNERSHIP: global hooks are the th::hook objects
/// themselves; task hooks are owned by the plugin_registry.
struct hook_entry {
  hook_kind kind;
  std::string name;
  std::string task_id;  // empty: global
  std::function<json(hook_context&)> fn;  // returns the answer (null for none)
};

/// Every th::hook of this plugin, in construction order. One per plugin: the symbol is hidden.
inline std::vector<const hook_entry*>& global_hooks() {
  static std::vector<const hook_entry*> hooks;
  return hooks;
}

inline json catch_error_answer(const std::optional<catch_error_result>& r) {
  if (!r) return nullptr;
  json a = json::object();
  if (r->skip_retrying) a["skipRetrying"] = true;
  if (r->retry_at)
    a["retryAtMs"] = std::chrono::duration_cast<std::chrono::milliseconds>(r->retry_at->time_since_epoch()).count();
  if (r->retry_delay) a["retryDelayMs"] = r->retry_delay->count();
  if (r->retry) {
    json o = json::object();
    if (r->retry->max_attempts) o["maxAttempts"] = *r->retry->max_attempts;
    if (r->retry->factor) o["factor"] = *r->retry->factor;
    if (r->retry->min_timeout) o["minTimeoutMs"] = r->retry->min_timeout->count();
    if (r->retry->max_timeout) o["maxTimeoutMs"] = r->retry->max_timeout->count();
    if (r->retry->randomize) o["randomize"] = *r->retry->randomize;
    a["retry"] = o;
  }
  if (r->error) a["error"] = *r->error;
  return a;
}

/// Wraps a user's hook function: void(hook_context&) or optional<catch_error_result>(hook_context&).
template <class F>
std::function<json(hook_context&)> wrap_hook(F fn) {
  return [fn = std::move(fn)](hook_context& h) mutable -> json {
    using R = std::invoke_result_t<F&, hook_context&>;
    if constexpr (std::is_void_v<R>) {
      fn(h);
      return nullptr;
    } else {
      return catch_error_answer(fn(h));
    }
  };
}

inline int call_hook(void* user_data, const th_run_info* run, th_bytes input, th_bytes* out) noexcept {
  static thread_local std::string buf;
  try {
    auto* e = static_cast<const hook_entry*>(user_data);
    json in = input.len ? json::parse(std::string_view(input.data, input.len), nullptr, false) : json::object();
    if (in.is_discarded()) in = json::object();
    hook_context h(run, std::move(in));
    buf = e->fn(h).dump(-1, ' ', false, json::error_handler_t::replace);
    *out = th_bytes{buf.data(), buf.size()};
    return 0;
  } catch (const std::exception& ex) {
    buf = error_json(type_name_of(ex), ex.what());
  } catch (...) {
    buf = error_json("UnknownError", "the hook threw something that is not a std::exception");
  }
  *out = th_bytes{buf.data(), buf.size()};
  return 1;
}

struct middleware_entry {
  std::string name;
  middleware_fn fn;
};

inline std::vector<const middleware_entry*>& global_middleware() {
  static std::vector<const middleware_entry*> all;
  return all;
}

/// One attempt of one middleware. OWNERSHIP: created by mw_start, freed by mw_destroy; the
/// coroutine frame lives inside.
struct mw_execution {
  const middleware_entry* m;
  middleware_context mc;
  next_state ns;
  std::optional<async<void>> coro;
  std::string out;
};

inline int mw_start(void* user_data, const th_run_info* run, th_execution** out, th_bytes* error) noexcept {
  static thread_local std::string msg;
  try {
    json payload = run->payload.len ? json::parse(std::string_view(run->payload.data, run->payload.len), nullptr, false) : json();
    if (payload.is_discarded()) payload = nullptr;
    auto* e = new mw_execution{static_cast<const middleware_entry*>(user_data), middleware_context(run, std::move(payload)), {}, {}, {}};
    *out = reinterpret_cast<th_execution*>(e);
    return 0;
  } catch (...) {
    msg = error_json("InternalError", "could not start the middleware");
    *error = th_bytes{msg.data(), msg.size()};
    return 1;
  }
}

inline th_step_status mw_step(th_execution* raw, th_bytes input, th_bytes* out) noexcept {
  auto* e = reinterpret_cast<mw_execution*>(raw);
  th_step_status status = TH_STEP_FAILED;
  try {
    if (!e->coro) {
      e->coro.emplace(e->m->fn(e->mc, next(&e->ns)));
    } else {
      json in = input.len ? json::parse(std::string_view(input.data, input.len), nullptr, false) : json::object();
      e->ns.result = next_result{in.is_object() && in.value("ok", false), in.is_object() ? in.value("error", json()) : json()};
    }
    auto h = e->coro->handle();
    h.resume();
    if (h.done()) {
      if (h.promise().error) std::rethrow_exception(h.promise().error);
      if (!e->ns.called) {
        e->out = error_json("MiddlewareError", "middleware '" + e->m->name + "' returned without calling next()");
      } else {
        e->out = "null";
        status = TH_STEP_COMPLETED;
      }
    } else if (e->ns.waiting) {
      e->out = R"({"await":"next"})";
      status = TH_STEP_SUSPENDED;
    } else {
      e->out = error_json("MiddlewareError", "middleware '" + e->m->name + "' awaited something other than next()");
    }
  } catch (const std::exception& ex) {
    e->out = error_json(type_name_of(ex), ex.what());
  } catch (...) {
    e->out = error_json("UnknownError", "the middleware threw something that is not a std::exception");
  }
  *out = th_bytes{e->out.data(), e->out.size()};
  return status;
}

inline void mw_destroy(th_execution* raw) noexcept { delete reinterpret_cast<mw_execution*>(raw); }

/// The static descriptor a plugin's entry function returns. Built once, on first call.
class plugin_registry {
public:
  template <class... Tasks>
  plugin_registry(const char* name, const char* version, Tasks&... tasks) {
    (add(tasks), ...);
    desc_.struct_size = sizeof(th_plugin_descriptor);
    desc_.abi_major = TASKHOST_ABI_MAJOR;
    desc_.abi_minor = TASKHOST_ABI_MINOR;
    desc_.name = name;
    desc_.version = version;
    desc_.build_info = "taskhost-sdk " TASKHOST_SDK_VERSION "; g++ " __VERSION__;
    desc_.tasks = descs_.data();
    desc_.task_count = static_cast<uint32_t>(descs_.size());
    desc_.task_descriptor_size = sizeof(th_task_descriptor);
    for (const hook_entry* h : global_hooks()) add_hook(*h);
    for (const auto& h : task_hooks_) add_hook(*h);
    desc_.hooks = hooks_.data();
    desc_.hook_count = static_cast<uint32_t>(hooks_.size());
    desc_.hook_descriptor_size = sizeof(th_hook_descriptor);
    for (const middleware_entry* m : global_middleware()) {
      th_middleware_descriptor d{};
      d.struct_size = sizeof(th_middleware_descriptor);
      d.name = m->name.c_str();
      d.user_data = const_cast<middleware_entry*>(m);
      d.start = &detail::mw_start;
      d.step = &detail::mw_step;
      d.destroy = &detail::mw_destroy;
      middleware_.push_back(d);
    }
    desc_.middleware = middleware_.data();
    desc_.middleware_count = static_cast<uint32_t>(middleware_.size());
    desc_.middleware_descriptor_size = sizeof(th_middleware_descriptor);
  }
  const th_plugin_descriptor* descriptor() const { return &desc_; }

private:
  void add(const task& t) {
    th_task_descriptor d{};
    d.struct_size = sizeof(th_task_descriptor);
    d.id = t.definition().id.c_str();
    d.description = t.definition().description.empty() ? nullptr : t.definition().description.c_str();
    d.user_data = const_cast<task*>(&t);
    d.start = &detail::start;
    d.step = &detail::step;
    d.destroy = &detail::destroy;
    const retry_options& r = t.definition().retry;
    d.retry.max_attempts = r.max_attempts.value_or(0);
    d.retry.randomize = r.randomize ? (*r.randomize ? 1 : 0) : -1;
    d.retry.factor = r.factor.value_or(0.0);
    d.retry.min_timeout_ms = r.min_timeout ? r.min_timeout->count() : -1;
    d.retry.max_timeout_ms = r.max_timeout ? r.max_timeout->count() : -1;
    d.max_duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t.definition().max_duration).count());
    descs_.push_back(d);
    const task_definition& def = t.definition();
    auto own = [&](hook_kind k, const auto& fn) {
      if (fn) task_hooks_.push_back(std::make_unique<hook_entry>(hook_entry{k, def.id, def.id, wrap_hook(fn)}));
    };
    own(hook_kind::init, def.init);
    own(hook_kind::on_start, def.on_start);
    own(hook_kind::on_start_attempt, def.on_start_attempt);
    own(hook_kind::on_success, def.on_success);
    own(hook_kind::on_failure, def.on_failure);
    own(hook_kind::on_complete, def.on_complete);
    own(hook_kind::cleanup, def.cleanup);
    own(hook_kind::catch_error, def.catch_error);
    own(hook_kind::on_cancel, def.on_cancel);
  }
  void add_hook(const hook_entry& h) {
    th_hook_descriptor d{};
    d.struct_size = sizeof(th_hook_descriptor);
    d.kind = static_cast<int32_t>(h.kind);
    d.name = h.name.c_str();
    d.task_id = h.task_id.empty() ? nullptr : h.task_id.c_str();
    d.user_data = const_cast<hook_entry*>(&h);
    d.call = &detail::call_hook;
    hooks_.push_back(d);
  }
  std::vector<th_middleware_descriptor> middleware_;
  std::vector<std::unique_ptr<hook_entry>> task_hooks_;
  std::vector<th_hook_descriptor> hooks_;
  std::vector<th_task_descriptor> descs_;
  th_plugin_descriptor desc_{};
};

}  // namespace detail

/// A middleware: wraps every stage of an attempt of the tasks whose deployment lists it by name
/// (`middleware: [db]` globally or under `tasks.<id>`). Declare at namespace scope.
///
///   th::middleware db{"db", [](th::middleware_context& mw, th::next next) -> th::async<void> {
///       auto& conn = mw.locals.set(db_local, db_client{});
///       conn.connect();
///       co_await next();      // everything else of the attempt runs inside
///       conn.disconnect();
///   }};
class middleware {
public:
  template <class F>
  middleware(std::string name, F fn) : entry_{std::move(name), middleware_fn(std::move(fn))} {
    detail::global_middleware().push_back(&entry_);
  }
  middleware(const middleware&) = delete;
  middleware& operator=(const middleware&) = delete;

private:
  detail::middleware_entry entry_;
};

/// A global lifecycle hook: runs for every task of the deployment (before the task's own hook of
/// the same kind). Declare at namespace scope; it registers itself with the plugin.
///
///   th::hook audit{th::on_complete, "audit", [](th::hook_context& h) { h.logger.info("done", {{"ok", h.ok()}}); }};
///   th::hook rate_limits{th::catch_error, "rate-limits", [](th::hook_context& h) -> std::optional<th::catch_error_result> {
///       if (h.error().value("name", "") != "RateLimited") return std::nullopt;
///       return th::catch_error_result{.retry_delay = std::chrono::seconds(30)};
///   }};
class hook {
public:
  template <class F>
  hook(hook_kind kind, std::string name, F fn) : entry_{kind, std::move(name), {}, detail::wrap_hook(std::move(fn))} {
    detail::global_hooks().push_back(&entry_);
  }
  hook(const hook&) = delete;
  hook& operator=(const hook&) = delete;

private:
  detail::hook_entry entry_;
};

}  // namespace taskhost

/// Declares the plugin: its name, its version, and the tasks it provides. Use once per plugin.
#define TASKHOST_PLUGIN(plugin_name, plugin_version, ...)                                      \
  extern "C" TASKHOST_EXPORT const th_plugin_descriptor* TASKHOST_ENTRY_SYMBOL(void) {         \
    try {                                                                                      \
      static const ::taskhost::detail::plugin_registry taskhost_registry_(                     \
          plugin_name, plugin_version __VA_OPT__(,) __VA_ARGS__);                              \
      return taskhost_registry_.descriptor();                                                  \
    } catch (...) {                                                                            \
      return nullptr; /* the host reports "entry function returned no descriptor" */           \
    }                                                                                          \
  }
