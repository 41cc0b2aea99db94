// The HMACs of the URLs that work without a key: a packet's upload URL and a token's callback.
#include "runtime/signed_urls.hpp"

#include <gtest/gtest.h>

using namespace taskhost;

namespace {
const std::string secret_a(32, 'a');
const std::string secret_b(32, 'b');
}  // namespace

TEST(SignedUrlsTest, ACallbackUrlChecksOnlyForItsTokenAndItsDeployment) {
  url_signer a(secret_a), b(secret_b);
  const std::string path = a.callback_path("waitpoint_abc");
  const std::string prefix = "/api/v1/waitpoints/tokens/waitpoint_abc/callback/";
  ASSERT_EQ(path.rfind(prefix, 0), 0u) << path;
  const std::string hmac = path.substr(prefix.size());
  EXPECT_EQ(hmac.size(), 64u);
  EXPECT_TRUE(a.check_callback("waitpoint_abc", hmac));
  EXPECT_FALSE(a.check_callback("waitpoint_abd", hmac)) << "another token";
  EXPECT_FALSE(b.check_callback("waitpoint_abc", hmac)) << "another deployment's secret";
  std::string flipped = hmac;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_FALSE(a.check_callback("waitpoint_abc", flipped));
  EXPECT_FALSE(a.check_callback("waitpoint_abc", hmac.substr(0, 63)));
  EXPECT_FALSE(a.check_callback("waitpoint_abc", ""));
}

TEST(SignedUrlsTest, AnUploadUrlNamesItsStoragePathAndExpires) {
  url_signer a(secret_a), b(secret_b);
  const std::string storage = "packets/x1/trigger/packet_abc/payload.json";
  const std::string path = a.upload_path(storage, 5000);
  const std::string prefix = "/api/v2/packets/upload/5000/";
  ASSERT_EQ(path.rfind(prefix, 0), 0u) << path;
  const std::string rest = path.substr(prefix.size());
  const std::string hmac = rest.substr(0, rest.find('/'));
  const std::string encoded = rest.substr(rest.find('/') + 1);
  EXPECT_EQ(encoded, "packets%2Fx1%2Ftrigger%2Fpacket_abc%2Fpayload.json") << "one path segment";
  url_signer::upload_grant g;
  EXPECT_EQ(a.check_upload("5000", hmac, encoded, 4999, g), url_signer::upload_check::forged) << "the path is checked decoded";
  EXPECT_EQ(a.check_upload("5000", hmac, storage, 4999, g), url_signer::upload_check::ok);
  EXPECT_EQ(g.storage_path, storage);
  EXPECT_EQ(g.expires_ms, 5000);
  EXPECT_EQ(a.check_upload("5000", hmac, storage, 5000, g), url_signer::upload_check::expired);
  EXPECT_EQ(a.check_upload("9000", hmac, storage, 4999, g), url_signer::upload_check::forged) << "a later expiry written in";
  EXPECT_EQ(a.check_upload("5000", hmac, "packets/other", 4999, g), url_signer::upload_check::forged) << "another path";
  EXPECT_EQ(b.check_upload("5000", hmac, storage, 4999, g), url_signer::upload_check::forged);
  EXPECT_EQ(a.check_upload("-5", hmac, storage, 4999, g), url_signer::upload_check::forged);
  EXPECT_EQ(a.check_upload("5000", hmac, "", 4999, g), url_signer::upload_check::forged);
  // A callback's HMAC is no upload's, even over the same bytes.
  EXPECT_NE(a.sign("packet-upload/v1", "x"), a.sign("waitpoint-callback/v1", "x"));
}

TEST(SignedUrlsTest, SecretsAreRandomAndLongEnough) {
  EXPECT_EQ(url_signer::new_secret().size(), 32u);
  EXPECT_NE(url_signer::new_secret(), url_signer::new_secret());
  EXPECT_THROW(url_signer(std::string(31, 'x')), std::invalid_argument);
  EXPECT_EQ(uri_component("a/b c%~"), "a%2Fb%20c%25~");
}
