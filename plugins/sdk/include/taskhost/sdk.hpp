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
// More: a task's own `.retry`, `.max_duration`, `.queue` (see queue_options) and lifecycle hooks
// (`.on_success = ...`, see task_definition); global hooks with th::hook; `ctx.signal` for
// cancellation and time-outs.
//
// Scheduled (cron) tasks get a th::schedule_payload instead of JSON (see scheduled_task):
//
//   th::scheduled_task report{{
//       .id = "daily-report", .cron = "0 9 * * 1-5",   // or {"0 9 * * 1-5", "Europe/London"}
//       .run = [](th::schedule_payload p, th::run_context& ctx) -> th::json {
//           return {{"for", th::format_timestamp(p.timestamp)}};
//       },
//   }};
//
// Tasks that wait are coroutines; they hold no thread while they wait and survive restarts:
//
//   th::task order{{
//       .id = "process-order",
//       .run = [](th::json order, th::run_context& ctx) -> th::async<th::json> {
//           auto charge = co_await ctx.trigger_and_wait("charge-card", order);   // a child run
//           co_await ctx.wait_for(std::chrono::hours{24});
//           auto ok = co_await ctx.wait_for_token(ctx.create_token({.timeout = std::chrono::hours{168}}));
//           int n = co_await ctx.step("count", [&] { return count_items(order); });  // runs once
//           co_return th::json{{"charged", charge.unwrap()}, {"items", n}};
//       },
//   }};
//
// (g++ 12 rejects a braced JSON list in the same expression as a co_await, "array used as
// initializer": build it in a variable first, `th::json arg = {{"n", 1}}; co_await f(arg);`.)
//
// The replay rule: each of these operations is journaled; after a restart (or when the runtime
// dropped the waiting coroutine from memory) the attempt runs again from the start of `run` and
// every journaled operation returns its recorded result at once. So code between awaits must do
// the same on every replay: put side effects and anything that varies (time, random numbers, I/O)
// inside ctx.step. See run_context for the whole list (waits, child runs, batches, tokens, th::all).
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
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#define TASKHOST_SDK_VERSION "0.5.0"

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

/// The coroutine type of tasks, helpers and middleware: `-> th::async<th::json>`, `-> th::async<void>`,
/// `-> th::async<int>`... An async<T> is awaited with `co_await`; exceptions pass through it.
template <class T = void>
class async;

namespace detail {
struct final_awaiter {
  bool await_ready() noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    auto c = h.promise().continuation;
    return c ? c : std::noop_coroutine();
  }
  void await_resume() noexcept {}
};
struct promise_base {
  std::exception_ptr error;
  std::coroutine_handle<> continuation;  ///< who awaits this coroutine (none for the outermost)
  std::suspend_always initial_suspend() noexcept { return {}; }
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};
template <class T>
struct value_promise : promise_base {
  std::optional<T> value;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};
struct void_promise : promise_base {
  void return_void() noexcept {}
};
}  // namespace detail

template <class T>
class async {
public:
  struct promise_type : std::conditional_t<std::is_void_v<T>, detail::void_promise, detail::value_promise<std::conditional_t<std::is_void_v<T>, int, T>>> {
    async get_return_object() { return async{std::coroutine_handle<promise_type>::from_promise(*this)}; }
  };
  explicit async(std::coroutine_handle<promise_type> h) : h_(h) {}
  async(async&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  async(const async&) = delete;
  ~async() {
    if (h_) h_.destroy();
  }
  std::coroutine_handle<promise_type> handle() const { return h_; }

  // Awaiting it runs it, then continues the awaiting coroutine with its result.
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().continuation = awaiting;
    return h_;
  }
  T await_resume() {
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
    if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
  }

private:
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
struct is_async : std::false_type {};
template <class T>
struct is_async<async<T>> : std::true_type {};

/// The journal side of one execution of a task's run: numbers its operations, calls the host,
/// and remembers what the coroutine waits for when it suspends.
struct wait_host {
  const th_run_info* run = nullptr;
  int seq = 0;                          ///< the next positional operation
  json waiting = json::array();         ///< journal keys the suspended coroutine awaits
  std::coroutine_handle<> resume_point; ///< the coroutine to resume when they are done

  json call(const char* method, const json& req) const {
    if (run == nullptr || run->host == nullptr || run->host->struct_size < offsetof(th_host_api, call) + sizeof(void*) ||
        run->host->call == nullptr)
      throw std::logic_error("waits, child runs, tokens and steps need taskhost with plugin ABI 1.4 or newer");
    std::string s = req.dump(-1, ' ', false, json::error_handler_t::replace);
    th_bytes out{};
    int rc = run->host->call(run->host_run, method, s.data(), s.size(), &out);
    json r = out.data ? json::parse(std::string_view(out.data, out.len), nullptr, false) : json();
    if (rc != 0) throw std::runtime_error(r.is_object() ? r.value("message", std::string("host call failed")) : std::string("host call failed"));
    return r;
  }
  /// Records (or, on a replay, finds) an operation: {"key", "done", "result"?}.
  json op(json req) {
    if (!req.contains("key")) req["seq"] = seq++;
    return call("op", req);
  }
};
}  // namespace detail

