/* taskhost plugin ABI — the only contract between the host and a task plugin.
 *
 * Example (what TASKHOST_PLUGIN in sdk.hpp expands to, in essence):
 *
 *   extern "C" TASKHOST_EXPORT const th_plugin_descriptor* taskhost_plugin_v1(void) {
 *     static th_plugin_descriptor d = { sizeof d, 1, 0, "hello", "1.0.0", "g++ 12", tasks, 1,
 *                                       sizeof(th_task_descriptor) };
 *     return &d;
 *   }
 *
 * Rules (the host enforces them before it calls any plugin code other than the entry function):
 *  - The plugin exports exactly one entry symbol whose name carries the ABI major:
 *    `taskhost_plugin_v<MAJOR>`. It takes no arguments and returns a pointer to a descriptor with
 *    static storage duration.
 *  - ABI major must equal the host's. ABI minor may be older than the host's, never newer.
 *  - Structs only grow at the end, and every struct carries its own size (`struct_size`); a reader
 *    never touches a field that lies beyond `struct_size`. Adding a field is a minor bump.
 *  - Only C types cross the boundary: no C++ type, no exception. Payloads, outputs and errors are
 *    UTF-8 JSON bytes.
 *
 * OWNERSHIP: descriptors and all strings they point to are owned by the plugin and live as long as
 * the library stays loaded. `th_run_info` and everything it points to is owned by the host and lives
 * until the host calls `destroy` on the execution created from it. Bytes returned through `th_bytes`
 * by `step` are owned by the execution and stay valid until the next `step` or `destroy` call.
 *
 * THREADS: `start`, `step` and `destroy` for one execution are called by the host one at a time,
 * never concurrently, but possibly on different threads. Different executions may run concurrently.
 *
 * HOW IT GROWS (each a minor bump, old plugins keep loading):
 *  - scheduled tasks (1.6): th_task_descriptor.scheduled marks a task whose runs come from
 *    schedules (cron) and whose payload is the schedule payload; schedule_cron / schedule_timezone
 *    give it a declarative schedule. The host reads them only when abi_minor >= 6 and the
 *    descriptor's size covers them; older plugins' tasks are ordinary tasks;
 *  - queues (1.5): th_task_descriptor.queue_name / queue_concurrency_limit put a task on a named
 *    queue (shared by every task naming it) or give its own queue a concurrency limit. The host
 *    reads them only when abi_minor >= 5 and the descriptor's size covers them; older plugins'
 *    tasks run on their own queue, limited only by the deployment;
 *  - coroutine tasks and waits (1.4): `step` returns TH_STEP_SUSPENDED naming the journal entries
 *    it awaits (made through th_host_api.call); the host calls `step` again once they are done
 *    and the coroutine reads their results through `call`. After a restart the host starts a new
 *    execution of the same attempt and its code meets its entries again (a replay);
 *  - lifecycle hooks: th_hook_descriptor, an array at the end of th_plugin_descriptor (1.2);
 *  - middleware (`next()`): another array there, driven one stage at a time with the
 *    start/step/destroy shape (a middleware suspends at next());
 *  - locals shared across plugins, triggering other tasks, metadata: new functions at the end of
 *    th_host_api, reached through th_run_info.host after checking its struct_size.
 */
#ifndef TASKHOST_PLUGIN_ABI_H
#define TASKHOST_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version this header describes. Tests override them to build deliberately incompatible
 * fixture plugins; nobody else should. */
#ifndef TASKHOST_ABI_MAJOR
#define TASKHOST_ABI_MAJOR 1
#endif
#ifndef TASKHOST_ABI_MINOR
#define TASKHOST_ABI_MINOR 6
#endif

#define TASKHOST_EXPORT __attribute__((visibility("default")))
#define TASKHOST_ABI_CAT2_(a, b) a##b
#define TASKHOST_ABI_CAT_(a, b) TASKHOST_ABI_CAT2_(a, b)
/* The entry symbol's name for this header's ABI major, e.g. taskhost_plugin_v1. */
#define TASKHOST_ENTRY_SYMBOL TASKHOST_ABI_CAT_(taskhost_plugin_v, TASKHOST_ABI_MAJOR)
#define TASKHOST_ENTRY_SYMBOL_PREFIX "taskhost_plugin_v"

