#include "runtime/executor.hpp"

#include <algorithm>
#include <atomic>
#include <list>
#include <system_error>
#include <utility>

#ifdef __linux__
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#endif

#include "runtime/log.hpp"

namespace taskhost {

namespace {

using clock_t_ = std::chrono::steady_clock;
constexpr auto warning_interval = std::chrono::seconds(10);

long current_tid() {
#ifdef __linux__
  return static_cast<long>(::syscall(SYS_gettid));
#else
  return 0;
#endif
}

/// Whether thread `tid` of this process is blocked in the kernel (sleeping: I/O, sleep, a lock)
/// rather than running or waiting for a CPU. When that cannot be told, true: the caller then
/// relies on its other signals alone.
bool blocked_in_kernel(long tid) {
#ifdef __linux__
  if (tid <= 0) return true;
  std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return true;
  // "tid (comm) S ...": comm may hold anything, so the state follows the LAST ')'.
  std::string_view line(buf, static_cast<size_t>(n));
  auto close = line.rfind(')');
  if (close == std::string_view::npos || close + 2 >= line.size()) return true;
  char s = line[close + 2];
  return s == 'S' || s == 'D' || s == 'I';
#else
  (void)tid;
  return true;
#endif
}

}  // namespace

struct executor::state {
  struct job_entry {
    std::function<void()> fn;
    bool finish_on_stop;
  };
  struct worker {
    std::thread thread;             // moved to `exited` (or taken by stop) as the thread ends
    long tid = 0;                   // kernel thread id, set by the thread itself
    bool extra = false;             // beyond the core threads: exits after idle_timeout
    std::atomic<bool> in_job{false};  // written by the thread itself around the job, without the lock
  };
  using worker_it = std::list<worker>::iterator;

  state(unsigned core, unsigned max, std::chrono::milliseconds window, std::chrono::milliseconds idle)
      : core(core), max(max), window(window), idle_timeout(idle) {}

  const unsigned core;
  const unsigned max;
  const std::chrono::milliseconds window;
  const std::chrono::milliseconds idle_timeout;

  std::mutex mu;
  std::condition_variable cv;          // jobs or stop
  std::condition_variable idle_cv;     // a job finished
  std::condition_variable monitor_cv;  // jobs queued while the monitor was idle, a thread exited, or stop
  std::deque<job_entry> jobs;
  std::list<worker> workers;         // one per live worker thread
  std::vector<std::thread> exited;   // handles of threads that returned, to join
  size_t running = 0;                // jobs in flight
  size_t idle = 0;                   // workers waiting for a job
  size_t searching = 0;              // of those, woken for a job and not yet back with the lock
  uint64_t started = 0;              // jobs ever taken: the monitor's "progress" signal
  uint64_t added = 0;                // threads ever added beyond the core ones
  std::atomic<size_t> live{0};       // workers.size(), readable without the lock
  std::function<void()> on_grow;     // called (without the lock) after a thread was added
  bool monitor_idle = false;         // the monitor waits for a job to be queued (it alone clears this)
  bool stopping = false;
  bool stopped = false;

  /// Starts one worker thread. Call with `mu` held (the thread waits for it before it looks at
  /// anything). Throws std::system_error when the system refuses a thread.
  void spawn(const std::shared_ptr<state>& self, bool is_extra) {
    auto it = workers.emplace(workers.end());
    it->extra = is_extra;
    try {
      it->thread = std::thread([self, it] { self->work(it); });
    } catch (...) {
      workers.erase(it);
      throw;
    }
    live.store(workers.size(), std::memory_order_relaxed);
  }

  /// Whether a waiting worker should be woken for the jobs queued (call with `mu` held). Workers
  /// are woken one at a time: a woken one, once it has taken a job, wakes the next if jobs are
  /// left. A burst of short jobs thus wakes a thread or two that take them all, instead of one
  /// thread per job (a wake-up costs far more than a no-op job), while jobs that block still
  /// spread over every thread within a wake-up each.
  bool wake_one_locked() {
    if (idle == 0 || searching > 0 || jobs.empty()) return false;
    ++searching;
    return true;
  }

  /// Whether the sleeping monitor should look (call with `mu` held): jobs wait and no worker is
  /// waiting to take one — only then can the pool starve. A job that a waiting worker will take
  /// does not wake it (that was a second wake-up, on a second thread, for every job posted into
  /// an idle pool). The worker that takes the last idle slot while jobs are left asks again.
  bool monitor_needed_locked() const { return monitor_idle && !jobs.empty() && idle == 0; }