/// An error of a child run or a token wait: {"message", "name"} as recorded.
struct task_error {
  std::string message;
  std::string name;
  json raw;  ///< the whole error JSON
  static task_error from(const json& e) {
    task_error t;
    t.raw = e;
    if (e.is_object()) {
      t.message = e.value("message", std::string());
      t.name = e.value("name", std::string());
    }
    return t;
  }
};

/// Thrown by run_result::unwrap() for a child that did not complete.
class child_run_error : public std::runtime_error {
public:
  child_run_error(std::string run_id, task_error e)
      : std::runtime_error("child run " + run_id + " failed: " + e.message), run_id(std::move(run_id)), error(std::move(e)) {}
  std::string run_id;
  task_error error;
};

/// What trigger_and_wait gives: the child's output, or its error (any final status but
/// COMPLETED, e.g. FAILED, CANCELED, TIMED_OUT; or the task does not exist).
struct run_result {
  bool ok = false;
  std::string id;        ///< the child run ("" when it could not be triggered)
  std::string status;    ///< its final status
  json output;           ///< when ok
  task_error error;      ///< when !ok
  /// The output, or throws child_run_error with the child's message.
  const json& unwrap() const {
    if (!ok) throw child_run_error(id, error);
    return output;
  }
  static run_result from(const json& r) {
    run_result x;
    x.ok = r.value("ok", false);
    x.id = r.value("id", std::string());
    x.status = r.value("status", std::string());
    if (x.ok) x.output = r.value("output", json());
    else x.error = task_error::from(r.value("error", json::object()));
    return x;
  }
};

/// What batch_trigger_and_wait gives: one run_result per item, in item order.
struct batch_result {
  std::string id;  ///< the batch id (GET /api/v1/batches/{id})
  std::vector<run_result> runs;
  size_t size() const { return runs.size(); }
  const run_result& operator[](size_t i) const { return runs[i]; }
  auto begin() const { return runs.begin(); }
  auto end() const { return runs.end(); }
  static batch_result from(const json& r) {
    batch_result b;
    b.id = r.value("id", std::string());
    for (const auto& x : r.value("runs", json::array())) b.runs.push_back(run_result::from(x));
    return b;
  }
};

/// What wait_for_token gives: ok and the data it was completed with, or a timeout error.
struct token_result {
  bool ok = false;
  json output;
  task_error error;  ///< name "WaitpointTimeoutError" when it timed out
  static token_result from(const json& r) {
    token_result t;
    t.ok = r.value("ok", false);
    if (t.ok) t.output = r.value("output", json());
    else t.error = task_error::from(r.value("error", json::object()));
    return t;
  }
};

/// What wait_for / wait_until give (nothing to report; the time has come).
struct wait_done {
  static wait_done from(const json&) { return {}; }
};

/// A run triggered without waiting: its id.
struct run_handle {
  std::string id;
};
/// A batch triggered without waiting.
struct batch_handle {
  std::string batch_id;
  std::vector<std::string> run_ids;
};
/// A wait token: complete it over HTTP, the CLI, or ctx.complete_token; await it with wait_for_token.
struct wait_token {
  std::string id;
  bool is_cached = false;  ///< an earlier token with the same idempotency key
  json raw;                ///< the token as the API shows it
};

struct token_options {
  std::optional<std::chrono::milliseconds> timeout;  ///< none: waits until completed
  std::string idempotency_key;                        ///< "" = none
  std::vector<std::string> tags;
};

/// Options of a wait: with an idempotency key, the wait's result is kept across attempts (a retried
/// attempt does not wait again), and the key must be unique within the run.
struct wait_options {
  std::string idempotency_key;
};

/// An awaitable journaled operation (a wait, a child run, a batch, a token). It is recorded when it
/// is first awaited; a replay finds it in the journal.
template <class R>
class operation {
public:
  operation(detail::wait_host* host, json req) : host_(host), req_(std::move(req)) {
    if (host_ == nullptr) throw std::logic_error("waits and child runs are only available in a task's run");
  }
  /// Records the operation with the host (once). Used by co_await and th::all.
  void record() {
    if (recorded_) return;
    json r = host_->op(req_);
    key_ = r.value("key", std::string());
    done_ = r.value("done", false);
    if (done_) result_ = r.value("result", json());
    recorded_ = true;
  }
  bool done() const { return done_; }
  const std::string& key() const { return key_; }
  detail::wait_host* host() const { return host_; }
  /// After a resume: the recorded result.
  R result() {
    if (!done_) {
      json r = host_->call("op", lookup());
      if (!r.value("done", false)) throw std::logic_error("resumed before " + key_ + " was done");
      result_ = r.value("result", json());
      done_ = true;
    }
    return R::from(result_);
  }

