// End to end: cron schedules through the real binary, over HTTP and the CLI, on the real clock
// (6-field crons with seconds keep the waits short) — declarative schedules from the YAML and the
// task definition, imperative ones through the API with Trigger.dev's shapes, the payload each run
// gets, exactly one run per occurrence across kill -9 and restarts, one catch-up after downtime,
// activate / deactivate, and every bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <map>
#include <set>
#include <thread>

#include "runtime/http_client.hpp"
#include "runtime/trigger_request.hpp"
#include "support/process.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;
using taskhost::http_client;
using taskhost::test::deployment_dir;
using taskhost::test::server;

namespace {

deployment_dir schedules_dir(const std::string& yaml) { return deployment_dir(yaml, {"fixture_schedules"}); }


/// The runs of a schedule (newest first), each retrieved in full.
std::vector<json> runs_of(server& s, const std::string& schedule_id) {
  std::vector<json> out;
  auto page = s.api("GET", "/api/v1/runs?page[size]=100&filter[schedule]=" + schedule_id);
  for (const auto& r : page["data"]) out.push_back(s.get_run(r["id"].get<std::string>()));
  return out;
}

/// Waits until the schedule has at least `n` COMPLETED runs; returns them, oldest first.
std::vector<json> wait_runs(server& s, const std::string& schedule_id, size_t n, std::chrono::seconds timeout = 20s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto runs = runs_of(s, schedule_id);
    size_t done = 0;
    for (const auto& r : runs) done += r["status"] == "COMPLETED";
    if (done >= n || std::chrono::steady_clock::now() > deadline) {
      std::reverse(runs.begin(), runs.end());
      return runs;
    }
    std::this_thread::sleep_for(50ms);
  }
}

/// The payload timestamps of runs, with how many runs each has.
std::map<std::string, int> occurrences(const std::vector<json>& runs) {
  std::map<std::string, int> out;
  for (const auto& r : runs) ++out[r["payload"]["timestamp"].get<std::string>()];
  return out;
}

std::string schedule_id_of(server& s, const std::string& task) {
  auto page = s.api("GET", "/api/v1/schedules?perPage=100");
  for (const auto& x : page["data"])
    if (x["task"] == task) return x["id"];
  ADD_FAILURE() << "no schedule for " << task << ": " << page.dump();
  return "";
}

time_t to_time_t(const std::string& iso) {
  auto t = taskhost::parse_iso_time(iso);
  EXPECT_TRUE(t) << iso;
  return std::chrono::system_clock::to_time_t(t.value_or(std::chrono::system_clock::time_point{}));
}

/// A cron (with seconds) that fires once a minute, at the second `ahead` seconds from now (UTC).
/// Also returns the occurrence as an ISO string.
std::pair<std::string, std::string> cron_in(int ahead) {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()) + ahead;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char iso[32];
  std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return {std::to_string(tm.tm_sec) + " " + std::to_string(tm.tm_min) + " * * * *", iso};
}

