#include "runtime/attempt_runner.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"

using nlohmann::json;
using taskhost::attempt_input;
using taskhost::run_attempt;

namespace {

/// The good fixture plugin, loaded once for all tests in this file.
const taskhost::loaded_plugin& good() {
  static taskhost::test::temp_dir tmp;
  static auto p = taskhost::load_plugin(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "fixture_good.so", tmp / "cache");
  return p;
}

const taskhost::loaded_task& task(const std::string& id) {
  for (const auto& t : good().tasks)
    if (t.id == id) return t;
  throw std::runtime_error("no fixture task " + id);
}

taskhost::attempt_outcome run(const std::string& id, const std::string& payload, int attempt = 1) {
  attempt_input in{"run_test", id, attempt, payload};
  return run_attempt(task(id), in);
}

}  // namespace

TEST(AttemptRunnerTest, OutputIsWhatTheTaskReturned) {
  auto o = run("fixture-echo", R"({"a":[1,2]})", 3);
  ASSERT_TRUE(o.ok) << o.json;
  auto j = json::parse(o.json);
  EXPECT_EQ(j["payload"], json::parse(R"({"a":[1,2]})"));
  EXPECT_EQ(j["run"], "run_test");
  EXPECT_EQ(j["attempt"], 3);
}

TEST(AttemptRunnerTest, ThrownExceptionBecomesARetryableErrorWithTypeAndMessage) {
  auto o = run("fixture-throw", "null");
  ASSERT_FALSE(o.ok);
  EXPECT_TRUE(o.retryable);
  auto e = json::parse(o.json);
  EXPECT_EQ(e["message"], "boom: the task failed");
  EXPECT_EQ(e["name"], "std::runtime_error");
  EXPECT_FALSE(e.contains("retry"));
}

TEST(AttemptRunnerTest, AbortRunIsNotRetryable) {
  auto o = run("fixture-abort", "null");
  ASSERT_FALSE(o.ok);
  EXPECT_FALSE(o.retryable);
  EXPECT_EQ(json::parse(o.json)["name"], "AbortTaskRunError");
  EXPECT_EQ(json::parse(o.json)["message"], "stop right there");
}

TEST(AttemptRunnerTest, NonStandardExceptionIsCaughtAtTheBoundary) {
  auto o = run("fixture-throw-int", "null");
  ASSERT_FALSE(o.ok);
  EXPECT_EQ(json::parse(o.json)["name"], "UnknownError");
}

TEST(AttemptRunnerTest, PayloadThatIsNotJsonFailsWithoutRetry) {
  auto o = run("fixture-echo", "{not json");
  ASSERT_FALSE(o.ok);
  EXPECT_FALSE(o.retryable);
  EXPECT_EQ(json::parse(o.json)["name"], "PayloadParseError");
}

TEST(AttemptRunnerTest, VoidTaskOutputsNull) {
  auto o = run("fixture-void", "{}");
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.json, "null");
}

TEST(AttemptRunnerTest, OversizeOutputFailsTheAttempt) {
  attempt_input in{"run_test", "fixture-echo", 1, R"({"big":")" + std::string(5000, 'x') + R"("})"};
  in.max_output_bytes = 1000;
  auto o = run_attempt(task("fixture-echo"), in);
  ASSERT_FALSE(o.ok);
  EXPECT_FALSE(o.retryable);
  EXPECT_NE(json::parse(o.json)["message"].get<std::string>().find("over the limit of 1000 bytes"), std::string::npos);
}

TEST(AttemptRunnerTest, AttemptNumberReachesTheTask) {
  EXPECT_FALSE(run("fixture-flaky", R"({"succeed_on":2})", 1).ok);
  auto o = run("fixture-flaky", R"({"succeed_on":2})", 2);
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(json::parse(o.json)["succeeded_on"], 2);
}

TEST(AttemptRunnerTest, TaskSeesItsCancellationSignal) {
  attempt_input in{"run_test", "fixture-wait-cancel", 1, R"({"max_s":30})"};
  in.token->cancel(TH_CANCEL_TIMED_OUT);
  std::vector<std::string> lines;
  in.on_log = [&](taskhost::log::level, std::string_view msg, const json& attrs) {
    lines.push_back(std::string(msg) + " " + attrs.dump());
  };
  auto o = run_attempt(task("fixture-wait-cancel"), in);
  ASSERT_TRUE(o.ok) << o.json;
  EXPECT_EQ(json::parse(o.json)["fired"], true);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find(R"("reason":2)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(R"("run":"run_test")"), std::string::npos) << "sink gets the tagged attributes";
}

TEST(AttemptRunnerTest, Abi10PluginRunsInANewerHost) {
  static taskhost::test::temp_dir tmp;
  static auto p = taskhost::load_plugin(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "fixture_abi10.so", tmp / "cache");
  int logged = 0;
  attempt_input in{"run_old", "abi10-task", 1, "null"};
  in.on_log = [&](taskhost::log::level, std::string_view msg, const json&) { logged += msg == "from 1.0"; };
  auto o = run_attempt(p.tasks.at(0), in);
  ASSERT_TRUE(o.ok) << o.json;
  EXPECT_EQ(o.json, R"("old but fine")");
  EXPECT_EQ(logged, 1);
}
