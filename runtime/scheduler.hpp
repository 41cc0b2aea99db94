// The cron schedules of a deployment, in memory, and the timer that fires them.
//
// A plain class (no actors): the deployment runtime loads the schedules from the store, puts them
// here, and gets a `fire` call for each occurrence, on the scheduler's timer thread. It triggers
// the run; the run's commit records the occurrence as fired (run_store, same transaction), so an
// occurrence has exactly one run across restarts: a crash before the commit leaves the occurrence
// unfired (it fires again, as the catch-up), a crash after it leaves it recorded. The run's
// idempotency key (schedule id + occurrence) guards the same occurrence a second time.
//
// Occurrences missed while the runtime was stopped (or while the timer was late) produce one run,
// for the latest of them: no backfill. An occurrence at or before a schedule's `since` (created,
// changed or activated) never fires.
//
// Example:
//
//   taskhost::scheduler s([](taskhost::schedule_fire f) { /* trigger f.schedule.task_id */ });
//   s.put(record);         // throws cron_error / std::invalid_argument for a bad cron / zone
//   s.start();             // the timer thread; or call poll() with an injected clock (tests)
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/cron.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/run_store.hpp"

namespace taskhost {

/// The problems of the deployment's `schedules:` against the loaded plugins, each as
/// "file:line:col: message": an invalid cron (which field, and why), an unknown time zone, a task
/// that is loaded but not a scheduled task. (A task no plugin provides is a warning at start: its
/// schedule waits for it.) Empty when all is well.
std::vector<std::string> schedule_config_errors(const config::deployment& cfg, const plugin_load_report& report);

/// One occurrence to trigger.
struct schedule_fire {
  schedule_record schedule;                 ///< as it was when it fired
  time_point occurrence{};                  ///< the nominal time (payload.timestamp)
  std::optional<time_point> last;           ///< the previous occurrence that fired (payload.lastTimestamp)
  std::vector<time_point> upcoming;         ///< the next 5 after it (payload.upcoming)
};

/// The payload of a scheduled run (Trigger.dev's shape): timestamp, lastTimestamp (absent when
/// none), timezone, scheduleId, externalId (absent when none), upcoming, type.
nlohmann::json schedule_payload_json(const schedule_fire& f);

/// A schedule as the API shows it (Trigger.dev's ScheduleObject): id, type, task, active,
/// deduplicationKey, externalId, generator {type: CRON, expression, description}, timezone,
/// nextRun (null when it will not fire), environments: [].
nlohmann::json schedule_json(const schedule_record& s, const std::optional<time_point>& next_run);

class scheduler {
public:
  struct options {
    std::function<time_point()> now = [] { return clock_type::now(); };
    /// After failed(): how long before the occurrence is tried again.
    std::chrono::milliseconds retry_after{1000};
  };
  using fire_fn = std::function<void(schedule_fire)>;

  explicit scheduler(fire_fn fire);
  scheduler(fire_fn fire, options o);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  /// Adds or replaces a schedule. `armed`: whether it fires (it is active and its task is
  /// loaded); an unarmed one is only listed. Throws cron_error for a bad cron and
  /// std::invalid_argument for an unknown time zone (nothing changes then).
  void put(schedule_record r, bool armed = true);
  bool remove(const std::string& id);
  std::optional<schedule_record> get(const std::string& id) const;
  /// The IMPERATIVE schedule with this deduplication key, or the DECLARATIVE one with this key.
  std::optional<schedule_record> find_by_key(const std::string& type, const std::string& key) const;
  /// Every schedule, oldest first.
  std::vector<schedule_record> list() const;
  size_t size() const;
  /// When it fires next; nullopt if it is not armed (or never fires again).
  std::optional<time_point> next_run(const std::string& id) const;

  /// The run of `f` could not be recorded: its occurrence is tried again after retry_after (or
  /// the latest occurrence by then, once).
  void failed(const schedule_fire& f);

  /// Fires every schedule that is due at options.now(); returns how many. The timer thread calls
  /// it; tests with an injected clock call it themselves.
  size_t poll();
  /// The earliest time poll() has something to do.
  std::optional<time_point> next_wake() const;

  /// Starts / stops the timer thread. stop() waits for a fire in progress; no fire after it.
  void start();
  void stop();

private:
  struct entry {
    schedule_record rec;
    std::shared_ptr<const cron_expression> cron;
    time_zone zone;
    bool armed = false;
    std::optional<time_point> next;   ///< the next occurrence to fire (armed only)
    time_point not_before{};          ///< after failed(): not before then
  };
  time_point wake_of(const entry& e) const { return std::max(*e.next, e.not_before); }
  void arm_locked(entry& e);
  void disarm_locked(entry& e);

  fire_fn fire_;
  options opts_;
  mutable std::mutex mu_;
  std::map<std::string, entry> entries_;
  /// type + '\n' + dedup key → the ids of the schedules with it (one, unless a store holds
  /// duplicates: find_by_key gives the lowest), so that creating one of 100,000 keyed schedules
  /// does not look at all the others.
  std::unordered_map<std::string, std::set<std::string>> by_key_;
  static std::string key_of(const std::string& type, const std::string& key) { return type + '\n' + key; }
  void index_key_locked(const schedule_record& r);
  void unindex_key_locked(const schedule_record& r);
  std::set<std::pair<time_point, std::string>> due_;  ///< (wake time, id) of armed entries
  std::condition_variable cv_;
  std::thread timer_;
  bool stopping_ = false;
  std::mutex fire_mu_;  ///< held while firing, so stop() returns with no fire in progress
};

}  // namespace taskhost