  bool await_ready() {
    record();
    return done_;
  }
  void await_suspend(std::coroutine_handle<> awaiting) {
    host_->waiting = json::array({key_});
    host_->resume_point = awaiting;
  }
  R await_resume() { return result(); }

private:
  json lookup() const {
    json q = req_;
    // The same request again finds the journal entry: by key, or by the position it took.
    if (key_.rfind("k:", 0) != 0) q["seq"] = std::stoi(key_.substr(key_.find('#') + 1));
    return q;
  }
  detail::wait_host* host_;
  json req_;
  std::string key_;
  bool recorded_ = false;
  bool done_ = false;
  json result_;
};

/// `co_await th::all(a, b, ...)`: waits for every operation at once and gives a tuple of their
/// results. Beyond Trigger.dev, which allows one wait at a time.
template <class... R>
class all_of {
public:
  explicit all_of(operation<R>... ops) : ops_(std::move(ops)...) {}
  bool await_ready() {
    std::apply([](auto&... o) { (o.record(), ...); }, ops_);
    return std::apply([](auto&... o) { return (o.done() && ...); }, ops_);
  }
  void await_suspend(std::coroutine_handle<> awaiting) {
    detail::wait_host* h = std::get<0>(ops_).host();
    h->waiting = json::array();
    std::apply([h](auto&... o) { ((o.done() ? void() : h->waiting.push_back(o.key())), ...); }, ops_);
    h->resume_point = awaiting;
  }
  std::tuple<R...> await_resume() {
    return std::apply([](auto&... o) { return std::tuple<R...>(o.result()...); }, ops_);
  }

private:
  std::tuple<operation<R>...> ops_;
};
template <class... R>
all_of<R...> all(operation<R>... ops) {
  static_assert(sizeof...(R) > 0, "th::all needs at least one operation");
  return all_of<R...>(std::move(ops)...);
}

/// `co_await ctx.step("name", fn)`: runs fn once per run and journals its result (JSON-convertible),
/// so a replay gets the recorded value instead of running it again. Put side effects and anything
/// that differs between runs of the code (time, random numbers, I/O) in steps.
template <class F>
class step_op {
public:
  using value_type = std::invoke_result_t<F&>;
  step_op(detail::wait_host* host, std::string name, F fn) : host_(host), name_(std::move(name)), fn_(std::move(fn)) {
    if (host_ == nullptr) throw std::logic_error("ctx.step is only available in a task's run");
  }
  bool await_ready() {
    json r = host_->op({{"kind", "step"}, {"name", name_}});
    if (r.value("done", false)) {
      result_ = r.value("result", json());
      return true;
    }
    if constexpr (std::is_void_v<value_type>) {
      fn_();
      result_ = nullptr;
    } else {
      result_ = json(fn_());
    }
    host_->call("step_done", {{"key", r.value("key", std::string())}, {"name", name_}, {"result", result_}});
    return true;
  }
  void await_suspend(std::coroutine_handle<>) {}
  value_type await_resume() {
    if constexpr (!std::is_void_v<value_type>) return result_.get<value_type>();
  }

private:
  detail::wait_host* host_;
  std::string name_;
  F fn_;
  json result_;
};

/// What a run's code can see and use while it executes. Passed by reference to `run`; valid until
/// `run` returns. Not thread-safe: use it from the thread that runs the task.
class run_context {
public:
  explicit run_context(const th_run_info* run, detail::wait_host* waits = nullptr)
      : logger(run), signal(run), locals(run), metadata(run), run_(run), waits_(waits) {}
  std::string_view run_id() const { return run_->run_id; }
  std::string_view task_id() const { return run_->task_id; }
  /// 1 for the first attempt, 2 for the first retry, ...
  unsigned attempt() const { return run_->attempt; }
  /// Shorthand for signal.cancelled().
  bool cancelled() const { return signal.cancelled(); }

