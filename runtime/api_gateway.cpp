#include "runtime/api_gateway.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <vector>

#include "runtime/api_keys.hpp"
#include "runtime/cron.hpp"
#include "taskhost/config/duration.hpp"

namespace taskhost {

using json = nlohmann::json;

http_response error_response(int status, std::string_view msg) {
  return {status, json{{"error", msg}}.dump(-1, ' ', false, json::error_handler_t::replace),
          {{"x-should-retry", status == 503 ? "true" : "false"}}};
}

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') { ++i; continue; }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    parts.push_back(path.substr(i, j - i));
    i = j;
  }
  return parts;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::vector<std::string> split_list(std::string_view v) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= v.size()) {
    size_t j = v.find(',', i);
    if (j == std::string_view::npos) j = v.size();
    if (j > i) out.emplace_back(v.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

/// The key=value pairs of a query string, decoded ('+' is a space); nullopt on a bad %-escape.
std::optional<std::vector<std::pair<std::string, std::string>>> decode_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(i, amp - i);
    i = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key, value;
    std::string raw_value(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    std::replace(raw_value.begin(), raw_value.end(), '+', ' ');
    if (!api_gateway::percent_decode(pair.substr(0, eq), key) || !api_gateway::percent_decode(raw_value, value)) return std::nullopt;
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

/// page[size]: a whole number from 1 to 100; nullopt otherwise.
std::optional<size_t> page_size(const std::string& value) {
  if (value.empty() || value.size() > 4 || value.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  int n = std::stoi(value);
  if (n < 1 || n > 100) return std::nullopt;
  return static_cast<size_t>(n);
}

/// ?page=&perPage= of Trigger.dev's offset pages (queues, schedules): whole numbers from 1,
/// perPage at most 100. An error message, or "" with page and per_page set.
std::string offset_page(const std::vector<std::pair<std::string, std::string>>& pairs, size_t& page, size_t& per_page) {
  for (const auto& [key, value] : pairs) {
    if (key != "page" && key != "perPage") continue;
    if (value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos || std::stoul(value) == 0)
      return key + " must be a whole number from 1";
    (key == "page" ? page : per_page) = std::stoul(value);
  }
  if (per_page > 100) return "perPage must be at most 100";
  return {};
}

/// The HTTP response of a run_service answer: its body, or {"error"} with its status.
http_response answer_response(const api_answer& a) {
  if (a.status != 200) return error_response(a.status, a.body.value("error", std::string("error")));
  return {200, dump(a.body), {}};
}

/// 405 with the methods the path allows.
http_response not_allowed_response(const std::string& method, std::string_view path, std::string_view allowed) {
  auto r = error_response(405, "method " + method + " is not allowed on " + std::string(path) + "; use " + std::string(allowed));
  r.headers.emplace_back("allow", std::string(allowed));
  return r;
}

/// A request body that must be a JSON object; an empty body is {}. nullopt if it is not one.
std::optional<json> object_body(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

/// The routes anyone may call: the health check, and the time zones, which the SDK asks for
/// without a key (schedules.timezones()).
bool open_route(const std::vector<std::string_view>& parts) {
  if (parts.size() == 1 && parts[0] == "healthz") return true;
  return parts.size() == 3 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "timezones";
}

enum class bearer { missing, malformed, present };

/// The key of an `Authorization: Bearer <key>` header (the scheme in any case, as RFC 9110 says).
bearer bearer_key(const http_request& req, std::string_view& key) {
  auto it = req.headers.find("authorization");
  if (it == req.headers.end()) return bearer::missing;
  std::string_view v = it->second;
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!v.empty() && blank(v.front())) v.remove_prefix(1);
  while (!v.empty() && blank(v.back())) v.remove_suffix(1);
  constexpr std::string_view scheme = "bearer";
  if (v.size() <= scheme.size() || !blank(v[scheme.size()])) return bearer::malformed;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(v[i])) != scheme[i]) return bearer::malformed;
  v.remove_prefix(scheme.size());
  while (!v.empty() && blank(v.front())) v.remove_prefix(1);
  if (v.empty() || std::any_of(v.begin(), v.end(), blank)) return bearer::malformed;
  key = v;
  return bearer::present;
}

http_response unauthorized(std::string_view msg) {
  auto r = error_response(401, msg);
  r.headers.emplace_back("www-authenticate", "Bearer");
  return r;
}

}  // namespace

api_gateway::api_gateway(run_service& runs, uint64_t max_payload_bytes, api_keys* keys)
    : runs_(runs), max_payload_bytes_(max_payload_bytes), keys_(keys) {}

std::optional<http_response> api_gateway::check_key(const http_request& req, bool required, std::string& principal) const {
  if (!keys_) return std::nullopt;
  std::string_view key;
  const bearer b = bearer_key(req, key);
  if (b == bearer::present) {
    if (auto who = keys_->authenticate(key)) {
      principal = std::move(*who);
      return std::nullopt;
    }
  }
  if (!required || !keys_->enforcing()) return std::nullopt;
  switch (b) {
    case bearer::missing:
      return unauthorized("Missing Authorization header: send 'Authorization: Bearer <key>' with an API key of this deployment");
    case bearer::malformed:
      return unauthorized("Invalid Authorization header: expected 'Bearer <key>'");
    case bearer::present:
      break;
  }
  return unauthorized("Invalid API key");
}

std::string api_gateway::principal_of(const http_request& req) const {
  std::string who;
  (void)check_key(req, /*required=*/false, who);
  return who;
}

bool api_gateway::percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') { out.push_back(in[i]); continue; }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return false;
    out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return true;
}

