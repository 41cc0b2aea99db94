// API keys: what a request must show in `Authorization: Bearer <key>` to reach the HTTP API.
//
// Example:
//
//   auto key = taskhost::generate_api_key(false);                 // "tr_dev_" + 32 letters/digits
//   taskhost::api_keys keys({{.name = "ci", .hash = taskhost::sha256(key)}});
//   keys.authenticate(key);                                       // "ci"
//   keys.authenticate("tr_dev_wrong");                            // nullopt
//
// Keys are shaped like Trigger.dev's root keys (`tr_dev_…`, `tr_prod_…`) so that the official SDK
// treats them as such (it self-signs public tokens with them). Only their SHA-256 is kept, in
// memory and in the store; a key is shown once, when it is made. A presented key is hashed and
// compared with every known hash in constant time: the time taken depends on neither where the
// presented key differs from a known one nor which of the known keys it matches.
//
// Keys come from three places: the store (`taskhost keys create`, re-read while the server runs),
// `auth.keys_file` and `auth.keys_from_env` (read at start).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "taskhost/config/deployment.hpp"

namespace taskhost {

/// A key's SHA-256 digest.
using key_hash = std::array<unsigned char, 32>;

/// A new random key: "tr_dev_" (or "tr_prod_" when `prod`) and 32 characters of [0-9A-Za-z] from
/// OpenSSL's RAND_bytes (rejection sampling: every character equally likely). Throws
/// std::runtime_error if the random generator fails.
std::string generate_api_key(bool prod);

/// True for "tr_dev_" or "tr_prod_" followed by 32 to 128 characters of [0-9A-Za-z] — what the keys
/// file and the variables of auth.keys_from_env must hold. (Never Trigger.dev's
/// `tr_<env>_sk_<24>` shape, which the SDK will not sign tokens with: it has a second '_'.)
bool is_api_key_shape(std::string_view key);

key_hash sha256(std::string_view data);
std::string to_hex(const key_hash& h);
/// The digest of 64 hex digits; nullopt for anything else.
std::optional<key_hash> hash_from_hex(std::string_view hex);
/// How a key is shown after it was made: its first 12 characters and "…".
std::string key_display(std::string_view key);

namespace detail {
/// Hides `v`'s value from the optimizer, so that a loop accumulating differences cannot be turned
/// into one that stops at the first difference.
inline void opaque(unsigned char& v) { __asm__ volatile("" : "+r"(v)); }
inline void opaque(size_t& v) { __asm__ volatile("" : "+r"(v)); }
}  // namespace detail

/// True when a[0..n) equals b[0..n). Reads every byte of both, whatever they hold: no exit at the
/// first differing byte. `A` and `B` are anything indexable by size_t that yields bytes (the unit
/// tests pass accessors that count their reads).
template <class A, class B>
bool constant_time_equal(const A& a, const B& b, size_t n) {
  unsigned char diff = 0;
  for (size_t i = 0; i < n; ++i) {
    diff |= static_cast<unsigned char>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
    detail::opaque(diff);
  }
  return diff == 0;
}

/// The index of the first entry whose hash (`hash_of(entry)`, indexable, 32 bytes) equals
/// `presented`, or nullopt. Every entry is compared in full, before and after a match: the time
/// taken does not tell which entry matched, nor how much of any entry did.
template <class P, class Entries, class HashOf>
std::optional<size_t> constant_time_find(const P& presented, const Entries& entries, HashOf&& hash_of) {
  size_t found = 0;
  size_t hit = 0;  // all ones once an entry matched
  for (size_t i = 0; i < entries.size(); ++i) {
    size_t eq = constant_time_equal(hash_of(entries[i]), presented, std::tuple_size_v<key_hash>) ? 1 : 0;
    detail::opaque(eq);
    const size_t first = (size_t(0) - eq) & ~hit;  // all ones for the first match only
    found = (found & ~first) | (i & first);
    hit |= first;
  }
  if (!hit) return std::nullopt;
  return found;
}

/// A known key: who it is (never the key) and its hash.
struct api_key_entry {
  std::string id;    ///< "key_..." for a key in the store; "" for the keys file and variables
  std::string name;  ///< what logs show: the store key's name (else its id), the file key's name
                     ///< (else "file:line"), the variable's name
  key_hash hash{};
};

/// The keys of the store: the active ones, and whether it ever held a key (revoked ones count).
struct store_api_keys {
  std::vector<api_key_entry> active;
  bool any = false;
};

/// The keys of auth.keys_file: one per line, `name: key` or `key`; `#` starts a comment; blank
/// lines are skipped. Throws config::config_error naming "file:line" for a line that is not a key
/// (without echoing it), and naming the file when it cannot be read or holds no key.
std::vector<api_key_entry> read_keys_file(const std::filesystem::path& file);

/// A warning when `file` can be read by its group or others ("" when it cannot).
std::string keys_file_mode_warning(const std::filesystem::path& file);

/// The keys of auth.keys_from_env. Throws config::config_error naming the variable (and where the
/// YAML lists it) when it is unset, empty or not a key.
std::vector<api_key_entry> read_keys_from_env(const std::vector<config::auth_config::env_ref>& vars);

/// The keys of a deployment's auth section (file and variables); throws config::config_error.
std::vector<api_key_entry> read_configured_keys(const config::auth_config& auth);

/// Every key a running deployment accepts. Thread-safe.
///
/// The store's keys are re-read through `store` at most every `refresh` (when a request asks), so
/// that `taskhost keys create` and `keys revoke`, run against the store file while the server runs,
/// take effect within that time. Checking is *enforced* once any key is known: a fixed key, or a
/// key in the store, even a revoked one (revoking every key never reopens the API). Once enforced
/// it stays so for the life of the object.
class api_keys {
public:
  using store_reader = std::function<store_api_keys()>;

  /// Reads the store once; its failure is thrown (there is nothing to keep yet).
  explicit api_keys(std::vector<api_key_entry> fixed, store_reader store = {},
                    std::chrono::milliseconds refresh = std::chrono::milliseconds(250));

  /// The name of the active key `presented` is, or nullopt. Compares with every key.
  std::optional<std::string> authenticate(std::string_view presented);
  /// Whether requests must show a key now.
  bool enforcing();
  /// How many keys are active now.
  size_t active_count();

private:
  struct snapshot {
    std::vector<api_key_entry> keys;  ///< fixed, then the store's
    bool enforcing = false;
  };
  std::shared_ptr<const snapshot> current();
  void reload_locked();

  std::vector<api_key_entry> fixed_;
  store_reader store_;
  std::chrono::milliseconds refresh_;
  std::mutex mu_;
  std::shared_ptr<const snapshot> snap_;
  std::chrono::steady_clock::time_point read_at_{};
  bool store_failed_ = false;  ///< the last read failed (logged once until it works again)
};

/// Whether `host` (as in http.listen) is a loopback address: 127.0.0.0/8, ::1 (also as a
/// v4-mapped 127.x address) or "localhost".
bool is_loopback_host(std::string_view host);

}  // namespace taskhost
