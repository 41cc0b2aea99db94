// Tasks the benchmarks run: a no-op, one that fails its first two attempts, a parent that waits
// for a no-op child (and times the round trip itself), one that waits an hour, and a no-op
// scheduled task.
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

TASKHOST_PLUGIN("bench", "1.0.0", noop, fail_twice, parent, wait_hour, scheduled_noop);