  void work(worker_it self);
  void monitor(const std::shared_ptr<state>& self);
  bool blocked_in_user_code();
};

unsigned executor::default_threads() {
  // Task code may block on I/O; a few threads per core keep a handful of blocking runs from
  // holding back the others without waiting for the pool to grow.
  return std::max(4u, 4 * std::max(1u, std::thread::hardware_concurrency()));
}

unsigned executor::default_max_threads(unsigned threads) { return std::max(threads, 256u); }

executor::executor(unsigned threads, unsigned max_threads, std::chrono::milliseconds starvation_window,
                   std::chrono::milliseconds idle_timeout) {
  if (threads == 0) threads = default_threads();
  if (max_threads == 0) max_threads = default_max_threads(threads);
  max_threads = std::max(max_threads, threads);
  starvation_window = std::max(starvation_window, std::chrono::milliseconds(1));
  idle_timeout = std::max(idle_timeout, std::chrono::milliseconds(0));
  thread_count_ = threads;
  max_thread_count_ = max_threads;
  st_ = std::make_shared<state>(threads, max_threads, starvation_window, idle_timeout);
  try {
    std::lock_guard lock(st_->mu);
    for (unsigned i = 0; i < threads; ++i) st_->spawn(st_, false);
    monitor_ = std::thread([st = st_] { st->monitor(st); });
  } catch (...) {
    stop_impl(std::nullopt);  // ends and joins what started
    throw;
  }
}

executor::~executor() { stop_impl(std::nullopt); }

namespace {
thread_local const void* worker_of = nullptr;     ///< the executor state whose worker this thread is
thread_local const void* finishing_in = nullptr;  ///< set by executor::finishing on its worker
}  // namespace

executor::finishing::finishing(executor& e) : was_(finishing_in) {
  if (worker_of == e.st_.get()) finishing_in = worker_of;
}
executor::finishing::~finishing() { finishing_in = was_; }

bool executor::post(std::function<void()> job, bool finish_on_stop) {
  bool wake_monitor;
  bool wake;
  {
    std::lock_guard lock(st_->mu);
    if (st_->stopping) return false;
    if (finishing_in == st_.get()) {  // this worker takes it next (executor::finishing)
      st_->jobs.push_front({std::move(job), finish_on_stop});
      return true;
    }
    st_->jobs.push_back({std::move(job), finish_on_stop});
    wake = st_->wake_one_locked();
    wake_monitor = st_->monitor_needed_locked();
  }
  if (wake) st_->cv.notify_one();
  if (wake_monitor) st_->monitor_cv.notify_one();
  return true;
}

void executor::state::work(worker_it self) {
  std::unique_lock lock(mu);
  self->tid = current_tid();
  worker_of = this;
  auto ready = [&] { return stopping || !jobs.empty(); };
  for (;;) {
    if (!ready()) {
      // No predicate loop inside the wait: every return counts against `searching`, or a thread
      // woken for a job that another took would leave it set and no thread would be woken again.
      ++idle;
      auto r = std::cv_status::no_timeout;
      if (!self->extra) cv.wait(lock);
      else r = cv.wait_for(lock, idle_timeout);
      --idle;
      if (searching > 0) --searching;
      if (!ready()) {
        if (r == std::cv_status::timeout) break;  // idle for idle_timeout: not needed
        continue;
      }
    }
    if (jobs.empty()) break;  // stopping, and nothing kept to finish
    auto job = std::move(jobs.front().fn);
    jobs.pop_front();
    const bool wake_next = wake_one_locked();  // more jobs queued: the next thread
    const bool wake_monitor = monitor_needed_locked();
    ++running;
    ++started;
    self->in_job.store(true, std::memory_order_relaxed);
    lock.unlock();
    if (wake_next) cv.notify_one();
    if (wake_monitor) monitor_cv.notify_one();
    try {
      job();
    } catch (const std::exception& e) {
      log::error("executor job threw", {{"error", e.what()}});
    } catch (...) {
      log::error("executor job threw a non-standard exception");
    }
    job = nullptr;  // release what the job captured before reporting it done
    self->in_job.store(false, std::memory_order_relaxed);
    lock.lock();
    --running;
    idle_cv.notify_all();
  }
  // Hand the thread's own handle to whoever joins (the monitor, or stop); stop may have taken it.
  if (self->thread.joinable()) exited.push_back(std::move(self->thread));
  workers.erase(self);
  live.store(workers.size(), std::memory_order_relaxed);
  if (!stopping) monitor_cv.notify_one();
}

/// Called with `mu` held when the pool looks starved. Tells a pool whose busy threads are blocked
/// (I/O, sleep, locks) from one whose threads are merely waiting for a CPU or computing: starved
/// when fewer than `core` busy threads are runnable. The lock is kept while sampling, so a thread
/// between jobs waits for it with in_job false and counts as runnable.
bool executor::state::blocked_in_user_code() {
  unsigned runnable = 0;
  for (auto& w : workers) {
    bool blocked = blocked_in_kernel(w.tid) && w.in_job.load(std::memory_order_relaxed);
    if (!blocked && ++runnable >= core) return false;
  }
  return true;
}

void executor::state::monitor(const std::shared_ptr<state>& self) {
  std::unique_lock lock(mu);
  uint64_t seen = started;
  auto next = clock_t_::now() + window;
  std::optional<clock_t_::time_point> last_warning;
  for (;;) {
    if (!exited.empty()) {
      auto done = std::exchange(exited, {});
      lock.unlock();
      for (auto& t : done) t.join();
      lock.lock();
      continue;
    }
    if (stopping) return;
    if (jobs.empty()) {
      monitor_idle = true;
      monitor_cv.wait(lock, [&] { return stopping || !jobs.empty() || !exited.empty(); });
      monitor_idle = false;
      seen = started;
      next = clock_t_::now() + window;
      continue;
    }
    if (monitor_cv.wait_until(lock, next, [&] { return stopping || !exited.empty(); })) continue;
    // A whole window has passed since the last look (more when this thread ran late: fine).
    auto now = clock_t_::now();
    bool suspect = !jobs.empty() && running >= workers.size() && started == seen;
    seen = started;
    next = now + window;
    if (!suspect) continue;
    bool at_max = workers.size() >= max;
    if (at_max && last_warning && now - *last_warning < warning_interval) continue;
    if (!blocked_in_user_code()) continue;
    nlohmann::json attrs = {{"threads", workers.size()}, {"core_threads", core}, {"max_threads", max},
                            {"queued", jobs.size()}};
    if (at_max) {
      last_warning = now;
      lock.unlock();
      log::warn("every executor thread is blocked in task code; queued work waits", attrs);
      lock.lock();
      continue;
    }
    try {
      spawn(self, true);
    } catch (const std::system_error& e) {
      attrs["error"] = e.what();
      lock.unlock();
      log::warn("executor could not add a thread", attrs);
      lock.lock();
      continue;
    }
    ++added;
    attrs["threads"] = workers.size();
    auto grown = on_grow;
    lock.unlock();
    log::debug("executor thread added: every thread was blocked and no job started for a window", attrs);
    if (grown) grown();
    lock.lock();
  }
}

bool executor::stop(std::chrono::milliseconds grace) { return stop_impl(grace); }

bool executor::stop_impl(std::optional<std::chrono::milliseconds> grace) {
  // A plain time point and a flag: GCC 12 reads an optional one as maybe uninitialized.
  const bool bounded = grace.has_value();
  const auto deadline = clock_t_::now() + grace.value_or(std::chrono::milliseconds(0));
  std::unique_lock lock(st_->mu);
  if (st_->stopped) return st_->running == 0;
  st_->stopping = true;
  std::erase_if(st_->jobs, [](const state::job_entry& j) { return !j.finish_on_stop; });
  st_->cv.notify_all();
  st_->monitor_cv.notify_all();
  auto monitor = std::move(monitor_);  // taken under the lock: one stop() joins it
  lock.unlock();
  if (monitor.joinable()) monitor.join();  // it never runs user code: a short wait
  lock.lock();
  auto idle = [&] { return st_->running == 0 && st_->jobs.empty(); };
  bool done = true;
  if (bounded) done = st_->idle_cv.wait_until(lock, deadline, idle);
  else st_->idle_cv.wait(lock, idle);
  st_->stopped = true;
  auto threads = std::exchange(st_->exited, {});
  for (auto& w : st_->workers)
    if (w.thread.joinable()) threads.push_back(std::move(w.thread));
  lock.unlock();
  for (auto& t : threads) {
    if (done) t.join();
    else t.detach();  // a thread blocked in user code; it holds st_ alive until it returns
  }
  return done;
}

size_t executor::in_flight() const {
  std::lock_guard lock(st_->mu);
  return st_->running;
}

size_t executor::queued() const {
  std::lock_guard lock(st_->mu);
  return st_->jobs.size();
}

size_t executor::live_threads() const { return st_->live.load(std::memory_order_relaxed); }

void executor::set_on_grow(std::function<void()> f) {
  std::lock_guard lock(st_->mu);
  st_->on_grow = std::move(f);
}

uint64_t executor::threads_added() const {
  std::lock_guard lock(st_->mu);
  return st_->added;
}

}  // namespace taskhost
