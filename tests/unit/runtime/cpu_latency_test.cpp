// The CPU latency request: what it writes, how it fails, and (where this user may) the kernel's
// own device.
#include "runtime/cpu_latency.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "support/process.hpp"

namespace taskhost {
namespace {

TEST(CpuLatencyRequestTest, WritesTheMicrosecondsAsTheKernelReadsThem) {
  test::temp_dir tmp;
  const auto dev = (tmp / "device").string();
  std::ofstream(dev).put('\0');  // the device exists; its content is replaced by the request
  {
    cpu_latency_request req(20, dev);
    ASSERT_TRUE(req.held()) << req.error();
    EXPECT_EQ(req.error(), "");
    EXPECT_EQ(req.microseconds(), 20);
    EXPECT_EQ(req.device(), dev);
  }
  // A native 32-bit integer, not text: what /dev/cpu_dma_latency takes and gives back.
  auto bytes = test::read_text(dev);
  ASSERT_EQ(bytes.size(), 4u);
  int32_t v = 0;
  std::memcpy(&v, bytes.data(), 4);
  EXPECT_EQ(v, 20);
  EXPECT_EQ(cpu_latency_request::current(dev), 20);
}

TEST(CpuLatencyRequestTest, AMissingOrUnwritableDeviceIsReportedNotThrown) {
  test::temp_dir tmp;
  const auto missing = (tmp / "no-such-device").string();
  cpu_latency_request req(0, missing);
  EXPECT_FALSE(req.held());
  EXPECT_NE(req.error().find(missing), std::string::npos) << req.error();
  EXPECT_NE(req.error().find("No such file or directory"), std::string::npos) << req.error();
  EXPECT_EQ(cpu_latency_request::current(missing), -1);

  cpu_latency_request dir(0, tmp.path().string());  // a folder cannot be written
  EXPECT_FALSE(dir.held());
  EXPECT_NE(dir.error().find(tmp.path().string()), std::string::npos) << dir.error();
}

TEST(CpuLatencyRequestTest, TheKernelHoldsTheRequestWhileItLives) {
  const char* dev = cpu_latency_request::default_device;
  if (::access(dev, R_OK | W_OK) != 0) GTEST_SKIP() << dev << " is not readable and writable by this user";
  cpu_latency_request req(0, dev);
  ASSERT_TRUE(req.held()) << req.error();
  // The kernel's target is the lowest request of all: 0 while this one is held.
  EXPECT_EQ(cpu_latency_request::current(dev), 0);
}

}  // namespace
}  // namespace taskhost
