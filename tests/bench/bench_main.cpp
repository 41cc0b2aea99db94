// `make bench`: taskhost's own benchmarks, each repeated, reported as median and spread, with
// physical baselines measured in the same run. Prints a table and appends JSON lines to
// bench/results/<date>.jsonl. Scenarios so far (issue 8 lists the rest):
//   embedded-throughput   N no-op runs triggered and completed through the embedding API
//   embedded-fail-twice   1,000 runs that fail twice, then succeed, zero backoff
//   http-trigger-ack      sequential HTTP triggers into an idle runtime (keep-alive): ack latency
//   baseline-http-noop    GET /healthz on the same server stack (the floor for http-trigger-ack)
//   rss                   resident memory idle and after the throughput runs
#include <atomic>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/deployment_runtime.hpp"
#include "runtime/http_client.hpp"
#include "runtime/log.hpp"

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

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::ofstream results;
void report(const std::string& name, const std::string& unit, const stats& s, json extra = json::object()) {
  std::printf("%-24s %12.1f %12.1f %12.1f  %s\n", name.c_str(), s.median, s.min, s.max, unit.c_str());
  extra["scenario"] = name;
  extra["unit"] = unit;
  extra["median"] = s.median;
  extra["min"] = s.min;
  extra["max"] = s.max;
  results << extra.dump() << "\n";
}

/// Triggers `n` runs of `task` and waits until every one is final and committed (the store holds
/// no run in memory any more), without reading runs back.
void run_many(taskhost::deployment_runtime& rt, const std::string& task, int n) {
  std::atomic<int> acked{0};
  for (int i = 0; i < n; ++i) {
    taskhost::trigger_input in;
    in.task_id = task;
    rt.trigger(std::move(in), [&](taskhost::trigger_outcome o) {
      if (o.status != 200) throw std::runtime_error("trigger refused: " + o.error);
      ++acked;
    });
  }
  while (acked.load() < n || rt.store_stats().hot_runs > 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  taskhost::log::setup("error", "text");  // retries log warnings; keep the table readable
  fs::path tmp = fs::temp_directory_path() / ("taskhost-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp / "plugins");
  fs::copy_file(fs::path(TASKHOST_BENCH_PLUGIN), tmp / "plugins/bench.so");
  fs::create_directories("bench/results");
  char day[32];
  std::time_t now = std::time(nullptr);
  std::strftime(day, sizeof day, "%Y-%m-%d", std::gmtime(&now));
  results.open(std::string("bench/results/") + day + ".jsonl", std::ios::app);

  taskhost::config::deployment cfg;
  cfg.file = tmp / "bench.yaml";
  cfg.name = "bench";
  cfg.plugins_dir = tmp / "plugins";
  cfg.state_dir = tmp / "state";
  cfg.http.port = 0;
  std::printf("taskhost benchmarks: %d runs x %d repetitions, %u cores\n", runs, reps, std::thread::hardware_concurrency());
  std::printf("%-24s %12s %12s %12s\n", "scenario", "median", "min", "max");
  {
    // The same deployment twice: the store on disk (the default) and on :memory:, measured in
    // turns so that both see the same machine noise.
    auto mem_cfg = cfg;
    mem_cfg.state_dir = tmp / "state-mem";
    mem_cfg.store.path = ":memory:";
    taskhost::deployment_runtime rt(cfg);
    rt.start_http();
    long rss_idle = rss_kb();

    std::vector<double> tput, tput_mem;
    long rss_peak = rss_idle;
    {
      taskhost::deployment_runtime mem(mem_cfg);
      for (int r = 0; r < reps; ++r) {
        auto t0 = clk::now();
        run_many(rt, "bench-noop", runs);
        tput.push_back(runs / std::chrono::duration<double>(clk::now() - t0).count());
        rss_peak = std::max(rss_peak, rss_kb());
        t0 = clk::now();
        run_many(mem, "bench-noop", runs);
        tput_mem.push_back(runs / std::chrono::duration<double>(clk::now() - t0).count());
      }
    }
    auto disk = summarize(tput), memory = summarize(tput_mem);
    report("baseline-store-memory", "runs/s", memory, {{"runs", runs}, {"store", ":memory:"}});
    report("embedded-throughput", "runs/s", disk,
           {{"runs", runs}, {"store", "sqlite-wal-normal"}, {"ratio_to_memory_store", memory.median / disk.median}});
    std::printf("  durable store costs %.2fx the :memory: store (target <= 1.5x)\n", memory.median / disk.median);
    auto st = rt.store_stats();
    std::printf("  store: %llu commits for %llu row writes (%.0f rows per commit)\n", (unsigned long long)st.commits,
                (unsigned long long)st.rows_written, st.commits ? double(st.rows_written) / double(st.commits) : 0.0);
    long rss_after = rss_kb();

    std::vector<double> fail_ms;
    for (int r = 0; r < reps; ++r) {
      auto t0 = clk::now();
      run_many(rt, "bench-fail-twice", 1000);
      fail_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    }
    report("embedded-fail-twice", "ms for 1000", summarize(fail_ms));

    taskhost::http_client c("http://127.0.0.1:" + std::to_string(rt.http_port()));
    auto latency = [&](const std::string& method, const std::string& path, const std::string& body) {
      std::vector<double> us;
      for (int i = 0; i < 2000; ++i) {
        auto t0 = clk::now();
        auto res = c.request(method, path, body);
        us.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        if (res.status != 200) throw std::runtime_error(path + " answered " + std::to_string(res.status));
      }
      return us;
    };
    auto base = latency("GET", "/healthz", "");
    auto ack = latency("POST", "/api/v1/tasks/bench-noop/trigger", R"({"payload":null})");
    auto pct = [](const std::vector<double>& v) {
      return json{{"p50", percentile(v, .5)}, {"p90", percentile(v, .9)}, {"p99", percentile(v, .99)}};
    };
    report("baseline-http-noop", "us", {percentile(base, 0), percentile(base, .5), percentile(base, 1)}, pct(base));
    report("http-trigger-ack", "us", {percentile(ack, 0), percentile(ack, .5), percentile(ack, 1)}, pct(ack));
    std::printf("  http-trigger-ack p90 %.1f us, p99 %.1f us; ratio to baseline at p50: %.2f\n", percentile(ack, .9),
                percentile(ack, .99), percentile(ack, .5) / percentile(base, .5));
    report("rss", "MB", {rss_idle / 1024.0, rss_idle / 1024.0, rss_peak / 1024.0},
           {{"idle_mb", rss_idle / 1024.0}, {"peak_mb", rss_peak / 1024.0}, {"after_throughput_mb", rss_after / 1024.0}});
    std::printf("  rss idle %.1f MB, peak during %d x %d runs %.1f MB, after %.1f MB (final runs leave memory)\n",
                rss_idle / 1024.0, reps, runs, rss_peak / 1024.0, rss_after / 1024.0);
  }
  fs::remove_all(tmp);
  return 0;
}
