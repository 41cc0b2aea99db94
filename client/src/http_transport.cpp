#include "http_transport.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>

namespace taskhost::detail {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct http_transport::impl {
  std::string host, port, prefix;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;

  void connect(const std::string& url, std::chrono::milliseconds timeout) {
    tcp::resolver r(ioc);
    beast::error_code ec;
    auto eps = r.resolve(host, port, ec);
    if (ec) throw transport_error(transport_error::kind::resolve, "cannot resolve " + url + ": " + ec.message());
    stream.emplace(ioc);
    stream->expires_after(timeout);
    stream->connect(eps, ec);
    if (ec) {
      stream.reset();
      throw transport_error(transport_error::kind::connect,
                            "cannot connect to " + url + ": " + ec.message() + " (is taskhost running there?)");
    }
  }
};

http_transport::http_transport(std::string base_url, timeouts t)
    : base_url_(std::move(base_url)), timeouts_(t), impl_(std::make_unique<impl>()) {
  while (base_url_.size() > 7 && base_url_.back() == '/') base_url_.pop_back();
  auto bad = [&](const std::string& why) { return transport_error(transport_error::kind::bad_url, why); };
  std::string_view u = base_url_;
  if (u.substr(0, 7) != "http://") throw bad("unsupported URL '" + base_url_ + "': expected http://host:port");
  u.remove_prefix(7);
  auto slash = u.find('/');
  std::string_view hostport = u.substr(0, slash);
  if (slash != std::string_view::npos) impl_->prefix = std::string(u.substr(slash));
  while (!impl_->prefix.empty() && impl_->prefix.back() == '/') impl_->prefix.pop_back();
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) throw bad("bad URL '" + base_url_ + "'");
    impl_->host = std::string(hostport.substr(1, close - 1));
    impl_->port = close + 2 <= hostport.size() ? std::string(hostport.substr(close + 2)) : "80";
  } else {
    auto colon = hostport.rfind(':');
    impl_->host = std::string(hostport.substr(0, colon));
    impl_->port = colon == std::string_view::npos ? "80" : std::string(hostport.substr(colon + 1));
  }
  if (impl_->host.empty() || impl_->port.empty()) throw bad("bad URL '" + base_url_ + "'");
}

http_transport::~http_transport() = default;

http_reply http_transport::request(std::string_view method, const std::string& path, const std::string& body,
                                   const header_list& headers) {
  auto& i = *impl_;
  for (int tries = 0;; ++tries) {
    bool fresh = !i.stream;
    if (fresh) i.connect(base_url_, timeouts_.connect);
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(beast::string_view(method.data(), method.size())),
                                           i.prefix + path, 11);
    if (req.method() == bhttp::verb::unknown) req.method_string(beast::string_view(method.data(), method.size()));
    // host:port (RFC 9110 §7.2: the port unless it is the default); taskhost builds URLs from it.
    const std::string host = i.host.find(':') != std::string::npos ? "[" + i.host + "]" : i.host;
    req.set(bhttp::field::host, i.port == "80" ? host : host + ":" + i.port);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    i.stream->expires_after(timeouts_.request);
    bhttp::write(*i.stream, req, ec);
    beast::flat_buffer buf;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    // A server may answer early (413) and stop reading: its answer still counts.
    const bool write_failed = static_cast<bool>(ec);
    if (!ec || ec == net::error::broken_pipe || ec == net::error::connection_reset) {
      beast::error_code rec;
      bhttp::read(*i.stream, buf, parser, rec);
      if (!rec) ec = {};
      else if (!write_failed) ec = rec;
    }
    if (ec) {
      i.stream.reset();
      // A kept-alive connection the server closed meanwhile: try once on a new one.
      if (!fresh && tries == 0) continue;
      throw transport_error(transport_error::kind::io, "request to " + base_url_ + path + " failed: " + ec.message());
    }
    auto res = parser.release();
    http_reply out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    if (!res.keep_alive()) i.stream.reset();
    return out;
  }
}

}  // namespace taskhost::detail