/* A view of bytes owned by whoever handed it out (see OWNERSHIP above). */
typedef struct th_bytes {
  const char* data;
  size_t len;
} th_bytes;

/* Log levels, as numbers so the host can map them onto its own logger. */
enum {
  TH_LOG_DEBUG = 0,
  TH_LOG_INFO = 1,
  TH_LOG_WARN = 2,
  TH_LOG_ERROR = 3
};

/* Services the host offers to plugin code while a run executes. Grows at the end. */
typedef struct th_host_api {
  uint32_t struct_size;
  /* Writes one log line for the run `host_run` (from th_run_info). `attrs_json` is a JSON object
   * (may be empty bytes). Safe to call from the thread that runs `step`. */
  void (*log)(void* host_run, int level, const char* msg, size_t msg_len, const char* attrs_json,
              size_t attrs_len);
  /* --- ABI 1.1 --- */
  /* The run's cancellation signal: 0 while the attempt may go on; TH_CANCEL_* once the run was
   * cancelled or its attempt passed its max duration. Any thread. */
  int (*cancel_reason)(void* host_run);
  /* Blocks up to timeout_ms or until the signal fires; returns cancel_reason(). Any thread. */
  int (*wait_cancelled)(void* host_run, uint64_t timeout_ms);
  /* --- ABI 1.2: locals, values scoped to one run, shared by hooks and run across plugins --- */
  /* Stores `value` under `key`, replacing (and destroying) what was there. The host owns it from
   * now on and calls destroy(value) on an executor thread when the run ends or the key is set
   * again. `type` identifies the C++ type (the SDK uses the mangled name and size). Returns 0. */
  int (*local_set)(void* host_run, const char* key, const char* type, void* value, void (*destroy)(void*));
  /* Looks `key` up: TH_LOCAL_OK and *value set; TH_LOCAL_MISSING; or TH_LOCAL_TYPE_MISMATCH with
   * *stored_type set to the stored value's type (valid until the key is set again). */
  int (*local_get)(void* host_run, const char* key, const char* type, void** value, const char** stored_type);
  /* --- ABI 1.3: run metadata, persisted with the run and shown in its JSON while it executes --- */
  /* Applies one operation, a JSON object {"op": "set"|"append"|"increment"|"remove"|"replace",
   * "key": "...", "value": ...}. Returns 0, or 1 and writes why (NUL-terminated, truncated to
   * err_cap) into err when it was refused (e.g. the metadata would pass 256 KB). */
  int (*metadata_update)(void* host_run, const char* op_json, size_t op_len, char* err, size_t err_cap);
  /* Copies the run's metadata (a JSON object, "{}" when unset) into buf when it fits in cap and
   * returns its length; call again with a larger buffer when the result is > cap. */
  size_t (*metadata_get)(void* host_run, char* buf, size_t cap);
  /* --- ABI 1.4: waits, child runs, wait tokens and steps (the run's journal) --- */
  /* Calls the host with a JSON request. Methods:
   *   "op"        {"seq": n | "key": "...", "kind": ..., args} → {"key", "done", "result"?}
   *               kinds: duration {"ms" | "untilMs"}, task {"task","payload","options"},
   *               batch {"task","items":[{"payload","options"}]}, token {"id"}, step {"name"},
   *               trigger / batch_trigger (as task / batch, not awaited), create_token {"options"},
   *               complete_token {"id","data"}. An entry already in the journal answers with
   *               its recorded result (a replay); a new one is recorded.
   *   "step_done" {"key", "name", "result"}                  → {}
   * Returns 0 and sets *response (JSON), or non-zero with *response = {"message": ...}.
   * *response stays valid until the next call for the same host_run. Only from `step` of a task
   * (not from hooks or middleware). */
  int (*call)(void* host_run, const char* method, const char* request, size_t request_len, th_bytes* response);
} th_host_api;

