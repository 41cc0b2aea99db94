#include "runtime/queues.hpp"

#include <stdexcept>

namespace taskhost {

queue_book::queue_book(options o) : opts_(std::move(o)) {
  if (!opts_.now) opts_.now = [] { return clock::now(); };
}

queue_book::~queue_book() { stop(); }

void queue_book::declare(const std::string& name, queue_limits limits, bool task_queue) {
  std::lock_guard lock(mu_);
  auto& q = queues_[name];
  if (!q) q = std::make_unique<queue_state>();
  q->name = name;
  q->task_queue = task_queue;
  q->base = std::move(limits);
}

bool queue_book::exists(const std::string& name) const {
  std::lock_guard lock(mu_);
  return queues_.count(name) > 0;
}

void queue_book::set_dispatch(std::function<void(std::vector<queue_grant>)> dispatch) {
  std::lock_guard lock(mu_);
  dispatch_ = std::move(dispatch);
}

size_t queue_book::key_limit(const queue_state& q) const {
  auto l = q.override_limit ? q.override_limit : q.base.concurrency;
  if (l) return static_cast<size_t>(*l);
  return opts_.unlimited_cap ? opts_.unlimited_cap() : SIZE_MAX;
}

bool queue_book::key_eligible(const queue_state& q, const key_state& k) const {
  return !k.items.empty() && k.running < key_limit(q) && !k.rate_blocked;
}

void queue_book::push_ring(queue_state& q, key_state& k) {
  if (k.in_ring) return;
  (k.running == 0 ? q.fresh : q.ring).push_back(&k);
  k.in_ring = true;
}

bool queue_book::rate_allows(const std::vector<clock::time_point>& starts, size_t head, const queue_limits::rate_t& r,
                             clock::time_point now, clock::time_point& wake) const {
  if (starts.size() < static_cast<size_t>(r.limit)) return true;
  const auto oldest = starts[head];  // the limit-th most recent start
  if (oldest + r.period <= now) return true;
  wake = oldest + r.period;
  return false;
}

void queue_book::note_start(std::vector<clock::time_point>& starts, size_t& head, const queue_limits::rate_t& r,
                            clock::time_point now) {
  if (starts.size() < static_cast<size_t>(r.limit)) {
    starts.push_back(now);
    return;
  }
  starts[head] = now;
  head = (head + 1) % starts.size();
}

void queue_book::set_wake(queue_state& q, clock::time_point at) {
  if (!q.wake_at || at < *q.wake_at) {
    q.wake_at = at;
    timer_cv_.notify_all();
  }
}

void queue_book::fill(queue_state& q, clock::time_point now, std::vector<queue_grant>& out) {
  if (q.paused) return;
  const size_t limit = key_limit(q);
  while (!q.fresh.empty() || !q.ring.empty()) {
    if (q.base.total && q.running >= static_cast<size_t>(*q.base.total)) return;
    clock::time_point wake;
    if (q.base.rate && !q.base.rate->per_key && !rate_allows(q.starts, q.starts_head, *q.base.rate, now, wake)) {
      set_wake(q, wake);
      return;
    }
    auto& from = q.fresh.empty() ? q.ring : q.fresh;
    key_state& k = *from.front();
    from.pop_front();
    k.in_ring = false;
    if (k.items.empty() || k.running >= limit || k.rate_blocked) {
      drop_key_if_idle(q, k);
      continue;  // back in the ring when it has a run and a free slot again
    }
    if (q.base.rate && q.base.rate->per_key && !rate_allows(k.starts, k.starts_head, *q.base.rate, now, wake)) {
      k.rate_blocked = true;
      q.rate_blocked.push_back(&k);
      set_wake(q, wake);
      continue;
    }
    auto first = k.items.begin();
    auto run = first->second;
    queue_grant g{run->first, std::move(run->second.task_id)};
    k.items.erase(first);
    queued_.erase(run);
    --q.queued;
    holding_[g.run_id] = holder{&q, &k};
    ++k.running;
    ++q.running;
    if (q.base.rate) {
      if (q.base.rate->per_key) note_start(k.starts, k.starts_head, *q.base.rate, now);
      else note_start(q.starts, q.starts_head, *q.base.rate, now);
    }
    out.push_back(std::move(g));
    if (key_eligible(q, k)) push_ring(q, k);
  }
}

void queue_book::drop_key_if_idle(queue_state& q, key_state& k) {
  // Keys come and go with tenants: one with nothing queued or running is forgotten, unless its
  // rate window still matters.
  if (k.running || !k.items.empty() || k.in_ring || k.rate_blocked) return;
  if (!k.starts.empty()) {
    const auto newest = k.starts[(k.starts_head + k.starts.size() - 1) % k.starts.size()];
    if (q.base.rate && newest + q.base.rate->period > opts_.now()) return;
  }
  q.keys.erase(k.key);
}

void queue_book::dispatch(std::vector<queue_grant> grants) {
  if (grants.empty()) return;
  std::function<void(std::vector<queue_grant>)> d;
  {
    std::lock_guard lock(mu_);
    d = dispatch_;
  }
  if (d) d(std::move(grants));
}

bool queue_book::enqueue(const queue_request& r) {
  std::vector<queue_grant> grants;
  bool mine = false;
  {
    std::lock_guard lock(mu_);
    if (holding_.count(r.run_id)) return true;
    auto qit = queues_.find(r.queue);
    if (qit == queues_.end()) throw std::invalid_argument("no queue named '" + r.queue + "'");
    // A new run has the greatest id (they are time-ordered): one comparison, no lookup.
    auto slot = queued_.empty() || queued_.rbegin()->first < r.run_id ? queued_.end() : queued_.lower_bound(r.run_id);
    if (slot != queued_.end() && slot->first == r.run_id) return false;
    queue_state& q = *qit->second;
    auto& kp = q.keys[r.key];
    if (!kp) {
      kp = std::make_unique<key_state>();
      kp->key = r.key;
    }
    key_state& k = *kp;
    const item at{r.score_us, seq_++};
    // Runs mostly arrive in score order: then the insert is at the end, in constant time.
    slot = queued_.emplace_hint(slot, r.run_id, queued_run{&q, &k, at, r.task_id});
    k.items.emplace_hint(k.items.empty() || k.items.rbegin()->first < at ? k.items.end() : k.items.upper_bound(at), at, slot);
    ++q.queued;
    if (key_eligible(q, k)) push_ring(q, k);
    fill(q, opts_.now(), grants);
    for (auto it = grants.begin(); it != grants.end(); ++it)
      if (it->run_id == r.run_id) {
        mine = true;
        grants.erase(it);
        break;
      }
  }
  dispatch(std::move(grants));
  return mine;
}

bool queue_book::release(const std::string& run_id) {
  std::vector<queue_grant> grants;
  {
    std::lock_guard lock(mu_);
    auto it = holding_.find(run_id);
    if (it == holding_.end()) return false;
    queue_state& q = *it->second.q;
    key_state& k = *it->second.k;
    holding_.erase(it);
    --k.running;
    --q.running;
    if (key_eligible(q, k)) push_ring(q, k);
    fill(q, opts_.now(), grants);
    drop_key_if_idle(q, k);
  }
  dispatch(std::move(grants));
  return true;
}

bool queue_book::remove(const std::string& run_id) {
  std::lock_guard lock(mu_);
  auto it = queued_.find(run_id);
  if (it == queued_.end()) return false;
  queue_state& q = *it->second.q;
  key_state& k = *it->second.k;
  k.items.erase(it->second.at);
  --q.queued;
  queued_.erase(it);
  drop_key_if_idle(q, k);  // a key still in the ring is dropped when the ring reaches it
  return true;
}

bool queue_book::is_queued(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return queued_.count(run_id) > 0;
}

bool queue_book::holds_slot(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  return holding_.count(run_id) > 0;
}

bool queue_book::set_paused(const std::string& name, bool paused) {
  std::vector<queue_grant> grants;
  {
    std::lock_guard lock(mu_);
    auto it = queues_.find(name);
    if (it == queues_.end()) return false;
    it->second->paused = paused;
    if (!paused) fill(*it->second, opts_.now(), grants);
  }
  dispatch(std::move(grants));
  return true;
}

bool queue_book::set_override(const std::string& name, std::optional<int> limit) {
  std::vector<queue_grant> grants;
  {
    std::lock_guard lock(mu_);
    auto it = queues_.find(name);
    if (it == queues_.end()) return false;
    queue_state& q = *it->second;
    q.override_limit = limit;
    q.overridden_at_ms = limit ? std::optional<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                            std::chrono::system_clock::now().time_since_epoch()).count())
                               : std::nullopt;
    // A raised limit may let keys that were full start more.
    for (auto& [key, k] : q.keys)
      if (key_eligible(q, *k)) push_ring(q, *k);
    fill(q, opts_.now(), grants);
  }
  dispatch(std::move(grants));
  return true;
}

