// `make bench`: taskhost's own benchmarks, each repeated, reported as median and spread, with
// physical baselines measured in the same run. Prints a table and appends JSON lines to
// bench/results/<date>.jsonl. Environment: TASKHOST_BENCH_ONLY=waits runs only the waits scenarios;
// TASKHOST_BENCH_ONLY=http compares the HTTP scenarios with the access log on and off;
// TASKHOST_BENCH_ONLY=latency only the latency scenarios (the p50 of each repetition, and how
// their runs were started: start_stats()), then again with power.cpu_latency_us: 0;
// TASKHOST_BENCH_ONLY=cpu-latency only the second part;
// TASKHOST_BENCH_ONLY=queues only the queues (`--queue-backlog N REPS` one backlog, in this process);
// TASKHOST_BENCH_ONLY=schedules only cron;
// TASKHOST_BENCH_ONLY=embedded only the embedded throughput (disk and :memory:) and fail-twice;
// TASKHOST_BENCH_ONLY=http-throughput only single HTTP triggers (50 in flight) and HTTP batches;
// TASKHOST_BENCH_ONLY=payload only the payload sizes (100 B, 10 KB, 1 MB; TASKHOST_BENCH_PAYLOAD=10KB one);
// TASKHOST_BENCH_ONLY=batch-wait only the batch waits of 1,000 children;
// TASKHOST_BENCH_PARENT_CHILD_ONLY=1 (with =waits) skips waiting-10k;
// TASKHOST_BENCH_DEBUG=1 breaks the parent/child round trip down and prints the runs left in
// memory; TASKHOST_BENCH_RESIDENT=N and TASKHOST_BENCH_DELAYED=1 vary the waiting scenario. Scenarios:
//   baseline-sqlite-insert    rows/s inserting in transactions of 1,000 (WAL, NORMAL)
//   baseline-caf-request      µs per request/response, non-actor thread → actor, and actor → actor
//   baseline-store-memory     the throughput scenario on a :memory: store
//   embedded-throughput       N no-op runs triggered and completed through the embedding API
//   embedded-cpu-per-run      CPU time per run of the throughput scenario, all threads together
//   embedded-busiest-thread-per-run   the same on the busiest thread (the store's writer): its
//                             inverse is the most runs/s that thread allows
//   embedded-fail-twice       1,000 runs that fail twice, then succeed, zero backoff
//   http-single-50-inflight   single HTTP triggers from a separate client process, 50 connections
//   http-batches-1000         N runs in batches of 1,000 (POST /api/v3/batches + NDJSON items) from a
//                             separate client process on taskhost::client, 2 connections:
//                             triggered and completed runs/s, and acknowledged runs/s
//   baseline-http-noop        GET /healthz on the same server stack (the floor for the HTTP ones)
//   http-trigger-ack          sequential HTTP triggers into an idle runtime: ack latency, and from
//                             the runs' own timestamps start − receipt and complete − receipt
//   scaling-tasks-N           runs/s spread over N tasks (1, 10, 100, 1,000)
//   scaling-payload-B         runs/s with payloads of 100 B, 10 KB, 1 MB
//   scaling-executor-T        runs/s with T executor threads
//   parent-child-rt           2,000 sequential parents, each timing its trigger_and_wait of a no-op
//                             child (µs, from the parent's own clock; p50/p90/p99/max)
//   *-cpu-latency-0           the latency scenarios (the p50 and p99 of each repetition) and
//                             parent-child-rt in deployments holding power.cpu_latency_us: 0 (idle
//                             CPUs poll instead of halting); skipped unless /dev/cpu_dma_latency
//                             is writable (root)
//   waiting-10k               10,000 runs in wait_for(1h): RSS and threads added
//   batch-wait-1000-B         a parent's batch_trigger_and_wait of 1,000 children whose outputs are
//                             100 B and 10 KB: ms from the parent's clock, and KB written per child
//   queue-start-N             ns of queue bookkeeping per run start with N = 100 and 1,000,000
//                             runs queued (the ratio is the O(log n) check)
//   queue-backlog-N           end to end: runs/s from a queue (limit 16) kept at N = 100 and
//                             1,000,000 queued runs, durable store (TASKHOST_BENCH_BACKLOG_MEMORY=1:
//                             :memory:, reported as queue-backlog-N-memory)
//   cron-next-*               ns per next occurrence (cron engine), typical expressions
//   schedules-10k             10,000 schedules due in the same second: lag of each run's trigger
//                             after its occurrence (max must stay under 1 s), runs per occurrence
//   access-log-line, http-*-access-log-on|off   (TASKHOST_BENCH_ONLY=http) ns per access log line;
//                             single-50 throughput, trigger ack p50 and no-op p50 with
//                             http.access_log on and off, in turns
//   rss                       resident memory idle, at the peak of the throughput runs, after
#include <atomic>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/deployment_runtime.hpp"
#include "runtime/http_client.hpp"
#include "taskhost/client.hpp"
#include "runtime/log.hpp"
#include "runtime/cpu_latency.hpp"
#include "runtime/cron.hpp"
#include "runtime/ids.hpp"
#include "runtime/queues.hpp"
#include "runtime/trigger_request.hpp"
#include "bench/baselines.hpp"

namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;
using nlohmann::json;

namespace {

struct stats {
  double min, median, max;
};

stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * double(v.size())))];
}

long proc_status(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0) return std::stol(line.substr(n));
  return -1;
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

/// The peak resident memory while `fn` runs: the kernel's high-water mark (VmHWM), reset first
/// through /proc/self/clear_refs; -1 where that is not supported.
template <class F>
long peak_rss_kb_during(F&& fn) {
  {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";
  }
  const long before = proc_status("VmHWM:");
  fn();
  const long peak = proc_status("VmHWM:");
  return before < 0 || peak < 0 ? -1 : peak;
}

/// CPU time each thread of this process has had so far (/proc/self/task/*/schedstat, ns on a CPU).
std::map<int, double> thread_cpu_ns() {
  std::map<int, double> out;
  for (const auto& t : fs::directory_iterator("/proc/self/task")) {
    std::ifstream in(t.path() / "schedstat");
    double ns = 0;
    if (in >> ns) out[std::stoi(t.path().filename().string())] = ns;
  }
  return out;
}

/// What `fn` cost in CPU time: all threads together and the busiest one (ns).
struct cpu_cost {
  double total_ns = 0, busiest_ns = 0;
};
template <class F>
cpu_cost cpu_cost_of(F&& fn) {
  const auto before = thread_cpu_ns();
  fn();
  cpu_cost c;
  for (const auto& [tid, ns] : thread_cpu_ns()) {
    auto it = before.find(tid);
    const double d = ns - (it == before.end() ? 0 : it->second);
    c.total_ns += d;
    c.busiest_ns = std::max(c.busiest_ns, d);
  }
  return c;
}

std::ofstream results;
void report(const std::string& name, const std::string& unit, const stats& s, json extra = json::object()) {
  std::printf("%-46s %12.1f %12.1f %12.1f  %s\n", name.c_str(), s.median, s.min, s.max, unit.c_str());
  extra["scenario"] = name;
  extra["unit"] = unit;
  extra["median"] = s.median;
  extra["min"] = s.min;
  extra["max"] = s.max;
  results << extra.dump() << "\n";
}

