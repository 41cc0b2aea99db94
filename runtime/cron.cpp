#include "runtime/cron.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include <date/tz.h>

namespace taskhost {

namespace {

using std::int64_t;

constexpr int64_t seconds_per_day = 86400;

// ---- Civil calendar (proleptic Gregorian, days since 1970-01-01; H. Hinnant's algorithms) ----

struct civil_date {
  int64_t y;
  unsigned m, d;
};

constexpr int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

constexpr int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

constexpr civil_date civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

/// 0 = Sunday.
constexpr unsigned weekday_from_days(int64_t z) { return static_cast<unsigned>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6); }

constexpr bool is_leap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

constexpr unsigned days_in_month(int64_t y, unsigned m) {
  constexpr unsigned table[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : table[m];
}

static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);
static_assert(civil_from_days(11017).y == 2000 && civil_from_days(11017).m == 3);
static_assert(weekday_from_days(0) == 4);   // Thursday
static_assert(weekday_from_days(-1) == 3);  // Wednesday

/// The lowest set bit at or above `from`, or -1.
inline int next_bit(std::uint64_t bits, unsigned from) {
  if (from >= 64) return -1;
  const std::uint64_t v = bits >> from;
  return v == 0 ? -1 : static_cast<int>(from) + std::countr_zero(v);
}

constexpr int64_t floor_seconds(time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

constexpr int64_t max_seconds =
    std::chrono::duration_cast<std::chrono::seconds>(time_point::max().time_since_epoch()).count();
constexpr int64_t min_seconds =
    std::chrono::duration_cast<std::chrono::seconds>(time_point::min().time_since_epoch()).count();

time_point to_time_point(int64_t s) { return time_point(std::chrono::seconds(s)); }

// ---- POSIX TZ rules (the footer of a TZif file), for instants after the file's last transition ----
//
// date 3.0.1 reading the OS tzdb ignores the footer, so after the last listed transition (2037 in
// Debian's "fat" files) it keeps the last offset forever: no DST from 2038 on. The footer says how
// the changes continue (e.g. "GMT0BST,M3.5.0/1,M10.5.0"). date's own ptz.h would parse it, but it
// does not compile with -std=c++20 (ambiguous hh_mm_ss), hence this small reader.

struct posix_date {
  char kind = 'M';  // 'M' (Mm.w.d), 'J' (Jn, 1-365, no Feb 29), 'N' (n, 0-365)
  unsigned month = 0, week = 0, weekday = 0, day = 0;
  int64_t time = 7200;  // seconds after local midnight, may be negative or past 24 h

  int64_t local_seconds(int64_t y) const {
    int64_t days;
    if (kind == 'M') {
      const int64_t first = days_from_civil(y, month, 1);
      unsigned d = 1 + (weekday + 7 - weekday_from_days(first)) % 7 + (week - 1) * 7;
      while (d > days_in_month(y, month)) d -= 7;
      days = first + d - 1;
    } else if (kind == 'J') {
      days = days_from_civil(y, 1, 1) + day - 1 + (is_leap(y) && day >= 60 ? 1 : 0);
    } else {
      days = days_from_civil(y, 1, 1) + day;
    }
    return days * seconds_per_day + time;
  }
};

struct posix_rule {
  int64_t std_offset = 0;  // seconds east of UTC
  int64_t dst_offset = 0;
  posix_date start, end;  // DST starts at `start` (standard time), ends at `end` (DST time)

  struct transition {
    int64_t at;
    int64_t offset_after;
  };

  /// The transitions of the years around `t`, sorted.
  std::array<transition, 6> around(int64_t t) const {
    const int64_t y = civil_from_days(floor_div(t, seconds_per_day)).y;
    std::array<transition, 6> r;
    for (int i = 0; i < 3; ++i) {
      r[2 * i] = {start.local_seconds(y - 1 + i) - std_offset, dst_offset};
      r[2 * i + 1] = {end.local_seconds(y - 1 + i) - dst_offset, std_offset};
    }
    std::sort(r.begin(), r.end(), [](const transition& a, const transition& b) { return a.at < b.at; });
    return r;
  }

  int64_t offset_at(int64_t t) const {
    const auto tr = around(t);
    int64_t off = tr[0].offset_after == dst_offset ? std_offset : dst_offset;
    for (const auto& x : tr)
      if (x.at <= t) off = x.offset_after;
    return off;
  }
};

struct posix_reader {
  std::string_view s;
  size_t i = 0;

  bool done() const { return i >= s.size(); }
  char peek() const { return done() ? '\0' : s[i]; }

  bool name() {
    if (peek() == '<') {
      const size_t close = s.find('>', i);
      if (close == std::string_view::npos) return false;
      i = close + 1;
      return true;
    }
    const size_t begin = i;
    while (!done() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    return i - begin >= 3;
  }
  bool number(int64_t& v, unsigned max_digits) {
    const size_t begin = i;
    v = 0;
    while (!done() && std::isdigit(static_cast<unsigned char>(s[i])) && i - begin < max_digits) v = v * 10 + (s[i++] - '0');
    return i > begin;
  }
  /// [+-]h[h[h]][:mm[:ss]] in seconds.
  bool hms(int64_t& v) {
    int sign = 1;
    if (peek() == '+' || peek() == '-') sign = s[i++] == '-' ? -1 : 1;
    int64_t h = 0, m = 0, sec = 0;
    if (!number(h, 3)) return false;
    if (peek() == ':') {
      ++i;
      if (!number(m, 2)) return false;
      if (peek() == ':') {
        ++i;
        if (!number(sec, 2)) return false;
      }
    }
    v = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool date(posix_date& d) {
    int64_t a = 0, b = 0, c = 0;
    if (peek() == 'M') {
      ++i;
      if (!number(a, 2) || peek() != '.') return false;
      ++i;
      if (!number(b, 1) || peek() != '.') return false;
      ++i;
      if (!number(c, 1)) return false;
      if (a < 1 || a > 12 || b < 1 || b > 5 || c > 6) return false;
      d.kind = 'M', d.month = static_cast<unsigned>(a), d.week = static_cast<unsigned>(b), d.weekday = static_cast<unsigned>(c);
    } else if (peek() == 'J') {
      ++i;
      if (!number(a, 3) || a < 1 || a > 365) return false;
      d.kind = 'J', d.day = static_cast<unsigned>(a);
    } else {
      if (!number(a, 3) || a > 365) return false;
      d.kind = 'N', d.day = static_cast<unsigned>(a);
    }
    if (peek() == '/') {
      ++i;
      if (!hms(d.time)) return false;
    }
    return true;
  }
};

/// The rule of a footer like "CET-1CEST,M3.5.0,M10.5.0/3"; nullopt if it has no DST or is not
/// understood.
std::optional<posix_rule> parse_posix_rule(std::string_view s) {
  posix_reader r{s};
  posix_rule rule;
  int64_t west = 0;
  if (!r.name() || !r.hms(west)) return std::nullopt;
  rule.std_offset = -west;
  if (r.done()) return std::nullopt;  // no DST
  if (!r.name()) return std::nullopt;
  rule.dst_offset = rule.std_offset + 3600;
  if (r.peek() != ',') {
    if (!r.hms(west)) return std::nullopt;
    rule.dst_offset = -west;
  }
  if (r.peek() != ',') return std::nullopt;  // DST without rules: unspecified defaults, not in tzdata
  ++r.i;
  if (!r.date(rule.start) || r.peek() != ',') return std::nullopt;
  ++r.i;
  if (!r.date(rule.end) || !r.done()) return std::nullopt;
  if (rule.std_offset == rule.dst_offset) return std::nullopt;
  return rule;
}

/// The footer (last line) of a TZif v2+ file, or "".
std::string tzif_footer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 6 || data.compare(0, 4, "TZif") != 0 || data[4] < '2' || data.back() != '\n') return {};
  const size_t begin = data.rfind('\n', data.size() - 2);
  if (begin == std::string::npos) return {};
  return data.substr(begin + 1, data.size() - begin - 2);
}

// ---- Zones ----

struct zone_data {
  const date::time_zone* tz = nullptr;
  std::optional<posix_rule> tail;  // continues the zone from tail_from on
  int64_t tail_from = 0;           // the last transition date knows of
};

zone_data make_zone_data(const date::time_zone* tz) {
  zone_data z{tz, std::nullopt, 0};
  const auto far = tz->get_info(date::sys_days{date::year{3000} / 1 / 1});
  auto rule = parse_posix_rule(tzif_footer("/usr/share/zoneinfo/" + tz->name()));
  if (!rule) return z;
  const int64_t from = far.begin.time_since_epoch().count();
  // Trust the rule only if the file lists each change the rule makes in the two years before (the
  // file may list more, e.g. Gaza's Ramadan changes) and it agrees at the seam.
  for (int64_t t = from - 2 * 366 * seconds_per_day; t <= from; t += 300 * seconds_per_day)
    for (const auto& x : rule->around(t)) {
      if (x.at < from - 2 * 366 * seconds_per_day || x.at > from) continue;
      const auto info = tz->get_info(date::sys_seconds{std::chrono::seconds{x.at}});
      if (info.begin.time_since_epoch().count() != x.at || info.offset.count() != x.offset_after) return z;
    }
  if (rule->offset_at(from) != far.offset.count()) return z;
  z.tail = rule;
  z.tail_from = from;
  return z;
}

const zone_data& zone_for(const date::time_zone* tz) {
  static std::mutex mutex;
  static std::map<const date::time_zone*, std::unique_ptr<zone_data>> zones;  // never freed
  std::lock_guard lock(mutex);
  auto& slot = zones[tz];
  if (!slot) slot = std::make_unique<zone_data>(make_zone_data(tz));
  return *slot;
}

/// Seconds east of UTC at instant `t`.
int64_t offset_at(const zone_data& z, int64_t t) {
  const auto info = z.tz->get_info(date::sys_seconds{std::chrono::seconds{t}});
  if (z.tail && info.begin.time_since_epoch().count() >= z.tail_from) return z.tail->offset_at(t);
  return info.offset.count();
}

/// A wall-clock time mapped to an instant (see the header): `instant`, and `resume`, the first
/// wall-clock time after the gap or overlap the time falls in (the time itself if neither).
struct mapped_time {
  int64_t instant;
  int64_t resume;
};

mapped_time map_with_rule(const posix_rule& r, int64_t l) {
  const int64_t t_std = l - r.std_offset, t_dst = l - r.dst_offset;
  const bool std_ok = r.offset_at(t_std) == r.std_offset, dst_ok = r.offset_at(t_dst) == r.dst_offset;
  if (std_ok != dst_ok) return {std_ok ? t_std : t_dst, l};
  const int64_t lo = std::min(t_std, t_dst), hi = std::max(t_std, t_dst);
  int64_t at = lo;
  for (const auto& x : r.around(lo))
    if (x.at > lo && x.at <= hi) at = x.at;
  const int64_t resume = at + std::max(r.std_offset, r.dst_offset);
  return {std_ok ? lo : at, resume};  // ambiguous: the earlier instant; nonexistent: the change
}

mapped_time map_local(const zone_data& z, int64_t l) {
  const auto li = z.tz->get_info(date::local_seconds{std::chrono::seconds{l}});
  switch (li.result) {
    case date::local_info::unique:
      if (z.tail && li.first.begin.time_since_epoch().count() >= z.tail_from) return map_with_rule(*z.tail, l);
      return {l - li.first.offset.count(), l};
    case date::local_info::nonexistent: {
      const int64_t at = li.second.begin.time_since_epoch().count();
      return {at, at + std::max(li.first.offset.count(), li.second.offset.count())};
    }
    case date::local_info::ambiguous:
    default:
      return {l - li.first.offset.count(), li.first.end.time_since_epoch().count() + li.first.offset.count()};
  }
}

// ---- Parsing ----

enum class field_kind { second, minute, hour, day_of_month, month, day_of_week };

struct field_spec {
  field_kind kind;
  const char* name;
  int min, max;
};

constexpr field_spec specs[] = {
    {field_kind::second, "second", 0, 59},        {field_kind::minute, "minute", 0, 59},
    {field_kind::hour, "hour", 0, 23},            {field_kind::day_of_month, "day-of-month", 1, 31},
    {field_kind::month, "month", 1, 12},          {field_kind::day_of_week, "day-of-week", 0, 7},
};

constexpr const char* month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
constexpr const char* month_words[] = {"", "January", "February", "March", "April", "May", "June",
                                       "July", "August", "September", "October", "November", "December"};
constexpr const char* weekday_words[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/// The values of one field: bits, plus `L` forms.
struct parsed_field {
  std::uint64_t bits = 0;
  bool last_day = false;            // `L` in day-of-month
  std::uint8_t last_weekdays = 0;   // `nL` in day-of-week
  bool any = false;                 // written `*` or `?`
};

class field_parser {
public:
  field_parser(const field_spec& spec, std::string_view text) : spec_(spec), text_(text) {}

  parsed_field parse() {
    if (text_ == "*" || text_ == "?") {
      if (text_ == "?" && !day_field()) fail("'?' is only allowed in day-of-month and day-of-week");
      out_.any = true;
      add_range(spec_.min, wildcard_max(), 1);
      return out_;
    }
    size_t begin = 0;
    for (;;) {
      const size_t comma = text_.find(',', begin);
      const auto item = text_.substr(begin, comma == std::string_view::npos ? std::string_view::npos : comma - begin);
      if (item.empty()) fail("empty item in list '" + std::string(text_) + "'");
      parse_item(item);
      if (comma == std::string_view::npos) break;
      begin = comma + 1;
    }
    return out_;
  }

private:
  [[noreturn]] void fail(const std::string& msg) const { throw cron_error(spec_.name, msg); }

  bool day_field() const { return spec_.kind == field_kind::day_of_month || spec_.kind == field_kind::day_of_week; }
  /// `*` and `a/n` run to 6 in day-of-week (7 is only another name for Sunday).
  int wildcard_max() const { return spec_.kind == field_kind::day_of_week ? 6 : spec_.max; }

  std::string range_text() const { return std::to_string(spec_.min) + "-" + std::to_string(spec_.max); }

  void add_range(int a, int b, int step) {
    for (int v = a; v <= b; v += step) out_.bits |= std::uint64_t{1} << (spec_.kind == field_kind::day_of_week ? v % 7 : v);
  }

  /// A value at item[i...]: a number or a name. Advances i.
  int value(std::string_view item, size_t& i, bool& was_name, bool& last_suffix) {
    was_name = false;
    last_suffix = false;
    const size_t begin = i;
    if (i < item.size() && is_digit(item[i])) {
      while (i < item.size() && is_digit(item[i])) ++i;
      const auto digits = item.substr(begin, i - begin);
      int v = 0;
      if (digits.size() > 4 || (v = std::stoi(std::string(digits))) < spec_.min || v > spec_.max)
        fail(std::string(digits) + " is out of range " + range_text());
      if (spec_.kind == field_kind::day_of_week && i < item.size() && (item[i] == 'L' || item[i] == 'l')) {
        ++i;
        last_suffix = true;
      }
      return v;
    }
    if (i < item.size() && is_alpha(item[i])) {
      while (i < item.size() && is_alpha(item[i])) ++i;
      auto word = item.substr(begin, i - begin);
      if (iequals(word, "L") && !day_field())
        fail("L is only allowed in day-of-month (the last day of the month) and day-of-week (5L: the last Friday)");
      if (spec_.kind == field_kind::month) {
        for (int m = 0; m < 12; ++m)
          if (iequals(word, month_names[m])) return was_name = true, m + 1;
        fail("unknown month '" + std::string(word) + "' (expected JAN-DEC or 1-12)");
      }
      if (spec_.kind == field_kind::day_of_week) {
        if (word.size() == 4 && (word[3] == 'L' || word[3] == 'l')) {
          word = word.substr(0, 3);
          last_suffix = true;
        }
        for (int d = 0; d < 7; ++d)
          if (iequals(word, weekday_names[d])) return was_name = true, d;
        if (iequals(item.substr(begin, i - begin), "L"))
          fail("L needs a weekday before it, e.g. 5L or FRIL for the last Friday of the month");
        fail("unknown weekday '" + std::string(item.substr(begin, i - begin)) + "' (expected SUN-SAT or 0-7)");
      }
      if (iequals(word, "L"))
        fail("L stands alone for the last day of the month; '" + std::string(item) + "' is not supported");
      fail("unexpected '" + std::string(word) + "' in '" + std::string(item) + "' (expected a number " + range_text() + ")");
    }
    if (i < item.size()) fail("unexpected '" + std::string(1, item[i]) + "' in '" + std::string(item) + "'");
    fail("missing value in '" + std::string(item) + "'");
  }

  void parse_item(std::string_view item) {
    if (spec_.kind == field_kind::day_of_month && iequals(item, "L")) {
      out_.last_day = true;
      return;
    }
    if (item.find('?') != std::string_view::npos) {
      if (!day_field()) fail("'?' is only allowed in day-of-month and day-of-week");
      fail("'?' must be the whole field, not part of '" + std::string(item) + "'");
    }
    size_t i = 0;
    int a = 0, b = 0;
    bool name = false, last = false;
    if (item[0] == '*') {
      i = 1;
      a = spec_.min;
      b = wildcard_max();
    } else {
      a = value(item, i, name, last);
      if (last) {
        if (i != item.size())
          fail("unexpected '" + std::string(item.substr(i)) + "' in '" + std::string(item) + "' (" +
               std::string(item.substr(0, i)) + " stands alone: the last " + weekday_words[a % 7] + " of the month)");
        out_.last_weekdays |= static_cast<std::uint8_t>(1u << (a % 7));
        return;
      }
      b = a;
      if (i < item.size() && item[i] == '-') {
        ++i;
        bool end_name = false;
        b = value(item, i, end_name, last);
        if (last) fail("L cannot end a range ('" + std::string(item) + "')");
        // FRI-SUN: Sunday ends the week.
        if (spec_.kind == field_kind::day_of_week && end_name && b == 0 && a > 0) b = 7;
        if (a > b) fail("range " + std::string(item.substr(0, i)) + " starts after it ends");
      } else if (i < item.size() && item[i] == '/') {
        b = a <= wildcard_max() ? wildcard_max() : spec_.max;  // a/n: a to the end, every n
      }
    }
    int step = 1;
    if (i < item.size() && item[i] == '/') {
      ++i;
      const size_t begin = i;
      while (i < item.size() && is_digit(item[i])) ++i;
      const auto digits = item.substr(begin, i - begin);
      if (digits.empty()) fail("missing step after '/' in '" + std::string(item) + "'");
      const int span = spec_.max - spec_.min;
      if (digits.size() > 4 || (step = std::stoi(std::string(digits))) > span)
        fail("step " + std::string(digits) + " is out of range 1-" + std::to_string(span));
      if (step == 0) fail("step 0 in '" + std::string(item) + "': a step must be at least 1");
    }
    if (i != item.size()) fail("unexpected '" + std::string(item.substr(i)) + "' in '" + std::string(item) + "'");
    add_range(a, b, step);
  }

  const field_spec& spec_;
  std::string_view text_;
  parsed_field out_;
};

// ---- Describing ----

std::string join_words(const std::vector<std::string>& words, const char* last_sep = " and ") {
  std::string r;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) r += i + 1 == words.size() ? last_sep : ", ";
    r += words[i];
  }
  return r;
}

std::vector<int> values_of(std::uint64_t bits, int lo, int hi) {
  std::vector<int> v;
  for (int i = lo; i <= hi; ++i)
    if (bits >> i & 1) v.push_back(i);
  return v;
}

/// The common difference of `v` if it is an arithmetic progression of >= 2 values with step >= 2.
int progression_step(const std::vector<int>& v) {
  if (v.size() < 2) return 0;
  const int step = v[1] - v[0];
  if (step < 2) return 0;
  for (size_t i = 2; i < v.size(); ++i)
    if (v[i] - v[i - 1] != step) return 0;
  return step;
}

/// "every n" from the field's start to its end: `*/n`.
bool is_every(const std::vector<int>& v, int lo, int hi, int step) {
  return step > 0 && v.front() == lo && v.back() + step > hi &&
         (v.size() >= 3 || step * static_cast<int>(v.size()) == hi - lo + 1);
}

struct run {
  int first, last;
};

/// Consecutive runs of three or more values stay runs; shorter ones become single values.
std::vector<run> runs_of(const std::vector<int>& v) {
  std::vector<run> r;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (j - i >= 2) {
      r.push_back({v[i], v[j]});
    } else {
      for (size_t k = i; k <= j; ++k) r.push_back({v[k], v[k]});
    }
    i = j + 1;
  }
  return r;
}

