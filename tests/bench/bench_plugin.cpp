// Tasks the benchmarks run: a no-op, and one that fails its first two attempts.
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

TASKHOST_PLUGIN("bench", "1.0.0", noop, fail_twice);
