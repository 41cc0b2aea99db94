#include "runtime/plugin_loader.hpp"

#include <gtest/gtest.h>

#include <taskhost/sdk.hpp>

#include "support/process.hpp"

namespace fs = std::filesystem;
using taskhost::load_plugin;
using taskhost::load_plugins;
using taskhost::plugin_error;
using taskhost::test::temp_dir;

namespace {

fs::path fixture(const std::string& name) { return fs::path(TASKHOST_FIXTURE_DIR) / (name + ".so"); }

/// The reason load_plugin refuses `file`, or "" if it loads.
std::string refusal(const fs::path& file, const fs::path& cache) {
  try {
    load_plugin(file, cache);
  } catch (const plugin_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(PluginLoaderTest, GoodPluginLoadsWithItsDescriptor) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_good"), tmp / "cache");
  EXPECT_EQ(p.name, "fixture-good");
  EXPECT_EQ(p.version, "2.3.4");
  EXPECT_EQ(p.abi_major, 1u);
  EXPECT_EQ(p.abi_minor, unsigned(TASKHOST_ABI_MINOR));
  EXPECT_NE(p.build_info.find("taskhost-sdk"), std::string::npos);
  ASSERT_EQ(p.tasks.size(), 12u);
  EXPECT_EQ(p.tasks[0].id, "fixture-echo");
  EXPECT_EQ(p.tasks[0].description, "returns its payload");
  EXPECT_EQ(p.tasks[0].plugin_name, "fixture-good");
  EXPECT_NE(p.tasks[0].library, nullptr);
}

TEST(PluginLoaderTest, PluginIsLoadedFromAContentAddressedCopy) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_good"), tmp / "cache");
  EXPECT_EQ(p.loaded_from.parent_path(), tmp / "cache");
  EXPECT_NE(p.loaded_from, p.file);
  EXPECT_EQ(p.loaded_from.filename().string().size(), 64 + 1 + std::string("fixture_good.so").size());
  EXPECT_EQ(taskhost::test::read_text(p.loaded_from), taskhost::test::read_text(p.file));
  // The same content maps to the same copy; loading twice does not add files.
  load_plugin(fixture("fixture_good"), tmp / "cache");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp / "cache"), fs::directory_iterator()), 1);
}

TEST(PluginLoaderTest, OtherAbiMajorIsRefusedWithoutRunningIt) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_wrong_major"), tmp / "cache");
  EXPECT_NE(why.find("built for another plugin ABI: it exports 'taskhost_plugin_v2'"), std::string::npos) << why;
  EXPECT_NE(why.find("needs 'taskhost_plugin_v1'"), std::string::npos) << why;
  EXPECT_FALSE(fs::exists(tmp / "cache")) << "refused before it was even copied";
}

TEST(PluginLoaderTest, NewerAbiMinorIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_newer_minor"), tmp / "cache");
  EXPECT_NE(why.find("built for ABI 1.99, newer than this taskhost's 1." + std::to_string(TASKHOST_ABI_MINOR)),
            std::string::npos) << why;
}

TEST(PluginLoaderTest, LibraryWithoutEntrySymbolIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_no_entry"), tmp / "cache");
  EXPECT_NE(why.find("no entry symbol 'taskhost_plugin_v1'"), std::string::npos) << why;
}

TEST(PluginLoaderTest, NullDescriptorIsRefused) {
  temp_dir tmp;
  EXPECT_NE(refusal(fixture("fixture_null_descriptor"), tmp / "cache").find("returned no descriptor"), std::string::npos);
}

TEST(PluginLoaderTest, DescriptorSmallerThanAbi10IsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_small_descriptor"), tmp / "cache");
  EXPECT_NE(why.find("plugin descriptor too small (8 bytes"), std::string::npos) << why;
}

TEST(PluginLoaderTest, InvalidTaskIdIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_bad_task_id"), tmp / "cache");
  EXPECT_NE(why.find("invalid task id 'bad id/here'"), std::string::npos) << why;
}

