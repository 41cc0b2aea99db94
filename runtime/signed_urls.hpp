// The URLs taskhost hands out that anyone holding them may use without an API key: a packet's
// upload URL (PUT, trigger-rest-api.md §4) and a wait token's callback URL (POST, §5.9). Each
// carries its own authority: an HMAC-SHA256 of what it allows, keyed with the deployment's secret
// (32 random bytes kept in the store, never an API key: revoking a key does not break a token's
// callback, and a URL says nothing about any key).
//
// Example:
//
//   taskhost::url_signer s(store.secret("url-signing", taskhost::url_signer::new_secret));
//   std::string path = s.callback_path("waitpoint_abc");   // /api/v1/waitpoints/tokens/waitpoint_abc/callback/<hmac>
//   bool ok = s.check_callback("waitpoint_abc", hmac_from_the_path);
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost {

class url_signer {
public:
  /// `secret`: at least 32 bytes (throws std::invalid_argument otherwise).
  explicit url_signer(std::string secret);
  /// 32 bytes from OpenSSL's RAND_bytes. Throws std::runtime_error if it fails.
  static std::string new_secret();

  /// The lowercase hex HMAC-SHA256 of `message` for `purpose` (each purpose its own domain: a
  /// signature made for one never checks for another).
  std::string sign(std::string_view purpose, std::string_view message) const;
  /// Whether `signature` is sign(purpose, message); compares in constant time.
  bool verify(std::string_view purpose, std::string_view message, std::string_view signature) const;

  /// A token's callback path: /api/v1/waitpoints/tokens/{id}/callback/{hmac}. Valid for as long
  /// as the token is (completing it twice is refused by the token, not by the URL).
  std::string callback_path(const std::string& token_id) const;
  bool check_callback(const std::string& token_id, std::string_view hmac) const;

  /// A packet's upload path: /api/v2/packets/upload/{expires_ms}/{hmac}/{storagePath, %-encoded}.
  std::string upload_path(const std::string& storage_path, int64_t expires_ms) const;
  struct upload_grant {
    std::string storage_path;
    int64_t expires_ms = 0;
  };
  enum class upload_check { ok, forged, expired };
  /// Checks the three segments after /api/v2/packets/upload/ (the storage path %-decoded). A
  /// forged or malformed one is `forged` whatever its time; `grant` is set when ok.
  upload_check check_upload(std::string_view expires, std::string_view hmac, std::string_view storage_path, int64_t now_ms,
                            upload_grant& grant) const;

private:
  std::string secret_;
};

/// encodeURIComponent: every byte but A-Z a-z 0-9 - _ . ! ~ * ' ( ) as %XX.
std::string uri_component(std::string_view s);

}  // namespace taskhost
