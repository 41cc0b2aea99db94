// A small blocking HTTP/1.1 client for the tests: raw requests, any status. It sends through the
// C++ client's transport (client/src/http_transport); the CLI uses taskhost::client itself.
//
// Example:
//
//   http_client c("http://127.0.0.1:8080");
//   auto r = c.request("POST", "/api/v1/tasks/hello-world/trigger", R"({"payload":{}})");
//   if (r.status == 200) ...
//   c.set_default_header("authorization", "Bearer " + key);     // on every request from now on
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace taskhost {

struct http_result {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  ///< names lower-cased
};

/// A connection failure; what() names the URL.
class http_client_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class http_client {
public:
  /// `base_url` like "http://127.0.0.1:8080" or "http://host:port/prefix". Throws
  /// http_client_error if it is not an http:// URL.
  explicit http_client(std::string base_url);
  ~http_client();
  /// A header sent with every request (unless a request passes its own of that name), such as
  /// `authorization: Bearer <key>`.
  void set_default_header(std::string name, std::string value) { default_headers_[std::move(name)] = std::move(value); }
  /// Sends one request on a kept-alive connection (reconnecting once if the server closed it).
  http_result request(const std::string& method, const std::string& path, const std::string& body = "",
                      const std::map<std::string, std::string>& headers = {});
  const std::string& base_url() const { return base_url_; }

private:
  struct impl;
  std::string base_url_;
  std::map<std::string, std::string> default_headers_;
  std::unique_ptr<impl> impl_;  ///< the transport
};

}  // namespace taskhost
