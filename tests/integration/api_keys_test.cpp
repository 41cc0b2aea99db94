// End to end: API keys through the real binary — `taskhost keys create|list|revoke|generate` on a
// stopped and on a running server, every route of README's HTTP API table refused without an
// active key, keys from auth.keys_file and auth.keys_from_env, the loopback-only default, and the
// CLI's client commands sending --key / $TASKHOST_API_KEY / $TRIGGER_SECRET_KEY.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <thread>

#include "runtime/api_keys.hpp"
#include "runtime/http_client.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::http_client;
using taskhost::test::child_process;
using taskhost::test::command_result;
using taskhost::test::deployment_dir;
using taskhost::test::run_command;
using taskhost::test::server;
namespace fs = std::filesystem;

namespace {

const std::string bin = TASKHOST_BIN;

command_result keys_cmd(const deployment_dir& d, std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), {bin, "keys"});
  args.push_back("--config");
  args.push_back(d.config().string());
  return run_command(args, 60s, env);
}

/// `taskhost keys create`: the key (stdout's only line) and its id (from stderr).
std::pair<std::string, std::string> create_key(const deployment_dir& d, const std::string& name = "") {
  std::vector<std::string> args = {"create"};
  if (!name.empty()) args.insert(args.end(), {"--name", name});
  auto r = keys_cmd(d, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::string key = r.out.substr(0, r.out.find('\n'));
  EXPECT_TRUE(std::regex_match(key, std::regex("tr_dev_[0-9A-Za-z]{32}"))) << r.out;
  EXPECT_EQ(r.out, key + "\n") << "the key alone on stdout";
  EXPECT_TRUE(std::regex_search(r.err, m, std::regex("created API key (key_[1-9a-km-z]{21})"))) << r.err;
  return {key, m.size() > 1 ? m[1].str() : ""};
}

int status_of(const std::string& url, const std::string& method, const std::string& path, const std::string& key = "") {
  http_client c(url);
  if (!key.empty()) c.set_default_header("authorization", "Bearer " + key);
  return c.request(method, path, method == "GET" || method == "DELETE" ? "" : "{}").status;
}

/// Polls until `method path` with `key` answers `want`; how long that took (nullopt after `limit`).
std::optional<std::chrono::milliseconds> time_until(const std::string& url, const std::string& key, int want,
                                                    std::chrono::milliseconds limit = 5s) {
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (status_of(url, "GET", "/api/v1/runs", key) == want) return took;
    if (took > limit) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

/// Every `METHOD /path` of README's HTTP API table, with `{placeholders}` filled in.
std::vector<std::pair<std::string, std::string>> readme_routes() {
  const std::string readme = taskhost::test::read_text(fs::path(TASKHOST_SOURCE_DIR) / "README.md");
  auto start = readme.find("## HTTP API");
  auto end = readme.find("\n## ", start + 1);
  std::istringstream section(readme.substr(start, end - start));
  std::vector<std::pair<std::string, std::string>> out;
  static const std::regex row(R"(^\| `((?:[A-Z]+ \\\| )*[A-Z]+) (/[^` ]*)`)");
  static const std::regex method(R"([A-Z]+)");
  static const std::regex placeholder(R"(\{[A-Za-z]+\})");
  for (std::string line; std::getline(section, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    const std::string path = std::regex_replace(m[2].str(), placeholder, "x1");
    const std::string methods = m[1].str();
    for (auto it = std::sregex_iterator(methods.begin(), methods.end(), method); it != std::sregex_iterator(); ++it)
      out.emplace_back(it->str(), path);
  }
  return out;
}

}  // namespace

TEST(ApiKeysTest, KeysCreateOnAStoppedDeploymentThenOnlyThatKeyGetsIn) {
  deployment_dir d;
  ASSERT_FALSE(fs::exists(d.tmp / ".taskhost/runs.db"));
  auto [key, id] = create_key(d, "ci");
  EXPECT_TRUE(fs::exists(d.tmp / ".taskhost/runs.db")) << "the store is made as `run` would";
  auto list = keys_cmd(d, {"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(id), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("ci"), std::string::npos);
  EXPECT_NE(list.out.find(key.substr(0, 12) + "…"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(key), std::string::npos) << "never the key";
  EXPECT_EQ(list.out.find(key.substr(0, 13)), std::string::npos) << "no more of it than its first 12 characters";
  auto as_json = json::parse(keys_cmd(d, {"list", "--json"}).out);
  ASSERT_EQ(as_json.size(), 1u);
  EXPECT_EQ(as_json[0]["id"], id);
  EXPECT_EQ(as_json[0]["name"], "ci");
  EXPECT_EQ(as_json[0]["active"], true);
  EXPECT_EQ(as_json.dump().find(key), std::string::npos);
  // The store holds the key's SHA-256, not the key.
  EXPECT_EQ(taskhost::test::read_text(d.tmp / ".taskhost/runs.db").find(key), std::string::npos);

  server s(d);
  EXPECT_EQ(s.log().find("no API key is configured"), std::string::npos) << s.log();
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs"), 401);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", key), 200);
  EXPECT_EQ(status_of(s.url, "POST", "/api/v1/tasks/hello-world/trigger", key), 200);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", taskhost::generate_api_key(false)), 401);
  // The access log names the key that made a request — its name, never the key.
  std::string log;
  for (int i = 0; i < 100 && log.find("key=ci") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
    log = s.log();
  }
  EXPECT_NE(log.find("path=/api/v1/runs status=200"), std::string::npos) << log;
  EXPECT_NE(log.find("key=ci"), std::string::npos) << log;
  EXPECT_EQ(log.find(key), std::string::npos) << "never the key";
}

TEST(ApiKeysTest, KeysCreateAndRevokeOnARunningServerTakeEffectWithinASecond) {
  deployment_dir d;
  server s(d);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs"), 200) << "no key yet: open on loopback";
  auto [key, id] = create_key(d, "late");  // the server holds the store's lock meanwhile
  auto took = time_until(s.url, "", 401);
  ASSERT_TRUE(took) << "a key exists, yet requests without one still get in";
  EXPECT_LE(*took, 1500ms);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", key), 200) << "the new key works";
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", taskhost::generate_api_key(false)), 401);

  auto [second, second_id] = create_key(d);
  ASSERT_TRUE(time_until(s.url, second, 200));
  auto r = keys_cmd(d, {"revoke", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, id + " revoked\n");
  took = time_until(s.url, key, 401);
  ASSERT_TRUE(took) << "the revoked key kept working";
  EXPECT_LE(*took, 1500ms);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", second), 200) << "the other key still works";

  // Revoking the last key does not reopen the API.
  EXPECT_EQ(keys_cmd(d, {"revoke", second_id}).exit_code, 0);
  ASSERT_TRUE(time_until(s.url, second, 401));
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs"), 401);

  r = keys_cmd(d, {"revoke", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, id + " was already revoked\n");
  r = keys_cmd(d, {"revoke", "key_nosuchkey"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("taskhost: keys revoke: no key key_nosuchkey in "), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto list = keys_cmd(d, {"list"});
  std::istringstream lines(list.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) EXPECT_NE(line.find("  REVOKED 20"), std::string::npos) << line;
  EXPECT_EQ(n, 2) << list.out;
}

TEST(ApiKeysTest, EveryRouteOfTheReadmeAnswers401WithoutAnActiveKey) {
  deployment_dir d;
  const std::string key = d.add_key();
  auto [revoked, revoked_id] = create_key(d, "old");
  ASSERT_EQ(keys_cmd(d, {"revoke", revoked_id}).exit_code, 0);
  server s(d);
  auto routes = readme_routes();
  ASSERT_GE(routes.size(), 25u) << "README's HTTP API table was not found";
  const std::string wrong = taskhost::generate_api_key(false);
  for (auto [method, path] : routes) {
    if (path == "/healthz" || path == "/api/v1/timezones") {
      EXPECT_EQ(status_of(s.url, method, path), 200) << path << " stays open";
      continue;
    }
    // The documented method, and GET and POST on each path.
    for (const std::string& m : {method, std::string("GET"), std::string("POST")}) {
      const std::string what = m + " " + path;
      for (const std::string& auth : std::vector<std::string>{"", "Bearer " + wrong, "Bearer " + revoked, "Bearer", "Basic " + key, key,
                                      "Bearer " + key.substr(0, 20)}) {
        http_client c(s.url);
        auto r = c.request(m, path, m == "GET" ? "" : "{}", auth.empty() ? std::map<std::string, std::string>{}
                                                                         : std::map<std::string, std::string>{{"authorization", auth}});
        EXPECT_EQ(r.status, 401) << what << " with '" << auth.substr(0, 12) << "...'";
        EXPECT_EQ(r.headers["x-should-retry"], "false") << what;
        auto body = json::parse(r.body, nullptr, false);
        EXPECT_TRUE(body.is_object() && body["error"].is_string()) << what << ": " << r.body;
      }
      for (const std::string& q : {"?key=", "?apiKey=", "?token=", "?access_token=", "?authorization=Bearer%20"})
        EXPECT_EQ(status_of(s.url, m, path + q + key), 401) << what << " with the key in " << q;
      EXPECT_NE(status_of(s.url, m, path, key), 401) << what << " with the key";
    }
  }
  EXPECT_EQ(status_of(s.url, "GET", "/healthz"), 200);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/timezones?excludeUtc=true"), 200);
  EXPECT_EQ(status_of(s.url, "GET", "//api/v1/runs"), 401);
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/no-such-route"), 401) << "401 before 404: deny by default";
  // The tests' own helpers send the key.
  EXPECT_EQ(s.wait_final(s.trigger("hello-world", {{"message", "hi"}}))["status"], "COMPLETED");
}

TEST(ApiKeysTest, KeysFileAndVariableKeysWorkAndNameTheirProblems) {
  deployment_dir d;
  const std::string file_key = d.add_key("from-file");
  const std::string env_key = taskhost::generate_api_key(true);
  std::ofstream(d.config(), std::ios::app) << "  keys_from_env: [TASKHOST_TEST_ENV_KEY]\n";
  {
    server s(d, "server.log", {"TASKHOST_TEST_ENV_KEY=" + env_key});
    EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", file_key), 200);
    EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", env_key), 200);
    EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs"), 401);
    EXPECT_EQ(s.log().find("can be read by its group or others"), std::string::npos) << s.log();
  }
  // Unset variable: the start is refused, naming it.
  auto r = run_command({bin, "run", "--config", d.config().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("auth.keys_from_env: environment variable TASKHOST_TEST_ENV_KEY is not set or empty"), std::string::npos) << r.err;
  r = run_command({bin, "run", "--config", d.config().string()}, 60s, {"TASKHOST_TEST_ENV_KEY=tr_dev_x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("TASKHOST_TEST_ENV_KEY does not hold an API key"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("tr_dev_x"), std::string::npos) << "the value is never shown";
  // A malformed line: file:line, and `validate` says the same.
  d.tmp.write("keys", "# keys\nfrom-file: " + file_key + "\nnot a key\n");
  for (const std::string cmd : {"run", "validate"}) {
    r = run_command({bin, cmd, "--config", d.config().string()}, 60s, {"TASKHOST_TEST_ENV_KEY=" + env_key});
    EXPECT_EQ(r.exit_code, 2) << cmd;
    EXPECT_NE(r.err.find((d.tmp / "keys").string() + ":3: not an API key"), std::string::npos) << cmd << ": " << r.err;
  }
  fs::remove(d.tmp / "keys");
  r = run_command({bin, "run", "--config", d.config().string()}, 60s, {"TASKHOST_TEST_ENV_KEY=" + env_key});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find((d.tmp / "keys").string() + ": cannot read the keys file"), std::string::npos) << r.err;
  // Readable by others: a warning, and it still serves.
  d.tmp.write("keys", file_key + "\n");
  fs::permissions(d.tmp / "keys", fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  server s(d, "server2.log", {"TASKHOST_TEST_ENV_KEY=" + env_key});
  EXPECT_NE(s.log().find("can be read by its group or others (mode 0604)"), std::string::npos) << s.log();
  EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs", file_key), 200);
}

TEST(ApiKeysTest, AKeyInTheYamlIsAConfigError) {
  deployment_dir d("auth:\n  keys: [" + taskhost::generate_api_key(false) + "]\n");
  auto r = run_command({bin, "run", "--config", d.config().string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("keys never go in the YAML; use auth.keys_file or auth.keys_from_env"), std::string::npos) << r.err;
}

TEST(ApiKeysTest, WithoutKeysOnlyLoopbackIsServedAndTheServerSaysSo) {
  deployment_dir d;
  {
    server s(d);
    EXPECT_NE(s.log().find("no API key is configured: the HTTP API answers every process on this machine"), std::string::npos)
        << s.log();
    EXPECT_EQ(status_of(s.url, "GET", "/api/v1/runs"), 200);
    EXPECT_EQ(status_of(s.url, "POST", "/api/v1/tasks/hello-world/trigger"), 200);
  }
  // Another address without keys: refused before anything runs.
  d.tmp.write("open.yaml", "name: open\nplugins_dir: plugins\nhttp: {listen: \"0.0.0.0:0\"}\n");
  auto r = run_command({bin, "run", "--config", (d.tmp / "open.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "") << "it never served";
  const std::string refusal = "taskhost: " + (d.tmp / "open.yaml").string() +
                              ": http.listen is 0.0.0.0:0, not a loopback address, and no API key is configured: anyone who "
                              "reaches it could run tasks. Create a key (taskhost keys create --config " +
                              (d.tmp / "open.yaml").string() + "), or name keys with auth.keys_file or auth.keys_from_env, or "
                              "listen on 127.0.0.1\n";
  EXPECT_NE(r.err.find(refusal), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("recovered unfinished runs"), std::string::npos) << "refused before recovery: " << r.err;
  // With a key it serves there (reached here through loopback only).
  d.tmp.write("open-keys", taskhost::generate_api_key(false) + "\n");
  fs::permissions(d.tmp / "open-keys", fs::perms::owner_read | fs::perms::owner_write);
  d.tmp.write("open.yaml", "name: open\nplugins_dir: plugins\nhttp: {listen: \"0.0.0.0:0\"}\nauth: {keys_file: open-keys}\n");
  child_process p({bin, "run", "--config", (d.tmp / "open.yaml").string()}, d.tmp / "open.log");
  auto line = p.read_line(20s);
  ASSERT_TRUE(line) << taskhost::test::read_text(d.tmp / "open.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*line, m, std::regex(R"(http://0\.0\.0\.0:(\d+))"))) << *line;
  const std::string url = "http://127.0.0.1:" + m[1].str();
  EXPECT_EQ(status_of(url, "GET", "/api/v1/runs"), 401);
  EXPECT_EQ(status_of(url, "GET", "/healthz"), 200);
}

TEST(ApiKeysTest, ClientCommandsSendTheKeyFromFlagOrEnvironment) {
  deployment_dir d;
  const std::string key = d.add_key();
  server s(d);
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& env) {
    args.insert(args.begin(), bin);
    args.push_back("--url");
    args.push_back(s.url);
    return run_command(args, 60s, env);
  };
  auto r = with({"trigger", "hello-world", R"({"message":"hi"})", "--wait", "--key", key}, {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("COMPLETED"), std::string::npos);
  EXPECT_EQ(with({"runs", "list"}, {"TASKHOST_API_KEY=" + key}).exit_code, 0);
  EXPECT_EQ(with({"queues", "list"}, {"TRIGGER_SECRET_KEY=" + key}).exit_code, 0);
  EXPECT_EQ(with({"schedules", "list"}, {"TASKHOST_API_KEY=" + key, "TRIGGER_SECRET_KEY=tr_dev_wrong"}).exit_code, 0)
      << "TASKHOST_API_KEY comes first";
  EXPECT_EQ(with({"tokens", "list", "--key", key}, {"TASKHOST_API_KEY=tr_dev_wrong"}).exit_code, 0) << "--key comes first";
  r = with({"runs", "list"}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("runs list: 401 Missing Authorization header"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pass --key, or set $TASKHOST_API_KEY or $TRIGGER_SECRET_KEY"), std::string::npos) << r.err;
  r = with({"runs", "get", "run_x"}, {"TASKHOST_API_KEY=" + taskhost::generate_api_key(false)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("401 Invalid API key"), std::string::npos) << r.err;
  EXPECT_EQ(s.cli({"runs", "list"}).exit_code, 0) << "the test server's cli() sends its key";
}

TEST(ApiKeysTest, KeysGenerateStoresNothingAndKeysCommandsReportProblemsOnOneLine) {
  deployment_dir d;
  auto a = run_command({bin, "keys", "generate"});
  auto b = run_command({bin, "keys", "generate", "--prod"});
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_TRUE(std::regex_match(a.out, std::regex("tr_dev_[0-9A-Za-z]{32}\n"))) << a.out;
  EXPECT_TRUE(std::regex_match(b.out, std::regex("tr_prod_[0-9A-Za-z]{32}\n"))) << b.out;
  EXPECT_NE(a.out, run_command({bin, "keys", "generate"}).out);
  auto list = keys_cmd(d, {"list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out, "no keys (taskhost keys create makes one)\n");
  // A prod key made by create works like any other.
  auto created = keys_cmd(d, {"create", "--prod"});
  EXPECT_TRUE(std::regex_match(created.out, std::regex("tr_prod_[0-9A-Za-z]{32}\n"))) << created.out;
  // Problems: one line on stderr, exit 2.
  d.tmp.write("memory.yaml", "name: m\nplugins_dir: plugins\nstore: {path: \":memory:\"}\n");
  auto r = run_command({bin, "keys", "list", "--config", (d.tmp / "memory.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("keeps nothing, so it cannot hold API keys; use auth.keys_file or auth.keys_from_env"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_command({bin, "keys", "create", "--config", (d.tmp / "nope.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nope.yaml: cannot read the file"), std::string::npos) << r.err;
  r = run_command({bin, "keys", "revoke", "--config", d.config().string()});
  EXPECT_EQ(r.exit_code, 2) << "the id is required";
}
