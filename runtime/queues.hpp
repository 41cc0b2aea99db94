// Queues and concurrency: which ready run may execute now. A plain, thread-safe class; the task
// supervisors ask it for a slot before an attempt starts (or a waiting run resumes) and give the
// slot back when the attempt ends or the run starts to wait.
//
// The model (Trigger.dev's, plus a cap across keys and rate limits):
//  - Every task has its own queue, "task/<task id>", unlimited unless its definition sets a
//    limit. Named queues (the deployment's `queues:`, or a plugin's task definition) may be
//    shared by several tasks. A trigger may pick any declared queue.
//  - A queue holds one copy per concurrency key ("" for runs without one), each with the queue's
//    full concurrency limit; ready keys are served round-robin, so a key with many runs queued
//    delays another key by at most one turn. `total` caps the queue across all its keys.
//  - Within a key, runs start in order of score = enqueue time − priority (µs), ties first-come.
//  - A rate limit caps how many runs start in any window of `period` (the whole queue, or each
//    key with per_key).
//  - Only runs that execute hold slots (DEQUEUED, EXECUTING). QUEUED, DELAYED and WAITING runs
//    do not: a slot is given back when an attempt ends and while a run waits.
//  - A paused queue starts nothing; what is queued stays queued.
// Every operation is O(log n) in the runs queued on the key it touches (O(1) for the others).
//
// Example:
//
//   queue_book book;
//   book.declare("email", {.concurrency = 10});
//   book.set_dispatch([](std::vector<queue_grant> g) { /* tell each run's supervisor: start */ });
//   if (book.enqueue({.run_id = id, .task_id = "send", .queue = "email", .score_us = now_us}))
//     start(id);                  // a slot was free
//   ...
//   book.release(id);             // its attempt ended: the next queued run is dispatched
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/ids.hpp"

namespace taskhost {

struct queue_limits {
  std::optional<int> concurrency;  ///< per key; none = unlimited
  std::optional<int> total;        ///< across the queue's keys; none = no cap
  struct rate_t {
    int limit = 0;
    std::chrono::milliseconds period{0};
    bool per_key = false;
    bool operator==(const rate_t&) const = default;
  };
  std::optional<rate_t> rate;
  bool operator==(const queue_limits&) const = default;
};

/// A run that asks for a slot.
struct queue_request {
  std::string run_id;
  std::string task_id;
  std::string queue;            ///< a declared queue
  std::string key;              ///< concurrency key; "" = none
  int64_t score_us = 0;         ///< enqueue time − priority, in µs: lower starts first
};

/// A run that got a slot: it may start now, and holds the slot until release().
struct queue_grant {
  std::string run_id;
  std::string task_id;
};

/// A queue as the API shows it.
struct queue_info {
  std::string name;
  bool task_queue = false;           ///< "task/<id>": a task's own queue
  size_t running = 0;                ///< runs holding slots
  size_t queued = 0;                 ///< runs waiting for one
  size_t keys = 0;                   ///< concurrency keys with runs queued or running
  bool paused = false;
  queue_limits base;                 ///< as declared
  std::optional<int> override_limit; ///< concurrency override (API), replaces base.concurrency
  std::optional<int64_t> overridden_at_ms;
  std::optional<int> limit() const { return override_limit ? override_limit : base.concurrency; }
};

/// Queue state that outlives the process (paused, concurrency override).
struct queue_persisted {
  bool paused = false;
  std::optional<int> override_limit;
  std::optional<int64_t> overridden_at_ms;
};

class queue_book {
public:
  using clock = std::chrono::steady_clock;

  struct options {
    /// The most runs an unlimited queue (or key) lets execute at once, asked at each start (the
    /// executor grows when its threads block, and so may this; call refill() when it grew). It
    /// bounds what is in memory and on the executor at a time: a burst of 100k triggers waits
    /// here as ids. Unset: no bound.
    std::function<size_t()> unlimited_cap;
    /// The clock rate limits are measured with (tests inject one).
    std::function<clock::time_point()> now;
  };

  queue_book() : queue_book(options{}) {}
  explicit queue_book(options o);
  ~queue_book();
  queue_book(const queue_book&) = delete;
  queue_book& operator=(const queue_book&) = delete;

  /// Declares (or re-declares, keeping its runs) a queue. Before runs flow.
  void declare(const std::string& name, queue_limits limits, bool task_queue = false);
  bool exists(const std::string& name) const;

  /// Where grants for other runs than the caller's go (on the thread that freed the slot, never
  /// under the book's lock). Set before runs flow.
  void set_dispatch(std::function<void(std::vector<queue_grant>)> dispatch);

