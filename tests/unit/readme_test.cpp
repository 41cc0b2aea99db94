// "Docs are compiled code": the hello-world shown in README.md is the file the build compiles
// and the integration tests run.
#include <gtest/gtest.h>

#include <sstream>

#include "support/process.hpp"

TEST(ReadmeTest, HelloWorldExampleIsThePluginTheTestsRun) {
  const std::string readme = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "README.md");
  const std::string source = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "plugins/hello/hello_world.cpp");
  ASSERT_FALSE(source.empty());
  EXPECT_NE(readme.find("```cpp\n// plugins/hello/hello_world.cpp\n" + source + "```"), std::string::npos)
      << "README.md must show plugins/hello/hello_world.cpp verbatim";
}

TEST(ReadmeTest, CppClientExampleIsTheBackendTheTestsRun) {
  const std::string readme = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "README.md");
  const std::string source = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "examples/backend-cpp/main.cpp");
  ASSERT_FALSE(source.empty());
  EXPECT_NE(readme.find("```cpp\n" + source + "```"), std::string::npos)
      << "README.md's C++ client section must show examples/backend-cpp/main.cpp verbatim";
}

// `make run`'s server requires the key it printed: every command of README that calls the API must
// send it, or it answers 401 when copied.
TEST(ReadmeTest, CommandsCopiedFromTheReadmeSendTheDevKey) {
  const std::string readme = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "README.md");
  const std::string makefile = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "Makefile");
  const std::string export_line = "$ export TASKHOST_API_KEY=$(cat .taskhost/dev.key)";
  auto exported = readme.find(export_line);
  ASSERT_NE(exported, std::string::npos) << "the quick start exports the dev key";
  EXPECT_LT(exported, readme.find("$ build/bin/taskhost trigger")) << "before the first client command";
  EXPECT_NE(makefile.find("DEV_KEY := .taskhost/dev.key"), std::string::npos) << "the file `make run` writes";
  // Each shell command (continuation lines joined) that curls an /api/ route but the time zones.
  std::string joined;
  for (size_t i = 0; i < readme.size(); ++i) {
    if (readme[i] == '\\' && i + 1 < readme.size() && readme[i + 1] == '\n') {
      ++i;
      continue;
    }
    joined += readme[i];
  }
  std::istringstream lines(joined);
  int curls = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("curl ") == std::string::npos || line.find("/api/") == std::string::npos ||
        line.find("/api/v1/timezones") != std::string::npos)
      continue;
    ++curls;
    EXPECT_NE(line.find("-H \"authorization: Bearer $TASKHOST_API_KEY\""), std::string::npos) << line;
  }
  EXPECT_GE(curls, 2);
}
