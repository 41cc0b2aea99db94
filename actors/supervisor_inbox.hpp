// What reaches a task supervisor in batches: new runs to start, slots granted by their queue, and
// the ends of executor jobs. Those who produce them (the store writer's commit, the queue book,
// executor threads) push into the supervisor's inbox; only the push that finds it empty sends the
// supervisor a message, and the supervisor takes everything there at once. A burst of 1,000 runs
// committed together, or of jobs ending while the supervisor works, thus costs the supervisor one
// wake-up, not 1,000. No CAF here: the producers are plain threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace taskhost::actors {

struct adopted_run;  // task_supervisor.cpp

struct supervisor_event {
  enum kind_t : uint8_t {
    start,      ///< run_id: run its next attempt (a new run was committed, or a run came back)
    granted,    ///< run_id: its queue gave it a slot
    wake,       ///< run_id: something it waits for completed
    started,    ///< run_id, attempt, started_us, limit_ms: an attempt with a deadline began
    done,       ///< run_id, attempt, stage, ok, body (JSON), retryable: a stage ended
    completed,  ///< run_id, attempt, ok: its run stage succeeded with nothing after it, and the
                ///< executor thread recorded COMPLETED itself (ok: it was still live)
    suspended,  ///< run_id, attempt, body (journal keys, JSON): its code awaits them
    resumed,    ///< run_id, attempt: the thread that completed its waits took the run's offer
                ///< (parked_run), took a slot for it and posted its run stage
    adopted,    ///< run_id, adoption: the thread that committed the new run started it
                ///< (adopt_new_run): it holds a slot and its run stage is on the executor
  };
  supervisor_event() = default;
  supervisor_event(kind_t k, std::string id, int attempt = 0, int stage = 0, bool ok = false, bool retryable = true)
      : kind(k), run_id(std::move(id)), attempt(attempt), stage(stage), ok(ok), retryable(retryable) {}

  kind_t kind = start;
  std::string run_id;
  int attempt = 0;
  int stage = 0;
  bool ok = false;
  bool retryable = true;
  std::string body;
  int64_t started_us = 0;
  int64_t limit_ms = 0;
  std::shared_ptr<adopted_run> adoption;  ///< `adopted`: the attempt as it was started
};

class supervisor_inbox {
public:
  /// Adds `ev`; true when the caller must tell the supervisor (no message is on its way yet).
  bool push(supervisor_event ev) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(ev));
    return !std::exchange(signalled_, true);
  }
  /// Adds `ev` without telling the supervisor: it takes it with whatever is pushed next (which
  /// must come: the caller's own next push, say).
  void push_quietly(supervisor_event ev) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(ev));
  }
  /// Adds several at once; true as for push.
  bool push(std::vector<supervisor_event>& evs) {
    if (evs.empty()) return false;
    std::lock_guard lock(mu_);
    for (auto& e : evs) items_.push_back(std::move(e));
    return !std::exchange(signalled_, true);
  }
  /// Everything pushed so far, in order; the next push tells the supervisor again.
  std::vector<supervisor_event> take() {
    std::vector<supervisor_event> out;
    std::lock_guard lock(mu_);
    signalled_ = false;
    out.swap(items_);
    return out;
  }

private:
  std::mutex mu_;
  std::vector<supervisor_event> items_;
  bool signalled_ = false;
};

}  // namespace taskhost::actors