TEST(PluginLoaderTest, TextFileNamedSoIsRefused) {
  temp_dir tmp;
  tmp.write("x.so", "this is not a library\n");
  EXPECT_NE(refusal(tmp / "x.so", tmp / "cache").find("not an ELF shared library"), std::string::npos);
  tmp.write("empty.so", "");
  EXPECT_NE(refusal(tmp / "empty.so", tmp / "cache").find("not an ELF shared library"), std::string::npos);
}

TEST(PluginLoaderTest, TruncatedLibraryIsRefused) {
  temp_dir tmp;
  auto image = taskhost::test::read_text(fixture("fixture_good"));
  tmp.write("cut.so", image.substr(0, image.size() / 3));
  auto why = refusal(tmp / "cut.so", tmp / "cache");
  EXPECT_FALSE(why.empty());
}

TEST(PluginLoaderTest, TaskIdValidation) {
  EXPECT_TRUE(taskhost::valid_task_id("hello-world"));
  EXPECT_TRUE(taskhost::valid_task_id("a.b_c-1"));
  EXPECT_FALSE(taskhost::valid_task_id(""));
  EXPECT_FALSE(taskhost::valid_task_id("-lead"));
  EXPECT_FALSE(taskhost::valid_task_id("has space"));
  EXPECT_FALSE(taskhost::valid_task_id(std::string(129, 'a')));
}

TEST(PluginLoaderTest, FolderLoadRefusesBadPluginsAndKeepsTheRest) {
  temp_dir tmp;
  fs::create_directories(tmp / "plugins");
  for (auto name : {"fixture_good", "fixture_wrong_major", "fixture_no_entry", "fixture_newer_minor"})
    fs::copy_file(fixture(name), tmp / "plugins" / (std::string(name) + ".so"));
  // Sorted after fixture_good.so, so it is the second to declare fixture-echo.
  fs::copy_file(fixture("fixture_duplicate"), tmp / "plugins" / "zz_duplicate.so");
  tmp.write("plugins/x.so", "text\n");
  tmp.write("plugins/readme.txt", "not a plugin and not named .so: ignored\n");

  auto report = load_plugins(tmp / "plugins", tmp / "cache");
  ASSERT_EQ(report.plugins.size(), 1u);
  EXPECT_EQ(report.plugins[0].name, "fixture-good");
  EXPECT_EQ(report.tasks.size(), 12u);
  EXPECT_EQ(report.tasks.at("fixture-echo").plugin_name, "fixture-good");
  ASSERT_EQ(report.refused.size(), 5u);
  std::map<std::string, std::string> why;
  for (auto& r : report.refused) why[r.file.filename().string()] = r.reason;
  EXPECT_NE(why["zz_duplicate.so"].find("task id 'fixture-echo' is already declared by"), std::string::npos);
  EXPECT_NE(why["zz_duplicate.so"].find("fixture_good.so"), std::string::npos);
  EXPECT_NE(why["x.so"].find("not an ELF"), std::string::npos);
  EXPECT_NE(why["fixture_wrong_major.so"].find("taskhost_plugin_v2"), std::string::npos);
  EXPECT_NE(why["fixture_no_entry.so"].find("no entry symbol"), std::string::npos);
  EXPECT_NE(why["fixture_newer_minor.so"].find("newer than"), std::string::npos);
}

TEST(PluginLoaderTest, Abi10PluginStillLoadsInANewerHost) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_abi10"), tmp / "cache");
  EXPECT_EQ(p.abi_minor, 0u);
  ASSERT_EQ(p.tasks.size(), 1u);
  EXPECT_EQ(p.tasks[0].max_duration_ms, 0u) << "1.0 descriptors have no max duration: not read";
  EXPECT_EQ(p.tasks[0].retry.max_attempts, 0);
}

