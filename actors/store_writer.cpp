// The run store's writers: the actors that commit to SQLite. They run detached (each its own
// thread), so a slow disk or an fsync never stalls the actors that route and drive runs.
//
// Group commit falls out of the mailbox: the store sends one `flush` when something becomes dirty
// and not again until that flush has gathered it, so everything that changes while a commit is
// running goes into the next one, in one transaction. A failed commit (disk full) is retried
// every half second; the store keeps the changes of existing runs and refuses the new ones. The
// main writer also purges finished runs past their retention (and then the wait tokens and API
// batches of that age that nothing needs any more), and expired request idempotency keys every
// minute.
//
// There are two writers, one commit at a time between them (`store_writers::mu`). The main one
// does all the work while it is free. After a commit in a runtime that is not busy, it may run
// the code of a run it has just committed on its own thread (after_commit_slot): that run starts
// without waiting for a thread to wake up (on an idle machine a halted CPU takes 15–30 µs). While
// it runs a run's code — which may take any time — it is `lent`, and the store wakes the standby
// writer instead. It lends itself only if no writer was woken since its commit began (a wake-up
// sent to it meanwhile would wait in its mailbox): it sets `lent` and then looks at the store's
// wake-up flag (under the store's lock); the store sets that flag (under the lock) and then reads
// `lent` to choose whom to wake, so one of the two sees the other.
#include <caf/all.hpp>

#include <malloc.h>

#include <algorithm>
#include <mutex>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {

class store_writers {
public:
  explicit store_writers(run_store* s) : store(s) {}

  run_store* const store;
  caf::actor main, standby;
  std::mutex mu;  ///< one commit or purge at a time; guards the fields below
  bool retry_armed = false;
  bool failing = false;
  uint64_t evictions_at_trim = 0;
  std::atomic<bool> lent{false};  ///< the main writer runs a run's code: wake the standby one
};

