// The router: maps task ids to their supervisors and routes each new run to one.
#include <caf/all.hpp>

#include "actors/messages.hpp"
#include "actors/spawn.hpp"
#include "runtime/log.hpp"

namespace taskhost::actors {
namespace {

caf::behavior router(caf::event_based_actor* self, std::unordered_map<std::string, caf::actor> supervisors) {
  return {
      [=](trigger_atom, const std::string& task_id, const std::string& run_id) {
        auto it = supervisors.find(task_id);
        if (it == supervisors.end()) {
          // The gateway checks task ids before recording a run, so this is a bug, not bad input.
          log::error("router: no supervisor for task", {{"task", task_id}, {"run", run_id}});
          return;
        }
        self->send(it->second, start_atom::value, run_id);
      },
  };
}

}  // namespace

caf::actor spawn_router(caf::actor_system& sys, std::unordered_map<std::string, caf::actor> supervisors) {
  return sys.spawn(router, std::move(supervisors));
}

}  // namespace taskhost::actors
