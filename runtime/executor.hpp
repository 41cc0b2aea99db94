// A pool of threads that runs user code (task bodies, later hooks and middleware), so that code
// which blocks never runs on — or stalls — CAF's scheduler threads.
//
// Example:
//
//   executor ex(4);
//   ex.post([] { run_user_code(); });      // false once stop() has begun
//   ex.stop(std::chrono::seconds(30));     // waits for work in flight, up to the grace period
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
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
  explicit executor(unsigned threads);
  /// Waits for the jobs in flight (without limit) unless stop() was called before.
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Queues `job`. Thread-safe. Returns false (and drops the job) once stop() has begun.
  /// A job posted with `finish_on_stop` (cleanup work, such as the hooks of a run that already
  /// ended) still runs when stop() begins before it started; others are dropped then.
  bool post(std::function<void()> job, bool finish_on_stop = false);

  /// Stops taking jobs, drops queued jobs that have not started (except finish_on_stop ones), and
  /// waits up to `grace` for the jobs in flight and those kept. Returns true when all finished; otherwise the threads still running user code
  /// are detached — they share the pool's state, so destroying the executor stays safe — and false
  /// is returned. Idempotent.
  bool stop(std::chrono::milliseconds grace);

  size_t in_flight() const;
  size_t queued() const;
  unsigned threads() const { return thread_count_; }

  /// The default pool size: enough threads that a few blocking tasks do not starve the rest.
  static unsigned default_threads();

private:
  struct state;
  static void work(const std::shared_ptr<state>& st);
  bool stop_impl(std::optional<std::chrono::milliseconds> grace);
  std::shared_ptr<state> st_;  // OWNERSHIP: shared with every worker thread
  std::vector<std::thread> threads_;
  unsigned thread_count_ = 0;
};

}  // namespace taskhost
