// Physical baselines for `make bench`: what the parts taskhost is built from can do on this
// machine, measured in the same run as taskhost itself, so each scenario can be read as a ratio
// to its floor.
#include "bench/baselines.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>

#include "runtime/sqlite.hpp"

namespace taskhost::bench {

using clk = std::chrono::steady_clock;

double caf_request_response_us(int n) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("scheduler.policy", caf::atom("sharing"));  // as the runtime configures it
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
  double us = 0;
  {
    caf::scoped_actor self{sys};
    auto t0 = clk::now();
    for (int i = 0; i < n; ++i) self->request(echo, std::chrono::seconds(10), i).receive([](int) {}, [](caf::error&) {});
    us = std::chrono::duration<double, std::micro>(clk::now() - t0).count() / n;
  }
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return us;
}

double caf_actor_round_trip_us(int n) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
  std::promise<double> done;
  // A request/then chain between two actors: what a supervisor asking the store would cost.
  sys.spawn([echo, n, &done](caf::event_based_actor* self) {
    auto t0 = std::make_shared<clk::time_point>(clk::now());
    auto left = std::make_shared<int>(n);
    auto step = std::make_shared<std::function<void()>>();
    *step = [=, &done] {
      if ((*left)-- == 0) {
        done.set_value(std::chrono::duration<double, std::micro>(clk::now() - *t0).count() / n);
        self->quit();
        return;
      }
      self->request(echo, std::chrono::seconds(10), *left).then([=](int) { (*step)(); });
    };
    (*step)();
  });
  double us = done.get_future().get();
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  return us;
}

double sqlite_batched_insert_rows_per_s(const std::filesystem::path& file, int rows, int batch) {
  std::filesystem::remove(file);
  double rate = 0;
  {
    sqlite::db db(file.string());
    {
      auto wal = db.prepare("PRAGMA journal_mode=WAL");
      wal.step();
    }
    db.exec("PRAGMA synchronous=NORMAL");
    db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, status TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL)");
    auto ins = db.prepare("INSERT INTO t VALUES (?, ?, ?, ?)");
    auto t0 = clk::now();
    for (int done = 0; done < rows;) {
      sqlite::transaction(db, [&] {
        for (int i = 0; i < batch && done < rows; ++i, ++done) {
          ins.bind(1, "run_" + std::to_string(done)).bind(2, "QUEUED").bind(3, "null").bind(4, int64_t{done});
          ins.step();
          ins.reset();
        }
      });
    }
    rate = rows / std::chrono::duration<double>(clk::now() - t0).count();
  }
  for (auto ext : {"", "-wal", "-shm"}) std::filesystem::remove(file.string() + ext);
  return rate;
}

}  // namespace taskhost::bench
