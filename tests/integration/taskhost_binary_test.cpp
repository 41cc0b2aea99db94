// End to end: the real taskhost binary on a free port, with real plugins in a temp deployment,
// driven over HTTP and through its own CLI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <unistd.h>

#include <taskhost/plugin_abi.h>

#include "runtime/cpu_latency.hpp"
#include "runtime/http_client.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using taskhost::http_client;
using taskhost::test::child_process;
using taskhost::test::command_result;
using taskhost::test::run_command;
using taskhost::test::temp_dir;
namespace fs = std::filesystem;

namespace {
const std::string bin = TASKHOST_BIN;
using taskhost::test::deployment_dir;
using taskhost::test::server;
}  // namespace

TEST(TaskhostBinaryTest, HelloWorldOverHttpCompletesWithItsOutput) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  // The README's curl command.
  auto r = c.request("POST", "/api/v1/tasks/hello-world/trigger", R"({"payload":{"message":"hi"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto handle = json::parse(r.body);
  std::string id = handle["id"];
  EXPECT_TRUE(std::regex_match(id, std::regex("run_[1-9a-km-z]{21}"))) << id;
  EXPECT_FALSE(r.headers["x-trigger-jwt"].empty());
  auto run = s.wait_final(id);
  EXPECT_EQ(run["status"], "COMPLETED");
  EXPECT_EQ(run["output"], json({{"echo", "hi"}}));
  EXPECT_EQ(run["payload"], json({{"message", "hi"}}));
  EXPECT_EQ(run["taskIdentifier"], "hello-world");
  EXPECT_EQ(run["isSuccess"], true);
  EXPECT_EQ(run["attempts"].size(), 1u);
  // The task's log line reached the runtime's log, tagged with the run.
  EXPECT_NE(s.log().find("greeting"), std::string::npos);
  EXPECT_NE(s.log().find("run=" + id), std::string::npos);
}

