// Locals across two plugins: set in one plugin's init hook, used by another plugin's task, read
// again in the first plugin's cleanup hook, kept across attempts, destroyed when the run ends.
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

class LocalsTest : public ::testing::Test {
protected:
  run_record run(deployment_runtime& rt, const std::string& task) {
    taskhost::trigger_input in;
    in.task_id = task;
    in.payload = {{"marker", (tmp_ / "destroyed.txt").string()}};
    return taskhost::test::wait_final(rt, taskhost::test::trigger_run(rt, std::move(in)).run_id);
  }

  taskhost::test::temp_deployment dep_{{taskhost::test::fixture_plugin("fixture_locals_a"), taskhost::test::fixture_plugin("fixture_locals_b")}, 2};
  taskhost::test::temp_dir& tmp_ = dep_.tmp;
  taskhost::config::deployment& cfg_ = dep_.cfg;
};

}  // namespace

TEST_F(LocalsTest, ValueSetByOnePluginIsUsedByAnotherAcrossAttemptsAndDestroyedAtTheEnd) {
  deployment_runtime rt(cfg_);
  auto r = run(rt, "locals-reader");
  ASSERT_EQ(r.status, run_status::completed) << (r.error ? r.error->dump() : "");
  // Attempt 1: init sets n=10, run adds 1 then fails. Attempt 2: init sets n=20 (replacing and
  // destroying the first value), run adds 1.
  EXPECT_EQ(*r.output, json({{"n", 21}, {"set_by", "locals-a"}}));
  std::vector<std::string> cleanup;
  for (const auto& l : r.logs)
    if (l.message == "cleanup sees") cleanup.push_back(std::to_string(l.attempt) + ":" + l.attributes["n"].dump());
  EXPECT_EQ(cleanup, (std::vector<std::string>{"1:11", "2:21"})) << "hooks and run share one object";
  rt.shutdown();  // the value's destructor runs on an executor thread; wait for it
  EXPECT_EQ(taskhost::test::read_text(tmp_ / "destroyed.txt"), "destroyed n=11\ndestroyed n=21\n");
}

TEST_F(LocalsTest, ReadingAsAnotherTypeIsAnErrorNamingBothTypes) {
  deployment_runtime rt(cfg_);
  auto r = run(rt, "locals-wrong-type");
  EXPECT_EQ(r.status, run_status::failed);
  auto msg = (*r.error)["message"].get<std::string>();
  EXPECT_NE(msg.find("local 'counter' holds a value of type shared_counter"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not int (4 bytes)"), std::string::npos) << msg;
}

TEST_F(LocalsTest, MissingLocalIsAnErrorNamingTheKey) {
  deployment_runtime rt(cfg_);
  auto r = run(rt, "locals-missing");
  EXPECT_EQ(r.status, run_status::failed);
  EXPECT_EQ((*r.error)["message"], "local 'nope' is not set");
}