namespace {

/// Set on the main writer's thread during a commit's callbacks: where one job may wait for them.
thread_local std::function<void(bool)>* commit_slot = nullptr;

/// After a burst of runs has left memory, hands the freed heap back to the system: glibc keeps it
/// otherwise, and a runtime that ran 100,000 runs an hour ago would still look that big.
void trim_after_burst(store_writers& w) {
  auto s = w.store->stats();
  if (s.evictions - w.evictions_at_trim < 20000 || s.hot_runs > 1000) return;
  w.evictions_at_trim = s.evictions;
  malloc_trim(0);
}

/// One commit of what is dirty, with the failure bookkeeping; under w.mu.
bool commit(caf::event_based_actor* self, store_writers& w) {
  bool ok = w.store->flush();
  if (ok) trim_after_burst(w);
  if (ok && w.failing) {
    w.failing = false;
    log::info("run store: commits succeed again");
  }
  if (!ok) {
    if (!w.failing) log::error("run store: commit failed; new runs are refused (503) until it succeeds; retrying");
    w.failing = true;
    if (!w.retry_armed) {
      w.retry_armed = true;
      self->delayed_send(self, std::chrono::milliseconds(500), flush_atom::value, true);
    }
  }
  return ok;
}

/// The main writer lends its thread to `job` (a run's code): the standby writer commits meanwhile.
/// Unless a writer has been woken since this commit began (a busy runtime, or a change that came
/// meanwhile, whose wake-up may be in this writer's mailbox): then the job goes elsewhere
/// (job(false)) and this writer goes on committing, rather than waking the standby one for it.
void lend(store_writers& w, const std::function<void(bool)>& job) {
  w.lent.store(true);
  const bool busy = w.store->wake_pending();
  if (busy) w.lent.store(false);
  try {
    job(!busy);
  } catch (const std::exception& e) {
    log::error("a job run on the store's writer threw", {{"error", e.what()}});
  } catch (...) {
    log::error("a job run on the store's writer threw");
  }
  if (!busy) w.lent.store(false);
}

caf::behavior writer(caf::event_based_actor* self, std::shared_ptr<store_writers> w, bool is_main, double retention_days) {
  const auto retention = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double, std::ratio<86400>>(retention_days));
  // Purge about ten times per retention period: every hour for 30 days, more often for short ones.
  const auto purge_every = std::clamp<std::chrono::milliseconds>(retention / 10, std::chrono::seconds(1), std::chrono::hours(1));
  if (is_main) {
    self->send(self, purge_atom::value);
    self->send(self, purge_atom::value, true);
  }
  return {
      [=](flush_atom) {
        std::function<void(bool)> after;
        bool ok;
        {
          std::lock_guard lock(w->mu);
          struct slot_scope {
            explicit slot_scope(std::function<void(bool)>* s) { commit_slot = s; }
            ~slot_scope() { commit_slot = nullptr; }
          } scope(is_main ? &after : nullptr);
          ok = commit(self, *w);
        }
        if (after) lend(*w, after);
        return ok;
      },
      [=](flush_atom, bool) {  // the retry timer
        {
          std::lock_guard lock(w->mu);
          w->retry_armed = false;
        }
        if (w->store->dirty()) self->send(self, flush_atom::value);
      },
      [=](purge_atom) {
        try {
          std::lock_guard lock(w->mu);
          const auto now = clock_type::now();
          auto n = w->store->purge_finished_before(now - retention);
          if (n) log::info("run store: purged finished runs past their retention", {{"runs", n}});
          // Then what those runs were part of: ended wait tokens, API batches without runs.
          auto t = w->store->purge_tokens_before(now - retention, now);
          auto b = w->store->purge_batches_before(now - retention, now);
          if (t || b) log::info("run store: purged wait tokens and batches past their retention", {{"tokens", t}, {"batches", b}});
          auto p = w->store->purge_packets(clock_type::now());
          if (p) log::info("run store: deleted expired packets", {{"packets", p}});
        } catch (const std::exception& e) {
          log::warn("run store: purge failed; trying again later", {{"error", e.what()}});
        }
        self->delayed_send(self, purge_every, purge_atom::value);
      },
      [=](purge_atom, bool) {  // request idempotency keys past their time, every minute
        try {
          std::lock_guard lock(w->mu);
          w->store->purge_request_keys(clock_type::now());
        } catch (const std::exception& e) {
          log::warn("run store: purging request idempotency keys failed; trying again later", {{"error", e.what()}});
        }
        self->delayed_send(self, std::chrono::minutes(1), purge_atom::value, true);
      },
  };
}

}  // namespace

std::shared_ptr<store_writers> spawn_store_writers(caf::actor_system& sys, run_store* store, double retention_days) {
  auto w = std::make_shared<store_writers>(store);
  w->main = sys.spawn<caf::detached>(writer, w, true, retention_days);
  w->standby = sys.spawn<caf::detached>(writer, w, false, retention_days);
  return w;
}

void wake_store_writer(store_writers& w) { caf::anon_send(w.lent.load() ? w.standby : w.main, flush_atom::value); }

std::function<void(bool)>* after_commit_slot() { return commit_slot && !*commit_slot ? commit_slot : nullptr; }

bool stop_store_writers(caf::actor_system& sys, store_writers& w) {
  caf::scoped_actor self{sys};
  // A main writer still running a run's code (an attempt abandoned after the grace period; none
  // starts there once the executor stops) is neither asked nor waited for.
  const bool main_free = !w.lent.load();
  self->request(main_free ? w.main : w.standby, std::chrono::seconds(30), flush_atom::value).receive([](bool) {}, [&](caf::error&) {});
  self->send_exit(w.main, caf::exit_reason::user_shutdown);
  self->send_exit(w.standby, caf::exit_reason::user_shutdown);
  self->wait_for(w.standby);
  if (main_free) self->wait_for(w.main);
  w.store->set_notify({});
  // What changed since (a run abandoned on the main writer): committed here, one commit at a time.
  std::lock_guard lock(w.mu);
  return !w.store->dirty() || w.store->flush();
}

}  // namespace taskhost::actors