// power.cpu_latency_us: the kernel holds the request while taskhost runs — where this user may
// write /dev/cpu_dma_latency (root) — and otherwise taskhost says why it runs without it.
TEST(TaskhostBinaryTest, PowerCpuLatencyIsHeldWhileItRunsOrWhyNotIsLogged) {
  deployment_dir d("power:\n  cpu_latency_us: 0\n");
  const char* dev = taskhost::cpu_latency_request::default_device;
  const bool may = ::access(dev, R_OK | W_OK) == 0;
  server s(d);
  const auto log = s.log();
  if (may) {
    EXPECT_NE(log.find("cpu latency request held"), std::string::npos) << log;
    EXPECT_NE(log.find("cpu_latency_us=0"), std::string::npos) << log;
    EXPECT_EQ(taskhost::cpu_latency_request::current(dev), 0) << "the lowest request held is taskhost's 0";
  } else {
    EXPECT_NE(log.find("power.cpu_latency_us: the CPU latency request could not be made"), std::string::npos) << log;
    EXPECT_NE(log.find(dev), std::string::npos) << log;
  }
  // Either way the deployment serves.
  http_client c(s.url);
  auto r = c.request("POST", "/api/v1/tasks/hello-world/trigger", R"({"payload":{"message":"hi"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.wait_final(json::parse(r.body)["id"])["status"], "COMPLETED");
  s.proc.signal(SIGTERM);
  EXPECT_EQ(s.proc.wait_exit(20s), 0);
}

TEST(TaskhostBinaryTest, SdkEncodedPayloadReachesTheTaskAsJson) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  auto r = c.request("POST", "/api/v1/tasks/hello-world/trigger",
                     R"({"payload":"{\"json\":{\"message\":\"Hello world!\"}}","options":{"payloadType":"application/super+json","payloadSize":35}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto run = s.wait_final(json::parse(r.body)["id"]);
  EXPECT_EQ(run["output"], json({{"echo", "Hello world!"}}));
}

TEST(TaskhostBinaryTest, BrokenPluginsAreRefusedWithReasonsAndTheRestServe) {
  deployment_dir d;
  server s(d);
  auto log = s.log();
  EXPECT_NE(log.find("x.so reason=\"not an ELF shared library"), std::string::npos) << log;
  EXPECT_NE(log.find("no_entry.so reason=\"no entry symbol"), std::string::npos) << log;
  EXPECT_NE(log.find("wrong_major.so reason=\"built for another plugin ABI"), std::string::npos) << log;
  EXPECT_NE(log.find("zz_duplicate.so reason=\"task id 'fixture-echo' is already declared by"), std::string::npos) << log;
  auto run = s.wait_final(json::parse(http_client(s.url).request("POST", "/api/v1/tasks/fixture-echo/trigger", R"({"payload":7})").body)["id"]);
  EXPECT_EQ(run["output"]["payload"], 7) << "fixture-echo is served by the first plugin that declared it";
}

TEST(TaskhostBinaryTest, FailingTaskEndsFailedWithItsMessage) {
  deployment_dir d;
  server s(d);
  auto r = http_client(s.url).request("POST", "/api/v1/tasks/fixture-throw/trigger", "{}");
  auto run = s.wait_final(json::parse(r.body)["id"]);
  EXPECT_EQ(run["status"], "FAILED");
  EXPECT_EQ(run["error"]["message"], "boom: the task failed");
  EXPECT_EQ(run["attempts"].size(), 2u) << "defaults.retry.max_attempts from the YAML";
  EXPECT_FALSE(run.contains("output"));
}

TEST(TaskhostBinaryTest, BadRequestsGetClearErrors) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  auto unknown = c.request("POST", "/api/v1/tasks/no-such-task/trigger", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["error"], "Task 'no-such-task' not found");
  EXPECT_EQ(unknown.headers["x-should-retry"], "false");
  auto malformed = c.request("POST", "/api/v1/tasks/hello-world/trigger", "{\"payload\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(json::parse(malformed.body)["error"], "request body is not valid JSON");
  auto not_json_payload = c.request("POST", "/api/v1/tasks/hello-world/trigger",
                                    R"({"payload":"{nope","options":{"payloadType":"application/json"}})");
  EXPECT_EQ(not_json_payload.status, 400);
  auto big = c.request("POST", "/api/v1/tasks/hello-world/trigger", R"({"payload":")" + std::string(3200000, 'x') + R"("})");
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(json::parse(big.body)["error"].get<std::string>().find("over the limit"), std::string::npos);
  auto huge = c.request("POST", "/api/v1/tasks/hello-world/trigger", std::string(5 << 20, ' '));
  EXPECT_EQ(huge.status, 413);
  http_client c2(s.url);
  auto no_run = c2.request("GET", "/api/v3/runs/run_doesnotexist");
  EXPECT_EQ(no_run.status, 404);
  EXPECT_EQ(json::parse(no_run.body)["error"], "Run not found: run_doesnotexist");
  auto no_route = c2.request("GET", "/api/v9/nothing");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_EQ(no_route.headers["x-should-retry"], "false");
  EXPECT_EQ(c2.request("GET", "/api/v1/tasks/hello-world/trigger").status, 405);
  auto encoded = c2.request("POST", "/api/v1/tasks/hello%2Dworld/trigger", R"({"payload":{"message":"enc"}})");
  EXPECT_EQ(encoded.status, 200) << "task ids arrive encodeURIComponent-ed";
}

TEST(TaskhostBinaryTest, CliTriggersWaitsAndShowsRuns) {
  deployment_dir d;
  server s(d);
  // The README's commands.
  auto t = s.cli({"trigger", "hello-world", R"({"message":"Hello world!"})", "--wait"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  std::istringstream out(t.out);
  std::string id, status, output;
  std::getline(out, id);
  std::getline(out, status);
  std::getline(out, output);
  EXPECT_EQ(id.rfind("run_", 0), 0u) << t.out;
  EXPECT_EQ(status, "COMPLETED");
  EXPECT_EQ(json::parse(output), json({{"echo", "Hello world!"}}));

  auto g = s.cli({"runs", "get", id});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.out.find("status   COMPLETED"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(R"(output   {"echo":"Hello world!"})"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("attempt 1  COMPLETED"), std::string::npos) << g.out;
  auto gj = s.cli({"runs", "get", id, "--json"});
  EXPECT_EQ(json::parse(gj.out)["id"], id);

  auto nowait = s.cli({"trigger", "hello-world", R"({"message":"x"})", "--tag", "user:1"});
  EXPECT_EQ(nowait.exit_code, 0);
  auto tagged = s.wait_final(nowait.out.substr(0, nowait.out.find('\n')));
  EXPECT_EQ(tagged["tags"], json::array({"user:1"}));
}

TEST(TaskhostBinaryTest, CancelAndLogsOverHttpAndCli) {
  deployment_dir d;
  server s(d);
  http_client c(s.url);
  std::string id = json::parse(c.request("POST", "/api/v1/tasks/fixture-wait-cancel/trigger", R"({"payload":{"max_s":30}})").body)["id"];
  while (s.get_run(id)["status"] != "EXECUTING") std::this_thread::sleep_for(2ms);
  auto cancel = s.cli({"runs", "cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(cancel.out, id + " CANCELED\n");
  auto run = s.get_run(id);
  EXPECT_EQ(run["status"], "CANCELED");
  EXPECT_EQ(run["isCancelled"], true);
  EXPECT_EQ(run["attempts"][0]["status"], "CANCELED");
  // The woken task logs why it woke; its lines stay readable after the run ended.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::string logs;
  while (logs.find("woke") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    logs = s.cli({"runs", "logs", id}).out;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(logs.find("info [attempt 1] waiting for the signal"), std::string::npos) << logs;
  EXPECT_NE(logs.find("woke cancelled=true fired=true reason=1"), std::string::npos) << logs;
  auto api_logs = json::parse(c.request("GET", "/api/v1/runs/" + id + "/logs").body);
  EXPECT_EQ(api_logs["data"][0]["message"], "waiting for the signal");

  auto http_cancel = c.request("POST", "/api/v2/runs/" + id + "/cancel");
  EXPECT_EQ(http_cancel.status, 200) << "cancelling a finished run is a no-op";
  EXPECT_EQ(json::parse(http_cancel.body), json({{"id", id}}));
  EXPECT_EQ(c.request("POST", "/api/v2/runs/run_nope/cancel").status, 404);
  EXPECT_EQ(c.request("GET", "/api/v1/runs/run_nope/logs").status, 404);
  auto missing = s.cli({"runs", "cancel", "run_nope"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("404 Run not found: run_nope"), std::string::npos);
}

TEST(TaskhostBinaryTest, YamlMaxDurationTimesOutARun) {
  deployment_dir d("tasks:\n  fixture-wait-cancel: {max_duration: 5s}\n");
  server s(d);
  auto t = s.cli({"trigger", "fixture-wait-cancel", R"({"max_s":60})", "--wait"});
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.out.find("TIMED_OUT\nattempt 1 ran past its max duration"), std::string::npos) << t.out;
  auto bad = s.cli({"trigger", "fixture-echo", "{}", "--max-duration", "2"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("options.maxDuration must be a number of seconds, at least 5"), std::string::npos) << bad.err;
}

TEST(TaskhostBinaryTest, RunsGetShowsEachAttemptsStages) {
  deployment_dir d;
  fs::copy_file(deployment_dir::fixture("fixture_hooks"), d.tmp / "plugins/fixture_hooks.so");
  server s(d);
  auto t = s.cli({"trigger", "hooks-flaky", "{}", "--wait"});
  ASSERT_EQ(t.exit_code, 0) << t.out << t.err;
  std::string id = t.out.substr(0, t.out.find('\n'));
  auto g = s.cli({"runs", "get", id});
  EXPECT_NE(g.out.find("attempt 1  FAILED"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(" init ok on_start ok on_start_attempt ok run FAILED catch_error ok cleanup ok\n"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(" run ok on_success ok on_complete ok cleanup ok\n"), std::string::npos) << g.out;
  auto run = s.get_run(id);
  EXPECT_EQ(run["attempts"][0]["stages"][3], json({{"name", "run"}, {"ok", false}, {"error", run["attempts"][0]["error"]}}));
}

TEST(TaskhostBinaryTest, CliWaitExitsOneOnFailure) {
  deployment_dir d;
  server s(d);
  auto t = s.cli({"trigger", "fixture-throw", "{}", "--wait", "--max-attempts", "1"});
  EXPECT_EQ(t.exit_code, 1) << t.out << t.err;
  EXPECT_NE(t.out.find("FAILED\nboom: the task failed"), std::string::npos) << t.out;
}

TEST(TaskhostBinaryTest, CliClientErrorsAreOneLineAndExitTwo) {
  deployment_dir d;
  server s(d);
  auto unknown = s.cli({"trigger", "nope", "{}"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "taskhost: trigger nope: 404 Task 'nope' not found\n");
  auto bad_json = s.cli({"trigger", "hello-world", "{oops"});
  EXPECT_EQ(bad_json.exit_code, 2);
  EXPECT_NE(bad_json.err.find("the payload is not valid JSON"), std::string::npos);
  auto no_run = s.cli({"runs", "get", "run_missing"});
  EXPECT_EQ(no_run.exit_code, 2);
  EXPECT_NE(no_run.err.find("404 Run not found: run_missing"), std::string::npos);
  auto usage = run_command({bin, "trigger"});
  EXPECT_EQ(usage.exit_code, 2);
}

TEST(TaskhostBinaryTest, CliNamesAnUnreachableServer) {
  auto r = run_command({bin, "trigger", "hello-world", "{}", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot connect to http://127.0.0.1:1"), std::string::npos) << r.err;
  auto env = run_command({bin, "runs", "get", "run_x"}, 30s, {"TASKHOST_URL=http://127.0.0.1:1"});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_NE(env.err.find("http://127.0.0.1:1"), std::string::npos) << "TASKHOST_URL is used: " << env.err;
}

TEST(TaskhostBinaryTest, SigtermMidRunLetsTheAttemptFinishAndExitsZero) {
  deployment_dir d;
  server s(d);
  auto r = http_client(s.url).request("POST", "/api/v1/tasks/fixture-sleep/trigger", R"({"payload":{"ms":800}})");
  std::string id = json::parse(r.body)["id"];
  while (s.get_run(id)["status"] != "EXECUTING") std::this_thread::sleep_for(2ms);
  s.proc.signal(SIGTERM);
  auto code = s.proc.wait_exit(20s);
  ASSERT_TRUE(code.has_value()) << "did not exit";
  EXPECT_EQ(*code, 0);
  auto log = s.log();
  EXPECT_NE(log.find("signal received signal=SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("run completed attempt=1 run=" + id), std::string::npos) << "the attempt finished: " << log;
  EXPECT_NE(log.find("stopped clean=true"), std::string::npos) << log;
}

TEST(TaskhostBinaryTest, SigintAfterTheGracePeriodStillExitsZero) {
  deployment_dir d("shutdown: {grace_period_ms: 200}\n");
  server s(d);
  auto r = http_client(s.url).request("POST", "/api/v1/tasks/fixture-sleep/trigger", R"({"payload":{"ms":60000}})");
  std::string id = json::parse(r.body)["id"];
  while (s.get_run(id)["status"] != "EXECUTING") std::this_thread::sleep_for(2ms);
  auto t0 = std::chrono::steady_clock::now();
  s.proc.signal(SIGINT);
  auto code = s.proc.wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_NE(s.log().find("grace period over"), std::string::npos) << s.log();
}

TEST(TaskhostBinaryTest, ConfigErrorStopsStartWithPositionAndExitTwo) {
  temp_dir tmp;
  tmp.write("bad.yaml", "name: x\nplugins_dir: p\nhttp:\n  lisen: 1.2.3.4:5\n");
  auto r = run_command({bin, "run", "--config", (tmp / "bad.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind((tmp / "bad.yaml").string() + ":4:3: unknown key 'lisen' in http", 0), 0u) << r.err;
  EXPECT_EQ(r.out, "") << "nothing started";
}

TEST(TaskhostBinaryTest, PortInUseIsAClearStartError) {
  deployment_dir d;
  server first(d);
  auto port = first.url.substr(first.url.rfind(':') + 1);
  d.tmp.write("second.yaml", "name: second\nplugins_dir: plugins\nstate_dir: state2\nhttp: {listen: '127.0.0.1:" + port + "'}\n");
  auto r = run_command({bin, "run", "--config", (d.tmp / "second.yaml").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:" + port), std::string::npos) << r.err;
}

TEST(TaskhostBinaryTest, ValidateChecksConfigAndPluginsWithoutStarting) {
  deployment_dir d;
  auto broken = run_command({bin, "validate", "--config", d.config().string()});
  EXPECT_EQ(broken.exit_code, 1) << "refused plugins make validation fail";
  EXPECT_NE(broken.err.find("x.so: refused: not an ELF"), std::string::npos) << broken.err;
  EXPECT_NE(broken.out.find("2 plugin(s), 14 task(s), 4 refused"), std::string::npos) << broken.out;

  temp_dir clean;
  fs::create_directories(clean / "plugins");
  fs::copy_file(fs::path(TASKHOST_PLUGIN_DIR) / "hello.so", clean / "plugins/hello.so");
  clean.write("ok.yaml", "name: ok\nplugins_dir: plugins\ntasks:\n  hello-world: {}\n  typo-task: {}\n");
  auto ok = run_command({bin, "validate", "--config", (clean / "ok.yaml").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("ok — 1 plugin(s), 2 task(s)"), std::string::npos) << ok.out;
  EXPECT_NE(ok.err.find("ok.yaml:5:3: warning: tasks.typo-task configures a task that no plugin provides"), std::string::npos) << ok.err;
  EXPECT_FALSE(fs::exists(clean / ".taskhost")) << "validate writes nothing into the deployment";

  clean.write("mw.yaml", "name: ok\nplugins_dir: plugins\nmiddleware: [nope]\n");
  auto mw = run_command({bin, "validate", "--config", (clean / "mw.yaml").string()});
  EXPECT_EQ(mw.exit_code, 2);
  EXPECT_NE(mw.err.find("mw.yaml:3:14: middleware 'nope' is not provided by any loaded plugin"), std::string::npos) << mw.err;
  auto mw_run = run_command({bin, "run", "--config", (clean / "mw.yaml").string()});
  EXPECT_EQ(mw_run.exit_code, 2);
  EXPECT_NE(mw_run.err.find("mw.yaml:3:14: middleware 'nope' is not provided by any loaded plugin"), std::string::npos) << mw_run.err;
  EXPECT_EQ(mw_run.out, "") << "nothing started";

  clean.write("bad.yaml", "name: ok\nplugins_dir: plugins\nlog: {level: loud}\n");
  auto bad = run_command({bin, "validate", "--config", (clean / "bad.yaml").string()});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bad.yaml:3:14: log.level must be one of"), std::string::npos) << bad.err;
}

TEST(TaskhostBinaryTest, PluginsListShowsPluginsAndTasks) {
  deployment_dir d;
  auto r = run_command({bin, "plugins", "list", "--config", d.config().string()});
  EXPECT_NE(r.out.find("hello 1.0.0  (ABI 1." + std::to_string(TASKHOST_ABI_MINOR)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  hello-world\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  fixture-echo  — returns its payload"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("wrong_major.so: refused"), std::string::npos) << r.err;
  fs::copy_file(deployment_dir::fixture("fixture_middleware"), d.tmp / "plugins/fixture_middleware.so");
  fs::copy_file(deployment_dir::fixture("fixture_hooks_other"), d.tmp / "plugins/fixture_hooks_other.so");
  auto more = run_command({bin, "plugins", "list", "--config", d.config().string()});
  EXPECT_NE(more.out.find("  middleware outer\n"), std::string::npos) << more.out;
  EXPECT_NE(more.out.find("  global hook on_start (other)\n"), std::string::npos) << more.out;
}

TEST(TaskhostBinaryTest, JsonLogFormatWritesOneObjectPerLine) {
  deployment_dir d("log: {format: json, level: debug}\n");
  std::string id;
  {
    server s(d);
    id = json::parse(http_client(s.url).request("POST", "/api/v1/tasks/hello-world/trigger", R"({"payload":{"message":"j"}})").body)["id"];
    s.wait_final(id);
    s.proc.signal(SIGTERM);
    ASSERT_EQ(s.proc.wait_exit(20s), 0);
  }
  std::istringstream lines(taskhost::test::read_text(d.tmp / "server.log"));
  bool saw_greeting = false;
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
    if (j["msg"] == "greeting") {
      saw_greeting = true;
      EXPECT_EQ(j["message"], "j");
      EXPECT_EQ(j["run"], id);
      EXPECT_EQ(j["task"], "hello-world");
      EXPECT_EQ(j["attempt"], 1);
      EXPECT_EQ(j["level"], "info");
    }
  }
  EXPECT_GT(n, 3);
  EXPECT_TRUE(saw_greeting);
}

TEST(TaskhostBinaryTest, VersionAndHelp) {
  auto v = run_command({bin, "--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_TRUE(std::regex_search(v.out, std::regex(R"(taskhost \d+\.\d+\.\d+ \(plugin ABI 1\.\d+\))"))) << v.out;
  // The malloc it runs on: jemalloc with the settings of runtime/malloc/jemalloc_conf.cpp when
  // built with it (they took effect: jemalloc's defaults are false, 10000 and 0).
  if (TASKHOST_JEMALLOC_EXPECTED) {
    EXPECT_TRUE(std::regex_search(v.out, std::regex(R"(malloc: jemalloc 5\.\S+ \(background_thread:true, dirty_decay_ms:100, muzzy_decay_ms:0\))")))
        << v.out;
    // What it prints is read from jemalloc, which MALLOC_CONF still overrides.
    auto o = run_command({bin, "--version"}, std::chrono::seconds(60), {"MALLOC_CONF=dirty_decay_ms:5000"});
    EXPECT_NE(o.out.find("dirty_decay_ms:5000, muzzy_decay_ms:0)"), std::string::npos) << o.out;
  } else
    EXPECT_NE(v.out.find("malloc: the C library's (or a sanitizer's) malloc"), std::string::npos) << v.out;
  auto h = run_command({bin, "--help"});
  EXPECT_EQ(h.exit_code, 0);
  for (auto cmd : {"run", "trigger", "runs", "validate", "plugins"}) EXPECT_NE(h.out.find(cmd), std::string::npos) << cmd;
}
