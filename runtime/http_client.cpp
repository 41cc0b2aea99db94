#include "runtime/http_client.hpp"

#include "client/src/http_transport.hpp"

namespace taskhost {

struct http_client::impl {
  std::unique_ptr<detail::http_transport> transport;
};

http_client::http_client(std::string base_url) : base_url_(std::move(base_url)), impl_(std::make_unique<impl>()) {
  try {
    impl_->transport = std::make_unique<detail::http_transport>(base_url_);
  } catch (const detail::transport_error& e) {
    throw http_client_error(e.what());
  }
}

http_client::~http_client() = default;

http_result http_client::request(const std::string& method, const std::string& path, const std::string& body,
                                 const std::map<std::string, std::string>& headers) {
  detail::header_list all = {{"user-agent", "taskhost-cli"}, {"content-type", "application/json"}};
  for (const auto& h : default_headers_) all.push_back(h);
  for (const auto& h : headers) all.push_back(h);
  try {
    auto r = impl_->transport->request(method, path, body, all);
    return {r.status, std::move(r.body), std::move(r.headers)};
  } catch (const detail::transport_error& e) {
    throw http_client_error(e.what());
  }
}

}  // namespace taskhost