void queue_book::restore(const std::string& name, const queue_persisted& p) {
  std::lock_guard lock(mu_);
  auto it = queues_.find(name);
  if (it == queues_.end()) return;
  it->second->paused = p.paused;
  it->second->override_limit = p.override_limit;
  it->second->overridden_at_ms = p.overridden_at_ms;
}

queue_info queue_book::info_of(const queue_state& q) {
  queue_info i;
  i.name = q.name;
  i.task_queue = q.task_queue;
  i.running = q.running;
  i.queued = q.queued;
  i.keys = q.keys.size();
  i.paused = q.paused;
  i.base = q.base;
  i.override_limit = q.override_limit;
  i.overridden_at_ms = q.overridden_at_ms;
  return i;
}

std::optional<queue_info> queue_book::info(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = queues_.find(name);
  if (it == queues_.end()) return std::nullopt;
  const auto& q = *it->second;
  return info_of(q);
}

std::vector<queue_info> queue_book::list() const {
  std::lock_guard lock(mu_);
  std::vector<queue_info> out;
  out.reserve(queues_.size());
  for (const auto& [name, q] : queues_)
    out.push_back(info_of(*q));
  return out;
}

void queue_book::refill() {
  std::vector<queue_grant> grants;
  {
    std::lock_guard lock(mu_);
    const auto now = opts_.now();
    for (auto& [name, q] : queues_) {
      if (q->override_limit || q->base.concurrency) continue;
      for (auto& [key, k] : q->keys)
        if (key_eligible(*q, *k)) push_ring(*q, *k);
      fill(*q, now, grants);
    }
  }
  dispatch(std::move(grants));
}

