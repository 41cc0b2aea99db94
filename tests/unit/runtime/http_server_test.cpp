// The HTTP server and client over real loopback sockets. Timing: the server's timeouts are short
// here (hundreds of ms) so that the tests are quick; assertions allow many times the timeout
// (sanitizer builds on a shared machine), and "not yet closed" checks sit well inside it.
#include "runtime/http_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "runtime/http_client.hpp"
#include "support/raw_http.hpp"

using taskhost::http_client;
using taskhost::http_request;
using taskhost::http_responder;
using taskhost::http_response;
using taskhost::http_server;
using taskhost::http_server_options;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using taskhost::test::body_of;
using taskhost::test::get_request;
using taskhost::test::raw_conn;
using taskhost::test::status_of;

namespace {

/// Echoes method, target and body.
http_server make_echo_server(uint64_t max_body = 1024) {
  return http_server({.host = "127.0.0.1", .port = 0, .max_body_bytes = max_body},
                     [](http_request req, http_responder respond) {
                       respond({200, req.method + " " + req.target + " " + req.body,
                                {{"content-type", "text/plain"}, {"x-seen-ua", req.headers.count("user-agent") ? "yes" : "no"}}});
                     });
}

/// Sends raw bytes on a new connection and returns everything the server sends until it closes
/// or 2 s pass.
std::string raw_exchange(uint16_t port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "connect failed";
  ::send(fd, bytes.data(), bytes.size(), 0);
  ::shutdown(fd, SHUT_WR);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, size_t(n));
  close(fd);
  return out;
}

/// Short timeouts for tests; a handler that answers "ok" and counts its calls.
struct quick_server {
  explicit quick_server(http_server_options o = {}) : srv(with_defaults(std::move(o)), [this](http_request req, http_responder r) {
    ++calls;
    r({200, "ok " + req.target, {{"content-type", "text/plain"}}});
  }) {
    srv.start();
  }
  static http_server_options with_defaults(http_server_options o) {
    o.host = "127.0.0.1";
    o.port = 0;
    return o;
  }
  std::atomic<int> calls{0};
  http_server srv;
};

