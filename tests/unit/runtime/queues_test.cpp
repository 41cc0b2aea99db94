#include "runtime/queues.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "runtime/ids.hpp"

namespace taskhost {
namespace {

using namespace std::chrono_literals;

struct QueueBookTest : ::testing::Test {
  queue_book::clock::time_point now{std::chrono::hours(1000)};
  std::vector<std::string> dispatched;
  std::unique_ptr<queue_book> book;

  void SetUp() override { make({}); }
  void make(size_t cap) {
    queue_book::options o;
    if (cap) o.unlimited_cap = [cap] { return cap; };
    o.now = [this] { return now; };
    book = std::make_unique<queue_book>(std::move(o));
    book->set_dispatch([this](std::vector<queue_grant> g) {
      for (auto& x : g) dispatched.push_back(x.run_id);
    });
  }
  bool enq(const std::string& id, const std::string& q, int64_t score = 0, const std::string& key = "") {
    return book->enqueue({id, "t", q, key, score});
  }
  std::vector<std::string> take() { return std::exchange(dispatched, {}); }
};

TEST_F(QueueBookTest, ALimitOfNIsNeverExceededAndRunsStartInOrder) {
  book->declare("q", {.concurrency = 3});
  int granted = 0;
  for (int i = 0; i < 10; ++i) granted += enq("r" + std::to_string(i), "q", i);
  EXPECT_EQ(granted, 3);
  EXPECT_EQ(book->info("q")->running, 3u);
  EXPECT_EQ(book->info("q")->queued, 7u);
  EXPECT_TRUE(take().empty());
  EXPECT_TRUE(book->release("r1"));
  EXPECT_EQ(take(), std::vector<std::string>{"r3"});
  EXPECT_FALSE(book->release("r1")) << "a slot is given back once";
  EXPECT_TRUE(book->release("r0"));
  EXPECT_TRUE(book->release("r2"));
  EXPECT_EQ(take(), (std::vector<std::string>{"r4", "r5"}));
  EXPECT_EQ(book->info("q")->running, 3u);
}

TEST_F(QueueBookTest, LowerScoreFirstPriorityIsSecondsOfCredit) {
  book->declare("q", {.concurrency = 1});
  ASSERT_TRUE(enq("busy", "q", 0));
  enq("late", "q", 100'000'000);
  enq("prioritized", "q", 100'000'000 - 60'000'000);  // same time, priority 60 s
  enq("later", "q", 100'000'000);                     // same score as "late": first come first
  for (const char* id : {"busy", "prioritized", "late"}) book->release(id);
  EXPECT_EQ(take(), (std::vector<std::string>{"prioritized", "late", "later"}));
}

TEST_F(QueueBookTest, EachConcurrencyKeyHasTheWholeLimit) {
  book->declare("q", {.concurrency = 2});
  for (int i = 0; i < 1000; ++i) enq("a" + std::to_string(i), "q", i, "tenant-a");
  EXPECT_TRUE(enq("b0", "q", 5000, "tenant-b")) << "a tenant with one run is not behind another's 1000";
  EXPECT_TRUE(enq("b1", "q", 5001, "tenant-b"));
  EXPECT_FALSE(enq("b2", "q", 5002, "tenant-b"));
  EXPECT_EQ(book->info("q")->running, 4u);
  EXPECT_EQ(book->info("q")->keys, 2u);
}

TEST_F(QueueBookTest, TotalLimitCapsTheQueueAcrossKeysAndKeysTakeTurns) {
  book->declare("q", {.concurrency = 5, .total = 2});
  for (int i = 0; i < 1000; ++i) enq("a" + std::to_string(i), "q", i, "a");
  EXPECT_EQ(book->info("q")->running, 2u);
  EXPECT_FALSE(enq("b0", "q", 99999, "b"));
  // The next freed slot goes to the tenant that has nothing running.
  book->release("a0");
  EXPECT_EQ(take(), std::vector<std::string>{"b0"});
  EXPECT_EQ(book->info("q")->running, 2u);
  // Then the keys alternate.
  enq("b1", "q", 100000, "b");
  book->release("a1");
  book->release("b0");
  book->release("a2");
  auto got = take();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(std::count_if(got.begin(), got.end(), [](auto& s) { return s[0] == 'b'; }), 1);
  EXPECT_EQ(book->info("q")->running, 2u);
}

TEST_F(QueueBookTest, RateLimitCapsStartsPerWindow) {
  book->declare("q", {.rate = queue_limits::rate_t{2, 1000ms, false}});
  int granted = 0;
  for (int i = 0; i < 5; ++i) granted += enq("r" + std::to_string(i), "q", i);
  EXPECT_EQ(granted, 2);
  ASSERT_TRUE(book->next_wake());
  EXPECT_EQ(*book->next_wake(), now + 1000ms);
  book->release("r0");
  book->release("r1");
  EXPECT_TRUE(take().empty()) << "free slots do not beat the rate limit";
  now += 999ms;
  book->poll();
  EXPECT_TRUE(take().empty());
  now += 1ms;
  book->poll();
  EXPECT_EQ(take(), (std::vector<std::string>{"r2", "r3"}));
  now += 1000ms;
  book->poll();
  EXPECT_EQ(take(), std::vector<std::string>{"r4"});
  EXPECT_FALSE(book->next_wake());
}

TEST_F(QueueBookTest, PerKeyRateLimitGivesEachKeyItsOwnAllowance) {
  book->declare("q", {.rate = queue_limits::rate_t{1, 60000ms, true}});
  EXPECT_TRUE(enq("a0", "q", 0, "a"));
  EXPECT_FALSE(enq("a1", "q", 1, "a"));
  EXPECT_TRUE(enq("b0", "q", 2, "b")) << "b is not limited by a's starts";
  EXPECT_FALSE(enq("b1", "q", 3, "b"));
  now += 60s;
  book->poll();
  auto got = take();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"a1", "b1"}));
}

