#include "runtime/retry_policy.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace taskhost {

int retry_policy::max_attempts(int trigger_override) const {
  int n = trigger_override > 0 ? trigger_override : cfg_.max_attempts;
  return std::clamp(n, 1, hard_cap);
}

std::optional<std::chrono::milliseconds> retry_policy::next_delay(int failed_attempt, const random_source& rnd,
                                                                  int trigger_max_attempts) const {
  if (failed_attempt >= max_attempts(trigger_max_attempts)) return std::nullopt;
  double r = cfg_.randomize ? 1.0 + rnd() : 1.0;
  double d = r * double(cfg_.min_timeout_ms) * std::pow(cfg_.factor, failed_attempt - 1);
  d = std::min(d, double(cfg_.max_timeout_ms));
  return std::chrono::milliseconds(static_cast<int64_t>(d));
}

double default_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace taskhost
