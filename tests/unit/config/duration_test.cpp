#include "taskhost/config/duration.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using taskhost::config::parse_duration;

TEST(DurationTest, TriggerDevGrammarParses) {
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration("2hr"), 2h);
  EXPECT_EQ(parse_duration("2d"), 48h);
  EXPECT_EQ(parse_duration("1w"), 168h);
  EXPECT_EQ(parse_duration("1m1s"), 61s);
  EXPECT_EQ(parse_duration("0s"), 0s);
}

TEST(DurationTest, AnythingElseIsRefused) {
  for (const char* bad : {"", "5", "s", "5 parsecs", "5x", "1.5h", "-3s", "1h 30m", "h1", "99999999999999999999s"})
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  EXPECT_FALSE(parse_duration(std::string(101, '1') + "s").has_value()) << "over 100 characters";
}
