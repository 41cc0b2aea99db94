// A CPU latency request (Linux PM QoS, "CPU latency QoS") held while it lives: the kernel keeps
// every CPU's idle state shallow enough that it wakes within the requested microseconds. At 0 an
// idle CPU polls instead of halting (power.cpu_latency_us in the deployment YAML).
//
// Why: a run crosses threads (trigger → writer → supervisor → executor). When the next thread's
// CPU is idle, it must first wake from its idle state. On a VM whose guest halts idle CPUs at once
// (cpuidle haltpoll with guest_halt_poll_ns=0, as on the machines the benchmarks ran on), a thread
// on another, halted CPU answers a condition variable in about 25 µs, against about 2 µs on the
// same CPU. A polling idle CPU answers as fast as a busy one. The price: idle CPUs never sleep, so
// an idle machine shows them busy (and a VM's host spends them).
//
// The kernel drops the request when the device is closed: when this object goes, and when the
// process dies in any way.
//
// Example:
//
//   cpu_latency_request req(0);
//   if (!req.held()) log::warn("no CPU latency request", {{"error", req.error()}});
#pragma once

#include <cstdint>
#include <string>

namespace taskhost {

class cpu_latency_request {
public:
  static constexpr const char* default_device = "/dev/cpu_dma_latency";

  /// Opens `device` and writes `us` as the kernel expects (a native 32-bit integer). Never
  /// throws: held() tells whether it worked, error() why not (no such device, no permission:
  /// it is root's by default).
  explicit cpu_latency_request(int32_t us, std::string device = default_device);
  ~cpu_latency_request();
  cpu_latency_request(const cpu_latency_request&) = delete;
  cpu_latency_request& operator=(const cpu_latency_request&) = delete;

  bool held() const { return fd_ >= 0; }
  /// Why the request could not be made, naming the device; "" while held.
  const std::string& error() const { return error_; }
  int32_t microseconds() const { return us_; }
  const std::string& device() const { return device_; }

  /// The kernel's current CPU latency target (the lowest request any process holds), read from
  /// `device`; -1 if it cannot be read.
  static int64_t current(const std::string& device = default_device);

private:
  int fd_ = -1;
  int32_t us_ = 0;
  std::string device_;
  std::string error_;
};

}  // namespace taskhost