TEST(SchedulesTest, DeclarativeSchedulesFireWithTheirPayload) {
  auto d = schedules_dir("schedules:\n  - task: sched-echo\n    cron: \"* * * * * *\"\n    timezone: America/New_York\n"
                         "    external_id: team-a\n");
  server s(d);
  auto list = s.api("GET", "/api/v1/schedules");
  ASSERT_EQ(list["data"].size(), 2u) << list.dump();  // the YAML's, and the one sched-declared declares
  EXPECT_EQ(list["pagination"]["count"], 2);
  const std::string yaml_id = schedule_id_of(s, "sched-echo");
  const std::string plugin_id = schedule_id_of(s, "sched-declared");
  auto y = s.api("GET", "/api/v1/schedules/" + yaml_id);
  EXPECT_EQ(y["type"], "DECLARATIVE");
  EXPECT_EQ(y["active"], true);
  EXPECT_EQ(y["timezone"], "America/New_York");
  EXPECT_EQ(y["externalId"], "team-a");
  EXPECT_EQ(y["generator"]["type"], "CRON");
  EXPECT_EQ(y["generator"]["expression"], "* * * * * *");
  EXPECT_TRUE(y["nextRun"].is_string());
  auto p = s.api("GET", "/api/v1/schedules/" + plugin_id);
  EXPECT_EQ(p["generator"]["expression"], "*/2 * * * * *");
  EXPECT_EQ(p["timezone"], "Europe/London");

  auto runs = wait_runs(s, yaml_id, 2);
  ASSERT_GE(runs.size(), 2u);
  for (const auto& r : runs) EXPECT_EQ(r["taskIdentifier"], "sched-echo");
  const auto& first = runs[runs.size() - 2];
  const auto& second = runs.back();
  // The output is the payload as the SDK parsed it: every field came through.
  for (const auto& r : {first, second}) {
    ASSERT_EQ(r["status"], "COMPLETED") << r.dump();
    const auto& out = r["output"];
    EXPECT_EQ(out["timestamp"], r["payload"]["timestamp"]);
    EXPECT_EQ(out["timezone"], "America/New_York");
    EXPECT_EQ(out["scheduleId"], yaml_id);
    EXPECT_EQ(out["externalId"], "team-a");
    EXPECT_EQ(out["type"], "DECLARATIVE");
    ASSERT_EQ(out["upcoming"].size(), 5u);
    EXPECT_EQ(to_time_t(out["upcoming"][0]) - to_time_t(out["timestamp"]), 1);
    EXPECT_EQ(to_time_t(out["upcoming"][4]) - to_time_t(out["timestamp"]), 5);
    EXPECT_NE(out["timestamp"].get<std::string>().find(".000Z"), std::string::npos) << "a whole second";
  }
  EXPECT_EQ(second["output"]["lastTimestamp"], first["output"]["timestamp"]);
  // The run names its schedule, in Trigger.dev's shape.
  EXPECT_EQ(second["scheduleId"], yaml_id);
  EXPECT_EQ(second["schedule"]["id"], yaml_id);
  EXPECT_EQ(second["schedule"]["externalId"], "team-a");
  EXPECT_EQ(second["schedule"]["generator"]["expression"], "* * * * * *");
  // The run was triggered within a second of its occurrence.
  auto created = taskhost::parse_iso_time(second["createdAt"].get<std::string>());
  auto nominal = taskhost::parse_iso_time(second["payload"]["timestamp"].get<std::string>());
  ASSERT_TRUE(created && nominal);
  EXPECT_GE(*created, *nominal);
  EXPECT_LT(*created - *nominal, 1s);
  for (const auto& [ts, n] : occurrences(runs_of(s, yaml_id))) EXPECT_EQ(n, 1) << ts << " has " << n << " runs";
}

