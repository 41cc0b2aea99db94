#include "runtime/request_gate.hpp"

namespace taskhost {

bool request_gate::enter(const std::string& key, http_responder waiter) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = held_.try_emplace(key);
  if (!inserted) it->second.push_back(std::move(waiter));
  return inserted;
}

void request_gate::finish(const std::string& key, const http_response& r) {
  std::vector<http_responder> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(key);
    if (it == held_.end()) return;
    waiters = std::move(it->second);
    held_.erase(it);
  }
  for (auto& w : waiters) w(r);
}

size_t request_gate::held() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

}  // namespace taskhost
