// A supervisor's inbox: only the push that finds no message on its way asks for one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "actors/supervisor_inbox.hpp"

namespace taskhost::actors {
namespace {

TEST(SupervisorInboxTest, OneMessagePerBatchAndEverythingInOrder) {
  supervisor_inbox in;
  EXPECT_TRUE(in.push({supervisor_event::start, "run_1"}));   // the supervisor is told
  EXPECT_FALSE(in.push({supervisor_event::done, "run_2"}));   // a message is already on its way
  std::vector<supervisor_event> more{{supervisor_event::granted, "run_3"}};
  EXPECT_FALSE(in.push(more));
  auto got = in.take();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].run_id, "run_1");
  EXPECT_EQ(got[1].kind, supervisor_event::done);
  EXPECT_EQ(got[2].run_id, "run_3");
  EXPECT_TRUE(in.take().empty());
  EXPECT_TRUE(in.push({supervisor_event::wake, "run_4"}));  // taken: the next push tells it again
  std::vector<supervisor_event> none;
  EXPECT_FALSE(in.push(none));
}

TEST(SupervisorInboxTest, NothingIsLostBetweenProducersAndTheConsumer) {
  supervisor_inbox in;
  constexpr int per = 50000;
  std::atomic<int> signals{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < per; ++i)
        if (in.push({supervisor_event::done, std::to_string(p)})) ++signals;
    });
  size_t taken = 0;
  int takes = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (taken < 3 * per && std::chrono::steady_clock::now() < deadline) {
    // The consumer takes only when told (as the supervisor does on its message).
    if (signals.load() > takes) {
      ++takes;
      taken += in.take().size();
    } else {
      std::this_thread::yield();
    }
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(taken, size_t(3 * per));
  EXPECT_TRUE(in.take().empty());
}

}  // namespace
}  // namespace taskhost::actors