TEST(SchedulesTest, ImperativeSchedulesThroughTheApi) {
  auto d = schedules_dir("");
  server s(d);
  json body = {{"task", "sched-echo"}, {"cron", "0 9 * * 1-5"}, {"timezone", "Europe/London"},
               {"externalId", "customer-1"}, {"deduplicationKey", "customer-1-report"}};
  auto a = s.api("POST", "/api/v1/schedules", body);
  const std::string id = a["id"];
  EXPECT_EQ(id.rfind("sched_", 0), 0u) << id;
  EXPECT_EQ(a["type"], "IMPERATIVE");
  EXPECT_EQ(a["task"], "sched-echo");
  EXPECT_EQ(a["active"], true);
  EXPECT_EQ(a["deduplicationKey"], "customer-1-report");
  EXPECT_EQ(a["externalId"], "customer-1");
  EXPECT_EQ(a["timezone"], "Europe/London");
  EXPECT_EQ(a["generator"]["expression"], "0 9 * * 1-5");
  EXPECT_TRUE(a["environments"].is_array());
  ASSERT_TRUE(a["nextRun"].is_string());
  // 09:00 in London is 08:00 or 09:00 UTC, on a weekday.
  auto next = to_time_t(a["nextRun"]);
  std::tm tm{};
  gmtime_r(&next, &tm);
  EXPECT_TRUE(tm.tm_hour == 8 || tm.tm_hour == 9) << a["nextRun"];
  EXPECT_EQ(tm.tm_min, 0);
  EXPECT_TRUE(tm.tm_wday >= 1 && tm.tm_wday <= 5);

  // The same deduplicationKey updates that schedule.
  body["cron"] = "30 10 * * *";
  auto b = s.api("POST", "/api/v1/schedules", body);
  EXPECT_EQ(b["id"], id);
  EXPECT_EQ(b["generator"]["expression"], "30 10 * * *");
  // Another key (or none) is another schedule.
  auto other = s.api("POST", "/api/v1/schedules", {{"task", "sched-echo"}, {"cron", "* * * * *"}});
  EXPECT_NE(other["id"], id);
  EXPECT_TRUE(other["deduplicationKey"].is_null());
  EXPECT_TRUE(other["externalId"].is_null());
  EXPECT_EQ(other["timezone"], "UTC");

  // Pages: 3 schedules (with sched-declared's), one per page.
  auto page = s.api("GET", "/api/v1/schedules?perPage=1&page=2");
  EXPECT_EQ(page["data"].size(), 1u);
  EXPECT_EQ(page["pagination"]["currentPage"], 2);
  EXPECT_EQ(page["pagination"]["totalPages"], 3);
  EXPECT_EQ(page["pagination"]["count"], 3);

  // PUT: a full replacement.
  auto u = s.api("PUT", "/api/v1/schedules/" + id, {{"task", "sched-echo"}, {"cron", "0 0 1 * *"}, {"timezone", "Asia/Tokyo"}});
  EXPECT_EQ(u["generator"]["expression"], "0 0 1 * *");
  EXPECT_EQ(u["timezone"], "Asia/Tokyo");
  EXPECT_TRUE(u["externalId"].is_null());
  EXPECT_EQ(u["deduplicationKey"], "customer-1-report");
  EXPECT_EQ(s.api("GET", "/api/v1/schedules/" + id)["timezone"], "Asia/Tokyo");

  auto off = s.api("POST", "/api/v1/schedules/" + id + "/deactivate");
  EXPECT_EQ(off["active"], false);
  EXPECT_TRUE(off["nextRun"].is_null());
  auto on = s.api("POST", "/api/v1/schedules/" + id + "/activate");
  EXPECT_EQ(on["active"], true);
  EXPECT_TRUE(on["nextRun"].is_string());

  // Declarative schedules belong to the deployment.
  const std::string decl = schedule_id_of(s, "sched-declared");
  EXPECT_NE(s.api("PUT", "/api/v1/schedules/" + decl, {{"task", "sched-declared"}, {"cron", "* * * * *"}}, 400)["error"]
                .get<std::string>()
                .find("DECLARATIVE"),
            std::string::npos);
  s.api("DELETE", "/api/v1/schedules/" + decl, nullptr, 400);

  EXPECT_EQ(s.api("DELETE", "/api/v1/schedules/" + id)["id"], id);
  s.api("GET", "/api/v1/schedules/" + id, nullptr, 404);
  s.api("DELETE", "/api/v1/schedules/" + id, nullptr, 404);
  s.api("POST", "/api/v1/schedules/" + id + "/activate", nullptr, 404);
  s.api("PUT", "/api/v1/schedules/sched_nope", {{"task", "sched-echo"}, {"cron", "* * * * *"}}, 404);

  // Time zones: no key needed, UTC optional.
  auto tz = s.api("GET", "/api/v1/timezones");
  std::set<std::string> zones(tz["timezones"].begin(), tz["timezones"].end());
  EXPECT_TRUE(zones.count("Europe/London"));
  EXPECT_TRUE(zones.count("America/New_York"));
  EXPECT_TRUE(zones.count("UTC"));
  auto no_utc = s.api("GET", "/api/v1/timezones?excludeUtc=true");
  std::set<std::string> zones2(no_utc["timezones"].begin(), no_utc["timezones"].end());
  EXPECT_FALSE(zones2.count("UTC"));
  EXPECT_TRUE(zones2.count("Europe/London"));
}

