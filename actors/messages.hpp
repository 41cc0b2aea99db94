// Atoms of the messages between taskhost's actors. Included by actor .cpp files only: CAF stays
// out of widely included headers (one CAF TU costs 10-16 s to compile here).
//
// Messages carry only CAF's built-in types (atoms, strings, integers, booleans), so no type-ID
// block is needed yet; the first custom message type starts the one block for the whole system.
#pragma once

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/send.hpp>

#include "actors/supervisor_inbox.hpp"

namespace taskhost::actors {

/// router      ← (trigger_atom, task_id, run_id): a new run was recorded; route it.
using trigger_atom = caf::atom_constant<caf::atom("trigger")>;
/// supervisor  ← (start_atom, run_id): run the next attempt of this run.
using start_atom = caf::atom_constant<caf::atom("start")>;
/// supervisor  ← (granted_atom, run_id): the run's queue gave it a slot (it asked and was queued).
using granted_atom = caf::atom_constant<caf::atom("granted")>;
/// supervisor  ← (started_atom, run_id, attempt, started_at_us, limit_ms): an executor thread began an
/// attempt that has a max duration (it recorded the start itself); arm its deadline.
using started_atom = caf::atom_constant<caf::atom("started")>;
/// supervisor  ← (done_atom, run_id, attempt, stage, ok, json, retryable): a stage of an attempt
/// ended (stage: a th_hook_kind, or run_stage for `run`).
using done_atom = caf::atom_constant<caf::atom("done")>;
constexpr int run_stage = -1;
/// supervisor  ← (suspended_atom, run_id, attempt, keys_json): the run's code awaits these journal
/// entries; its execution is kept, holding no thread, until they are done.
using suspended_atom = caf::atom_constant<caf::atom("suspended")>;
/// supervisor  ← (wake_atom, run_id): something the run waits for completed, or a wait's time came.
using wake_atom = caf::atom_constant<caf::atom("wake")>;
/// supervisor  ← (timeout_atom, run_id, attempt): the attempt's max duration has passed.
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
/// supervisor  ← (cancel_atom, run_id) → bool: cancel the run; true once recorded.
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
/// supervisor  ← (expire_atom, run_id): the run's TTL has passed; expire it unless it started.
using expire_atom = caf::atom_constant<caf::atom("expire")>;
/// store writer ← (flush_atom): commit what is dirty. (purge_atom): purge old runs.
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using purge_atom = caf::atom_constant<caf::atom("purge")>;
/// supervisor  ← (drain_atom) → ok: answered once every message before it was handled.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
/// supervisor  ← (events_atom): its inbox holds events (see supervisor_inbox.hpp); it takes them all.
using events_atom = caf::atom_constant<caf::atom("events")>;

/// Pushes `ev` into a supervisor's inbox and tells the supervisor if no message is on its way.
inline void tell(const caf::actor& sup, supervisor_inbox& inbox, supervisor_event ev) {
  if (inbox.push(std::move(ev))) caf::anon_send(sup, events_atom::value);
}
inline void tell(const caf::actor& sup, supervisor_inbox& inbox, std::vector<supervisor_event>& evs) {
  if (inbox.push(evs)) caf::anon_send(sup, events_atom::value);
}

}  // namespace taskhost::actors
