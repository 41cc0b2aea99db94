#include "runtime/trigger_request.hpp"

#include <algorithm>
#include <set>

namespace taskhost {
namespace {

using json = nlohmann::json;

trigger_parse_result fail(int status, std::string msg) { return {std::nullopt, {status, std::move(msg)}}; }

// Options that change what a run does and that this taskhost does not implement yet: refusing
// them beats silently running without them (a delay ignored, a duplicate run created, ...).
const std::set<std::string, std::less<>> unsupported_options = {
    "delay", "ttl", "idempotencyKey", "idempotencyKeyTTL", "metadata",
    "concurrencyKey", "priority", "parentRunId", "resumeParentOnCompletion"};

}  // namespace

trigger_parse_result parse_trigger_body(std::string_view task_id, std::string_view body, uint64_t max_payload_bytes) {
  trigger_input in;
  in.task_id = std::string(task_id);
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    in.payload = nullptr;  // no body: a run with no payload, like the SDK's `undefined`
    return {std::move(in), {}};
  }
  json b = json::parse(body, nullptr, false);
  if (b.is_discarded()) return fail(400, "request body is not valid JSON");
  if (!b.is_object()) return fail(400, "request body must be a JSON object like {\"payload\": ..., \"options\": {...}}");

  json options = json::object();
  if (auto it = b.find("options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) return fail(400, "options must be an object");
    options = *it;
  }
  for (const auto& [k, v] : options.items())
    if (unsupported_options.count(k) && !v.is_null())
      return fail(400, "option '" + k + "' is not supported by this taskhost yet");

  if (auto it = options.find("payloadType"); it != options.end()) {
    if (!it->is_string()) return fail(400, "options.payloadType must be a string");
    in.payload_type = it->get<std::string>();
  }

  auto p = b.find("payload");
  if (p == b.end()) {
    in.payload = nullptr;
  } else if (p->is_string() && options.contains("payloadType")) {
    const auto& s = p->get_ref<const std::string&>();
    if (s.size() > max_payload_bytes)
      return fail(413, "payload of " + std::to_string(s.size()) + " bytes is over the limit of " +
                           std::to_string(max_payload_bytes) + " bytes");
    if (in.payload_type == "application/super+json") {
      json packet = json::parse(s, nullptr, false);
      if (packet.is_discarded() || !packet.is_object())
        return fail(400, "payload is not a valid application/super+json packet");
      in.payload = packet.contains("json") ? packet["json"] : json(nullptr);
    } else if (in.payload_type == "application/json") {
      in.payload = json::parse(s, nullptr, false);
      if (in.payload.is_discarded()) return fail(400, "payload is not valid JSON (payloadType application/json)");
    } else if (in.payload_type == "text/plain") {
      in.payload = s;
    } else if (in.payload_type == "application/store") {
      return fail(400, "offloaded payloads (application/store) are not supported by this taskhost yet");
    } else {
      return fail(400, "unsupported options.payloadType '" + in.payload_type + "'");
    }
  } else {
    in.payload = *p;  // a plain JSON value
    if (p->is_structured() || p->is_string()) {
      auto size = p->dump().size();
      if (size > max_payload_bytes)
        return fail(413, "payload of " + std::to_string(size) + " bytes is over the limit of " +
                             std::to_string(max_payload_bytes) + " bytes");
    }
  }

  if (auto it = options.find("maxAttempts"); it != options.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 250)
      return fail(400, "options.maxAttempts must be an integer from 1 to 250");
    in.max_attempts = it->get<int>();
  }
  if (auto it = options.find("maxDuration"); it != options.end() && !it->is_null()) {
    // Trigger.dev: seconds of compute per attempt, at least 5.
    if (!it->is_number() || it->get<double>() < 5 || it->get<double>() > 365.0 * 86400)
      return fail(400, "options.maxDuration must be a number of seconds, at least 5");
    in.max_duration_ms = static_cast<int64_t>(it->get<double>() * 1000);
  }
  if (auto it = options.find("tags"); it != options.end() && !it->is_null()) {
    json tags = it->is_string() ? json::array({*it}) : *it;
    if (!tags.is_array()) return fail(400, "options.tags must be a string or an array of strings");
    if (tags.size() > 10) return fail(400, "options.tags has " + std::to_string(tags.size()) + " tags; at most 10 are allowed");
    for (const auto& t : tags) {
      if (!t.is_string()) return fail(400, "options.tags must contain strings only");
      const auto& s = t.get_ref<const std::string&>();
      if (s.empty() || s.size() > 128) return fail(400, "options.tags: each tag must be 1 to 128 characters");
      in.tags.push_back(s);
    }
    std::sort(in.tags.begin(), in.tags.end());
    in.tags.erase(std::unique(in.tags.begin(), in.tags.end()), in.tags.end());
  }
  return {std::move(in), {}};
}

}  // namespace taskhost