TEST(SchedulesTest, BadSchedulesAreRefusedSayingWhy) {
  auto d = schedules_dir("");
  server s(d);
  auto error = [&](const json& body, int want = 400) {
    return s.api("POST", "/api/v1/schedules", body, want).value("error", std::string());
  };
  auto has = [](const std::string& msg, std::initializer_list<const char*> parts) {
    for (auto p : parts)
      if (msg.find(p) == std::string::npos) return ::testing::AssertionFailure() << "'" << msg << "' lacks '" << p << "'";
    return ::testing::AssertionSuccess();
  };
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "61 * * * *"}}), {"minute", "61"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "* * * *"}}), {"5 fields", "4"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "* * 31 2 *"}}), {"day-of-month", "never"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "* * * * * * *"}}), {"fields", "7"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "0 9 * * *"}, {"timezone", "Mars/Olympus"}}), {"Mars/Olympus"}));
  EXPECT_TRUE(has(error({{"task", "plain-task"}, {"cron", "0 9 * * *"}}), {"plain-task", "not a scheduled task"}));
  EXPECT_TRUE(has(error({{"task", "no-such-task"}, {"cron", "0 9 * * *"}}), {"no-such-task", "not found"}));
  EXPECT_TRUE(has(error({{"cron", "0 9 * * *"}}), {"task"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}}), {"cron"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", 5}}), {"cron", "string"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "* * * * *"}, {"externalId", 7}}), {"externalId"}));
  EXPECT_TRUE(has(error({{"task", "sched-echo"}, {"cron", "* * * * *"}, {"window", "30m"}}), {"window"}));
  http_client c(s.url);
  auto r = c.request("POST", "/api/v1/schedules", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("JSON object"), std::string::npos) << r.body;
  r = c.request("PATCH", "/api/v1/schedules", "{}");
  EXPECT_EQ(r.status, 405);
  r = c.request("GET", "/api/v1/schedules?perPage=500");
  EXPECT_EQ(r.status, 400);
  r = c.request("POST", "/api/v1/schedules/sched_x/explode", "{}");
  EXPECT_EQ(r.status, 404);
  // Nothing was created by any of it.
  EXPECT_EQ(s.api("GET", "/api/v1/schedules")["pagination"]["count"], 1);  // sched-declared's own
}

TEST(SchedulesTest, ADeactivatedScheduleDoesNotFireAndAnActivatedOneDoesNotCatchUp) {
  auto d = schedules_dir("");
  server s(d);
  auto sc = s.api("POST", "/api/v1/schedules", {{"task", "sched-echo"}, {"cron", "* * * * * *"}});
  const std::string id = sc["id"];
  wait_runs(s, id, 1);
  s.api("POST", "/api/v1/schedules/" + id + "/deactivate");
  std::this_thread::sleep_for(300ms);  // a run triggered just before is committed
  const size_t before = runs_of(s, id).size();
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(runs_of(s, id).size(), before) << "nothing fires while inactive";
  s.api("POST", "/api/v1/schedules/" + id + "/activate");
  std::this_thread::sleep_for(1500ms);
  auto runs = runs_of(s, id);
  EXPECT_GE(runs.size(), before + 1) << "it fires again";
  EXPECT_LE(runs.size(), before + 3) << "and did not make up for the inactive seconds";
}

TEST(SchedulesTest, AnOccurrenceWhileStoppedGivesOneRunAndOneFiredBeforeAKillIsNotRepeated) {
  auto d = schedules_dir("");
  std::string id, occurrence;
  {
    server s(d);
    auto [cron, iso] = cron_in(3);
    occurrence = iso;
    id = s.api("POST", "/api/v1/schedules", {{"task", "sched-echo"}, {"cron", cron}})["id"];
    s.proc.signal(SIGKILL);  // stopped before its occurrence
    s.proc.wait_exit(5s);
  }
  while (std::chrono::system_clock::now() < *taskhost::parse_iso_time(occurrence) + 1500ms) std::this_thread::sleep_for(50ms);
  {
    server s(d, "server2.log");
    auto runs = wait_runs(s, id, 1);
    ASSERT_EQ(runs.size(), 1u) << "one late run for the occurrence missed while stopped";
    EXPECT_EQ(runs[0]["payload"]["timestamp"], occurrence);
    // Killed right after that run exists...
    s.proc.signal(SIGKILL);
    s.proc.wait_exit(5s);
  }
  {
    server s(d, "server3.log");  // ...the restart does not fire it again
    std::this_thread::sleep_for(1500ms);
    auto runs = runs_of(s, id);
    ASSERT_EQ(runs.size(), 1u) << s.log();
    EXPECT_EQ(runs[0]["payload"]["timestamp"], occurrence);
    EXPECT_EQ(s.get_run(runs[0]["id"])["status"], "COMPLETED");
  }
}