bool all_single(const std::vector<run>& r) {
  return std::all_of(r.begin(), r.end(), [](const run& x) { return x.first == x.last; });
}

std::string two_digits(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }
std::string clock(int h, int m) { return two_digits(h) + ":" + two_digits(m); }

/// Seconds or minutes: "every 5 minutes", "at 0 minutes past the hour", ...
std::string describe_sub(const std::vector<int>& v, const char* unit, const char* past) {
  const std::string units = std::string(unit) + "s";
  if (v.size() == 60) return "every " + std::string(unit);
  const int step = progression_step(v);
  if (is_every(v, 0, 59, step)) return "every " + std::to_string(step) + " " + units;
  if (v.size() == 1) return "at " + std::to_string(v[0]) + " " + (v[0] == 1 ? unit : units) + " past the " + past;
  if (step > 0 && v.size() >= 3) {
    if (v.back() + step > 59)
      return "every " + std::to_string(step) + " " + units + ", starting at " + std::to_string(v[0]) + " " + units +
             " past the " + past;
    return "every " + std::to_string(step) + " " + units + ", " + units + " " + std::to_string(v.front()) + " through " +
           std::to_string(v.back()) + " past the " + past;
  }
  const auto r = runs_of(v);
  std::vector<std::string> words;
  for (const auto& x : r)
    words.push_back(x.first == x.last ? std::to_string(x.first)
                                      : std::to_string(x.first) + " through " + std::to_string(x.last));
  if (all_single(r)) return "at " + join_words(words) + " " + units + " past the " + past;
  return units + " " + join_words(words) + " past the " + past;
}