TEST_F(QueueBookTest, PausedQueueStartsNothingAndKeepsItsRuns) {
  book->declare("q", {});
  EXPECT_TRUE(book->set_paused("q", true));
  EXPECT_FALSE(enq("r0", "q"));
  EXPECT_FALSE(enq("r1", "q"));
  EXPECT_EQ(book->info("q")->queued, 2u);
  EXPECT_TRUE(book->info("q")->paused);
  EXPECT_TRUE(book->set_paused("q", false));
  EXPECT_EQ(take(), (std::vector<std::string>{"r0", "r1"}));
  EXPECT_FALSE(book->set_paused("nope", true));
}

TEST_F(QueueBookTest, OverrideRaisesAndResetRestoresTheLimit) {
  book->declare("q", {.concurrency = 1});
  for (int i = 0; i < 5; ++i) enq("r" + std::to_string(i), "q", i);
  EXPECT_TRUE(book->set_override("q", 3));
  EXPECT_EQ(take(), (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(book->info("q")->limit(), 3);
  EXPECT_TRUE(book->info("q")->overridden_at_ms.has_value());
  EXPECT_TRUE(book->set_override("q", std::nullopt));
  EXPECT_EQ(book->info("q")->limit(), 1);
  book->release("r0");
  book->release("r1");
  EXPECT_TRUE(take().empty()) << "still 1 running: over the restored limit of 1";
  book->release("r2");
  EXPECT_EQ(take(), std::vector<std::string>{"r3"});
}

TEST_F(QueueBookTest, RemovedRunsAreNeverDispatched) {
  book->declare("q", {.concurrency = 1, .total = 1});
  enq("r0", "q", 0);
  enq("r1", "q", 1, "k");
  enq("r2", "q", 2);
  EXPECT_TRUE(book->is_queued("r1"));
  EXPECT_TRUE(book->remove("r1"));
  EXPECT_FALSE(book->remove("r1"));
  EXPECT_FALSE(book->is_queued("r1"));
  book->release("r0");
  EXPECT_EQ(take(), std::vector<std::string>{"r2"});
  book->release("r2");
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(book->info("q")->keys, 0u) << "idle keys are forgotten";
}

TEST_F(QueueBookTest, EnqueueIsIdempotentAndUnknownQueuesThrow) {
  book->declare("q", {.concurrency = 1});
  EXPECT_TRUE(enq("r0", "q"));
  EXPECT_TRUE(enq("r0", "q")) << "a run holding a slot keeps it";
  EXPECT_EQ(book->info("q")->running, 1u);
  EXPECT_FALSE(enq("r1", "q"));
  EXPECT_FALSE(enq("r1", "q"));
  EXPECT_EQ(book->info("q")->queued, 1u);
  EXPECT_THROW(enq("r2", "nope"), std::invalid_argument);
  EXPECT_TRUE(book->holds_slot("r0"));
  EXPECT_FALSE(book->holds_slot("r1"));
}

TEST_F(QueueBookTest, UnlimitedQueuesAreBoundedByTheCap) {
  make(4);
  book->declare("task/x", {}, true);
  int granted = 0;
  for (int i = 0; i < 10; ++i) granted += enq("r" + std::to_string(i), "task/x", i);
  EXPECT_EQ(granted, 4);
  EXPECT_TRUE(book->info("task/x")->task_queue);
  EXPECT_FALSE(book->info("task/x")->limit().has_value());
}

TEST_F(QueueBookTest, UnlimitedQueuesGrowWithTheirCapFunction) {
  size_t cap = 2;
  queue_book::options o;
  o.unlimited_cap = [&] { return cap; };
  o.now = [this] { return now; };
  book = std::make_unique<queue_book>(std::move(o));
  book->set_dispatch([this](std::vector<queue_grant> g) {
    for (auto& x : g) dispatched.push_back(x.run_id);
  });
  book->declare("task/x", {}, true);
  book->declare("limited", {.concurrency = 1});
  int granted = 0;
  for (int i = 0; i < 10; ++i) granted += enq("r" + std::to_string(i), "task/x", i);
  EXPECT_EQ(granted, 2);
  EXPECT_TRUE(enq("l0", "limited"));
  EXPECT_FALSE(enq("l1", "limited"));
  cap = 5;
  book->refill();
  EXPECT_EQ(take(), (std::vector<std::string>{"r2", "r3", "r4"})) << "a declared limit is not touched";
}

TEST_F(QueueBookTest, ZeroLimitStartsNothing) {
  book->declare("q", {.concurrency = 0});
  EXPECT_FALSE(enq("r0", "q"));
  book->set_override("q", 1);
  EXPECT_EQ(take(), std::vector<std::string>{"r0"});
}

TEST_F(QueueBookTest, RestoreBringsBackPausedAndOverride) {
  book->declare("q", {.concurrency = 1});
  book->restore("q", {true, 7, 123});
  auto i = book->info("q");
  EXPECT_TRUE(i->paused);
  EXPECT_EQ(i->limit(), 7);
  EXPECT_EQ(i->overridden_at_ms, 123);
}

// The book against a plain model (a sorted vector per key, a limit of 2, two keys): ids both
// time-ordered (as the runtime makes them) and not (ids of an older version), enqueued in any
// order, removed and enqueued again, with any scores. The index of queued runs takes the fast
// path for the greatest id so far and the lookup for the others: both must agree with the model.
TEST_F(QueueBookTest, StartsRunsInTheModelsOrderWhateverTheOrderOfTheirIds) {
  book->declare("q", {.concurrency = 2});
  std::mt19937 rng(7);
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(i % 2 ? new_run_id() : "run_old" + std::to_string(rng() % 1000000));
  std::shuffle(ids.begin() + 20, ids.end(), rng);  // the second half out of creation order
  struct entry {
    int64_t score;
    uint64_t seq;
    std::string id;
    bool operator<(const entry& o) const { return std::tie(score, seq) < std::tie(o.score, o.seq); }
  };
  std::map<std::string, std::vector<entry>> model;  // key → queued, in start order
  std::map<std::string, std::string> key_of;         // queued or running → key
  std::map<std::string, int> running;                // key → runs holding slots
  std::set<std::string> holding;
  uint64_t seq = 0;
  auto model_fill = [&](const std::string& key, std::vector<std::string>& out) {
    auto& v = model[key];
    while (!v.empty() && running[key] < 2) {
      out.push_back(v.front().id);
      holding.insert(v.front().id);
      ++running[key];
      v.erase(v.begin());
    }
  };
  for (int step = 0; step < 4000; ++step) {
    const std::string& id = ids[rng() % ids.size()];
    const std::string key = (rng() % 2) ? "a" : "b";
    std::vector<std::string> expected;
    switch (rng() % 3) {
      case 0: {  // enqueue
        const int64_t score = int64_t(rng() % 50);
        const bool queued = key_of.count(id) && !holding.count(id);
        bool expect_mine = holding.count(id) > 0;
        if (!queued && !holding.count(id)) {
          auto& v = model[key];
          entry e{score, seq++, id};
          v.insert(std::upper_bound(v.begin(), v.end(), e), e);
          key_of[id] = key;
          model_fill(key, expected);
          if (auto it = std::find(expected.begin(), expected.end(), id); it != expected.end()) {
            expected.erase(it);
            expect_mine = true;
          }
        }
        ASSERT_EQ(book->enqueue({id, "t", "q", key, score}), expect_mine) << "step " << step << " " << id;
        break;
      }
      case 1: {  // release
        const bool held = holding.count(id) > 0;
        if (held) {
          holding.erase(id);
          const std::string k = key_of[id];
          key_of.erase(id);
          --running[k];
          model_fill(k, expected);
        }
        ASSERT_EQ(book->release(id), held) << "step " << step;
        break;
      }
      default: {  // remove
        const bool queued = key_of.count(id) && !holding.count(id);
        if (queued) {
          auto& v = model[key_of[id]];
          v.erase(std::find_if(v.begin(), v.end(), [&](const entry& e) { return e.id == id; }));
          key_of.erase(id);
        }
        ASSERT_EQ(book->remove(id), queued) << "step " << step;
        ASSERT_FALSE(book->is_queued(id));
      }
    }
    ASSERT_EQ(take(), expected) << "step " << step;
    size_t queued = 0;
    for (auto& [k, v] : model) queued += v.size();
    ASSERT_EQ(book->info("q")->queued, queued) << "step " << step;
    ASSERT_EQ(book->info("q")->running, holding.size()) << "step " << step;
  }
}

TEST(QueueBookTimer, DispatchesWhenTheRateWindowOpens) {
  queue_book book;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> got;
  book.set_dispatch([&](std::vector<queue_grant> g) {
    std::lock_guard lock(mu);
    for (auto& x : g) got.push_back(x.run_id);
    cv.notify_all();
  });
  book.declare("q", {.rate = queue_limits::rate_t{1, 100ms, false}});
  book.start_timer();
  EXPECT_TRUE(book.enqueue({"r0", "t", "q", "", 0}));
  EXPECT_FALSE(book.enqueue({"r1", "t", "q", "", 1}));
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, 5s, [&] { return !got.empty(); }));
  EXPECT_EQ(got, std::vector<std::string>{"r1"});
  lock.unlock();
  book.stop();
}

}  // namespace
}  // namespace taskhost
