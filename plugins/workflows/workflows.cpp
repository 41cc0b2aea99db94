// First-party example plugin: tasks that trigger tasks and wait. `make run` loads it next to
// hello-world; try it with
//
//   build/bin/taskhost trigger greet-team '{"names":["ada","linus"]}' --wait
//   build/bin/taskhost trigger await-approval '{"item":"laptop"}'    # then, with the token it logs:
//   build/bin/taskhost tokens complete waitpoint_... '{"approved":true}'
#include <taskhost/sdk.hpp>

namespace th = taskhost;

// One hello-world child per name, all at once; waits for every one of them.
th::task greet_team{{
    .id = "greet-team",
    .run = [](th::json payload, th::run_context& ctx) -> th::async<th::json> {
      th::json items = th::json::array();
      for (const auto& name : payload.at("names")) items.push_back({{"message", "hello " + name.get<std::string>()}});
      auto greetings = co_await ctx.batch_trigger_and_wait("hello-world", items);
      th::json echoes = th::json::array();
      for (const auto& r : greetings) echoes.push_back(r.ok ? r.output["echo"] : th::json(r.error.message));
      th::json out = {{"batch", greetings.id}, {"greetings", echoes}};
      co_return out;
    },
    .description = "greets each name through a hello-world child run (batch_trigger_and_wait)",
}};

// Waits — holding no thread, across restarts — until someone completes its token, or a day passes.
th::task await_approval{{
    .id = "await-approval",
    .run = [](th::json payload, th::run_context& ctx) -> th::async<th::json> {
      auto token = ctx.create_token({.timeout = std::chrono::hours(24), .tags = {"approval"}});
      ctx.metadata.set("token", token.id);
      ctx.logger.info("waiting for approval", {{"item", payload.value("item", "")}, {"token", token.id}});
      auto answer = co_await ctx.wait_for_token(token);
      if (!answer.ok) throw th::abort_run("no answer within a day: " + answer.error.message);
      auto audit = co_await ctx.step("audit", [&] { return std::string("decided at attempt ") + std::to_string(ctx.attempt()); });
      th::json out = {{"item", payload.value("item", "")}, {"decision", answer.output}, {"audit", audit}};
      co_return out;
    },
    .description = "waits for a wait token (taskhost tokens complete ID JSON), at most a day",
}};

TASKHOST_PLUGIN("workflows", "1.0.0", greet_team, await_approval);
