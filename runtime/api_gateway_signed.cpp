// The gateway's routes around signed URLs: packets (the presign call and the upload it allows),
// a wait token's callback URL, the `url` of every token shown, and idempotencyKeys.reset.
// See api_gateway.hpp for the routes and runtime/signed_urls.hpp for the signatures.
#include "runtime/api_gateway.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "runtime/ids.hpp"
#include "runtime/run.hpp"

namespace taskhost {

using json = nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int64_t now_ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch()).count(); }

/// The packet's type: the upload's content-type when it is one taskhost decodes (the SDK sends
/// the payloadType), else guessed from the storagePath (the SDK names text packets .txt).
std::string packet_type(const http_request& req, const std::string& storage_path) {
  std::string type;
  if (auto it = req.headers.find("content-type"); it != req.headers.end()) {
    type = it->second.substr(0, it->second.find(';'));
    type.erase(std::remove_if(type.begin(), type.end(), [](char c) { return c == ' ' || c == '\t'; }), type.end());
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  }
  if (type == "application/super+json" || type == "application/json" || type == "text/plain") return type;
  const bool txt = storage_path.size() >= 4 && storage_path.compare(storage_path.size() - 4, 4, ".txt") == 0;
  return txt ? "text/plain" : "application/json";
}

/// A Host header worth putting in a URL: a name or address and a port, nothing else.
bool plain_host(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
  });
}

}  // namespace

bool api_gateway::is_upload_route(const std::vector<std::string_view>& p) {
  return p.size() == 7 && p[0] == "api" && p[1] == "v2" && p[2] == "packets" && p[3] == "upload";
}

bool api_gateway::is_callback_route(const std::vector<std::string_view>& p) {
  return p.size() == 7 && p[0] == "api" && p[1] == "v1" && p[2] == "waitpoints" && p[3] == "tokens" && p[5] == "callback";
}

uint64_t api_gateway::body_limit_for(std::string_view method, std::string_view target, std::string_view authorization) const {
  std::string_view path = target.substr(0, target.find('?'));
  if (!path_prefix_.empty() && path.substr(0, path_prefix_.size()) == path_prefix_) path.remove_prefix(path_prefix_.size());
  if (method == "PUT" && is_upload_route(split_path(path))) return urls_.max_packet_bytes;
  if (max_batch_body_bytes_ > 0 && takes_large_body(method, path, authorization)) return max_batch_body_bytes_;
  return 0;
}

std::string api_gateway::loggable_path(std::string_view path) {
  // Called for every access log line: most paths are neither route.
  if (path.find("/callback/") == std::string_view::npos && path.find("/packets/upload/") == std::string_view::npos) return std::string(path);
  // The route's segments are the last seven (a proxy prefix may come before them).
  auto parts = split_path(path);
  if (parts.size() < 7) return std::string(path);
  std::vector<std::string_view> tail(parts.end() - 7, parts.end());
  size_t hidden = 0;
  if (is_upload_route(tail)) hidden = parts.size() - 2;
  else if (is_callback_route(tail)) hidden = parts.size() - 1;
  else return std::string(path);
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out.append("/").append(i == hidden ? std::string_view("<hmac>") : parts[i]);
  return out;
}

void api_gateway::set_listen_address(std::string host_port) {
  std::lock_guard lock(listen_mu_);
  listen_address_ = std::move(host_port);
}

std::string api_gateway::base_url(const http_request& req) const {
  if (!urls_.public_url.empty()) return urls_.public_url;
  if (auto it = req.headers.find("host"); it != req.headers.end() && plain_host(it->second)) return "http://" + it->second;
  std::lock_guard lock(listen_mu_);
  return "http://" + (listen_address_.empty() ? std::string("127.0.0.1") : listen_address_);
}

json api_gateway::with_callback_urls(json body, const http_request& req) const {
  const std::string base = base_url(req);
  auto add = [&](json& t) {
    if (t.is_object() && t.contains("id") && t["id"].is_string()) t["url"] = base + urls_.signer->callback_path(t["id"].get<std::string>());
  };
  if (body.contains("data") && body["data"].is_array()) {
    for (auto& t : body["data"]) add(t);
  } else {
    add(body);
  }
  return body;
}