  /// The run is ready to execute. True: it holds a slot now (start it). False: it waits in its
  /// queue and is dispatched once it gets one. A run already queued stays where it is (false);
  /// one already holding a slot keeps it (true). Throws std::invalid_argument for an unknown queue.
  bool enqueue(const queue_request& r);
  /// Gives back the run's slot (its attempt ended, or it waits now); false if it held none.
  /// Runs that can start now are dispatched.
  bool release(const std::string& run_id);
  /// Takes a queued run out (canceled, expired); false if it was not queued.
  bool remove(const std::string& run_id);
  bool is_queued(const std::string& run_id) const;
  bool holds_slot(const std::string& run_id) const;

  /// Pause or resume; false for an unknown queue. Resuming dispatches what may start.
  bool set_paused(const std::string& name, bool paused);
  /// Replaces the concurrency limit (per key) until reset (nullopt). False for an unknown queue.
  bool set_override(const std::string& name, std::optional<int> limit);
  /// Restores paused and override at start.
  void restore(const std::string& name, const queue_persisted& p);

  std::optional<queue_info> info(const std::string& name) const;
  /// Every queue, by name.
  std::vector<queue_info> list() const;

  /// Dispatches what unlimited queues may start now that unlimited_cap() grew.
  void refill();
  /// Dispatches runs whose rate-limit window has opened. Called by the timer thread (or tests).
  void poll();
  /// When poll() next has something to do; nullopt = nothing is rate-limited.
  std::optional<clock::time_point> next_wake() const;
  /// A thread that calls poll() when a rate-limit window opens; stopped by stop() or the destructor.
  void start_timer();
  void stop();

private:
  struct item {
    int64_t score;
    uint64_t seq;
    bool operator<(const item& o) const { return score != o.score ? score < o.score : seq < o.seq; }
  };
  struct queued_run;
  /// Queued runs by id. Ordered, not hashed: run ids are time-ordered (new_run_id), so a new run
  /// goes in at the right edge and the runs that start (mostly the oldest) leave near the left
  /// edge, where the tree is hot in the CPU's cache; a hash index put both on random memory,
  /// which made a start 5x slower with a million runs queued.
  using run_index = std::map<std::string, queued_run, std::less<>>;
  struct queue_state;
  struct key_state {
    std::string key;
    size_t running = 0;
    std::map<item, run_index::iterator> items;  // in start order
    std::vector<clock::time_point> starts;  // ring buffer of start times (per-key rate limit)
    size_t starts_head = 0;
    bool in_ring = false;
    bool rate_blocked = false;
  };
  struct queue_state {
    std::string name;
    bool task_queue = false;
    queue_limits base;
    std::optional<int> override_limit;
    std::optional<int64_t> overridden_at_ms;
    bool paused = false;
    size_t running = 0;
    size_t queued = 0;
    std::unordered_map<std::string, std::unique_ptr<key_state>> keys;
    // Keys that may have a run start: those with nothing running first (first come, first
    // served), then the others round-robin — a key just served goes to the back of `ring`.
    std::deque<key_state*> fresh;
    std::deque<key_state*> ring;
    std::vector<clock::time_point> starts;  // whole-queue rate limit ring buffer
    size_t starts_head = 0;
    std::vector<key_state*> rate_blocked;
    std::optional<clock::time_point> wake_at;
  };
  struct queued_run {
    queue_state* q;
    key_state* k;
    item at;
    std::string task_id;
  };
  struct holder {
    queue_state* q;
    key_state* k;
  };

  static queue_info info_of(const queue_state& q);
  size_t key_limit(const queue_state& q) const;
  bool key_eligible(const queue_state& q, const key_state& k) const;
  void push_ring(queue_state& q, key_state& k);
  /// Grants what may start now on `q`.
  void fill(queue_state& q, clock::time_point now, std::vector<queue_grant>& out);
  /// True if one more start fits the rate window; else sets `wake` to when it will.
  bool rate_allows(const std::vector<clock::time_point>& starts, size_t head, const queue_limits::rate_t& r,
                   clock::time_point now, clock::time_point& wake) const;
  void note_start(std::vector<clock::time_point>& starts, size_t& head, const queue_limits::rate_t& r, clock::time_point now);
  void drop_key_if_idle(queue_state& q, key_state& k);
  void set_wake(queue_state& q, clock::time_point at);
  void dispatch(std::vector<queue_grant> grants);

  options opts_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<queue_state>> queues_;
  run_index queued_;                                 // run id → its place in a queue
  std::unordered_map<std::string, holder, run_id_hash> holding_;  // run id → the slot it holds
  uint64_t seq_ = 0;
  std::function<void(std::vector<queue_grant>)> dispatch_;
  // The rate-limit timer.
  std::condition_variable timer_cv_;
  std::thread timer_;
  bool stopping_ = false;
};

}  // namespace taskhost
