// The locals of one run: typed values that hooks and run (from any plugin) share for the run's
// lifetime. OWNERSHIP: each value was allocated by a plugin and is freed with the destroy function
// that plugin gave; the plugin's library stays loaded for the life of the process.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include <taskhost/plugin_abi.h>

namespace taskhost {

/// Thread-safe. Destroys every value it holds when destroyed — callers make sure that happens on
/// an executor thread (a value's destructor is user code).
class run_locals {
public:
  run_locals() = default;
  run_locals(const run_locals&) = delete;
  run_locals& operator=(const run_locals&) = delete;
  ~run_locals() {
    for (auto& [k, e] : values_) e.destroy(e.value);
  }

  void set(const std::string& key, std::string type, void* value, void (*destroy)(void*)) {
    entry old{};
    {
      std::lock_guard lock(mu_);
      auto it = values_.find(key);
      if (it != values_.end()) old = std::move(it->second);
      values_[key] = entry{std::move(type), value, destroy};
    }
    if (old.destroy) old.destroy(old.value);
  }

  int get(const std::string& key, const std::string& type, void** value, const char** stored_type) {
    std::lock_guard lock(mu_);
    auto it = values_.find(key);
    if (it == values_.end()) return TH_LOCAL_MISSING;
    if (it->second.type != type) {
      *stored_type = it->second.type.c_str();
      return TH_LOCAL_TYPE_MISMATCH;
    }
    *value = it->second.value;
    return TH_LOCAL_OK;
  }

  /// True when nothing is stored: destroying it runs no user code.
  bool empty() {
    std::lock_guard lock(mu_);
    return values_.empty();
  }

private:
  struct entry {
    std::string type;
    void* value = nullptr;
    void (*destroy)(void*) = nullptr;
  };
  std::mutex mu_;
  std::map<std::string, entry> values_;
};

}  // namespace taskhost