enum { TH_LOCAL_OK = 0, TH_LOCAL_MISSING = 1, TH_LOCAL_TYPE_MISMATCH = 2 };

/* Why an attempt was told to stop (th_host_api.cancel_reason). */
enum {
  TH_CANCEL_NONE = 0,
  TH_CANCEL_CANCELED = 1, /* the run was cancelled (API, CLI) */
  TH_CANCEL_TIMED_OUT = 2 /* the attempt ran past its max duration */
};

/* A task's own retry policy (ABI 1.1). Unset fields take the deployment's values. */
typedef struct th_retry_options {
  int32_t max_attempts;   /* 0 = not set; else 1..250 */
  int32_t randomize;      /* -1 = not set, 0 = false, 1 = true */
  double factor;          /* 0 = not set; else >= 1 */
  int64_t min_timeout_ms; /* -1 = not set */
  int64_t max_timeout_ms; /* -1 = not set */
} th_retry_options;

/* What the host tells the plugin about one attempt of one run. Host-owned, read-only. */
typedef struct th_run_info {
  uint32_t struct_size;
  const char* run_id;       /* "run_..." */
  const char* task_id;
  uint32_t attempt;         /* 1-based attempt number */
  th_bytes payload;         /* UTF-8 JSON */
  const th_host_api* host;
  void* host_run;           /* opaque; pass back to host callbacks */
} th_run_info;

/* The state of one attempt inside the plugin (for coroutine tasks: the coroutine frame). */
typedef struct th_execution th_execution;

typedef enum th_step_status {
  TH_STEP_COMPLETED = 0, /* out = output JSON */
  TH_STEP_FAILED = 1,    /* out = error JSON: {"message": str, "name"?: str, "stackTrace"?: str,
                            "retry"?: false} */
  TH_STEP_SUSPENDED = 2  /* the run awaits journal entries (ABI 1.4): out = {"waitFor": [keys]};
                            the host calls step again once every one of them is done. */
} th_step_status;

typedef struct th_task_descriptor {
  uint32_t struct_size;
  const char* id;          /* unique task id, kebab-case by convention */
  const char* description; /* may be NULL */
  void* user_data;         /* passed back to start */
  /* Creates the execution of one attempt. Returns 0 on success and sets *out; on failure returns
   * non-zero and sets *error to error JSON that stays valid while the library is loaded or until
   * the next call to start on this task from the same thread. Must not throw. */
  int (*start)(void* user_data, const th_run_info* run, th_execution** out, th_bytes* error);
  /* Runs the execution until it completes, fails, or (later ABI) suspends. Must not throw. */
  th_step_status (*step)(th_execution* execution, th_bytes* out);
  /* Frees the execution. Called exactly once per successful start. Must not throw. */
  void (*destroy)(th_execution* execution);
  /* --- ABI 1.1 --- */
  th_retry_options retry;
  uint64_t max_duration_ms; /* 0 = not set; else >= 5000 */
  /* --- ABI 1.5 --- */
  const char* queue_name;          /* NULL or "": the task's own queue; else 1..128 chars of
                                      [A-Za-z0-9_.-], shared by every task that names it */
  int32_t queue_concurrency_limit; /* 0: not set (a zero-filled descriptor sets nothing);
                                      1..100000: the limit; anything else is refused */
  /* --- ABI 1.6 --- */
  /* `scheduled` lies in what was 1.5's tail padding, so the host also requires abi_minor >= 6
   * (not only a large enough struct_size) before it reads any of these three. */
  int32_t scheduled;             /* 0: an ordinary task; 1: a scheduled task — only scheduled
                                    tasks accept schedules, and their payload is the schedule
                                    payload; anything else is refused */
  const char* schedule_cron;     /* NULL or "": no declarative schedule (schedules come from the
                                    deployment YAML or the API); else a cron expression, 5 fields
                                    or 6 with leading seconds, <= 256 chars; only with scheduled */
  const char* schedule_timezone; /* NULL or "": UTC; else an IANA zone name ("Europe/London"),
                                    <= 64 chars; only with schedule_cron */
} th_task_descriptor;

