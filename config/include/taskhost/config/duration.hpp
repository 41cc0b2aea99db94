// Durations written the way Trigger.dev writes them: "30s", "1h30m", "2d", "1w" — one or more
// <integer><unit> pairs, units w d hr h m s, at most 100 characters (reference §7).
//
// Example:
//
//   auto d = taskhost::config::parse_duration("1h30m");   // std::optional: 5400 s
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace taskhost::config {

/// The duration, or nullopt if `text` does not follow the grammar or overflows.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace taskhost::config