void queue_book::poll() {
  std::vector<queue_grant> grants;
  {
    std::lock_guard lock(mu_);
    const auto now = opts_.now();
    for (auto& [name, q] : queues_) {
      if (!q->wake_at || *q->wake_at > now) continue;
      q->wake_at.reset();
      auto blocked = std::move(q->rate_blocked);
      q->rate_blocked.clear();
      for (key_state* k : blocked) {
        k->rate_blocked = false;
        if (key_eligible(*q, *k)) push_ring(*q, *k);
      }
      fill(*q, now, grants);
    }
  }
  dispatch(std::move(grants));
}

std::optional<queue_book::clock::time_point> queue_book::next_wake() const {
  std::lock_guard lock(mu_);
  std::optional<clock::time_point> at;
  for (const auto& [name, q] : queues_)
    if (q->wake_at && (!at || *q->wake_at < *at)) at = q->wake_at;
  return at;
}

void queue_book::start_timer() {
  std::lock_guard lock(mu_);
  if (timer_.joinable()) return;
  stopping_ = false;
  timer_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      std::optional<clock::time_point> at;
      for (const auto& [name, q] : queues_)
        if (q->wake_at && (!at || *q->wake_at < *at)) at = q->wake_at;
      if (!at) {
        timer_cv_.wait(lock);
        continue;
      }
      if (clock::now() < *at) {
        timer_cv_.wait_until(lock, *at);
        continue;  // woken early (a nearer wake, or stop): look again
      }
      lock.unlock();
      poll();
      lock.lock();
    }
  });
}

void queue_book::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

}  // namespace taskhost
