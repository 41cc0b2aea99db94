#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace taskhost {
/// A new id: `prefix` + 21 random characters from Trigger.dev's alphabet (no 0, l; lower-case).
/// Thread-safe.
std::string new_id(std::string_view prefix);

/// A new run id: "run_" + 21 characters of the same alphabet, time-ordered: 11 characters of a
/// microsecond clock (since the Unix epoch), then 10 random ones. Ids made by one process are
/// strictly increasing, in creation order, also within one microsecond and across threads (the
/// clock part then counts on past the real clock, and catches up when the burst ends). They sort
/// as strings in that order, so that a new run's row lands at the end of every index keyed by id
/// (and the queue's index of queued runs) instead of on a random page.
/// The id tells when a run was created, as a run's JSON does.
std::string new_run_id();

/// Hashes run ids for the maps that hold many of them (the store's runs in memory, the
/// supervisors'). A run id from new_run_id() hashes to a number that grows with its clock part:
/// distinct for the ids one process makes within 21 days, and ids made close in time land in
/// neighbouring buckets, so that a million runs in memory are reached in the order they were made
/// (their start from a long queue, say) on memory the CPU has just fetched, not on a random cache
/// line each. Other ids (made before run ids were time-ordered, or of another kind) are hashed as
/// std::hash hashes them.
struct run_id_hash {
  size_t operator()(std::string_view id) const noexcept;
};

}  // namespace taskhost