void api_gateway::handle(http_request req, http_responder respond) {
  std::string_view target = req.target;
  std::string_view path = target.substr(0, target.find('?'));
  auto parts = split_path(path);
  auto is = [&](std::initializer_list<std::string_view> want, size_t wildcard) {
    if (parts.size() != want.size()) return false;
    size_t i = 0;
    for (auto w : want) {
      if (i != wildcard && parts[i] != w) return false;
      ++i;
    }
    return true;
  };
  auto method_not_allowed = [&](std::string_view allowed) { respond(not_allowed_response(req.method, path, allowed)); };
  // Before anything else of the request is looked at (deny by default: a route added later is
  // covered too), and once: the same check names the key for the access log (never the key).
  std::string who;
  if (auto refusal = check_key(req, /*required=*/!open_route(parts), who)) return respond(std::move(*refusal));
  if (!who.empty())
    respond = [r = std::move(respond), who = std::move(who)](http_response resp) {
      resp.principal = who;
      r(std::move(resp));
    };

  if (is({"api", "v1", "tasks", "*", "trigger"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string task_id;
    if (!percent_decode(parts[3], task_id)) return respond(error_response(400, "bad percent-escape in task id"));
    return trigger(task_id, req, std::move(respond));
  }
  if (is({"api", "v3", "runs", "*"}, 3)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    auto run = runs_.get_run(run_id);
    if (!run) return respond(error_response(404, "Run not found: " + run_id));
    json j = to_api_json(*run);
    if (!run->schedule_id.empty()) {
      // Trigger.dev's run.schedule: while the schedule exists (its generator is required).
      if (auto sa = runs_.get_schedule(run->schedule_id); sa.status == 200) {
        json sch = {{"id", sa.body["id"]}, {"generator", sa.body["generator"]}};
        for (const char* k : {"externalId", "deduplicationKey"})
          if (sa.body[k].is_string()) sch[k] = sa.body[k];
        j["schedule"] = std::move(sch);
      }
    }
    return respond({200, dump(j), {}});
  }
  if (is({"api", "v1", "runs"}, 99)) {
    if (req.method != "GET") return method_not_allowed("GET");
    auto q = target.find('?');
    return list(q == std::string_view::npos ? std::string_view() : target.substr(q + 1), std::move(respond));
  }
  if (is({"api", "v1", "runs", "*", "replay"}, 3) || is({"api", "v1", "runs", "*", "reschedule"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    if (parts[4] == "replay") return replay(run_id, req, std::move(respond));
    return reschedule(run_id, req, std::move(respond));
  }
  if (is({"api", "v2", "runs", "*", "cancel"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    return runs_.cancel(run_id, [respond = std::move(respond), run_id](trigger_outcome o) {
      if (o.status != 200) return respond(error_response(o.status, o.error));
      respond({200, json{{"id", run_id}}.dump(), {}});
    });
  }
  if (is({"api", "v1", "runs", "*", "logs"}, 3)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string run_id;
    if (!percent_decode(parts[3], run_id)) return respond(error_response(400, "bad percent-escape in run id"));
    auto run = runs_.get_run(run_id);
    if (!run) return respond(error_response(404, "Run not found: " + run_id));
    return respond({200, logs_to_api_json(*run).dump(-1, ' ', false, json::error_handler_t::replace), {}});
  }
  auto answer = [&](const api_answer& a) { respond(answer_response(a)); };
  auto id_at = [&](size_t i, std::string& out) {
    if (percent_decode(parts[i], out)) return true;
    respond(error_response(400, "bad percent-escape in the path"));
    return false;
  };
  if (is({"api", "v1", "waitpoints", "tokens"}, 99)) {
    if (req.method == "POST") {
      auto body = object_body(req.body);
      if (!body) return respond(error_response(400, "the body must be a JSON object"));
      return answer(runs_.create_token(*body));
    }
    if (req.method != "GET") return method_not_allowed("GET, POST");
    std::string status, after;
    size_t limit = 25;
    auto q = target.find('?');
    auto pairs = decode_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!pairs) return respond(error_response(400, "bad percent-escape in the query string"));
    for (const auto& [key, value] : *pairs) {
      if (key == "filter[status]") {
        if (value != "WAITING" && value != "COMPLETED" && value != "TIMED_OUT")
          return respond(error_response(400, "filter[status] must be WAITING, COMPLETED or TIMED_OUT"));
        status = value;
      } else if (key == "page[size]") {
        auto n = page_size(value);
        if (!n) return respond(error_response(400, "page[size] must be a whole number from 1 to 100"));
        limit = *n;
      } else if (key == "page[after]") {
        after = value;
      }
    }
    return answer(runs_.list_tokens(status, limit, after));
  }
  if (is({"api", "v1", "waitpoints", "tokens", "*"}, 4)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string id;
    if (!id_at(4, id)) return;
    return answer(runs_.get_token(id));
  }
  if (is({"api", "v1", "waitpoints", "tokens", "*", "complete"}, 4)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string id;
    if (!id_at(4, id)) return;
    if (req.body.size() > max_payload_bytes_) return respond(error_response(413, "the token's data is over the payload limit"));
    auto body = object_body(req.body);
    if (!body) return respond(error_response(400, "the body must be a JSON object: {\"data\": ...}"));
    return answer(runs_.complete_token(id, body->value("data", json())));
  }
  if (is({"api", "v1", "batches", "*"}, 3) || is({"api", "v2", "batches", "*"}, 3)) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string id;
    if (!id_at(3, id)) return;
    return answer(runs_.get_batch(id));
  }
  if (is({"api", "v3", "batches"}, 99)) {
    if (req.method != "POST") return method_not_allowed("POST");
    return create_batch(req, std::move(respond));
  }
  if (is({"api", "v3", "batches", "*", "items"}, 3)) {
    if (req.method != "POST") return method_not_allowed("POST");
    std::string id;
    if (!id_at(3, id)) return;
    return batch_items(id, req, std::move(respond));
  }
  if (parts.size() >= 3 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "queues") return queues(req, parts, std::move(respond));
  if (parts.size() >= 3 && parts.size() <= 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "schedules")
    return schedules(req, parts, std::move(respond));
  if (is({"api", "v1", "timezones"}, 99)) {
    if (req.method != "GET") return method_not_allowed("GET");
    auto q = target.find('?');
    auto pairs = decode_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!pairs) return respond(error_response(400, "bad percent-escape in the query string"));
    bool exclude_utc = false;
    for (const auto& [key, value] : *pairs)
      if (key == "excludeUtc") exclude_utc = value == "true" || value == "1";
    json zones = json::array();
    for (auto& z : time_zone::names())
      if (!exclude_utc || (z != "UTC" && z != "Etc/UTC")) zones.push_back(std::move(z));
    return respond({200, dump(json{{"timezones", std::move(zones)}}), {}});
  }
  if (is({"healthz"}, 99)) return respond({200, R"({"ok":true})", {}});
  respond(error_response(404, "No route for " + req.method + " " + std::string(path)));
}

void api_gateway::trigger(const std::string& task_id, const http_request& req, http_responder respond) {
  if (refusing_) {
    auto r = error_response(503, "taskhost is shutting down; not accepting new runs");
    r.headers = {{"x-should-retry", "true"}};  // another instance, or this one restarted, may take it
    return respond(std::move(r));
  }
  // The SDK turns x-trigger-jwt into handle.publicAccessToken and must not self-sign (§8); an
  // opaque value is enough until taskhost accepts public tokens anywhere. A retry of the request
  // (same x-trigger-request-idempotency-key) gets the same answer, jwt included.
  auto answer = [](const std::string& run_id, bool cached) {
    return http_response{200, json{{"id", run_id}, {"isCached", cached}}.dump(), {{"x-trigger-jwt", "taskhost-" + run_id}}};
  };
  const std::string scope = "trigger:" + task_id;
  once_per_request_key(
      scope, req, std::move(respond), [&](const request_key_record& k) { return answer(k.id, k.cached); },
      [&](const std::string& key, http_responder respond) {
        auto parsed = parse_trigger_body(task_id, req.body, max_payload_bytes_);
        if (!parsed.input) return respond(error_response(parsed.error.status, parsed.error.message));
        if (!key.empty()) {
          parsed.input->request_scope = scope;
          parsed.input->request_key = key;
        }
        runs_.trigger(std::move(*parsed.input), [respond = std::move(respond), answer](trigger_outcome o) {
          if (o.status != 200) return respond(error_response(o.status, o.error));
          respond(answer(o.run_id, o.cached));
        });
      });
}

void api_gateway::once_per_request_key(const std::string& scope, const http_request& req, http_responder respond,
                                       const std::function<http_response(const request_key_record&)>& replay,
                                       const std::function<void(const std::string& key, http_responder)>& work) {
  auto it = req.headers.find("x-trigger-request-idempotency-key");
  if (it == req.headers.end() || it->second.empty()) return work({}, std::move(respond));
  const std::string& key = it->second;
  if (key.size() > max_idempotency_key_chars)
    return respond(error_response(400, "x-trigger-request-idempotency-key is over " + std::to_string(max_idempotency_key_chars) + " characters"));
  // Held from here until the answer: a retry that arrives meanwhile waits for it; one that comes
  // after finds what this request recorded (it is committed before the answer).
  std::string held = scope + '\n' + key;
  if (!request_gate_.enter(held, respond)) return;
  http_responder finish = [this, held, respond = std::move(respond)](http_response r) {
    request_gate_.finish(held, r);
    respond(std::move(r));
  };
  std::optional<request_key_record> prior;
  try {
    prior = runs_.find_request_key(scope, key);
  } catch (const std::exception& e) {
    return finish(error_response(503, std::string("the request's idempotency key could not be looked up: ") + e.what()));
  }
  if (prior) return finish(replay(*prior));
  work(key, std::move(finish));
}

void api_gateway::list(std::string_view query, http_responder respond) {
  run_list_query q;
  auto pairs = decode_query(query);
  if (!pairs) return respond(error_response(400, "bad percent-escape in the query string"));
  for (const auto& [key, value] : *pairs) {
    if (key == "filter[status]") {
      std::string bad;
      for (const auto& s : split_list(value)) {
        if (auto st = run_status_from_string(s)) q.statuses.push_back(*st);
        else bad += (bad.empty() ? "" : ", ") + s;
      }
      if (!bad.empty()) return respond(error_response(400, "Invalid status values: " + bad));
    } else if (key == "filter[taskIdentifier]") {
      q.task_ids = split_list(value);
    } else if (key == "filter[tag]") {
      q.tags = split_list(value);
    } else if (key == "filter[createdAt][from]" || key == "filter[createdAt][to]") {
      // epoch milliseconds (what the SDK sends), or an ISO date
      std::optional<time_point> t;
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos && value.size() < 16)
        t = from_ms(std::stoll(value));
      else
        t = parse_iso_time(value);
      if (!t) return respond(error_response(400, key + " must be epoch milliseconds or an ISO date, got '" + value + "'"));
      (key == "filter[createdAt][from]" ? q.created_from : q.created_to) = t;
    } else if (key == "filter[createdAt][period]") {
      auto d = config::parse_duration(value);
      if (!d) return respond(error_response(400, "filter[createdAt][period] must be a duration like 7d, got '" + value + "'"));
      q.created_from = clock_type::now() - *d;
    } else if (key == "filter[schedule]") {
      q.schedule_id = value;
    } else if (key == "filter[batch]") {
      q.batch_id = value;
    } else if (key == "page[size]") {
      auto n = page_size(value);
      if (!n) return respond(error_response(400, "page[size] must be a whole number from 1 to 100"));
      q.page_size = *n;
    } else if (key == "page[after]" || key == "page[before]") {
      if (!valid_list_cursor(value)) return respond(error_response(400, key + " is not a cursor this server gave out"));
      (key == "page[after]" ? q.after : q.before) = value;
    }
    // Other filters (version, queue, machine, region, isTest, bulkAction) match
    // nothing taskhost records yet and are ignored, as the real server ignores unknown ones.
  }
  auto page = runs_.list_runs(q);
  json data = json::array();
  for (const auto& r : page.runs) data.push_back(to_api_list_item_json(r));
  json pagination = json::object();
  if (!page.next.empty()) pagination["next"] = page.next;
  if (!page.previous.empty()) pagination["previous"] = page.previous;
  respond({200, dump(json{{"data", std::move(data)}, {"pagination", std::move(pagination)}}), {}});
}

void api_gateway::replay(const std::string& run_id, const http_request& req, http_responder respond) {
  if (refusing_) return respond(error_response(503, "taskhost is shutting down; not accepting new runs"));
  auto run = runs_.get_run(run_id);
  if (!run) return respond(error_response(404, "Run not found: " + run_id));
  // The body (may be empty) holds overrides: payload and the trigger options.
  auto overrides = object_body(req.body);
  if (!overrides) return respond(error_response(400, "replay body must be a JSON object of overrides"));
  json body = std::move(*overrides);
  json trig = {{"options", json::object()}};
  for (auto& [k, v] : body.items()) {
    if (k == "payload") trig["payload"] = v;
    else trig["options"][k] = v;
  }
  auto parsed = parse_trigger_body(run->task_id, dump(trig), max_payload_bytes_);
  if (!parsed.input) return respond(error_response(parsed.error.status, parsed.error.message));
  trigger_input in = std::move(*parsed.input);
  if (!body.contains("payload")) {  // the same payload packet
    in.payload = run->payload;
    in.payload_type = run->payload_type;
  }
  if (!body.contains("tags")) in.tags = run->tags;
  runs_.trigger(std::move(in), [respond = std::move(respond)](trigger_outcome o) {
    if (o.status != 200) return respond(error_response(o.status, o.error));
    respond({200, json{{"id", o.run_id}}.dump(), {}});
  });
}

void api_gateway::reschedule(const std::string& run_id, const http_request& req, http_responder respond) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("delay"))
    return respond(error_response(400, "reschedule needs a body like {\"delay\": \"2h\"} (a duration or an ISO date)"));
  std::string err;
  auto at = parse_delay(body["delay"], err);
  if (!at) return respond(error_response(400, "Invalid delay: " + err));
  runs_.reschedule(run_id, *at, [this, respond = std::move(respond), run_id](trigger_outcome o) {
    if (o.status != 200) return respond(error_response(o.status, o.error));
    auto run = runs_.get_run(run_id);
    if (!run) return respond(error_response(404, "Run not found: " + run_id));
    respond({200, dump(to_api_json(*run)), {}});
  });
}

