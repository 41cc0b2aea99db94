// Physical baselines measured by `make bench` (see baselines.cpp).
#pragma once

#include <filesystem>

namespace taskhost::bench {

/// Mean µs of a request/response from a non-actor thread (scoped_actor) to an echo actor.
double caf_request_response_us(int n);
/// Mean µs of a request/then round trip between two actors.
double caf_actor_round_trip_us(int n);
/// Rows/s inserting `rows` rows in transactions of `batch` rows (WAL, synchronous=NORMAL).
double sqlite_batched_insert_rows_per_s(const std::filesystem::path& file, int rows, int batch);

}  // namespace taskhost::bench
