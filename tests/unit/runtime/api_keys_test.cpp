#include "runtime/api_keys.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <regex>
#include <set>
#include <stdexcept>

#include "support/process.hpp"

using taskhost::api_key_entry;
using taskhost::api_keys;
using taskhost::key_hash;
using taskhost::sha256;
using taskhost::store_api_keys;
using taskhost::config::config_error;
using taskhost::test::temp_dir;
namespace fs = std::filesystem;

namespace {

/// A byte accessor that counts how many bytes the comparison reads.
struct counting_bytes {
  const unsigned char* bytes;
  size_t* reads;
  unsigned char operator[](size_t i) const {
    ++*reads;
    return bytes[i];
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

const std::string key_a = "tr_dev_" + std::string(32, 'a');
const std::string key_b = "tr_prod_" + std::string(32, 'B');

}  // namespace

TEST(ApiKeysTest, GeneratedKeysAreShapedLikeTriggerDevRootKeysAndAllDiffer) {
  const std::regex dev("tr_dev_[0-9A-Za-z]{32}"), prod("tr_prod_[0-9A-Za-z]{32}");
  const std::regex additional("tr_(dev|stg|prod|preview)_sk_[0-9a-zA-Z]{24}");  // the SDK will not sign with these
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto k = taskhost::generate_api_key(i % 2 == 1);
    EXPECT_TRUE(std::regex_match(k, i % 2 ? prod : dev)) << k;
    EXPECT_FALSE(std::regex_match(k, additional)) << k;
    EXPECT_TRUE(taskhost::is_api_key_shape(k)) << k;
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ApiKeysTest, GeneratedKeysUseEveryCharacterOfTheAlphabetEvenly) {
  // 2,000 keys = 64,000 random characters, 1,032 of each expected (σ ≈ 32). A generator taking a
  // byte modulo 62 would give '0'..'7' a quarter more (1,250 each): their total would be ~10,000
  // instead of ~8,258 (σ ≈ 85).
  std::map<char, int> count;
  for (int i = 0; i < 2000; ++i)
    for (char c : taskhost::generate_api_key(false).substr(7)) ++count[c];
  EXPECT_EQ(count.size(), 62u);
  int first_eight = 0;
  for (auto [c, n] : count) {
    EXPECT_GT(n, 800) << c;
    EXPECT_LT(n, 1300) << c;
    if (c >= '0' && c <= '7') first_eight += n;
  }
  EXPECT_NEAR(first_eight, 8258, 600);
}

TEST(ApiKeysTest, KeyShapeAcceptsDevAndProdKeysOf32To128Characters) {
  EXPECT_TRUE(taskhost::is_api_key_shape(key_a));
  EXPECT_TRUE(taskhost::is_api_key_shape(key_b));
  EXPECT_TRUE(taskhost::is_api_key_shape("tr_dev_" + std::string(128, 'z')));
  EXPECT_FALSE(taskhost::is_api_key_shape("tr_dev_" + std::string(31, 'a')));
  EXPECT_FALSE(taskhost::is_api_key_shape("tr_dev_" + std::string(129, 'a')));
  EXPECT_FALSE(taskhost::is_api_key_shape("tr_stg_" + std::string(32, 'a')));
  EXPECT_FALSE(taskhost::is_api_key_shape("tr_dev_sk_" + std::string(24, 'a')));
  EXPECT_FALSE(taskhost::is_api_key_shape("tr_dev_" + std::string(31, 'a') + "-"));
  EXPECT_FALSE(taskhost::is_api_key_shape(""));
  EXPECT_FALSE(taskhost::is_api_key_shape("Bearer " + key_a));
}

TEST(ApiKeysTest, HashIsSha256InHexAndReadsBack) {
  EXPECT_EQ(taskhost::to_hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(taskhost::hash_from_hex(taskhost::to_hex(sha256(key_a))), sha256(key_a));
  EXPECT_FALSE(taskhost::hash_from_hex("ba78"));
  EXPECT_FALSE(taskhost::hash_from_hex(std::string(64, 'g')));
  EXPECT_EQ(taskhost::key_display(key_a), "tr_dev_aaaaa…");
}

TEST(ApiKeysTest, ConstantTimeEqualReadsEveryByteWhereverTheInputsDiffer) {
  const key_hash a = sha256(key_a);
  for (size_t differ_at : {size_t{0}, size_t{1}, size_t{16}, size_t{31}}) {
    key_hash b = a;
    b[differ_at] ^= 0x5a;
    size_t reads_a = 0, reads_b = 0;
    EXPECT_FALSE(taskhost::constant_time_equal(counting_bytes{a.data(), &reads_a}, counting_bytes{b.data(), &reads_b}, 32));
    EXPECT_EQ(reads_a, 32u) << "differing at byte " << differ_at << ": no exit at the first difference";
    EXPECT_EQ(reads_b, 32u) << "differing at byte " << differ_at;
  }
  size_t reads_a = 0, reads_b = 0;
  EXPECT_TRUE(taskhost::constant_time_equal(counting_bytes{a.data(), &reads_a}, counting_bytes{a.data(), &reads_b}, 32));
  EXPECT_EQ(reads_a + reads_b, 64u);
  key_hash all_different{};
  for (size_t i = 0; i < all_different.size(); ++i) all_different[i] = static_cast<unsigned char>(~a[i]);
  EXPECT_FALSE(taskhost::constant_time_equal(a, all_different, 32));
}

TEST(ApiKeysTest, ConstantTimeFindComparesEveryKnownKeyInFullBeforeAndAfterAMatch) {
  std::vector<key_hash> known;
  for (int i = 0; i < 5; ++i) known.push_back(sha256("key " + std::to_string(i)));
  known.push_back(known[2]);  // a duplicate: the first one is found
  size_t known_reads = 0;
  auto hash_of = [&](const key_hash& h) { return counting_bytes{h.data(), &known_reads}; };
  for (auto [presented, want] : std::vector<std::pair<key_hash, std::optional<size_t>>>{
           {known[0], 0}, {known[2], 2}, {known[4], 4}, {sha256("nobody"), std::nullopt}}) {
    known_reads = 0;
    size_t presented_reads = 0;
    auto found = taskhost::constant_time_find(counting_bytes{presented.data(), &presented_reads}, known, hash_of);
    EXPECT_EQ(found, want);
    EXPECT_EQ(known_reads, known.size() * 32) << "every byte of every known key, whichever matched";
    EXPECT_EQ(presented_reads, known.size() * 32);
  }
  EXPECT_EQ(taskhost::constant_time_find(known[0], std::vector<key_hash>{}, [](const key_hash& h) -> const key_hash& { return h; }),
            std::nullopt);
}

TEST(ApiKeysTest, AuthenticateNamesTheKeyAndRefusesOthers) {
  api_keys keys({{"", "ci", sha256(key_a)}, {"", "ops", sha256(key_b)}});
  EXPECT_TRUE(keys.enforcing());
  EXPECT_EQ(keys.authenticate(key_a), "ci");
  EXPECT_EQ(keys.authenticate(key_b), "ops");
  EXPECT_EQ(keys.authenticate(key_a + "x"), std::nullopt);
  EXPECT_EQ(keys.authenticate(key_a.substr(0, key_a.size() - 1)), std::nullopt);
  EXPECT_EQ(keys.authenticate(""), std::nullopt);
  EXPECT_EQ(keys.active_count(), 2u);
}

TEST(ApiKeysTest, WithoutAnyKeyNothingIsEnforced) {
  api_keys keys({});
  EXPECT_FALSE(keys.enforcing());
  EXPECT_EQ(keys.authenticate(key_a), std::nullopt);
}

TEST(ApiKeysTest, StoreKeysAreReReadAfterTheRefreshInterval) {
  store_api_keys store;
  int reads = 0;
  auto reader = [&] {
    ++reads;
    return store;
  };
  api_keys slow({}, reader, std::chrono::hours(1));
  api_keys fast({}, reader, std::chrono::milliseconds(0));
  EXPECT_EQ(reads, 2);
  EXPECT_FALSE(slow.enforcing());
  EXPECT_FALSE(fast.enforcing());
  EXPECT_EQ(reads, 3) << "the slow one did not read again within its interval";
  store.active.push_back({"key_1", "made-by-cli", sha256(key_a)});
  store.any = true;
  EXPECT_EQ(fast.authenticate(key_a), "made-by-cli");
  EXPECT_TRUE(fast.enforcing());
  EXPECT_FALSE(slow.enforcing()) << "not re-read yet";
  EXPECT_EQ(slow.authenticate(key_a), std::nullopt);
}

TEST(ApiKeysTest, RevokingEveryKeyKeepsEnforcing) {
  store_api_keys store;
  store.active.push_back({"key_1", "key_1", sha256(key_a)});
  store.any = true;
  api_keys keys({}, [&] { return store; }, std::chrono::milliseconds(0));
  EXPECT_EQ(keys.authenticate(key_a), "key_1");
  store.active.clear();  // revoked: the row stays, any stays true
  EXPECT_TRUE(keys.enforcing());
  EXPECT_EQ(keys.authenticate(key_a), std::nullopt);
  store.any = false;  // even a store that lost its rows does not reopen a running server
  EXPECT_TRUE(keys.enforcing());
  // A store that only ever had revoked keys enforces from the start.
  api_keys revoked_only({}, [] { return store_api_keys{{}, true}; });
  EXPECT_TRUE(revoked_only.enforcing());
}

TEST(ApiKeysTest, AStoreThatCannotBeReadKeepsTheLastKeysAndFailsAtStart) {
  bool fail = false;
  auto reader = [&] {
    if (fail) throw std::runtime_error("disk I/O error");
    return store_api_keys{{{"key_1", "k", sha256(key_a)}}, true};
  };
  api_keys keys({}, reader, std::chrono::milliseconds(0));
  fail = true;
  EXPECT_EQ(keys.authenticate(key_a), "k");
  EXPECT_TRUE(keys.enforcing());
  EXPECT_NE(message_of([&] { api_keys at_start({}, reader); }).find("disk I/O error"), std::string::npos);
}

TEST(ApiKeysTest, KeysFileHoldsNamedAndUnnamedKeysCommentsAndBlankLines) {
  temp_dir tmp;
  tmp.write("keys", "# deploy keys\n\nci: " + key_a + "   # the CI's\r\n  " + key_b + "\n");
  auto keys = taskhost::read_keys_file(tmp / "keys");
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].name, "ci");
  EXPECT_EQ(keys[0].hash, sha256(key_a));
  EXPECT_EQ(keys[1].name, "keys:4");
  EXPECT_EQ(keys[1].hash, sha256(key_b));
}

TEST(ApiKeysTest, KeysFileErrorsNameTheFileAndLineWithoutShowingIt) {
  temp_dir tmp;
  const std::string f = (tmp / "keys").string();
  tmp.write("keys", "# ok\n" + key_a + "\nci: tr_dev_tooShortSecretValue\n");
  auto msg = message_of([&] { taskhost::read_keys_file(tmp / "keys"); });
  EXPECT_EQ(msg.rfind(f + ":3: not an API key", 0), 0u) << msg;
  EXPECT_EQ(msg.find("tooShortSecretValue"), std::string::npos) << "the line may be a secret: " << msg;
  tmp.write("keys", ": " + key_a + "\n");
  EXPECT_EQ(message_of([&] { taskhost::read_keys_file(tmp / "keys"); }).rfind(f + ":1: a name must stand before ':'", 0), 0u);
  tmp.write("keys", "# nothing here\n\n");
  EXPECT_EQ(message_of([&] { taskhost::read_keys_file(tmp / "keys"); }), f + ": the keys file holds no key (one per line: `[name: ]key`)");
  msg = message_of([&] { taskhost::read_keys_file(tmp / "missing"); });
  EXPECT_EQ(msg.rfind((tmp / "missing").string() + ": cannot read the keys file (No such file or directory)", 0), 0u) << msg;
  EXPECT_THROW(taskhost::read_keys_file(tmp / "missing"), config_error);
}

TEST(ApiKeysTest, KeysFileReadableByOthersIsWarnedAbout) {
  temp_dir tmp;
  tmp.write("keys", key_a + "\n");
  ::chmod((tmp / "keys").c_str(), 0644);
  EXPECT_NE(taskhost::keys_file_mode_warning(tmp / "keys").find("mode 0644"), std::string::npos);
  ::chmod((tmp / "keys").c_str(), 0600);
  EXPECT_EQ(taskhost::keys_file_mode_warning(tmp / "keys"), "");
}

TEST(ApiKeysTest, KeysFromEnvNeedEverySetVariableToHoldAKey) {
  using ref = taskhost::config::auth_config::env_ref;
  ::setenv("TASKHOST_TEST_KEY_A", key_a.c_str(), 1);
  ::setenv("TASKHOST_TEST_KEY_BAD", "tr_dev_short", 1);
  ::setenv("TASKHOST_TEST_KEY_EMPTY", "", 1);
  ::unsetenv("TASKHOST_TEST_KEY_UNSET");
  auto keys = taskhost::read_keys_from_env({ref{"TASKHOST_TEST_KEY_A", {}}});
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].name, "TASKHOST_TEST_KEY_A");
  EXPECT_EQ(keys[0].hash, sha256(key_a));
  EXPECT_EQ(message_of([&] { taskhost::read_keys_from_env({ref{"TASKHOST_TEST_KEY_UNSET", {"/d.yaml", 4, 19}}}); }),
            "/d.yaml:4:19: auth.keys_from_env: environment variable TASKHOST_TEST_KEY_UNSET is not set or empty");
  EXPECT_NE(message_of([&] { taskhost::read_keys_from_env({ref{"TASKHOST_TEST_KEY_EMPTY", {}}}); }).find("TASKHOST_TEST_KEY_EMPTY is not set or empty"),
            std::string::npos);
  auto bad = message_of([&] { taskhost::read_keys_from_env({ref{"TASKHOST_TEST_KEY_BAD", {}}}); });
  EXPECT_NE(bad.find("TASKHOST_TEST_KEY_BAD does not hold an API key"), std::string::npos) << bad;
  EXPECT_EQ(bad.find("tr_dev_short"), std::string::npos);
}

TEST(ApiKeysTest, LoopbackHostsAreTheLoopbackRangesAndLocalhost) {
  for (auto h : {"127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"}) EXPECT_TRUE(taskhost::is_loopback_host(h)) << h;
  for (auto h : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1", "::ffff:10.0.0.1", ""})
    EXPECT_FALSE(taskhost::is_loopback_host(h)) << h;
}
