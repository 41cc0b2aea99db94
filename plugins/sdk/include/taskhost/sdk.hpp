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
// Build it with `taskhost_add_plugin(hello SOURCES hello_world.cpp)` (cmake/TaskhostPlugin.cmake).
//
// This header is header-only and depends on the C++ standard library and nlohmann-json only. It
// sits on top of the C ABI in plugin_abi.h: no C++ type and no exception crosses into the host.
// Every entry point the host calls catches all exceptions and turns them into an error result.
#pragma once

#include <taskhost/plugin_abi.h>

#include <cxxabi.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
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

/// What a run's code can see and use while it executes. Passed by reference to `run`; valid until
/// `run` returns. Not thread-safe: use it from the thread that runs the task.
class run_context {
public:
  explicit run_context(const th_run_info* run) : logger(run), signal(run), run_(run) {}
  std::string_view run_id() const { return run_->run_id; }
  std::string_view task_id() const { return run_->task_id; }
  /// 1 for the first attempt, 2 for the first retry, ...
  unsigned attempt() const { return run_->attempt; }
  /// Shorthand for signal.cancelled().
  bool cancelled() const { return signal.cancelled(); }

  taskhost::logger logger;
  cancel_signal signal;

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

/// A task's definition. Fields are added at the end only, so designated initializers keep working.
struct task_definition {
  std::string id;            ///< unique task id, kebab-case by convention ("hello-world")
  run_function run;          ///< the body
  std::string description;   ///< optional, shown by `taskhost plugins list`
  retry_options retry = {};  ///< optional; see retry_options
  /// Optional: longest an attempt may run (at least 5 s); past it the run is TIMED_OUT, not
  /// retried, and `ctx.signal` fires. The trigger's maxDuration beats it; it beats the YAML's.
  std::chrono::seconds max_duration{0};
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

namespace detail {

inline std::string type_name_of(const std::exception& e) {
  int status = 0;
  const char* mangled = typeid(e).name();
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(mangled);
}

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
  }
  std::vector<th_task_descriptor> descs_;
  th_plugin_descriptor desc_{};
};

}  // namespace detail
}  // namespace taskhost

/// Declares the plugin: its name, its version, and the tasks it provides. Use once per plugin.
#define TASKHOST_PLUGIN(plugin_name, plugin_version, ...)                                      \
  extern "C" TASKHOST_EXPORT const th_plugin_descriptor* TASKHOST_ENTRY_SYMBOL(void) {         \
    try {                                                                                      \
      static const ::taskhost::detail::plugin_registry taskhost_registry_(                     \
          plugin_name, plugin_version, __VA_ARGS__);                                           \
      return taskhost_registry_.descriptor();                                                  \
    } catch (...) {                                                                            \
      return nullptr; /* the host reports "entry function returned no descriptor" */           \
    }                                                                                          \
  }
