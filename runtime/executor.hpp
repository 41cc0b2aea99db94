// A pool of threads that runs user code (task bodies, later hooks and middleware), so that code
// which blocks never runs on — or stalls — CAF's scheduler threads.
//
// The pool is elastic. It keeps `threads` core threads for its whole life. A monitor thread
// (asleep while nothing is queued) looks at the pool once per `starvation_window`: when jobs are
// queued, every thread is busy in a job, no job started during the whole window, and fewer than
// `threads` of the busy threads are runnable (the others are blocked in the kernel: I/O, sleep,
// locks — checked on Linux through /proc; elsewhere every busy thread counts as blocked), it adds
// one thread, up to `max_threads`. CPU-bound work thus never adds threads: jobs keep starting, or
// the busy threads are runnable. At `max_threads` it warns instead (at most every 10 s). A thread
// beyond the core ones exits after `idle_timeout` without a job.
//
// Threads asleep are woken one at a time: a woken thread that takes a job wakes the next if jobs
// are left. A burst of short jobs is taken by a thread or two instead of waking one thread per
// job (on a 2-core VM a wake-up costs far more than a no-op job), and jobs that block still spread
// over every thread, a wake-up apart.
//
// Example:
//
//   executor ex(4);                        // 4 core threads, up to default_max_threads(4)
//   ex.post([] { run_user_code(); });      // false once stop() has begun
//   ex.stop(std::chrono::seconds(30));     // waits for work in flight, up to the grace period
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace taskhost {

class executor {
public:
  /// `threads` 0 means default_threads(); `max_threads` 0 means default_max_threads(threads), and
  /// a value below `threads` means `threads` (a fixed pool).
  explicit executor(unsigned threads, unsigned max_threads = 0,
                    std::chrono::milliseconds starvation_window = std::chrono::milliseconds(10),
                    std::chrono::milliseconds idle_timeout = std::chrono::seconds(30));
  /// Waits for the jobs in flight (without limit) unless stop() was called before.
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Queues `job`. Thread-safe. Returns false (and drops the job) once stop() has begun.
  /// A job posted with `finish_on_stop` (cleanup work, such as the hooks of a run that already
  /// ended) still runs when stop() begins before it started; others are dropped then.
  bool post(std::function<void()> job, bool finish_on_stop = false);

  /// Lives on one of this executor's threads while its job does its last steps: a job posted from
  /// that thread meanwhile goes first in line and wakes no other thread, as this one takes it as
  /// soon as its job returns (a wake-up saved, often of a halted CPU). Only where nothing after
  /// the scope can wait for the posted job.
  class finishing {
  public:
    explicit finishing(executor& e);
    ~finishing();
    finishing(const finishing&) = delete;
    finishing& operator=(const finishing&) = delete;

  private:
    const void* was_;
  };

  /// Stops taking jobs (and growing), drops queued jobs that have not started (except
  /// finish_on_stop ones), and waits up to `grace` for the jobs in flight and those kept. Returns
  /// true when all finished; otherwise the threads are detached — they share the pool's state, so
  /// destroying the executor stays safe — and false is returned. Idempotent.
  bool stop(std::chrono::milliseconds grace);

  size_t in_flight() const;
  size_t queued() const;
  /// The core thread count.
  unsigned threads() const { return thread_count_; }
  /// The most threads the pool grows to.
  unsigned max_threads() const { return max_thread_count_; }
  /// Worker threads alive now (core plus extra ones; detached ones until they return).
  size_t live_threads() const;
  /// How many threads were ever added beyond the core ones (diagnostics, tests).
  uint64_t threads_added() const;
  /// Called on the executor's monitor thread each time it added a thread (so that those who size
  /// their work by live_threads() may give it more). Thread-safe; {} to stop.
  void set_on_grow(std::function<void()> f);

  /// The default core size: enough threads that a few blocking tasks do not starve the rest.
  static unsigned default_threads();
  /// The default maximum: max(threads, 256).
  static unsigned default_max_threads(unsigned threads);

private:
  struct state;
  bool stop_impl(std::optional<std::chrono::milliseconds> grace);
  std::shared_ptr<state> st_;  // OWNERSHIP: shared with every worker thread and the monitor
  std::thread monitor_;        // guarded by st_->mu once running; always joined by stop
  unsigned thread_count_ = 0;
  unsigned max_thread_count_ = 0;
};

}  // namespace taskhost