packet_reader api_gateway::stored_packets() const {
  return [this](const std::string& storage_path) { return runs_.get_packet(storage_path); };
}

void api_gateway::packet_url(const std::string& filename, const http_request& req, http_responder respond) {
  if (filename.empty() || filename.size() > 1024 ||
      std::any_of(filename.begin(), filename.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return respond(error_response(400, "a packet's filename must be 1 to 1024 characters without control characters"));
  // Each presign gets a storagePath of its own: two uploads never share one.
  const std::string storage_path = "packets/" + new_id("") + "/" + filename;
  const int64_t expires = now_ms() + urls_.upload_url_ttl.count();
  json out = {{"presignedUrl", base_url(req) + urls_.signer->upload_path(storage_path, expires)}, {"storagePath", storage_path}};
  respond({200, dump(out), {}});
}

void api_gateway::store_packet(const std::string& expires, const std::string& signature, const std::string& storage_path,
                               const http_request& req, http_responder respond) {
  // The signature first: a forged or expired URL learns nothing and stores nothing.
  url_signer::upload_grant grant;
  switch (urls_.signer->check_upload(expires, signature, storage_path, now_ms(), grant)) {
    case url_signer::upload_check::forged:
      return respond(error_response(403, "this upload URL's signature does not match: it was not made by this deployment, or was altered"));
    case url_signer::upload_check::expired:
      return respond(error_response(403, "this upload URL has expired; ask PUT /api/v2/packets/{filename} for a new one"));
    case url_signer::upload_check::ok:
      break;
  }
  if (req.body.size() > urls_.max_packet_bytes)
    return respond(error_response(413, "the packet of " + std::to_string(req.body.size()) + " bytes is over limits.max_packet_bytes (" +
                                           std::to_string(urls_.max_packet_bytes) + ")"));
  const std::string type = packet_type(req, grant.storage_path);
  auto a = runs_.save_packet(grant.storage_path, type, req.body);
  if (a.status != 200) return respond(error_response(a.status, a.body.value("error", std::string("the packet could not be stored"))));
  respond({200, "{}", {}});
}

void api_gateway::complete_by_callback(const std::string& id, const std::string& signature, const http_request& req,
                                       http_responder respond) {
  // A wrong HMAC looks like an unknown token: the URL does not exist.
  if (!urls_.signer->check_callback(id, signature)) return respond(error_response(404, "No waitpoint token has this callback URL"));
  if (req.body.size() > max_payload_bytes_) return respond(error_response(413, "the token's data is over limits.max_payload_bytes"));
  // The body is the data (any JSON; nothing means {}).
  json data = json::object();
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    data = json::parse(req.body, nullptr, false);
    if (data.is_discarded()) return respond(error_response(400, "the body of a callback must be JSON (it becomes the token's data)"));
  }
  auto a = runs_.complete_token(id, data);
  if (a.status != 200) return respond(error_response(a.status, a.body.value("error", std::string("error"))));
  respond({200, dump(a.body), {}});
}

void api_gateway::reset_key(const std::string& key, const http_request& req, http_responder respond) {
  if (key.empty() || key.size() > max_idempotency_key_chars)
    return respond(error_response(400, "the idempotency key in the path must be 1 to 2048 characters (%-encoded)"));
  json body = json::parse(req.body.find_first_not_of(" \t\r\n") == std::string::npos ? std::string("{}") : req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("taskIdentifier") || !body["taskIdentifier"].is_string() ||
      body["taskIdentifier"].get_ref<const std::string&>().empty())
    return respond(error_response(400, "the body must be {\"taskIdentifier\": \"<task id>\"}: a key is reset for one task"));
  auto a = runs_.reset_idempotency_key(body["taskIdentifier"].get<std::string>(), key);
  if (a.status != 200) return respond(error_response(a.status, a.body.value("error", std::string("error"))));
  respond({200, dump(a.body), {}});
}

}  // namespace taskhost