TEST(PluginLoaderTest, TaskDefinitionRetryAndMaxDurationAreRead) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_good"), tmp / "cache");
  std::map<std::string, const taskhost::loaded_task*> by_id;
  for (auto& t : p.tasks) by_id[t.id] = &t;
  EXPECT_EQ(by_id.at("fixture-defined-max-duration")->max_duration_ms, 7000u);
  const auto& r = by_id.at("fixture-defined-retry")->retry;
  EXPECT_EQ(r.max_attempts, 4);
  EXPECT_EQ(r.randomize, 0);
  EXPECT_EQ(r.min_timeout_ms, 0);
  EXPECT_EQ(by_id.at("fixture-echo")->retry.max_attempts, 0) << "unset";
  EXPECT_EQ(by_id.at("fixture-echo")->retry.min_timeout_ms, -1) << "unset";
}

TEST(PluginLoaderTest, MaxDurationUnderFiveSecondsIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_bad_max_duration"), tmp / "cache");
  EXPECT_NE(why.find("task 'too-short': max_duration must be at least 5 s"), std::string::npos) << why;
}

TEST(PluginLoaderTest, TaskDefinitionQueueIsRead) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_queues"), tmp / "cache");
  EXPECT_EQ(p.name, "queues");
  EXPECT_EQ(p.abi_minor, unsigned(TASKHOST_ABI_MINOR));
  std::map<std::string, const taskhost::loaded_task*> by_id;
  for (auto& t : p.tasks) by_id[t.id] = &t;
  ASSERT_EQ(by_id.size(), 8u);
  for (auto id : {"q-share-a", "q-share-b"}) {
    EXPECT_EQ(by_id.at(id)->queue_name, "shared") << id;
    EXPECT_EQ(by_id.at(id)->queue_concurrency_limit, 2) << id;
  }
  EXPECT_EQ(by_id.at("q-limited")->queue_name, "") << "its own queue";
  EXPECT_EQ(by_id.at("q-limited")->queue_concurrency_limit, 1);
  for (auto id : {"q-parent", "q-child"}) {
    EXPECT_EQ(by_id.at(id)->queue_name, "family") << id;
    EXPECT_EQ(by_id.at(id)->queue_concurrency_limit, 1) << id;
  }
  for (auto id : {"q-work", "q-block", "q-fast"}) {
    EXPECT_EQ(by_id.at(id)->queue_name, "") << id;
    EXPECT_EQ(by_id.at(id)->queue_concurrency_limit, -1) << id << ": no queue declared";
  }
}

TEST(PluginLoaderTest, PluginsWithoutQueuesGetTheirOwnUnlimitedQueue) {
  temp_dir tmp;
  auto old = load_plugin(fixture("fixture_abi10"), tmp / "cache");  // 1.0: the fields do not exist
  ASSERT_EQ(old.tasks.size(), 1u);
  EXPECT_EQ(old.tasks[0].queue_name, "");
  EXPECT_EQ(old.tasks[0].queue_concurrency_limit, -1) << "1.0 descriptors have no queue: not read";
  auto good = load_plugin(fixture("fixture_good"), tmp / "cache");  // the current ABI, no task declares a queue
  for (const auto& t : good.tasks) {
    EXPECT_EQ(t.queue_name, "") << t.id;
    EXPECT_EQ(t.queue_concurrency_limit, -1) << t.id;
  }
}

TEST(PluginLoaderTest, QueueConcurrencyLimitOutOfRangeIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_queue_decl_bad"), tmp / "cache");
  EXPECT_NE(why.find("task 'queue-too-wide': queue.concurrency_limit 100001 is out of range (1..100000"), std::string::npos)
      << why;
}

TEST(PluginLoaderTest, MissingFolderIsAnError) {
  temp_dir tmp;
  EXPECT_THROW(load_plugins(tmp / "nope", tmp / "cache"), plugin_error);
}

// --- Scheduled tasks (ABI 1.6) ---

