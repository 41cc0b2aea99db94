// taskhost::client (client/include/taskhost/client.hpp) against the real binary, and its retries
// against a scripted server on a raw socket that answers what a test tells it to.
#include <gtest/gtest.h>

#include <taskhost/client.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "support/raw_http.hpp"
#include "support/taskhost_server.hpp"

using namespace std::chrono_literals;
namespace api = taskhost::api;
using taskhost::test::deployment_dir;
using taskhost::test::server;
using nlohmann::json;

namespace {

/// Small retries, so that tests that exhaust them stay fast.
api::client_options quick(int attempts = 3) {
  api::client_options o;
  o.retry = {.max_attempts = attempts, .min_delay = 20ms, .max_delay = 100ms, .factor = 2};
  return o;
}

taskhost::client client_of(const server& s, api::client_options o = quick()) { return taskhost::client(s.url, s.key, o); }

/// Polls until `pred(run)` holds (at most 20 s); returns the last run seen.
template <class P>
api::run wait_until(taskhost::client& c, const std::string& id, P pred) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    auto r = c.retrieve(id);
    if (pred(r) || std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(5ms);
  }
}

/// An HTTP/1.1 server on a raw socket that answers each request with the next response of its
/// script (then 500 with x-should-retry: false) and records what it received. Script entries
/// other than responses: "close" closes the connection without an answer; "forward" passes the
/// request to a real server (`forward_port`) and its answer back; "forward-then-close" passes it
/// on and drops the answer (a response lost on the way back).
class scripted_server {
public:
  struct request {
    std::string method, target, body;
    std::map<std::string, std::string> headers;  ///< names lower-cased
  };

  static std::string response(int status, const std::string& body, const std::vector<std::string>& headers = {}) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " X\r\ncontent-type: application/json\r\ncontent-length: " +
                    std::to_string(body.size()) + "\r\n";
    for (const auto& h : headers) r += h + "\r\n";
    return r + "\r\n" + body;
  }

  explicit scripted_server(std::vector<std::string> script, uint16_t forward_port = 0)
      : script_(std::move(script)), forward_port_(forward_port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error("scripted_server: cannot listen");
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

private:
  bool readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      int n = ::poll(&p, 1, 20);
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
    return false;
  }
  void serve() {
    while (readable(fd_)) {
      int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      handle(conn);
      ::close(conn);
    }
  }
  /// Requests of one kept-alive connection, until the client closes it or the server stops.
  void handle(int conn) {
    std::string in;
    char buf[65536];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        if (!readable(conn)) return;
        ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, size_t(n));
      }
      request r;
      std::istringstream head(in.substr(0, end));
      std::string line;
      std::getline(head, line);
      std::istringstream first(line);
      first >> r.method >> r.target;
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      size_t length = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
      while (in.size() < end + 4 + length) {
        if (!readable(conn)) return;
        ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, size_t(n));
      }
      r.body = in.substr(end + 4, length);
      const std::string raw = in.substr(0, end + 4 + length);
      in.erase(0, end + 4 + length);
      std::string answer;
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(r);
        answer = next_ < script_.size() ? script_[next_++] : response(500, R"({"error":"script exhausted"})", {"x-should-retry: false"});
      }
      if (answer == "close") return;  // a connection that breaks before an answer
      if (answer == "forward" || answer == "forward-then-close") {
        taskhost::test::raw_conn upstream(forward_port_);
        upstream.send(raw);
        std::string forwarded = upstream.read_response();
        if (answer == "forward-then-close" || forwarded.empty()) return;
        answer = forwarded;
      }
      ::send(conn, answer.data(), answer.size(), MSG_NOSIGNAL);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> script_;
  uint16_t forward_port_ = 0;
  size_t next_ = 0;
  std::vector<request> requests_;
  std::thread thread_;
};

/// A loopback port nothing listens on.
std::string closed_port_url() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

uint16_t port_of(const std::string& url) { return static_cast<uint16_t>(std::stoi(url.substr(url.rfind(':') + 1))); }

