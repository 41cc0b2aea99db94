// Middleware with next(): nesting order, what next() reports, locals set by middleware, and every
// way a middleware can misbehave. Real plugins, real actors, real executor.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "actors/deployment_runtime.hpp"
#include "support/in_process.hpp"

using namespace std::chrono_literals;
using taskhost::deployment_runtime;
using taskhost::json;
using taskhost::run_record;
using taskhost::run_status;
namespace fs = std::filesystem;

namespace {

class MiddlewareTest : public ::testing::Test {
protected:
  void use(std::vector<std::string> global, std::vector<std::string> task = {}) {
    for (auto& g : global) cfg_.middleware.push_back({g, {"deploy.yaml", 1, 1}});
    auto& t = cfg_.tasks["mw-task"];
    t.id = "mw-task";
    t.retry = cfg_.default_retry;
    for (auto& m : task) t.middleware.push_back({m, {"deploy.yaml", 2, 1}});
  }

  run_record run(deployment_runtime& rt, json payload = json::object()) {
    taskhost::trigger_input in;
    in.task_id = "mw-task";
    in.payload = std::move(payload);
    return taskhost::test::wait_final(rt, taskhost::test::trigger_run(rt, std::move(in)).run_id);
  }

  static std::vector<std::string> trace(const run_record& r) {
    std::vector<std::string> out;
    for (const auto& l : r.logs) {
      std::string line = std::to_string(l.attempt) + ":" + l.message;
      if (l.attributes.contains("ok")) line += l.attributes["ok"].get<bool>() ? " ok" : " failed";
      out.push_back(line);
    }
    return out;
  }

  taskhost::test::temp_deployment dep_{{taskhost::test::fixture_plugin("fixture_middleware")}, 2};
  taskhost::test::temp_dir& tmp_ = dep_.tmp;
  taskhost::config::deployment& cfg_ = dep_.cfg;
};

using lines = std::vector<std::string>;

}  // namespace

TEST_F(MiddlewareTest, GlobalThenTaskMiddlewareWrapTheRunAndUnwindInReverse) {
  use({"outer"}, {"inner"});
  deployment_runtime rt(cfg_);
  auto r = run(rt);
  ASSERT_EQ(r.status, run_status::completed) << (r.error ? r.error->dump() : "");
  EXPECT_EQ(trace(r), (lines{"1:outer:before", "1:inner:before", "1:run", "1:inner:after ok", "1:outer:after ok"}));
  EXPECT_EQ(*r.output, "set by inner on attempt 1") << "a local set by middleware reaches run";
  std::vector<std::string> stages;
  for (const auto& s : r.attempts[0].stages) stages.push_back(s.name);
  EXPECT_EQ(stages, (lines{"middleware outer", "middleware inner", "run", "middleware inner", "middleware outer"}));
}

TEST_F(MiddlewareTest, NextReportsAFailedAttemptWithoutThrowing) {
  use({"outer"}, {"inner"});
  deployment_runtime rt(cfg_);
  auto r = run(rt, {{"fail", true}});
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 2u);
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "2:outer:after failed"), 1) << "code after next() runs on failure too";
  EXPECT_EQ(r.logs.back().attributes["error"], "run failed");
}

TEST_F(MiddlewareTest, MiddlewareThatNeverCallsNextFailsTheAttemptNamingIt) {
  use({"outer", "no-next"});
  deployment_runtime rt(cfg_);
  auto r = run(rt);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_NE((*r.error)["message"].get<std::string>().find("middleware 'no-next' returned without calling next()"), std::string::npos)
      << r.error->dump();
  EXPECT_EQ((*r.error)["stage"], "middleware no-next");
  auto t = trace(r);
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:run"), 0) << "nothing inside it runs";
  EXPECT_EQ(std::count(t.begin(), t.end(), "1:outer:after failed"), 1) << "the outer middleware still unwinds";
}

TEST_F(MiddlewareTest, CallingNextTwiceIsAnError) {
  use({"twice"});
  deployment_runtime rt(cfg_);
  auto r = run(rt);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ((*r.error)["message"], "next() called twice");
}

TEST_F(MiddlewareTest, ThrowBeforeNextFailsTheAttemptAndIsRetried) {
  use({"throws-before"});
  deployment_runtime rt(cfg_);
  auto r = run(rt);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ((*r.error)["message"], "middleware failed before next");
  EXPECT_EQ((*r.error)["stage"], "middleware throws-before");
}

TEST_F(MiddlewareTest, ThrowAfterNextFailsAnAttemptThatHadSucceeded) {
  use({"throws-after"});
  deployment_runtime rt(cfg_);
  auto r = run(rt);
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ(r.attempts.size(), 2u) << "retried";
  EXPECT_EQ(r.attempts[0].status, taskhost::attempt_status::failed);
  EXPECT_EQ((*r.error)["message"], "middleware failed after next");
}

TEST_F(MiddlewareTest, UnknownMiddlewareNameIsAStartErrorWithItsPosition) {
  use({"outer", "nope"});
  try {
    deployment_runtime rt(cfg_);
    FAIL() << "started with an unknown middleware";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "deploy.yaml:1:1: middleware 'nope' is not provided by any loaded plugin");
  }
}
