#include "runtime/plugin_loader.hpp"

#include <gtest/gtest.h>

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
  EXPECT_EQ(p.abi_minor, 5u);
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
  auto good = load_plugin(fixture("fixture_good"), tmp / "cache");  // 1.5, no task declares a queue
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