std::string describe_hours(const std::vector<int>& v) {
  if (v.size() == 24) return "";
  const int step = progression_step(v);
  if (is_every(v, 0, 23, step)) return "every " + std::to_string(step) + " hours";
  if (v.size() == 1) return "between " + clock(v[0], 0) + " and " + clock(v[0], 59);
  if (step > 0 && v.size() >= 3) {
    if (v.back() + step > 23) return "every " + std::to_string(step) + " hours, starting at " + clock(v[0], 0);
    return "every " + std::to_string(step) + " hours, between " + clock(v.front(), 0) + " and " + clock(v.back(), 59);
  }
  const auto r = runs_of(v);
  std::vector<std::string> words;
  if (all_single(r)) {
    for (int h : v) words.push_back(clock(h, 0));
    return "during the " + join_words(words) + " hours";
  }
  for (const auto& x : r) words.push_back("between " + clock(x.first, 0) + " and " + clock(x.last, 59));
  return join_words(words);
}

/// Weekdays in display order, Monday first (so FRI-SUN reads "Friday through Sunday").
std::vector<int> weekdays_monday_first(std::uint64_t bits) {
  std::vector<int> v;  // 1..7 where 7 is Sunday
  for (int d = 1; d <= 7; ++d)
    if (bits >> (d % 7) & 1) v.push_back(d);
  return v;
}