const std::regex uuid(R"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})");

}  // namespace

// --- against the real server -----------------------------------------------------------------------

TEST(ClientTest, TriggerAndWaitForCompletionGiveTheOutput) {
  deployment_dir d;
  d.add_key();
  server s(d);
  auto c = client_of(s);
  auto h = c.trigger("hello-world", {{"message", "Hello world!"}}, {.tags = {"b", "a"}, .metadata = {{"from", "c++"}}});
  EXPECT_TRUE(std::regex_match(h.id, std::regex("run_[0-9a-z]+"))) << h.id;
  EXPECT_FALSE(h.is_cached);
  auto run = c.wait_for_completion(h.id, 20s);
  EXPECT_EQ(run.status, api::run_status::completed);
  EXPECT_TRUE(run.is_success());
  EXPECT_EQ(run.output, json({{"echo", "Hello world!"}}));
  EXPECT_EQ(run.payload, json({{"message", "Hello world!"}}));
  EXPECT_EQ(run.task, "hello-world");
  EXPECT_EQ(run.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(run.metadata, json({{"from", "c++"}}));
  EXPECT_EQ(run.attempt_count, 1);
  ASSERT_TRUE(run.finished_at);
  EXPECT_GE(*run.finished_at, run.created_at);
  EXPECT_EQ(run.raw["attempts"].size(), 1u) << "the raw JSON keeps what the struct does not";

  // A run that fails is returned, not thrown.
  auto failed = c.wait_for_completion(c.trigger("fixture-throw", json::object(), {.max_attempts = 1}).id, 20s);
  EXPECT_EQ(failed.status, api::run_status::failed);
  ASSERT_TRUE(failed.error);
  EXPECT_EQ(failed.error->message, "boom: the task failed");

  // Not final within the timeout: wait_timeout_error with the run as last seen.
  auto delayed = c.trigger("hello-world", {{"message", "later"}}, {.delay = std::chrono::hours(1)});
  auto t0 = std::chrono::steady_clock::now();
  try {
    c.wait_for_completion(delayed.id, 200ms, 50ms);
    ADD_FAILURE() << "no timeout";
  } catch (const api::wait_timeout_error& e) {
    EXPECT_EQ(e.last_run().status, api::run_status::delayed);
    EXPECT_NE(std::string(e.what()).find(delayed.id), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(ClientTest, ErrorsAreTypedAndNotRetriedWhenTheServerSaysSo) {
  deployment_dir d;
  const std::string key = d.add_key();
  server s(d);
  // A retry would cost two seconds: the answers below come at once, so none was made.
  api::client_options slow = quick(5);
  slow.retry.min_delay = slow.retry.max_delay = 2s;
  auto c = client_of(s, slow);
  auto t0 = std::chrono::steady_clock::now();
  try {
    c.retrieve("run_nope");
    ADD_FAILURE() << "no error";
  } catch (const api::not_found_error& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_NE(e.error_message().find("Run not found"), std::string::npos) << e.error_message();
    EXPECT_EQ(std::string(e.what()).rfind("404 ", 0), 0u) << e.what();
  }
  EXPECT_THROW(c.trigger("no-such-task", json::object()), api::not_found_error);
  EXPECT_THROW(c.trigger("hello-world", json::object(), {.max_duration = 2s}), api::bad_request_error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms) << "404 and 400 come with x-should-retry: false: not retried";

  taskhost::client wrong(s.url, taskhost::generate_api_key(false), slow);
  try {
    wrong.list();
    ADD_FAILURE() << "no error";
  } catch (const api::authentication_error& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(e.error_message(), "Invalid API key");
  }
  taskhost::client none(s.url, "", slow);
  EXPECT_FALSE(none.has_key());
  EXPECT_THROW(none.retrieve("run_x"), api::authentication_error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms) << "401 is not retried";
}

TEST(ClientTest, ConnectionRefusedIsAConnectionErrorAfterBoundedRetries) {
  taskhost::client c(closed_port_url(), "", quick(3));
  auto t0 = std::chrono::steady_clock::now();
  try {
    c.trigger("hello-world", json::object());
    ADD_FAILURE() << "no error";
  } catch (const api::connection_error& e) {
    EXPECT_EQ(e.attempts(), 3);
    EXPECT_NE(std::string(e.what()).find("cannot connect to " + c.url()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(3 attempts)"), std::string::npos) << e.what();
  }
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 60ms) << "backoff 20 ms, then 40 ms";
  EXPECT_LT(took, 2s);
}

TEST(ClientTest, ListFiltersAndWalksCursorPages) {
  deployment_dir d;
  server s(d);
  auto c = client_of(s);
  std::vector<std::string> echoes;
  for (int i = 0; i < 5; ++i) {
    echoes.push_back(c.trigger("fixture-echo", i, {.tags = {i % 2 ? "odd" : "even"}}).id);
    std::this_thread::sleep_for(2ms);  // distinct createdAt: newest first is trigger order
  }
  auto thrown = c.trigger("fixture-throw", json::object(), {.max_attempts = 1}).id;
  for (const auto& id : echoes) ASSERT_EQ(c.wait_for_completion(id, 20s).status, api::run_status::completed);
  ASSERT_EQ(c.wait_for_completion(thrown, 20s).status, api::run_status::failed);

  api::run_filter f{.status = {api::run_status::completed}, .tasks = {"fixture-echo"}, .page_size = 2};
  // The list reads committed runs: a run retrieve already shows COMPLETED may reach it a commit later.
  for (int i = 0; i < 500 && c.list({.status = f.status, .tasks = f.tasks, .page_size = 10}).data.size() < echoes.size(); ++i)
    std::this_thread::sleep_for(10ms);
  std::vector<std::string> seen;
  std::vector<size_t> sizes;
  for (;;) {
    auto page = c.list(f);
    sizes.push_back(page.data.size());
    for (const auto& r : page.data) {
      EXPECT_EQ(r.task, "fixture-echo");
      EXPECT_EQ(r.status, api::run_status::completed);
      seen.push_back(r.id);
    }
    if (page.next.empty()) break;
    f.after = page.next;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 1}));
  EXPECT_EQ(seen, (std::vector<std::string>{echoes[4], echoes[3], echoes[2], echoes[1], echoes[0]})) << "newest first";

  std::vector<std::string> all;
  c.for_each_run({.page_size = 2}, [&](const api::run& r) {
    all.push_back(r.id);
    return true;
  });
  EXPECT_EQ(all.size(), 6u);
  EXPECT_EQ(all.front(), thrown);
  std::vector<std::string> odd;
  c.for_each_run({.tags = {"odd"}, .page_size = 1}, [&](const api::run& r) {
    odd.push_back(r.id);
    return true;
  });
  EXPECT_EQ(odd, (std::vector<std::string>{echoes[3], echoes[1]}));
  int stopped = 0;
  c.for_each_run({.page_size = 1}, [&](const api::run&) { return ++stopped < 2; });
  EXPECT_EQ(stopped, 2) << "false stops the walk";
  EXPECT_EQ(c.list({.status = {api::run_status::failed}}).data.size(), 1u);
}

TEST(ClientTest, CancelReplayAndReschedule) {
  deployment_dir d;
  server s(d);
  auto c = client_of(s);
  auto waiting = c.trigger("fixture-wait-cancel", {{"max_s", 30}}).id;
  wait_until(c, waiting, [](const api::run& r) { return r.status == api::run_status::executing; });
  c.cancel(waiting);
  auto canceled = c.retrieve(waiting);
  EXPECT_EQ(canceled.status, api::run_status::canceled);
  EXPECT_TRUE(canceled.is_final());
  EXPECT_NO_THROW(c.cancel(waiting)) << "cancelling a finished run is a no-op";
  EXPECT_THROW(c.cancel("run_nope"), api::not_found_error);

  auto first = c.wait_for_completion(c.trigger("fixture-echo", {{"n", 7}}, {.tags = {"x"}}).id, 20s);
  auto replayed = c.replay(first.id);
  EXPECT_NE(replayed.id, first.id);
  auto second = c.wait_for_completion(replayed.id, 20s);
  EXPECT_EQ(second.task, "fixture-echo");
  EXPECT_EQ(second.payload, json({{"n", 7}}));
  EXPECT_EQ(second.tags, (std::vector<std::string>{"x"}));
  auto overridden = c.wait_for_completion(c.replay(first.id, {{"payload", {{"n", 8}}}}).id, 20s);
  EXPECT_EQ(overridden.payload, json({{"n", 8}}));

  auto delayed = c.trigger("fixture-echo", json::object(), {.delay = "1h"}).id;
  auto before = *c.retrieve(delayed).delayed_until;
  auto moved = c.reschedule(delayed, std::chrono::hours(2));
  EXPECT_EQ(moved.status, api::run_status::delayed);
  ASSERT_TRUE(moved.delayed_until);
  EXPECT_GE(*moved.delayed_until - before, 59min);
  EXPECT_THROW(c.reschedule(first.id, "1h"), api::bad_request_error) << "only a DELAYED run";
}

TEST(ClientTest, AnIdempotencyKeyGivesTheSameRunCached) {
  deployment_dir d;
  server s(d);
  auto c = client_of(s);
  auto a = c.trigger("fixture-echo", {{"n", 1}}, {.delay = "1h", .idempotency_key = "order-42", .idempotency_key_ttl = "10m"});
  auto b = c.trigger("fixture-echo", {{"n", 2}}, {.idempotency_key = "order-42"});
  EXPECT_FALSE(a.is_cached);
  EXPECT_TRUE(b.is_cached);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(c.retrieve(a.id).idempotency_key, "order-42");
  EXPECT_NE(c.trigger("fixture-echo", {{"n", 3}}, {.idempotency_key = "order-43"}).id, a.id);
}

TEST(ClientTest, TokensCreateCompleteAndAWaitingRunResumes) {
  deployment_dir d("", {"fixture_waits"});
  server s(d);
  auto c = client_of(s);
  auto t = c.create_token({.timeout = std::chrono::hours(1), .idempotency_key = "approval-1", .tags = {"approval"}});
  EXPECT_EQ(t.id.rfind("waitpoint_", 0), 0u) << t.id;
  EXPECT_EQ(t.status, api::token_status::waiting);
  EXPECT_FALSE(t.is_cached);
  ASSERT_TRUE(t.timeout_at);
  EXPECT_GT(*t.timeout_at, std::chrono::system_clock::now() + 59min);
  auto again = c.create_token({.idempotency_key = "approval-1"});
  EXPECT_TRUE(again.is_cached);
  EXPECT_EQ(again.id, t.id);

  auto run = c.trigger("w-token-id", {{"token", t.id}}).id;
  wait_until(c, run, [](const api::run& r) { return r.status == api::run_status::waiting; });
  EXPECT_EQ(c.retrieve(run).status, api::run_status::waiting);
  EXPECT_EQ(c.list_tokens({.status = {api::token_status::waiting}}).data.size(), 1u);
  c.complete_token(t.id, {{"approved", true}});
  auto done = c.wait_for_completion(run, 20s);
  EXPECT_EQ(done.status, api::run_status::completed);
  EXPECT_EQ(done.output, json({{"ok", true}, {"output", {{"approved", true}}}}));
  auto completed = c.retrieve_token(t.id);
  EXPECT_EQ(completed.status, api::token_status::completed);
  EXPECT_EQ(completed.output, json({{"approved", true}}));
  EXPECT_TRUE(completed.completed_at);
  EXPECT_EQ(completed.tags, (std::vector<std::string>{"approval"}));
  EXPECT_THROW(c.complete_token("waitpoint_nope", 1), api::not_found_error);
  EXPECT_TRUE(c.list_tokens({.status = {api::token_status::waiting}}).data.empty());
}

TEST(ClientTest, SchedulesAndQueues) {
  deployment_dir d("queues:\n  - {name: email, concurrency_limit: 3}\n", {"fixture_schedules"});
  server s(d);
  auto c = client_of(s);
  auto sched = c.create_schedule({.task = "sched-echo", .cron = "0 9 * * 1-5", .timezone = "Europe/London", .external_id = "cust-1",
                                  .deduplication_key = "k1"});
  EXPECT_EQ(sched.type, "IMPERATIVE");
  EXPECT_EQ(sched.cron, "0 9 * * 1-5");
  EXPECT_TRUE(sched.active);
  EXPECT_TRUE(sched.next_run);
  EXPECT_EQ(c.create_schedule({.task = "sched-echo", .cron = "0 10 * * *", .deduplication_key = "k1"}).id, sched.id)
      << "upserted by its deduplication key";
  EXPECT_FALSE(c.deactivate_schedule(sched.id).active);
  EXPECT_TRUE(c.activate_schedule(sched.id).active);
  EXPECT_EQ(c.update_schedule(sched.id, {.task = "sched-echo", .cron = "0 11 * * *"}).cron, "0 11 * * *");
  bool listed = false;
  for (const auto& x : c.list_all_schedules()) listed = listed || x.id == sched.id;
  EXPECT_TRUE(listed);
  EXPECT_THROW(c.create_schedule({.task = "sched-echo", .cron = "61 * * * *"}), api::bad_request_error);
  c.delete_schedule(sched.id);
  EXPECT_THROW(c.retrieve_schedule(sched.id), api::not_found_error);
  auto zones = c.timezones(true);
  EXPECT_NE(std::find(zones.begin(), zones.end(), "Europe/London"), zones.end());
  EXPECT_EQ(std::find(zones.begin(), zones.end(), "UTC"), zones.end());

  auto email = c.retrieve_queue("email");
  EXPECT_EQ(email.concurrency_limit, 3);
  EXPECT_TRUE(c.pause_queue("email").paused);
  EXPECT_FALSE(c.resume_queue("email").paused);
  EXPECT_EQ(c.override_queue_concurrency("email", 7).concurrency_limit, 7);
  EXPECT_EQ(c.reset_queue_concurrency("email").concurrency_limit, 3);
  EXPECT_EQ(c.retrieve_queue("task/hello-world").type, "task") << "a task's queue keeps its slash";
  EXPECT_GE(c.list_all_queues().size(), 2u);
  EXPECT_EQ(c.list_queues(1, 1).data.size(), 1u);
  EXPECT_THROW(c.pause_queue("nope"), api::not_found_error);
}

TEST(ClientTest, BatchTriggerUsesTheTwoPhaseApi) {
  deployment_dir d;
  d.add_key();
  server s(d);
  auto c = client_of(s);
  auto b = c.batch_trigger("fixture-echo", {json{{"n", 0}}, json{{"n", 1}}, json{{"n", 2}}}, {.tags = {"batch"}});
  EXPECT_EQ(b.id.rfind("batch_", 0), 0u) << b.id;
  EXPECT_EQ(b.run_count, 3u);
  EXPECT_FALSE(b.is_cached);
  ASSERT_EQ(b.run_ids.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto r = c.wait_for_completion(b.run_ids[i], 20s);
    EXPECT_EQ(r.status, api::run_status::completed);
    EXPECT_EQ(r.payload, json({{"n", i}})) << "run ids in item order";
    EXPECT_EQ(r.batch_id, b.id);
    EXPECT_EQ(r.tags, (std::vector<std::string>{"batch"}));
  }
  // Several tasks in one batch.
  auto mixed = c.batch_trigger({{"hello-world", {{"message", "one"}}}, {"fixture-echo", 2}});
  ASSERT_EQ(mixed.run_ids.size(), 2u);
  EXPECT_EQ(c.wait_for_completion(mixed.run_ids[0], 20s).output, json({{"echo", "one"}}));
  EXPECT_EQ(c.wait_for_completion(mixed.run_ids[1], 20s).task, "fixture-echo");
  // The same batch idempotency key: the same batch, cached, nothing sent again.
  auto k1 = c.batch_trigger("fixture-echo", {json(1)}, {}, {.idempotency_key = "nightly"});
  auto k2 = c.batch_trigger("fixture-echo", {json(1)}, {}, {.idempotency_key = "nightly"});
  EXPECT_EQ(k1.id, k2.id);
  EXPECT_TRUE(k2.is_cached);
  EXPECT_EQ(k2.run_ids, k1.run_ids);
  try {
    c.batch_trigger("no-such-task", {json(1)});
    ADD_FAILURE() << "no error";
  } catch (const api::batch_trigger_error& e) {
    EXPECT_EQ(e.phase(), "create");
    EXPECT_THROW(std::rethrow_exception(e.cause()), api::not_found_error);
  }
}

// --- retries, against a scripted server ---------------------------------------------------------

TEST(ClientRetryTest, A500ThenA200IsRetriedWithTheSameRequestIdempotencyKey) {
  using ss = scripted_server;
  ss srv({ss::response(500, R"({"error":"try again"})"), ss::response(200, R"({"id":"run_1","isCached":false})")});
  taskhost::client c(srv.url(), "tr_dev_k", quick(3));
  auto h = c.trigger("hello-world", {{"message", "hi"}});
  EXPECT_EQ(h.id, "run_1");
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& r : reqs) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/api/v1/tasks/hello-world/trigger");
    EXPECT_EQ(r.headers.at("authorization"), "Bearer tr_dev_k");
    EXPECT_EQ("http://" + r.headers.at("host"), srv.url()) << "host:port";
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    EXPECT_EQ(json::parse(r.body), json({{"payload", {{"message", "hi"}}}, {"options", json::object()}}));
  }
  const std::string key = reqs[0].headers["x-trigger-request-idempotency-key"];
  EXPECT_TRUE(std::regex_match(key, uuid)) << key;
  EXPECT_EQ(reqs[1].headers["x-trigger-request-idempotency-key"], key) << "the same key on the retry";
}

TEST(ClientRetryTest, EachCallHasItsOwnKeyAndGetsHaveNone) {
  using ss = scripted_server;
  const std::string run = R"({"id":"run_1","taskIdentifier":"t","status":"QUEUED"})";
  ss srv({ss::response(200, R"({"id":"run_1"})"), ss::response(200, R"({"id":"run_2"})"), ss::response(200, run)});
  taskhost::client c(srv.url(), "", quick(3));
  c.trigger("t", 1);
  c.trigger("t", 2);
  c.retrieve("run_1");
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_NE(reqs[0].headers["x-trigger-request-idempotency-key"], reqs[1].headers["x-trigger-request-idempotency-key"]);
  EXPECT_EQ(reqs[2].method, "GET");
  EXPECT_EQ(reqs[2].target, "/api/v3/runs/run_1");
  EXPECT_EQ(reqs[2].headers.count("x-trigger-request-idempotency-key"), 0u);
  EXPECT_EQ(reqs[2].headers.count("authorization"), 0u) << "no key, no header";
}

TEST(ClientRetryTest, TheServersShouldRetryHeaderDecides) {
  using ss = scripted_server;
  {  // 500 with x-should-retry: false: at once.
    ss srv({ss::response(503, R"({"error":"disk full"})", {"x-should-retry: false"})});
    taskhost::client c(srv.url(), "", quick(5));
    try {
      c.trigger("t", 1);
      ADD_FAILURE() << "no error";
    } catch (const api::internal_server_error& e) {
      EXPECT_EQ(e.status(), 503);
      EXPECT_EQ(e.error_message(), "disk full");
    }
    EXPECT_EQ(srv.requests().size(), 1u);
  }
  {  // 404 with x-should-retry: true (a store that lags): retried.
    ss srv({ss::response(404, R"({"error":"Run not found"})", {"x-should-retry: true"}),
            ss::response(200, R"({"id":"run_1","status":"QUEUED"})")});
    taskhost::client c(srv.url(), "", quick(5));
    EXPECT_EQ(c.retrieve("run_1").status, api::run_status::queued);
    EXPECT_EQ(srv.requests().size(), 2u);
  }
  {  // 404 without the header: not retried.
    ss srv({ss::response(404, R"({"error":"Run not found"})")});
    taskhost::client c(srv.url(), "", quick(5));
    EXPECT_THROW(c.retrieve("run_1"), api::not_found_error);
    EXPECT_EQ(srv.requests().size(), 1u);
  }
  {  // 409, 408 and 429 are retried; a persistent 500 throws after max_attempts.
    ss srv({ss::response(409, R"({"error":"lock timeout"})"), ss::response(408, "{}"), ss::response(429, R"({"error":"slow down"})"),
            ss::response(500, R"({"error":"a"})"), ss::response(500, R"({"error":"b"})")});
    taskhost::client c(srv.url(), "", quick(5));
    try {
      c.cancel("run_1");
      ADD_FAILURE() << "no error";
    } catch (const api::internal_server_error& e) {
      EXPECT_EQ(e.error_message(), "b") << "the last answer";
    }
    auto reqs = srv.requests();
    ASSERT_EQ(reqs.size(), 5u);
    std::set<std::string> keys;
    for (const auto& r : reqs) keys.insert(r.headers.at("x-trigger-request-idempotency-key"));
    EXPECT_EQ(keys.size(), 1u) << "one logical call, one key";
  }
}

TEST(ClientRetryTest, A429WaitsForTheRateLimitReset) {
  using ss = scripted_server;
  auto reset = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch() + 300ms);
  ss srv({ss::response(429, R"({"error":"rate limited"})", {"x-ratelimit-reset: " + std::to_string(reset.count())}),
          ss::response(200, R"({"id":"run_1"})")});
  api::client_options o = quick(3);
  o.retry.max_delay = 5s;
  taskhost::client c(srv.url(), "", o);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.trigger("t", 1).id, "run_1");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms) << "waited for the reset, not the 20 ms backoff";
}