  // --- Waits (co_await them; the run holds no thread while it waits and survives restarts) ---
  /// Waits `d` (not negative). `opts.idempotency_key`: a retried attempt does not wait again.
  //
  // (No default arguments of class type here, only overloads: g++ 12 destroys such a default
  // argument twice when the call sits inside a co_await expression.)
  template <class Rep, class Period>
  operation<wait_done> wait_for(std::chrono::duration<Rep, Period> d, const wait_options& opts) {
    return {host(), with_key({{"kind", "duration"}, {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(d).count()}}, opts)};
  }
  template <class Rep, class Period>
  operation<wait_done> wait_for(std::chrono::duration<Rep, Period> d) {
    return {host(), with_key({{"kind", "duration"}, {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(d).count()}}, {})};
  }
  operation<wait_done> wait_until(std::chrono::system_clock::time_point t, const wait_options& opts) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    return {host(), with_key({{"kind", "duration"}, {"untilMs", ms}}, opts)};
  }
  operation<wait_done> wait_until(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    return {host(), with_key({{"kind", "duration"}, {"untilMs", ms}}, {})};
  }
  /// Triggers `task` as a child of this run and waits for its end. `options` as in the HTTP API
  /// (tags, delay, ttl, idempotencyKey, maxAttempts, metadata...). An unknown task gives an error
  /// result, not a hang.
  operation<run_result> trigger_and_wait(const std::string& task, const json& payload, const json& options) {
    return {host(), {{"kind", "task"}, {"task", task}, {"payload", payload}, {"options", options}}};
  }
  operation<run_result> trigger_and_wait(const std::string& task, const json& payload) {
    return {host(), {{"kind", "task"}, {"task", task}, {"payload", payload}, {"options", json::object()}}};
  }
  operation<run_result> trigger_and_wait(const std::string& task) {
    return {host(), {{"kind", "task"}, {"task", task}, {"payload", nullptr}, {"options", json::object()}}};
  }
  /// Triggers one child run per element of `payloads` (≤ 1,000) and waits for all of them. An
  /// item that cannot be triggered (bad options, over the payload limit) throws, naming its index.
  operation<batch_result> batch_trigger_and_wait(const std::string& task, const json& payloads, const json& options) {
    return {host(), {{"kind", "batch"}, {"task", task}, {"items", items_of(payloads, options)}}};
  }
  operation<batch_result> batch_trigger_and_wait(const std::string& task, const json& payloads) {
    return {host(), {{"kind", "batch"}, {"task", task}, {"items", items_of(payloads, json::object())}}};
  }
  /// Waits until the token is completed (→ ok, output) or times out (→ !ok).
  operation<token_result> wait_for_token(const std::string& token_id, const wait_options& opts) {
    return {host(), with_key({{"kind", "token"}, {"id", token_id}}, opts)};
  }
  operation<token_result> wait_for_token(const std::string& token_id) { return {host(), {{"kind", "token"}, {"id", token_id}}}; }
  operation<token_result> wait_for_token(const wait_token& t, const wait_options& opts) { return wait_for_token(t.id, opts); }
  operation<token_result> wait_for_token(const wait_token& t) { return wait_for_token(t.id); }
  /// Runs fn once per run (see step_op).
  template <class F>
  step_op<F> step(std::string name, F fn) {
    return step_op<F>(host(), std::move(name), std::move(fn));
  }

  // --- Without waiting (journaled too: a replay returns the same ids) ---
  run_handle trigger(const std::string& task, json payload = nullptr, json options = json::object()) {
    json r = host()->op({{"kind", "trigger"}, {"task", task}, {"payload", std::move(payload)}, {"options", std::move(options)}});
    return {r["result"].value("id", std::string())};
  }
  batch_handle batch_trigger(const std::string& task, const json& payloads, json options = json::object()) {
    json r = host()->op({{"kind", "batch_trigger"}, {"task", task}, {"items", items_of(payloads, options)}});
    batch_handle b{r["result"].value("batchId", std::string()), {}};
    for (const auto& id : r["result"].value("runs", json::array())) b.run_ids.push_back(id.get<std::string>());
    return b;
  }
  wait_token create_token(const token_options& o = {}) {
    json opts = json::object();
    if (o.timeout) opts["timeout"] = std::to_string(std::max<int64_t>(1, (o.timeout->count() + 999) / 1000)) + "s";
    if (!o.idempotency_key.empty()) opts["idempotencyKey"] = o.idempotency_key;
    if (!o.tags.empty()) opts["tags"] = o.tags;
    json r = host()->op({{"kind", "create_token"}, {"options", opts}});
    return {r["result"].value("id", std::string()), r["result"].value("isCached", false), r["result"]};
  }
  /// Completes a token (any run may wait for it). Throws if it is unknown or already completed.
  void complete_token(const std::string& token_id, json data = nullptr) {
    host()->op({{"kind", "complete_token"}, {"id", token_id}, {"data", std::move(data)}});
  }

  taskhost::logger logger;
  cancel_signal signal;
  locals_view locals;   ///< the run's locals (see locals_view)
  metadata_view metadata;  ///< the run's metadata (see metadata_view)

private:
  detail::wait_host* host() const {
    if (waits_ == nullptr) throw std::logic_error("waits, child runs, tokens and steps are only available in a task's run");
    return waits_;
  }
  static json with_key(json req, const wait_options& o) {
    if (!o.idempotency_key.empty()) req["key"] = o.idempotency_key;
    return req;
  }
  static json items_of(const json& payloads, const json& options) {
    if (!payloads.is_array()) throw std::invalid_argument("a batch needs an array of payloads");
    json items = json::array();
    for (const auto& p : payloads) items.push_back({{"payload", p}, {"options", options}});
    return items;
  }
  const th_run_info* run_;
  detail::wait_host* waits_;
};

