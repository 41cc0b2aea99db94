#include "runtime/run_store.hpp"

#include <mutex>

namespace taskhost {

void memory_run_store::insert(run_record r) {
  std::unique_lock lock(mu_);
  auto id = r.id;
  runs_.insert_or_assign(std::move(id), std::move(r));
}

std::optional<run_record> memory_run_store::get(const std::string& id) const {
  std::shared_lock lock(mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return std::nullopt;
  return it->second;
}

bool memory_run_store::read(const std::string& id, const std::function<void(const run_record&)>& f) const {
  std::shared_lock lock(mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return false;
  f(it->second);
  return true;
}

bool memory_run_store::update(const std::string& id, const std::function<void(run_record&)>& f) {
  std::unique_lock lock(mu_);
  auto it = runs_.find(id);
  if (it == runs_.end()) return false;
  f(it->second);
  it->second.updated_at = clock_type::now();
  return true;
}

}  // namespace taskhost
