// The runtime's log: one line per event, a message plus structured attributes, as text or JSON.
//
// Example:
//
//   taskhost::log::setup("info", "json");
//   taskhost::log::info("plugin loaded", {{"file", "hello.so"}, {"tasks", 1}});
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace taskhost::log {

enum class level { trace, debug, info, warn, error };

/// Configures the process-wide logger (stderr). `lvl` and `format` are the config's strings.
/// Not thread-safe against concurrent logging: call at start-up.
void setup(std::string_view lvl, std::string_view format);

bool enabled(level l);
/// Thread-safe.
void write(level l, std::string_view msg, const nlohmann::json& attrs = nlohmann::json::object());

inline void debug(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::debug, m, a); }
inline void info(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::info, m, a); }
inline void warn(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::warn, m, a); }
inline void error(std::string_view m, const nlohmann::json& a = nlohmann::json::object()) { write(level::error, m, a); }

}  // namespace taskhost::log
