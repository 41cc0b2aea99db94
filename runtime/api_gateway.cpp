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

namespace {

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

api_gateway::api_gateway(run_service& runs, uint64_t max_payload_bytes, api_keys* keys, signed_url_options urls)
    : runs_(runs), max_payload_bytes_(max_payload_bytes), keys_(keys), urls_(std::move(urls)) {
  if (!urls_.signer) urls_.signer = std::make_shared<const url_signer>(url_signer::new_secret());
  // The path of http.public_url ("https://h/x" → "/x").
  if (auto scheme = urls_.public_url.find("://"); scheme != std::string::npos)
    if (auto slash = urls_.public_url.find('/', scheme + 3); slash != std::string::npos) path_prefix_ = urls_.public_url.substr(slash);
  while (!path_prefix_.empty() && path_prefix_.back() == '/') path_prefix_.pop_back();
}

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

// ---- routing --------------------------------------------------------------------------------

/// One route: a method, a path pattern of literal segments and `{param}`s (`{param+}`: one or more
/// segments, joined with '/' — a queue id such as `task/<id>` may arrive with its slash as is), and
/// the member function that answers it.
struct api_gateway::route_entry {
  std::string_view method;
  std::string_view pattern;
  bool open;  ///< answered without an API key
  void (api_gateway::*fn)(call&);
};

/// The request as a route function sees it.
struct api_gateway::call {
  const http_request& req;
  std::string_view path;
  std::string_view query;           ///< after '?', raw
  std::vector<std::string> params;  ///< the pattern's {params}, percent-decoded, in order
  http_responder respond;