TEST(SchedulesTest, KilledAndRestartedWhileFiringEverySecondNoOccurrenceRunsTwice) {
  auto d = schedules_dir("schedules:\n  - {task: sched-echo, cron: \"* * * * * *\"}\n");
  std::string id;
  for (int round = 0; round < 3; ++round) {
    server s(d, "server" + std::to_string(round) + ".log");
    id = schedule_id_of(s, "sched-echo");
    std::this_thread::sleep_for(1700ms + round * 300ms);
    s.proc.signal(SIGKILL);
    s.proc.wait_exit(5s);
    std::this_thread::sleep_for(round == 1 ? 3000ms : 200ms);  // one stop long enough to miss three occurrences
  }
  server s(d, "server-last.log");
  EXPECT_EQ(schedule_id_of(s, "sched-echo"), id) << "a declarative schedule keeps its id across restarts";
  std::this_thread::sleep_for(1s);
  auto runs = runs_of(s, id);
  auto occ = occurrences(runs);
  EXPECT_GE(runs.size(), 6u);
  for (const auto& [ts, n] : occ) EXPECT_EQ(n, 1) << ts << " has " << n << " runs";
  // After the long stop: one catch-up, not three (no backfill) — the gap shows in the timestamps.
  std::vector<time_t> times;
  for (const auto& [ts, n] : occ) times.push_back(to_time_t(ts));
  time_t widest = 0;
  for (size_t i = 1; i < times.size(); ++i) widest = std::max(widest, times[i] - times[i - 1]);
  EXPECT_GE(widest, 2) << "occurrences missed while stopped were not all backfilled";
}

TEST(SchedulesTest, DeclarativeSchedulesAreSyncedAtStart) {
  auto d = schedules_dir("schedules:\n  - {task: sched-echo, key: a, cron: '0 9 * * *'}\n  - {task: sched-echo, key: b, cron: '0 10 * * *'}\n");
  std::string a, b;
  {
    server s(d);
    const auto page = s.api("GET", "/api/v1/schedules");
    for (const auto& x : page["data"]) {
      if (x["deduplicationKey"] == "a") a = x["id"];
      if (x["deduplicationKey"] == "b") b = x["id"];
    }
    ASSERT_FALSE(a.empty());
    ASSERT_FALSE(b.empty());
    s.api("POST", "/api/v1/schedules", {{"task", "sched-echo"}, {"cron", "0 1 * * *"}, {"deduplicationKey", "a"}});  // imperative: another namespace
  }
  d.tmp.write("deploy.yaml", "name: itest\nplugins_dir: plugins\nhttp:\n  listen: 127.0.0.1:0\n"
                             "schedules:\n  - {task: sched-echo, key: a, cron: '30 9 * * *', timezone: Europe/Paris}\n"
                             "  - {task: sched-echo, key: c, cron: '0 11 * * *'}\n");
  server s(d, "server2.log");
  std::map<std::string, json> by_key;
  size_t imperative = 0;
  const auto page = s.api("GET", "/api/v1/schedules");
  for (const auto& x : page["data"]) {
    if (x["type"] == "IMPERATIVE") {
      ++imperative;
      continue;
    }
    if (x["deduplicationKey"].is_string()) by_key[x["deduplicationKey"]] = x;
  }
  EXPECT_EQ(imperative, 1u) << "API schedules are not the deployment's to sync";
  ASSERT_TRUE(by_key.count("a"));
  EXPECT_EQ(by_key["a"]["id"], a) << "changed, not replaced";
  EXPECT_EQ(by_key["a"]["generator"]["expression"], "30 9 * * *");
  EXPECT_EQ(by_key["a"]["timezone"], "Europe/Paris");
  EXPECT_FALSE(by_key.count("b")) << "removed from the YAML, removed";
  s.api("GET", "/api/v1/schedules/" + b, nullptr, 404);
  ASSERT_TRUE(by_key.count("c"));
  EXPECT_NE(by_key["c"]["id"], a);
  EXPECT_TRUE(by_key.count("sched-declared")) << "the task definition's own, keyed by its task id";
}

