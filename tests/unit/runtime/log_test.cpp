// The log's batched lines: whole lines, in order, each batch one write of at most 4 KiB.
#include "runtime/log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

/// Runs `f` with stderr redirected to a file; returns what was written.
template <class F>
std::string stderr_of(F f) {
  std::fflush(stderr);
  char name[] = "/tmp/taskhost-log-test-XXXXXX";
  int fd = mkstemp(name);
  int saved = dup(2);
  dup2(fd, 2);
  ::close(fd);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  ::close(saved);
  std::ifstream in(name);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::filesystem::remove(name);
  return ss.str();
}

}  // namespace

TEST(LogTest, BatchedLinesAreWholeInOrderAndLookLikeOtherLines) {
  using taskhost::log::level;
  auto out = stderr_of([] {
    taskhost::log::batched_lines batch;
    for (int i = 0; i < 1000; ++i)
      batch.add(level::info, "http", {{"n", i}, {"path", "/a b"}, {"ctl", "x\x1b[31my"}});
    batch.add(level::debug, "http", {{"n", -1}});  // below the level (info): dropped
    taskhost::log::write_fields(level::info, "single", {{"n", 1000}});
    batch.flush();
  });
  std::istringstream in(out);
  int n = 0;
  bool saw_single = false;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" single n=1000") != std::string::npos) {
      saw_single = true;
      continue;
    }
    // 2026-11-30T03:27:29.123Z info  http n=0 path="/a b" ctl="x\u001b[31my"
    ASSERT_EQ(line.size() > 25 ? line.substr(23, 8) : line, "Z info  ") << line;
    ASSERT_EQ(line.substr(31), "http n=" + std::to_string(n) + " path=\"/a b\" ctl=\"x\\u001b[31my\"") << line;
    ++n;
  }
  EXPECT_EQ(n, 1000);
  EXPECT_TRUE(saw_single);
}

TEST(LogTest, JsonFormatBatchedLinesAreObjects) {
  using taskhost::log::level;
  taskhost::log::setup("info", "json");
  auto out = stderr_of([] {
    taskhost::log::batched_lines batch;
    batch.add(level::info, "http", {{"method", "GET"}, {"path", "/x\"y"}, {"status", 200}});
  });
  taskhost::log::setup("info", "text");
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["msg"], "http");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["path"], "/x\"y");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["time"].get<std::string>().size(), 24u) << j;
}
