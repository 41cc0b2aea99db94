// Where runs live: SQLite on disk (WAL), with the runs that are still going kept in memory.
//
// The model: every run that is not final is "hot" — held in memory, read and changed under one
// mutex by the actors that drive it — except a WAITING one that its supervisor let go (let_go:
// it keeps no execution of it in memory either), which leaves memory once committed (it may wait
// for months) and is loaded back by whatever completes its wait (update_unfinished). A change marks the run dirty; the store's writer (one actor,
// actors/store_writer.cpp) calls flush(), which writes every dirty run in ONE transaction (group
// commit) and then calls the waiters of what it committed. A new run is acknowledged (its
// `created` callback) only after the transaction holding it has committed, and only then is it
// handed to its supervisor. Once a final run is committed it leaves memory; reads of it go to
// SQLite. After a crash, what was not committed never happened: the run it belonged to was either
// never acknowledged, or is found at start in its last committed state and recovered.
//
// Example:
//
//   taskhost::run_store store({.path = "/tmp/runs.db"});
//   store.set_notify([&] { /* wake the writer, which calls store.flush() */ });
//   store.create(std::move(rec), [](taskhost::create_result r) { /* committed: r.run_id */ });
//   store.update(id, [](taskhost::run_record& r) { r.status = taskhost::run_status::executing; });
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/ids.hpp"
#include "runtime/run.hpp"

