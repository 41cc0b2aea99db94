// One request at a time per request idempotency key (x-trigger-request-idempotency-key): the SDK
// retries a POST after a connection error or a 5xx while the first attempt may still be in
// flight; the second must not make a second run, and gets the first one's answer.
//
// Example:
//
//   if (!gate.enter(key, respond)) return;           // another request holds the key: `respond`
//                                                    // is called with that request's answer
//   ... look the key up, do the work ...
//   gate.finish(key, response);                      // to every request that waited; then answer
//
// Thread-safe. The key is held from enter() to finish(), so a request that enters after finish()
// finds what the first one recorded (finish only after the record is committed).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/http_server.hpp"

namespace taskhost {

class request_gate {
public:
  /// True: the caller holds `key` and must call finish(key, ...) exactly once. False: another
  /// request holds it; `waiter` is kept and called by that request's finish().
  bool enter(const std::string& key, http_responder waiter);
  /// Releases `key` and sends `r` to every request that waited for it (not to the holder).
  void finish(const std::string& key, const http_response& r);
  /// Keys held now (for tests).
  size_t held() const;

private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<http_responder>> held_;  ///< key → waiters
};

}  // namespace taskhost