TEST(ClientRetryTest, AConnectionThatBreaksIsRetried) {
  using ss = scripted_server;
  ss srv({"close", ss::response(200, R"({"id":"run_1"})")});
  taskhost::client c(srv.url(), "", quick(3));
  EXPECT_EQ(c.trigger("t", 1).id, "run_1");
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].headers["x-trigger-request-idempotency-key"], reqs[1].headers["x-trigger-request-idempotency-key"]);
}

TEST(ClientRetryTest, A2xxThatIsNotJsonIsAnInvalidResponseAndNotRetried) {
  using ss = scripted_server;
  ss srv({"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", ss::response(200, R"({"name":"no id"})")});
  taskhost::client c(srv.url(), "", quick(3));
  EXPECT_THROW(c.retrieve("run_1"), api::invalid_response_error);
  EXPECT_THROW(c.retrieve("run_1"), api::invalid_response_error) << "an answer without an id";
  EXPECT_EQ(srv.requests().size(), 2u);
}

TEST(ClientRetryTest, BatchItemsAreResentUntilTheBatchIsSealed) {
  using ss = scripted_server;
  ss srv({ss::response(202, R"({"id":"batch_1","runCount":2,"isCached":false})"),
          ss::response(200, R"({"id":"batch_1","itemsAccepted":1,"itemsDeduplicated":0,"sealed":false,"enqueuedCount":1,"expectedCount":2})"),
          ss::response(200, R"({"id":"batch_1","itemsAccepted":1,"itemsDeduplicated":1,"sealed":true})"),
          ss::response(200, R"({"id":"batch_1","status":"COMPLETED","runCount":2,"runs":["run_a","run_b"]})")});
  taskhost::client c(srv.url(), "", quick(3));
  auto b = c.batch_trigger({{"t", {{"n", 1}}, {.tags = {"x"}}}, {"u", "two"}});
  EXPECT_EQ(b.id, "batch_1");
  EXPECT_EQ(b.run_ids, (std::vector<std::string>{"run_a", "run_b"}));
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].target, "/api/v3/batches");
  EXPECT_EQ(json::parse(reqs[0].body), json({{"runCount", 2}, {"taskIdentifiers", {"t", "u"}}}));
  EXPECT_TRUE(std::regex_match(reqs[0].headers["x-trigger-request-idempotency-key"], uuid));
  for (int i : {1, 2}) {
    EXPECT_EQ(reqs[i].target, "/api/v3/batches/batch_1/items");
    EXPECT_EQ(reqs[i].headers["content-type"], "application/x-ndjson");
    EXPECT_EQ(reqs[i].headers.count("x-trigger-request-idempotency-key"), 0u) << "none on batch items";
    EXPECT_EQ(reqs[i].body, "{\"index\":0,\"options\":{\"tags\":[\"x\"]},\"payload\":{\"n\":1},\"task\":\"t\"}\n"
                            "{\"index\":1,\"options\":{},\"payload\":\"two\",\"task\":\"u\"}\n");
  }
  EXPECT_EQ(reqs[3].method, "GET");
  EXPECT_EQ(reqs[3].target, "/api/v1/batches/batch_1");
}

