#include "runtime/executor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

using namespace std::chrono_literals;
using taskhost::executor;

TEST(ExecutorTest, RunsEveryPostedJobOnItsOwnThreads) {
  executor ex(3);
  EXPECT_EQ(ex.threads(), 3u);
  std::atomic<int> done{0};
  std::promise<void> all_done;
  std::promise<std::thread::id> where;
  ex.post([&] { where.set_value(std::this_thread::get_id()); });
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(ex.post([&] {
      if (++done == 100) all_done.set_value();
    }));
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
  ASSERT_EQ(all_done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(ex.stop(5s));
  EXPECT_EQ(done.load(), 100);
}

TEST(ExecutorTest, StopWaitsForJobsInFlight) {
  executor ex(2);
  std::atomic<bool> finished{false};
  std::promise<void> started;
  ex.post([&] {
    started.set_value();
    std::this_thread::sleep_for(200ms);
    finished = true;
  });
  started.get_future().wait();
  EXPECT_TRUE(ex.stop(10s));
  EXPECT_TRUE(finished);
  EXPECT_FALSE(ex.post([] {})) << "no jobs after stop";
}

TEST(ExecutorTest, StopGivesUpAfterTheGracePeriod) {
  auto ex = std::make_unique<executor>(1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> started;
  std::atomic<bool> finished{false};
  ex->post([&, released] {
    started.set_value();
    released.wait();
    finished = true;
  });
  started.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ex->stop(100ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(ex->in_flight(), 1u);
  ex.reset();  // safe while the detached thread still runs the job: it shares the pool's state
  release.set_value();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!finished && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(finished);
}

TEST(ExecutorTest, DestructorWaitsForJobsInFlight) {
  std::atomic<bool> finished{false};
  std::promise<void> started;
  {
    executor ex(1);
    ex.post([&] {
      started.set_value();
      std::this_thread::sleep_for(100ms);
      finished = true;
    });
    started.get_future().wait();
  }
  EXPECT_TRUE(finished);
}

TEST(ExecutorTest, AJobThatThrowsDoesNotKillItsThread) {
  executor ex(1);
  ex.post([] { throw std::runtime_error("user bug"); });
  std::promise<void> ran;
  ex.post([&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(5s), std::future_status::ready);
}

TEST(ExecutorTest, StopStillRunsQueuedFinishOnStopJobs) {
  executor ex(1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::promise<void> started;
  ex.post([&, released] {
    started.set_value();
    released.wait();
  });
  started.get_future().wait();
  std::atomic<bool> dropped_ran{false}, kept_ran{false};
  ex.post([&] { dropped_ran = true; });
  ex.post([&] { kept_ran = true; }, /*finish_on_stop=*/true);
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    release.set_value();
  });
  EXPECT_TRUE(ex.stop(10s));
  releaser.join();
  EXPECT_TRUE(kept_ran);
  EXPECT_FALSE(dropped_ran);
}
