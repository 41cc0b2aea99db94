#include "runtime/cpu_latency.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace taskhost {

cpu_latency_request::cpu_latency_request(int32_t us, std::string device) : us_(us), device_(std::move(device)) {
  fd_ = ::open(device_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) {
    error_ = device_ + ": " + std::strerror(errno);
    return;
  }
  const ssize_t n = ::write(fd_, &us_, sizeof us_);
  if (n != static_cast<ssize_t>(sizeof us_)) {
    error_ = device_ + ": " + (n < 0 ? std::strerror(errno) : "short write");
    ::close(fd_);
    fd_ = -1;
  }
}

cpu_latency_request::~cpu_latency_request() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t cpu_latency_request::current(const std::string& device) {
  const int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int32_t v = 0;
  const ssize_t n = ::read(fd, &v, sizeof v);
  ::close(fd);
  return n == static_cast<ssize_t>(sizeof v) ? v : -1;
}

}  // namespace taskhost