std::string describe_months(std::uint16_t bits) {
  const auto v = values_of(bits, 1, 12);
  if (v.size() == 12) return "";
  const int step = progression_step(v);
  if (is_every(v, 1, 12, step)) return ", every " + std::to_string(step) + " months";
  const auto r = runs_of(v);
  std::vector<std::string> words;
  for (const auto& x : r)
    words.push_back(x.first == x.last ? month_words[x.first]
                                      : std::string(month_words[x.first]) + " through " + month_words[x.last]);
  if (r.size() == 1 && r[0].first != r[0].last) return ", " + words[0];
  return ", only in " + join_words(words);
}

}  // namespace

// ---- cron_error ----

cron_error::cron_error(std::string f, const std::string& msg)
    : std::invalid_argument(f.empty() ? msg : f + ": " + msg), field(std::move(f)) {}

// ---- time_zone ----

time_zone::time_zone() = default;

time_zone time_zone::locate(std::string_view name) {
  if (name == "UTC" || name == "Etc/UTC") return time_zone();
  const date::time_zone* tz = nullptr;
  // "localtime" is Debian's link to /etc/localtime (the machine's zone), not an IANA name.
  if (name != "localtime") {
    try {
      tz = date::locate_zone(name);
    } catch (const std::exception&) {
    }
  }
  if (tz == nullptr) throw std::invalid_argument("unknown time zone '" + std::string(name) + "'");
  time_zone r;
  r.zone_ = &zone_for(tz);
  r.name_ = std::string(name);
  return r;
}

