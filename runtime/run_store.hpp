// Where runs live. The walking skeleton keeps them in memory; the SQLite store (durable runs)
// implements the same interface.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "runtime/run.hpp"

namespace taskhost {

/// Thread-safe store of runs. OWNERSHIP: returns copies; nothing returned aliases the store.
class run_store {
public:
  virtual ~run_store() = default;
  virtual void insert(run_record r) = 0;
  virtual std::optional<run_record> get(const std::string& id) const = 0;
  /// Calls `f` with the run under the store's lock, without copying it. False if unknown.
  virtual bool read(const std::string& id, const std::function<void(const run_record&)>& f) const = 0;
  /// Applies `f` to the run under the store's lock and stamps updated_at. False if unknown.
  virtual bool update(const std::string& id, const std::function<void(run_record&)>& f) = 0;
};

class memory_run_store final : public run_store {
public:
  void insert(run_record r) override;
  std::optional<run_record> get(const std::string& id) const override;
  bool read(const std::string& id, const std::function<void(const run_record&)>& f) const override;
  bool update(const std::string& id, const std::function<void(run_record&)>& f) override;

private:
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, run_record> runs_;
};

}  // namespace taskhost