  /// The query string's pairs; nullopt (after answering 400) on a bad %-escape.
  std::optional<std::vector<std::pair<std::string, std::string>>> query_pairs() {
    auto pairs = decode_query(query);
    if (!pairs) respond(error_response(400, "bad percent-escape in the query string"));
    return pairs;
  }
  void answer(const api_answer& a) { respond(answer_response(a)); }
};

// Order matters only among patterns that can match the same path: the first pattern that matches
// decides the route (and, for another method, the 405's Allow list).
const std::vector<api_gateway::route_entry>& api_gateway::table() {
  static const std::vector<route_entry> t = {
      {"POST", "/api/v1/tasks/{taskIdentifier}/trigger", false, &api_gateway::trigger},
      {"GET", "/api/v1/runs", false, &api_gateway::list},
      {"GET", "/api/v3/runs/{runId}", false, &api_gateway::retrieve},
      {"POST", "/api/v2/runs/{runId}/cancel", false, &api_gateway::cancel},
      {"POST", "/api/v1/runs/{runId}/replay", false, &api_gateway::replay},
      {"POST", "/api/v1/runs/{runId}/reschedule", false, &api_gateway::reschedule},
      {"GET", "/api/v1/runs/{runId}/logs", false, &api_gateway::logs},
      {"GET", "/api/v1/batches/{batchId}", false, &api_gateway::retrieve_batch},
      {"GET", "/api/v2/batches/{batchId}", false, &api_gateway::retrieve_batch},
      {"POST", "/api/v3/batches", false, &api_gateway::create_batch},
      {"POST", "/api/v3/batches/{batchId}/items", false, &api_gateway::batch_items},
      {"GET", "/api/v1/waitpoints/tokens", false, &api_gateway::list_tokens},
      {"POST", "/api/v1/waitpoints/tokens", false, &api_gateway::create_token},
      {"GET", "/api/v1/waitpoints/tokens/{waitpointId}", false, &api_gateway::retrieve_token},
      {"POST", "/api/v1/waitpoints/tokens/{waitpointId}/complete", false, &api_gateway::complete_token},
      {"POST", "/api/v1/waitpoints/tokens/{waitpointId}/callback/{signature}", true, &api_gateway::token_callback},
      {"POST", "/api/v1/idempotencyKeys/{idempotencyKey}/reset", false, &api_gateway::reset_idempotency_key},
      {"PUT", "/api/v2/packets/{filename}", false, &api_gateway::create_packet_url},
      {"PUT", "/api/v2/packets/upload/{expires}/{signature}/{storagePath}", true, &api_gateway::upload_packet},
      {"GET", "/api/v1/queues", false, &api_gateway::list_queues},
      {"POST", "/api/v1/queues/{queue+}/pause", false, &api_gateway::pause_queue},
      {"POST", "/api/v1/queues/{queue+}/concurrency/override", false, &api_gateway::override_queue},
      {"POST", "/api/v1/queues/{queue+}/concurrency/reset", false, &api_gateway::reset_queue},
      {"GET", "/api/v1/queues/{queue+}", false, &api_gateway::retrieve_queue},
      {"GET", "/api/v1/schedules", false, &api_gateway::list_schedules},
      {"POST", "/api/v1/schedules", false, &api_gateway::create_schedule},
      {"GET", "/api/v1/schedules/{scheduleId}", false, &api_gateway::retrieve_schedule},
      {"PUT", "/api/v1/schedules/{scheduleId}", false, &api_gateway::update_schedule},
      {"DELETE", "/api/v1/schedules/{scheduleId}", false, &api_gateway::delete_schedule},
      {"POST", "/api/v1/schedules/{scheduleId}/activate", false, &api_gateway::activate_schedule},
      {"POST", "/api/v1/schedules/{scheduleId}/deactivate", false, &api_gateway::deactivate_schedule},
      {"GET", "/api/v1/timezones", true, &api_gateway::timezones},
      {"GET", "/api/openapi.json", false, &api_gateway::openapi},
      {"GET", "/healthz", true, &api_gateway::healthz},
  };
  return t;
}

std::vector<api_route> api_gateway::routes() {
  std::vector<api_route> out;
  for (const auto& r : table()) {
    std::string path(r.pattern);
    if (auto plus = path.find("+}"); plus != std::string::npos) path.erase(plus, 1);
    out.push_back({std::string(r.method), std::move(path), r.open});
  }
  return out;
}

namespace {

/// A route's pattern split into segments, once.
struct compiled_pattern {
  std::vector<std::string_view> segments;
  size_t greedy;  ///< index of the {param+} segment, or segments.size()
};

compiled_pattern compile_pattern(std::string_view pattern) {
  compiled_pattern c{split_path(pattern), 0};
  c.greedy = c.segments.size();
  for (size_t i = 0; i < c.segments.size(); ++i) {
    auto seg = c.segments[i];
    if (seg.size() > 3 && seg.front() == '{' && seg.substr(seg.size() - 2) == "+}") c.greedy = i;
  }
  return c;
}

/// Whether `parts` (raw path segments) match the pattern; `params` gets the raw text of each
/// {param} (a {param+} the raw segments joined by '/').
bool match_pattern(const compiled_pattern& pat, const std::vector<std::string_view>& parts, std::vector<std::string_view>& params) {
  const auto& segs = pat.segments;
  params.clear();
  if (pat.greedy == segs.size() ? parts.size() != segs.size() : parts.size() < segs.size()) return false;
  const size_t extra = parts.size() - segs.size();  // segments the greedy param takes beyond its one
  for (size_t i = 0, j = 0; i < segs.size(); ++i, ++j) {
    if (i == pat.greedy) {
      const char* begin = parts[j].data();
      j += extra;
      params.emplace_back(begin, static_cast<size_t>(parts[j].data() + parts[j].size() - begin));
    } else if (segs[i].front() == '{') {
      params.push_back(parts[j]);
    } else if (segs[i] != parts[j]) {
      return false;
    }
  }
  return true;
}

}  // namespace

void api_gateway::handle(http_request req, http_responder respond) {
  // Behind a proxy that keeps http.public_url's path, or a client pointed at it: served without it.
  if (!path_prefix_.empty() && req.target.size() > path_prefix_.size() && req.target.compare(0, path_prefix_.size(), path_prefix_) == 0 &&
      (req.target[path_prefix_.size()] == '/' || req.target[path_prefix_.size()] == '?'))
    req.target.erase(0, path_prefix_.size());
  std::string_view target = req.target;
  const auto qmark = target.find('?');
  std::string_view path = target.substr(0, qmark);
  const auto parts = split_path(path);
  // The first pattern the path matches, and the route of that pattern for this method (HEAD is
  // answered as GET; the server sends no body).
  std::vector<std::string_view> raw_params;
  std::string_view pattern;
  const route_entry* route = nullptr;
  std::string allowed;
  bool open = false;
  static const std::vector<compiled_pattern> compiled = [] {
    std::vector<compiled_pattern> out;
    for (const auto& r : table()) out.push_back(compile_pattern(r.pattern));
    return out;
  }();
  for (size_t i = 0; i < table().size(); ++i) {
    const route_entry& r = table()[i];
    if (pattern.empty()) {
      if (!match_pattern(compiled[i], parts, raw_params)) continue;
      pattern = r.pattern;
      open = true;
    } else if (r.pattern != pattern) {
      continue;
    }
    open = open && r.open;
    allowed += (allowed.empty() ? "" : ", ") + std::string(r.method);
    if (!route && (r.method == req.method || (req.method == "HEAD" && r.method == "GET"))) route = &r;
  }
  // The key is checked before anything else of the request is looked at (deny by default: a route
  // added later is covered too, and so are unknown paths), and once: the same check names the key
  // for the access log (never the key).
  std::string who;
  if (auto refusal = check_key(req, /*required=*/!open || pattern.empty(), who)) return respond(std::move(*refusal));
  if (!who.empty())
    respond = [r = std::move(respond), who = std::move(who)](http_response resp) {
      resp.principal = who;
      r(std::move(resp));
    };
  if (pattern.empty()) return respond(error_response(404, "No route for " + req.method + " " + std::string(path)));
  if (!route) return respond(not_allowed_response(req.method, path, allowed));
  call c{req, path, qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1), {}, std::move(respond)};
  for (auto p : raw_params) {
    std::string decoded;
    if (!percent_decode(p, decoded)) return c.respond(error_response(400, "bad percent-escape in the path"));
    c.params.push_back(std::move(decoded));
  }
  (this->*(route->fn))(c);
}