const std::string& time_zone::name() const { return name_; }

bool time_zone::is_utc() const { return zone_ == nullptr; }

std::vector<std::string> time_zone::names() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> r;
    for (const auto& z : date::get_tzdb().zones)
      if (z.name() != "localtime") r.push_back(z.name());
    r.push_back("UTC");
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
  }();
  return all;
}

// ---- cron_expression ----

cron_expression cron_expression::parse(std::string_view text) {
  std::vector<std::string_view> fields;
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t begin = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > begin) fields.push_back(text.substr(begin, i - begin));
  }
  if (fields.size() != 5 && fields.size() != 6)
    throw cron_error("", std::string(fields.empty() ? "empty expression: " : "") +
                             "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading "
                             "seconds field, got " + std::to_string(fields.size()));

  cron_expression c;
  c.has_seconds_ = fields.size() == 6;
  for (const auto f : fields) c.text_ += (c.text_.empty() ? "" : " ") + std::string(f);

  const size_t first = c.has_seconds_ ? 0 : 1;
  std::array<parsed_field, 6> p;
  for (size_t k = first; k < 6; ++k) p[k] = field_parser(specs[k], fields[k - first]).parse();

  if (c.has_seconds_) c.seconds_ = p[0].bits;
  c.minutes_ = p[1].bits;
  c.hours_ = static_cast<std::uint32_t>(p[2].bits);
  c.days_ = static_cast<std::uint32_t>(p[3].bits);
  c.last_day_ = p[3].last_day;
  c.any_day_of_month_ = p[3].any;
  c.months_ = static_cast<std::uint16_t>(p[4].bits);
  c.weekdays_ = static_cast<std::uint8_t>(p[5].bits);
  c.last_weekdays_ = p[5].last_weekdays;
  c.any_day_of_week_ = p[5].any;

  // A day-of-month that exists in none of the months never fires (unless day-of-week adds days).
  if (!c.any_day_of_month_ && c.any_day_of_week_ && !c.last_day_) {
    bool fires = false;
    std::vector<std::string> months;
    for (unsigned m = 1; m <= 12; ++m) {
      if (!(c.months_ >> m & 1)) continue;
      months.push_back(month_words[m]);
      const unsigned longest = m == 2 ? 29 : days_in_month(2001, m);
      if (c.days_ & ((std::uint64_t{2} << longest) - 1)) fires = true;
    }
    if (!fires) {
      const bool one = std::popcount(c.days_) == 1;
      throw cron_error("day-of-month", std::string(fields[3 - first]) + (one ? " never occurs in " : " never occur in ") +
                                           join_words(months, " or ") + ", so the schedule never fires");
    }
  }
  return c;
}

