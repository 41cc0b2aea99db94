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
#include <mutex>
#include <thread>
#include <vector>

namespace taskhost {

class executor {
public:
  explicit executor(unsigned threads);
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// Queues `job`. Thread-safe. Returns false (and drops the job) once stop() has begun.
  bool post(std::function<void()> job);

  /// Stops taking jobs, drops queued jobs that have not started, and waits up to `grace` for the
  /// jobs in flight. Returns true when all finished; otherwise the threads still running user code
  /// are detached (the process is expected to exit) and false is returned. Idempotent.
  bool stop(std::chrono::milliseconds grace);

  size_t in_flight() const;
  size_t queued() const;
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

  /// The default pool size: enough threads that a few blocking tasks do not starve the rest.
  static unsigned default_threads();

private:
  void work();
  mutable std::mutex mu_;
  std::condition_variable cv_;       // jobs or stop
  std::condition_variable idle_cv_;  // a job finished
  std::deque<std::function<void()>> jobs_;
  size_t running_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace taskhost