TEST(SchedulesTest, InvalidScheduleConfigStopsTheStartWithItsPlace) {
  auto check = [](const std::string& yaml, std::initializer_list<const char*> parts) {
    auto d = schedules_dir(yaml);
    auto r = taskhost::test::run_command({taskhost::test::bin, "validate", "--config", d.config().string()});
    EXPECT_NE(r.exit_code, 0) << yaml;
    for (auto p : parts) EXPECT_NE(r.err.find(p), std::string::npos) << "'" << p << "' not in: " << r.err;
    auto run = taskhost::test::run_command({taskhost::test::bin, "run", "--config", d.config().string()}, 20s);
    EXPECT_NE(run.exit_code, 0);
    for (auto p : parts) EXPECT_NE(run.err.find(p), std::string::npos) << "'" << p << "' not in: " << run.err;
  };
  check("schedules:\n  - {task: sched-echo, cron: '61 * * * *'}\n", {"deploy.yaml:8:", "schedules[0].cron", "minute", "61"});
  check("schedules:\n  - {task: sched-echo, cron: '* * * *'}\n", {"deploy.yaml:8:", "fields"});
  check("schedules:\n  - {task: sched-echo, cron: '0 9 * * *', timezone: Mars/Olympus}\n", {"deploy.yaml:8:", "Mars/Olympus"});
  check("schedules:\n  - {task: plain-task, cron: '0 9 * * *'}\n", {"deploy.yaml:8:", "plain-task", "not a scheduled task"});
}

TEST(SchedulesTest, TheCliManagesSchedules) {
  auto d = schedules_dir("");
  server s(d);
  auto r = s.cli({"schedules", "create", "--task", "sched-echo", "--cron", "0 9 * * 1-5", "--timezone", "Europe/London",
                  "--external-id", "cust-9", "--dedup-key", "k9", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = json::parse(r.out)["id"];
  r = s.cli({"schedules", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 9 * * 1-5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Europe/London"), std::string::npos) << r.out;
  r = s.cli({"schedules", "deactivate", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("INACTIVE"), std::string::npos) << r.out;
  r = s.cli({"schedules", "activate", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("INACTIVE"), std::string::npos) << r.out;
  r = s.cli({"schedules", "create", "--task", "sched-echo", "--cron", "61 * * * *"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("minute"), std::string::npos) << r.err;
  r = s.cli({"schedules", "delete", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = s.cli({"schedules", "get", id});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
}

}  // namespace

namespace {

TEST(SchedulesTest, ADeclarativeScheduleOutlivesAStartWithoutItsPlugin) {
  auto d = schedules_dir("");
  std::string id;
  {
    server s(d);
    id = schedule_id_of(s, "sched-declared");
  }
  // The plugin is missing at this start: its schedule stays, not firing.
  fs::rename(d.tmp / "plugins/fixture_schedules.so", d.tmp / "fixture_schedules.so.away");
  {
    server s(d, "server2.log");
    auto x = s.api("GET", "/api/v1/schedules/" + id);
    EXPECT_EQ(x["task"], "sched-declared");
    EXPECT_TRUE(x["nextRun"].is_null()) << x.dump();
  }
  fs::rename(d.tmp / "fixture_schedules.so.away", d.tmp / "plugins/fixture_schedules.so");
  server s(d, "server3.log");
  EXPECT_EQ(schedule_id_of(s, "sched-declared"), id) << "the same schedule, with its history";
  EXPECT_TRUE(s.api("GET", "/api/v1/schedules/" + id)["nextRun"].is_string());
}

}  // namespace
