#include "runtime/log.hpp"

#include "runtime/run.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>
#include <mutex>

namespace taskhost::log {
namespace {

std::atomic<bool> json_format{false};

spdlog::level::level_enum to_spd(level l) {
  switch (l) {
    case level::trace: return spdlog::level::trace;
    case level::debug: return spdlog::level::debug;
    case level::info: return spdlog::level::info;
    case level::warn: return spdlog::level::warn;
    case level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> make_logger() {
  auto l = std::make_shared<spdlog::logger>("taskhost", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  l->set_level(spdlog::level::info);
  l->flush_on(spdlog::level::trace);
  return l;
}

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = make_logger();
  return *l;
}

void append_json_string(std::string& out, std::string_view s) {
  bool plain = true;
  for (unsigned char c : s)
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
      plain = false;
      break;
    }
  if (plain) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string text_value(const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    bool plain = !s.empty() && s.find_first_of(" \t\n\"=") == std::string::npos;
    return plain ? s : nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// text_value for a plain string, without a JSON value around it.
void append_text(std::string& out, std::string_view s) {
  bool plain = !s.empty();
  for (unsigned char c : s)
    if (c <= 0x20 || c == '"' || c == '=' || c == 0x7f) {  // control characters are escaped, too
      plain = false;
      break;
    }
  if (plain) {
    out += s;
    return;
  }
  append_json_string(out, s);
}

}  // namespace

void setup(std::string_view lvl, std::string_view format) {
  auto& l = logger();
  l.set_level(spdlog::level::from_str(std::string(lvl)));
  json_format = format == "json";
  if (json_format) {
    l.set_pattern("%v");
  } else {
    l.set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
}

bool enabled(level l) { return logger().should_log(to_spd(l)); }

void write(level l, std::string_view msg, const nlohmann::json& attrs) {
  auto& lg = logger();
  auto sl = to_spd(l);
  if (!lg.should_log(sl)) return;
  if (json_format) {
    const std::string ts = format_time(clock_type::now());
    auto lv = spdlog::level::to_string_view(sl);  // an fmt string_view: convert, or JSON makes it an array
    nlohmann::json line = {{"time", ts}, {"level", std::string(lv.data(), lv.size())}, {"msg", msg}};
    if (attrs.is_object())
      for (const auto& [k, v] : attrs.items()) line[k] = v;
    lg.log(sl, "{}", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    std::string text(msg);
    if (attrs.is_object())
      for (const auto& [k, v] : attrs.items()) text += " " + k + "=" + text_value(v);
    lg.log(sl, "{}", text);
  }
}

}  // namespace taskhost::log

namespace taskhost::log {
namespace {

/// "2026-11-30T03:27:29.123Z", as spdlog's pattern writes it; the date and time are formatted once
/// per second.
struct time_cache {
  std::time_t sec = -1;
  char text[24] = {};
  void append(std::string& out) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    int rem = static_cast<int>(ms % 1000);
    if (secs != sec) {
      std::tm tm{};
      gmtime_r(&secs, &tm);
      std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
      sec = secs;
    }
    char frac[6] = {'.', char('0' + rem / 100), char('0' + rem / 10 % 10), char('0' + rem % 10), 'Z', 0};
    out += text;
    out += frac;
  }
};

/// A write_fields line appended to `out`. With `tc`, the whole line as it goes to the file: the
/// text format's "time level " prefix (otherwise spdlog's pattern adds it) and a newline.
void append_fields_line(std::string& out, spdlog::level::level_enum sl, std::string_view msg,
                        std::initializer_list<field> fields, time_cache* tc) {
  char num[24];
  auto append_number = [&](int64_t v) {
    auto [end, ec] = std::to_chars(num, num + sizeof num, v);
    out.append(num, end);
  };
  auto lv = spdlog::level::to_string_view(sl);
  if (json_format) {
    out += "{\"time\":\"";
    if (tc) tc->append(out);
    else out += format_time(clock_type::now());
    out += "\",\"level\":\"";
    out.append(lv.data(), lv.size());
    out += "\",\"msg\":";
    append_json_string(out, msg);
    for (const auto& f : fields) {
      out += ',';
      append_json_string(out, f.key);
      out += ':';
      if (f.is_number) append_number(f.number);
      else append_json_string(out, f.text);
    }
    out += '}';
  } else {
    if (tc) {
      tc->append(out);
      out += ' ';
      out.append(lv.data(), lv.size());
      for (size_t i = lv.size(); i < 5; ++i) out += ' ';  // spdlog's %-5l
      out += ' ';
    }
    out += msg;
    for (const auto& f : fields) {
      out += ' ';
      out += f.key;
      out += '=';
      if (f.is_number) append_number(f.number);
      else append_text(out, f.text);
    }
  }
  if (tc) out += '\n';
}

/// Writes all of `bytes` to stderr, where the logger writes.
void write_stderr(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(STDERR_FILENO, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to write: as spdlog, drop it
    bytes.remove_prefix(size_t(n));
  }
}

}  // namespace

void write_fields(level l, std::string_view msg, std::initializer_list<field> fields) {
  auto& lg = logger();
  auto sl = to_spd(l);
  if (!lg.should_log(sl)) return;
  std::string line;
  line.reserve(64 + msg.size() + fields.size() * 24);
  append_fields_line(line, sl, msg, fields, nullptr);
  lg.log(sl, "{}", line);
}

struct batched_lines::state {
  std::mutex mu;
  std::string buf;
  time_cache time;
};

batched_lines::batched_lines() : state_(std::make_unique<state>()) {}

batched_lines::~batched_lines() { flush(); }

void batched_lines::add(level l, std::string_view msg, std::initializer_list<field> fields) {
  auto sl = to_spd(l);
  if (!logger().should_log(sl)) return;
  std::lock_guard lock(state_->mu);
  auto& buf = state_->buf;
  const size_t before = buf.size();
  append_fields_line(buf, sl, msg, fields, &state_->time);
  if (buf.size() > max_batch && before > 0) {
    // Full: what was there goes now, in one piece; the new line starts the next batch.
    write_stderr(std::string_view(buf).substr(0, before));
    buf.erase(0, before);
  }
}

void batched_lines::flush() {
  std::lock_guard lock(state_->mu);
  if (state_->buf.empty()) return;
  write_stderr(state_->buf);
  state_->buf.clear();
}

}  // namespace taskhost::log
