#include "runtime/run.hpp"

#include <gtest/gtest.h>

#include <functional>

using namespace taskhost;

namespace {

bool contains_null(const json& j) {
  if (j.is_null()) return true;
  if (j.is_structured())
    for (const auto& v : j) if (contains_null(v)) return true;
  return false;
}

run_record sample(run_status s) {
  run_record r;
  r.id = "run_abc";
  r.task_id = "hello-world";
  r.status = s;
  r.payload = {{"message", "hi"}};
  r.created_at = r.updated_at = time_point(std::chrono::milliseconds(1735689600123));
  return r;
}

}  // namespace

TEST(RunTest, TimesAreRfc3339UtcWithMilliseconds) {
  EXPECT_EQ(format_time(time_point(std::chrono::milliseconds(1735689600123))), "2025-01-01T00:00:00.123Z");
  EXPECT_EQ(format_time(time_point{}), "1970-01-01T00:00:00.000Z");
}

TEST(RunTest, StatusNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(run_status::timed_out); ++i) {
    auto s = static_cast<run_status>(i);
    EXPECT_EQ(run_status_from_string(to_string(s)), s);
  }
  EXPECT_FALSE(run_status_from_string("REATTEMPTING"));
  EXPECT_FALSE(is_final(run_status::executing));
  EXPECT_TRUE(is_final(run_status::timed_out));
}

TEST(RunTest, QueuedRunHasRequiredFieldsAndNoNulls) {
  auto j = to_api_json(sample(run_status::queued));
  for (auto key : {"id", "taskIdentifier", "status", "isQueued", "isExecuting", "isWaiting", "isCompleted", "isSuccess",
                   "isFailed", "isCancelled", "isTest", "createdAt", "updatedAt", "tags", "costInCents",
                   "baseCostInCents", "durationMs", "depth", "triggerFunction", "relatedRuns", "attempts"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["status"], "QUEUED");
  EXPECT_EQ(j["isQueued"], true);
  EXPECT_EQ(j["isCompleted"], false);
  EXPECT_EQ(j["createdAt"], "2025-01-01T00:00:00.123Z");
  EXPECT_FALSE(j.contains("output"));
  EXPECT_FALSE(j.contains("startedAt"));
  EXPECT_FALSE(j.contains("finishedAt"));
  EXPECT_FALSE(j.contains("error"));
  EXPECT_FALSE(contains_null(j)) << j.dump();
}

TEST(RunTest, CompletedRunShowsOutputAttemptsAndDuration) {
  auto r = sample(run_status::completed);
  r.output = json{{"echo", "hi"}};
  r.started_at = r.created_at;
  r.finished_at = r.created_at + std::chrono::milliseconds(250);
  r.attempts.push_back({1, attempt_status::completed, r.created_at, r.finished_at, std::nullopt});
  auto j = to_api_json(r);
  EXPECT_EQ(j["output"], json({{"echo", "hi"}}));
  EXPECT_EQ(j["isSuccess"], true);
  EXPECT_EQ(j["isFailed"], false);
  EXPECT_EQ(j["durationMs"], 250);
  EXPECT_EQ(j["attemptCount"], 1);
  EXPECT_EQ(j["attempts"][0]["status"], "COMPLETED");
  EXPECT_EQ(j["finishedAt"], "2025-01-01T00:00:00.373Z");
}

TEST(RunTest, FailedRunShowsErrorAndNoOutput) {
  auto r = sample(run_status::failed);
  r.output = json("left over");  // never shown unless COMPLETED
  r.error = json{{"message", "boom"}, {"name", "std::runtime_error"}};
  auto j = to_api_json(r);
  EXPECT_FALSE(j.contains("output"));
  EXPECT_EQ(j["error"]["message"], "boom");
  EXPECT_EQ(j["isFailed"], true);
  EXPECT_EQ(j["isCompleted"], true);
}

TEST(RunTest, CanceledAndTimedOutRunsAreCompletedAndFailed) {
  for (auto s : {run_status::canceled, run_status::timed_out}) {
    auto j = to_api_json(sample(s));
    EXPECT_EQ(j["isCompleted"], true);
    EXPECT_EQ(j["isFailed"], true);
    EXPECT_EQ(j["isSuccess"], false);
    EXPECT_EQ(j["isCancelled"], s == run_status::canceled);
  }
}

TEST(RunTest, LogsAreKeptUpToTheCapThenMarkedTruncated) {
  auto r = sample(run_status::executing);
  append_log(r, {time_point{}, 1, "info", "hello", json{{"k", 1}}});
  append_log(r, {time_point{}, 2, "warn", "bare", json::object()});
  auto j = logs_to_api_json(r);
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["message"], "hello");
  EXPECT_EQ(j["data"][0]["attributes"]["k"], 1);
  EXPECT_EQ(j["data"][1]["attempt"], 2);
  EXPECT_FALSE(j["data"][1].contains("attributes")) << "no empty attributes, no nulls";
  EXPECT_FALSE(j.contains("truncated"));
  for (size_t i = 0; i < max_log_lines_per_run + 10; ++i) append_log(r, {time_point{}, 1, "info", "x", json::object()});
  EXPECT_EQ(r.logs.size(), max_log_lines_per_run);
  EXPECT_EQ(logs_to_api_json(r)["truncated"], true);
  auto big = sample(run_status::executing);
  append_log(big, {time_point{}, 1, "info", std::string(max_log_bytes_per_run + 1, 'x'), json::object()});
  EXPECT_TRUE(big.logs.empty());
  EXPECT_TRUE(big.logs_truncated);
}

