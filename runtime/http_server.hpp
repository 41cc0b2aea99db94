// A small asynchronous HTTP/1.1 server (Boost.Beast): keep-alive, chunked request bodies, a body
// size limit, header / body / idle timeouts, a cap on open connections, an access log, and
// handlers that answer later from any thread. Beast stays inside http_server.cpp.
//
// Example:
//
//   http_server srv({.host = "127.0.0.1", .port = 0}, [](http_request req, http_responder respond) {
//     respond({200, R"({"ok":true})"});
//   });
//   srv.start();                       // binds; srv.port() is the port chosen
//   srv.stop_accepting(); srv.stop();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
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
  http_response() = default;
  // Not an aggregate, so that `{status, body, headers}` needs no principal (and draws no warning).
  http_response(int s, std::string b = {}, std::vector<std::pair<std::string, std::string>> h = {}, std::string p = {})
      : status(s), body(std::move(b)), headers(std::move(h)), principal(std::move(p)) {}
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< content-type defaults to JSON
  /// Who made the request, as the access log names it (`key=<name>`): a handler that identified
  /// an API key puts the key's *name* here, never the key. Never sent to the client.
  std::string principal;
};

/// Sends the response. Call exactly once, from any thread, and drop it before the server is
/// destroyed (it holds the connection).
using http_responder = std::function<void(http_response)>;
using http_handler = std::function<void(http_request, http_responder)>;

/// Limits: a slow or silent client holds its own connection at most this long, and never a
/// thread (everything is asynchronous). What each timeout bounds:
///   header_timeout  a new connection, from its accept to the end of its first request's headers;
///                   on a kept-alive connection, from a request's first byte to the end of its headers
///   body_timeout    a request's body, from the end of its headers to its last byte (a chunked body
///                   that never ends is closed; the access log records 408); also sending a response
///   idle_timeout    a kept-alive connection with no request in flight, until the next first byte
/// A response being computed (the handler has not answered yet) is never timed out.
struct http_server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  uint64_t max_body_bytes = 4u << 20;
  unsigned threads = 1;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  /// Open connections at most. At the cap, a new connection closes the one idle longest (waiting for
  /// a request's first byte: kept alive, or new and silent for min(1 s, header_timeout / 2)); if
  /// none is idle it is answered
  /// 503 {"error": "too many connections"} and closed. start() raises the process's soft limit of
  /// open files to its hard limit and logs both.
  size_t max_connections = 10'000;
  /// One log line (info) per request once its response is sent: method, path without the query,
  /// status, duration, bytes in and out, remote address, and the response's principal as `key`.
  /// Written in batches every 100 ms (or 4 KiB), and at stop().
  bool access_log = true;
  /// While a lone request waits for its answer, one server thread polls for it (and for other
  /// connections) this long after the request was handed to the handler, instead of sleeping: an
  /// answer computed on another thread within it is sent without waking the server thread (about
  /// 10 µs less per trigger on an idle server). 0: threads always sleep. Never with two or more
  /// requests waiting.
  std::chrono::microseconds busy_poll{200};
  /// A request's own body limit, asked once its headers are in, with its method, target and
  /// Authorization header (a larger one for uploads, or for a batch's item stream from a known
  /// caller); 0 means max_body_bytes. A Content-Length over it is answered 413 before any of the
  /// body is read; a chunked body is cut off at it (the 413 names the limit). Called on the
  /// server's threads. Unset: max_body_bytes for every request.
  std::function<uint64_t(std::string_view method, std::string_view target, std::string_view authorization)> body_limit_for;
  /// What the access log shows of a request's path (the query is never shown): a path that holds
  /// a capability (a signature) can be shown without it. Called on the server's threads.
  std::function<std::string(std::string_view path)> log_path;
};

class http_server {
public:
  http_server(http_server_options opts, http_handler handler);
  ~http_server();
  /// Binds and starts serving. Throws std::runtime_error naming the address if it cannot bind.
  void start();
  uint16_t port() const;
  /// Connections open now (counted against max_connections).
  size_t connections() const;
  /// Answers a busy-polling thread picked up (see busy_poll).
  uint64_t answers_polled() const;
  /// Closes the listening socket; open connections keep being served.
  void stop_accepting();
  /// Stops everything and joins the server's threads.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace taskhost
