// Trigger.dev's "db" middleware example (tasks.middleware + locals + onWait/onResume), in C++.
#include <taskhost/sdk.hpp>

#include <string>

namespace th = taskhost;

// A stand-in for a real client: it logs what a real one would do.
struct db_client {
  th::logger log;
  bool connected = false;
  void connect() { connected = true; log.info("Connecting to the database"); }
  void disconnect() { connected = false; log.info("Disconnecting from the database"); }
  std::string query(const std::string& sql) const { return connected ? "rows for: " + sql : "not connected"; }
};

static auto db_local = th::locals::create<db_client>("db");

th::middleware db{"db", [](th::middleware_context& mw, th::next next) -> th::async<void> {
  auto& db = mw.locals.set(db_local, db_client{mw.logger});
  db.connect();
  co_await next();  // everything else of the attempt runs inside
  db.disconnect();
}};

// Disconnect while the run waits; reconnect when it resumes.
th::hook on_wait_db{th::on_wait, "db", [](th::hook_context& h) { h.locals.get_or_throw(db_local).disconnect(); }};
th::hook on_resume_db{th::on_resume, "db", [](th::hook_context& h) { h.locals.get_or_throw(db_local).connect(); }};

th::task use_db{{
    .id = "use-db",
    .run = [](th::json payload, th::run_context& ctx) -> th::json {
      auto& db = ctx.locals.get_or_throw(db_local);
      return {{"result", db.query(payload.value("sql", "select 1"))}};
    },
}};

TASKHOST_PLUGIN("db-middleware", "1.0.0", use_db);
