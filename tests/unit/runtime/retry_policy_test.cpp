#include "runtime/retry_policy.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using taskhost::retry_policy;
using taskhost::config::retry_config;

namespace {
double zero() { return 0.0; }
double almost_one() { return 0.999; }
}  // namespace

TEST(RetryPolicyTest, DelayGrowsByFactorUntilMax) {
  retry_policy p(retry_config{.max_attempts = 10, .factor = 2, .min_timeout_ms = 1000, .max_timeout_ms = 5000, .randomize = false});
  EXPECT_EQ(p.next_delay(1, zero), 1000ms);
  EXPECT_EQ(p.next_delay(2, zero), 2000ms);
  EXPECT_EQ(p.next_delay(3, zero), 4000ms);
  EXPECT_EQ(p.next_delay(4, zero), 5000ms);
  EXPECT_EQ(p.next_delay(9, zero), 5000ms);
}

TEST(RetryPolicyTest, NoRetryOnceAttemptsAreUsedUp) {
  retry_policy p(retry_config{.max_attempts = 3, .factor = 2, .min_timeout_ms = 10, .max_timeout_ms = 100, .randomize = false});
  EXPECT_TRUE(p.next_delay(2, zero).has_value());
  EXPECT_FALSE(p.next_delay(3, zero).has_value());
  EXPECT_FALSE(p.next_delay(4, zero).has_value());
}

TEST(RetryPolicyTest, RandomizeScalesByOneToTwo) {
  retry_policy p(retry_config{.max_attempts = 5, .factor = 2, .min_timeout_ms = 1000, .max_timeout_ms = 60000, .randomize = true});
  EXPECT_EQ(p.next_delay(1, zero), 1000ms);
  EXPECT_EQ(p.next_delay(1, almost_one), 1999ms);
  EXPECT_EQ(p.next_delay(2, almost_one), 3998ms);
}

TEST(RetryPolicyTest, TriggerMaxAttemptsOverridesThePolicyAndIsCapped) {
  retry_policy p(retry_config{.max_attempts = 3, .factor = 1, .min_timeout_ms = 0, .max_timeout_ms = 0, .randomize = false});
  EXPECT_EQ(p.max_attempts(), 3);
  EXPECT_EQ(p.max_attempts(1), 1);
  EXPECT_FALSE(p.next_delay(1, zero, 1).has_value());
  EXPECT_TRUE(p.next_delay(5, zero, 6).has_value());
  EXPECT_EQ(p.max_attempts(1000), retry_policy::hard_cap);
  EXPECT_EQ(p.next_delay(1, zero), 0ms);
}

TEST(RetryPolicyTest, DefaultRandomIsInUnitInterval) {
  for (int i = 0; i < 1000; ++i) {
    double r = taskhost::default_random();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
  }
}

TEST(RetryPolicyTest, TaskDefinitionOverridesOnlyTheFieldsItSets) {
  retry_config base{.max_attempts = 3, .factor = 2, .min_timeout_ms = 1000, .max_timeout_ms = 60000, .randomize = true};
  th_retry_options unset{0, -1, 0.0, -1, -1};
  EXPECT_EQ(taskhost::apply_task_retry(base, unset), base);
  th_retry_options some{5, 0, 0.0, 10, -1};
  auto r = taskhost::apply_task_retry(base, some);
  EXPECT_EQ(r.max_attempts, 5);
  EXPECT_FALSE(r.randomize);
  EXPECT_EQ(r.min_timeout_ms, 10);
  EXPECT_DOUBLE_EQ(r.factor, 2);
  EXPECT_EQ(r.max_timeout_ms, 60000);
}
