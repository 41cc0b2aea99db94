// A small blocking HTTP/1.1 transport on one kept-alive connection (Boost.Beast inside the .cpp).
// Private to taskhost: the C++ client (client.cpp) and runtime/http_client (the CLI's and the
// tests' raw client) both send their requests through it. Not installed.
//
// Example:
//
//   detail::http_transport t("http://127.0.0.1:8080");
//   auto r = t.request("GET", "/healthz", "", {{"authorization", "Bearer " + key}});
//   if (r.status == 200) ...
//
// Not thread-safe: one caller at a time (the client serializes its calls with a mutex).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taskhost::detail {

struct http_reply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  ///< names lower-cased
};

/// The request did not get an answer: the URL is malformed, the host does not resolve, the
/// connection was refused or timed out, or it broke before a whole response arrived. what()
/// names the URL.
class transport_error : public std::runtime_error {
public:
  enum class kind { bad_url, resolve, connect, io };
  transport_error(kind k, const std::string& what) : std::runtime_error(what), kind_(k) {}
  kind which() const { return kind_; }

private:
  kind kind_;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

class http_transport {
public:
  struct timeouts {
    std::chrono::milliseconds connect{10'000};  ///< to open a connection
    std::chrono::milliseconds request{60'000};  ///< to send a request and read its whole answer
  };
  /// `base_url` like "http://127.0.0.1:8080" or "http://host:port/prefix" (a trailing '/' is
  /// dropped). Throws transport_error (bad_url) if it is not an http:// URL.
  explicit http_transport(std::string base_url, timeouts t);
  explicit http_transport(std::string base_url) : http_transport(std::move(base_url), timeouts{}) {}
  ~http_transport();
  http_transport(const http_transport&) = delete;
  http_transport& operator=(const http_transport&) = delete;

  /// Sends one request (`path` after the URL's prefix, with its query) with `headers` in order (a
  /// later one of the same name wins) and reads the answer. A kept-alive connection the server
  /// closed meanwhile is replaced once, at once. An answer the server sends before it read the
  /// whole body (413) counts as the answer. Throws transport_error otherwise.
  http_reply request(std::string_view method, const std::string& path, const std::string& body, const header_list& headers);

  const std::string& base_url() const { return base_url_; }
  void set_timeouts(timeouts t) { timeouts_ = t; }

private:
  struct impl;
  std::string base_url_;
  timeouts timeouts_;
  std::unique_ptr<impl> impl_;
};

}  // namespace taskhost::detail
