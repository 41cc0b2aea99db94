// The scheduler with an injected clock: what fires, when, and how often.
#include "runtime/scheduler.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "runtime/trigger_request.hpp"

namespace taskhost {
namespace {

using namespace std::chrono_literals;

time_point at(const char* iso) {
  auto t = parse_iso_time(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(time_point{});
}

struct fixture {
  time_point now = at("2026-03-02T08:59:00.000Z");
  std::vector<schedule_fire> fired;
  scheduler s{[this](schedule_fire f) { fired.push_back(std::move(f)); }, scheduler::options{[this] { return now; }, 1000ms}};

  schedule_record rec(const std::string& id, const std::string& cron, const std::string& tz = "UTC") {
    schedule_record r;
    r.id = id;
    r.task_id = "report";
    r.cron = cron;
    r.timezone = tz;
    r.created_at = r.updated_at = r.since = now;
    return r;
  }
};

TEST(SchedulerTest, FiresEachOccurrenceOnceWithItsPayload) {
  fixture f;
  auto r = f.rec("sched_a", "0 9 * * 1-5", "Europe/London");
  r.external_id = "customer-7";
  f.s.put(r);
  EXPECT_EQ(f.s.next_run("sched_a"), at("2026-03-02T09:00:00.000Z"));
  EXPECT_EQ(f.s.poll(), 0u);
  f.now = at("2026-03-02T09:00:00.000Z");
  EXPECT_EQ(f.s.poll(), 1u);
  EXPECT_EQ(f.s.poll(), 0u);  // not twice
  ASSERT_EQ(f.fired.size(), 1u);
  const auto& fire = f.fired[0];
  EXPECT_EQ(fire.occurrence, at("2026-03-02T09:00:00.000Z"));
  EXPECT_FALSE(fire.last);
  ASSERT_EQ(fire.upcoming.size(), 5u);
  EXPECT_EQ(fire.upcoming[0], at("2026-03-03T09:00:00.000Z"));
  EXPECT_EQ(fire.upcoming[4], at("2026-03-09T09:00:00.000Z"));  // Fri 6th, then Monday
  auto p = schedule_payload_json(fire);
  EXPECT_EQ(p["timestamp"], "2026-03-02T09:00:00.000Z");
  EXPECT_FALSE(p.contains("lastTimestamp"));
  EXPECT_EQ(p["timezone"], "Europe/London");
  EXPECT_EQ(p["scheduleId"], "sched_a");
  EXPECT_EQ(p["externalId"], "customer-7");
  EXPECT_EQ(p["type"], "IMPERATIVE");
  EXPECT_EQ(p["upcoming"].size(), 5u);

  f.now = at("2026-03-03T09:00:00.500Z");
  EXPECT_EQ(f.s.poll(), 1u);
  ASSERT_EQ(f.fired.size(), 2u);
  EXPECT_EQ(f.fired[1].last, at("2026-03-02T09:00:00.000Z"));
  EXPECT_EQ(schedule_payload_json(f.fired[1])["lastTimestamp"], "2026-03-02T09:00:00.000Z");
}

TEST(SchedulerTest, MissedOccurrencesGiveOneCatchUpForTheLatest) {
  fixture f;
  f.s.put(f.rec("sched_m", "*/10 * * * *"));
  f.now = at("2026-03-02T10:05:00.000Z");  // 09:00 .. 10:00 all missed
  EXPECT_EQ(f.s.poll(), 1u);
  ASSERT_EQ(f.fired.size(), 1u);
  EXPECT_EQ(f.fired[0].occurrence, at("2026-03-02T10:00:00.000Z"));
  EXPECT_EQ(f.s.next_run("sched_m"), at("2026-03-02T10:10:00.000Z"));
  EXPECT_EQ(f.s.poll(), 0u);
}

TEST(SchedulerTest, AfterARestartTheLastFiredOccurrenceDoesNotFireAgain) {
  fixture f;
  auto r = f.rec("sched_r", "0 * * * *");
  r.since = at("2026-01-01T00:00:00.000Z");
  r.last_occurrence = at("2026-03-02T09:00:00.000Z");  // fired before the stop
  f.now = at("2026-03-02T09:00:30.000Z");
  f.s.put(r);
  EXPECT_EQ(f.s.poll(), 0u);
  EXPECT_EQ(f.s.next_run("sched_r"), at("2026-03-02T10:00:00.000Z"));
  // Stopped across 10:00 and 11:00: one late run, for 11:00.
  f.now = at("2026-03-02T11:20:00.000Z");
  EXPECT_EQ(f.s.poll(), 1u);
  ASSERT_EQ(f.fired.size(), 1u);
  EXPECT_EQ(f.fired[0].occurrence, at("2026-03-02T11:00:00.000Z"));
  EXPECT_EQ(f.fired[0].last, at("2026-03-02T09:00:00.000Z"));
}

TEST(SchedulerTest, NothingAtOrBeforeSinceFires) {
  fixture f;
  auto r = f.rec("sched_s", "0 * * * *");
  r.since = at("2026-03-02T09:00:00.000Z");  // created exactly at an occurrence: it is not due
  f.now = at("2026-03-02T09:30:00.000Z");
  f.s.put(r);
  EXPECT_EQ(f.s.poll(), 0u);
  EXPECT_EQ(f.s.next_run("sched_s"), at("2026-03-02T10:00:00.000Z"));
}

TEST(SchedulerTest, InactiveAndUnarmedSchedulesAreListedButDoNotFire) {
  fixture f;
  auto a = f.rec("sched_1", "* * * * *");
  a.active = false;
  f.s.put(a);
  f.s.put(f.rec("sched_2", "* * * * *"), /*armed=*/false);
  f.now += 10min;
  EXPECT_EQ(f.s.poll(), 0u);
  EXPECT_FALSE(f.s.next_run("sched_1"));
  EXPECT_FALSE(f.s.next_run("sched_2"));
  EXPECT_EQ(f.s.list().size(), 2u);
  EXPECT_FALSE(f.s.next_wake());
}

TEST(SchedulerTest, ReplacingAndRemovingTakeEffectAtOnce) {
  fixture f;
  f.s.put(f.rec("sched_x", "0 9 * * *"));
  auto r = f.rec("sched_x", "30 9 * * *");
  f.s.put(r);
  EXPECT_EQ(f.s.size(), 1u);
  EXPECT_EQ(f.s.next_run("sched_x"), at("2026-03-02T09:30:00.000Z"));
  f.now = at("2026-03-02T09:00:00.000Z");
  EXPECT_EQ(f.s.poll(), 0u);  // the old plan is gone
  EXPECT_TRUE(f.s.remove("sched_x"));
  EXPECT_FALSE(f.s.remove("sched_x"));
  f.now = at("2026-03-02T10:00:00.000Z");
  EXPECT_EQ(f.s.poll(), 0u);
  EXPECT_TRUE(f.fired.empty());
}

TEST(SchedulerTest, FindByKeyFollowsPutsReplacementsAndRemovals) {
  fixture f;
  auto keyed = [&](const std::string& id, const std::string& type, const std::string& key) {
    auto r = f.rec(id, "0 9 * * *");
    r.type = type;
    r.dedup_key = key;
    f.s.put(r);
  };
  auto found = [&](const std::string& type, const std::string& key) {
    auto r = f.s.find_by_key(type, key);
    return r ? r->id : std::string("none");
  };
  keyed("sched_a", "IMPERATIVE", "k1");
  keyed("sched_b", "IMPERATIVE", "k2");
  keyed("sched_c", "DECLARATIVE", "k1");
  keyed("sched_d", "IMPERATIVE", "");
  EXPECT_EQ(found("IMPERATIVE", "k1"), "sched_a");
  EXPECT_EQ(found("DECLARATIVE", "k1"), "sched_c");  // the same key of another type is another schedule
  EXPECT_EQ(found("IMPERATIVE", "k2"), "sched_b");
  EXPECT_EQ(found("IMPERATIVE", "k3"), "none");
  EXPECT_EQ(found("IMPERATIVE", ""), "none");  // no key finds nothing, not sched_d
  EXPECT_EQ(f.s.find_by_key("IMPERATIVE", "k1")->cron, "0 9 * * *");

  keyed("sched_a", "IMPERATIVE", "k3");  // a replacement under another key
  EXPECT_EQ(found("IMPERATIVE", "k1"), "none");
  EXPECT_EQ(found("IMPERATIVE", "k3"), "sched_a");

  keyed("sched_0", "IMPERATIVE", "k2");  // a store holding duplicates: the lowest id, as before
  EXPECT_EQ(found("IMPERATIVE", "k2"), "sched_0");
  EXPECT_TRUE(f.s.remove("sched_0"));
  EXPECT_EQ(found("IMPERATIVE", "k2"), "sched_b");
  EXPECT_TRUE(f.s.remove("sched_b"));
  EXPECT_EQ(found("IMPERATIVE", "k2"), "none");
  EXPECT_EQ(found("IMPERATIVE", "k3"), "sched_a");
}

TEST(SchedulerTest, AReplacementReadBeforeAnOccurrenceFiredDoesNotFireItAgain) {
  fixture f;
  f.s.put(f.rec("sched_p", "0 9 * * *"));
  auto stale = *f.s.get("sched_p");  // an API change reads the schedule ...
  f.now = at("2026-03-02T09:00:00.000Z");
  ASSERT_EQ(f.s.poll(), 1u);  // ... the occurrence fires meanwhile ...
  stale.external_id = "changed";
  f.s.put(stale);  // ... and the change lands with the record it read
  EXPECT_EQ(f.s.poll(), 0u) << "09:00 fired once";
  EXPECT_EQ(f.s.get("sched_p")->last_occurrence, at("2026-03-02T09:00:00.000Z"));
  EXPECT_EQ(f.s.next_run("sched_p"), at("2026-03-03T09:00:00.000Z"));
}

TEST(SchedulerTest, BadCronOrZoneIsRefusedAndChangesNothing) {
  fixture f;
  f.s.put(f.rec("sched_b", "0 9 * * *"));
  EXPECT_THROW(f.s.put(f.rec("sched_b", "61 * * * *")), cron_error);
  EXPECT_THROW(f.s.put(f.rec("sched_b", "0 9 * * *", "Mars/Olympus")), std::invalid_argument);
  EXPECT_EQ(f.s.get("sched_b")->cron, "0 9 * * *");
  EXPECT_EQ(f.s.next_run("sched_b"), at("2026-03-02T09:00:00.000Z"));
}

TEST(SchedulerTest, AFailedTriggerIsRetriedOnceForItsOccurrence) {
  fixture f;
  f.s.put(f.rec("sched_f", "0 9 * * *"));
  f.now = at("2026-03-02T09:00:00.000Z");
  ASSERT_EQ(f.s.poll(), 1u);
  f.s.failed(f.fired[0]);
  EXPECT_EQ(f.s.poll(), 0u);  // not before retry_after
  f.now += 1500ms;
  ASSERT_EQ(f.s.poll(), 1u);
  EXPECT_EQ(f.fired[1].occurrence, at("2026-03-02T09:00:00.000Z"));
  EXPECT_FALSE(f.fired[1].last);  // the failed one never ran
  EXPECT_EQ(f.s.poll(), 0u);
  EXPECT_EQ(f.s.next_run("sched_f"), at("2026-03-03T09:00:00.000Z"));
}

TEST(SchedulerTest, DueSchedulesFireInOnePollInTimeOrder) {
  fixture f;
  for (int k = 0; k < 1000; ++k) f.s.put(f.rec("sched_" + std::to_string(k), "0 9 * * *"));
  f.now = at("2026-03-02T09:00:00.000Z");
  EXPECT_EQ(f.s.poll(), 1000u);
  std::set<std::string> ids;
  for (const auto& x : f.fired) ids.insert(x.schedule.id);
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(f.s.poll(), 0u);
}

TEST(SchedulerTest, TheTimerThreadFiresOnTheRealClockAndStopEndsIt) {
  std::atomic<int> fired{0};
  scheduler s([&](schedule_fire) { ++fired; });
  schedule_record r;
  r.id = "sched_t";
  r.task_id = "t";
  r.cron = "* * * * * *";  // every second
  r.created_at = r.updated_at = r.since = clock_type::now();
  s.put(r);
  s.start();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fired < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  s.stop();
  EXPECT_GE(fired.load(), 2);
  const int after_stop = fired;
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(fired.load(), after_stop);
  EXPECT_EQ(s.poll(), 0u);  // stopped: nothing fires
}

TEST(ScheduleJsonTest, HasTriggerDevsScheduleObjectShape) {
  schedule_record r;
  r.id = "sched_j";
  r.type = "DECLARATIVE";
  r.task_id = "daily-report";
  r.cron = "0 9 * * 1-5";
  r.timezone = "Europe/London";
  auto j = schedule_json(r, at("2026-03-02T09:00:00.000Z"));
  EXPECT_EQ(j["id"], "sched_j");
  EXPECT_EQ(j["type"], "DECLARATIVE");
  EXPECT_EQ(j["task"], "daily-report");
  EXPECT_EQ(j["active"], true);
  EXPECT_TRUE(j["deduplicationKey"].is_null());
  EXPECT_TRUE(j["externalId"].is_null());
  EXPECT_EQ(j["generator"]["type"], "CRON");
  EXPECT_EQ(j["generator"]["expression"], "0 9 * * 1-5");
  EXPECT_FALSE(j["generator"]["description"].get<std::string>().empty());
  EXPECT_EQ(j["timezone"], "Europe/London");
  EXPECT_EQ(j["nextRun"], "2026-03-02T09:00:00.000Z");
  EXPECT_TRUE(j["environments"].is_array());
  EXPECT_TRUE(schedule_json(r, std::nullopt)["nextRun"].is_null());
}

}  // namespace
}  // namespace taskhost