/* Lifecycle hooks (ABI 1.2), in Trigger.dev's vocabulary. */
typedef enum th_hook_kind {
  TH_HOOK_INIT = 0,
  TH_HOOK_ON_START = 1,          /* first attempt only */
  TH_HOOK_ON_START_ATTEMPT = 2,  /* every attempt */
  TH_HOOK_ON_SUCCESS = 3,
  TH_HOOK_ON_FAILURE = 4,        /* no retry follows; also CANCELED and TIMED_OUT runs */
  TH_HOOK_ON_COMPLETE = 5,       /* after on_success / on_failure */
  TH_HOOK_CLEANUP = 6,           /* end of every attempt */
  TH_HOOK_CATCH_ERROR = 7,       /* a retryable failure: may answer how to retry */
  TH_HOOK_ON_WAIT = 8,           /* the run suspended on a wait; input has "wait": {"kinds"} */
  TH_HOOK_ON_RESUME = 9,         /* the wait completed; the run goes on */
  TH_HOOK_ON_CANCEL = 10,        /* an executing run was cancelled */
  TH_HOOK_KIND_COUNT = 11
} th_hook_kind;

/* A lifecycle hook (ABI 1.2): global (task_id NULL: every task of the deployment) or a task's own.
 * `call` gets a JSON object: {"payload", "attempt", "output"?, "error"?, "ok"?, "status"?}.
 * It returns 0 and sets *out to its answer (JSON; `null` for no answer — only catch_error
 * answers), or non-zero and sets *out to error JSON. *out stays valid until the next call of
 * `call` on the same thread. Must not throw. */
typedef struct th_hook_descriptor {
  uint32_t struct_size;
  int32_t kind;          /* th_hook_kind */
  const char* name;      /* for logs: "audit", or the task id for a task's own hook */
  const char* task_id;   /* NULL: global */
  void* user_data;
  int (*call)(void* user_data, const th_run_info* run, th_bytes input, th_bytes* out);
} th_hook_descriptor;

/* A middleware (ABI 1.2): wraps every stage of an attempt. The host starts it, then calls `step`
 * with an empty input; the middleware runs until it awaits next() (TH_STEP_SUSPENDED, out =
 * {"await":"next"}), returns without calling next() or throws (TH_STEP_FAILED). Once the inner
 * stages are done, the host calls `step` again with their outcome, {"ok":true} or
 * {"ok":false,"error":{...}}; the middleware finishes (TH_STEP_COMPLETED) or throws
 * (TH_STEP_FAILED). `destroy` is called once per successful start. */
typedef struct th_middleware_descriptor {
  uint32_t struct_size;
  const char* name;      /* what deployments list under `middleware:` */
  void* user_data;
  int (*start)(void* user_data, const th_run_info* run, th_execution** out, th_bytes* error);
  th_step_status (*step)(th_execution* execution, th_bytes input, th_bytes* out);
  void (*destroy)(th_execution* execution);
} th_middleware_descriptor;

typedef struct th_plugin_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* name;        /* plugin name */
  const char* version;     /* plugin version, free text (semver recommended) */
  const char* build_info;  /* compiler and SDK version, for diagnostics */
  const th_task_descriptor* tasks;
  uint32_t task_count;
  uint32_t task_descriptor_size; /* sizeof(th_task_descriptor) as the plugin was built */
  /* --- ABI 1.2 --- */
  const th_hook_descriptor* hooks;
  uint32_t hook_count;
  uint32_t hook_descriptor_size; /* sizeof(th_hook_descriptor) as the plugin was built */
  const th_middleware_descriptor* middleware;
  uint32_t middleware_count;
  uint32_t middleware_descriptor_size;
} th_plugin_descriptor;

typedef const th_plugin_descriptor* (*th_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* TASKHOST_PLUGIN_ABI_H */
