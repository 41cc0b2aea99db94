#include "runtime/http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/ioctl.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <limits>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "runtime/log.hpp"

namespace taskhost {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

std::string error_body(std::string_view msg) { return nlohmann::json{{"error", msg}}.dump(); }

std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

class session;

/// What the acceptor and every session share. The counts and the idle list are touched from any
/// of the server's threads (sessions live on strands), hence the mutex; it is held for a few
/// pointer moves only.
struct server_state {
  http_server_options opts;
  http_handler handler;
  std::mutex mu;
  size_t open = 0;            ///< sessions counted against max_connections
  std::list<session*> idle;   ///< sessions waiting for a request's first byte; front: idle longest
  log::batched_lines access_lines;
  // Busy polling (opts.busy_poll): requests handed to the handler whose answer has not reached its
  // session yet, when the last was handed over, whether a thread polls now, and how many answers
  // a polling thread delivered.
  std::atomic<int> awaiting{0};
  std::atomic<int64_t> handed_at_ns{0};
  std::atomic<bool> polling{false};
  std::atomic<uint64_t> answers_polled{0};
};

thread_local bool this_thread_polls = false;  ///< a server thread inside its busy-polling loop

/// One request's part in `awaiting`: counted from the handler's call until its answer runs on the
/// session's strand, or until the handler lets go of its responder without answering.
class awaited_answer {
public:
  explicit awaited_answer(server_state& st) : st_(st) {
    st_.awaiting.fetch_add(1, std::memory_order_relaxed);
    st_.handed_at_ns.store(steady::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  ~awaited_answer() {
    if (!delivered_) st_.awaiting.fetch_sub(1, std::memory_order_relaxed);
  }
  awaited_answer(const awaited_answer&) = delete;
  awaited_answer& operator=(const awaited_answer&) = delete;
  /// Once: true for the first answer; later ones are ignored.
  bool claim() { return !answered_.exchange(true); }
  /// The answer runs on the session's strand: no longer awaited.
  void delivered() {
    delivered_ = true;
    if (this_thread_polls) st_.answers_polled.fetch_add(1, std::memory_order_relaxed);
    st_.awaiting.fetch_sub(1, std::memory_order_relaxed);
  }

private:
  server_state& st_;
  std::atomic<bool> answered_{false};
  bool delivered_ = false;  // set on the strand; read by the last owner, after the shared count's release
};

/// One connection. Its life, each step bounded by a timeout (a step that times out closes it):
///   wait for a request's first byte   (idle: the cap may close it to admit a new connection)
///   → read the headers                (header_timeout; for a new connection, from its accept)
///   → read the body                   (body_timeout)
///   → the handler computes            (no timeout: it answers when it answers, from any thread)
///   → write the response              (body_timeout) → access log line → again, if kept alive
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& s, server_state& st)
      : stream_(std::move(s)), st_(st), accepted_(steady::now()), fd_(stream_.socket().native_handle()) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      auto a = ep.address();
      remote_ = (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
    }
  }

  ~session() {
    std::lock_guard lock(st_.mu);
    if (idle_listed_) st_.idle.erase(idle_it_);
    if (counted_) --st_.open;
  }

  /// Counts this session against the cap (the caller holds st_.mu).
  void count_locked() { counted_ = true; }

  void start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::await_request, shared_from_this()));
  }

  /// Over the cap, with no idle connection to close: 503 and close.
  void reject() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->request_start_ = self->accepted_;
      self->keep_alive_ = false;
      self->linger_ = true;  // the client may be sending its request: let it read our answer
      self->linger_for_ = std::chrono::seconds(1);  // not counted against the cap: keep it short
      http_response r{503, error_body("too many connections"), {{"x-should-retry", "true"}}};
      self->write(std::move(r));
    });
  }

  /// Closes the session idle longest to free a slot for a new connection, and returns true; false
  /// if none may be closed. Called by the acceptor, which holds st.mu. Passed over:
  ///   - a session whose request has begun to arrive (bytes wait in its socket, not read yet);
  ///   - a new connection silent for less than min(1 s, header_timeout / 2): clients send their
  ///     first request right after connecting, and do not expect a fresh connection to close.
  /// A kept-alive connection is closed even if its client is about to send on it, as any server
  /// closing idle keep-alive connections does (clients retry on another connection).
  static bool evict_one_locked(server_state& st) {
    const auto now = steady::now();
    const auto fresh_grace = std::min<steady::duration>(std::chrono::seconds(1), st.opts.header_timeout / 2);
    int scanned = 0;
    for (auto it = st.idle.begin(); it != st.idle.end() && scanned < 64; ++scanned) {
      session* s = *it++;
      if (s->first_request_locked_ && now - s->idle_since_ < fresh_grace) continue;
      // The descriptor may have been closed by a timeout meanwhile (and even reused): then the
      // answer is wrong but harmless, and the session is on its way out anyway.
      int pending = 0;
      if (::ioctl(s->fd_, FIONREAD, &pending) == 0 && pending > 0) continue;
      evict_locked(s, st);
      return true;
    }
    return false;
  }