/// The body of a task. Accepts any callable `R(json payload, run_context&)` where R converts to
/// json (or is void, which gives a null output) — or a coroutine returning th::async<R>, which
/// may co_await waits, child runs, tokens and steps.
class run_function {
public:
  run_function() = default;
  template <class F,
            class = std::enable_if_t<std::is_invocable_v<F&, json, run_context&> &&
                                     !std::is_same_v<std::decay_t<F>, run_function>>>
  run_function(F f) {  // NOLINT: implicit on purpose, so `.run = [](...) {...}` reads naturally
    using R = std::invoke_result_t<F&, json, run_context&>;
    if constexpr (detail::is_async<R>::value) {
      afn_ = std::make_shared<F>(std::move(f));
      coro_ = [](std::shared_ptr<void> fn, json payload, run_context& ctx) -> async<json> {
        F& g = *static_cast<F*>(fn.get());
        if constexpr (std::is_void_v<decltype(std::declval<R>().await_resume())>) {
          co_await g(std::move(payload), ctx);
          co_return json(nullptr);
        } else {
          co_return json(co_await g(std::move(payload), ctx));
        }
      };
    } else {
      fn_ = [f = std::move(f)](json payload, run_context& ctx) mutable -> json {
        if constexpr (std::is_void_v<R>) {
          f(std::move(payload), ctx);
          return nullptr;
        } else {
          return json(f(std::move(payload), ctx));
        }
      };
    }
  }
  explicit operator bool() const { return static_cast<bool>(fn_) || static_cast<bool>(afn_); }
  /// True for a coroutine body.
  bool is_coroutine() const { return static_cast<bool>(afn_); }
  json operator()(json payload, run_context& ctx) const { return fn_(std::move(payload), ctx); }
  async<json> start(json payload, run_context& ctx) const { return coro_(afn_, std::move(payload), ctx); }

private:
  std::function<json(json, run_context&)> fn_;
  std::shared_ptr<void> afn_;  // the coroutine callable (kept alive by every frame that uses it)
  async<json> (*coro_)(std::shared_ptr<void>, json, run_context&) = nullptr;
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

/// The queue a task runs on (Trigger.dev's `queue: {name, concurrencyLimit}`). At most
/// concurrency_limit runs of a queue execute at once; the others wait queued. Without a name the
/// task has a queue of its own; a name shares one queue (and its limit) among every task that
/// names it, across plugins. The deployment (`queues:`, `tasks.<id>.queue`) may say otherwise;
/// see config/README.md.
///
///   th::task send{{.id = "send-one", .run = ..., .queue = {.concurrency_limit = 1}}};  // own queue, 1 at a time
///
///   inline const th::queue_options email_queue{.name = "email", .concurrency_limit = 10};
///   th::task welcome{{.id = "welcome-email", .run = ..., .queue = email_queue}};   // both share
///   th::task digest{{.id = "digest-email", .run = ..., .queue = email_queue}};     // "email": 10
///
/// Tasks that name the same queue should agree on its limit; the runtime resolves a mismatch.
struct queue_options {
  std::string name;            ///< "" = the task's own queue; else 1..128 chars of [A-Za-z0-9_.-]
  int concurrency_limit = -1;  ///< -1 = unlimited unless the deployment says otherwise; else 1..100000
                               ///< (a queue that starts nothing is a paused one: see the queues API)
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
  on_wait = TH_HOOK_ON_WAIT,      ///< the run began to wait (WAITING); on_resume follows when it goes on
  on_resume = TH_HOOK_ON_RESUME,  ///< after an on_wait only: a wait already done when awaited fires neither
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
  /// on_wait / on_resume: what the run waits (waited) for, e.g. "duration", "task", "batch",
  /// "token", or several joined with "," for th::all.
  std::string wait_kinds() const {
    auto it = in_.find("wait");
    return it != in_.end() && it->is_object() ? it->value("kinds", std::string()) : std::string();
  }

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
  /// Optional: the queue the task runs on and its concurrency limit; see queue_options.
  queue_options queue{};
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

// --- Scheduled tasks (Trigger.dev's schedules.task) ---

/// Parses an RFC 3339 timestamp, e.g. "2026-03-02T09:00:00.000Z" (what the host sends: UTC with
/// milliseconds). Also accepts any number of fraction digits (none, or up to nanoseconds; more
/// are cut), a lower-case 't' / 'z', and a "+hh:mm" / "-hh:mm" offset. Throws
/// std::invalid_argument naming the text when it is not one.
inline std::chrono::system_clock::time_point parse_timestamp(std::string_view s) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("not an RFC 3339 timestamp (" + std::string(why) + "): \"" + std::string(s.substr(0, 64)) + "\"");
  };
  size_t i = 0;
  auto digits = [&](size_t n) {
    if (i + n > s.size()) throw bad("too short");
    int v = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (s[i] < '0' || s[i] > '9') throw bad("a digit expected");
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto expect = [&](char a, char b = '\0') {
    if (i >= s.size() || (s[i] != a && (b == '\0' || s[i] != b))) throw bad("malformed");
    ++i;
  };
  const int y = digits(4);
  expect('-');
  const int mo = digits(2);
  expect('-');
  const int d = digits(2);
  expect('T', 't');
  const int h = digits(2);
  expect(':');
  const int mi = digits(2);
  expect(':');
  const int sec = digits(2);
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{unsigned(mo)}, std::chrono::day{unsigned(d)}};
  if (!ymd.ok()) throw bad("no such date");
  if (h > 23 || mi > 59 || sec > 59) throw bad("time out of range");
  std::chrono::nanoseconds frac{0};
  if (i < s.size() && s[i] == '.') {
    ++i;
    const size_t first = i;
    long long ns = 0, scale = 100000000;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10)
      if (scale > 0) ns += (s[i] - '0') * scale;
    if (i == first) throw bad("no digits after '.'");
    frac = std::chrono::nanoseconds{ns};
  }
  std::chrono::minutes offset{0};
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i++] == '-' ? -1 : 1;
    const int oh = digits(2);
    expect(':');
    const int om = digits(2);
    if (oh > 23 || om > 59) throw bad("offset out of range");
    offset = std::chrono::minutes{sign * (oh * 60 + om)};
  } else {
    throw bad("no time zone: 'Z' or an offset expected");
  }
  if (i != s.size()) throw bad("trailing characters");
  const auto local = std::chrono::sys_days{ymd} + std::chrono::hours{h} + std::chrono::minutes{mi} + std::chrono::seconds{sec};
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(local - offset + frac);
}