namespace taskhost {

namespace sqlite {
class db;
}

/// The store could not be opened or is unusable; what() names the path and SQLite's message.
class store_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct store_options {
  std::string path = ":memory:";  ///< a file, or ":memory:" (nothing survives the process)
  bool full_durability = false;   ///< synchronous=FULL (survives power loss) instead of NORMAL
};

/// The outcome of create(): committed (status 200, maybe an earlier run for the same idempotency
/// key: cached), or refused (503 when the store could not commit, with the reason).
struct create_result {
  create_result(int status = 200, std::string run_id = {}, bool cached = false, std::string error = {})
      : status(status), run_id(std::move(run_id)), cached(cached), error(std::move(error)) {}
  int status = 200;
  std::string run_id;
  bool cached = false;
  std::string error;
  /// A new run's answer (not cached): how many triggers its commit answered, and its payload as
  /// committed (JSON text; for the first answer of the run only). Whoever starts the run at once
  /// uses them: see deployment_runtime::create_run.
  size_t committed_with = 0;
  std::string payload_json;
};

struct run_list_query {
  std::vector<run_status> statuses;       ///< any of; empty = all
  std::vector<std::string> task_ids;      ///< any of
  std::vector<std::string> tags;          ///< runs with any of these tags
  std::optional<time_point> created_from; ///< inclusive
  std::optional<time_point> created_to;   ///< inclusive
  std::string schedule_id;                ///< runs of this schedule; "" = any
  std::string batch_id;                   ///< runs triggered in this batch; "" = any
  size_t page_size = 25;
  std::string after;                      ///< cursor: runs older than it
  std::string before;                     ///< cursor: runs newer than it
};

/// A wait token (ctx.create_token, POST /api/v1/waitpoints/tokens): WAITING until completed or
/// timed out. Kept in SQLite only (tokens are few next to runs), written at once.
struct token_record {
  std::string id;                       ///< "waitpoint_..."
  std::string status = "WAITING";       ///< WAITING | COMPLETED | TIMED_OUT
  time_point created_at{};
  std::optional<time_point> completed_at;
  std::optional<time_point> timeout_at;
  std::string idempotency_key;          ///< "" = none
  std::optional<time_point> idempotency_expires_at;
  std::vector<std::string> tags;
  std::optional<json> output;           ///< the data it was completed with
};

/// A queue's state set through the API (pause, concurrency override); it survives restarts.
struct queue_state_record {
  std::string name;
  bool paused = false;
  std::optional<int> override_limit;
  std::optional<int64_t> overridden_at_ms;
};

/// A cron schedule (see runtime/scheduler.hpp), as kept in the store.
struct schedule_record {
  std::string id;                    ///< "sched_..."
  std::string type = "IMPERATIVE";   ///< IMPERATIVE (the API) | DECLARATIVE (the YAML or the task definition)
  std::string task_id;
  std::string cron;
  std::string timezone = "UTC";
  std::string external_id;           ///< "" = none
  std::string dedup_key;             ///< IMPERATIVE: the API's deduplicationKey; DECLARATIVE: its key; "" = none
  bool active = true;
  time_point created_at{};
  time_point updated_at{};
  /// Occurrences after this instant count: when it was created, last changed or activated. An
  /// occurrence at or before it never fires (no backfill).
  time_point since{};
  /// The latest occurrence that has a run. Moved only by the commit of that run.
  std::optional<time_point> last_occurrence;
};

/// An API key as kept in the store: its SHA-256, never the key (runtime/api_keys.hpp).
struct api_key_record {
  std::string id;                   ///< "key_..."
  std::string name;                 ///< "" = none
  std::string hash;                 ///< SHA-256 of the key, 64 lower-case hex digits
  std::string display;              ///< the key's first 12 characters and "…"
  time_point created_at{};
  std::optional<time_point> revoked_at;
};

/// Which tokens list_tokens returns (GET /api/v1/waitpoints/tokens): every filter that is set
/// must match.
struct token_list_query {
  std::vector<std::string> statuses;      ///< any of (WAITING, COMPLETED, TIMED_OUT); empty = all
  std::string idempotency_key;            ///< "" = any
  std::vector<std::string> tags;          ///< tokens with any of these tags
  std::optional<time_point> created_from; ///< inclusive
  std::optional<time_point> created_to;   ///< inclusive
  size_t limit = 25;
  std::string after;                      ///< the id of the last token seen: tokens older than it
};

/// A packet: a payload the SDK offloaded (128 KiB or more; trigger-rest-api.md §4), uploaded to a
/// signed URL and then named by a trigger's `storagePath`. Kept in SQLite until it expires: at
/// its TTL if never used, shortly after the trigger that used it is recorded.
struct packet_record {
  std::string storage_path;
  std::string content_type;   ///< application/super+json | application/json | text/plain
  std::string data;           ///< the packet, as uploaded
  time_point created_at{};
  time_point expires_at{};
  std::optional<time_point> used_at;
};

/// A batch made through the API in two phases (POST /api/v3/batches, then its NDJSON items). Batches
/// made by a task (ctx.batch_trigger) have no record: their runs carry the batch id.
struct batch_record {
  std::string id;                       ///< "batch_..."
  int64_t run_count = 0;                ///< items expected: indexes 0..run_count-1
  std::vector<std::string> task_ids;    ///< taskIdentifiers the items may name; empty = any task
  std::string status = "PENDING";       ///< PENDING until every index has its run, then COMPLETED
  time_point created_at{};
  time_point updated_at{};
  std::optional<time_point> sealed_at;  ///< when the last index got its run
  std::string idempotency_key;          ///< the body's idempotencyKey; "" = none
  std::string idempotency_key_user;     ///< idempotencyKeyOptions.key, for display
  std::optional<time_point> idempotency_expires_at;
  bool sealed() const { return sealed_at.has_value(); }
};

/// The x-trigger-request-idempotency-key of a request that made a run or a batch, and what it
/// made: a retry of the request (same key, same scope) is answered with the same id.
struct request_key_record {
  std::string scope;     ///< "trigger:<task id>" | "batch"
  std::string key;
  std::string id;        ///< the run or batch the request made (or found, when cached)
  bool cached = false;   ///< the original answer's isCached
  time_point created_at{};
  time_point expires_at{};
};

/// How long a request's idempotency key is kept (Trigger.dev's SDK retries within seconds; a
/// restart in between must not make a second run). Expired keys are purged by the writer.
constexpr std::chrono::minutes request_key_ttl{15};

/// What completing (or timing out) a token did.
enum class token_change { changed, unknown, already_final };

struct run_list_page {
  std::vector<run_record> runs;           ///< newest first; without payload, output and logs
  std::string next;                       ///< cursor for the next (older) page; "" = none
  std::string previous;                   ///< cursor for the previous (newer) page; "" = none
};

/// Rejects a cursor that this store did not make. Returns false if `cursor` is malformed.
bool valid_list_cursor(const std::string& cursor);

class run_store {
public:
  /// Opens or creates the store, migrating its schema forward. Throws store_error: not SQLite,
  /// corrupt, written by a newer taskhost, or the place cannot be written.
  explicit run_store(store_options opts);
  ~run_store();
  run_store(const run_store&) = delete;
  run_store& operator=(const run_store&) = delete;

