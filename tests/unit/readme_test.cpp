// "Docs are compiled code": the hello-world shown in README.md is the file the build compiles
// and the integration tests run.
#include <gtest/gtest.h>

#include "support/process.hpp"

TEST(ReadmeTest, HelloWorldExampleIsThePluginTheTestsRun) {
  const std::string readme = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "README.md");
  const std::string source = taskhost::test::read_text(std::filesystem::path(TASKHOST_SOURCE_DIR) / "plugins/hello/hello_world.cpp");
  ASSERT_FALSE(source.empty());
  EXPECT_NE(readme.find("```cpp\n// plugins/hello/hello_world.cpp\n" + source + "```"), std::string::npos)
      << "README.md must show plugins/hello/hello_world.cpp verbatim";
}
