#include "runtime/log.hpp"

#include "runtime/run.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>

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

void write_fields(level l, std::string_view msg, std::initializer_list<field> fields) {
  auto& lg = logger();
  auto sl = to_spd(l);
  if (!lg.should_log(sl)) return;
  std::string line;
  line.reserve(64 + msg.size() + fields.size() * 24);
  char num[24];
  auto append_number = [&](int64_t v) {
    auto [end, ec] = std::to_chars(num, num + sizeof num, v);
    line.append(num, end);
  };
  if (json_format) {
    auto lv = spdlog::level::to_string_view(sl);
    line += "{\"time\":\"";
    line += format_time(clock_type::now());
    line += "\",\"level\":\"";
    line.append(lv.data(), lv.size());
    line += "\",\"msg\":";
    append_json_string(line, msg);
    for (const auto& f : fields) {
      line += ',';
      append_json_string(line, f.key);
      line += ':';
      if (f.is_number) append_number(f.number);
      else append_json_string(line, f.text);
    }
    line += '}';
  } else {
    line += msg;
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      if (f.is_number) append_number(f.number);
      else append_text(line, f.text);
    }
  }
  lg.log(sl, "{}", line);
}

}  // namespace taskhost::log
