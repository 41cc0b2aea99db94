// The run store's writer: the one actor that commits to SQLite. It runs detached (its own thread),
// so a slow disk or an fsync never stalls the actors that route and drive runs.
//
// Group commit falls out of the mailbox: the store sends one `flush` when something becomes dirty
// and not again until that flush has gathered it, so everything that changes while a commit is
// running goes into the next one, in one transaction. A failed commit (disk full) is retried
// every half second; the store keeps the changes of existing runs and refuses the new ones. It also
// purges finished runs past their retention (and then the wait tokens and API batches of that age
// that nothing needs any more), and expired request idempotency keys every minute.
#include <caf/all.hpp>

#include <malloc.h>

#include <algorithm>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {
namespace {

struct writer_state {
  bool retry_armed = false;
  bool failing = false;
  uint64_t evictions_at_trim = 0;
};

/// After a burst of runs has left memory, hands the freed heap back to the system: glibc keeps it
/// otherwise, and a runtime that ran 100,000 runs an hour ago would still look that big.
void trim_after_burst(run_store& store, writer_state& st) {
  auto s = store.stats();
  if (s.evictions - st.evictions_at_trim < 20000 || s.hot_runs > 1000) return;
  st.evictions_at_trim = s.evictions;
  malloc_trim(0);
}

caf::behavior store_writer(caf::event_based_actor* self, run_store* store, double retention_days) {
  auto st = std::make_shared<writer_state>();
  const auto retention = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double, std::ratio<86400>>(retention_days));
  // Purge about ten times per retention period: every hour for 30 days, more often for short ones.
  const auto purge_every = std::clamp<std::chrono::milliseconds>(retention / 10, std::chrono::seconds(1), std::chrono::hours(1));
  self->send(self, purge_atom::value);
  self->send(self, purge_atom::value, true);
  return {
      [=](flush_atom) {
        bool ok = store->flush();
        if (ok) trim_after_burst(*store, *st);
        if (ok && st->failing) {
          st->failing = false;
          log::info("run store: commits succeed again");
        }
        if (!ok) {
          if (!st->failing) log::error("run store: commit failed; new runs are refused (503) until it succeeds; retrying");
          st->failing = true;
          if (!st->retry_armed) {
            st->retry_armed = true;
            self->delayed_send(self, std::chrono::milliseconds(500), flush_atom::value, true);
          }
        }
        return ok;
      },
      [=](flush_atom, bool) {  // the retry timer
        st->retry_armed = false;
        if (store->dirty()) self->send(self, flush_atom::value);
      },
      [=](purge_atom) {
        try {
          const auto now = clock_type::now();
          auto n = store->purge_finished_before(now - retention);
          if (n) log::info("run store: purged finished runs past their retention", {{"runs", n}});
          // Then what those runs were part of: ended wait tokens, API batches without runs.
          auto t = store->purge_tokens_before(now - retention, now);
          auto b = store->purge_batches_before(now - retention, now);
          if (t || b) log::info("run store: purged wait tokens and batches past their retention", {{"tokens", t}, {"batches", b}});
          auto p = store->purge_packets(clock_type::now());
          if (p) log::info("run store: deleted expired packets", {{"packets", p}});
        } catch (const std::exception& e) {
          log::warn("run store: purge failed; trying again later", {{"error", e.what()}});
        }
        self->delayed_send(self, purge_every, purge_atom::value);
      },
      [=](purge_atom, bool) {  // request idempotency keys past their time, every minute
        try {
          store->purge_request_keys(clock_type::now());
        } catch (const std::exception& e) {
          log::warn("run store: purging request idempotency keys failed; trying again later", {{"error", e.what()}});
        }
        self->delayed_send(self, std::chrono::minutes(1), purge_atom::value, true);
      },
  };
}

}  // namespace

caf::actor spawn_store_writer(caf::actor_system& sys, run_store* store, double retention_days) {
  return sys.spawn<caf::detached>(store_writer, store, retention_days);
}

}  // namespace taskhost::actors
