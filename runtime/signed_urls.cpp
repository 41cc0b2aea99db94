#include "runtime/signed_urls.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace taskhost {
namespace {

constexpr std::string_view callback_purpose = "waitpoint-callback/v1";
constexpr std::string_view upload_purpose = "packet-upload/v1";

}  // namespace

std::string uri_component(std::string_view s) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || std::string_view("-_.!~*'()").find(char(c)) != std::string_view::npos) {
      out.push_back(char(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

url_signer::url_signer(std::string secret) : secret_(std::move(secret)) {
  if (secret_.size() < 32) throw std::invalid_argument("a URL signing secret needs at least 32 bytes");
}

std::string url_signer::new_secret() {
  std::string s(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(s.size())) != 1)
    throw std::runtime_error("cannot make the URL signing secret: OpenSSL's random generator failed");
  return s;
}

std::string url_signer::sign(std::string_view purpose, std::string_view message) const {
  // purpose NUL message: no purpose is a prefix of another's message.
  std::string data;
  data.reserve(purpose.size() + 1 + message.size());
  data.append(purpose).push_back('\0');
  data.append(message);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac, &len))
    throw std::runtime_error("HMAC-SHA256 failed in OpenSSL");
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(digits[mac[i] >> 4]);
    out.push_back(digits[mac[i] & 15]);
  }
  return out;
}

bool url_signer::verify(std::string_view purpose, std::string_view message, std::string_view signature) const {
  const std::string want = sign(purpose, message);
  if (signature.size() != want.size()) return false;  // the length is public (always 64)
  return CRYPTO_memcmp(want.data(), signature.data(), want.size()) == 0;
}

std::string url_signer::callback_path(const std::string& token_id) const {
  return "/api/v1/waitpoints/tokens/" + uri_component(token_id) + "/callback/" + sign(callback_purpose, token_id);
}

bool url_signer::check_callback(const std::string& token_id, std::string_view hmac) const {
  return verify(callback_purpose, token_id, hmac);
}

std::string url_signer::upload_path(const std::string& storage_path, int64_t expires_ms) const {
  const std::string expires = std::to_string(expires_ms);
  return "/api/v2/packets/upload/" + expires + "/" + sign(upload_purpose, expires + "\n" + storage_path) + "/" +
         uri_component(storage_path);
}

url_signer::upload_check url_signer::check_upload(std::string_view expires, std::string_view hmac, std::string_view storage_path,
                                                  int64_t now_ms, upload_grant& grant) const {
  if (expires.empty() || expires.size() > 15 || expires.find_first_not_of("0123456789") != std::string_view::npos)
    return upload_check::forged;
  if (storage_path.empty() || !verify(upload_purpose, std::string(expires) + "\n" + std::string(storage_path), hmac))
    return upload_check::forged;
  const int64_t at = std::stoll(std::string(expires));
  if (at <= now_ms) return upload_check::expired;
  grant = {std::string(storage_path), at};
  return upload_check::ok;
}

}  // namespace taskhost
