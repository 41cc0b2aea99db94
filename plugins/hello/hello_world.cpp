#include <taskhost/sdk.hpp>
namespace th = taskhost;

th::task hello_world{{
    .id = "hello-world",
    .run = [](th::json payload, th::run_context& ctx) -> th::json {
        ctx.logger.info("greeting", {{"message", payload.at("message")}});  // message + attributes
        return {{"echo", payload.at("message")}};
    },
}};
TASKHOST_PLUGIN("hello", "1.0.0", hello_world);
