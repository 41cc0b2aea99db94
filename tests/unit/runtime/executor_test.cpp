#include "runtime/executor.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

// A job's last steps (executor::finishing): what they post runs next on the same thread, ahead of
// jobs already queued, and wakes no other thread; elsewhere the scope changes nothing.
TEST(ExecutorTest, WhatAFinishingJobPostsRunsNextOnItsThread) {
  {
    executor one(1);  // one thread: the order is exact
    std::mutex mu;
    std::vector<std::string> order;
    auto note = [&](const std::string& s) {
      std::lock_guard lock(mu);
      order.push_back(s);
    };
    std::promise<void> done;
    ASSERT_TRUE(one.post([&] {
      one.post([&] { note("queued before"); });
      {
        executor::finishing last_steps(one);
        one.post([&] {
          note("posted while finishing");
        });
      }
      one.post([&] { done.set_value(); });  // queued after "queued before"
      note("first job ends");
    }));
    ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
    std::lock_guard lock(mu);
    EXPECT_EQ(order, (std::vector<std::string>{"first job ends", "posted while finishing", "queued before"}));
  }
  {
    executor four(4);  // three threads asleep: none is woken for it
    std::this_thread::sleep_for(100ms);  // every thread is asleep by now (an awake one could take it)
    std::promise<std::thread::id> poster, runner;
    std::atomic<bool> poster_done{false};
    std::atomic<bool> ran_after{false};
    ASSERT_TRUE(four.post([&] {
      {
        executor::finishing last_steps(four);
        four.post([&] {
          ran_after = poster_done.load();
          runner.set_value(std::this_thread::get_id());
        });
      }
      std::this_thread::sleep_for(50ms);  // an idle thread woken for it would take it meanwhile
      poster.set_value(std::this_thread::get_id());
      poster_done = true;
    }));
    auto r = runner.get_future();
    ASSERT_EQ(r.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(r.get(), poster.get_future().get());
    EXPECT_TRUE(ran_after) << "it ran once the job that posted it had returned";
  }
  {
    // Not on one of its threads (here: the test's), or on another executor's: an ordinary post.
    executor a(1), b(1);
    std::promise<std::thread::id> ran;
    {
      executor::finishing not_a_worker(a);
      ASSERT_TRUE(a.post([&] { ran.set_value(std::this_thread::get_id()); }));
    }
    auto f = ran.get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_NE(f.get(), std::this_thread::get_id());
    std::promise<void> other_ran;
    ASSERT_TRUE(b.post([&] {
      executor::finishing on_b(b);
      a.post([&] { other_ran.set_value(); });  // a's thread is idle and is woken for it
      std::this_thread::sleep_for(10ms);
    }));
    EXPECT_EQ(other_ran.get_future().wait_for(10s), std::future_status::ready);
  }
}

// Threads are woken one at a time, each woken one waking the next while jobs are left: jobs
// posted in one burst must still end up running on every thread at once.
TEST(ExecutorTest, ABurstOfBlockingJobsRunsOnEveryThreadAtOnce) {
  constexpr int n = 6;
  executor ex(n, n);  // a fixed pool: no growth to hide a thread that was never woken
  std::this_thread::sleep_for(50ms);  // every thread asleep, waiting for a job
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  std::atomic<int> met{0}, finished{0};
  for (int i = 0; i < n; ++i)
    ASSERT_TRUE(ex.post([&] {
      std::unique_lock lock(mu);
      ++inside;
      cv.notify_all();
      if (cv.wait_for(lock, 10s, [&] { return inside == n; })) ++met;  // every job waits for all the others
      ++finished;
    }));
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (finished.load() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(ex.stop(5s));
  EXPECT_EQ(met.load(), n);
}

// Many posters and short jobs at random moments: no job is left queued with threads asleep.
TEST(ExecutorTest, NoJobWaitsWhileThreadsSleep) {
  executor ex(4, 4);
  std::atomic<int> done{0};
  constexpr int per_poster = 20000;
  std::vector<std::thread> posters;
  for (int p = 0; p < 3; ++p)
    posters.emplace_back([&, p] {
      for (int i = 0; i < per_poster; ++i) {
        ex.post([&] { done.fetch_add(1, std::memory_order_relaxed); });
        if ((i + p) % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));  // the pool goes idle
      }
    });
  for (auto& t : posters) t.join();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (done.load() < 3 * per_poster && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(done.load(), 3 * per_poster);
  // And one more after everything went quiet: it runs without another post behind it.
  std::promise<void> last;
  ex.post([&] { last.set_value(); });
  EXPECT_EQ(last.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(ex.stop(5s));
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

namespace {

// Jobs block in wait() until release(); counts how many are waiting and how many got through.
struct gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
  int passed = 0;

  void wait() {
    std::unique_lock lock(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    ++passed;
    cv.notify_all();
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  bool wait_until_waiting(int n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return waiting >= n; });
  }
  bool wait_until_passed(int n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return passed >= n; });
  }
  int now_waiting() {
    std::lock_guard lock(mu);
    return waiting - passed;
  }
};

// Opens the gate when the test leaves, even through a failed ASSERT: declared after the executor,
// it runs before the executor's destructor, which waits for the blocked jobs.
struct release_on_exit {
  std::shared_ptr<gate> g;
  ~release_on_exit() { g->release(); }
};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace

TEST(ExecutorTest, SizesDefaultAndClamp) {
  executor a(3);
  EXPECT_EQ(a.threads(), 3u);
  EXPECT_EQ(a.max_threads(), 256u);
  EXPECT_EQ(a.live_threads(), 3u);
  EXPECT_EQ(a.threads_added(), 0u);
  executor b(2, 1);
  EXPECT_EQ(b.max_threads(), 2u) << "a max below the core count means a fixed pool";
  executor c(0, 8);
  EXPECT_EQ(c.threads(), executor::default_threads());
  EXPECT_EQ(c.max_threads(), std::max(8u, executor::default_threads()));
  EXPECT_EQ(executor::default_max_threads(300), 300u);
  EXPECT_EQ(executor::default_max_threads(4), 256u);
}

TEST(ExecutorTest, GrowsWhenEveryThreadIsBlocked) {
  executor ex(2, 8, 10ms);
  auto g = std::make_shared<gate>();
  release_on_exit opener{g};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ex.post([g] { g->wait(); }));
  std::promise<void> quick_ran;
  ASSERT_TRUE(ex.post([&] { quick_ran.set_value(); }));
  // Jobs start in order, so the quick one runs after the four blocked ones started: on 5 threads.
  EXPECT_EQ(quick_ran.get_future().wait_for(2s), std::future_status::ready) << "the pool did not grow";
  EXPECT_EQ(g->now_waiting(), 4) << "the blocked jobs are still blocked";
  // Exactly 3 threads: 5 jobs need 5 threads, and the pool grows only while a job waits and every
  // thread is busy — with 5 threads and 5 jobs, no job can wait.
  EXPECT_EQ(ex.threads_added(), 3u);
  EXPECT_EQ(ex.live_threads(), 5u);
  EXPECT_EQ(ex.threads(), 2u) << "threads() stays the core count";
  g->release();
  EXPECT_TRUE(g->wait_until_passed(4, 10s));
  EXPECT_TRUE(ex.stop(10s));
}

// Each job is posted once the previous one is blocked: the monitor sees the queue empty between
// them, goes idle, and must wake again for the next one.
TEST(ExecutorTest, GrowsForJobsPostedOneAtATime) {
  executor ex(1, 4, 10ms);
  for (int i = 0; i < 50; ++i) {  // many chances for the monitor to wake to an empty queue
    std::promise<void> ran;
    ASSERT_TRUE(ex.post([&] { ran.set_value(); }));
    ASSERT_EQ(ran.get_future().wait_for(10s), std::future_status::ready);
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(ex.threads_added(), 0u);
  auto g = std::make_shared<gate>();
  release_on_exit opener{g};
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(ex.post([g] { g->wait(); }));
    ASSERT_TRUE(g->wait_until_waiting(i, 10s)) << "job " << i << " did not start";
    std::this_thread::sleep_for(30ms);
  }
  EXPECT_EQ(ex.threads_added(), 3u);
  g->release();
  EXPECT_TRUE(ex.stop(10s));
}

// Two blocking jobs posted back to back into an idle pool of one: at both posts the thread is
// still waiting (it has not woken yet), so neither post wakes the monitor; the thread that takes
// the first job and leaves the second queued with no thread waiting must. Repeated, as whether a
// post finds the thread still waiting is a matter of timing.
TEST(ExecutorTest, GrowsForABurstPostedIntoAnIdlePool) {
  for (int trial = 0; trial < 10; ++trial) {
    executor ex(1, 4, 10ms);
    std::this_thread::sleep_for(2ms);  // the thread waits for work
    auto g = std::make_shared<gate>();
    release_on_exit opener{g};
    ASSERT_TRUE(ex.post([g] { g->wait(); }));
    ASSERT_TRUE(ex.post([g] { g->wait(); }));
    ASSERT_TRUE(g->wait_until_waiting(2, 5s)) << "trial " << trial << ": the second job never started: the pool did not grow";
    g->release();
    EXPECT_TRUE(ex.stop(10s));
  }
}

TEST(ExecutorTest, DoesNotGrowPastMaxThreads) {
  executor ex(2, 2, 10ms);
  auto g = std::make_shared<gate>();
  release_on_exit opener{g};
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex.post([g] { g->wait(); }));
  ASSERT_TRUE(g->wait_until_waiting(2, 10s));
  std::atomic<bool> quick{false};
  std::promise<void> quick_ran;
  ASSERT_TRUE(ex.post([&] {
    quick = true;
    quick_ran.set_value();
  }));
  std::this_thread::sleep_for(200ms);  // 20 windows
  EXPECT_FALSE(quick) << "ran while both threads were blocked: the pool grew past its max";
  EXPECT_EQ(ex.threads_added(), 0u);
  EXPECT_EQ(ex.live_threads(), 2u);
  EXPECT_EQ(ex.queued(), 1u);
  g->release();
  EXPECT_EQ(quick_ran.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(ex.stop(10s));
}

TEST(ExecutorTest, ABurstOfTinyJobsAddsNoThread) {
  executor ex(1, 8, 10ms);
  constexpr int n = 200'000;
  std::atomic<int> done{0};
  std::promise<void> all_done;
  for (int i = 0; i < n; ++i)
    ASSERT_TRUE(ex.post([&] {
      if (done.fetch_add(1) + 1 == n) all_done.set_value();
    }));
  ASSERT_EQ(all_done.get_future().wait_for(120s), std::future_status::ready);
  // Jobs kept starting; and on Linux the worker, when it waited for a CPU, was runnable, not blocked.
  EXPECT_EQ(ex.threads_added(), 0u);
  EXPECT_EQ(ex.live_threads(), 1u);
  EXPECT_TRUE(ex.stop(10s));
}

#ifdef __linux__
// The busy thread computes (runnable, not blocked in the kernel): more threads would only contend.
TEST(ExecutorTest, ALongCpuBoundJobAddsNoThread) {
  executor ex(1, 8, 10ms);
  std::atomic<bool> spin{true};
  std::promise<void> spinning;
  ASSERT_TRUE(ex.post([&] {
    spinning.set_value();
    while (spin.load(std::memory_order_relaxed)) {
    }
  }));
  spinning.get_future().wait();
  std::promise<void> quick_ran;
  EXPECT_TRUE(ex.post([&] { quick_ran.set_value(); }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(ex.threads_added(), 0u);
  spin = false;
  EXPECT_EQ(quick_ran.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(ex.stop(10s));
}
#endif

TEST(ExecutorTest, ExtraThreadsExitWhenIdle) {
  executor ex(1, 4, 10ms, 100ms);
  auto g = std::make_shared<gate>();
  release_on_exit opener{g};
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex.post([g] { g->wait(); }));
  ASSERT_TRUE(g->wait_until_waiting(2, 10s)) << "the pool did not grow for the second blocked job";
  EXPECT_EQ(ex.threads_added(), 1u);
  EXPECT_EQ(ex.live_threads(), 2u);
  g->release();
  EXPECT_TRUE(eventually([&] { return ex.live_threads() == 1; }, 2s)) << ex.live_threads();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ex.live_threads(), 1u) << "a core thread exited";
  std::promise<void> ran;
  ASSERT_TRUE(ex.post([&] { ran.set_value(); }));
  EXPECT_EQ(ran.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(ex.stop(10s));
  EXPECT_EQ(ex.threads_added(), 1u);
}

TEST(ExecutorTest, StopGivesUpOnBlockedExtraThreads) {
  auto ex = std::make_unique<executor>(1, 4, 10ms);
  auto g = std::make_shared<gate>();
  release_on_exit opener{g};
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ex->post([g] { g->wait(); }));
  ASSERT_TRUE(g->wait_until_waiting(2, 10s)) << "the pool did not grow for the second blocked job";
  EXPECT_EQ(ex->threads_added(), 1u);
  EXPECT_EQ(ex->live_threads(), 2u);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ex->stop(50ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(ex->in_flight(), 2u);
  EXPECT_FALSE(ex->post([] {}));
  ex.reset();  // safe while detached threads still run the jobs: they share the pool's state
  g->release();
  EXPECT_TRUE(g->wait_until_passed(2, 10s));
}