bool cron_expression::day_matches(int y, unsigned m, unsigned d, unsigned weekday) const {
  if (any_day_of_month_ && any_day_of_week_) return true;
  const auto dom = [&] { return (days_ >> d & 1) || (last_day_ && d == days_in_month(y, m)); };
  const auto dow = [&] {
    return (weekdays_ >> weekday & 1) || ((last_weekdays_ >> weekday & 1) && d + 7 > days_in_month(y, m));
  };
  if (any_day_of_month_) return dow();
  if (any_day_of_week_) return dom();
  return dom() || dow();
}

std::optional<std::int64_t> cron_expression::next_local(std::int64_t from, std::int64_t last_day) const {
  int64_t day = floor_div(from, seconds_per_day);
  int64_t second_of_day = from - day * seconds_per_day;
  while (day <= last_day) {
    const civil_date c = civil_from_days(day);
    if (!(months_ >> c.m & 1)) {
      // Skip to the 1st of the next matching month.
      int64_t y = c.y;
      unsigned m = c.m;
      do {
        if (++m > 12) m = 1, ++y;
      } while (!(months_ >> m & 1));
      day = days_from_civil(y, m, 1);
      second_of_day = 0;
      continue;
    }
    if (day_matches(static_cast<int>(c.y), c.m, c.d, weekday_from_days(day))) {
      // The first (hour, minute, second) of the day at or after second_of_day.
      auto h = static_cast<unsigned>(second_of_day / 3600), mi = static_cast<unsigned>(second_of_day / 60 % 60),
           s = static_cast<unsigned>(second_of_day % 60);
      for (;;) {
        const int hh = next_bit(hours_, h);
        if (hh < 0) break;
        if (static_cast<unsigned>(hh) != h) h = static_cast<unsigned>(hh), mi = 0, s = 0;
        const int mm = next_bit(minutes_, mi);
        if (mm < 0) {
          ++h, mi = 0, s = 0;
          continue;
        }
        if (static_cast<unsigned>(mm) != mi) mi = static_cast<unsigned>(mm), s = 0;
        const int ss = next_bit(seconds_, s);
        if (ss < 0) {
          ++mi, s = 0;
          continue;
        }
        return day * seconds_per_day + h * 3600 + mi * 60 + static_cast<unsigned>(ss);
      }
    }
    ++day;
    second_of_day = 0;
  }
  return std::nullopt;
}

