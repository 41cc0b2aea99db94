#include "runtime/cron.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using taskhost::cron_error;
using taskhost::cron_expression;
using taskhost::time_point;
using taskhost::time_zone;

namespace {

/// "2026-03-29T01:00:00Z", "2026-03-29T02:00:00+01:00" or "2026-03-29T01:00:00.5Z" → time_point.
time_point at(const std::string& iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6)
    throw std::invalid_argument("bad time " + iso);
  std::string rest = iso.substr(static_cast<size_t>(n));
  std::chrono::nanoseconds frac{0};
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    long long scale = 100'000'000;
    for (; i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i])); ++i, scale /= 10)
      frac += std::chrono::nanoseconds((rest[i] - '0') * scale);
    rest = rest.substr(i);
  }
  std::chrono::minutes offset{0};
  if (rest != "Z") {
    int oh = 0, om = 0;
    if (rest.size() != 6 || std::sscanf(rest.c_str() + 1, "%d:%d", &oh, &om) != 2) throw std::invalid_argument("bad zone " + iso);
    offset = std::chrono::minutes((rest[0] == '-' ? -1 : 1) * (oh * 60 + om));
  }
  const auto day = std::chrono::sys_days{std::chrono::year{y} / mo / d};
  return time_point(day.time_since_epoch() + std::chrono::hours(h) + std::chrono::minutes(mi) +
                    std::chrono::seconds(s) - offset + frac);
}

/// A time_point as "YYYY-MM-DDTHH:MM:SSZ" (whole seconds; fractions are shown as "+frac").
std::string iso(time_point t) {
  const auto secs = std::chrono::floor<std::chrono::seconds>(t);
  const auto day = std::chrono::floor<std::chrono::days>(secs);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{secs - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(hms.hours().count()), static_cast<long long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()));
  std::string r = buf;
  if (t != secs) r += "+frac";
  return r;
}

std::string iso(const std::optional<time_point>& t) { return t ? iso(*t) : "nullopt"; }

/// Normalizes an expected ISO string (any offset) to the "Z" form iso() prints.
std::string utc(const std::string& s) { return iso(at(s)); }

struct next_case {
  const char* expr;
  const char* zone;
  const char* after;
  const char* expected;  // any ISO offset; compared as an instant
};

void check_next(const std::vector<next_case>& cases) {
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.expr) + " in " + c.zone + " after " + c.after);
    const auto cron = cron_expression::parse(c.expr);
    const auto tz = time_zone::locate(c.zone);
    EXPECT_EQ(iso(cron.next(at(c.after), tz)), utc(c.expected));
  }
}

std::vector<std::string> isos(const std::vector<time_point>& v) {
  std::vector<std::string> r;
  for (auto t : v) r.push_back(iso(t));
  return r;
}

std::vector<std::string> utcs(std::initializer_list<const char*> v) {
  std::vector<std::string> r;
  for (auto s : v) r.push_back(utc(s));
  return r;
}

