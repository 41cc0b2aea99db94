#include "runtime/ids.hpp"

#include <random>

namespace taskhost {
std::string new_id(std::string_view prefix) {
  static constexpr std::string_view alphabet = "123456789abcdefghijkmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id(prefix);
  id.reserve(prefix.size() + 21);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  for (int i = 0; i < 21; ++i) id.push_back(alphabet[pick(rng)]);
  return id;
}
}  // namespace taskhost