/// Triggers `n` runs of `task` and waits until every one is final and committed (the store holds
/// no run in memory any more), without reading runs back.
void run_many(taskhost::deployment_runtime& rt, const std::string& task, int n, const json& payload = nullptr,
              int spread_over_tasks = 0) {
  std::atomic<int> acked{0};
  for (int i = 0; i < n; ++i) {
    taskhost::trigger_input in;
    in.task_id = spread_over_tasks ? "bench-task-" + std::to_string(i % spread_over_tasks) : task;
    in.payload = payload;
    rt.trigger(std::move(in), [&](taskhost::trigger_outcome o) {
      if (o.status != 200) throw std::runtime_error("trigger refused: " + o.error);
      ++acked;
    });
  }
  while (acked.load() < n || rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

/// run_many, timed: the seconds it took.
double seconds_of_run_many(taskhost::deployment_runtime& rt, const std::string& task, int n, const json& payload = nullptr,
                           int spread_over_tasks = 0) {
  const auto t0 = clk::now();
  run_many(rt, task, n, payload, spread_over_tasks);
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// embedded-cpu-per-run and embedded-busiest-thread-per-run (µs per run, one value per repetition).
void report_cpu_per_run(const std::vector<double>& cpu_us, const std::vector<double>& busiest_us, int runs) {
  report("embedded-cpu-per-run", "us", summarize(cpu_us), {{"runs", runs}, {"threads", "all"}});
  report("embedded-busiest-thread-per-run", "us", summarize(busiest_us), {{"runs", runs}});
  const unsigned cores = std::thread::hardware_concurrency();
  std::printf("  the busiest thread (the store's writer) allows at most %.0f runs/s; all threads, %.0f on %u cores\n",
              1e6 / summarize(busiest_us).median, 1e6 * cores / summarize(cpu_us).median, cores);
}

/// One repetition of embedded-throughput: runs/s into `tput`, and the CPU a run cost, in all and
/// on the busiest thread (the store's writer: the bound), into `cpu_us` and `busiest_us`.
void embedded_repetition(taskhost::deployment_runtime& rt, int runs, std::vector<double>& tput, std::vector<double>& cpu_us,
                         std::vector<double>& busiest_us) {
  const cpu_cost c = cpu_cost_of([&] { tput.push_back(runs / seconds_of_run_many(rt, "bench-noop", runs)); });
  cpu_us.push_back(c.total_ns / 1000 / runs);
  busiest_us.push_back(c.busiest_ns / 1000 / runs);
}

/// The client process of http-single-50-inflight: `conns` keep-alive connections, each sending
/// its share of `n` single triggers one after the other. Prints acknowledged/s.
int http_client_main(const std::string& url, int n, int conns) {
  std::atomic<int> left{n}, failed{0};
  std::vector<std::thread> ts;
  auto t0 = clk::now();
  for (int c = 0; c < conns; ++c)
    ts.emplace_back([&] {
      taskhost::http_client client(url);
      while (left.fetch_sub(1) > 0)
        if (client.request("POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})").status != 200) ++failed;
    });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(clk::now() - t0).count();
  std::printf("%f %d\n", n / s, failed.load());
  return failed ? 1 : 0;
}

/// The client process of http-batches-1000: `conns` threads, each with its own taskhost::client,
/// sending batches of 1,000 no-op runs through the two-phase batch API until `n` runs are sent.
/// Prints acknowledged runs/s.
int http_batch_client_main(const std::string& url, int n, int conns) {
  std::atomic<int> left{n}, failed{0};
  std::vector<std::thread> ts;
  const std::vector<json> payloads(1000, json(nullptr));
  auto t0 = clk::now();
  for (int c = 0; c < conns; ++c)
    ts.emplace_back([&] {
      taskhost::client client(url, "");
      for (int take; (take = std::min(1000, left.fetch_sub(1000))) > 0;) {
        try {
          auto h = client.batch_trigger("bench-noop", std::vector<json>(payloads.begin(), payloads.begin() + take));
          if (h.run_count != static_cast<size_t>(take)) ++failed;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "batch failed: %s\n", e.what());
          ++failed;
        }
      }
    });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(clk::now() - t0).count();
  std::printf("%f %d\n", n / s, failed.load());
  return failed ? 1 : 0;
}

/// http-batches-1000 once: `n` runs triggered in batches of 1,000 from a client process over
/// `conns` connections. Returns acknowledged runs/s; waits until the runs are done.
double http_batches(taskhost::deployment_runtime& rt, int n, int conns) {
  const std::string url = "http://127.0.0.1:" + std::to_string(rt.http_port());
  std::string cmd = std::string("'") + fs::canonical("/proc/self/exe").string() + "' --http-batch-client " + url + " " +
                    std::to_string(n) + " " + std::to_string(conns);
  FILE* p = popen(cmd.c_str(), "r");
  double rate = 0;
  int failed = 0;
  if (!p || std::fscanf(p, "%lf %d", &rate, &failed) != 2 || pclose(p) != 0 || failed)
    throw std::runtime_error("the http batch client process failed");
  while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return rate;
}

/// `n` sequential requests into an idle runtime (each waits for the previous run to be committed
/// and final): µs per request.
std::vector<double> http_latency(taskhost::deployment_runtime& rt, taskhost::http_client& c, const std::string& method,
                                 const std::string& path, const std::string& body, int n = 2000) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    auto t0 = clk::now();
    auto res = c.request(method, path, body);
    us.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
    if (res.status != 200) throw std::runtime_error(path + " answered " + std::to_string(res.status));
    // Into an idle runtime: the previous run has finished and been committed.
    while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return us;
}

/// Start − receipt and complete − receipt from the runs' own timestamps (receipt = createdAt, set
/// when the request has been parsed), for `n` sequential triggers into an idle runtime.
std::pair<std::vector<double>, std::vector<double>> start_and_complete_after_receipt(taskhost::deployment_runtime& rt,
                                                                                    taskhost::http_client& c, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    auto res = c.request("POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})");
    ids.push_back(json::parse(res.body)["id"]);
    while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  std::vector<double> start_us, complete_us;
  for (const auto& id : ids) {
    auto r = rt.get_run(id);
    if (!r || r->attempts.empty() || !r->finished_at) continue;
    start_us.push_back(std::chrono::duration<double, std::micro>(r->attempts[0].started_at - r->created_at).count());
    complete_us.push_back(std::chrono::duration<double, std::micro>(*r->finished_at - r->created_at).count());
  }
  return {start_us, complete_us};
}

/// http-single-50-inflight once: `n` triggers from a client process over 50 connections. Returns
/// acknowledged/s; waits until the runs are done.
double http_single_50(taskhost::deployment_runtime& rt, int n) {
  const std::string url = "http://127.0.0.1:" + std::to_string(rt.http_port());
  std::string cmd = std::string("'") + fs::canonical("/proc/self/exe").string() + "' --http-client " + url + " " + std::to_string(n) + " 50";
  FILE* p = popen(cmd.c_str(), "r");
  double rate = 0;
  int failed = 0;
  if (!p || std::fscanf(p, "%lf %d", &rate, &failed) != 2 || pclose(p) != 0 || failed)
    throw std::runtime_error("the http client process failed");
  while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return rate;
}

/// A deployment of the bench plugins in `dir`, on a store at `dir`/state/runs.db.
taskhost::config::deployment bench_deployment(const fs::path& dir, const fs::path& plugin, unsigned threads = 0) {
  fs::create_directories(dir / "plugins");
  fs::copy_file(plugin, dir / "plugins" / plugin.filename(), fs::copy_options::overwrite_existing);
  taskhost::config::deployment cfg;
  cfg.file = dir / "bench.yaml";
  cfg.name = "bench";
  cfg.plugins_dir = dir / "plugins";
  cfg.state_dir = dir / "state";
  cfg.http.port = 0;
  cfg.executor_threads = threads;
  return cfg;
}

/// cron-next-*: ns per cron_expression::next() from successive instants, median of `reps`.
void cron_scenarios(int reps) {
  struct c {
    const char* name;
    const char* expr;
    const char* zone;
  };
  for (auto [name, expr, zone] : {c{"cron-next-weekdays-london", "0 9 * * 1-5", "Europe/London"},
                                  c{"cron-next-5min-utc", "*/5 * * * *", "UTC"},
                                  c{"cron-next-lastfri-newyork", "30 17 * * 5L", "America/New_York"}}) {
    auto cron = taskhost::cron_expression::parse(expr);
    auto tz = taskhost::time_zone::locate(zone);
    std::vector<double> ns;
    for (int r = 0; r < reps; ++r) {
      constexpr int n = 200000;
      auto t = std::chrono::system_clock::now();
      auto t0 = clk::now();
      for (int i = 0; i < n; ++i) t = cron.next(t, tz).value_or(t);
      ns.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / n);
    }
    report(name, "ns/next", summarize(ns), {{"expression", expr}, {"timezone", zone}});
  }
}

