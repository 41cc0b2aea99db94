#include "runtime/cancel_token.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace std::chrono_literals;
using taskhost::cancel_token;

TEST(CancelTokenTest, FirstReasonWins) {
  cancel_token t;
  EXPECT_EQ(t.reason(), TH_CANCEL_NONE);
  t.cancel(TH_CANCEL_TIMED_OUT);
  t.cancel(TH_CANCEL_CANCELED);
  EXPECT_EQ(t.reason(), TH_CANCEL_TIMED_OUT);
}

TEST(CancelTokenTest, WaitWakesOnCancel) {
  cancel_token t;
  std::thread canceller([&] {
    std::this_thread::sleep_for(50ms);
    t.cancel(TH_CANCEL_CANCELED);
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(t.wait_for(30s), TH_CANCEL_CANCELED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  canceller.join();
}

TEST(CancelTokenTest, WaitTimesOutWithoutCancel) {
  cancel_token t;
  EXPECT_EQ(t.wait_for(10ms), TH_CANCEL_NONE);
}