std::optional<time_point> cron_expression::next(time_point after, const time_zone& tz) const {
  const int64_t a = floor_seconds(after);
  const int64_t step = has_seconds_ ? 1 : 60;
  const auto* zone = static_cast<const zone_data*>(tz.zone_);
  const int64_t local_after = zone == nullptr ? a : a + offset_at(*zone, a);
  int64_t from = floor_div(local_after, step) * step + step;
  const int64_t last_day = floor_div(from, seconds_per_day) + 100 * 366;
  for (;;) {
    const auto l = next_local(from, last_day);
    if (!l) return std::nullopt;
    int64_t instant = *l;
    if (zone != nullptr) {
      const mapped_time m = map_local(*zone, *l);
      instant = m.instant;
      if (instant <= a) {  // skipped or repeated wall-clock time that already fired
        from = std::max(*l + step, m.resume);
        continue;
      }
    }
    if (instant > max_seconds) return std::nullopt;
    return to_time_point(instant);
  }
}

std::vector<time_point> cron_expression::upcoming(time_point after, const time_zone& tz, size_t n) const {
  std::vector<time_point> r;
  r.reserve(std::min<size_t>(n, 1024));
  while (r.size() < n) {
    const auto t = next(after, tz);
    if (!t) break;
    r.push_back(*t);
    after = *t;
  }
  return r;
}