/// schedules-10k: 10,000 schedules of a no-op scheduled task, all due at the same second a few
/// seconds ahead; every run's trigger lag after the occurrence (from the run's createdAt), and
/// how many runs each schedule got for that occurrence (must be exactly 1).
void schedules_scenario(const fs::path& tmp, int reps) {
  std::vector<double> max_lag, p50_lag, make_s;
  int bad = 0;
  for (int rep = 0; rep < reps; ++rep) {
    auto dir = tmp / ("schedules-" + std::to_string(rep));
    auto cfg = bench_deployment(dir, TASKHOST_BENCH_PLUGIN);
    taskhost::deployment_runtime rt(cfg);
    constexpr int n = 10000;
    // Far enough ahead to create every schedule first (each is its own commit).
    const auto now = std::chrono::system_clock::now();
    auto at = std::chrono::ceil<std::chrono::seconds>(now) + std::chrono::seconds(8);
    const auto tt = std::chrono::system_clock::to_time_t(at);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    const std::string cron = std::to_string(tm.tm_sec) + " " + std::to_string(tm.tm_min) + " " + std::to_string(tm.tm_hour) + " * * *";
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i) {
      auto a = rt.create_schedule({{"task", "bench-scheduled"}, {"cron", cron}, {"deduplicationKey", "b" + std::to_string(i)}});
      if (a.status != 200) throw std::runtime_error("create_schedule: " + a.body.dump());
    }
    make_s.push_back(std::chrono::duration<double>(clk::now() - t0).count());
    if (std::chrono::system_clock::now() >= at) throw std::runtime_error("creating the schedules took past their occurrence");
    // Wait for the occurrence and every run it makes, all committed and finished.
    std::vector<taskhost::run_record> runs;
    auto deadline = clk::now() + std::chrono::seconds(60);
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (std::chrono::system_clock::now() < at + std::chrono::seconds(1)) continue;
      runs.clear();
      taskhost::run_list_query q;
      q.page_size = 100;
      for (;;) {
        auto page = rt.list_runs(q);
        runs.insert(runs.end(), page.runs.begin(), page.runs.end());
        if (page.next.empty()) break;
        q.after = page.next;
      }
      if (runs.size() >= size_t(n) || clk::now() > deadline) break;
    }
    std::map<std::string, int> per_schedule;
    std::vector<double> lag;
    for (const auto& r : runs) {
      ++per_schedule[r.schedule_id];
      lag.push_back(std::chrono::duration<double, std::milli>(r.created_at - at).count());
    }
    for (const auto& [id, k] : per_schedule) bad += k != 1;
    bad += n - int(per_schedule.size());
    max_lag.push_back(*std::max_element(lag.begin(), lag.end()));
    p50_lag.push_back(percentile(lag, 0.5));
    rt.shutdown();
  }
  report("schedules-10k-max-lag", "ms", summarize(max_lag), {{"schedules", 10000}, {"schedules_without_exactly_one_run", bad}});
  report("schedules-10k-p50-lag", "ms", summarize(p50_lag));
  report("schedules-10k-create", "s", summarize(make_s));
  if (bad) std::printf("  !! %d schedules did not get exactly one run\n", bad);
}

/// queue-start-N: the queue's bookkeeping per run start, with N runs queued behind a limit of 1:
/// each start is a release (the running run's attempt ends) that dispatches the next run, plus
/// the enqueue of one more run at the back (so that N stays N). ns per start, median of `reps`.
void queue_scenarios(int reps) {
  auto one = [](size_t queued, int starts) {
    taskhost::queue_book book;
    std::string running;
    size_t got = 0;
    book.set_dispatch([&](std::vector<taskhost::queue_grant> g) {
      got += g.size();
      running = std::move(g.back().run_id);
    });
    book.declare("q", {.concurrency = 1});
    int64_t score = 0;
    std::vector<std::string> ids;
    ids.reserve(queued + starts + 1);
    for (size_t i = 0; i < queued + size_t(starts) + 1; ++i) ids.push_back(taskhost::new_run_id());  // time-ordered, as the runtime makes them
    running = ids[0];
    book.enqueue({ids[0], "t", "q", "", score++});
    for (size_t i = 1; i <= queued; ++i) book.enqueue({ids[i], "t", "q", "", score++});
    auto t0 = clk::now();
    for (int i = 0; i < starts; ++i) {
      book.release(running);
      book.enqueue({ids[queued + 1 + size_t(i)], "t", "q", "", score++});
    }
    double ns = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / starts;
    if (got != size_t(starts)) throw std::runtime_error("queue bench: dispatched " + std::to_string(got));
    return ns;
  };
  std::vector<double> small, big;
  for (int r = 0; r < reps; ++r) {  // in turns, so both see the same machine noise
    small.push_back(one(100, 200000));
    big.push_back(one(1000000, 200000));
  }
  auto s = summarize(small), b = summarize(big);
  report("queue-start-100", "ns/start", s);
  report("queue-start-1000000", "ns/start", b, {{"ratio_to_100", b.median / s.median}});
  std::printf("%-46s %12.2f  (1,000,000 queued vs 100; target: within noise of 1)\n", "  ratio", b.median / s.median);
}

