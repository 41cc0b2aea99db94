#include <taskhost/sdk.hpp>
namespace th = taskhost;

th::task hello_world{{
    .id = "hello-world",
    .run = [](th::json payload, th::run_context& ctx) -> th::json {
        ctx.logger.info("greeting", {{"message", payload.at("message")}});  // message + attributes
        return {{"echo", payload.at("message")}};
    },
}};
// A scheduled task: its schedules come from the deployment (config/dev.yaml's `schedules:`) or
// from the API (POST /api/v1/schedules), each run gets the occurrence it stands for.
th::scheduled_task daily_report{{
    .id = "daily-report",
    .run = [](th::schedule_payload p, th::run_context& ctx) -> th::json {
        ctx.logger.info("report", {{"for", th::format_timestamp(p.timestamp)}, {"timezone", p.timezone}});
        return {{"reportFor", th::format_timestamp(p.timestamp)}, {"schedule", p.schedule_id}};
    },
}};

TASKHOST_PLUGIN("hello", "1.0.0", hello_world, daily_report);
