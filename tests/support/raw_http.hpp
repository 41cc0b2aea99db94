// Test support: raw HTTP/1.1 over a plain TCP socket, for what a well-behaved client never does
// (half a request, a body that never ends, a thousand idle connections).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace taskhost::test {

/// A connected TCP socket to the server (blocking), closed on destruction.
class raw_conn {
public:
  explicit raw_conn(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
  }
  raw_conn(raw_conn&& o) noexcept : fd_(std::exchange(o.fd_, -1)), in_(std::move(o.in_)) {}
  ~raw_conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  /// False once the server has closed (EPIPE / ECONNRESET).
  bool send(std::string_view bytes) { return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == ssize_t(bytes.size()); }

  /// Reads until one whole response (headers + content-length body) is in, the server closes,
  /// or `within` passes. Returns it ("" if none).
  std::string read_response(std::chrono::milliseconds within = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
      if (auto r = take_response(); !r.empty()) return r;
      if (closed_ || !wait_readable(deadline)) return "";
      read_some();
    }
  }

  /// True once the server has closed the connection (EOF or reset), waiting at most `within`;
  /// whatever the server sent meanwhile is kept (received()).
  bool closed_within(std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (!closed_) {
      if (!wait_readable(deadline)) return false;
      read_some();
    }
    return true;
  }
  const std::string& received() const { return in_; }

private:
  /// Polls at least once, also when the deadline has passed (a wait of 0 ms looks without waiting).
  bool wait_readable(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, int(std::max<long long>(left, 0))) > 0;
  }
  void read_some() {
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) closed_ = true;
    else in_.append(buf, size_t(n));
  }
  std::string take_response() {
    auto end = in_.find("\r\n\r\n");
    if (end == std::string::npos) return "";
    size_t len = 0;
    auto cl = in_.find("Content-Length: ");
    if (cl != std::string::npos && cl < end) len = std::stoul(in_.substr(cl + 16));
    if (in_.size() < end + 4 + len) return "";
    auto r = in_.substr(0, end + 4 + len);
    in_.erase(0, end + 4 + len);
    return r;
  }
  int fd_ = -1;
  bool closed_ = false;
  std::string in_;
};

inline const std::string get_request = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

inline int status_of(const std::string& response) {
  return response.size() > 12 && response.compare(0, 5, "HTTP/") == 0 ? std::stoi(response.substr(9, 3)) : 0;
}
inline std::string body_of(const std::string& response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace taskhost::test
