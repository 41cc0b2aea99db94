// Cron schedules: parse an expression once, then ask for its next occurrences in an IANA time zone.
//
// Example:
//
//   auto cron = cron_expression::parse("0 9 * * MON-FRI");        // throws cron_error
//   auto tz = time_zone::locate("Europe/London");                  // throws std::invalid_argument
//   std::optional<time_point> t = cron.next(std::chrono::system_clock::now(), tz);
//   cron.description();                                            // "At 09:00, Monday through Friday"
//
// Syntax
// ------
// Five fields `minute hour day-of-month month day-of-week`, or six with a LEADING `second` field.
// Fields are separated by spaces or tabs; leading and trailing whitespace is ignored.
//
//   field          values                 also
//   second         0-59
//   minute         0-59
//   hour           0-23
//   day-of-month   1-31                   `?` (same as `*`), `L` (the last day of the month)
//   month          1-12 or JAN-DEC
//   day-of-week    0-7 or SUN-SAT         `?` (same as `*`), `nL` (the last weekday n of the month,
//                  (0 and 7 are Sunday)   e.g. `5L` or `FRIL`: the last Friday)
//
// In every field: `*` (any value), a value, a range `a-b` (a <= b), a step `*/n`, `a-b/n` or `a/n`
// (= a to the field's maximum, every n; n >= 1), and comma lists of these (`1,15,L`, `1L,3`). Names
// are case-insensitive and usable in ranges (`mon-fri`, `JAN-MAR`); `FRI-SUN` ends on Sunday.
//
// Days: a day-of-month or day-of-week field written as `*` or `?` is unrestricted. If both are
// restricted, a day matches when EITHER matches (Vixie cron, cron-parser): `0 0 13 * 5` fires on
// every 13th and every Friday. Otherwise only the restricted one counts.
//
// Rejected with a cron_error that names the field: a wrong number of fields, values out of range,
// unknown names, a step of 0, a range that starts after it ends, empty list items, stray
// characters, `?`/`L` where they are not allowed, and schedules that never fire (a day-of-month
// that exists in none of the months, e.g. `0 0 30 2 *`; `0 0 29 2 *` is fine: leap years).
//
// Occurrences
// -----------
// An occurrence is a wall-clock time in the zone. next(after) finds the first matching wall-clock
// time after the wall-clock time of `after` (at minute resolution, or second resolution with a
// seconds field) and maps it to an instant:
//   - a wall-clock time that exists once is that instant;
//   - a wall-clock time skipped by a spring-forward change (e.g. 01:30 in Europe/London on
//     2026-03-29) fires at the change itself (02:00 BST = 01:00 UTC). Several skipped times fire
//     ONCE together: `*/15 1 * * *` fires once at 01:00 UTC that day, not four times;
//   - a wall-clock time repeated by a fall-back change fires once, at its FIRST occurrence: during
//     the repeated hour a schedule fires on the first pass only.
// next() returns the first such instant strictly after `after`. Times are whole seconds.
//
// Time zones come from the system's tzdata (/usr/share/zoneinfo). Beyond the last transition a
// zone file lists (2037 for Debian's files), the zone's POSIX rule (the file's footer) continues
// the daylight-saving changes.
//
// Thread safety: cron_expression and time_zone are immutable values; every const method may be
// called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost {

using time_point = std::chrono::system_clock::time_point;

/// An IANA time zone (Debian's tzdata). Cheap to copy.
class time_zone {
public:
  time_zone();  // UTC
  /// Throws std::invalid_argument("unknown time zone 'Mars/Olympus'") for a name tzdata lacks
  /// (names are case-sensitive). "UTC" and "Etc/UTC" give UTC (name() "UTC", computed without
  /// any tzdata lookup).
  static time_zone locate(std::string_view name);
  const std::string& name() const;
  bool is_utc() const;
  /// Every zone name tzdata knows (zones and links), sorted, including "UTC".
  static std::vector<std::string> names();

  friend bool operator==(const time_zone& a, const time_zone& b) { return a.name_ == b.name_; }

private:
  friend class cron_expression;
  const void* zone_ = nullptr;  // the zone's data (cron.cpp); nullptr for UTC. Lives forever.
  std::string name_ = "UTC";
};

/// Thrown by cron_expression::parse. `field` is "second", "minute", "hour", "day-of-month",
/// "month" or "day-of-week", or empty when the expression as a whole is wrong (number of fields).
/// what() is "<field>: <msg>" (just <msg> without a field), e.g. "minute: 61 is out of range 0-59",
/// "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds
/// field, got 4", "day-of-month: 31 never occurs in February, so the schedule never fires".
struct cron_error : std::invalid_argument {
  std::string field;
  cron_error(std::string field, const std::string& msg);
};

class cron_expression {
public:
  /// Throws cron_error.
  static cron_expression parse(std::string_view text);

  /// The first occurrence strictly after `after`, in zone `tz`. nullopt only if none within 100
  /// years (or beyond what time_point can hold).
  std::optional<time_point> next(time_point after, const time_zone& tz) const;
  /// The next `n` occurrences after `after` (fewer only where next() gives nullopt).
  std::vector<time_point> upcoming(time_point after, const time_zone& tz, size_t n) const;
  /// The latest occurrence in (after, until] — for "at most one catch-up run after downtime".
  /// nullopt if none. About 2·log2(until - after in seconds) calls of next(), however often the
  /// schedule fires.
  std::optional<time_point> latest_in(time_point after, time_point until, const time_zone& tz) const;

  /// The expression as given, trimmed, fields single-spaced.
  const std::string& text() const { return text_; }
  bool has_seconds() const { return has_seconds_; }
  /// English, in the style of cronstrue: "Every minute", "At 09:00, Monday through Friday",
  /// "At 0 minutes past the hour, every 2 hours", "At 09:00 on the last day of the month",
  /// "At 09:00 on the last Friday of the month", "Every 5 seconds".
  std::string description() const;

private:
  cron_expression() = default;
  /// The first matching wall-clock time (seconds since 1970-01-01 local) >= `from`, or nullopt if
  /// none on a day up to `last_day` (days since 1970-01-01).
  std::optional<std::int64_t> next_local(std::int64_t from, std::int64_t last_day) const;
  bool day_matches(int y, unsigned m, unsigned d, unsigned weekday) const;

  std::string text_;
  std::uint64_t seconds_ = 1;     // bit s: second s (just 0 without a seconds field)
  std::uint64_t minutes_ = 0;     // bit m: minute m
  std::uint32_t hours_ = 0;       // bit h: hour h
  std::uint32_t days_ = 0;        // bit d: day-of-month d (1-31)
  std::uint16_t months_ = 0;      // bit m: month m (1-12)
  std::uint8_t weekdays_ = 0;     // bit w: weekday w (0 = Sunday)
  std::uint8_t last_weekdays_ = 0;  // bit w: the last weekday w of the month (`wL`)
  bool last_day_ = false;         // `L` in day-of-month
  bool any_day_of_month_ = true;  // day-of-month written `*` or `?`
  bool any_day_of_week_ = true;   // day-of-week written `*` or `?`
  bool has_seconds_ = false;
};

}  // namespace taskhost