std::optional<time_point> cron_expression::latest_in(time_point after, time_point until, const time_zone& tz) const {
  // Occurrences are whole seconds: one is in (after, until] iff it is in (floor(after), floor(until)].
  const int64_t u = floor_seconds(until);
  // Every valid schedule fires at least every 8 years (29 February), so 200 years back is enough.
  const int64_t a = std::max({floor_seconds(after), u - int64_t{200} * 366 * seconds_per_day, min_seconds + 1});
  if (u <= a) return std::nullopt;
  // P(x): an occurrence lies in (x, u]; true for small x, false for large. Gallop back from u,
  // then bisect down to one second: next(lo) is then the latest occurrence.
  const auto probe = [&](int64_t x) -> std::optional<time_point> {
    auto t = next(to_time_point(x), tz);
    if (t && floor_seconds(*t) <= u) return t;
    return std::nullopt;
  };
  int64_t hi = u;  // P(hi) is false
  int64_t lo = 0;
  std::optional<time_point> best;
  for (int64_t w = 1;; w *= 2) {
    const int64_t x = std::max(a, u - w);
    if ((best = probe(x))) {
      lo = x;
      break;
    }
    if (x == a) return std::nullopt;
    hi = x;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (auto t = probe(mid)) {
      lo = mid;
      best = t;
    } else {
      hi = mid;
    }
  }
  return best;
}

std::string cron_expression::description() const {
  const auto seconds = values_of(seconds_, 0, 59);
  const auto minutes = values_of(minutes_, 0, 59);
  const auto hours = values_of(hours_, 0, 23);

  // Time of day.
  std::string time;
  const auto hour_runs = runs_of(hours);
  const bool simple_hours = hours.size() <= 6 && all_single(hour_runs) && !is_every(hours, 0, 23, progression_step(hours));
  if (seconds.size() == 1 && minutes.size() == 1 && simple_hours) {
    std::vector<std::string> times;
    for (int h : hours)
      times.push_back(clock(h, minutes[0]) + (has_seconds_ && seconds[0] != 0 ? ":" + two_digits(seconds[0]) : ""));
    time = "At " + join_words(times);
  } else {
    std::vector<std::string> parts;
    const bool second_phrase = has_seconds_ && !(seconds.size() == 1 && seconds[0] == 0);
    if (second_phrase) parts.push_back(describe_sub(seconds, "second", "minute"));
    if (!(minutes.size() == 60 && second_phrase)) parts.push_back(describe_sub(minutes, "minute", "hour"));
    if (auto h = describe_hours(hours); !h.empty()) parts.push_back(h);
    time = join_words(parts, ", ");
    time[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(time[0])));
  }

  // Days of the month.
  std::string dom;
  if (!any_day_of_month_) {
    const auto days = values_of(days_, 1, 31);
    const int step = progression_step(days);
    const auto r = runs_of(days);
    if (!days.empty() && is_every(days, 1, 31, step)) {
      dom = "every " + std::to_string(step) + " days" + (last_day_ ? " and on the last day of the month" : "");
    } else if (!last_day_ && r.size() == 1 && r[0].first != r[0].last) {
      dom = "between day " + std::to_string(r[0].first) + " and " + std::to_string(r[0].last) + " of the month";
    } else {
      std::vector<std::string> words;
      for (const auto& x : r)
        words.push_back(x.first == x.last ? std::to_string(x.first)
                                          : std::to_string(x.first) + " through " + std::to_string(x.last));
      if (last_day_) words.push_back("the last day");
      dom = (days.empty() ? "on " : days.size() == 1 ? "on day " : "on days ") + join_words(words) + " of the month";
    }
  }

  // Days of the week; `only` for the standalone form ("only on Monday").
  const auto describe_dow = [&](bool standalone) {
    std::vector<std::string> parts;
    const auto wd = weekdays_monday_first(weekdays_);
    if (!wd.empty()) {
      const auto r = runs_of(wd);
      std::vector<std::string> words;
      for (const auto& x : r)
        words.push_back(x.first == x.last
                            ? std::string(weekday_words[x.first % 7])
                            : std::string(weekday_words[x.first % 7]) + " through " + weekday_words[x.last % 7]);
      if (r.size() == 1 && r[0].first != r[0].last)
        parts.push_back(standalone ? words[0] : "on " + words[0]);
      else
        parts.push_back((standalone ? "only on " : "on ") + join_words(words));
    }
    const auto last = weekdays_monday_first(last_weekdays_);
    if (!last.empty()) {
      std::vector<std::string> words;
      for (int d : last) words.push_back(std::string("the last ") + weekday_words[d % 7]);
      parts.push_back("on " + join_words(words) + " of the month");
    }
    return join_words(parts, " or ");
  };

  const auto separator = [](const std::string& phrase) { return phrase.rfind("on the last", 0) == 0 ? " " : ", "; };
  std::string r = time;
  if (!any_day_of_month_) r += separator(dom) + dom;
  if (!any_day_of_week_) {
    if (!any_day_of_month_) {
      r += ", or " + describe_dow(false);
    } else {
      const auto dow = describe_dow(true);
      r += separator(dow) + dow;
    }
  }
  r += describe_months(months_);
  return r;
}

}  // namespace taskhost