// ---- runs -------------------------------------------------------------------------------------

void api_gateway::retrieve(call& c) {
  const std::string& run_id = c.params[0];
  auto run = runs_.get_run(run_id);
  if (!run) return c.respond(error_response(404, "Run not found: " + run_id));
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
  c.respond({200, dump(j), {}});
}

void api_gateway::cancel(call& c) {
  runs_.cancel(c.params[0], [respond = std::move(c.respond), run_id = c.params[0]](trigger_outcome o) {
    if (o.status != 200) return respond(error_response(o.status, o.error));
    respond({200, json{{"id", run_id}}.dump(), {}});
  });
}

void api_gateway::logs(call& c) {
  auto run = runs_.get_run(c.params[0]);
  if (!run) return c.respond(error_response(404, "Run not found: " + c.params[0]));
  c.respond({200, dump(logs_to_api_json(*run)), {}});
}

// ---- tokens and batches -----------------------------------------------------------------------

void api_gateway::create_token(call& c) {
  auto body = object_body(c.req.body);
  if (!body) return c.respond(error_response(400, "the body must be a JSON object"));
  auto a = runs_.create_token(*body);
  if (a.status != 200) return c.answer(a);
  a.body = with_callback_urls(std::move(a.body), c.req);
  // As for a trigger (§8): the SDK's publicAccessToken, so that it never has to self-sign.
  const std::string jwt = "taskhost-" + a.body.value("id", std::string());
  c.respond({200, dump(a.body), {{"x-trigger-jwt", jwt}}});
}

void api_gateway::list_tokens(call& c) {
  // The filters the SDK's wait.listTokens sends (§5.9).
  auto pairs = c.query_pairs();
  if (!pairs) return;
  token_list_query query;
  for (const auto& [key, value] : *pairs) {
    if (key == "filter[status]") {
      for (const auto& s : split_list(value)) {
        if (s != "WAITING" && s != "COMPLETED" && s != "TIMED_OUT")
          return c.respond(error_response(400, "filter[status] must be WAITING, COMPLETED or TIMED_OUT (comma-separated), got '" + s + "'"));
        query.statuses.push_back(s);
      }
    } else if (key == "filter[idempotencyKey]") {
      query.idempotency_key = value;
    } else if (key == "filter[tags]") {
      query.tags = split_list(value);
    } else if (key == "filter[createdAt][from]" || key == "filter[createdAt][to]") {
      std::optional<time_point> t;
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos && value.size() < 16) t = from_ms(std::stoll(value));
      else t = parse_iso_time(value);
      if (!t) return c.respond(error_response(400, key + " must be epoch milliseconds or an ISO date, got '" + value + "'"));
      (key == "filter[createdAt][from]" ? query.created_from : query.created_to) = t;
    } else if (key == "filter[createdAt][period]") {
      auto d = config::parse_duration(value);
      if (!d) return c.respond(error_response(400, "filter[createdAt][period] must be a duration like 7d, got '" + value + "'"));
      query.created_from = clock_type::now() - *d;
    } else if (key == "page[size]") {
      auto n = page_size(value);
      if (!n) return c.respond(error_response(400, "page[size] must be a whole number from 1 to 100"));
      query.limit = *n;
    } else if (key == "page[after]") {
      query.after = value;
    } else if (key == "page[before]") {
      // Never needed: no page of tokens carries a `previous` cursor.
      return c.respond(error_response(400, "page[before] is not supported for tokens; follow pagination.next"));
    }
  }
  auto a = runs_.list_tokens(query);
  if (a.status == 200) a.body = with_callback_urls(std::move(a.body), c.req);
  c.answer(a);
}

