// The runtime's log: one line per event, a message plus structured attributes, as text or JSON.
//
// Example:
//
//   taskhost::log::setup("info", "json");
//   taskhost::log::info("plugin loaded", {{"file", "hello.so"}, {"tasks", 1}});
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace taskhost::log {

enum class level { trace, debug, info, warn, error };

/// Configures the process-wide logger (stderr). `lvl` and `format` are the config's strings.
/// Not thread-safe against concurrent logging: call at start-up.
void setup(std::string_view lvl, std::string_view format);

bool enabled(level l);
/// Thread-safe.
void write(level l, std::string_view msg, const nlohmann::json& attrs = nlohmann::json::object());

/// One attribute of write_fields: a string or an integer.
struct field {
  std::string_view key;
  std::string_view text;
  int64_t number = 0;
  bool is_number = false;
  field(std::string_view k, std::string_view v) : key(k), text(v) {}
  field(std::string_view k, const char* v) : key(k), text(v) {}
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  field(std::string_view k, I v) : key(k), number(static_cast<int64_t>(v)), is_number(true) {}
};

/// As write, for lines written on a hot path (the HTTP access log): the attributes in the order
/// given, without building a JSON object. Thread-safe.
void write_fields(level l, std::string_view msg, std::initializer_list<field> fields);

/// Lines written in batches, for lines written per request (the HTTP access log): a line is
/// formatted at once (as write_fields would) and kept; flush() writes what is kept with one
/// write(2) — at most 4 KiB, atomic on a pipe, so a batch never interleaves with other log lines
/// mid-line. A batch that would grow beyond that is written at once. The owner calls flush()
/// periodically and at the end; lines kept are lost if the process dies first. Thread-safe.
class batched_lines {
public:
  static constexpr size_t max_batch = 4096;
  batched_lines();
  ~batched_lines();  ///< flushes
  batched_lines(const batched_lines&) = delete;
  batched_lines& operator=(const batched_lines&) = delete;
  /// Keeps a line (if its level is enabled).
  void add(level l, std::string_view msg, std::initializer_list<field> fields);
  void flush();

private:
  struct state;
  std::unique_ptr<state> state_;
};

inline void debug(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::debug, m, a); }
inline void info(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::info, m, a); }
inline void warn(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::warn, m, a); }
inline void error(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::error, m, a); }

}  // namespace taskhost::log
