#include "runtime/ids.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

namespace taskhost {
namespace {
// In ASCII order, so that ids sort as strings in the order of the numbers they encode.
constexpr std::string_view alphabet = "123456789abcdefghijkmnopqrstuvwxyz";
constexpr int time_chars = 11;  // 34^11 µs ≈ 2,200 years from 1970
constexpr int random_chars = 10;

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r{std::random_device{}()};
  return r;
}

/// n random characters of the alphabet: up to 11 from each 64-bit draw (34^11 < 2^64 / 278, so
/// no character is off uniform by more than 0.4%).
void append_random(std::string& id, int n) {
  while (n > 0) {
    uint64_t r = rng()();
    for (int i = 0; i < 11 && n > 0; ++i, --n) {
      id.push_back(alphabet[r % alphabet.size()]);
      r /= alphabet.size();
    }
  }
}

int64_t next_tick() {
  static std::atomic<int64_t> last{0};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  int64_t prev = last.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = now > prev ? now : prev + 1;
    if (last.compare_exchange_weak(prev, next, std::memory_order_relaxed)) return next;
  }
}
}  // namespace

std::string new_id(std::string_view prefix) {
  std::string id(prefix);
  id.reserve(prefix.size() + 21);
  append_random(id, 21);
  return id;
}

std::string new_run_id() {
  std::string id = "run_";
  id.reserve(4 + time_chars + random_chars);
  int64_t t = next_tick();
  char clock_part[time_chars];
  for (int i = time_chars - 1; i >= 0; --i) {
    clock_part[i] = alphabet[static_cast<size_t>(t % int64_t(alphabet.size()))];
    t /= int64_t(alphabet.size());
  }
  id.append(clock_part, time_chars);
  append_random(id, random_chars);
  return id;
}

size_t run_id_hash::operator()(std::string_view id) const noexcept {
  if (id.size() == 4 + time_chars + random_chars && id.compare(0, 4, "run_") == 0) {
    // The clock part's last 8 characters read as one big-endian number: the alphabet is in ASCII
    // order, so it grows with the clock (and wraps every 34^8 µs, about 21 days, which only
    // shares buckets between runs made that far apart). No loop, no multiplication.
    uint64_t v;
    std::memcpy(&v, id.data() + 4 + time_chars - 8, sizeof v);
    return static_cast<size_t>(__builtin_bswap64(v));
  }
  return std::hash<std::string_view>{}(id);
}
}  // namespace taskhost