/// Everything written to stderr (where the log goes) between construction and text().
class stderr_capture {
public:
  stderr_capture() {
    std::fflush(stderr);
    saved_ = dup(2);
    char name[] = "/tmp/taskhost-stderr-XXXXXX";
    int fd = mkstemp(name);
    path_ = name;
    dup2(fd, 2);
    ::close(fd);
  }
  ~stderr_capture() {
    restore();
    std::filesystem::remove(path_);
  }
  /// What was written so far, still capturing.
  std::string peek() const {
    std::fflush(stderr);
    std::ifstream in(path_);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string text() {
    restore();
    std::ifstream in(path_);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  int saved_ = -1;
  std::string path_;
};

}  // namespace

TEST(HttpServerTest, ServesRequestsOnAKeptAliveConnection) {
  auto srv = make_echo_server();
  srv.start();
  ASSERT_NE(srv.port(), 0);
  http_client c("http://127.0.0.1:" + std::to_string(srv.port()));
  for (int i = 0; i < 3; ++i) {
    auto r = c.request("POST", "/p?x=" + std::to_string(i), "body" + std::to_string(i));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /p?x=" + std::to_string(i) + " body" + std::to_string(i));
    EXPECT_EQ(r.headers["content-type"], "text/plain");
    EXPECT_EQ(r.headers["x-seen-ua"], "yes");
  }
  srv.stop();
}

TEST(HttpServerTest, AcceptsChunkedRequestBodies) {
  auto srv = make_echo_server();
  srv.start();
  auto out = raw_exchange(srv.port(),
                          "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  EXPECT_NE(out.find("200 OK"), std::string::npos) << out;
  EXPECT_NE(out.find("POST /c hello world"), std::string::npos) << out;
}

TEST(HttpServerTest, BodyOverTheLimitIs413) {
  auto srv = make_echo_server(100);
  srv.start();
  http_client c("http://127.0.0.1:" + std::to_string(srv.port()));
  auto r = c.request("POST", "/", std::string(1000, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("over the limit of 100 bytes"), std::string::npos);
}

TEST(HttpServerTest, GarbageIsAnswered400) {
  auto srv = make_echo_server();
  srv.start();
  auto out = raw_exchange(srv.port(), "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(out.find("400 Bad Request"), std::string::npos) << out;
}

TEST(HttpServerTest, PortInUseIsAClearError) {
  auto a = make_echo_server();
  a.start();
  http_server b({.host = "127.0.0.1", .port = a.port()}, [](http_request, http_responder r) { r({200, "", {}}); });
  try {
    b.start();
    FAIL() << "second bind succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(a.port())), std::string::npos);
  }
}

TEST(HttpClientTest, UnreachableServerNamesTheUrl) {
  // Bind and close a port so that nothing listens on it.
  uint16_t port;
  {
    auto s = make_echo_server();
    s.start();
    port = s.port();
  }
  http_client c("http://127.0.0.1:" + std::to_string(port));
  try {
    c.request("GET", "/");
    FAIL() << "no error";
  } catch (const taskhost::http_client_error& e) {
    EXPECT_NE(std::string(e.what()).find("http://127.0.0.1:" + std::to_string(port)), std::string::npos) << e.what();
  }
  EXPECT_THROW(http_client("ftp://x"), taskhost::http_client_error);
}

// --- Hardening: timeouts, the connection cap, limits, the access log ---

TEST(HttpServerHardeningTest, HalfARequestLineIsClosedAfterTheHeaderTimeoutWhileOthersAreServed) {
  quick_server q({.header_timeout = 2000ms});
  raw_conn slow(q.srv.port());
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE(slow.send("GET /hal"));
  raw_conn silent(q.srv.port());  // a new connection that never sends: the same deadline
  ASSERT_TRUE(silent.ok());
  auto t0 = steady::now();
  // Meanwhile other clients are served, on new and kept-alive connections.
  http_client c("http://127.0.0.1:" + std::to_string(q.srv.port()));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.request("GET", "/other").status, 200);
  EXPECT_EQ(http_client("http://127.0.0.1:" + std::to_string(q.srv.port())).request("GET", "/another").status, 200);
  EXPECT_FALSE(slow.closed_within(0ms)) << "the others were served only after the slow one was closed";
  EXPECT_TRUE(slow.closed_within(30s)) << "the stalled request was not closed";
  EXPECT_TRUE(silent.closed_within(30s)) << "the silent connection was not closed";
  EXPECT_GE(steady::now() - t0, 1900ms) << "closed before the header timeout";
  EXPECT_EQ(slow.received(), "") << "nothing to answer: the request never arrived";
  EXPECT_EQ(q.calls.load(), 6);
}

TEST(HttpServerHardeningTest, HeadersTricklingInAreCutAtTheHeaderTimeoutNotPerByte) {
  quick_server q({.header_timeout = 500ms});
  raw_conn slow(q.srv.port());
  ASSERT_TRUE(slow.ok());
  const std::string req = "GET /trickle HTTP/1.1\r\nHost: x\r\n" + std::string(2000, 'a') + ": b\r\n\r\n";
  auto t0 = steady::now();
  size_t sent = 0;
  // One byte every 20 ms (the whole header would take 40 s): never idle, always late.
  while (sent < req.size() && steady::now() - t0 < 20s && slow.send(req.substr(sent, 1))) {
    ++sent;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(sent, req.size()) << "the server read a header sent over " << (steady::now() - t0).count() / 1000000 << " ms";
  EXPECT_TRUE(slow.closed_within(10s));
  EXPECT_EQ(q.calls.load(), 0);
}

TEST(HttpServerHardeningTest, AChunkedBodyThatNeverEndsIsClosedAfterTheBodyTimeout) {
  quick_server q({.header_timeout = 5000ms, .body_timeout = 500ms});
  raw_conn c(q.srv.port());
  ASSERT_TRUE(c.send("POST /forever HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  auto t0 = steady::now();
  // A chunk every 50 ms, forever: the body timeout bounds the whole body, not the gaps.
  bool cut = false;
  while (steady::now() - t0 < 20s) {
    if (!c.send("5\r\nhello\r\n")) {
      cut = true;
      break;
    }
    if (c.closed_within(50ms)) {
      cut = true;
      break;
    }
  }
  EXPECT_TRUE(cut) << "a never-ending chunked body was read for 20 s";
  EXPECT_GE(steady::now() - t0, 450ms);
  EXPECT_EQ(q.calls.load(), 0);
}

TEST(HttpServerHardeningTest, BodiesThatStallAreClosedAfterTheBodyTimeout) {
  quick_server q({.header_timeout = 5000ms, .body_timeout = 500ms});
  raw_conn chunked(q.srv.port());
  ASSERT_TRUE(chunked.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"));
  raw_conn sized(q.srv.port());
  ASSERT_TRUE(sized.send("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b"));
  auto t0 = steady::now();
  EXPECT_FALSE(sized.closed_within(200ms)) << "closed well before the body timeout";
  EXPECT_TRUE(chunked.closed_within(10s));
  EXPECT_TRUE(sized.closed_within(10s));
  EXPECT_GE(steady::now() - t0, 450ms);
  EXPECT_EQ(q.calls.load(), 0);
  // The server is fine.
  EXPECT_EQ(http_client("http://127.0.0.1:" + std::to_string(q.srv.port())).request("GET", "/").status, 200);
}

TEST(HttpServerHardeningTest, AKeptAliveConnectionIsClosedAfterTheIdleTimeout) {
  quick_server q({.header_timeout = 300ms, .idle_timeout = 1500ms});
  raw_conn c(q.srv.port());
  ASSERT_TRUE(c.send(get_request));
  EXPECT_EQ(status_of(c.read_response()), 200);
  auto t0 = steady::now();
  // Idle, not a header in progress: the header timeout (300 ms) does not apply.
  EXPECT_FALSE(c.closed_within(700ms)) << "an idle kept-alive connection was closed by the header timeout";
  ASSERT_TRUE(c.send(get_request)) << "a second request on the same connection";
  EXPECT_EQ(status_of(c.read_response()), 200);
  t0 = steady::now();
  EXPECT_TRUE(c.closed_within(30s));
  EXPECT_GE(steady::now() - t0, 1400ms);
  EXPECT_EQ(q.calls.load(), 2);
}

TEST(HttpServerHardeningTest, ASlowHandlerIsNotCutByAnyTimeout) {
  std::mutex mu;
  std::thread answerer;
  http_server srv({.host = "127.0.0.1", .port = 0, .header_timeout = 200ms, .body_timeout = 200ms, .idle_timeout = 200ms},
                  [&](http_request, http_responder r) {
                    // Answers later, from another thread (as a trigger does after its commit).
                    std::lock_guard lock(mu);
                    answerer = std::thread([r] {
                      std::this_thread::sleep_for(1200ms);
                      r({200, "late but fine", {}});
                    });
                  });
  srv.start();
  std::shared_ptr<void> join(nullptr, [&](void*) {
    std::lock_guard lock(mu);
    if (answerer.joinable()) answerer.join();
  });
  raw_conn c(srv.port());
  ASSERT_TRUE(c.send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
  auto res = c.read_response(30s);
  EXPECT_EQ(status_of(res), 200) << res;
  EXPECT_EQ(body_of(res), "late but fine");
}

TEST(HttpServerHardeningTest, AClientThatDoesNotReadItsResponseIsClosedAfterTheBodyTimeout) {
  http_server srv({.host = "127.0.0.1", .port = 0, .body_timeout = 500ms}, [](http_request, http_responder r) {
    r({200, std::string(64 << 20, 'x'), {}});  // far more than the socket buffers hold
  });
  srv.start();
  raw_conn c(srv.port());
  ASSERT_TRUE(c.send(get_request));  // and never read
  for (auto deadline = steady::now() + 10s; srv.connections() < 1 && steady::now() < deadline;)
    std::this_thread::sleep_for(5ms);
  auto t0 = steady::now();
  for (auto deadline = t0 + 30s; srv.connections() > 0 && steady::now() < deadline;) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(srv.connections(), 0u) << "the stalled write still holds its connection";
  EXPECT_GE(steady::now() - t0, 400ms);
}

TEST(HttpServerHardeningTest, AtTheCapTheConnectionsIdleLongestAreClosedToAdmitNewOnes) {
  quick_server q({.max_connections = 50});
  std::vector<raw_conn> idle;
  for (int i = 0; i < 50; ++i) {
    idle.emplace_back(q.srv.port());
    ASSERT_TRUE(idle.back().send(get_request));
    ASSERT_EQ(status_of(idle.back().read_response()), 200) << "connection " << i;
  }
  EXPECT_EQ(q.srv.connections(), 50u);
  // Ten new connections, each with a request: each closes the oldest idle one.
  std::vector<raw_conn> fresh;
  for (int i = 0; i < 10; ++i) {
    fresh.emplace_back(q.srv.port());
    ASSERT_TRUE(fresh.back().send(get_request));
    EXPECT_EQ(status_of(fresh.back().read_response()), 200) << "new connection " << i;
  }
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(idle[size_t(i)].closed_within(10s)) << "idle connection " << i << " (oldest first)";
  for (int i = 10; i < 50; ++i) {
    EXPECT_FALSE(idle[size_t(i)].closed_within(0ms)) << "idle connection " << i << " should still be open";
  }
  // The survivors still work.
  ASSERT_TRUE(idle[49].send(get_request));
  EXPECT_EQ(status_of(idle[49].read_response()), 200);
  EXPECT_EQ(q.srv.connections(), 50u);
}

TEST(HttpServerHardeningTest, AtTheCapWithNoIdleConnectionANewOneIsAnswered503AndClosed) {
  std::mutex mu;
  std::vector<http_responder> held;
  http_server srv({.host = "127.0.0.1", .port = 0, .max_connections = 5}, [&](http_request, http_responder r) {
    std::lock_guard lock(mu);
    held.push_back(std::move(r));  // every request stays in flight until released
  });
  srv.start();
  // Responders must not outlive their server: dropped first, whatever the test's outcome.
  std::shared_ptr<void> drop_held(nullptr, [&](void*) {
    std::lock_guard lock(mu);
    held.clear();
  });
  std::vector<raw_conn> busy;
  for (int i = 0; i < 5; ++i) {
    busy.emplace_back(srv.port());
    ASSERT_TRUE(busy.back().send(get_request));
  }
  for (auto deadline = steady::now() + 10s; steady::now() < deadline;) {
    {
      std::lock_guard lock(mu);
      if (held.size() == 5) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  raw_conn extra(srv.port());
  ASSERT_TRUE(extra.ok());
  extra.send(get_request);
  auto res = extra.read_response();
  EXPECT_EQ(status_of(res), 503) << res;
  EXPECT_NE(res.find("x-should-retry: true"), std::string::npos) << res;
  EXPECT_NE(res.find("Connection: close"), std::string::npos) << res;
  EXPECT_EQ(nlohmann::json::parse(body_of(res), nullptr, false), nlohmann::json({{"error", "too many connections"}}));
  EXPECT_TRUE(extra.closed_within(10s));
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 5u) << "the refused connection's request reached the handler";
    for (auto& r : held) r({200, "done", {}});
  }
  for (auto& b : busy) EXPECT_EQ(status_of(b.read_response()), 200);
  // Idle again: a new connection is admitted (closing the oldest idle one).
  raw_conn after(srv.port());
  ASSERT_TRUE(after.send(get_request));
  for (auto deadline = steady::now() + 10s; steady::now() < deadline;) {
    {
      std::lock_guard lock(mu);
      if (held.size() == 6) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 6u) << "a new connection was not admitted once connections were idle";
    held.back()({200, "done", {}});
  }
  EXPECT_EQ(status_of(after.read_response()), 200);
  EXPECT_TRUE(busy[0].closed_within(10s)) << "the connection idle longest makes room";
  srv.stop();
}

TEST(HttpServerHardeningTest, ANewConnectionThatHasSentNothingIsClosedForAnotherOnlyAfterASecond) {
  quick_server q({.header_timeout = 10'000ms, .max_connections = 2});
  raw_conn silent1(q.srv.port()), silent2(q.srv.port());
  // Wait until both are counted (accepted and started).
  for (auto deadline = steady::now() + 10s; q.srv.connections() < 2 && steady::now() < deadline;)
    std::this_thread::sleep_for(5ms);
  auto t0 = steady::now();
  // Clients send right after connecting: a connection this young is not idle yet.
  raw_conn early(q.srv.port());
  ASSERT_TRUE(early.send(get_request));
  auto res = early.read_response();
  if (steady::now() - t0 < 900ms) {
    EXPECT_EQ(status_of(res), 503) << res;
    EXPECT_FALSE(silent1.closed_within(0ms));
  }
  std::this_thread::sleep_for(1100ms);
  // Silent for over a second: the older one makes room.
  raw_conn later(q.srv.port());
  ASSERT_TRUE(later.send(get_request));
  EXPECT_EQ(status_of(later.read_response()), 200);
  EXPECT_TRUE(silent1.closed_within(10s));
  EXPECT_FALSE(silent2.closed_within(0ms));
}

TEST(HttpServerHardeningTest, TheCapHoldsWithSeveralServerThreadsAndClientsAtOnce) {
  // Sessions on four threads evict one another; clients keep up to five idle connections each, so
  // that 40 would be open without the cap of 20, and at most 8 requests are in flight: there is
  // always an idle connection to close, and every request is answered.
  quick_server q({.threads = 4, .max_connections = 20});
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&] {
      std::deque<raw_conn> kept;
      for (int i = 0; i < 30; ++i) {
        raw_conn c(q.srv.port());
        int st = c.send(get_request) ? status_of(c.read_response(30s)) : -1;
        if (st == 200) {
          ++ok;
        } else {
          ++other;
          ADD_FAILURE() << "status " << st << " (0: closed without an answer): " << c.received();
        }
        kept.push_back(std::move(c));
        if (kept.size() > 5) kept.pop_front();
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 240);
  EXPECT_EQ(other.load(), 0);
  EXPECT_LE(q.srv.connections(), 20u);
}

TEST(HttpServerHardeningTest, AnOversizeBodyIs413AlsoWhenChunked) {
  quick_server q({.max_body_bytes = 100, .body_timeout = 1000ms});  // the lingering close lasts at most this
  raw_conn sized(q.srv.port());
  ASSERT_TRUE(sized.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"));
  auto res = sized.read_response();
  EXPECT_EQ(status_of(res), 413) << res;
  EXPECT_NE(body_of(res).find("\"error\":\"request body is over the limit of 100 bytes\""), std::string::npos) << res;
  raw_conn chunked(q.srv.port());
  ASSERT_TRUE(chunked.send("POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  for (int i = 0; i < 10 && chunked.send("14\r\n" + std::string(20, 'x') + "\r\n"); ++i) {}
  res = chunked.read_response();
  EXPECT_EQ(status_of(res), 413) << res;
  EXPECT_NE(res.find("Connection: close"), std::string::npos) << res;
  EXPECT_TRUE(chunked.closed_within(10s));
  EXPECT_EQ(q.calls.load(), 0);
}

TEST(HttpServerHardeningTest, GarbageIs400JsonAndTheConnectionIsClosed) {
  quick_server q;
  raw_conn c(q.srv.port());
  ASSERT_TRUE(c.send("THIS IS NOT HTTP\r\n\r\n"));
  auto res = c.read_response();
  EXPECT_EQ(status_of(res), 400) << res;
  auto body = nlohmann::json::parse(body_of(res), nullptr, false);
  ASSERT_TRUE(body.is_object()) << res;
  EXPECT_NE(body.value("error", "").find("malformed HTTP request"), std::string::npos) << res;
  EXPECT_TRUE(c.closed_within(10s));
  // Headers over 64 KiB: 431, closed.
  raw_conn big(q.srv.port());
  big.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70000, 'b') + "\r\n\r\n");
  res = big.read_response();
  EXPECT_EQ(status_of(res), 431) << res.substr(0, 200);
  EXPECT_TRUE(big.closed_within(10s));
  EXPECT_EQ(q.calls.load(), 0);
}

TEST(HttpServerHardeningTest, PipelinedRequestsAndExpectContinueAreServed) {
  quick_server q;
  raw_conn c(q.srv.port());
  ASSERT_TRUE(c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(body_of(c.read_response()), "ok /a");
  EXPECT_EQ(body_of(c.read_response()), "ok /b");
  // A client that waits for 100 Continue before its body (curl does, for large bodies).
  ASSERT_TRUE(c.send("POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  auto interim = c.read_response();
  EXPECT_EQ(status_of(interim), 100) << interim;
  ASSERT_TRUE(c.send("body"));
  EXPECT_EQ(body_of(c.read_response()), "ok /c");
}

TEST(HttpServerHardeningTest, AResponseToHeadHasNoBodyAndTheConnectionStaysUsable) {
  quick_server q;
  raw_conn c(q.srv.port());
  ASSERT_TRUE(c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n"));
  // read_response would take the Content-Length of the HEAD answer for a body: read both by hand.
  ASSERT_FALSE(c.closed_within(1000ms));
  const auto& in = c.received();
  auto first_end = in.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos) << in;
  EXPECT_EQ(status_of(in), 200) << in;
  EXPECT_NE(in.find("Content-Length: 5\r\n"), std::string::npos) << "the length the GET would have: " << in;
  auto second = in.substr(first_end + 4);
  EXPECT_EQ(status_of(second), 200) << "the GET's answer follows the HEAD's headers at once: " << in;
  EXPECT_EQ(body_of(second), "ok /g");
}

TEST(HttpServerHardeningTest, TheAccessLogHasOneLinePerRequestWithoutTheQueryString) {
  stderr_capture err;
  {
    http_server srv({.host = "127.0.0.1", .port = 0}, [](http_request req, http_responder r) {
      http_response res{req.target.starts_with("/missing") ? 404 : 201, R"({"id":"x"})", {}};
      if (req.headers.count("x-key-name")) res.principal = req.headers.at("x-key-name");  // as an auth layer would
      r(std::move(res));
    });
    srv.start();
    http_client c("http://127.0.0.1:" + std::to_string(srv.port()));
    EXPECT_EQ(c.request("POST", "/api/v1/things?token=SECRET-IN-QUERY&x=1", "12345", {{"x-key-name", "deploy-bot"}}).status, 201);
    EXPECT_EQ(c.request("GET", "/missing/thing").status, 404);
    raw_conn garbage(srv.port());
    garbage.send("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(status_of(garbage.read_response()), 400);
    raw_conn big(srv.port());
    big.send("POST /big?secret=SECRET-IN-QUERY HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n");
    EXPECT_EQ(status_of(big.read_response()), 413);
    // A line is written once the write has completed, which may be just after the client read it.
    for (auto deadline = steady::now() + 10s; steady::now() < deadline && (err.peek().find("status=400") == std::string::npos ||
                                                                      err.peek().find("status=413") == std::string::npos);)
      std::this_thread::sleep_for(10ms);
    srv.stop();
  }
  auto log = err.text();
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);)
    if (l.find(" http method=") != std::string::npos) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u) << log;
  auto line_with = [&](const std::string& part) {
    for (const auto& l : lines)
      if (l.find(part) != std::string::npos) return l;
    return std::string("no line with " + part);
  };
  auto first = line_with("path=/api/v1/things");
  EXPECT_NE(first.find("info  http method=POST path=/api/v1/things status=201 duration_us="), std::string::npos) << first;
  EXPECT_NE(first.find(" remote=127.0.0.1:"), std::string::npos) << first;
  EXPECT_NE(first.find(" key=deploy-bot"), std::string::npos) << first;
  EXPECT_NE(first.find(" bytes_out="), std::string::npos) << first;
  auto bytes_in = std::stoul(first.substr(first.find(" bytes_in=") + 10));
  EXPECT_GT(bytes_in, 5u + 40u) << "headers and body: " << first;
  EXPECT_EQ(log.find("SECRET-IN-QUERY"), std::string::npos) << "the query string reached the log:\n" << log;
  EXPECT_EQ(log.find("token"), std::string::npos) << log;
  auto second = line_with("path=/missing/thing");
  EXPECT_NE(second.find("method=GET path=/missing/thing status=404"), std::string::npos) << second;
  EXPECT_EQ(second.find("key="), std::string::npos) << "no principal, no key: " << second;
  EXPECT_NE(line_with("status=400").find("method=- path=- status=400"), std::string::npos) << log;
  EXPECT_NE(line_with("status=413").find("method=POST path=/big status=413"), std::string::npos) << log;
}

TEST(HttpServerHardeningTest, TheAccessLogCanBeTurnedOff) {
  stderr_capture err;
  {
    quick_server q({.access_log = false});
    EXPECT_EQ(http_client("http://127.0.0.1:" + std::to_string(q.srv.port())).request("GET", "/quiet").status, 200);
    q.srv.stop();
  }
  auto log = err.text();
  EXPECT_EQ(log.find("/quiet"), std::string::npos) << log;
  EXPECT_NE(log.find("http limits"), std::string::npos) << "the start line names the limits: " << log;
  EXPECT_NE(log.find("busy_poll_us=200"), std::string::npos) << "and the busy-poll budget (its default here): " << log;
}

TEST(HttpServerHardeningTest, ARequestsOwnBodyLimitIsAskedOnceItsHeadersAreIn) {
  http_server_options o;
  o.max_body_bytes = 100;
  o.body_timeout = 1000ms;
  o.body_limit_for = [](std::string_view method, std::string_view target, std::string_view) -> uint64_t {
    return method == "PUT" && target.starts_with("/upload") ? 1000 : 0;
  };
  quick_server q(o);
  http_client c("http://127.0.0.1:" + std::to_string(q.srv.port()));
  EXPECT_EQ(c.request("PUT", "/upload/x", std::string(1000, 'u')).status, 200) << "its own limit";
  EXPECT_EQ(c.request("POST", "/upload/x", std::string(101, 'u')).status, 413) << "another method keeps the server's";
  EXPECT_EQ(c.request("PUT", "/other", std::string(101, 'u')).status, 413);
  EXPECT_EQ(c.request("PUT", "/other", std::string(100, 'u')).status, 200);
  raw_conn sized(q.srv.port());
  ASSERT_TRUE(sized.send("PUT /upload/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"));
  auto res = sized.read_response();
  EXPECT_EQ(status_of(res), 413) << res;
  EXPECT_NE(body_of(res).find("over the limit of 1000 bytes"), std::string::npos) << res;
  raw_conn chunked(q.srv.port());
  ASSERT_TRUE(chunked.send("PUT /upload/y HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  for (int i = 0; i < 60 && chunked.send("14\r\n" + std::string(20, 'x') + "\r\n"); ++i) {}
  EXPECT_EQ(status_of(chunked.read_response()), 413) << "a chunked body is cut at its own limit too";
  EXPECT_EQ(q.calls.load(), 2);
}

TEST(HttpServerHardeningTest, TheAccessLogShowsAPathAsLogPathRewritesIt) {
  stderr_capture err;
  {
    http_server_options o;
    o.log_path = [](std::string_view p) { return p.starts_with("/signed/") ? std::string("/signed/<hmac>") : std::string(p); };
    quick_server q(o);
    http_client c("http://127.0.0.1:" + std::to_string(q.srv.port()));
    EXPECT_EQ(c.request("GET", "/signed/SECRET-HMAC").status, 200);
    EXPECT_EQ(c.request("GET", "/plain").status, 200);
    for (auto deadline = steady::now() + 10s; steady::now() < deadline && err.peek().find("path=/plain") == std::string::npos;)
      std::this_thread::sleep_for(10ms);
    q.srv.stop();
  }
  auto log = err.text();
  EXPECT_EQ(log.find("SECRET-HMAC"), std::string::npos) << log;
  EXPECT_NE(log.find("path=/signed/<hmac>"), std::string::npos) << log;
}

TEST(HttpServerHardeningTest, ARouteThatTakesLargeBodiesMaySendUpToItsLimitAndOthersNot) {
  http_server_options o{.max_body_bytes = 100, .body_timeout = 1000ms};
  o.body_limit_for = [](std::string_view method, std::string_view target, std::string_view authorization) -> uint64_t {
    return method == "POST" && target == "/big" && authorization == "Bearer ok" ? 1000 : 0;
  };
  quick_server q(std::move(o));
  auto post = [&](const std::string& target, const std::string& auth, const std::string& framing, size_t n) {
    raw_conn c(q.srv.port());
    std::string head = "POST " + target + " HTTP/1.1\r\nHost: x\r\n" + (auth.empty() ? "" : "Authorization: " + auth + "\r\n");
    if (framing == "length") {
      c.send(head + "Content-Length: " + std::to_string(n) + "\r\n\r\n" + std::string(n, 'x'));
    } else {
      char len[32];
      std::snprintf(len, sizeof len, "%zx\r\n", n / 2);
      std::string chunk = std::string(len) + std::string(n / 2, 'x') + "\r\n";
      c.send(head + "Transfer-Encoding: chunked\r\n\r\n" + chunk + chunk + "0\r\n\r\n");
    }
    return c.read_response();
  };
  for (const char* framing : {"length", "chunked"}) {
    SCOPED_TRACE(framing);
    EXPECT_EQ(status_of(post("/big", "Bearer ok", framing, 900)), 200) << "the route's own limit";
    auto over = post("/big", "Bearer ok", framing, 1200);
    EXPECT_EQ(status_of(over), 413);
    EXPECT_NE(body_of(over).find("over the limit of 1000 bytes"), std::string::npos) << over;
    auto other = post("/small", "Bearer ok", framing, 200);
    EXPECT_EQ(status_of(other), 413) << "another route keeps max_body_bytes";
    EXPECT_NE(body_of(other).find("over the limit of 100 bytes"), std::string::npos) << other;
    EXPECT_EQ(status_of(post("/big", "Bearer nope", framing, 200)), 413) << "a head the predicate refuses keeps max_body_bytes";
    EXPECT_EQ(status_of(post("/small", "", framing, 80)), 200);
  }
  EXPECT_EQ(status_of(post("/small", "", "length", 5000)), 413) << "over every limit";
}

namespace {

/// A server whose handler hands each responder to a thread of its own, which answers after
/// `delay` (as a trigger is answered by the store's writer after its commit); a request to
/// /drop lets go of its responder without answering.
struct answered_elsewhere {
  explicit answered_elsewhere(std::chrono::microseconds busy_poll, std::chrono::microseconds delay = 50us)
      : delay(delay), srv({.host = "127.0.0.1", .port = 0, .busy_poll = busy_poll}, [this](http_request req, http_responder r) {
          if (req.target == "/drop") return;
          std::lock_guard lock(mu);
          pending.push_back({std::move(r), req.target});
          cv.notify_one();
        }) {
    srv.start();
  }
  ~answered_elsewhere() {
    {
      std::lock_guard lock(mu);
      done = true;
      cv.notify_one();
    }
    answerer.join();
    srv.stop();
  }
  void answer_loop() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return done || !pending.empty(); });
      if (done) return;
      auto [r, target] = std::move(pending.front());
      pending.pop_front();
      lock.unlock();
      std::this_thread::sleep_for(delay);
      r({200, "answered " + target, {{"content-type", "text/plain"}}});
      lock.lock();
    }
  }
  std::chrono::microseconds delay;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<http_responder, std::string>> pending;
  bool done = false;
  http_server srv;
  std::thread answerer{[this] { answer_loop(); }};
};

/// 20 requests one after the other, each answered with its own target.
void twenty_lone_requests(answered_elsewhere& s) {
  http_client c("http://127.0.0.1:" + std::to_string(s.srv.port()));
  for (int i = 0; i < 20; ++i) {
    auto r = c.request("GET", "/r" + std::to_string(i), "");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "answered /r" + std::to_string(i));
  }
}

}  // namespace

TEST(HttpServerTest, ALoneRequestsAnswerFromAnotherThreadIsPickedUpByTheBusyPollingThread) {
  // A budget of 50 ms, far above the 50 µs answer: even a sanitizer build on a busy machine polls
  // for most of the answers. The server's only thread stays awake for them.
  answered_elsewhere s(50ms);
  twenty_lone_requests(s);
  EXPECT_GE(s.srv.answers_polled(), 10u);
}

TEST(HttpServerTest, WithBusyPollingOffNoAnswerIsPolledForAndAllAreServed) {
  answered_elsewhere s(0us);
  twenty_lone_requests(s);
  EXPECT_EQ(s.srv.answers_polled(), 0u);
}

TEST(HttpServerTest, ARequestWhoseHandlerNeverAnswersDoesNotCountAsWaitingForever) {
  // A request whose responder is dropped unanswered stops counting as waiting: later lone
  // requests are polled for again (were it still counted, each would be the second one waiting,
  // and the threads would sleep). Its connection stays open, unanswered, as before.
  answered_elsewhere s(50ms);
  raw_conn dropped(s.srv.port());
  dropped.send("GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
  twenty_lone_requests(s);
  EXPECT_GE(s.srv.answers_polled(), 10u);
}

TEST(HttpServerTest, ConnectionsAreServedWhileAThreadPollsForALoneAnswer) {
  // One thread; a lone request's answer comes after 300 ms, and the thread polls for it all that
  // time: meanwhile other connections are served.
  std::atomic<bool> release{false};
  std::thread late;
  http_server srv({.host = "127.0.0.1", .port = 0, .busy_poll = 1s}, [&](http_request req, http_responder r) {
    if (req.target == "/slow") {
      late = std::thread([r, &release] {
        for (int i = 0; i < 300 && !release; ++i) std::this_thread::sleep_for(1ms);
        r({200, "slow", {}});
      });
      return;
    }
    r({200, "quick", {}});
  });
  srv.start();
  raw_conn slow(srv.port());
  slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(20ms);
  http_client c("http://127.0.0.1:" + std::to_string(srv.port()));
  auto t0 = steady::now();
  auto r = c.request("GET", "/quick", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "quick");
  EXPECT_LT(steady::now() - t0, 250ms);  // not held until the slow answer
  release = true;
  late.join();
  srv.stop();  // returns although a thread was polling
}
