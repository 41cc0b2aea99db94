#include "runtime/api_keys.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "runtime/log.hpp"

namespace taskhost {

namespace {

constexpr std::string_view key_alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t key_random_chars = 32;

bool is_key_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

const char* const key_shape_hint =
    "tr_dev_ or tr_prod_ followed by 32 to 128 letters and digits (`taskhost keys generate` makes one)";

}  // namespace

std::string generate_api_key(bool prod) {
  static_assert(key_alphabet.size() == 62);
  // Bytes at or above 248 (= 4 × 62) are dropped: each kept byte maps onto the alphabet evenly.
  constexpr unsigned limit = 4 * key_alphabet.size();
  std::string key = prod ? "tr_prod_" : "tr_dev_";
  const size_t want = key.size() + key_random_chars;
  unsigned char buf[64];
  while (key.size() < want) {
    if (RAND_bytes(buf, sizeof buf) != 1) throw std::runtime_error("cannot make a key: OpenSSL's random generator failed");
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      key.push_back(key_alphabet[b % key_alphabet.size()]);
      if (key.size() == want) break;
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return key;
}

bool is_api_key_shape(std::string_view key) {
  std::string_view rest;
  if (key.rfind("tr_dev_", 0) == 0) rest = key.substr(7);
  else if (key.rfind("tr_prod_", 0) == 0) rest = key.substr(8);
  else return false;
  if (rest.size() < 32 || rest.size() > 128) return false;
  for (char c : rest)
    if (!is_key_char(c)) return false;
  return true;
}

key_hash sha256(std::string_view data) {
  key_hash h{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), h.data(), &len, EVP_sha256(), nullptr) != 1 || len != h.size())
    throw std::runtime_error("SHA-256 failed in OpenSSL");
  return h;
}

std::string to_hex(const key_hash& h) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(h.size() * 2);
  for (unsigned char b : h) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::optional<key_hash> hash_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  key_hash h{};
  for (size_t i = 0; i < h.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return h;
}

std::string key_display(std::string_view key) { return std::string(key.substr(0, 12)) + "…"; }

std::vector<api_key_entry> read_keys_file(const std::filesystem::path& file) {
  const std::string f = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw config::config_error(f + ": cannot read the keys file (" + std::strerror(errno) +
                               "); make one with: (umask 077; taskhost keys generate > " + f + ")");
  std::vector<api_key_entry> out;
  std::string raw;
  int line_no = 0;
  const std::string base = file.filename().string();
  while (std::getline(in, raw)) {
    ++line_no;
    std::string_view line = raw;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string at = f + ":" + std::to_string(line_no) + ": ";
    std::string name;
    std::string_view key = line;
    if (auto colon = line.rfind(':'); colon != std::string_view::npos) {
      name = std::string(trim(line.substr(0, colon)));
      key = trim(line.substr(colon + 1));
      if (name.empty()) throw config::config_error(at + "a name must stand before ':' (`name: key`, or the key alone)");
      if (name.size() > 128) throw config::config_error(at + "a key's name must be at most 128 characters");
      for (unsigned char c : name)
        if (c < 0x20 || c == 0x7f) throw config::config_error(at + "a key's name must not hold control characters");
    }
    if (!is_api_key_shape(key))
      throw config::config_error(at + "not an API key: expected `[name: ]key`, the key being " + key_shape_hint);
    out.push_back({"", name.empty() ? base + ":" + std::to_string(line_no) : name, sha256(key)});
  }
  if (in.bad()) throw config::config_error(f + ": cannot read the keys file (" + std::strerror(errno) + ")");
  if (out.empty()) throw config::config_error(f + ": the keys file holds no key (one per line: `[name: ]key`)");
  return out;
}

std::string keys_file_mode_warning(const std::filesystem::path& file) {
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) return "";
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return "the keys file " + file.string() + " can be read by its group or others (mode " + mode + "); chmod 600 " +
         file.string();
}

std::vector<api_key_entry> read_keys_from_env(const std::vector<config::auth_config::env_ref>& vars) {
  std::vector<api_key_entry> out;
  for (const auto& v : vars) {
    const std::string at = (v.position.line > 0 ? v.position.str() + ": " : std::string()) + "auth.keys_from_env: ";
    const char* value = std::getenv(v.name.c_str());
    if (!value || !*value) throw config::config_error(at + "environment variable " + v.name + " is not set or empty");
    if (!is_api_key_shape(trim(value)))
      throw config::config_error(at + "environment variable " + v.name + " does not hold an API key (expected " +
                                 key_shape_hint + ")");
    out.push_back({"", v.name, sha256(trim(value))});
  }
  return out;
}

std::vector<api_key_entry> read_configured_keys(const config::auth_config& auth) {
  std::vector<api_key_entry> keys;
  if (!auth.keys_file.empty()) keys = read_keys_file(auth.keys_file);
  for (auto& k : read_keys_from_env(auth.keys_from_env)) keys.push_back(std::move(k));
  return keys;
}

api_keys::api_keys(std::vector<api_key_entry> fixed, store_reader store, std::chrono::milliseconds refresh)
    : fixed_(std::move(fixed)), store_(std::move(store)), refresh_(refresh) {
  std::lock_guard lock(mu_);
  reload_locked();
}

void api_keys::reload_locked() {
  auto next = std::make_shared<snapshot>();
  next->keys = fixed_;
  bool any_in_store = false;
  if (store_) {
    try {
      auto s = store_();
      any_in_store = s.any;
      for (auto& k : s.active) next->keys.push_back(std::move(k));
      if (store_failed_) log::info("the store's API keys can be read again");
      store_failed_ = false;
    } catch (const std::exception& e) {
      // Keep what was known: a store that cannot be read for a moment must neither lock everyone
      // out nor let everyone in.
      if (!snap_) throw;  // at start: nothing to keep, so nothing can be served
      if (!store_failed_) log::error("cannot read the store's API keys; keeping the last ones read", {{"error", e.what()}});
      store_failed_ = true;
      read_at_ = std::chrono::steady_clock::now();
      return;
    }
  }
  next->enforcing = !next->keys.empty() || any_in_store || (snap_ && snap_->enforcing);
  snap_ = std::move(next);
  read_at_ = std::chrono::steady_clock::now();
}

std::shared_ptr<const api_keys::snapshot> api_keys::current() {
  std::lock_guard lock(mu_);
  if (store_ && std::chrono::steady_clock::now() - read_at_ >= refresh_) reload_locked();
  return snap_;
}

std::optional<std::string> api_keys::authenticate(std::string_view presented) {
  auto snap = current();
  const key_hash h = sha256(presented);
  auto i = constant_time_find(h, snap->keys, [](const api_key_entry& e) -> const key_hash& { return e.hash; });
  if (!i) return std::nullopt;
  return snap->keys[*i].name;
}

bool api_keys::enforcing() { return current()->enforcing; }

size_t api_keys::active_count() { return current()->keys.size(); }

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  unsigned char addr[16];
  if (::inet_pton(AF_INET, h.c_str(), addr) == 1) return addr[0] == 127;
  if (::inet_pton(AF_INET6, h.c_str(), addr) == 1) {
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(addr, loopback, 16) == 0) return true;
    return std::memcmp(addr, v4_mapped, 12) == 0 && addr[12] == 127;
  }
  return false;
}

}  // namespace taskhost