/// queue-backlog-N: end to end, runs/s started and completed from a queue (limit 16) that holds N
/// queued runs all along: a feeder tops the queue up to N as runs leave it. N = 100 and 1,000,000
/// (filled while the queue is paused, then resumed). `reps` measurements of K runs each, in one
/// process of its own per N (below).
std::vector<double> backlog_rates(const fs::path& tmp, size_t backlog, int reps) {
  const int k = 50000;
  std::vector<double> rates;
  auto cfg = bench_deployment(tmp / ("backlog-" + std::to_string(backlog)), TASKHOST_BENCH_PLUGIN);
  // The same store for both, the durable one users run; the queue is what differs.
  // TASKHOST_BENCH_BACKLOG_MEMORY=1: a :memory: store instead. There a million queued runs are
  // also a ~400 MB database in SQLite's own page cache: 0.76-0.90 of the rate with 100 queued
  // (README, Performance), which the durable store, reading through a 4 MiB cache, does not show.
  if (std::getenv("TASKHOST_BENCH_BACKLOG_MEMORY")) cfg.store.path = ":memory:";
  taskhost::config::queue_config q;
  q.name = "bench";
  q.concurrency_limit = 16;
  cfg.queues.push_back(q);
  cfg.tasks["bench-noop"].id = "bench-noop";
  cfg.tasks["bench-noop"].queue = "bench";
  taskhost::deployment_runtime rt(cfg);
  std::atomic<long> acked{0};
  long triggered = 0;
  auto fire = [&](long n) {
    for (long i = 0; i < n; ++i) {
      taskhost::trigger_input in;
      in.task_id = "bench-noop";
      rt.trigger(std::move(in), [&](taskhost::trigger_outcome o) {
        if (o.status != 200) throw std::runtime_error("trigger refused: " + o.error);
        ++acked;
      });
    }
    triggered += n;
  };
  auto queued = [&] { return rt.get_queue("bench").body.value("queued", long{0}); };
  // TASKHOST_BENCH_BACKLOG_DELAYED=1: the big case holds its 1,000,000 runs DELAYED (in the
  // store's memory, not in the queue) and keeps 100 queued: what the store's size costs alone.
  const bool delayed_only = backlog > 100 && std::getenv("TASKHOST_BENCH_BACKLOG_DELAYED");
  const long target = delayed_only ? 100 : long(backlog);
  rt.pause_queue("bench", true);
  if (delayed_only) {
    for (size_t i = 0; i < backlog; ++i) {
      taskhost::trigger_input in;
      in.task_id = "bench-noop";
      in.delay_until = std::chrono::system_clock::now() + std::chrono::hours(1);
      rt.trigger(std::move(in), [&](taskhost::trigger_outcome) { ++acked; });
    }
    triggered += long(backlog);
  }
  fire(target);
  while (acked.load() < triggered || queued() < target) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  rt.pause_queue("bench", false);
  for (int r = 0; r < reps; ++r) {
    const long start_done = triggered - long(rt.store_stats().hot_runs);  // delayed runs stay hot: they cancel out
    auto t0 = clk::now();
    for (;;) {
      const long in_transit = triggered - acked.load();  // triggered, not yet in the queue
      const long missing = target - queued() - in_transit;
      if (missing > 0) fire(std::min<long>(missing, 1000));
      if (triggered - long(rt.store_stats().hot_runs) - start_done >= k) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    rates.push_back(k / std::chrono::duration<double>(clk::now() - t0).count());
  }
  rt.pause_queue("bench", true);  // what is left stays queued; the runtime stops
  return rates;
}

/// The child process of queue-backlog-N: prints the rates of one backlog, one per line.
int queue_backlog_main(size_t backlog, int reps) {
  taskhost::log::setup("error", "text");  // stdout carries the rates alone
  fs::path tmp = fs::temp_directory_path() / ("taskhost-bench-backlog-" + std::to_string(::getpid()));
  for (double r : backlog_rates(tmp, backlog, reps)) std::printf("%.1f\n", r);
  fs::remove_all(tmp);
  return 0;
}

/// Each backlog is measured in a process of its own, so that neither inherits the other's heap (a
/// million runs' worth); `taskhost_bench --queue-backlog N REPS` also measures (or profiles) one.
void queue_backlog_scenario(int reps) {
  const size_t backlogs[2] = {100, 1000000};
  std::vector<double> rates[2];
  for (int b = 0; b < 2; ++b) {
    std::string cmd = std::string("'") + fs::canonical("/proc/self/exe").string() + "' --queue-backlog " +
                      std::to_string(backlogs[b]) + " " + std::to_string(reps);
    FILE* p = popen(cmd.c_str(), "r");
    double r = 0;
    while (p && std::fscanf(p, "%lf", &r) == 1) rates[b].push_back(r);
    if (!p || pclose(p) != 0 || rates[b].size() != size_t(reps)) throw std::runtime_error("the queue backlog process failed");
  }
  auto s = summarize(rates[0]), l = summarize(rates[1]);
  const std::string store = std::getenv("TASKHOST_BENCH_BACKLOG_MEMORY") ? "-memory" : "";
  report("queue-backlog-100" + store, "runs/s", s);
  report((std::getenv("TASKHOST_BENCH_BACKLOG_DELAYED") ? "queue-100+1000000-delayed" : "queue-backlog-1000000") + store, "runs/s", l,
         {{"ratio_to_100", l.median / s.median}});
  std::printf("%-46s %12.2f  (runs/s with 1,000,000 queued vs 100; target: within noise of 1)\n", "  ratio", l.median / s.median);
}

/// The suffix of a scenario's name in a deployment holding power.cpu_latency_us (none without).
std::string cpu_latency_suffix(std::optional<int32_t> cpu_latency) {
  return cpu_latency ? "-cpu-latency-" + std::to_string(*cpu_latency) : "";
}

/// Runs/s with payloads of 100 B, 10 KB and 1 MB (a JSON object holding one string that long),
/// embedded, durable store: 1/5 of `runs`, a quarter of that at 10 KB, 200 at 1 MB.
void payload_scenarios(const fs::path& tmp, int runs, int reps) {
  const int scale_runs = std::max(1000, runs / 5);
  for (auto [label, bytes, n] : {std::tuple{"100B", 100, scale_runs}, std::tuple{"10KB", 10 * 1024, scale_runs / 4},
                                 std::tuple{"1MB", 1 << 20, 200}}) {
    if (const char* only = std::getenv("TASKHOST_BENCH_PAYLOAD"); only && label != std::string_view(only)) continue;
    taskhost::deployment_runtime rt(bench_deployment(tmp / (std::string("payload-") + label), TASKHOST_BENCH_PLUGIN));
    const json payload = {{"blob", std::string(size_t(bytes), 'x')}};
    std::vector<double> v;
    for (int r = 0; r < reps; ++r) v.push_back(n / seconds_of_run_many(rt, "bench-noop", n, payload, 0));
    report(std::string("scaling-payload-") + label, "runs/s", summarize(v), {{"runs", n}});
  }
}

/// TASKHOST_BENCH_ONLY=latency: the latency scenarios alone, `reps` times into one idle runtime
/// (2,000 requests each): the no-op round trip, the trigger's acknowledgement, start − receipt and
/// complete − receipt, each reported as the median (min, max) of its repetitions' p50, and of
/// their p99.
/// With `cpu_latency`, the deployment holds that power.cpu_latency_us, and the names end in
/// "-cpu-latency-N".
void latency_scenarios(const fs::path& tmp, int reps, std::optional<int32_t> cpu_latency = std::nullopt) {
  auto cfg = bench_deployment(tmp / "latency", TASKHOST_BENCH_PLUGIN);
  cfg.cpu_latency_us = cpu_latency;
  const std::string suffix = cpu_latency_suffix(cpu_latency);
  taskhost::deployment_runtime rt(cfg);
  rt.start_http();
  taskhost::http_client c("http://127.0.0.1:" + std::to_string(rt.http_port()));
  std::vector<double> noop, ack, start, complete, ack99, start99, complete99;
  for (int r = 0; r < reps; ++r) {
    noop.push_back(percentile(http_latency(rt, c, "GET", "/healthz", ""), .5));
    auto a = http_latency(rt, c, "POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})");
    ack.push_back(percentile(a, .5));
    ack99.push_back(percentile(a, .99));
    auto [s, d] = start_and_complete_after_receipt(rt, c, 2000);
    start.push_back(percentile(s, .5));
    start99.push_back(percentile(s, .99));
    complete.push_back(percentile(d, .5));
    complete99.push_back(percentile(d, .99));
  }
  // How the runs were started (item 12 applies to a lone trigger into an idle runtime).
  const auto how = rt.start_stats();
  std::printf("  runs started at their commit %llu, by their supervisor %llu\n", static_cast<unsigned long long>(how.at_commit),
              static_cast<unsigned long long>(how.to_supervisor));
  report("baseline-http-noop-p50" + suffix, "us", summarize(noop));
  report("http-trigger-ack-p50" + suffix, "us", summarize(ack));
  report("run-start-after-receipt-p50" + suffix, "us", summarize(start));
  report("run-complete-after-receipt-p50" + suffix, "us", summarize(complete));
  report("http-trigger-ack-p99" + suffix, "us", summarize(ack99));
  report("run-start-after-receipt-p99" + suffix, "us", summarize(start99));
  report("run-complete-after-receipt-p99" + suffix, "us", summarize(complete99));
}

/// parent-child-rt: 2,000 sequential parents in a deployment of their own (with `cpu_latency`,
/// holding that power.cpu_latency_us; the name ends in "-cpu-latency-N").
void parent_child_scenario(const fs::path& tmp, std::optional<int32_t> cpu_latency = std::nullopt) {
  auto pct = [](const std::vector<double>& v) {
    return json{{"p50", percentile(v, .5)}, {"p90", percentile(v, .9)}, {"p99", percentile(v, .99)}, {"max", percentile(v, 1)}};
  };
  const std::string suffix = cpu_latency_suffix(cpu_latency);
  auto cfg = bench_deployment(tmp / ("parent-child" + suffix), TASKHOST_BENCH_PLUGIN);
  cfg.cpu_latency_us = cpu_latency;
  taskhost::deployment_runtime rt(cfg);
  std::vector<double> rt_us, start_gap, run_gap, tail_gap;
  for (int i = 0; i < 2000; ++i) {
    std::promise<std::string> id;
    taskhost::trigger_input in;
    in.task_id = "bench-parent";
    rt.trigger(std::move(in), [&](taskhost::trigger_outcome o) { id.set_value(o.run_id); });
    std::string run = id.get_future().get();
    // Into an idle runtime: parent and child finished and committed.
    while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
    auto r = rt.get_run(run);
    if (!r || !r->output) throw std::runtime_error("bench-parent did not complete");
    rt_us.push_back((*r->output)["rt_us"].get<double>());
    if (std::getenv("TASKHOST_BENCH_DEBUG")) {
      auto kids = rt.list_runs({});
      for (const auto& k : kids.runs)
        if (k.parent_id == run && !k.attempts.empty() && k.finished_at) {
          using us = std::chrono::duration<double, std::micro>;
          start_gap.push_back(us(k.attempts[0].started_at - k.created_at).count());
          run_gap.push_back(us(*k.finished_at - k.attempts[0].started_at).count());
          tail_gap.push_back((*r->output)["rt_us"].get<double>() - us(*k.finished_at - k.created_at).count());
          break;
        }
    }
  }
  if (!start_gap.empty())
    std::printf("  (child created -> started p50 %.1f us; started -> finished %.1f us; finished -> parent resumed %.1f us)\n",
                percentile(start_gap, .5), percentile(run_gap, .5), percentile(tail_gap, .5));
  report("parent-child-rt" + suffix, "us", {percentile(rt_us, 0), percentile(rt_us, .5), percentile(rt_us, 1)}, pct(rt_us));
  std::printf("  parent/child round trip p90 %.1f us, p99 %.1f us (target p50 <= 150 us; BullMQ 2.0 ms)\n", percentile(rt_us, .9),
              percentile(rt_us, .99));
}

/// Bytes this process has passed to write(2) and friends so far (/proc/self/io's wchar): the store's
/// WAL and database writes, and the log's.
double written_bytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  double v = 0;
  while (in >> key >> v)
    if (key == "wchar:") return v;
  return -1;
}

