#include "runtime/scheduler.hpp"

#include <algorithm>

namespace taskhost {

using json = nlohmann::json;

std::vector<std::string> schedule_config_errors(const config::deployment& cfg, const plugin_load_report& report) {
  std::vector<std::string> out;
  for (size_t i = 0; i < cfg.schedules.size(); ++i) {
    const auto& s = cfg.schedules[i];
    const std::string where = "schedules[" + std::to_string(i) + "]";
    try {
      (void)cron_expression::parse(s.cron);
    } catch (const std::exception& e) {
      out.push_back(s.cron_position.str() + ": " + where + ".cron \"" + s.cron + "\" is invalid: " + e.what());
    }
    try {
      (void)time_zone::locate(s.timezone);
    } catch (const std::exception& e) {
      out.push_back(s.timezone_position.str() + ": " + where + ".timezone: " + e.what());
    }
    if (auto t = report.tasks.find(s.task); t != report.tasks.end() && !t->second.scheduled)
      out.push_back(s.task_position.str() + ": " + where + ".task '" + s.task +
                    "' is not a scheduled task; only tasks defined with th::scheduled_task take schedules");
  }
  return out;
}

json schedule_payload_json(const schedule_fire& f) {
  json j = {{"timestamp", format_time(f.occurrence)},
            {"timezone", f.schedule.timezone},
            {"scheduleId", f.schedule.id},
            {"type", f.schedule.type}};
  if (f.last) j["lastTimestamp"] = format_time(*f.last);
  if (!f.schedule.external_id.empty()) j["externalId"] = f.schedule.external_id;
  json up = json::array();
  for (auto t : f.upcoming) up.push_back(format_time(t));
  j["upcoming"] = std::move(up);
  return j;
}

json schedule_json(const schedule_record& s, const std::optional<time_point>& next_run) {
  std::string description;
  try {
    description = cron_expression::parse(s.cron).description();
  } catch (const std::exception&) {
    description = s.cron;  // a stored cron this build no longer reads: shown as written
  }
  json j = {{"id", s.id},
            {"type", s.type},
            {"task", s.task_id},
            {"active", s.active},
            {"deduplicationKey", s.dedup_key.empty() ? json() : json(s.dedup_key)},
            {"externalId", s.external_id.empty() ? json() : json(s.external_id)},
            {"generator", {{"type", "CRON"}, {"expression", s.cron}, {"description", description}}},
            {"timezone", s.timezone},
            {"nextRun", next_run ? json(format_time(*next_run)) : json()},
            {"environments", json::array()},
            {"createdAt", format_time(s.created_at)},
            {"updatedAt", format_time(s.updated_at)}};
  if (s.last_occurrence) j["lastRun"] = format_time(*s.last_occurrence);
  return j;
}

scheduler::scheduler(fire_fn fire) : scheduler(std::move(fire), options{}) {}

scheduler::scheduler(fire_fn fire, options o) : fire_(std::move(fire)), opts_(std::move(o)) {}

scheduler::~scheduler() { stop(); }

void scheduler::disarm_locked(entry& e) {
  if (e.armed && e.next) due_.erase({wake_of(e), e.rec.id});
  e.next.reset();
}

void scheduler::arm_locked(entry& e) {
  disarm_locked(e);
  if (!e.armed) return;
  // The first occurrence after both the last one that fired and `since`: one that passed while
  // the runtime was down is due at once (the catch-up).
  time_point from = e.rec.since;
  if (e.rec.last_occurrence && *e.rec.last_occurrence > from) from = *e.rec.last_occurrence;
  e.next = e.cron->next(from, e.zone);
  if (e.next) due_.insert({wake_of(e), e.rec.id});
}

void scheduler::put(schedule_record r, bool armed) {
  auto cron = std::make_shared<const cron_expression>(cron_expression::parse(r.cron));  // throws
  auto zone = time_zone::locate(r.timezone);                                          // throws
  std::lock_guard lock(mu_);
  auto [it, fresh] = entries_.try_emplace(r.id);
  entry& e = it->second;
  disarm_locked(e);
  // The caller read the record before this call; an occurrence may have fired since. Its
  // last_occurrence is the newer one (it only moves forward), or the occurrence would fire again.
  if (!fresh && e.rec.last_occurrence && (!r.last_occurrence || *r.last_occurrence < *e.rec.last_occurrence))
    r.last_occurrence = e.rec.last_occurrence;
  if (!fresh) unindex_key_locked(e.rec);
  index_key_locked(r);
  e.rec = std::move(r);
  e.cron = std::move(cron);
  e.zone = std::move(zone);
  e.armed = armed && e.rec.active;
  e.not_before = {};
  arm_locked(e);
  cv_.notify_all();
}

bool scheduler::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  disarm_locked(it->second);
  unindex_key_locked(it->second.rec);
  entries_.erase(it);
  return true;
}

