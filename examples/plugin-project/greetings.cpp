// Two tasks in one plugin: a greeting, and one that refuses bad input without retrying.
#include <taskhost/sdk.hpp>

#include <string>

namespace th = taskhost;

th::task greet{{
    .id = "greet",
    .run = [](th::json payload, th::run_context& ctx) -> th::json {
      std::string name = payload.value("name", "world");
      ctx.logger.info("greeting someone", {{"name", name}, {"attempt", ctx.attempt()}});
      return {{"greeting", "Hello, " + name + "!"}};
    },
    .description = "greets payload.name",
}};

th::task shout{{
    .id = "shout",
    .run = [](th::json payload, th::run_context&) -> th::json {
      if (!payload.is_string()) throw th::abort_run("shout needs a string payload");  // no retry
      std::string s = payload.get<std::string>();
      for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return s;
    },
}};

TASKHOST_PLUGIN("greetings", "1.0.0", greet, shout);
