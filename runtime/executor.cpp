#include "runtime/executor.hpp"

#include <algorithm>

#include "runtime/log.hpp"

namespace taskhost {

unsigned executor::default_threads() {
  // Task code may block on I/O; a few threads per core keep a handful of blocking runs from
  // holding back the others, at a cost of a little memory per thread.
  return std::max(4u, 4 * std::max(1u, std::thread::hardware_concurrency()));
}

executor::executor(unsigned threads) {
  if (threads == 0) threads = default_threads();
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

executor::~executor() { stop(std::chrono::milliseconds(0)); }

bool executor::post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void executor::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ++running_;
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      log::error("executor job threw", {{"error", e.what()}});
    } catch (...) {
      log::error("executor job threw a non-standard exception");
    }
    lock.lock();
    --running_;
    idle_cv_.notify_all();
  }
}

bool executor::stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(mu_);
  if (stopped_) return running_ == 0;
  stopping_ = true;
  jobs_.clear();
  cv_.notify_all();
  bool done = idle_cv_.wait_for(lock, grace, [&] { return running_ == 0; });
  stopped_ = true;
  lock.unlock();
  for (auto& t : threads_) {
    if (done) t.join();
    else t.detach();  // a thread blocked in user code; the process exits around it
  }
  threads_.clear();
  return done;
}

size_t executor::in_flight() const {
  std::lock_guard lock(mu_);
  return running_;
}

size_t executor::queued() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

}  // namespace taskhost
