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

config::retry_config apply_task_retry(config::retry_config base, const th_retry_options& t) {
  if (t.max_attempts > 0) base.max_attempts = t.max_attempts;
  if (t.factor >= 1.0) base.factor = t.factor;
  if (t.min_timeout_ms >= 0) base.min_timeout_ms = t.min_timeout_ms;
  if (t.max_timeout_ms >= 0) base.max_timeout_ms = t.max_timeout_ms;
  if (t.randomize >= 0) base.randomize = t.randomize != 0;
  base.max_timeout_ms = std::max(base.max_timeout_ms, base.min_timeout_ms);
  return base;
}

double default_random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace taskhost