void api_gateway::retrieve_token(call& c) {
  auto a = runs_.get_token(c.params[0]);
  if (a.status == 200) a.body = with_callback_urls(std::move(a.body), c.req);
  c.answer(a);
}

void api_gateway::complete_token(call& c) {
  if (c.req.body.size() > max_payload_bytes_) return c.respond(error_response(413, "the token's data is over the payload limit"));
  auto body = object_body(c.req.body);
  if (!body) return c.respond(error_response(400, "the body must be a JSON object: {\"data\": ...}"));
  c.answer(runs_.complete_token(c.params[0], body->value("data", json())));
}

void api_gateway::retrieve_batch(call& c) { c.answer(runs_.get_batch(c.params[0])); }

// ---- packets, token callbacks, idempotency keys (their work is in api_gateway_signed.cpp) -------

void api_gateway::create_packet_url(call& c) { packet_url(c.params[0], c.req, std::move(c.respond)); }
void api_gateway::upload_packet(call& c) { store_packet(c.params[0], c.params[1], c.params[2], c.req, std::move(c.respond)); }
void api_gateway::token_callback(call& c) { complete_by_callback(c.params[0], c.params[1], c.req, std::move(c.respond)); }
void api_gateway::reset_idempotency_key(call& c) { reset_key(c.params[0], c.req, std::move(c.respond)); }

void api_gateway::create_batch(call& c) { start_batch(c.req, std::move(c.respond)); }

void api_gateway::batch_items(call& c) { stream_batch_items(c.params[0], c.req, std::move(c.respond)); }

// ---- other routes -----------------------------------------------------------------------------

void api_gateway::timezones(call& c) {
  auto pairs = c.query_pairs();
  if (!pairs) return;
  bool exclude_utc = false;
  for (const auto& [key, value] : *pairs)
    if (key == "excludeUtc") exclude_utc = value == "true" || value == "1";
  json zones = json::array();
  for (auto& z : time_zone::names())
    if (!exclude_utc || (z != "UTC" && z != "Etc/UTC")) zones.push_back(std::move(z));
  c.respond({200, dump(json{{"timezones", std::move(zones)}}), {}});
}

void api_gateway::openapi(call& c) { c.respond({200, std::string(openapi_document()), {}}); }

void api_gateway::healthz(call& c) { c.respond({200, R"({"ok":true})", {}}); }

