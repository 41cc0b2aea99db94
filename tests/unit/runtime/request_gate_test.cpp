// One request at a time per request idempotency key: the others wait for its answer.
#include "runtime/request_gate.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using namespace taskhost;

TEST(RequestGateTest, TheFirstHolderLeadsAndTheOthersGetItsAnswer) {
  request_gate g;
  std::vector<int> got;
  EXPECT_TRUE(g.enter("k", [&](http_response r) { got.push_back(-r.status); })) << "the first request holds the key";
  EXPECT_FALSE(g.enter("k", [&](http_response r) { got.push_back(r.status); }));
  EXPECT_FALSE(g.enter("k", [&](http_response r) { got.push_back(r.status); }));
  EXPECT_TRUE(g.enter("other", [](http_response) {})) << "keys are independent";
  EXPECT_TRUE(got.empty());
  g.finish("k", http_response{200, "{}"});
  EXPECT_EQ(got, (std::vector<int>{200, 200})) << "waiters get the answer; the holder answers itself";
  EXPECT_EQ(g.held(), 1u);
  EXPECT_TRUE(g.enter("k", [](http_response) {})) << "released: the next request leads (and looks up what the first recorded)";
  g.finish("k", http_response{200});
  g.finish("other", http_response{200});
  EXPECT_EQ(g.held(), 0u);
}

TEST(RequestGateTest, ConcurrentRequestsWithOneKeyHaveOneLeader) {
  request_gate g;
  std::atomic<int> leaders{0}, answered{0};
  std::vector<std::thread> ts;
  std::atomic<bool> go{false};
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      while (!go) std::this_thread::yield();
      if (g.enter("k", [&](http_response) { ++answered; })) ++leaders;
    });
  go = true;
  for (auto& t : ts) t.join();
  EXPECT_EQ(leaders, 1);
  g.finish("k", http_response{200});
  EXPECT_EQ(answered, 7);
}