TEST(PluginLoaderTest, ScheduledTasksAreRead) {
  temp_dir tmp;
  auto p = load_plugin(fixture("fixture_schedules"), tmp / "cache");
  EXPECT_EQ(p.name, "schedules");
  EXPECT_EQ(p.abi_minor, 6u);
  std::map<std::string, const taskhost::loaded_task*> by_id;
  for (auto& t : p.tasks) by_id[t.id] = &t;
  ASSERT_EQ(by_id.size(), 3u);
  EXPECT_TRUE(by_id.at("sched-echo")->scheduled);
  EXPECT_EQ(by_id.at("sched-echo")->schedule_cron, "") << "no declarative schedule";
  EXPECT_EQ(by_id.at("sched-echo")->schedule_timezone, "");
  EXPECT_EQ(by_id.at("sched-echo")->description, "echoes its schedule payload");
  EXPECT_TRUE(by_id.at("sched-declared")->scheduled);
  EXPECT_EQ(by_id.at("sched-declared")->schedule_cron, "*/2 * * * * *");
  EXPECT_EQ(by_id.at("sched-declared")->schedule_timezone, "Europe/London");
  EXPECT_FALSE(by_id.at("plain-task")->scheduled);
  EXPECT_EQ(by_id.at("plain-task")->schedule_cron, "");
  EXPECT_EQ(by_id.at("plain-task")->schedule_timezone, "");
}

TEST(PluginLoaderTest, CronThatDoesNotParseIsRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_schedule_bad"), tmp / "cache");
  EXPECT_NE(why.find("task 'bad-cron': invalid cron \"61 * * * *\": "), std::string::npos) << why;
  EXPECT_NE(why.find("minute"), std::string::npos) << why;
  EXPECT_NE(why.find("61"), std::string::npos) << why;
}

TEST(PluginLoaderTest, OlderPluginsHaveNoScheduledTasks) {
  temp_dir tmp;
  auto old = load_plugin(fixture("fixture_abi10"), tmp / "cache");  // 1.0: the fields do not exist
  ASSERT_EQ(old.tasks.size(), 1u);
  EXPECT_FALSE(old.tasks[0].scheduled);
  EXPECT_EQ(old.tasks[0].schedule_cron, "");
  // Built with the 1.6 SDK but saying ABI 1.5: its descriptors are big enough, yet the host must
  // not read what a 1.5 plugin never wrote (for one, `scheduled` lies in 1.5's tail padding).
  auto v15 = load_plugin(fixture("fixture_schedules_abi15"), tmp / "cache");
  EXPECT_EQ(v15.abi_minor, 5u);
  ASSERT_EQ(v15.tasks.size(), 3u);
  for (const auto& t : v15.tasks) {
    EXPECT_FALSE(t.scheduled) << t.id;
    EXPECT_EQ(t.schedule_cron, "") << t.id;
    EXPECT_EQ(t.schedule_timezone, "") << t.id;
  }
  auto good = load_plugin(fixture("fixture_good"), tmp / "cache");  // 1.6, ordinary tasks only
  for (const auto& t : good.tasks) EXPECT_FALSE(t.scheduled) << t.id;
}

TEST(PluginLoaderTest, BadScheduleDeclarationsAreRefused) {
  temp_dir tmp;
  auto why = refusal(fixture("fixture_schedule_bad_zone"), tmp / "cache");
  EXPECT_NE(why.find("task 'bad-zone': unknown time zone 'Mars/Olympus_Mons'"), std::string::npos) << why;
  why = refusal(fixture("fixture_schedule_bad_flag"), tmp / "cache");
  EXPECT_NE(why.find("task 'bad-flag': scheduled must be 0 or 1, not 2"), std::string::npos) << why;
  why = refusal(fixture("fixture_schedule_unscheduled_cron"), tmp / "cache");
  EXPECT_NE(why.find("task 'bad-flag': has a cron schedule (\"* * * * *\") but is not a scheduled task"), std::string::npos)
      << why;
}