void api_gateway::queues(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond) {
  // /api/v1/queues[/{queue}[/pause | /concurrency/override | /concurrency/reset]], where {queue}
  // is a queue's id: its name, or "task/<task id>" (the slash may be sent as is or as %2F).
  std::string_view target = req.target;
  auto q = target.find('?');
  auto pairs = decode_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
  if (!pairs) return respond(error_response(400, "bad percent-escape in the query string"));
  auto answer = [&](const api_answer& a) { respond(answer_response(a)); };
  auto not_allowed = [&](std::string_view allowed) { respond(not_allowed_response(req.method, target.substr(0, q), allowed)); };
  if (parts.size() == 3) {
    if (req.method != "GET") return not_allowed("GET");
    size_t page = 1, per_page = 25;
    if (auto e = offset_page(*pairs, page, per_page); !e.empty()) return respond(error_response(400, e));
    return answer(runs_.list_queues(page, per_page));
  }
  size_t end = parts.size();
  std::string action;
  if (parts.back() == "pause") {
    action = "pause";
    end -= 1;
  } else if (parts.size() >= 5 && parts[end - 2] == "concurrency" && (parts.back() == "override" || parts.back() == "reset")) {
    action = std::string(parts.back());
    end -= 2;
  }
  std::string name;
  for (size_t i = 3; i < end; ++i) {
    std::string seg;
    if (!percent_decode(parts[i], seg)) return respond(error_response(400, "bad percent-escape in the path"));
    name += (i > 3 ? "/" : "") + seg;
  }
  if (name.empty()) return respond(error_response(404, "No route for " + req.method + " " + std::string(target.substr(0, q))));
  std::optional<json> body;
  if (!action.empty()) {
    if (req.method != "POST") return not_allowed("POST");
    body = object_body(req.body);
    if (!body) return respond(error_response(400, "the body must be a JSON object"));
  } else if (req.method != "GET") {
    return not_allowed("GET");
  }
  // How to read {queue}: an id (default), a task id, or a custom queue's name (Trigger.dev's `type`).
  std::string type = "id";
  for (const auto& [key, value] : *pairs)
    if (key == "type") type = value;
  if (body && body->contains("type")) {
    if (!(*body)["type"].is_string()) return respond(error_response(400, "type must be \"id\", \"task\" or \"custom\""));
    type = (*body)["type"].get<std::string>();
  }
  if (type == "task") name = "task/" + name;
  else if (type != "id" && type != "custom") return respond(error_response(400, "type must be \"id\", \"task\" or \"custom\""));
  if (action.empty()) return answer(runs_.get_queue(name));
  if (action == "pause") {
    auto a = body->find("action");
    if (a == body->end() || !a->is_string() || (*a != "pause" && *a != "resume"))
      return respond(error_response(400, "the body must be {\"action\": \"pause\" | \"resume\"}"));
    return answer(runs_.pause_queue(name, *a == "pause"));
  }
  if (action == "reset") return answer(runs_.override_queue(name, std::nullopt));
  auto l = body->find("concurrencyLimit");
  if (l == body->end() || !l->is_number_integer() || l->get<int64_t>() < 0 || l->get<int64_t>() > 100000)
    return respond(error_response(400, "the body must be {\"concurrencyLimit\": a whole number from 0 to 100000}"));
  return answer(runs_.override_queue(name, l->get<int>()));
}

