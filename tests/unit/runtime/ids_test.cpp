#include "runtime/ids.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <set>
#include <thread>
#include <vector>

using namespace taskhost;

TEST(IdsTest, RandomIdsHaveThePrefixAnd21CharactersOfTheAlphabet) {
  const std::regex shape("waitpoint_[1-9a-km-z]{21}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = new_id("waitpoint_");
    EXPECT_TRUE(std::regex_match(id, shape)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(IdsTest, RunIdsKeepTriggerDevsShape) {
  const std::regex shape("run_[1-9a-km-z]{21}");
  for (int i = 0; i < 1000; ++i) {
    auto id = new_run_id();
    EXPECT_TRUE(std::regex_match(id, shape)) << id;
  }
}

TEST(IdsTest, RunIdsSortInCreationOrderEvenWithinOneMicrosecond) {
  std::vector<std::string> ids;
  for (int i = 0; i < 100000; ++i) ids.push_back(new_run_id());  // many per µs
  for (size_t i = 1; i < ids.size(); ++i) ASSERT_LT(ids[i - 1], ids[i]) << "at " << i;
}

TEST(IdsTest, RunIdsFromManyThreadsAreUniqueAndIncreasingPerThread) {
  constexpr int threads = 4, each = 20000;
  std::vector<std::vector<std::string>> made(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) made[size_t(t)].push_back(new_run_id());
    });
  for (auto& t : ts) t.join();
  std::set<std::string> all;
  for (auto& v : made) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), size_t(threads * each));
}

namespace {
int64_t time_part_us(const std::string& id) {  // the 11 characters after "run_", base 34
  static const std::string alphabet = "123456789abcdefghijkmnopqrstuvwxyz";
  int64_t t = 0;
  for (char c : id.substr(4, 11)) t = t * 34 + int64_t(alphabet.find(c));
  return t;
}
int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

TEST(IdsTest, ARunIdTellsTheMicrosecondItWasMadeAt) {
  // Earlier tests made ids faster than one per µs, which runs the clock part ahead of the real
  // clock; it waits here until that is over.
  for (auto id = new_run_id(); time_part_us(id) > now_us(); id = new_run_id())
    std::this_thread::sleep_for(std::chrono::microseconds(time_part_us(id) - now_us()));
  const int64_t before = now_us();
  const auto a = new_run_id();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto b = new_run_id();
  const int64_t after = now_us();
  EXPECT_LT(a, b);
  EXPECT_GE(time_part_us(a), before);
  EXPECT_GE(time_part_us(b) - time_part_us(a), 5000);
  EXPECT_LE(time_part_us(b), after);
}

TEST(IdsTest, RunIdsMadeOneAfterAnotherHashToGrowingDistinctNumbers) {
  run_id_hash h;
  std::vector<size_t> hs;
  for (int i = 0; i < 10000; ++i) hs.push_back(h(new_run_id()));
  // Growing (neighbouring buckets), except once at most where the clock's last 8 characters wrap
  // (every 34^8 µs, about 21 days).
  int decreases = 0;
  for (size_t i = 1; i < hs.size(); ++i) {
    ASSERT_NE(hs[i - 1], hs[i]) << "at " << i;
    decreases += hs[i] < hs[i - 1];
  }
  EXPECT_LE(decreases, 1);
  // Other ids are hashed too, and differently from one another.
  EXPECT_NE(h("run_old"), h("run_other"));
  EXPECT_EQ(h("waitpoint_abc"), std::hash<std::string_view>{}("waitpoint_abc"));
}