private:
  /// Takes the session off the idle list and out of the count at once (its slot is free); its
  /// socket is closed on its strand.
  static void evict_locked(session* s, server_state& st) {
    st.idle.erase(s->idle_it_);
    s->idle_listed_ = false;
    if (s->counted_) --st.open;
    s->counted_ = false;
    // A session whose last owner is gone waits for st.mu in its destructor: nothing to close.
    if (auto self = s->weak_from_this().lock())
      net::post(self->stream_.get_executor(), [self] {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();  // the pending read ends with operation_aborted; the session ends
      });
  }

  void set_idle(bool idle) {
    std::lock_guard lock(st_.mu);
    if (idle == idle_listed_) return;
    if (idle) {
      idle_it_ = st_.idle.insert(st_.idle.end(), this);
      idle_since_ = steady::now();
      first_request_locked_ = first_request_;
    } else {
      st_.idle.erase(idle_it_);
    }
    idle_listed_ = idle;
  }

  const http_server_options& opts() const { return st_.opts; }

  /// Waits for the first byte of the next request. A kept-alive connection may wait idle_timeout;
  /// a new one must send its whole first header within header_timeout of its accept.
  void await_request() {
    if (buffer_.size() > 0) return on_first_bytes({}, 0);  // a pipelined request is already here
    // An idle connection keeps little: 10,000 of them after large requests would otherwise keep
    // their read buffers.
    if (buffer_.capacity() > 16 * 1024) buffer_.shrink_to_fit();
    set_idle(true);
    stream_.expires_at(first_request_ ? accepted_ + opts().header_timeout : steady::now() + opts().idle_timeout);
    stream_.async_read_some(buffer_.prepare(2048), beast::bind_front_handler(&session::on_first_bytes, shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    set_idle(false);
    if (ec) return close();  // idle or header timeout, closed by the client, or closed by the cap
    buffer_.commit(n);
    request_start_ = steady::now();
    bytes_in_ = bytes_out_ = 0;
    status_ = 0;
    method_.clear();
    path_.clear();
    principal_.clear();
    head_ = false;
    parser_.emplace();
    body_limit_ = opts().max_body_bytes;
    // With a per-request limit, none until the headers say which request this is (on_header).
    // (Not boost::none: Beast 1.74 compares the length with the optional, and none is less.)
    parser_->body_limit(opts().body_limit_for ? std::numeric_limits<uint64_t>::max() : body_limit_);
    parser_->header_limit(64 * 1024);
    stream_.expires_at((first_request_ ? accepted_ : request_start_) + opts().header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t n) {
    bytes_in_ += n;
    if (ec) return on_read_error(ec);
    if (opts().body_limit_for) {
      const auto& m = parser_->get();
      if (uint64_t own = opts().body_limit_for(sv(m.method_string()), sv(m.target()), sv(m[bhttp::field::authorization])))
        body_limit_ = own;
      if (auto len = parser_->content_length(); len && *len > body_limit_) return on_read_error(bhttp::error::body_limit);
      parser_->body_limit(body_limit_);
    }
    if (parser_->is_done()) return dispatch();
    stream_.expires_after(opts().body_timeout);
    if (beast::iequals(parser_->get()[bhttp::field::expect], "100-continue")) {
      // curl waits a second for this before sending a large body.
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(go_on.data(), go_on.size()),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (ec) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->bytes_in_ += n;
      if (ec) return self->on_read_error(ec);
      self->dispatch();
    });
  }

  void on_read_error(beast::error_code ec) {
    // The request line, if it was read (a Content-Length over the limit stops the header early).
    const auto& m = parser_->get();
    method_ = std::string(m.method_string());
    path_ = std::string(m.target().substr(0, m.target().find('?')));
    keep_alive_ = false;
    if (ec == bhttp::error::body_limit) {
      linger_ = true;  // the client is still sending: read the rest so it gets our answer, not a reset
      return write({413, error_body("request body is over the limit of " + std::to_string(body_limit_) + " bytes"), {}});
    }
    if (ec == beast::error::timeout) {
      if (!parser_->is_header_done()) return close();  // headers too slow: nothing to answer yet
      // A body that stalls or never ends. The stream closed the socket on the timeout, so the 408
      // reaches nobody; the access log records it all the same.
      status_ = 408;
      log_access();
      return close();
    }
    if (ec == bhttp::error::partial_message || ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return close();  // the client went away mid-request
    linger_ = true;
    if (ec == bhttp::error::header_limit)
      return write({431, error_body("request headers are over the limit of 65536 bytes"), {}});
    write({400, error_body(std::string("malformed HTTP request: ") + ec.message()), {}});
  }

  void dispatch() {
    auto msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    head_ = msg.method() == bhttp::verb::head;
    http_request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.body = std::move(msg.body());
    method_ = req.method;
    path_ = req.target.substr(0, req.target.find('?'));  // the query may carry secrets: never logged
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    auto self = shared_from_this();
    auto respond = [self, awaited = std::make_shared<awaited_answer>(st_)](http_response r) {
      if (!awaited->claim()) return;
      net::post(self->stream_.get_executor(), [self, awaited, r = std::move(r)]() mutable {
        awaited->delivered();
        self->write(std::move(r));
      });
    };
    try {
      st_.handler(std::move(req), respond);
    } catch (const std::exception& e) {
      log::error("http handler threw", {{"error", e.what()}});
      respond({500, error_body("internal error"), {{"x-should-retry", "false"}}});
    }
  }

  void write(http_response r) {
    status_ = r.status;
    principal_ = std::move(r.principal);
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
    if (head_) {
      // A response to HEAD has the headers of the response to GET and no body: a body would be
      // read as the start of the next response on a kept-alive connection.
      const auto n = res->body().size();
      res->body().clear();
      res->content_length(n);
    }
    // The handler may have taken any time: the deadline is set now, for the write alone.
    stream_.expires_after(opts().body_timeout);
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t n) {
      self->bytes_out_ = n;
      self->log_access();
      if (ec || !self->keep_alive_) return self->close();
      self->first_request_ = false;
      self->await_request();
    });
  }

  /// The access line, kept in the server's batch (written every 100 ms, or at once when 4 KiB are
  /// kept): the HTTP thread formats it (~0.3 µs) and does not wait for a write(2) per line.
  void log_access() {
    if (!opts().access_log) return;
    const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - request_start_).count();
    std::string_view method = method_.empty() ? std::string_view("-") : std::string_view(method_);
    std::string_view path = path_.empty() ? std::string_view("-") : std::string_view(path_);
    std::string shown;
    if (opts().log_path && !path_.empty()) path = shown = opts().log_path(path_);
    if (principal_.empty())
      st_.access_lines.add(log::level::info, "http", {{"method", method}, {"path", path}, {"status", status_}, {"duration_us", us},
                                                             {"bytes_in", bytes_in_}, {"bytes_out", bytes_out_}, {"remote", remote_}});
    else
      st_.access_lines.add(log::level::info, "http", {{"method", method}, {"path", path}, {"status", status_}, {"duration_us", us},
                                                             {"bytes_in", bytes_in_}, {"bytes_out", bytes_out_}, {"remote", remote_},
                                                             {"key", principal_}});
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (linger_) {
      // At most 10 s in all (less with a shorter body_timeout), not per read: a client trickling
      // bytes cannot keep the connection.
      stream_.expires_after(std::min<std::chrono::milliseconds>({opts().body_timeout, linger_for_}));
      drain(0);
    }
  }

  /// Lingering close: discards what the client still sends (up to 64 MiB), so that closing with
  /// unread data does not reset the connection before the client has read our response.
  void drain(std::size_t total) {
    if (total > (64u << 20)) return;
    if (!drain_buf_) drain_buf_ = std::make_unique<std::array<char, 65536>>();
    stream_.async_read_some(net::buffer(*drain_buf_), [self = shared_from_this(), total](beast::error_code ec, std::size_t n) {
      if (!ec) self->drain(total + n);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  server_state& st_;
  const steady::time_point accepted_;
  const int fd_;  ///< for the eviction's look at waiting bytes, from the acceptor's thread
  steady::time_point request_start_;
  std::string remote_ = "-";
  bool first_request_ = true;
  bool keep_alive_ = true;
  bool linger_ = false;
  std::chrono::milliseconds linger_for_{10'000};
  uint64_t body_limit_ = 0;  ///< the request in flight's body limit
  std::unique_ptr<std::array<char, 65536>> drain_buf_;
  unsigned version_ = 11;
  bool head_ = false;
  // For the access line of the request in flight.
  std::string method_, path_, principal_;
  int status_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  // Guarded by st_.mu.
  bool counted_ = false;
  bool idle_listed_ = false;
  steady::time_point idle_since_;
  bool first_request_locked_ = false;  ///< first_request_ when it went idle
  std::list<session*>::iterator idle_it_;
};

/// Raises the soft limit of open files (sockets are files) to the hard limit. Returns the soft and
/// hard limits in force.
std::pair<uint64_t, uint64_t> raise_open_files_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return {0, 0};
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    // "unlimited" is not a number of files Linux accepts; its default ceiling (fs.nr_open) is.
    if (want.rlim_max == RLIM_INFINITY) want.rlim_cur = 1u << 20;
    else want.rlim_cur = want.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  auto n = [](rlim_t v) { return v == RLIM_INFINITY ? uint64_t(-1) : uint64_t(v); };
  return {n(rl.rlim_cur), n(rl.rlim_max)};
}

}  // namespace

struct http_server::impl {
  // Declared before the io_context: sessions, destroyed with it, unregister from here.
  server_state state;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer accept_retry{acceptor.get_executor()};
  net::steady_timer access_log_timer{net::make_strand(ioc)};
  std::vector<std::thread> threads;
  std::atomic<uint16_t> port{0};
  // On the acceptor's strand only: when the last warnings were logged, and what they skipped.
  steady::time_point last_refusal_warning{}, last_accept_warning{};
  uint64_t refused_since_warning = 0;

  /// A server thread. While a lone request waits for its answer (a trigger's commit: tens of
  /// microseconds), one thread polls for up to opts.busy_poll after the request was handed over,
  /// instead of sleeping in epoll: the answer, posted from another thread, is written without a
  /// wake-up of this one. Other connections are served meanwhile (poll() runs whatever is ready).
  /// With two or more requests waiting the server is busy and threads sleep as usual: spinning
  /// then would take CPU from the threads that compute the answers.
  void serve() {
    auto& st = state;
    const int64_t budget = std::chrono::duration_cast<steady::duration>(st.opts.busy_poll).count();
    auto lone_and_recent = [&] {
      return st.awaiting.load(std::memory_order_relaxed) == 1 &&
             steady::now().time_since_epoch().count() - st.handed_at_ns.load(std::memory_order_relaxed) < budget;
    };
    while (!ioc.stopped()) {
      if (budget > 0 && lone_and_recent() && !st.polling.exchange(true, std::memory_order_acquire)) {
        this_thread_polls = true;
        while (lone_and_recent() && !ioc.stopped()) ioc.poll();
        this_thread_polls = false;
        st.polling.store(false, std::memory_order_release);
      }
      ioc.run_one();
    }
  }

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space || ec == net::error::no_memory ||
          ec.value() == ENFILE) {
        // Out of file descriptors before the cap: as at the cap, the connection idle longest makes
        // room; with none idle, retry later (retrying at once would spin). Pending connections
        // wait in the listen backlog meanwhile.
        bool evicted = false;
        {
          std::lock_guard lock(state.mu);
          evicted = session::evict_one_locked(state);
        }
        if (steady::now() - last_accept_warning > std::chrono::seconds(10)) {
          last_accept_warning = steady::now();
          log::warn("http: out of file descriptors; closing idle connections to accept new ones",
                    {{"error", ec.message()}, {"open_connections", connections()},
                     {"hint", "raise the open-files limit (ulimit -n) or lower http.max_connections"}});
        }
        accept_retry.expires_after(std::chrono::milliseconds(evicted ? 1 : 100));
        accept_retry.async_wait([this](beast::error_code ec) {
          if (!ec && acceptor.is_open()) accept();
        });
        return;
      }
      if (!ec) admit(std::move(s));
      accept();
    });
  }

  void admit(tcp::socket s) {
    beast::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    auto sess = std::make_shared<session>(std::move(s), state);
    bool admitted = false;
    {
      std::lock_guard lock(state.mu);
      if (state.open >= state.opts.max_connections) session::evict_one_locked(state);
      if (state.open < state.opts.max_connections) {
        ++state.open;
        sess->count_locked();
        admitted = true;
      }
    }
    if (admitted) return sess->start();
    sess->reject();
    ++refused_since_warning;
    if (steady::now() - last_refusal_warning > std::chrono::seconds(10)) {
      last_refusal_warning = steady::now();
      log::warn("http: connections refused (503), every connection is busy",
                {{"max_connections", state.opts.max_connections}, {"refused", refused_since_warning}});
      refused_since_warning = 0;
    }
  }

  /// Writes the access lines kept, every 100 ms while the server runs (and once more at stop()).
  void flush_access_log() {
    access_log_timer.expires_after(std::chrono::milliseconds(100));
    access_log_timer.async_wait([this](beast::error_code ec) {
      if (ec) return;
      state.access_lines.flush();
      flush_access_log();
    });
  }

  size_t connections() {
    std::lock_guard lock(state.mu);
    return state.open;
  }
};