std::string parse_error(const std::string& expr, std::string* field = nullptr) {
  try {
    cron_expression::parse(expr);
  } catch (const cron_error& e) {
    if (field) *field = e.field;
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ---- Test helpers (the table's times are only as good as these) ----

TEST(CronTestHelpers, IsoStringsRoundTrip) {
  EXPECT_EQ(iso(at("2026-03-29T02:00:00+01:00")), "2026-03-29T01:00:00Z");
  EXPECT_EQ(iso(at("2026-11-01T01:30:00-04:00")), "2026-11-01T05:30:00Z");
  EXPECT_EQ(iso(at("1970-01-01T00:00:00Z")), "1970-01-01T00:00:00Z");
  EXPECT_EQ(at("1970-01-01T00:00:01.5Z").time_since_epoch(), 1500ms);
  EXPECT_EQ(iso(at("2026-05-10T10:00:00.25Z")), "2026-05-10T10:00:00Z+frac");
}

// ---- Parsing ----

TEST(CronParseTest, TextIsTrimmedAndSingleSpaced) {
  const auto c = cron_expression::parse("  0\t9   * *\t1-5 \n");
  EXPECT_EQ(c.text(), "0 9 * * 1-5");
  EXPECT_FALSE(c.has_seconds());
  EXPECT_TRUE(cron_expression::parse("*/5 * * * * *").has_seconds());
}

TEST(CronParseTest, AcceptsTheWholeSyntax) {
  for (const char* e : {"* * * * *", "0 0 ? * MON", "0 0 * * ?",
                        "0,15,30,45 * * * *", "0-59/15 * * * *", "5/20 * * * *", "0 0 1 jan,Feb,MAR *",
                        "0 0 * * mon-fri", "0 0 * * SUN,7,0", "0 0 * * 5-7", "0 0 * * FRI-SUN", "0 0 L * *",
                        "0 0 1,L * *", "0 0 * * 5L", "0 0 * * FRIL", "0 0 * * 1L,3", "0 0 29 2 *", "0 0 30,31 2,4 *",
                        "59 23 31 12 *", "0 0 9 * * *", "*/10 * * * * *", "00 09 01 01 *", "0 0 13 * 5"}) {
    EXPECT_NO_THROW(cron_expression::parse(e)) << e;
  }
}

TEST(CronParseTest, ErrorsNameTheFieldAndTheReason) {
  struct error_case {
    const char* expr;
    const char* field;
    std::vector<const char*> words;  // what() contains each
  };
  const std::vector<error_case> cases = {
      {"61 * * * *", "minute", {"minute: ", "61", "0-59"}},
      {"* 24 * * *", "hour", {"hour: ", "24", "0-23"}},
      {"* * 0 * *", "day-of-month", {"day-of-month: ", "0", "1-31"}},
      {"* * * 13 *", "month", {"month: ", "13", "1-12"}},
      {"* * * * 8", "day-of-week", {"day-of-week: ", "8", "0-7"}},
      {"60 * * * * *", "second", {"second: ", "60", "0-59"}},
      {"* * * *", "", {"expected 5 fields", "minute hour day-of-month month day-of-week", "got 4"}},
      {"* * * * * * *", "", {"expected 5 fields", "6 with a leading seconds field", "got 7"}},
      {"", "", {"empty expression", "got 0"}},
      {"   \t ", "", {"empty expression", "got 0"}},
      {"* * 31 2 *", "day-of-month", {"day-of-month: 31 never occurs in February, so the schedule never fires"}},
      {"0 0 30 2 *", "day-of-month", {"day-of-month: 30 never occurs in February"}},
      {"0 0 31 4,6 *", "day-of-month", {"31 never occurs in April or June"}},
      {"0 0 30,31 FEB *", "day-of-month", {"30,31 never occur in February"}},
      {"*/0 * * * *", "minute", {"minute: ", "step 0"}},
      {"5-1 * * * *", "minute", {"minute: ", "5-1", "starts after it ends"}},
      {"* * * * FRI-MON", "day-of-week", {"day-of-week: ", "FRI-MON", "starts after it ends"}},
      {"* * * * FOO", "day-of-week", {"day-of-week: ", "FOO"}},
      {"* * * FOO *", "month", {"month: ", "FOO", "JAN-DEC"}},
      {"* * * * JAN", "day-of-week", {"day-of-week: ", "JAN"}},
      {"L * * * *", "minute", {"minute: ", "L is only allowed"}},
      {"* * * L *", "month", {"month: ", "L is only allowed"}},
      {"* * * * L", "day-of-week", {"day-of-week: ", "L needs a weekday"}},
      {"* * L/2 * *", "day-of-month", {"day-of-month: ", "L/2"}},
      {"1,,2 * * * *", "minute", {"minute: ", "empty item", "1,,2"}},
      {"1, * * * *", "minute", {"minute: ", "empty item"}},
      {",1 * * * *", "minute", {"minute: ", "empty item"}},
      {"1x * * * *", "minute", {"minute: ", "'x'"}},
      {"1-2-3 * * * *", "minute", {"minute: ", "1-2-3"}},
      {"-1 * * * *", "minute", {"minute: ", "-1"}},
      {"*/ * * * *", "minute", {"minute: ", "missing step"}},
      {"*/5/2 * * * *", "minute", {"minute: ", "*/5/2"}},
      {"*/60 * * * *", "minute", {"minute: ", "step 60"}},
      {"? * * * *", "minute", {"minute: ", "'?' is only allowed in day-of-month and day-of-week"}},
      {"* * 1,? * *", "day-of-month", {"day-of-month: ", "'?' must be the whole field"}},
      {"* * 15W * *", "day-of-month", {"day-of-month: ", "15W"}},
      {"* * * * 5#2", "day-of-week", {"day-of-week: ", "5#2"}},
      {"* * * * 5L-6", "day-of-week", {"day-of-week: ", "5L-6"}},
      {"99999999999 * * * *", "minute", {"minute: ", "99999999999 is out of range 0-59"}},
  };
  for (const auto& c : cases) {
    std::string field = "(none)";
    const std::string what = parse_error(c.expr, &field);
    EXPECT_EQ(field, c.field) << c.expr << " → " << what;
    for (const char* w : c.words) EXPECT_NE(what.find(w), std::string::npos) << c.expr << " → " << what << "\n  lacks: " << w;
  }
}

TEST(CronParseTest, TwentyNinthOfFebruaryIsValidBecauseOfLeapYears) {
  EXPECT_NO_THROW(cron_expression::parse("* * 29 2 *"));
  EXPECT_NO_THROW(cron_expression::parse("0 0 31 1,2 *"));  // January has a 31st
  EXPECT_NO_THROW(cron_expression::parse("0 0 31 2 5"));    // day-of-week adds Fridays in February
  EXPECT_NO_THROW(cron_expression::parse("0 0 L 2 *"));
}

TEST(CronParseTest, ErrorIsAnInvalidArgument) {
  EXPECT_THROW(cron_expression::parse("61 * * * *"), std::invalid_argument);
  EXPECT_THROW(cron_expression::parse("61 * * * *"), cron_error);
}

// ---- Time zones ----

TEST(CronTimeZoneTest, DefaultIsUtc) {
  const time_zone tz;
  EXPECT_TRUE(tz.is_utc());
  EXPECT_EQ(tz.name(), "UTC");
  EXPECT_TRUE(time_zone::locate("UTC").is_utc());
  EXPECT_TRUE(time_zone::locate("Etc/UTC").is_utc());
  EXPECT_EQ(time_zone::locate("Etc/UTC").name(), "UTC");
}

TEST(CronTimeZoneTest, LocatesIanaNames) {
  const auto london = time_zone::locate("Europe/London");
  EXPECT_EQ(london.name(), "Europe/London");
  EXPECT_FALSE(london.is_utc());
  EXPECT_EQ(time_zone::locate("US/Eastern").name(), "US/Eastern");  // a link
  const auto copy = london;
  EXPECT_EQ(copy, london);
}

TEST(CronTimeZoneTest, UnknownNameThrowsWithTheName) {
  for (const char* bad : {"Mars/Olympus", "", "europe/london", "localtime", "../../etc/passwd", "Europe/"}) {
    try {
      time_zone::locate(bad);
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), "unknown time zone '" + std::string(bad) + "'");
    }
  }
}

TEST(CronTimeZoneTest, NamesAreSortedAndIncludeZonesLinksAndUtc) {
  const auto names = time_zone::names();
  EXPECT_GT(names.size(), 300u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_TRUE(std::adjacent_find(names.begin(), names.end()) == names.end());
  for (const char* n : {"Europe/London", "UTC", "America/New_York", "Etc/UTC", "US/Eastern"})
    EXPECT_TRUE(std::binary_search(names.begin(), names.end(), n)) << n;
  EXPECT_FALSE(std::binary_search(names.begin(), names.end(), std::string("localtime")));
  for (const auto& n : names) EXPECT_NO_THROW(time_zone::locate(n)) << n;
}

TEST(CronTimeZoneTest, DaylightSavingContinuesAfter2037) {
  // The zone files list transitions up to 2037; after that the zone's POSIX rule applies.
  check_next({
      {"0 12 1 7 *", "Europe/London", "2040-01-01T00:00:00Z", "2040-07-01T12:00:00+01:00"},
      {"0 12 1 1 *", "Europe/London", "2040-07-01T00:00:00Z", "2041-01-01T12:00:00Z"},
      {"30 1 25 3 *", "Europe/London", "2040-01-01T00:00:00Z", "2040-03-25T01:00:00Z"},  // skipped
      {"30 1 28 10 *", "Europe/London", "2040-01-01T00:00:00Z", "2040-10-28T00:30:00Z"},  // first pass
      {"30 2 13 3 *", "America/New_York", "2050-01-01T00:00:00Z", "2050-03-13T07:00:00Z"},
      {"0 12 4 7 *", "America/New_York", "2050-01-01T00:00:00Z", "2050-07-04T12:00:00-04:00"},
      {"0 12 25 12 *", "America/New_York", "2099-07-01T00:00:00Z", "2099-12-25T12:00:00-05:00"},
      {"0 12 1 1 *", "Australia/Sydney", "2045-06-01T00:00:00Z", "2046-01-01T12:00:00+11:00"},
      {"0 12 1 7 *", "Australia/Sydney", "2045-01-01T00:00:00Z", "2045-07-01T12:00:00+10:00"},
  });
}

// ---- next() ----

TEST(CronNextTest, EveryMinuteListsRangesAndSteps) {
  check_next({
      {"* * * * *", "UTC", "2026-05-10T10:00:00Z", "2026-05-10T10:01:00Z"},
      {"* * * * *", "UTC", "2026-05-10T10:00:59.999Z", "2026-05-10T10:01:00Z"},
      {"* * * * *", "UTC", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
      {"0,30 * * * *", "UTC", "2026-05-10T10:10:00Z", "2026-05-10T10:30:00Z"},
      {"0,30 * * * *", "UTC", "2026-05-10T10:30:00Z", "2026-05-10T11:00:00Z"},  // strictly after
      {"15-17 * * * *", "UTC", "2026-05-10T10:16:00Z", "2026-05-10T10:17:00Z"},
      {"15-17 * * * *", "UTC", "2026-05-10T10:17:00Z", "2026-05-10T11:15:00Z"},
      {"*/15 * * * *", "UTC", "2026-05-10T10:46:00Z", "2026-05-10T11:00:00Z"},
      {"*/15 * * * *", "UTC", "2026-05-10T23:45:00Z", "2026-05-11T00:00:00Z"},
      {"10-30/5 * * * *", "UTC", "2026-05-10T10:12:00Z", "2026-05-10T10:15:00Z"},
      {"10-30/5 * * * *", "UTC", "2026-05-10T10:30:00Z", "2026-05-10T11:10:00Z"},
      {"5/20 * * * *", "UTC", "2026-05-10T10:06:00Z", "2026-05-10T10:25:00Z"},
      {"5/20 * * * *", "UTC", "2026-05-10T10:45:00Z", "2026-05-10T11:05:00Z"},
      {"0 */6 * * *", "UTC", "2026-05-10T18:00:00Z", "2026-05-11T00:00:00Z"},
      {"0 9-17 * * *", "UTC", "2026-05-10T17:00:00Z", "2026-05-11T09:00:00Z"},
      {"30 9 * * *", "UTC", "2026-05-10T09:29:59Z", "2026-05-10T09:30:00Z"},
  });
}

TEST(CronNextTest, MonthAndWeekdayNamesAndSunday) {
  // 2026-05-09 is a Saturday, 2026-05-10 a Sunday.
  check_next({
      {"0 0 1 JAN *", "UTC", "2026-05-10T00:00:00Z", "2027-01-01T00:00:00Z"},
      {"0 0 1 jun-aug *", "UTC", "2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z"},
      {"0 0 1 jun-aug *", "UTC", "2026-08-01T00:00:00Z", "2027-06-01T00:00:00Z"},
      {"0 9 * * mon-fri", "UTC", "2026-05-08T09:00:00Z", "2026-05-11T09:00:00Z"},  // Fri → Mon
      {"0 9 * * MON-FRI", "UTC", "2026-05-11T08:00:00Z", "2026-05-11T09:00:00Z"},
      {"0 12 * * 0", "UTC", "2026-05-06T00:00:00Z", "2026-05-10T12:00:00Z"},
      {"0 12 * * 7", "UTC", "2026-05-06T00:00:00Z", "2026-05-10T12:00:00Z"},
      {"0 12 * * sun", "UTC", "2026-05-06T00:00:00Z", "2026-05-10T12:00:00Z"},
      {"0 0 * * 5-7", "UTC", "2026-05-07T00:00:00Z", "2026-05-08T00:00:00Z"},  // Thu → Fri
      {"0 0 * * 5-7", "UTC", "2026-05-09T00:00:00Z", "2026-05-10T00:00:00Z"},  // Sat → Sun
      {"0 0 * * 5-7", "UTC", "2026-05-10T00:00:00Z", "2026-05-15T00:00:00Z"},  // Sun → Fri
      {"0 0 * * FRI-SUN", "UTC", "2026-05-10T00:00:00Z", "2026-05-15T00:00:00Z"},
      {"0 0 ? * TUE", "UTC", "2026-05-10T00:00:00Z", "2026-05-12T00:00:00Z"},
  });
}

TEST(CronNextTest, LastDayOfTheMonth) {
  check_next({
      {"0 9 L * *", "UTC", "2026-01-15T00:00:00Z", "2026-01-31T09:00:00Z"},
      {"0 9 L * *", "UTC", "2027-02-01T00:00:00Z", "2027-02-28T09:00:00Z"},
      {"0 9 L * *", "UTC", "2028-02-01T00:00:00Z", "2028-02-29T09:00:00Z"},
      {"0 9 L * *", "UTC", "2026-04-01T00:00:00Z", "2026-04-30T09:00:00Z"},
      {"0 9 L * *", "UTC", "2026-04-30T09:00:00Z", "2026-05-31T09:00:00Z"},
      {"0 9 1,L * *", "UTC", "2026-04-30T09:00:00Z", "2026-05-01T09:00:00Z"},
      {"0 0 L 2 *", "UTC", "2026-03-01T00:00:00Z", "2027-02-28T00:00:00Z"},
      {"0 9 L 2 *", "UTC", "2100-01-01T00:00:00Z", "2100-02-28T09:00:00Z"},  // 2100 is no leap year
  });
}

TEST(CronNextTest, LastWeekdayOfTheMonth) {
  // May 2026: Fridays 1, 8, 15, 22, 29; Mondays 4, 11, 18, 25; Wednesdays 6, 13, 20, 27.
  check_next({
      {"0 9 * * 5L", "UTC", "2026-05-01T00:00:00Z", "2026-05-29T09:00:00Z"},
      {"0 9 * * FRIL", "UTC", "2026-05-01T00:00:00Z", "2026-05-29T09:00:00Z"},
      {"0 9 * * 5L", "UTC", "2026-05-29T09:00:00Z", "2026-06-26T09:00:00Z"},
      {"0 9 * * 0L", "UTC", "2026-05-01T00:00:00Z", "2026-05-31T09:00:00Z"},  // May 31 is a Sunday
      {"0 9 * * 7L", "UTC", "2026-05-01T00:00:00Z", "2026-05-31T09:00:00Z"},
      {"0 9 * * 1L,3", "UTC", "2026-05-21T00:00:00Z", "2026-05-25T09:00:00Z"},  // last Monday
      {"0 9 * * 1L,3", "UTC", "2026-05-25T09:00:00Z", "2026-05-27T09:00:00Z"},  // then Wednesday
      {"0 9 * * 1L,3", "UTC", "2026-05-01T00:00:00Z", "2026-05-06T09:00:00Z"},  // Wednesday first
  });
}

TEST(CronNextTest, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
  // 2026-02-06 and 2026-02-13 are Fridays; 2026-05-13 is a Wednesday.
  check_next({
      {"0 0 13 * 5", "UTC", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z"},   // a Friday
      {"0 0 13 * 5", "UTC", "2026-05-09T00:00:00Z", "2026-05-13T00:00:00Z"},   // a 13th (Wednesday)
      {"0 0 13 * 5", "UTC", "2026-05-13T00:00:00Z", "2026-05-15T00:00:00Z"},   // the next Friday
      {"0 0 13 * *", "UTC", "2026-05-01T00:00:00Z", "2026-05-13T00:00:00Z"},   // day-of-week `*`
      {"0 0 13 * ?", "UTC", "2026-05-01T00:00:00Z", "2026-05-13T00:00:00Z"},
      {"0 0 * * 5", "UTC", "2026-05-09T00:00:00Z", "2026-05-15T00:00:00Z"},    // day-of-month `*`
      {"0 0 ? * 5", "UTC", "2026-05-09T00:00:00Z", "2026-05-15T00:00:00Z"},
      {"0 0 31 2 5", "UTC", "2026-01-31T00:00:00Z", "2026-02-06T00:00:00Z"},
  });
}

TEST(CronNextTest, SecondsField) {
  check_next({
      {"*/10 * * * * *", "UTC", "2026-05-10T10:00:05Z", "2026-05-10T10:00:10Z"},
      {"*/10 * * * * *", "UTC", "2026-05-10T10:00:50Z", "2026-05-10T10:01:00Z"},
      {"*/10 * * * * *", "UTC", "2026-05-10T10:00:09.999Z", "2026-05-10T10:00:10Z"},
      {"30 0 9 * * *", "UTC", "2026-05-10T09:00:29Z", "2026-05-10T09:00:30Z"},
      {"30 0 9 * * *", "UTC", "2026-05-10T09:00:30Z", "2026-05-11T09:00:30Z"},
      {"* * * * * *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
      {"0 * * * * *", "UTC", "2026-05-10T10:00:01Z", "2026-05-10T10:01:00Z"},
  });
}

TEST(CronNextTest, LeapYearsAndYearRollover) {
  check_next({
      {"0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
      {"0 0 29 2 *", "UTC", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
      {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},  // 2100 is no leap year
      {"59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
      {"0 0 1 1 *", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
      {"0 0 31 * *", "UTC", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},  // April has no 31st
      {"0 0 1 1 *", "Europe/London", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
      {"0 0 1 1 *", "America/New_York", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00-05:00"},
  });
}

TEST(CronNextTest, UtcAndZonesAgreeOnAbsoluteOffsets) {
  check_next({
      {"0 9 * * *", "Europe/London", "2026-07-01T00:00:00Z", "2026-07-01T09:00:00+01:00"},
      {"0 9 * * *", "Europe/London", "2026-01-05T00:00:00Z", "2026-01-05T09:00:00Z"},
      {"0 9 * * *", "America/New_York", "2026-07-01T00:00:00Z", "2026-07-01T09:00:00-04:00"},
      {"0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z", "2026-07-01T09:00:00+05:30"},
      {"0 0 * * *", "Pacific/Kiritimati", "2026-07-01T00:00:00Z", "2026-07-02T00:00:00+14:00"},
  });
}

TEST(CronNextTest, FarFutureGivesNullopt) {
  const auto c = cron_expression::parse("* * * * *");
  EXPECT_FALSE(c.next(time_point::max(), time_zone()).has_value());
  EXPECT_FALSE(c.next(time_point::max() - 10s, time_zone()).has_value());
  EXPECT_TRUE(c.next(time_point::max() - 30s, time_zone()).has_value());
  EXPECT_TRUE(c.next(time_point::min(), time_zone()).has_value());
  EXPECT_TRUE(c.next(time_point::min(), time_zone::locate("Europe/London")).has_value());
}

// ---- Daylight saving ----

TEST(CronDstTest, SkippedTimeFiresOnceAtTheChange) {
  // Europe/London springs forward 2026-03-29 01:00 UTC (01:00 GMT → 02:00 BST);
  // America/New_York 2026-03-08 07:00 UTC (02:00 EST → 03:00 EDT).
  check_next({
      {"30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
      {"30 1 * * *", "Europe/London", "2026-03-29T01:00:00Z", "2026-03-30T01:30:00+01:00"},
      {"0 2 * * *", "Europe/London", "2026-03-28T12:00:00Z", "2026-03-29T02:00:00+01:00"},
      {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
      {"30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T02:30:00-04:00"},
      {"30 2 * * *", "America/New_York", "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z"},
      {"30 1 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T01:30:00-05:00"},
  });
}

TEST(CronDstTest, SeveralSkippedTimesFireOnceTogether) {
  const auto c = cron_expression::parse("*/15 1 * * *");
  const auto tz = time_zone::locate("Europe/London");
  EXPECT_EQ(isos(c.upcoming(at("2026-03-28T12:00:00Z"), tz, 3)),
            utcs({"2026-03-29T01:00:00Z", "2026-03-30T01:00:00+01:00", "2026-03-30T01:15:00+01:00"}));
  // Every second of the skipped hour: one run at the change, then 03:00 local.
  const auto s = cron_expression::parse("* * 2 * * *");
  const auto ny = time_zone::locate("America/New_York");
  EXPECT_EQ(isos(s.upcoming(at("2026-03-08T06:59:58Z"), ny, 2)),
            utcs({"2026-03-08T07:00:00Z", "2026-03-09T02:00:00-04:00"}));
}

TEST(CronDstTest, RepeatedTimeFiresOnceAtItsFirstOccurrence) {
  // Europe/London falls back 2026-10-25 01:00 UTC (02:00 BST → 01:00 GMT);
  // America/New_York 2026-11-01 06:00 UTC (02:00 EDT → 01:00 EST).
  check_next({
      {"30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", "2026-10-25T01:30:00+01:00"},
      {"30 1 * * *", "Europe/London", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
      {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T01:30:00-04:00"},
      {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T01:30:00-05:00"},
      // From inside the second pass: the repeated times do not fire again.
      {"*/30 * * * *", "Europe/London", "2026-10-25T01:10:00Z", "2026-10-25T02:00:00Z"},
      {"* * * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"},
  });
}

TEST(CronDstTest, UpcomingAcrossChanges) {
  const auto london = time_zone::locate("Europe/London");
  const auto ny = time_zone::locate("America/New_York");
  EXPECT_EQ(isos(cron_expression::parse("*/30 * * * *").upcoming(at("2026-10-24T23:50:00Z"), london, 5)),
            utcs({"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z",
                  "2026-10-25T03:00:00Z"}));
  EXPECT_EQ(isos(cron_expression::parse("0 * * * *").upcoming(at("2026-11-01T03:30:00Z"), ny, 5)),
            utcs({"2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z",
                  "2026-11-01T09:00:00Z"}));
  EXPECT_EQ(isos(cron_expression::parse("0 9 * * *").upcoming(at("2026-03-27T12:00:00Z"), london, 5)),
            utcs({"2026-03-28T09:00:00Z", "2026-03-29T09:00:00+01:00", "2026-03-30T09:00:00+01:00",
                  "2026-03-31T09:00:00+01:00", "2026-04-01T09:00:00+01:00"}));
  EXPECT_EQ(isos(cron_expression::parse("0 * * * *").upcoming(at("2026-03-08T05:30:00Z"), ny, 4)),
            utcs({"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00",
                  "2026-03-08T05:00:00-04:00"}));
}

TEST(CronDstTest, NextIsTheSameFromAnyPointBeforeIt) {
  // next() from anywhere in [previous, occurrence) gives the occurrence: no run is skipped or doubled.
  const char* exprs[] = {"*/15 * * * *", "30 1 * * *", "*/20 1-2 * * *", "0 0-3 * * *", "*/7 * * * * *"};
  const char* zones[] = {"Europe/London", "America/New_York", "Australia/Lord_Howe"};
  for (const char* z : zones) {
    for (const char* e : exprs) {
      SCOPED_TRACE(std::string(e) + " in " + z);
      const auto c = cron_expression::parse(e);
      const auto tz = time_zone::locate(z);
      for (const char* start : {"2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-10-24T20:00:00Z",
                                "2026-10-31T20:00:00Z", "2026-04-04T10:00:00Z"}) {
        auto prev = at(start);
        for (int i = 0; i < 60; ++i) {
          const auto t = c.next(prev, tz);
          ASSERT_TRUE(t.has_value());
          ASSERT_GT(*t, prev);
          EXPECT_EQ(c.next(*t - 1s, tz), t) << iso(*t);
          EXPECT_EQ(c.next(prev + (*t - prev) / 2, tz), t) << iso(*t);
          prev = *t;
        }
      }
    }
  }
}

// ---- upcoming() and latest_in() ----

TEST(CronUpcomingTest, ListsTheNextOccurrencesInOrder) {
  const auto c = cron_expression::parse("0 9 * * 1-5");
  EXPECT_EQ(isos(c.upcoming(at("2026-05-08T10:00:00Z"), time_zone(), 3)),
            utcs({"2026-05-11T09:00:00Z", "2026-05-12T09:00:00Z", "2026-05-13T09:00:00Z"}));
  EXPECT_TRUE(c.upcoming(at("2026-05-08T10:00:00Z"), time_zone(), 0).empty());
  EXPECT_EQ(cron_expression::parse("* * * * *").upcoming(time_point::max() - 90s, time_zone(), 5).size(), 2u);
}

TEST(CronLatestInTest, SecondLevelExpressionOverThirtyDaysIsFast) {
  const auto c = cron_expression::parse("* * * * * *");
  const auto start = std::chrono::steady_clock::now();
  const auto r = c.latest_in(at("2026-05-01T00:00:00Z"), at("2026-05-31T00:00:00.5Z"), time_zone());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(iso(r), "2026-05-31T00:00:00Z");
  EXPECT_LT(elapsed, 50ms);
  const auto london = time_zone::locate("Europe/London");
  EXPECT_EQ(iso(c.latest_in(at("2026-03-01T00:00:00Z"), at("2026-03-31T12:34:56Z"), london)), "2026-03-31T12:34:56Z");
}

TEST(CronLatestInTest, FindsTheLatestOccurrenceInTheWindow) {
  // 2026-05-29 is a Friday.
  EXPECT_EQ(iso(cron_expression::parse("0 9 * * 1-5")
                    .latest_in(at("2026-05-01T00:00:00Z"), at("2026-05-31T00:00:00Z"), time_zone::locate("Europe/London"))),
            utc("2026-05-29T09:00:00+01:00"));
  EXPECT_EQ(iso(cron_expression::parse("30 15 10 * * *")
                    .latest_in(at("2026-05-01T00:00:00Z"), at("2026-05-31T10:15:29Z"), time_zone())),
            "2026-05-30T10:15:30Z");
  EXPECT_EQ(iso(cron_expression::parse("30 15 10 * * *")
                    .latest_in(at("2026-05-01T00:00:00Z"), at("2026-05-31T10:15:30Z"), time_zone())),
            "2026-05-31T10:15:30Z");  // until is inclusive
  EXPECT_EQ(iso(cron_expression::parse("0,1 * * * * *")
                    .latest_in(at("2026-05-01T00:00:00Z"), at("2026-05-10T10:00:05Z"), time_zone())),
            "2026-05-10T10:00:01Z");  // the later of two neighbours
  EXPECT_EQ(iso(cron_expression::parse("0 0 1 1 *")
                    .latest_in(at("2025-12-31T23:59:59Z"), at("2026-12-31T00:00:00Z"), time_zone())),
            "2026-01-01T00:00:00Z");
  // Across a fall-back change: the repeated 01:30 counted once, at its first occurrence.
  EXPECT_EQ(iso(cron_expression::parse("30 1 * * *")
                    .latest_in(at("2026-10-24T12:00:00Z"), at("2026-10-25T12:00:00Z"), time_zone::locate("Europe/London"))),
            "2026-10-25T00:30:00Z");
}

TEST(CronLatestInTest, NulloptWhenNothingIsInRange) {
  const auto yearly = cron_expression::parse("0 0 1 1 *");
  EXPECT_FALSE(yearly.latest_in(at("2026-01-01T00:00:00Z"), at("2026-12-31T23:59:59Z"), time_zone()).has_value());  // after is exclusive
  EXPECT_FALSE(yearly.latest_in(at("2026-06-01T00:00:00Z"), at("2026-06-01T00:00:00Z"), time_zone()).has_value());
  EXPECT_FALSE(yearly.latest_in(at("2027-06-01T00:00:00Z"), at("2026-06-01T00:00:00Z"), time_zone()).has_value());
  const auto every_second = cron_expression::parse("* * * * * *");
  EXPECT_FALSE(every_second.latest_in(at("2026-06-01T00:00:00Z"), at("2026-06-01T00:00:00.9Z"), time_zone()).has_value());
}

TEST(CronLatestInTest, AgreesWithSteppingThroughNext) {
  const char* exprs[] = {"*/7 * * * *", "0 9 * * 1-5", "0 0 L * *", "15 30 2 * * *", "0 0 13 * 5", "0 0 29 2 *"};
  const char* zones[] = {"UTC", "Europe/London", "America/New_York"};
  const std::pair<const char*, const char*> windows[] = {{"2026-03-01T00:00:00Z", "2026-03-09T00:00:00Z"},
                                                         {"2026-10-20T00:00:00Z", "2026-11-03T13:13:13Z"},
                                                         {"2026-05-10T10:00:00Z", "2026-05-10T10:06:59Z"},
                                                         {"2027-01-01T00:00:00Z", "2028-06-01T00:00:00Z"}};
  for (const char* e : exprs) {
    for (const char* z : zones) {
      for (const auto& [from, to] : windows) {
        SCOPED_TRACE(std::string(e) + " in " + z + " (" + from + ", " + to + "]");
        const auto c = cron_expression::parse(e);
        const auto tz = time_zone::locate(z);
        std::optional<time_point> expected;
        for (auto t = c.next(at(from), tz); t && *t <= at(to); t = c.next(*t, tz)) expected = t;
        EXPECT_EQ(iso(c.latest_in(at(from), at(to), tz)), iso(expected));
      }
    }
  }
}

// ---- description() ----

TEST(CronDescriptionTest, DescribesCommonSchedules) {
  const std::pair<const char*, const char*> cases[] = {
      {"* * * * *", "Every minute"},
      {"* * * * * *", "Every second"},
      {"*/5 * * * * *", "Every 5 seconds"},
      {"*/15 * * * *", "Every 15 minutes"},
      {"0 9 * * 1-5", "At 09:00, Monday through Friday"},
      {"0 */2 * * *", "At 0 minutes past the hour, every 2 hours"},
      {"0 9 L * *", "At 09:00 on the last day of the month"},
      {"0 9 * * 5L", "At 09:00 on the last Friday of the month"},
      {"30 0 9 * * *", "At 09:00:30"},
      {"0 9,17 * * *", "At 09:00 and 17:00"},
      {"*/15 9-17 * * *", "Every 15 minutes, between 09:00 and 17:59"},
      {"5/20 * * * *", "Every 20 minutes, starting at 5 minutes past the hour"},
      {"10-30/5 * * * *", "Every 5 minutes, minutes 10 through 30 past the hour"},
      {"0 12 * * 0", "At 12:00, only on Sunday"},
      {"0 12 * * 7", "At 12:00, only on Sunday"},
      {"0 0 * * FRI-SUN", "At 00:00, Friday through Sunday"},
      {"0 0 * * 1,3,5", "At 00:00, only on Monday, Wednesday and Friday"},
      {"0 0 1,15 * *", "At 00:00, on days 1 and 15 of the month"},
      {"0 0 1 * *", "At 00:00, on day 1 of the month"},
      {"0 0 1 1 *", "At 00:00, on day 1 of the month, only in January"},
      {"0 0 1 */3 *", "At 00:00, on day 1 of the month, every 3 months"},
      {"0 0 * 6-8 *", "At 00:00, June through August"},
      {"0 0 13 * 5", "At 00:00, on day 13 of the month, or on Friday"},
      {"0 9 * * 1L,3", "At 09:00, only on Wednesday or on the last Monday of the month"},
      {"0 0 L,15 * *", "At 00:00, on day 15 and the last day of the month"},
      {"0 0 */2 * *", "At 00:00, every 2 days"},
      {"0 0 1-7 * *", "At 00:00, between day 1 and 7 of the month"},
      {"15 * * * *", "At 15 minutes past the hour"},
      {"0,15,45 * * * *", "At 0, 15 and 45 minutes past the hour"},
      {"1-5,10-20 * * * *", "Minutes 1 through 5 and 10 through 20 past the hour"},
      {"*/10 30 9 * * *", "Every 10 seconds, at 30 minutes past the hour, between 09:00 and 09:59"},
      {"* 9,12,17 * * *", "Every minute, during the 09:00, 12:00 and 17:00 hours"},
  };
  for (const auto& [expr, text] : cases) EXPECT_EQ(cron_expression::parse(expr).description(), text) << expr;
}

TEST(CronDescriptionTest, EveryValidExpressionGetsASentence) {
  // A sweep over field forms: each description is non-empty, capitalized, free of double spaces
  // and dangling separators.
  const char* seconds[] = {"", "0 ", "30 ", "*/5 ", "* ", "1,2,3 ", "10-20 "};
  const char* minutes[] = {"*", "0", "*/15", "5/20", "10-30/5", "0,30", "1-5,10"};
  const char* hours[] = {"*", "9", "*/2", "9-17", "9,17", "0-4,6", "3/4"};
  const char* doms[] = {"*", "?", "L", "1", "1,15", "*/2", "1-7", "L,15"};
  const char* months[] = {"*", "JAN", "*/3", "6-8", "1,6,12"};
  const char* dows[] = {"*", "?", "1-5", "0", "7", "5L", "1L,3", "SAT,SUN"};
  size_t n = 0;
  for (auto s : seconds)
    for (auto mi : minutes)
      for (auto h : hours)
        for (auto dom : doms)
          for (auto mo : months)
            for (auto dow : dows) {
              const std::string expr = std::string(s) + mi + " " + h + " " + dom + " " + mo + " " + dow;
              const std::string d = cron_expression::parse(expr).description();
              ++n;
              ASSERT_FALSE(d.empty()) << expr;
              EXPECT_TRUE(std::isupper(static_cast<unsigned char>(d[0]))) << expr << " → " << d;
              EXPECT_EQ(d.find("  "), std::string::npos) << expr << " → " << d;
              EXPECT_EQ(d.find(",,"), std::string::npos) << expr << " → " << d;
              EXPECT_EQ(d.find(", ,"), std::string::npos) << expr << " → " << d;
              EXPECT_NE(d.back(), ',') << expr << " → " << d;
              EXPECT_NE(d.back(), ' ') << expr << " → " << d;
            }
  EXPECT_EQ(n, 7u * 7 * 7 * 8 * 5 * 8);
}

// ---- Speed (printed, not asserted) ----

TEST(CronSpeedTest, PrintsNanosecondsPerNextCall) {
  const std::pair<const char*, const char*> cases[] = {
      {"0 9 * * 1-5", "Europe/London"}, {"*/5 * * * *", "UTC"}, {"0 9 * * 1-5", "UTC"}, {"*/5 * * * *", "America/New_York"}};
  for (const auto& [expr, zone] : cases) {
    const auto c = cron_expression::parse(expr);
    const auto tz = time_zone::locate(zone);
    // Starts spread over 2026 at odd offsets, as a scheduler's "now" would be.
    std::vector<time_point> starts;
    for (int i = 0; i < 1024; ++i) starts.push_back(at("2026-01-01T00:00:00Z") + std::chrono::seconds(i * 30'803));
    constexpr int calls = 200'000;
    time_point sum{};
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) sum += c.next(starts[i % starts.size()], tz).value().time_since_epoch() / calls;
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / calls;
    std::printf("[ speed    ] next(\"%s\", %s): %.0f ns/call\n", expr, zone, ns);
    EXPECT_GT(sum, at("2026-01-01T00:00:00Z"));
  }
}