namespace {

/// The store's attempts text as it was written before it was written directly: a document
/// built with nlohmann, then dumped (invalid UTF-8 replaced). The direct writer must give the
/// same bytes, which rows already on disk hold.
std::string attempts_via_document(const std::vector<attempt_record>& attempts) {
  json out = json::array();
  for (const auto& a : attempts) {
    json j = {{"n", a.number}, {"s", to_string(a.status)}, {"t0", to_us(a.started_at)}};
    if (a.finished_at) j["t1"] = to_us(*a.finished_at);
    if (a.error) j["e"] = *a.error;
    if (!a.stages.empty()) {
      json st = json::array();
      for (const auto& s : a.stages) {
        json sj = {{"n", s.name}, {"ok", s.ok}};
        if (s.error) sj["e"] = *s.error;
        st.push_back(std::move(sj));
      }
      j["st"] = std::move(st);
    }
    out.push_back(std::move(j));
  }
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

TEST(RunTest, AttemptsAreStoredAsTheTextOfTheirDocumentAndReadBack) {
  const time_point t0(std::chrono::microseconds(1735689600123456));
  std::vector<std::vector<attempt_record>> cases;
  cases.push_back({});
  cases.push_back({attempt_record{1, attempt_status::executing, t0, std::nullopt, std::nullopt, {}}});
  attempt_record failed{1, attempt_status::failed, t0, t0 + std::chrono::microseconds(731), json{{"message", "boom"}, {"name", "Error"}}, {}};
  attempt_record odd{2, attempt_status::failed, t0 - std::chrono::hours(24 * 365 * 60), t0,
                     json{{"message", "quote \" backslash \\ tab \t nl \n cr \r ctl \x01\x1f del \x7f"}, {"stackTrace", "é ü 日本"}},
                     {}};
  odd.stages.push_back({"middleware:\"db\"\b\f", false, json{{"message", std::string("bad utf-8 \xff\xfe end")}}});
  odd.stages.push_back({"hook:onStart é", true, std::nullopt});
  odd.stages.push_back({std::string("stage \xc3"), true, std::nullopt});  // a lone lead byte
  attempt_record ok{3, attempt_status::completed, t0, t0 + std::chrono::seconds(2), std::nullopt, {{"run", true, std::nullopt}}};
  cases.push_back({failed, odd, ok});
  cases.push_back({attempt_record{-7, attempt_status::canceled, time_point{}, time_point{}, json("just a string"), {}}});
  for (const auto& attempts : cases) {
    const std::string text = attempts_to_storage(attempts);
    EXPECT_EQ(text, attempts_via_document(attempts));
    auto back = attempts_from_storage(json::parse(text));
    ASSERT_EQ(back.size(), attempts.size());
    for (size_t i = 0; i < back.size(); ++i) {
      EXPECT_EQ(back[i].number, attempts[i].number);
      EXPECT_EQ(back[i].status, attempts[i].status);
      EXPECT_EQ(back[i].started_at, attempts[i].started_at);
      EXPECT_EQ(back[i].finished_at, attempts[i].finished_at);
      EXPECT_EQ(back[i].stages.size(), attempts[i].stages.size());
    }
  }
}