// The server (issue9-batches) keeps the answer of each x-trigger-request-idempotency-key: a call
// whose answer was lost on the way back is retried with the same key and gets the first answer,
// so nothing is triggered twice.
TEST(ClientRetryTest, ARetriedTriggerWhoseAnswerWasLostMakesOneRun) {
  deployment_dir d;
  d.add_key();
  server s(d);
  using ss = scripted_server;
  ss proxy({"forward-then-close", "forward"}, port_of(s.url));
  taskhost::client through(proxy.url(), s.key, quick(3));
  auto h = through.trigger("fixture-echo", {{"n", 1}});
  auto reqs = proxy.requests();
  ASSERT_EQ(reqs.size(), 2u) << "the first answer was dropped, the call retried";
  EXPECT_EQ(reqs[0].headers["x-trigger-request-idempotency-key"], reqs[1].headers["x-trigger-request-idempotency-key"]);
  auto direct = client_of(s);
  auto runs = direct.list({.tasks = {"fixture-echo"}});
  ASSERT_EQ(runs.data.size(), 1u) << "one run for the two requests";
  EXPECT_EQ(runs.data[0].id, h.id);
  EXPECT_FALSE(h.is_cached) << "the first answer, as it was";
}

TEST(ClientRetryTest, ARetriedBatchCreationWhoseAnswerWasLostMakesOneBatch) {
  deployment_dir d;
  d.add_key();
  server s(d);
  using ss = scripted_server;
  ss proxy({"forward-then-close", "forward", "forward", "forward", "forward", "forward"}, port_of(s.url));
  taskhost::client through(proxy.url(), s.key, quick(3));
  auto b = through.batch_trigger("fixture-echo", {json(1), json(2)});
  ASSERT_EQ(b.run_ids.size(), 2u);
  auto reqs = proxy.requests();
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].target, "/api/v3/batches");
  EXPECT_EQ(reqs[1].target, "/api/v3/batches");
  EXPECT_EQ(reqs[0].headers["x-trigger-request-idempotency-key"], reqs[1].headers["x-trigger-request-idempotency-key"]);
  EXPECT_EQ(reqs[2].target, "/api/v3/batches/" + b.id + "/items");
  auto direct = client_of(s);
  EXPECT_EQ(direct.list({.tasks = {"fixture-echo"}}).data.size(), 2u) << "one batch of two runs";
  EXPECT_EQ(direct.list({.batch = b.id}).data.size(), 2u);
}