/// Formats a time point as the host does: RFC 3339 in UTC with milliseconds (cut, not rounded),
/// "2026-03-02T09:00:00.000Z".
inline std::string format_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{ms - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()), int(tod.hours().count()), int(tod.minutes().count()), int(tod.seconds().count()),
                int(tod.subseconds().count()));
  return buf;
}

/// What a scheduled run receives (Trigger.dev's schedule payload). The host sends it as JSON:
///
///   {"timestamp": "2026-03-02T09:00:00.000Z", "lastTimestamp": "2026-02-27T09:00:00.000Z",
///    "timezone": "Europe/London", "scheduleId": "sched_...", "externalId": "user-42",
///    "upcoming": ["2026-03-03T09:00:00.000Z", ...], "type": "IMPERATIVE"}
///
/// ("lastTimestamp" and "externalId" are absent when there is none).
struct schedule_payload {
  std::chrono::system_clock::time_point timestamp;                       ///< the occurrence's nominal time
  std::optional<std::chrono::system_clock::time_point> last_timestamp;  ///< the previous occurrence that ran, if any
  std::string timezone;                                                  ///< IANA name, "UTC" by default
  std::string schedule_id;                                               ///< "sched_..."
  std::optional<std::string> external_id;
  std::vector<std::chrono::system_clock::time_point> upcoming;           ///< the next 5 occurrences
  std::string type;                                                      ///< "DECLARATIVE" or "IMPERATIVE"
  json raw;                                                              ///< the payload as received

  /// Reads the JSON above. Only "timestamp" is required; a field that is present must have its
  /// type (null counts as absent). Throws std::invalid_argument("... not a schedule payload:
  /// ...") otherwise, e.g. for the `{}` of a run triggered by hand.
  static schedule_payload from(const json& j) {
    auto bad = [](const std::string& why) {
      return std::invalid_argument("the run's payload is not a schedule payload: " + why +
                                   " (a scheduled task runs from its schedules; to run it by hand, send the schedule "
                                   "payload's fields)");
    };
    if (!j.is_object()) throw bad(std::string("a JSON object expected, got ") + j.type_name());
    auto present = [&](const char* k) { return j.contains(k) && !j.at(k).is_null(); };
    auto string_of = [&](const char* k) -> std::string {
      const json& v = j.at(k);
      if (!v.is_string()) throw bad(std::string("'") + k + "' must be a string");
      return v.get<std::string>();
    };
    auto time_of = [&](const char* what, const json& v) {
      if (!v.is_string()) throw bad(std::string("'") + what + "' must be an RFC 3339 timestamp string");
      try {
        return parse_timestamp(v.get_ref<const std::string&>());
      } catch (const std::invalid_argument& e) {
        throw bad(std::string("'") + what + "': " + e.what());
      }
    };
    schedule_payload p;
    if (!present("timestamp")) throw bad("missing 'timestamp'");
    p.timestamp = time_of("timestamp", j.at("timestamp"));
    if (present("lastTimestamp")) p.last_timestamp = time_of("lastTimestamp", j.at("lastTimestamp"));
    p.timezone = present("timezone") ? string_of("timezone") : std::string("UTC");
    if (p.timezone.empty()) p.timezone = "UTC";
    if (present("scheduleId")) p.schedule_id = string_of("scheduleId");
    if (present("externalId")) p.external_id = string_of("externalId");
    if (present("upcoming")) {
      const json& u = j.at("upcoming");
      if (!u.is_array()) throw bad("'upcoming' must be an array of timestamps");
      for (size_t k = 0; k < u.size(); ++k) p.upcoming.push_back(time_of(("upcoming[" + std::to_string(k) + "]").c_str(), u[k]));
    }
    if (present("type")) p.type = string_of("type");
    p.raw = j;
    return p;
  }
};

