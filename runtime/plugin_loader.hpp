// Loads task plugins (.so files) with Boost.DLL and checks them before running their code.
//
// Example:
//
//   auto report = taskhost::load_plugins("build/plugins", ".taskhost/plugin-cache");
//   for (auto& p : report.refused) std::cerr << p.file << ": " << p.reason << "\n";
//   const loaded_task& t = report.tasks.at("hello-world");
//
// Checks, in order, for each file:
//  1. an ELF file (read from disk; no code runs);
//  2. its dynamic symbol table exports `taskhost_plugin_v<MAJOR>` with this host's major (read from
//     disk; no code runs) — a plugin built for another major is named as such;
//  3. it is copied to a content-addressed file in the cache folder and loaded from there with
//     dlopen(RTLD_NOW | RTLD_LOCAL) — dlopen of a path already loaded would return stale code, and
//     rebuilding the original in place must never change a loaded plugin. Loading runs the
//     library's static initializers;
//  4. the entry function is called and its descriptor checked: sizes, ABI major equal, ABI minor
//     not newer than the host, a name, valid and unique task ids, all functions present, and each
//     task's own settings (retry, max duration, queue, schedule: a cron that parses, a known
//     time zone, only on a scheduled task).
// A plugin that fails any check is refused whole, with the file and the reason; the others load.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <taskhost/plugin_abi.h>

#include "taskhost/config/deployment.hpp"

namespace taskhost {

/// One task of a loaded plugin. OWNERSHIP: `library` keeps the .so loaded for as long as any copy
/// of this struct lives; `descriptor` points into the library.
struct loaded_task {
  std::string id;
  std::string description;
  std::string plugin_name;
  const th_task_descriptor* descriptor = nullptr;
  std::shared_ptr<void> library;
  /// The task definition's own retry policy and max duration (ABI >= 1.1; unset for 1.0 plugins).
  th_retry_options retry{0, -1, 0.0, -1, -1};
  uint64_t max_duration_ms = 0;
  /// The queue the task definition puts it on (ABI >= 1.5): "" = its own queue. The limit is
  /// the definition's concurrency_limit for that queue (-1 = not set: unlimited unless the
  /// deployment's `queues:` says otherwise).
  std::string queue_name;
  int queue_concurrency_limit = -1;
  /// A scheduled task (ABI >= 1.6; false for older plugins): only it accepts schedules, and its
  /// runs get the schedule payload. `schedule_cron` is its declarative schedule ("" = none: its
  /// schedules come from the deployment's YAML or the API), already checked to parse;
  /// `schedule_timezone` the IANA zone it is read in ("" = UTC), checked to exist. Both are ""
  /// for an ordinary task.
  bool scheduled = false;
  std::string schedule_cron{};
  std::string schedule_timezone{};
};

/// A lifecycle hook of a loaded plugin (ABI >= 1.2). OWNERSHIP: like loaded_task.
struct loaded_hook {
  th_hook_kind kind = TH_HOOK_INIT;
  std::string name;
  std::string task_id;  ///< empty: global (every task)
  std::string plugin_name;
  const th_hook_descriptor* descriptor = nullptr;
  std::shared_ptr<void> library;
};

/// A middleware of a loaded plugin (ABI >= 1.2). OWNERSHIP: like loaded_task.
struct loaded_middleware {
  std::string name;
  std::string plugin_name;
  const th_middleware_descriptor* descriptor = nullptr;
  std::shared_ptr<void> library;
};

struct loaded_plugin {
  std::filesystem::path file;         ///< where it was found
  std::filesystem::path loaded_from;  ///< the content-addressed copy
  std::string name, version, build_info;
  uint32_t abi_major = 0, abi_minor = 0;
  std::vector<loaded_task> tasks;
  std::vector<loaded_hook> hooks;  ///< global and task hooks, in declaration order
  std::vector<loaded_middleware> middleware;
};

struct refused_plugin {
  std::filesystem::path file;
  std::string reason;
};

struct plugin_load_report {
  std::vector<loaded_plugin> plugins;
  std::vector<refused_plugin> refused;
  std::map<std::string, loaded_task> tasks;  ///< all tasks of all loaded plugins, by id
  std::vector<loaded_hook> hooks;            ///< all hooks, plugins in load order
  std::map<std::string, loaded_middleware> middleware;  ///< by name (unique across plugins)
};

/// The deployment's middleware names that no loaded plugin provides, as
/// "file:line:col: middleware 'x' is not provided by any loaded plugin" messages.
std::vector<std::string> unknown_middleware(const config::deployment& cfg, const plugin_load_report& report);

/// tasks.<id>.queue names that neither the deployment's `queues:` nor any loaded task definition
/// declares, as "file:line:col: tasks.x.queue names queue 'y', which ..." messages.
std::vector<std::string> unknown_queues(const config::deployment& cfg, const plugin_load_report& report);

/// The name of a hook kind as users write it ("on_start", "catch_error", ...).
std::string_view hook_kind_name(int kind);

/// Loads one plugin file. Throws plugin_error with the reason on any failed check.
loaded_plugin load_plugin(const std::filesystem::path& file, const std::filesystem::path& cache_dir);

/// Loads every `*.so` in `dir` (sorted by name). Refusals (including a task id that an earlier
/// plugin already declared) are reported, never thrown. Throws plugin_error if `dir` is missing.
plugin_load_report load_plugins(const std::filesystem::path& dir, const std::filesystem::path& cache_dir);

class plugin_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Whether a task id is acceptable: 1..128 chars of [A-Za-z0-9._-], starting with a letter or digit.
bool valid_task_id(std::string_view id);

}  // namespace taskhost
