#include "taskhost/config/duration.hpp"

#include <cctype>
#include <cstdint>
#include <limits>

namespace taskhost::config {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  if (s.empty() || s.size() > 100) return std::nullopt;
  int64_t total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return std::nullopt;
      n = n * 10 + (s[i++] - '0');
    }
    int64_t unit_ms = 0;
    if (s.substr(i, 2) == "hr") { unit_ms = 3600000; i += 2; }
    else if (i < s.size()) {
      switch (s[i]) {
        case 'w': unit_ms = 7 * 86400000LL; break;
        case 'd': unit_ms = 86400000LL; break;
        case 'h': unit_ms = 3600000; break;
        case 'm': unit_ms = 60000; break;
        case 's': unit_ms = 1000; break;
        default: return std::nullopt;
      }
      ++i;
    } else {
      return std::nullopt;  // a number without a unit
    }
    if (n > (std::numeric_limits<int64_t>::max() - total_ms) / unit_ms) return std::nullopt;
    total_ms += n * unit_ms;
  }
  return std::chrono::milliseconds(total_ms);
}

}  // namespace taskhost::config
