#include "runtime/http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <atomic>
#include <stdexcept>
#include <thread>

#include "runtime/log.hpp"

namespace taskhost {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string error_body(std::string_view msg) { return nlohmann::json{{"error", msg}}.dump(); }

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& s, const http_handler& h, uint64_t max_body)
      : stream_(std::move(s)), handler_(h), max_body_(max_body) {}

  void start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::read, shared_from_this()));
  }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(max_body_);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(120));
    bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof) return close();
    if (ec == bhttp::error::body_limit) {
      keep_alive_ = false;
      linger_ = true;  // the client is still sending: read the rest so it gets our answer, not a reset
      return write({413, error_body("request body is over the limit of " + std::to_string(max_body_) + " bytes"), {}});
    }
    if (ec == beast::error::timeout || ec == net::error::operation_aborted || ec == net::error::connection_reset) return close();
    if (ec) {
      keep_alive_ = false;
      return write({400, error_body(std::string("malformed HTTP request: ") + ec.message()), {}});
    }
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    http_request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.body = std::move(msg.body());
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    auto self = shared_from_this();
    auto respond = [self, answered = std::make_shared<std::atomic<bool>>(false)](http_response r) {
      if (answered->exchange(true)) return;
      net::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable { self->write(std::move(r)); });
    };
    try {
      handler_(std::move(req), respond);
    } catch (const std::exception& e) {
      log::error("http handler threw", {{"error", e.what()}});
      respond({500, error_body("internal error"), {{"x-should-retry", "false"}}});
    }
  }

  void write(http_response r) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), version_ ? version_ : 11);
    res->set(bhttp::field::server, "taskhost");
    bool has_type = false;
    for (auto& [k, v] : r.headers) {
      if (beast::iequals(k, "content-type")) has_type = true;
      res->set(k, v);
    }
    if (!has_type) res->set(bhttp::field::content_type, "application/json");
    res->keep_alive(keep_alive_);
    res->body() = std::move(r.body);
    res->prepare_payload();
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !self->keep_alive_) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (linger_) drain(0);
  }

  /// Lingering close: discards what the client still sends (up to 64 MiB, 10 s), so that closing
  /// with unread data does not reset the connection before the client has read our response.
  void drain(std::size_t total) {
    if (total > (64u << 20)) return;
    if (!drain_buf_) drain_buf_ = std::make_unique<std::array<char, 65536>>();
    stream_.expires_after(std::chrono::seconds(10));
    stream_.async_read_some(net::buffer(*drain_buf_), [self = shared_from_this(), total](beast::error_code ec, std::size_t n) {
      if (!ec) self->drain(total + n);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const http_handler& handler_;
  uint64_t max_body_;
  bool keep_alive_ = true;
  bool linger_ = false;
  std::unique_ptr<std::array<char, 65536>> drain_buf_;
  unsigned version_ = 11;
};

}  // namespace

struct http_server::impl {
  http_server_options opts;
  http_handler handler;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  std::vector<std::thread> threads;
  std::atomic<uint16_t> port{0};

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        s.set_option(tcp::no_delay(true), ec);
        std::make_shared<session>(std::move(s), handler, opts.max_body_bytes)->start();
      }
      accept();
    });
  }
};

http_server::http_server(http_server_options opts, http_handler handler) : impl_(std::make_unique<impl>()) {
  impl_->opts = std::move(opts);
  impl_->handler = std::move(handler);
}

http_server::~http_server() { stop(); }

void http_server::start() {
  auto& i = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(i.opts.host, ec);
  if (ec) {
    // A name such as "localhost": resolve it.
    tcp::resolver r(i.ioc);
    auto results = r.resolve(i.opts.host, std::to_string(i.opts.port), ec);
    if (ec || results.empty()) throw std::runtime_error("cannot resolve http.listen host '" + i.opts.host + "': " + ec.message());
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, i.opts.port);
  const std::string where = i.opts.host + ":" + std::to_string(i.opts.port);
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) i.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  i.port = i.acceptor.local_endpoint().port();
  i.work.emplace(i.ioc.get_executor());
  i.accept();
  for (unsigned t = 0; t < std::max(1u, i.opts.threads); ++t) i.threads.emplace_back([&i] { i.ioc.run(); });
}

uint16_t http_server::port() const { return impl_->port; }

void http_server::stop_accepting() {
  auto& i = *impl_;
  net::dispatch(i.acceptor.get_executor(), [&i] {
    beast::error_code ec;
    i.acceptor.close(ec);
  });
}

void http_server::stop() {
  auto& i = *impl_;
  if (i.threads.empty()) return;
  stop_accepting();
  i.work.reset();
  i.ioc.stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
}

}  // namespace taskhost