  const store_options& options() const { return opts_; }

  /// Called (on any thread, without the store's lock) whenever there is something to flush.
  void set_notify(std::function<void()> notify);

  /// Records a new run. If it carries an idempotency key that a live run of the same task holds
  /// (not expired, not released by a failure), nothing is recorded and `created` gets that run's
  /// id with cached = true. `created` is called exactly once, after the commit, from the writer's
  /// thread (or at once for a cached run already committed).
  void create(run_record r, std::function<void(create_result)> created);

  /// Calls `f` once everything changed before this call is committed (true), or the commit failed
  /// (false, with the reason).
  void after_commit(std::function<void(bool ok, const std::string& error)> f);

  std::optional<run_record> get(const std::string& id) const;
  /// Calls `f` with the run without copying it (under the store's lock). False if unknown.
  bool read(const std::string& id, const std::function<void(const run_record&)>& f) const;
  /// Applies `f` to the run under the store's lock, stamps updated_at and marks it for the next
  /// commit. A final run is loaded back from SQLite for this. False if unknown.
  bool update(const std::string& id, const std::function<void(run_record&)>& f);

  /// Like read() and update(), for a run in memory that is not final: false (and `f` not called)
  /// for a final, unknown or cold (WAITING and committed) run. Never touches SQLite: this is
  /// what the actors use on their hot path (a run that executes is always in memory).
  bool read_live(const std::string& id, const std::function<void(const run_record&)>& f) const;
  bool update_live(const std::string& id, const std::function<void(run_record&)>& f);
  /// The run is WAITING and nothing in memory drives it: it may leave memory once committed (and
  /// does again each time it is loaded back while still WAITING). No effect on other runs.
  void let_go(const std::string& id);
  /// Like update(), for a run that is not final, in memory or cold (loaded back for the change):
  /// false, and `f` not called, for a final or unknown run.
  bool update_unfinished(const std::string& id, const std::function<void(run_record&)>& f);

  run_list_page list(const run_list_query& q) const;

  /// Called (on the thread that made the change, without the store's lock) each time a run turns
  /// final. Set before runs flow.
  void set_final_listener(std::function<void(const std::string& id)> f);
  /// The runs triggered by `parent_id` that are not final yet, as (id, task id), in memory or cold.
  std::vector<std::pair<std::string, std::string>> live_children(const std::string& parent_id) const;
  /// The runs of a batch, oldest first (without payload, output and logs).
  std::vector<run_record> batch_runs(const std::string& batch_id) const;

  /// Records a token at once. If one with the same idempotency key exists and its key has not
  /// expired, that one is returned and `cached` set. Throws store_error when it cannot commit.
  token_record create_token(token_record t, bool& cached);
  /// The token; a WAITING token past its timeout is timed out first.
  std::optional<token_record> get_token(const std::string& id);
  /// WAITING → COMPLETED with `output`.
  token_change complete_token(const std::string& id, const json& output);
  /// WAITING → TIMED_OUT if its timeout has passed (unchanged: already_final or unknown).
  token_change time_out_token(const std::string& id);
  /// Tokens newest first, filtered; at most q.limit of them.
  std::vector<token_record> list_tokens(const token_list_query& q);

  /// Clears the idempotency key `key` from every run of `task_id` that holds it, in memory and on
  /// disk (idempotencyKeys.reset): the next trigger with that key makes a new run. False if no run
  /// of the task has it. Throws store_error when the change cannot be written.
  bool reset_idempotency_key(const std::string& task_id, const std::string& key);