/// A scheduled task's declarative schedule: a cron expression (5 fields, "min hour dom month dow",
/// or 6 with leading seconds) and the IANA time zone it is read in ("" = UTC). Checked when the
/// plugin loads: a bad expression or an unknown zone refuses the plugin.
///
///   .cron = "0 9 * * 1-5"                       // 09:00 UTC on weekdays
///   .cron = {"0 9 * * 1-5", "Europe/London"}    // 09:00 London time (follows summer time)
///
/// Default-constructed: no declarative schedule; the deployment's YAML or the API attach them.
class cron_pattern {
public:
  cron_pattern() = default;
  cron_pattern(const char* pattern) : pattern_(pattern ? pattern : "") {}  // NOLINT: implicit on purpose
  cron_pattern(std::string pattern) : pattern_(std::move(pattern)) {}      // NOLINT: implicit on purpose
  cron_pattern(std::string pattern, std::string zone) : pattern_(std::move(pattern)), timezone_(std::move(zone)) {}
  const std::string& pattern() const { return pattern_; }
  const std::string& timezone() const { return timezone_; }  ///< "" = UTC
  bool empty() const { return pattern_.empty(); }

private:
  std::string pattern_;
  std::string timezone_;
};

/// The body of a scheduled task: any callable `R(schedule_payload, run_context&)` where R converts
/// to json or is void — or a coroutine returning th::async<R>, as run_function. It becomes an
/// ordinary run_function that reads the schedule payload first; a payload that is not one (the
/// task triggered by hand with something else) fails the run at once (abort_run: a retry would
/// get the same payload).
class schedule_run_function {
public:
  schedule_run_function() = default;
  template <class F,
            class = std::enable_if_t<std::is_invocable_v<F&, schedule_payload, run_context&> &&
                                     !std::is_same_v<std::decay_t<F>, schedule_run_function>>>
  schedule_run_function(F f) : run_(wrap(std::move(f))) {}  // NOLINT: implicit on purpose, like run_function
  explicit operator bool() const { return static_cast<bool>(run_); }
  /// The run_function that the task built from a scheduled_task_definition runs.
  const run_function& as_run_function() const { return run_; }

private:
  static schedule_payload read(const json& payload) {
    try {
      return schedule_payload::from(payload);
    } catch (const std::invalid_argument& e) {
      throw abort_run(e.what());
    }
  }
  template <class F>
  static run_function wrap(F f) {
    using R = std::invoke_result_t<F&, schedule_payload, run_context&>;
    if constexpr (detail::is_async<R>::value) {
      // A coroutine too, so the parsed payload lives in this frame for as long as f's coroutine
      // runs (f may take it by reference) and a parse error fails the attempt like any throw.
      return run_function([f = std::move(f)](json payload, run_context& ctx) mutable -> async<json> {
        schedule_payload p = read(payload);
        if constexpr (std::is_void_v<decltype(std::declval<R>().await_resume())>) {
          co_await f(p, ctx);
          co_return json(nullptr);
        } else {
          json out(co_await f(p, ctx));
          co_return out;
        }
      });
    } else {
      return run_function([f = std::move(f)](json payload, run_context& ctx) mutable -> R {
        return f(read(payload), ctx);
      });
    }
  }
  run_function run_;
};

/// A scheduled task's definition (Trigger.dev's schedules.task). Like task_definition, with
/// `cron` after `id` and a `run` that receives the schedule payload. Fields are added at the end
/// only, so designated initializers keep working.
struct scheduled_task_definition {
  std::string id{};             ///< unique task id, kebab-case by convention ("daily-report")
  cron_pattern cron{};          ///< optional declarative schedule; see cron_pattern
  schedule_run_function run{};  ///< the body
  std::string description{};    ///< optional, shown by `taskhost plugins list`
  retry_options retry = {};     ///< optional; see retry_options
  std::chrono::seconds max_duration{0};  ///< optional; as task_definition::max_duration
  // Lifecycle hooks, as task_definition's (each optional). Their payload() is the raw schedule
  // payload JSON.
  hook_fn init = {};
  hook_fn on_start = {};          ///< first attempt only
  hook_fn on_start_attempt = {};  ///< every attempt
  hook_fn on_success = {};
  hook_fn on_failure = {};        ///< no retry follows; also for CANCELED and TIMED_OUT runs
  hook_fn on_complete = {};       ///< after on_success / on_failure; ctx.ok() tells which
  hook_fn cleanup = {};           ///< end of every attempt
  catch_error_fn catch_error = {};
  hook_fn on_cancel = {};         ///< the run was cancelled while executing
  /// Optional: the queue the task runs on and its concurrency limit; see queue_options.
  queue_options queue{};
};