void scheduler::index_key_locked(const schedule_record& r) {
  if (!r.dedup_key.empty()) by_key_[key_of(r.type, r.dedup_key)].insert(r.id);
}

void scheduler::unindex_key_locked(const schedule_record& r) {
  if (r.dedup_key.empty()) return;
  auto it = by_key_.find(key_of(r.type, r.dedup_key));
  if (it == by_key_.end()) return;
  it->second.erase(r.id);
  if (it->second.empty()) by_key_.erase(it);
}

std::optional<schedule_record> scheduler::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.rec;
}

std::optional<schedule_record> scheduler::find_by_key(const std::string& type, const std::string& key) const {
  if (key.empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = by_key_.find(key_of(type, key));
  if (it == by_key_.end()) return std::nullopt;
  return entries_.at(*it->second.begin()).rec;
}

std::vector<schedule_record> scheduler::list() const {
  std::vector<schedule_record> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(entries_.size());
    for (const auto& [id, e] : entries_) out.push_back(e.rec);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  return out;
}

size_t scheduler::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::optional<time_point> scheduler::next_run(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.next;
}

void scheduler::failed(const schedule_fire& f) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(f.schedule.id);
  if (it == entries_.end()) return;
  entry& e = it->second;
  if (!e.armed || e.rec.last_occurrence != f.occurrence) return;  // changed meanwhile: its own plan stands
  disarm_locked(e);
  e.rec.last_occurrence = f.last;
  e.next = f.occurrence;
  e.not_before = opts_.now() + opts_.retry_after;
  due_.insert({wake_of(e), e.rec.id});
  cv_.notify_all();
}

size_t scheduler::poll() {
  std::lock_guard firing(fire_mu_);
  std::vector<schedule_fire> fires;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return 0;
    const time_point now = opts_.now();
    while (!due_.empty() && due_.begin()->first <= now) {
      auto id = due_.begin()->second;
      due_.erase(due_.begin());
      entry& e = entries_.at(id);
      time_point occurrence = *e.next;
      // Late (downtime, a failed trigger, a slow timer): one run, for the latest occurrence
      // that has come.
      if (auto later = e.cron->latest_in(occurrence, now, e.zone)) occurrence = *later;
      schedule_fire f;
      f.occurrence = occurrence;
      f.last = e.rec.last_occurrence;
      f.upcoming = e.cron->upcoming(occurrence, e.zone, 5);
      e.rec.last_occurrence = occurrence;
      e.not_before = {};
      e.next = f.upcoming.empty() ? std::nullopt : std::optional<time_point>(f.upcoming.front());
      if (e.next) due_.insert({wake_of(e), id});
      f.schedule = e.rec;
      fires.push_back(std::move(f));
    }
  }
  for (auto& f : fires) fire_(std::move(f));
  return fires.size();
}

std::optional<time_point> scheduler::next_wake() const {
  std::lock_guard lock(mu_);
  if (due_.empty()) return std::nullopt;
  return due_.begin()->first;
}

void scheduler::start() {
  std::lock_guard lock(mu_);
  if (timer_.joinable()) return;
  stopping_ = false;
  timer_ = std::thread([this] {
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        // Wall-clock times: wake at least once a second, so a clock that jumps is noticed soon.
        const time_point now = opts_.now();
        std::chrono::microseconds wait = std::chrono::seconds(1);
        if (!due_.empty())
          wait = std::clamp(std::chrono::ceil<std::chrono::microseconds>(due_.begin()->first - now), std::chrono::microseconds(0), wait);
        if (wait.count() > 0) cv_.wait_for(lock, wait);
        if (stopping_) return;
      }
      poll();
    }
  });
}

void scheduler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (timer_.joinable() && std::this_thread::get_id() != timer_.get_id()) timer_.join();
  std::lock_guard firing(fire_mu_);  // a poll() from another thread has finished its fires
}

}  // namespace taskhost
