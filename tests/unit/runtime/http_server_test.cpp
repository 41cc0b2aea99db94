// The HTTP server and client over real loopback sockets.
#include "runtime/http_server.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "runtime/http_client.hpp"

using taskhost::http_client;
using taskhost::http_request;
using taskhost::http_responder;
using taskhost::http_server;

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
