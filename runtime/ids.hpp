#pragma once
#include <string>
#include <string_view>

namespace taskhost {
/// A new id: `prefix` + 21 characters from Trigger.dev's alphabet (no 0, l; lower-case).
/// Thread-safe.
std::string new_id(std::string_view prefix);
inline std::string new_run_id() { return new_id("run_"); }
}  // namespace taskhost
