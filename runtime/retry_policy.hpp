// Trigger.dev's retry formula as a plain class.
//
// Example:
//
//   retry_policy p({.max_attempts = 3, .factor = 2, .min_timeout_ms = 1000, .max_timeout_ms = 60000});
//   if (auto d = p.next_delay(1, rng)) schedule_retry_in(*d);   // 1000..2000 ms with randomize
//
// Delay after failed attempt n: min(max_timeout_ms, R * min_timeout_ms * factor^(n-1)), R uniform
// in [1, 2) when randomize, else 1. No retry once n >= max_attempts (hard cap 250).
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include <taskhost/plugin_abi.h>

#include "taskhost/config/deployment.hpp"

namespace taskhost {

class retry_policy {
public:
  static constexpr int hard_cap = 250;
  /// A source of uniform doubles in [0, 1); injected so tests are deterministic.
  using random_source = std::function<double()>;

  explicit retry_policy(config::retry_config cfg) : cfg_(cfg) {}

  /// The attempts a run gets: the trigger's max_attempts if > 0, else the policy's; capped.
  int max_attempts(int trigger_override = 0) const;

  /// The delay before the attempt after failed attempt `failed_attempt` (1-based), or nullopt when
  /// no attempt follows.
  std::optional<std::chrono::milliseconds> next_delay(int failed_attempt, const random_source& rnd,
                                                      int trigger_max_attempts = 0) const;

  const config::retry_config& config() const { return cfg_; }

private:
  config::retry_config cfg_;
};

/// `base` with the fields a task definition sets (unset fields keep base's values).
config::retry_config apply_task_retry(config::retry_config base, const th_retry_options& task);

/// A process-wide random source (thread-safe).
double default_random();

}  // namespace taskhost