  /// The deployment's secret called `name` (the key that signs the URLs it hands out), made by
  /// `make` and recorded the first time it is asked for; the same bytes on every later start.
  /// Throws store_error.
  std::string secret(const std::string& name, const std::function<std::string()>& make);
  /// Records a packet at once. Uploading to the same storage path again replaces its bytes while
  /// no trigger has used it (afterwards the upload changes nothing). Throws store_error.
  void save_packet(const packet_record& p);
  /// The packet at `storage_path`, unless unknown or expired at `now`. Throws store_error.
  std::optional<packet_record> get_packet(const std::string& storage_path, time_point now);
  /// A recorded run took its payload from the packet: it now expires `grace` after `now` (so
  /// that a retried request still finds it), or at its TTL if that is sooner. Throws store_error.
  void packet_used(const std::string& storage_path, time_point now, std::chrono::milliseconds grace);
  /// Deletes the packets expired at `now`. Returns how many. Throws store_error.
  size_t purge_packets(time_point now);

  /// Records an API batch — and `rk`, the request's idempotency key, if given — in one transaction.
  /// If a batch holds the same idempotency key and its key has not expired, no batch is recorded:
  /// that one is returned with `cached` set (and `rk` recorded for it). Throws store_error.
  batch_record create_batch(batch_record b, const request_key_record* rk, bool& cached);
  std::optional<batch_record> get_batch(const std::string& id) const;
  /// The indexes of an API batch that have their run, as (index, run id), by index.
  std::vector<std::pair<int64_t, std::string>> batch_items(const std::string& id) const;
  /// In one transaction: records items whose run already existed (the item's idempotency key
  /// matched an earlier run; the runs created for items record themselves as they commit), and
  /// seals the batch (COMPLETED) if `seal`. Throws store_error.
  void record_batch_items(const std::string& id, const std::vector<std::pair<int64_t, std::string>>& existing_runs, bool seal,
                          time_point now);

  /// The id a request with this idempotency key made, if the key is known and not expired at `now`.
  std::optional<request_key_record> find_request_key(const std::string& scope, const std::string& key, time_point now) const;
  /// Records a request's key at once (replacing an expired one). Throws store_error.
  void save_request_key(const request_key_record& rk);
  /// Deletes the request keys expired at `now`. Returns how many.
  size_t purge_request_keys(time_point now);

  /// Queue states recorded by save_queue_state, by name.
  std::vector<queue_state_record> queue_states() const;
  /// Records a queue's state at once. Throws store_error when it cannot commit.
  void save_queue_state(const queue_state_record& q);

  /// Every schedule, oldest first.
  std::vector<schedule_record> schedules() const;
  /// Records a schedule at once (insert, or replace every field but last_occurrence). Throws
  /// store_error when it cannot commit.
  void save_schedule(const schedule_record& s);
  /// False if there was no such schedule. Its runs stay. Throws store_error when it cannot commit.
  bool delete_schedule(const std::string& id);

  /// Every API key, revoked ones too, oldest first — read from SQLite, so that keys the CLI
  /// (api_key_table) writes while this store is open show. Throws store_error.
  std::vector<api_key_record> api_keys() const;

  /// The runs that were not final when the store was opened (the previous process stopped with
  /// them in flight), oldest first. Recovery changes them with update().
  std::vector<std::string> unfinished_runs() const;

  /// Writes every dirty run in one transaction. Returns false if the commit failed (disk full,
  /// I/O error): new runs in it are refused (503), changes to existing runs stay dirty for the
  /// next try. Called by the writer only.
  bool flush();
  /// True if there is something to flush.
  bool dirty() const;

