#include "runtime/executor.hpp"

#include <algorithm>

#include "runtime/log.hpp"

namespace taskhost {

struct executor::state {
  std::mutex mu;
  std::condition_variable cv;       // jobs or stop
  std::condition_variable idle_cv;  // a job finished
  struct job_entry {
    std::function<void()> fn;
    bool finish_on_stop;
  };
  std::deque<job_entry> jobs;
  size_t running = 0;
  bool stopping = false;
  bool stopped = false;
};

unsigned executor::default_threads() {
  // Task code may block on I/O; a few threads per core keep a handful of blocking runs from
  // holding back the others, at a cost of a little memory per thread.
  return std::max(4u, 4 * std::max(1u, std::thread::hardware_concurrency()));
}

executor::executor(unsigned threads) : st_(std::make_shared<state>()) {
  if (threads == 0) threads = default_threads();
  thread_count_ = threads;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([st = st_] { work(st); });
}

executor::~executor() { stop_impl(std::nullopt); }

bool executor::post(std::function<void()> job, bool finish_on_stop) {
  {
    std::lock_guard lock(st_->mu);
    if (st_->stopping) return false;
    st_->jobs.push_back({std::move(job), finish_on_stop});
  }
  st_->cv.notify_one();
  return true;
}

void executor::work(const std::shared_ptr<state>& st) {
  std::unique_lock lock(st->mu);
  for (;;) {
    st->cv.wait(lock, [&] { return st->stopping || !st->jobs.empty(); });
    if (st->jobs.empty()) return;  // stopping, and nothing kept to finish
    auto job = std::move(st->jobs.front().fn);
    st->jobs.pop_front();
    ++st->running;
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      log::error("executor job threw", {{"error", e.what()}});
    } catch (...) {
      log::error("executor job threw a non-standard exception");
    }
    job = nullptr;  // release what the job captured before reporting it done
    lock.lock();
    --st->running;
    st->idle_cv.notify_all();
  }
}

bool executor::stop(std::chrono::milliseconds grace) { return stop_impl(grace); }

bool executor::stop_impl(std::optional<std::chrono::milliseconds> grace) {
  std::unique_lock lock(st_->mu);
  if (st_->stopped) return st_->running == 0;
  st_->stopping = true;
  std::erase_if(st_->jobs, [](const state::job_entry& j) { return !j.finish_on_stop; });
  st_->cv.notify_all();
  auto idle = [&] { return st_->running == 0 && st_->jobs.empty(); };
  bool done = true;
  if (grace) done = st_->idle_cv.wait_for(lock, *grace, idle);
  else st_->idle_cv.wait(lock, idle);
  st_->stopped = true;
  lock.unlock();
  for (auto& t : threads_) {
    if (done) t.join();
    else t.detach();  // a thread blocked in user code; it holds st_ alive until it returns
  }
  threads_.clear();
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

}  // namespace taskhost