void api_gateway::schedules(const http_request& req, const std::vector<std::string_view>& parts, http_responder respond) {
  // /api/v1/schedules[/{id}[/activate | /deactivate]]
  std::string_view target = req.target;
  auto q = target.find('?');
  auto answer = [&](const api_answer& a) {
    if (a.status != 200) {
      auto r = error_response(a.status, a.body.value("error", std::string("error")));
      if (a.body.contains("issues")) r.body = dump(a.body);
      return respond(std::move(r));
    }
    respond({200, dump(a.body), {}});
  };
  auto not_allowed = [&](std::string_view allowed) { respond(not_allowed_response(req.method, target.substr(0, q), allowed)); };
  auto body = [&]() -> std::optional<json> {
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      respond(error_response(400, "the body must be a JSON object: {\"task\", \"cron\", \"deduplicationKey\"?, \"externalId\"?, \"timezone\"?}"));
      return std::nullopt;
    }
    return j;
  };
  if (parts.size() == 3) {
    if (req.method == "POST") {
      auto b = body();
      if (!b) return;
      return answer(runs_.create_schedule(*b));
    }
    if (req.method != "GET") return not_allowed("GET, POST");
    auto pairs = decode_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    if (!pairs) return respond(error_response(400, "bad percent-escape in the query string"));
    size_t page = 1, per_page = 20;
    if (auto e = offset_page(*pairs, page, per_page); !e.empty()) return respond(error_response(400, e));
    return answer(runs_.list_schedules(page, per_page));
  }
  std::string id;
  if (!percent_decode(parts[3], id)) return respond(error_response(400, "bad percent-escape in the path"));
  if (parts.size() == 5) {
    if (parts[4] != "activate" && parts[4] != "deactivate")
      return respond(error_response(404, "No route for " + req.method + " " + std::string(target.substr(0, q))));
    if (req.method != "POST") return not_allowed("POST");
    return answer(runs_.activate_schedule(id, parts[4] == "activate"));
  }
  if (req.method == "GET") return answer(runs_.get_schedule(id));
  if (req.method == "DELETE") return answer(runs_.delete_schedule(id));
  if (req.method == "PUT") {
    auto b = body();
    if (!b) return;
    return answer(runs_.update_schedule(id, *b));
  }
  not_allowed("GET, PUT, DELETE");
}

}  // namespace taskhost
