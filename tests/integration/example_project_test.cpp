// examples/plugin-project is built the way a user builds it — against an installed taskhost — and
// its tasks are run by the real binary.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>

#include "runtime/http_client.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::test::run_command;
using taskhost::test::temp_dir;
namespace fs = std::filesystem;

namespace {

/// Installs taskhost into tmp/prefix and builds examples/<name> against it into tmp/build, as a
/// user would. False after recording a test failure. `sanitized`: built with the sanitizers of this
/// build (a program that links the installed libtaskhost_client.a must, under make asan / tsan).
bool build_project(const temp_dir& tmp, const std::string& name, bool sanitized = false) {
  const fs::path prefix = tmp / "prefix";
  auto install = run_command({"/usr/bin/cmake", "--install", TASKHOST_BUILD_DIR, "--prefix", prefix.string()}, 120s);
  EXPECT_EQ(install.exit_code, 0) << install.out << install.err;
  EXPECT_TRUE(fs::exists(prefix / "include/taskhost/sdk.hpp"));
  EXPECT_TRUE(fs::exists(prefix / "include/taskhost/client.hpp"));
  std::vector<std::string> args = {"/usr/bin/cmake", "-S", std::string(TASKHOST_SOURCE_DIR) + "/examples/" + name, "-B",
                                   (tmp / "build").string(), "-DCMAKE_PREFIX_PATH=" + prefix.string(), "-DCMAKE_BUILD_TYPE=Release"};
  if (sanitized && !std::string(TASKHOST_SANITIZE).empty()) {
    args.push_back("-DCMAKE_CXX_FLAGS=-fsanitize=" + std::string(TASKHOST_SANITIZE));
    args.push_back("-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=" + std::string(TASKHOST_SANITIZE));
  }
  auto configure = run_command(args, 120s);
  EXPECT_EQ(configure.exit_code, 0) << configure.out << configure.err;
  auto build = run_command({"/usr/bin/cmake", "--build", (tmp / "build").string()}, 300s);
  EXPECT_EQ(build.exit_code, 0) << build.out << build.err;
  return install.exit_code == 0 && configure.exit_code == 0 && build.exit_code == 0;
}

/// build_project for a plugin project: the plugin's path, or "" after recording a test failure.
fs::path build_example(const temp_dir& tmp, const std::string& name, const std::string& plugin) {
  build_project(tmp, name);
  fs::path so = tmp / "build" / (plugin + ".so");
  EXPECT_TRUE(fs::exists(so));
  return fs::exists(so) ? so : fs::path();
}

/// The URL a started `taskhost run` prints in its ready line, or "" if none came within 20 s.
std::string wait_ready_url(taskhost::test::child_process& srv, const fs::path& log) {
  auto line = srv.read_line(20s);
  EXPECT_TRUE(line) << taskhost::test::read_text(log);
  std::smatch m;
  if (!line || !std::regex_search(*line, m, std::regex(R"((http://127\.0\.0\.1:\d+))"))) return "";
  return m[1];
}

}  // namespace