/// batch-wait-1000-<size>: a parent's batch_trigger_and_wait of 1,000 children whose outputs are
/// `size` bytes each; the wait's time from the parent's clock, and the bytes the process wrote
/// meanwhile (per child), median of `reps`.
void batch_wait_scenarios(const fs::path& tmp, int reps) {
  for (size_t size : {size_t{100}, size_t{10000}}) {
    const std::string name = "batch-wait-1000-" + std::string(size == 100 ? "100B" : "10KB");
    auto cfg = bench_deployment(tmp / name, TASKHOST_BENCH_PLUGIN);
    taskhost::deployment_runtime rt(cfg);
    std::vector<double> ms, kb_per_child;
    for (int r = 0; r < reps; ++r) {
      const double w0 = written_bytes();
      std::promise<std::string> id;
      taskhost::trigger_input in;
      in.task_id = "bench-batch-parent";
      in.payload = {{"n", 1000}, {"size", size}};
      rt.trigger(std::move(in), [&](taskhost::trigger_outcome o) { id.set_value(o.run_id); });
      std::string run = id.get_future().get();
      while (rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      auto rec = rt.get_run(run);
      if (!rec || !rec->output) throw std::runtime_error("bench-batch-parent did not complete");
      ms.push_back((*rec->output)["rt_us"].get<double>() / 1000);
      kb_per_child.push_back((written_bytes() - w0) / 1000 / 1000);
    }
    report(name, "ms", summarize(ms), {{"written_kb_per_child", summarize(kb_per_child).median}});
    std::printf("  written per child %.1f KB (median)\n", summarize(kb_per_child).median);
  }
}

/// The latency scenarios and the parent/child round trip again, in deployments that hold
/// power.cpu_latency_us: 0 (idle CPUs poll instead of halting), where this user may make that
/// request (/dev/cpu_dma_latency is root's by default); otherwise says why they are skipped.
void cpu_latency_scenarios(const fs::path& tmp, int reps) {
  const char* dev = taskhost::cpu_latency_request::default_device;
  if (::access(dev, W_OK) != 0) {
    std::printf("  (with power.cpu_latency_us: 0: skipped, %s is not writable by this user)\n", dev);
    return;
  }
  std::printf("with power.cpu_latency_us: 0 (idle CPUs poll):\n");
  latency_scenarios(tmp / "cpu-latency", reps, 0);
  parent_child_scenario(tmp, 0);
}

/// parent-child-rt and waiting-10k, each in a deployment of its own.
void waits_scenarios(const fs::path& tmp, int reps) {
  parent_child_scenario(tmp);
  if (std::getenv("TASKHOST_BENCH_PARENT_CHILD_ONLY")) return;  // to profile the round trip alone
  std::vector<double> added_mb, added_threads, heap_mb;
  for (int r = 0; r < std::min(reps, 3); ++r) {
    auto wcfg = bench_deployment(tmp / ("waiting-" + std::to_string(r)), TASKHOST_BENCH_PLUGIN);
    if (const char* res = std::getenv("TASKHOST_BENCH_RESIDENT")) wcfg.resident_waits_per_task = size_t(std::atoi(res));
    const bool delayed = std::getenv("TASKHOST_BENCH_DELAYED") != nullptr;  // comparison: runs DELAYED an hour
    taskhost::deployment_runtime rt(wcfg);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::malloc_trim(0);  // both readings without the allocator's free pages, so they compare
    const long rss0 = rss_kb(), threads0 = proc_status("Threads:");
    const size_t heap0 = ::mallinfo2().uordblks;
    std::vector<std::string> ids(10000);
    std::atomic<int> acked{0};
    for (int i = 0; i < 10000; ++i) {
      taskhost::trigger_input in;
      in.task_id = "bench-wait-hour";
      if (delayed) in.delay_until = std::chrono::system_clock::now() + std::chrono::hours(1);
      rt.trigger(std::move(in), [&, i](taskhost::trigger_outcome o) {
        ids[size_t(i)] = o.run_id;
        ++acked;
      });
    }
    while (acked.load() < 10000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (const auto& id : ids)
      for (;;) {
        auto run = rt.get_run(id);
        if (run && run->status == (delayed ? taskhost::run_status::delayed : taskhost::run_status::waiting)) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the last commits land
    ::malloc_trim(0);
    added_mb.push_back((rss_kb() - rss0) / 1024.0);
    heap_mb.push_back(double(::mallinfo2().uordblks - heap0) / (1 << 20));
    if (std::getenv("TASKHOST_BENCH_DEBUG")) std::printf("  (runs in memory: %zu)\n", rt.store_stats().hot_runs);
    added_threads.push_back(double(proc_status("Threads:") - threads0));
  }
  report("waiting-10k", "MB added", summarize(added_mb),
         {{"threads_added", summarize(added_threads).median}, {"heap_in_use_added_mb", summarize(heap_mb).median}});
  std::printf("  10,000 runs waiting add %.1f MB RSS (%.1f MB of it heap in use) and %.0f threads (target <= 20 MB, 0 threads)\n",
              summarize(added_mb).median, summarize(heap_mb).median, summarize(added_threads).median);
}

/// TASKHOST_BENCH_ONLY=http: what the access log costs. Two deployments, `http.access_log` on and
/// off, measured in turns in this process (the same machine noise for both), with the log at level
/// info written to a file (stderr is redirected there, so the table stays readable).
void access_log_scenarios(const fs::path& tmp, int runs, int reps) {
  fs::create_directories(tmp);
  const fs::path log_file = tmp / "access.log";
  std::fflush(stderr);
  int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::dup2(fd, 2) < 0) throw std::runtime_error("cannot write " + log_file.string());
  ::close(fd);
  taskhost::log::setup("info", "text");
  auto on_cfg = bench_deployment(tmp / "log-on", TASKHOST_BENCH_PLUGIN);
  auto off_cfg = bench_deployment(tmp / "log-off", TASKHOST_BENCH_PLUGIN);
  on_cfg.http.access_log = true;
  off_cfg.http.access_log = false;
  taskhost::deployment_runtime on(on_cfg), off(off_cfg);
  on.start_http();
  off.start_http();
  taskhost::http_client c_on("http://127.0.0.1:" + std::to_string(on.http_port()));
  taskhost::http_client c_off("http://127.0.0.1:" + std::to_string(off.http_port()));
  const int n = std::min(runs, 50000);
  std::vector<double> tput[2], ack[2], noop[2];
  for (int r = 0; r < reps; ++r) {
    for (int k = 0; k < 2; ++k) {
      int which = (r + k) % 2;  // alternate which goes first
      auto& rt = which == 0 ? on : off;
      auto& c = which == 0 ? c_on : c_off;
      tput[which].push_back(http_single_50(rt, n));
      auto us = http_latency(rt, c, "POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})", 1000);
      ack[which].push_back(percentile(us, .5));
      noop[which].push_back(percentile(http_latency(rt, c, "GET", "/healthz", "", 2000), .5));
    }
  }
  // The line alone: what one access line costs the HTTP thread (formatting, and its share of a
  // batch's write), and the same line written on its own as other log lines are.
  std::vector<double> line_ns, single_ns;
  for (int r = 0; r < reps; ++r) {
    const int lines = 100000;
    taskhost::log::batched_lines batch;
    auto t0 = clk::now();
    for (int i = 0; i < lines; ++i)
      batch.add(taskhost::log::level::info, "http",
                {{"method", "POST"}, {"path", "/api/v1/tasks/bench-noop/trigger"}, {"status", 200},
                 {"duration_us", 312 + i % 100}, {"bytes_in", 183}, {"bytes_out", 161}, {"remote", "127.0.0.1:53110"}});
    batch.flush();
    line_ns.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / lines);
    t0 = clk::now();
    for (int i = 0; i < lines; ++i)
      taskhost::log::write_fields(taskhost::log::level::info, "http",
                                  {{"method", "POST"}, {"path", "/api/v1/tasks/bench-noop/trigger"}, {"status", 200},
                                   {"duration_us", 312 + i % 100}, {"bytes_in", 183}, {"bytes_out", 161}, {"remote", "127.0.0.1:53110"}});
    single_ns.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / lines);
  }
  report("access-log-line", "ns", summarize(line_ns), {{"to", "a file"}, {"batched", true}});
  report("log-line-unbatched", "ns", summarize(single_ns), {{"to", "a file"}});
  report("http-single-50-inflight-access-log-on", "acked/s", summarize(tput[0]), {{"runs", n}});
  report("http-single-50-inflight-access-log-off", "acked/s", summarize(tput[1]), {{"runs", n}});
  report("http-trigger-ack-p50-access-log-on", "us", summarize(ack[0]));
  report("http-trigger-ack-p50-access-log-off", "us", summarize(ack[1]));
  report("http-noop-p50-access-log-on", "us", summarize(noop[0]));
  report("http-noop-p50-access-log-off", "us", summarize(noop[1]));
  std::ifstream in(log_file);
  size_t lines = 0, access = 0;
  std::map<std::string, size_t> others;  // the other lines, by their message's first word
  for (std::string l; std::getline(in, l); ++lines) {
    if (l.find(" http method=") != std::string::npos) ++access;
    else if (auto sp = l.find(' ', 31); sp != std::string::npos) ++others[l.substr(25, l.find(' ', sp + 1) - 25)];
  }
  std::string other;
  for (const auto& [what, n] : others) other += (other.empty() ? "" : ", ") + what + " ×" + std::to_string(n);
  std::printf("  access log: throughput %+.1f%%, ack p50 %+.1f%% (medians, on against off); log: %ju bytes, %zu lines, %zu of them access lines\n",
              100.0 * (summarize(tput[0]).median / summarize(tput[1]).median - 1),
              100.0 * (summarize(ack[0]).median / summarize(ack[1]).median - 1), uintmax_t(fs::file_size(log_file)), lines, access);
  if (!other.empty()) std::printf("  other lines: %.300s\n", other.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--queue-backlog") return queue_backlog_main(std::stoul(argv[2]), std::atoi(argv[3]));
  if (argc == 5 && std::string(argv[1]) == "--http-client") return http_client_main(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  if (argc == 5 && std::string(argv[1]) == "--http-batch-client")
    return http_batch_client_main(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  const int runs = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  taskhost::log::setup("error", "text");  // retries log warnings; keep the table readable
  fs::path tmp = fs::temp_directory_path() / ("taskhost-bench-" + std::to_string(::getpid()));
  fs::create_directories("bench/results");
  char day[32];
  std::time_t now = std::time(nullptr);
  std::strftime(day, sizeof day, "%Y-%m-%d", std::gmtime(&now));
  results.open(std::string("bench/results/") + day + ".jsonl", std::ios::app);

  auto cfg = bench_deployment(tmp, TASKHOST_BENCH_PLUGIN);
  std::printf("taskhost benchmarks: %d runs x %d repetitions, %u cores\n", runs, reps, std::thread::hardware_concurrency());
  std::printf("%-46s %12s %12s %12s\n", "scenario", "median", "min", "max");
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "batch-wait") {
    batch_wait_scenarios(tmp, reps);
    fs::remove_all(tmp);
    return 0;
  }
  // TASKHOST_BENCH_ONLY=waits runs only the waits scenarios (quick, while working on them).
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "waits") {
    waits_scenarios(tmp, reps);
    fs::remove_all(tmp);
    return 0;
  }
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "schedules") {
    cron_scenarios(reps);
    schedules_scenario(tmp, std::min(reps, 3));
    return 0;
  }
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "latency") {
    latency_scenarios(tmp, reps);
    cpu_latency_scenarios(tmp, reps);
    fs::remove_all(tmp);
    return 0;
  }
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "cpu-latency") {
    cpu_latency_scenarios(tmp, reps);
    fs::remove_all(tmp);
    return 0;
  }
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "http") {
    access_log_scenarios(tmp, runs, reps);
    fs::remove_all(tmp);
    return 0;
  }
  // TASKHOST_BENCH_ONLY=embedded: the embedded throughput (disk and :memory:) and fail-twice only.
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "embedded") {
    auto mem_cfg = cfg;
    mem_cfg.state_dir = tmp / "state-mem";
    mem_cfg.store.path = ":memory:";
    std::vector<double> tput, tput_mem, fail_ms, cpu_us, busiest_us;
    {
      taskhost::deployment_runtime rt(cfg);
      const long idle = rss_kb();
      const long peak = peak_rss_kb_during([&] { run_many(rt, "bench-noop", runs); });  // also the warm-up
      std::printf("  rss idle %.1f MB, peak during %d runs %.1f MB\n", idle / 1024.0, runs, peak / 1024.0);
      taskhost::deployment_runtime mem(mem_cfg);
      for (int r = 0; r < reps; ++r) {
        embedded_repetition(rt, runs, tput, cpu_us, busiest_us);
        tput_mem.push_back(runs / seconds_of_run_many(mem, "bench-noop", runs));
        fail_ms.push_back(1000 * seconds_of_run_many(rt, "bench-fail-twice", 1000));
      }
      auto st = rt.store_stats();
      std::printf("  store: %llu commits for %llu row writes\n", (unsigned long long)st.commits, (unsigned long long)st.rows_written);
    }
    report("baseline-store-memory", "runs/s", summarize(tput_mem), {{"runs", runs}, {"store", ":memory:"}});
    report("embedded-throughput", "runs/s", summarize(tput), {{"runs", runs}, {"store", "sqlite-wal-normal"}});
    report_cpu_per_run(cpu_us, busiest_us, runs);
    report("embedded-fail-twice", "ms for 1000", summarize(fail_ms));
    fs::remove_all(tmp);
    return 0;
  }
  // TASKHOST_BENCH_ONLY=http-throughput: single HTTP triggers and HTTP batches only.
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "http-throughput") {
    taskhost::deployment_runtime rt(cfg);
    rt.start_http();
    run_many(rt, "bench-noop", std::min(runs, 20000));  // warm-up
    std::vector<double> single, batches;
    for (int r = 0; r < reps; ++r) {
      single.push_back(http_single_50(rt, std::min(runs, 50000)));
      auto t0 = clk::now();
      http_batches(rt, runs, 2);
      batches.push_back(runs / std::chrono::duration<double>(clk::now() - t0).count());
    }
    report("http-single-50-inflight", "acked/s", summarize(single), {{"runs", std::min(runs, 50000)}});
    report("http-batches-1000", "runs/s", summarize(batches), {{"runs", runs}, {"connections", 2}});
    fs::remove_all(tmp);
    return 0;
  }
  // TASKHOST_BENCH_ONLY=payload: embedded throughput with payloads of 100 B, 10 KB and 1 MB only.
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "payload") {
    payload_scenarios(tmp, runs, reps);
    fs::remove_all(tmp);
    return 0;
  }
  if (const char* only = std::getenv("TASKHOST_BENCH_ONLY"); only && std::string(only) == "queues") {
    queue_scenarios(reps);
    queue_backlog_scenario(reps);
    fs::remove_all(tmp);
    return 0;
  }

  double rows_per_run = 0;
  {
    // The same deployment twice: the store on disk (the default) and on :memory:, measured in
    // turns so that both see the same machine noise.
    auto mem_cfg = cfg;
    mem_cfg.state_dir = tmp / "state-mem";
    mem_cfg.store.path = ":memory:";
    taskhost::deployment_runtime rt(cfg);
    rt.start_http();
    long rss_idle = rss_kb();
    // The peak while this runtime alone takes its first `runs` runs (the :memory: one below holds
    // every run it ever ran in its database, which is not this runtime's memory). Not timed: it
    // warms the store up for the measured repetitions.
    const long rss_peak = peak_rss_kb_during([&] { run_many(rt, "bench-noop", runs); });

    std::vector<double> tput, tput_mem, cpu_us, busiest_us;
    {
      taskhost::deployment_runtime mem(mem_cfg);
      for (int r = 0; r < reps; ++r) {
        embedded_repetition(rt, runs, tput, cpu_us, busiest_us);
        tput_mem.push_back(runs / seconds_of_run_many(mem, "bench-noop", runs));
      }
    }
    auto disk = summarize(tput), memory = summarize(tput_mem);
    report("baseline-store-memory", "runs/s", memory, {{"runs", runs}, {"store", ":memory:"}});
    report("embedded-throughput", "runs/s", disk,
           {{"runs", runs}, {"store", "sqlite-wal-normal"}, {"ratio_to_memory_store", memory.median / disk.median}});
    report_cpu_per_run(cpu_us, busiest_us, runs);
    std::printf("  durable store costs %.2fx the :memory: store (target <= 1.5x)\n", memory.median / disk.median);
    auto st = rt.store_stats();
    std::printf("  store: %llu commits for %llu row writes (%.0f rows per commit)\n",
                (unsigned long long)st.commits, (unsigned long long)st.rows_written,
                st.commits ? double(st.rows_written) / double(st.commits) : 0.0);
    long rss_after = rss_kb();
    rows_per_run = double(st.rows_written) / (double(reps) * runs);

    std::vector<double> fail_ms;
    for (int r = 0; r < reps; ++r) fail_ms.push_back(1000 * seconds_of_run_many(rt, "bench-fail-twice", 1000));
    report("embedded-fail-twice", "ms for 1000", summarize(fail_ms));

    taskhost::http_client c("http://127.0.0.1:" + std::to_string(rt.http_port()));
    auto base = http_latency(rt, c, "GET", "/healthz", "");
    auto ack = http_latency(rt, c, "POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})");
    auto pct = [](const std::vector<double>& v) {
      return json{{"p50", percentile(v, .5)}, {"p90", percentile(v, .9)}, {"p99", percentile(v, .99)}, {"max", percentile(v, 1)}};
    };
    report("baseline-http-noop", "us", {percentile(base, 0), percentile(base, .5), percentile(base, 1)}, pct(base));
    report("http-trigger-ack", "us", {percentile(ack, 0), percentile(ack, .5), percentile(ack, 1)}, pct(ack));
    std::printf("  http-trigger-ack p90 %.1f us, p99 %.1f us; ratio to baseline at p50: %.2f\n", percentile(ack, .9),
                percentile(ack, .99), percentile(ack, .5) / percentile(base, .5));

    // Start − receipt and complete − receipt from the runs' own timestamps (receipt = createdAt,
    // set when the request has been parsed), for 2,000 sequential triggers into an idle runtime.
    {
      auto [start_us, complete_us] = start_and_complete_after_receipt(rt, c, 2000);
      report("run-start-after-receipt", "us", {percentile(start_us, 0), percentile(start_us, .5), percentile(start_us, 1)}, pct(start_us));
      report("run-complete-after-receipt", "us", {percentile(complete_us, 0), percentile(complete_us, .5), percentile(complete_us, 1)},
             pct(complete_us));
      std::printf("  start - receipt p90 %.1f us, p99 %.1f us; complete - receipt p90 %.1f us, p99 %.1f us\n", percentile(start_us, .9),
                  percentile(start_us, .99), percentile(complete_us, .9), percentile(complete_us, .99));
    }

    // Single HTTP triggers, 50 in flight, from a separate client process.
    {
      const int n = std::min(runs, 50000);
      std::vector<double> acked_per_s, done_per_s;
      for (int r = 0; r < reps; ++r) {
        auto t0 = clk::now();
        acked_per_s.push_back(http_single_50(rt, n));
        done_per_s.push_back(n / std::chrono::duration<double>(clk::now() - t0).count());
      }
      report("http-single-50-inflight", "acked/s", summarize(acked_per_s),
             {{"runs", n}, {"completed_per_s", summarize(done_per_s).median}});
      std::printf("  triggered and completed: %.0f runs/s\n", summarize(done_per_s).median);
    }
    // Batches of 1,000 over HTTP (the two-phase batch API), from a separate client process with
    // two connections: one sends a batch while the server records the other's.
    {
      std::vector<double> acked_per_s, done_per_s;
      for (int r = 0; r < reps; ++r) {
        auto t0 = clk::now();
        acked_per_s.push_back(http_batches(rt, runs, 2));
        done_per_s.push_back(runs / std::chrono::duration<double>(clk::now() - t0).count());
      }
      auto done = summarize(done_per_s);
      report("http-batches-1000", "runs/s", done, {{"runs", runs}, {"acked_per_s", summarize(acked_per_s).median}, {"connections", 2}});
      std::printf("  http batches: %.0f runs/s acknowledged; triggered and completed %.0f runs/s (%.2f of embedded)\n",
                  summarize(acked_per_s).median, done.median, done.median / disk.median);
    }
    report("rss", "MB", {rss_idle / 1024.0, rss_idle / 1024.0, rss_peak / 1024.0},
           {{"idle_mb", rss_idle / 1024.0}, {"peak_mb", rss_peak / 1024.0}, {"after_throughput_mb", rss_after / 1024.0}});
    std::printf("  rss idle %.1f MB, peak during %d runs %.1f MB, after the throughput runs %.1f MB (final runs leave memory)\n",
                rss_idle / 1024.0, runs, rss_peak / 1024.0, rss_after / 1024.0);
  }

  // Physical baselines (after the runtime figures, so that idle RSS is the runtime's alone).
  std::vector<double> sql, caf_ext, caf_int;
  for (int r = 0; r < reps; ++r) {
    sql.push_back(taskhost::bench::sqlite_batched_insert_rows_per_s(tmp / "baseline.db", 100000, 1000));
    caf_ext.push_back(taskhost::bench::caf_request_response_us(20000));
    caf_int.push_back(taskhost::bench::caf_actor_round_trip_us(100000));
  }
  report("baseline-sqlite-insert", "rows/s", summarize(sql), {{"batch", 1000}});
  report("baseline-caf-request", "us", summarize(caf_ext), {{"from", "non-actor thread"}});
  report("baseline-caf-actor-rt", "us", summarize(caf_int), {{"from", "actor"}});
  std::printf("  SQLite alone inserts %.0f rows/s in batches of 1,000; the store wrote %.1f rows per run above\n",
              summarize(sql).median, rows_per_run);

  // Scaling: tasks, payload size, executor threads (20,000 runs each unless noted).
  const int scale_runs = std::max(1000, runs / 5);
  auto scale = [&](const std::string& name, const taskhost::config::deployment& c, int n, const json& payload, int spread) {
    std::vector<double> v;
    taskhost::deployment_runtime rt(c);
    for (int r = 0; r < reps; ++r) v.push_back(n / seconds_of_run_many(rt, "bench-noop", n, payload, spread));
    report(name, "runs/s", summarize(v), {{"runs", n}});
  };
  for (int tasks : {1, 10, 100, 1000})
    scale("scaling-tasks-" + std::to_string(tasks), bench_deployment(tmp / ("many-" + std::to_string(tasks)), TASKHOST_BENCH_MANY_PLUGIN),
          scale_runs, nullptr, tasks);
  payload_scenarios(tmp, runs, reps);
  for (unsigned threads : {1u, 2u, 4u, 8u})
    scale("scaling-executor-" + std::to_string(threads),
          bench_deployment(tmp / ("threads-" + std::to_string(threads)), TASKHOST_BENCH_PLUGIN, threads), scale_runs, nullptr, 0);

  waits_scenarios(tmp, reps);
  batch_wait_scenarios(tmp, reps);
  cpu_latency_scenarios(tmp, std::min(reps, 3));
  queue_scenarios(reps);
  queue_backlog_scenario(reps);
  cron_scenarios(reps);
  schedules_scenario(tmp, std::min(reps, 3));
  fs::remove_all(tmp);
  return 0;
}