void api_gateway::trigger(call& c) {
  const std::string& task_id = c.params[0];
  const http_request& req = c.req;
  http_responder& respond = c.respond;
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
        // An offloaded payload (§4): the packet uploaded before takes the storagePath's place.
        std::string packet;
        if (parsed.input->payload_type == "application/store" && parsed.input->payload.is_string())
          packet = parsed.input->payload.get<std::string>();
        if (auto e = resolve_stored_payload(*parsed.input, stored_packets())) return respond(error_response(e->status, e->message));
        runs_.trigger(std::move(*parsed.input), [this, respond = std::move(respond), answer, packet = std::move(packet)](trigger_outcome o) {
          if (o.status != 200) return respond(error_response(o.status, o.error));
          if (!packet.empty()) runs_.packet_used(packet);
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

void api_gateway::list(call& c) {
  http_responder& respond = c.respond;
  run_list_query q;
  auto pairs = c.query_pairs();
  if (!pairs) return;
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

void api_gateway::replay(call& c) {
  const std::string& run_id = c.params[0];
  const http_request& req = c.req;
  http_responder& respond = c.respond;
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
  if (auto e = resolve_stored_payload(*parsed.input, stored_packets())) return respond(error_response(e->status, e->message));
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

void api_gateway::reschedule(call& c) {
  const std::string& run_id = c.params[0];
  const http_request& req = c.req;
  http_responder& respond = c.respond;
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

// ---- queues: {queue} is a queue's id: its name, or "task/<task id>" (the slash as is or %2F) ---

namespace {

/// How to read {queue} (Trigger.dev's `type`, in the query or the body): an id (default), a task
/// id, or a custom queue's name. The queue's id, or "" after answering 400.
std::string queue_id(std::string name, std::string_view type, const http_responder& respond) {
  if (type == "task") return "task/" + name;
  if (type == "id" || type == "custom") return name;
  respond(error_response(400, "type must be \"id\", \"task\" or \"custom\""));
  return {};
}

}  // namespace

void api_gateway::list_queues(call& c) {
  auto pairs = c.query_pairs();
  if (!pairs) return;
  size_t page = 1, per_page = 25;
  if (auto e = offset_page(*pairs, page, per_page); !e.empty()) return c.respond(error_response(400, e));
  c.answer(runs_.list_queues(page, per_page));
}

void api_gateway::retrieve_queue(call& c) {
  auto pairs = c.query_pairs();
  if (!pairs) return;
  std::string type = "id";
  for (const auto& [key, value] : *pairs)
    if (key == "type") type = value;
  auto id = queue_id(c.params[0], type, c.respond);
  if (!id.empty()) c.answer(runs_.get_queue(id));
}

/// The body of a queue action and the queue's id; nullopt after answering 400.
std::optional<std::pair<json, std::string>> api_gateway::queue_action(call& c) {
  auto body = object_body(c.req.body);
  if (!body) {
    c.respond(error_response(400, "the body must be a JSON object"));
    return std::nullopt;
  }
  std::string type = "id";
  if (body->contains("type")) {
    if (!(*body)["type"].is_string()) {
      c.respond(error_response(400, "type must be \"id\", \"task\" or \"custom\""));
      return std::nullopt;
    }
    type = (*body)["type"].get<std::string>();
  }
  auto id = queue_id(c.params[0], type, c.respond);
  if (id.empty()) return std::nullopt;
  return std::make_pair(std::move(*body), std::move(id));
}

void api_gateway::pause_queue(call& c) {
  auto q = queue_action(c);
  if (!q) return;
  auto a = q->first.find("action");
  if (a == q->first.end() || !a->is_string() || (*a != "pause" && *a != "resume"))
    return c.respond(error_response(400, "the body must be {\"action\": \"pause\" | \"resume\"}"));
  c.answer(runs_.pause_queue(q->second, *a == "pause"));
}

void api_gateway::override_queue(call& c) {
  auto q = queue_action(c);
  if (!q) return;
  auto l = q->first.find("concurrencyLimit");
  if (l == q->first.end() || !l->is_number_integer() || l->get<int64_t>() < 0 || l->get<int64_t>() > 100000)
    return c.respond(error_response(400, "the body must be {\"concurrencyLimit\": a whole number from 0 to 100000}"));
  c.answer(runs_.override_queue(q->second, l->get<int>()));
}

void api_gateway::reset_queue(call& c) {
  if (auto q = queue_action(c)) c.answer(runs_.override_queue(q->second, std::nullopt));
}

// ---- schedules ----------------------------------------------------------------------------------

namespace {

/// A schedule answer: {"error"} (with "issues" when there are) or the body.
http_response schedule_response(const api_answer& a) {
  if (a.status != 200) {
    auto r = error_response(a.status, a.body.value("error", std::string("error")));
    if (a.body.contains("issues")) r.body = dump(a.body);
    return r;
  }
  return {200, dump(a.body), {}};
}

/// A schedule's body; nullopt after answering 400.
std::optional<json> schedule_body(const std::string& body, const http_responder& respond) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    respond(error_response(400, "the body must be a JSON object: {\"task\", \"cron\", \"deduplicationKey\"?, \"externalId\"?, \"timezone\"?}"));
    return std::nullopt;
  }
  return j;
}

}  // namespace

void api_gateway::list_schedules(call& c) {
  auto pairs = c.query_pairs();
  if (!pairs) return;
  size_t page = 1, per_page = 20;
  if (auto e = offset_page(*pairs, page, per_page); !e.empty()) return c.respond(error_response(400, e));
  c.respond(schedule_response(runs_.list_schedules(page, per_page)));
}

void api_gateway::create_schedule(call& c) {
  if (auto b = schedule_body(c.req.body, c.respond)) c.respond(schedule_response(runs_.create_schedule(*b)));
}

void api_gateway::retrieve_schedule(call& c) { c.respond(schedule_response(runs_.get_schedule(c.params[0]))); }

void api_gateway::update_schedule(call& c) {
  if (auto b = schedule_body(c.req.body, c.respond)) c.respond(schedule_response(runs_.update_schedule(c.params[0], *b)));
}

void api_gateway::delete_schedule(call& c) { c.respond(schedule_response(runs_.delete_schedule(c.params[0]))); }

void api_gateway::activate_schedule(call& c) { c.respond(schedule_response(runs_.activate_schedule(c.params[0], true))); }

void api_gateway::deactivate_schedule(call& c) { c.respond(schedule_response(runs_.activate_schedule(c.params[0], false))); }

}  // namespace taskhost
