// A small asynchronous HTTP/1.1 server (Boost.Beast): keep-alive, chunked request bodies, a body
// size limit, and handlers that answer later from any thread. Beast stays inside http_server.cpp.
//
// Example:
//
//   http_server srv({.host = "127.0.0.1", .port = 0}, [](http_request req, http_responder respond) {
//     respond({200, R"({"ok":true})"});
//   });
//   srv.start();                       // binds; srv.port() is the port chosen
//   srv.stop_accepting(); srv.stop();
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace taskhost {

struct http_request {
  std::string method;   ///< "GET", "POST", ...
  std::string target;   ///< path and query, as sent
  std::string body;
  std::map<std::string, std::string> headers;  ///< names lower-cased
};

struct http_response {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< content-type defaults to JSON
};

/// Sends the response. Call exactly once, from any thread.
using http_responder = std::function<void(http_response)>;
using http_handler = std::function<void(http_request, http_responder)>;

struct http_server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  uint64_t max_body_bytes = 4u << 20;
  unsigned threads = 1;
};

class http_server {
public:
  http_server(http_server_options opts, http_handler handler);
  ~http_server();
  /// Binds and starts serving. Throws std::runtime_error naming the address if it cannot bind.
  void start();
  uint16_t port() const;
  /// Closes the listening socket; open connections keep being served.
  void stop_accepting();
  /// Stops everything and joins the server's threads.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace taskhost