http_server::http_server(http_server_options opts, http_handler handler) : impl_(std::make_unique<impl>()) {
  impl_->state.opts = std::move(opts);
  impl_->state.handler = std::move(handler);
}

http_server::~http_server() { stop(); }

void http_server::start() {
  auto& i = *impl_;
  const auto& o = i.state.opts;
  beast::error_code ec;
  auto addr = net::ip::make_address(o.host, ec);
  if (ec) {
    // A name such as "localhost": resolve it.
    tcp::resolver r(i.ioc);
    auto results = r.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) throw std::runtime_error("cannot resolve http.listen host '" + o.host + "': " + ec.message());
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, o.port);
  const std::string where = o.host + ":" + std::to_string(o.port);
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) i.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  i.port = i.acceptor.local_endpoint().port();

  auto [soft, hard] = raise_open_files_limit();
  log::write_fields(log::level::info, "http limits",
                    {{"max_connections", o.max_connections}, {"open_files_limit", soft}, {"open_files_hard_limit", hard},
                     {"header_timeout_ms", o.header_timeout.count()}, {"body_timeout_ms", o.body_timeout.count()},
                     {"idle_timeout_ms", o.idle_timeout.count()}, {"max_body_bytes", o.max_body_bytes},
                     {"access_log", o.access_log ? "true" : "false"}, {"busy_poll_us", o.busy_poll.count()}});
  if (soft != 0 && soft < o.max_connections + 64)
    log::warn("the open-files limit is below http.max_connections: connections beyond it are not accepted until others close",
              {{"open_files_limit", soft}, {"max_connections", o.max_connections},
               {"hint", "raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd) or lower http.max_connections"}});

  i.work.emplace(i.ioc.get_executor());
  i.accept();
  if (o.access_log) i.flush_access_log();
  for (unsigned t = 0; t < std::max(1u, o.threads); ++t) i.threads.emplace_back([&i] { i.serve(); });
}

uint16_t http_server::port() const { return impl_->port; }

size_t http_server::connections() const { return impl_->connections(); }

uint64_t http_server::answers_polled() const { return impl_->state.answers_polled.load(std::memory_order_relaxed); }

void http_server::stop_accepting() {
  auto& i = *impl_;
  net::dispatch(i.acceptor.get_executor(), [&i] {
    beast::error_code ec;
    i.acceptor.close(ec);
    i.accept_retry.cancel();
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
  i.state.access_lines.flush();
}

}  // namespace taskhost