// --- The SDK's side of scheduled tasks (header-only: reachable without a host) ---

namespace {

namespace th = taskhost;
using std::chrono::system_clock;

system_clock::time_point utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms = 0) {
  return system_clock::time_point(std::chrono::sys_days{std::chrono::year{y} / mo / d} + std::chrono::hours{h} +
                                  std::chrono::minutes{mi} + std::chrono::seconds{s} + std::chrono::milliseconds{ms});
}

/// Runs `t` once through the ABI, as the host does, with `payload`; {status, output or error}.
/// No host API: fine for tasks that neither log nor wait.
std::pair<th_step_status, th::json> run_through_abi(const th::scheduled_task& t, const std::string& payload) {
  th_run_info info{};
  info.struct_size = sizeof info;
  info.run_id = "run_test";
  info.task_id = t.definition().id.c_str();
  info.attempt = 1;
  info.payload = th_bytes{payload.data(), payload.size()};
  th_execution* e = nullptr;
  th_bytes err{};
  if (th::detail::start(const_cast<th::task*>(&t.as_task()), &info, &e, &err) != 0) return {TH_STEP_FAILED, nullptr};
  th_bytes out{};
  th_step_status st = th::detail::step(e, &out);
  th::json j = th::json::parse(std::string_view(out.data, out.len));
  th::detail::destroy(e);
  return {st, j};
}

const th::scheduled_task sdk_sync{{
    .id = "sdk-sync",
    .cron = "0 9 * * 1-5",
    .run = [](th::schedule_payload p, th::run_context& ctx) -> th::json {
      return {{"at", th::format_timestamp(p.timestamp)}, {"task", std::string(ctx.task_id())}, {"upcoming", p.upcoming.size()}};
    },
}};
const th::scheduled_task sdk_async{{
    .id = "sdk-async",
    .cron = {"0 9 * * 1-5", "Europe/London"},
    .run = [](const th::schedule_payload& p, th::run_context&) -> th::async<th::json> {
      th::json out = {{"scheduleId", p.schedule_id}};  // p lives in the SDK's frame: a reference is fine
      co_return out;
    },
}};
const th::scheduled_task sdk_void{{.id = "sdk-void", .run = [](th::schedule_payload, th::run_context&) {}}};

const char* full_payload =
    R"({"timestamp":"2026-03-02T09:00:00.000Z","lastTimestamp":"2026-02-27T09:00:00.000Z","timezone":"Europe/London",)"
    R"("scheduleId":"sched_abc","externalId":"user-42","upcoming":["2026-03-03T09:00:00.000Z","2026-03-04T09:00:00.250Z"],)"
    R"("type":"IMPERATIVE"})";

}  // namespace

