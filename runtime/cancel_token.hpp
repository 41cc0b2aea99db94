// The cancellation signal of one attempt, shared by the supervisor (which fires it) and the
// executor thread running the task (which polls or waits on it through the plugin ABI).
//
// Example:
//
//   auto t = std::make_shared<cancel_token>();
//   t->cancel(TH_CANCEL_TIMED_OUT);            // supervisor, at the deadline
//   if (t->wait_for(100ms) != TH_CANCEL_NONE)  // task code, through ctx.signal.wait_for
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <taskhost/plugin_abi.h>

namespace taskhost {

/// Thread-safe. The first reason given wins; later cancels change nothing.
class cancel_token {
public:
  void cancel(int reason) {
    {
      std::lock_guard lock(mu_);
      int none = TH_CANCEL_NONE;
      reason_.compare_exchange_strong(none, reason);
    }
    cv_.notify_all();
  }
  int reason() const { return reason_.load(std::memory_order_acquire); }
  /// Waits up to `d` for a cancel; returns the reason (TH_CANCEL_NONE on time-out).
  int wait_for(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [&] { return reason() != TH_CANCEL_NONE; });
    return reason();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> reason_{TH_CANCEL_NONE};
};

}  // namespace taskhost