/// A scheduled task: runs when one of its schedules fires — the declarative one in `cron`, or
/// those the deployment's YAML or the API attach to it — with a schedule_payload. Declare one per
/// task at namespace scope (it owns the strings its descriptor points to) and list it in
/// TASKHOST_PLUGIN next to ordinary tasks.
///
///   th::scheduled_task report{{
///       .id = "daily-report", .cron = {"0 9 * * 1-5", "Europe/London"},
///       .run = [](th::schedule_payload p, th::run_context& ctx) -> th::json {
///           ctx.logger.info("report", {{"for", th::format_timestamp(p.timestamp)}});
///           return {{"upcoming", p.upcoming.size()}};
///       },
///   }};
///   TASKHOST_PLUGIN("reports", "1.0.0", report);
class scheduled_task {
public:
  explicit scheduled_task(scheduled_task_definition def) : cron_(def.cron), task_(to_task_definition(std::move(def))) {}
  scheduled_task(const scheduled_task&) = delete;
  scheduled_task& operator=(const scheduled_task&) = delete;
  /// The ordinary task it runs as (its run reads the schedule payload, then calls yours).
  const task& as_task() const { return task_; }
  const task_definition& definition() const { return task_.definition(); }
  const cron_pattern& cron() const { return cron_; }

private:
  static task_definition to_task_definition(scheduled_task_definition d) {
    task_definition t;
    t.id = std::move(d.id);
    t.run = d.run.as_run_function();
    t.description = std::move(d.description);
    t.retry = std::move(d.retry);
    t.max_duration = d.max_duration;
    t.init = std::move(d.init);
    t.on_start = std::move(d.on_start);
    t.on_start_attempt = std::move(d.on_start_attempt);
    t.on_success = std::move(d.on_success);
    t.on_failure = std::move(d.on_failure);
    t.on_complete = std::move(d.on_complete);
    t.cleanup = std::move(d.cleanup);
    t.catch_error = std::move(d.catch_error);
    t.on_cancel = std::move(d.on_cancel);
    t.queue = std::move(d.queue);
    return t;
  }
  cron_pattern cron_;
  task task_;
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
/// For a coroutine body the frame lives here between steps (while the run waits).
struct execution {
  const task* t;
  const th_run_info* run;
  std::string out;  // bytes handed to the host by step; valid until the next step or destroy
  wait_host host;
  std::unique_ptr<run_context> ctx;
  std::optional<async<json>> coro;  // destroyed before ctx (declared after it)
};

inline int start(void* user_data, const th_run_info* run, th_execution** out, th_bytes* error) noexcept {
  try {
    auto* e = new execution{static_cast<const task*>(user_data), run, {}, {}, {}, {}};
    e->host.run = run;
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
    const task_definition& def = e->t->definition();
    if (!e->ctx) {
      json payload;
      try {
        const th_bytes& p = e->run->payload;
        payload = p.len == 0 ? json(nullptr) : json::parse(std::string_view(p.data, p.len));
      } catch (const json::parse_error& pe) {
        e->out = error_json("PayloadParseError", pe.what(), false);
        *out = th_bytes{e->out.data(), e->out.size()};
        return TH_STEP_FAILED;
      }
      e->ctx = std::make_unique<run_context>(e->run, &e->host);
      if (!def.run.is_coroutine()) {
        json result = def.run(std::move(payload), *e->ctx);
        e->out = result.dump(-1, ' ', false, json::error_handler_t::replace);
        *out = th_bytes{e->out.data(), e->out.size()};
        return TH_STEP_COMPLETED;
      }
      e->coro.emplace(def.run.start(std::move(payload), *e->ctx));
      e->host.resume_point = e->coro->handle();
    }
    auto resume = std::exchange(e->host.resume_point, {});
    e->host.waiting = json::array();
    if (!resume) throw std::logic_error("the run was resumed but does not wait for anything");
    resume.resume();
    auto h = e->coro->handle();
    if (h.done()) {
      if (h.promise().error) std::rethrow_exception(h.promise().error);
      e->out = h.promise().value->dump(-1, ' ', false, json::error_handler_t::replace);
      status = TH_STEP_COMPLETED;
    } else if (!e->host.waiting.empty()) {
      e->out = json{{"waitFor", e->host.waiting}}.dump();
      status = TH_STEP_SUSPENDED;
    } else {
      e->out = error_json("InvalidAwaitError", "the run awaited something that is not a taskhost wait (only ctx waits, "
                                               "child runs, tokens, steps, th::all and th::async may be awaited)", false);
    }
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
    // The task (a namespace-scope th::task) owns the name, as it owns `id`: it lives as long as
    // the plugin is loaded.
    const queue_options& q = t.definition().queue;
    d.queue_name = q.name.empty() ? nullptr : q.name.c_str();
    // ABI: 0 = not set, -1 = a limit of 0 (refused by the host: it would start nothing).
    d.queue_concurrency_limit = q.concurrency_limit == -1 ? 0 : q.concurrency_limit == 0 ? -1 : static_cast<int32_t>(q.concurrency_limit);
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
  /// A scheduled task is its task plus the ABI 1.6 fields; the scheduled_task (at namespace
  /// scope) owns the strings, as a task owns its id.
  void add(const scheduled_task& st) {
    add(st.as_task());
    th_task_descriptor& d = descs_.back();
    d.scheduled = 1;
    d.schedule_cron = st.cron().pattern().empty() ? nullptr : st.cron().pattern().c_str();
    d.schedule_timezone = st.cron().timezone().empty() ? nullptr : st.cron().timezone().c_str();
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

/// Declares the plugin: its name, its version, and the tasks it provides (th::task and
/// th::scheduled_task objects, in any order). Use once per plugin.
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
