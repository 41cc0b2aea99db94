// A plugin with 1,000 no-op tasks (bench-task-0 .. bench-task-999), for the scaling benchmark:
// runs/s against the number of tasks a deployment serves. Written against the C ABI directly
// (ABI 1.0 task descriptors) because the SDK's tasks are declared one by one.
#include <taskhost/plugin_abi.h>

#include <array>
#include <cstddef>
#include <string>

namespace {
constexpr size_t task_count = 1000;
struct execution {};
int start(void*, const th_run_info*, th_execution** out, th_bytes*) {
  static execution e;
  *out = reinterpret_cast<th_execution*>(&e);
  return 0;
}
th_step_status step(th_execution*, th_bytes* out) {
  *out = th_bytes{"null", 4};
  return TH_STEP_COMPLETED;
}
void destroy(th_execution*) {}

struct task_descriptor_v10 {  // the ABI 1.0 prefix of th_task_descriptor
  uint32_t struct_size;
  const char* id;
  const char* description;
  void* user_data;
  int (*start)(void*, const th_run_info*, th_execution**, th_bytes*);
  th_step_status (*step)(th_execution*, th_bytes*);
  void (*destroy)(th_execution*);
};
static_assert(sizeof(task_descriptor_v10) == offsetof(th_task_descriptor, retry));
}  // namespace

extern "C" TASKHOST_EXPORT const th_plugin_descriptor* taskhost_plugin_v1(void) {
  static std::array<std::string, task_count> ids;
  static std::array<task_descriptor_v10, task_count> tasks;
  static th_plugin_descriptor d = [] {
    for (size_t i = 0; i < task_count; ++i) {
      ids[i] = "bench-task-" + std::to_string(i);
      tasks[i] = {sizeof(task_descriptor_v10), ids[i].c_str(), nullptr, nullptr, &start, &step, &destroy};
    }
    return th_plugin_descriptor{sizeof(th_plugin_descriptor), 1, 0, "bench-many", "1.0.0", "1,000 no-op tasks",
                                reinterpret_cast<const th_task_descriptor*>(tasks.data()), task_count,
                                sizeof(task_descriptor_v10)};
  }();
  return &d;
}
