// Tasks the benchmarks run: a no-op, one that fails its first two attempts, a parent that waits
// for a no-op child (and times the round trip itself), one that waits an hour, and a no-op
// scheduled task, and a parent that waits for a batch of children with outputs of a given size.
#include <taskhost/sdk.hpp>

#include <stdexcept>

namespace th = taskhost;

th::task noop{{.id = "bench-noop", .run = [](th::json, th::run_context&) -> th::json { return nullptr; }}};

th::task fail_twice{{
    .id = "bench-fail-twice",
    .run = [](th::json, th::run_context& ctx) -> th::json {
      if (ctx.attempt() < 3) throw std::runtime_error("not yet");
      return nullptr;
    },
    .retry = {.max_attempts = 3, .factor = 1.0, .min_timeout = std::chrono::milliseconds(0),
              .max_timeout = std::chrono::milliseconds(0), .randomize = false},
}};

th::task parent{{
    .id = "bench-parent",
    .run = [](th::json, th::run_context& ctx) -> th::async<th::json> {
      auto t0 = std::chrono::steady_clock::now();
      auto r = co_await ctx.trigger_and_wait("bench-noop");
      auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (!r.ok) throw std::runtime_error(r.error.message);
      th::json out = {{"rt_us", us}};
      co_return out;
    },
}};

// bench-sized returns a string of payload.size bytes; bench-batch-parent triggers payload.n of
// them with batch_trigger_and_wait and outputs the wait's time (µs, from its own clock).
th::task sized{{.id = "bench-sized", .run = [](th::json p, th::run_context&) -> th::json {
                  return std::string(p.value("size", size_t{0}), 'x');
                }}};

th::task batch_parent{{
    .id = "bench-batch-parent",
    .run = [](th::json p, th::run_context& ctx) -> th::async<th::json> {
      const size_t n = p.value("n", size_t{1000});
      th::json items = th::json::array();
      for (size_t i = 0; i < n; ++i) items.push_back({{"size", p.value("size", size_t{0})}});
      auto t0 = std::chrono::steady_clock::now();
      auto b = co_await ctx.batch_trigger_and_wait("bench-sized", items);
      auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      size_t ok = 0;
      for (const auto& r : b) ok += r.ok ? 1 : 0;
      if (ok != n) throw std::runtime_error("a child failed");
      th::json out = {{"rt_us", us}, {"ok", ok}};
      co_return out;
    },
}};

th::task wait_hour{{
    .id = "bench-wait-hour",
    .run = [](th::json, th::run_context& ctx) -> th::async<th::json> {
      co_await ctx.wait_for(std::chrono::hours(1));
      co_return th::json(nullptr);
    },
}};

th::scheduled_task scheduled_noop{{
    .id = "bench-scheduled",
    .run = [](th::schedule_payload, th::run_context&) -> th::json { return nullptr; },
}};

TASKHOST_PLUGIN("bench", "1.0.0", noop, fail_twice, parent, sized, batch_parent, wait_hour, scheduled_noop);