TEST(PluginLoaderSdkTest, TimestampsParseAndFormat) {
  EXPECT_EQ(th::parse_timestamp("2026-03-02T09:00:00.000Z"), utc(2026, 3, 2, 9, 0, 0));
  EXPECT_EQ(th::parse_timestamp("2026-03-02T09:00:00.123Z"), utc(2026, 3, 2, 9, 0, 0, 123));
  EXPECT_EQ(th::parse_timestamp("2026-03-02T09:00:00Z"), utc(2026, 3, 2, 9, 0, 0));
  EXPECT_EQ(th::parse_timestamp("2026-03-02t09:00:00.5z"), utc(2026, 3, 2, 9, 0, 0, 500));
  EXPECT_EQ(th::parse_timestamp("2026-03-02T10:30:00.000+01:30"), utc(2026, 3, 2, 9, 0, 0));
  EXPECT_EQ(th::parse_timestamp("2026-03-01T23:00:00-10:00"), utc(2026, 3, 2, 9, 0, 0));
  EXPECT_EQ(th::parse_timestamp("2024-02-29T00:00:00.000Z"), utc(2024, 2, 29, 0, 0, 0)) << "a leap day";
  EXPECT_EQ(th::parse_timestamp("1970-01-01T00:00:00.000Z"), system_clock::time_point{});
  EXPECT_EQ(th::format_timestamp(utc(2026, 3, 2, 9, 0, 0, 7)), "2026-03-02T09:00:00.007Z");
  EXPECT_EQ(th::format_timestamp(utc(1969, 12, 31, 23, 59, 59, 999)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(th::format_timestamp(th::parse_timestamp("2026-12-31T23:59:59.9999Z")), "2026-12-31T23:59:59.999Z") << "cut";
  for (const char* bad : {"", "2026-03-02", "2026-03-02T09:00:00", "2026-03-02 09:00:00Z", "2026-02-30T09:00:00Z",
                          "2026-13-01T09:00:00Z", "2026-03-02T24:00:00Z", "2026-03-02T09:60:00Z", "2026-03-02T09:00:00.Z",
                          "2026-03-02T09:00:00ZZ", "2026-03-02T09:00:00+0100", "26-03-02T09:00:00Z", "yesterday"})
    EXPECT_THROW(th::parse_timestamp(bad), std::invalid_argument) << bad;
}

TEST(PluginLoaderSdkTest, SchedulePayloadIsParsed) {
  auto p = th::schedule_payload::from(th::json::parse(full_payload));
  EXPECT_EQ(p.timestamp, utc(2026, 3, 2, 9, 0, 0));
  ASSERT_TRUE(p.last_timestamp);
  EXPECT_EQ(*p.last_timestamp, utc(2026, 2, 27, 9, 0, 0));
  EXPECT_EQ(p.timezone, "Europe/London");
  EXPECT_EQ(p.schedule_id, "sched_abc");
  ASSERT_TRUE(p.external_id);
  EXPECT_EQ(*p.external_id, "user-42");
  ASSERT_EQ(p.upcoming.size(), 2u);
  EXPECT_EQ(p.upcoming[1], utc(2026, 3, 4, 9, 0, 0, 250));
  EXPECT_EQ(p.type, "IMPERATIVE");
  EXPECT_EQ(p.raw, th::json::parse(full_payload));

  // The optional fields may be absent (or null): the first run of a schedule has no lastTimestamp.
  auto q = th::schedule_payload::from(
      {{"timestamp", "2026-03-02T09:00:00.000Z"}, {"scheduleId", "sched_x"}, {"externalId", nullptr}, {"type", "DECLARATIVE"}});
  EXPECT_FALSE(q.last_timestamp);
  EXPECT_FALSE(q.external_id);
  EXPECT_EQ(q.timezone, "UTC");
  EXPECT_TRUE(q.upcoming.empty());
  EXPECT_EQ(q.type, "DECLARATIVE");
}

TEST(PluginLoaderSdkTest, WhatIsNotASchedulePayloadIsRefusedByName) {
  auto why = [](const th::json& j) -> std::string {
    try {
      th::schedule_payload::from(j);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(why(th::json::object()).find("not a schedule payload: missing 'timestamp'"), std::string::npos) << why({});
  EXPECT_NE(why(nullptr).find("not a schedule payload: a JSON object expected, got null"), std::string::npos);
  EXPECT_NE(why(th::json::array()).find("not a schedule payload"), std::string::npos);
  EXPECT_NE(why({{"timestamp", 1772442000000}}).find("'timestamp' must be an RFC 3339 timestamp string"), std::string::npos);
  EXPECT_NE(why({{"timestamp", "tomorrow"}}).find("'timestamp': not an RFC 3339 timestamp"), std::string::npos);
  EXPECT_NE(why({{"timestamp", "2026-03-02T09:00:00.000Z"}, {"upcoming", "2026-03-03T09:00:00.000Z"}})
                .find("'upcoming' must be an array"), std::string::npos);
  EXPECT_NE(why({{"timestamp", "2026-03-02T09:00:00.000Z"}, {"upcoming", {"2026-03-03T09:00:00.000Z", "soon"}}})
                .find("'upcoming[1]'"), std::string::npos);
  EXPECT_NE(why({{"timestamp", "2026-03-02T09:00:00.000Z"}, {"scheduleId", 7}}).find("'scheduleId' must be a string"),
            std::string::npos);
}

TEST(PluginLoaderSdkTest, ScheduledTaskIsATaskThatReadsTheSchedulePayload) {
  EXPECT_EQ(sdk_sync.cron().pattern(), "0 9 * * 1-5");
  EXPECT_EQ(sdk_sync.cron().timezone(), "");
  EXPECT_EQ(sdk_async.cron().timezone(), "Europe/London");
  EXPECT_TRUE(sdk_void.cron().empty());
  EXPECT_EQ(sdk_sync.definition().id, "sdk-sync");
  EXPECT_FALSE(sdk_sync.definition().run.is_coroutine());
  EXPECT_TRUE(sdk_async.definition().run.is_coroutine());

  auto [st, out] = run_through_abi(sdk_sync, full_payload);
  EXPECT_EQ(st, TH_STEP_COMPLETED) << out;
  EXPECT_EQ(out, (th::json{{"at", "2026-03-02T09:00:00.000Z"}, {"task", "sdk-sync"}, {"upcoming", 2}}));
  std::tie(st, out) = run_through_abi(sdk_async, full_payload);
  EXPECT_EQ(st, TH_STEP_COMPLETED) << out;
  EXPECT_EQ(out, (th::json{{"scheduleId", "sched_abc"}}));
  std::tie(st, out) = run_through_abi(sdk_void, full_payload);
  EXPECT_EQ(st, TH_STEP_COMPLETED) << out;
  EXPECT_EQ(out, nullptr);

  // Triggered by hand with `{}`: the run fails at once, with the reason (the coroutine one too):
  // another attempt would get the same payload.
  for (const auto* t : {&sdk_sync, &sdk_async, &sdk_void}) {
    std::tie(st, out) = run_through_abi(*t, "{}");
    EXPECT_EQ(st, TH_STEP_FAILED) << t->definition().id;
    EXPECT_EQ(out.value("name", ""), "AbortTaskRunError") << out;
    EXPECT_EQ(out.value("retry", true), false) << out;
    EXPECT_NE(out.value("message", "").find("not a schedule payload: missing 'timestamp'"), std::string::npos) << out;
  }
}

TEST(PluginLoaderSdkTest, PluginDescriptorMarksScheduledTasks) {
  static const th::task plain{{.id = "sdk-plain", .run = [](th::json p, th::run_context&) { return p; }}};
  th::detail::plugin_registry reg("sdk", "1.0.0", sdk_sync, plain, sdk_async, sdk_void);
  const th_plugin_descriptor* d = reg.descriptor();
  EXPECT_EQ(d->abi_minor, 6u);
  EXPECT_NE(std::string(d->build_info).find("taskhost-sdk 0.5.0"), std::string::npos) << d->build_info;
  ASSERT_EQ(d->task_count, 4u);
  EXPECT_EQ(d->tasks[0].scheduled, 1);
  EXPECT_STREQ(d->tasks[0].schedule_cron, "0 9 * * 1-5");
  EXPECT_EQ(d->tasks[0].schedule_timezone, nullptr) << "\"\" = UTC is written as NULL";
  EXPECT_EQ(d->tasks[1].scheduled, 0);
  EXPECT_EQ(d->tasks[1].schedule_cron, nullptr);
  EXPECT_STREQ(d->tasks[2].schedule_timezone, "Europe/London");
  EXPECT_EQ(d->tasks[3].scheduled, 1);
  EXPECT_EQ(d->tasks[3].schedule_cron, nullptr) << "no declarative schedule";
}