TEST(ExampleProjectTest, PluginProjectBuildsAgainstInstalledTaskhostAndRuns) {
  temp_dir tmp;
  auto so = build_example(tmp, "plugin-project", "greetings");
  ASSERT_FALSE(so.empty());

  fs::create_directories(tmp / "deploy/plugins");
  fs::copy_file(so, tmp / "deploy/plugins/greetings.so");
  tmp.write("deploy/d.yaml", "name: example\nplugins_dir: plugins\nhttp: {listen: '127.0.0.1:0'}\n");
  auto list = run_command({TASKHOST_BIN, "plugins", "list", "--config", (tmp / "deploy/d.yaml").string()});
  EXPECT_NE(list.out.find("greetings 1.0.0"), std::string::npos) << list.out << list.err;
  EXPECT_NE(list.out.find("  greet  — greets payload.name"), std::string::npos) << list.out;

  taskhost::test::child_process srv({TASKHOST_BIN, "run", "--config", (tmp / "deploy/d.yaml").string()}, tmp / "log");
  const std::string url = wait_ready_url(srv, tmp / "log");
  ASSERT_FALSE(url.empty());
  auto greet = run_command({TASKHOST_BIN, "trigger", "greet", R"({"name":"Ada"})", "--wait", "--url", url});
  EXPECT_EQ(greet.exit_code, 0) << greet.err;
  EXPECT_NE(greet.out.find(R"({"greeting":"Hello, Ada!"})"), std::string::npos) << greet.out;
  auto shout = run_command({TASKHOST_BIN, "trigger", "shout", "42", "--wait", "--url", url});
  EXPECT_EQ(shout.exit_code, 1);
  EXPECT_NE(shout.out.find("FAILED\nshout needs a string payload"), std::string::npos) << shout.out;
  auto get = json::parse(taskhost::http_client(url).request("GET", "/api/v3/runs/" + shout.out.substr(0, shout.out.find('\n'))).body);
  EXPECT_EQ(get["attempts"].size(), 1u) << "abort_run is not retried";
}

TEST(ExampleProjectTest, SeedDatabaseMiddlewareExampleBuildsAndRuns) {
  temp_dir tmp;
  auto so = build_example(tmp, "middleware-db", "db_middleware");
  ASSERT_FALSE(so.empty());

  fs::create_directories(tmp / "deploy/plugins");
  fs::copy_file(so, tmp / "deploy/plugins/db_middleware.so");
  tmp.write("deploy/d.yaml", "name: db\nplugins_dir: plugins\nhttp: {listen: '127.0.0.1:0'}\nmiddleware: [db]\n");
  taskhost::test::child_process srv({TASKHOST_BIN, "run", "--config", (tmp / "deploy/d.yaml").string()}, tmp / "log");
  const std::string url = wait_ready_url(srv, tmp / "log");
  ASSERT_FALSE(url.empty());
  auto t = run_command({TASKHOST_BIN, "trigger", "use-db", R"({"sql":"select 1"})", "--wait", "--url", url});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find(R"({"result":"rows for: select 1"})"), std::string::npos) << t.out;
  auto logs = run_command({TASKHOST_BIN, "runs", "logs", t.out.substr(0, t.out.find('\n')), "--url", url});
  auto connect = logs.out.find("Connecting to the database");
  auto disconnect = logs.out.find("Disconnecting from the database");
  EXPECT_NE(connect, std::string::npos) << logs.out;
  EXPECT_NE(disconnect, std::string::npos) << logs.out;
  EXPECT_LT(connect, disconnect);
}

TEST(ExampleProjectTest, CppBackendBuildsAgainstInstalledTaskhostAndTriggersARun) {
  temp_dir tmp;
  ASSERT_TRUE(build_project(tmp, "backend-cpp", true));
  const std::string backend = (tmp / "build/backend").string();
  ASSERT_TRUE(fs::exists(backend));

  taskhost::test::deployment_dir d;
  const std::string key = d.add_key();
  taskhost::test::server s(d);
  auto r = run_command({backend, "Hello from C++"}, 60s, {"TASKHOST_API_URL=" + s.url, "TASKHOST_API_KEY=" + key});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(^triggered run_[0-9a-z]+\n)"))) << r.out;
  EXPECT_NE(r.out.find("COMPLETED {\"echo\":\"Hello from C++\"}\n"), std::string::npos) << r.out;
  // The SDK's variables work too.
  r = run_command({backend}, 60s, {"TRIGGER_API_URL=" + s.url, "TRIGGER_SECRET_KEY=" + key});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("COMPLETED {\"echo\":\"Hello world!\"}\n"), std::string::npos) << r.out;
  // A key the deployment does not know: the API's error, exit 2.
  r = run_command({backend}, 60s, {"TASKHOST_API_URL=" + s.url, "TASKHOST_API_KEY=" + taskhost::generate_api_key(false)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "backend: 401 Invalid API key\n");
}