  /// Deletes final runs that finished before `cutoff`, with their tags and logs. Returns how many.
  size_t purge_finished_before(time_point cutoff);
  /// Deletes wait tokens that were completed or timed out before `cutoff` (created before it too),
  /// unless their idempotency key is still in force at `now` or a WAITING run's journal still
  /// waits for them (a completion it has not yet recorded). A token stored WAITING whose timeout
  /// passed before `cutoff` counts as timed out then (nothing waited for it to record it); one
  /// without a timeout is never deleted. Returns how many.
  size_t purge_tokens_before(time_point cutoff, time_point now);
  /// Deletes API batches (with their items) created before `cutoff` that no run carries any more
  /// (their runs were purged, or they never got one), unless their idempotency key is still in
  /// force at `now`. Returns how many.
  size_t purge_batches_before(time_point cutoff, time_point now);

  struct stats_t {
    size_t hot_runs = 0;       ///< in memory (not final, or not yet committed)
    uint64_t commits = 0;
    uint64_t rows_written = 0;
    uint64_t failed_commits = 0;
    uint64_t evictions = 0;    ///< final runs that left memory after their commit
  };
  stats_t stats() const;

private:
  struct hot_run;
  struct db_state;

  enum class reach { live, unfinished, any };
  /// update() (any: a final or cold run is loaded back), update_unfinished() and update_live().
  bool change(const std::string& id, const std::function<void(run_record&)>& f, reach how);
  using hot_map = std::unordered_map<std::string, hot_run, run_id_hash>;
  /// Queues a hot run for the next flush (once until it is serialized).
  void mark_dirty_locked(hot_map::value_type& run);
  /// flush() of `count` dirty runs in one transaction; false (and why) if it did not commit.
  bool commit_slice(hot_map::value_type* const* runs, size_t count, std::string& error);
  /// The notify to call (after unlocking) if the writer is not already woken; else empty.
  std::function<void()> wake_locked();
  /// Drops idem_'s entry for `r`'s idempotency key if it names `r` (the run leaves memory).
  void forget_key_locked(const run_record& r);
  std::optional<run_record> load_locked(const std::string& id, bool with_logs) const;

  store_options opts_;
  std::unique_ptr<db_state> db_;
  mutable std::mutex mu_;
  hot_map hot_;  ///< see run_id_hash
  std::unordered_map<std::string, std::string> idem_;  ///< task '\n' key → run id, for hot runs
  /// Runs changed since their last commit, in the order they changed. Their entries in hot_:
  /// a run marked dirty leaves hot_ only once serialized (evictions and let_go() need it clean;
  /// a failed insert is taken out of this list first), so these stay valid until then.
  std::vector<hot_map::value_type*> dirty_;
  std::vector<std::function<void(bool, const std::string&)>> commit_waiters_;
  std::function<void()> notify_;
  std::function<void(const std::string&)> final_listener_;
  bool notified_ = false;
  std::vector<std::string> unfinished_;
  stats_t stats_;
};

/// The api_keys table of a store file, for `taskhost keys ...`: its own SQLite connection, and
/// nothing else of the store. A taskhost may be running on the same file meanwhile — it holds
/// the store's lock file, which this does not take; SQLite's WAL lets both in, and a write waits
/// up to 5 s for the server's. The server re-reads the table (run_store::api_keys) while it runs.
///
///   taskhost::api_key_table t("/srv/app/.taskhost/runs.db");
///   t.insert({.id = taskhost::new_id("key_"), .hash = ..., .display = ..., .created_at = now});
class api_key_table {
public:
  /// Opens the store at `path`. A file that does not exist yet, or whose schema predates API keys,
  /// is first created or migrated as `taskhost run` would — which needs that no taskhost holds it
  /// (otherwise store_error says to stop it). Throws store_error (also for ":memory:").
  explicit api_key_table(const std::string& path);
  ~api_key_table();
  api_key_table(const api_key_table&) = delete;
  api_key_table& operator=(const api_key_table&) = delete;

  /// Records a key. Throws store_error.
  void insert(const api_key_record& k);
  /// Every key, revoked ones too, oldest first. Throws store_error.
  std::vector<api_key_record> list();
  enum class revoke_result { revoked, already_revoked, unknown };
  /// Marks the key revoked at `now`. Throws store_error.
  revoke_result revoke(const std::string& id, time_point now);

private:
  std::string path_;
  std::unique_ptr<sqlite::db> db_;
};

}  // namespace taskhost
