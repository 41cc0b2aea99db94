#include "runtime/run_store.hpp"

#include <sys/file.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <unordered_set>

#include "runtime/log.hpp"
#include "runtime/sqlite.hpp"

namespace taskhost {
namespace {

// Forward migrations: entry i takes the schema from version i to i + 1. Never edit one that has
// shipped; append a new one.
// Times are stored as epoch microseconds (the API shows milliseconds; measurements need more).
const std::vector<std::string_view> migrations = {
    R"sql(
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  delay_until INTEGER,
  expires_at INTEGER,
  retry_at INTEGER,
  ttl TEXT,
  ttl_ms INTEGER NOT NULL DEFAULT 0,
  idempotency_key TEXT,
  idempotency_key_user TEXT,
  idempotency_expires_at INTEGER,
  max_attempts INTEGER NOT NULL DEFAULT 0,
  max_duration_ms INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  payload_type TEXT NOT NULL,
  output TEXT,
  error TEXT,
  metadata TEXT,
  tags TEXT NOT NULL DEFAULT '[]',
  attempts TEXT NOT NULL DEFAULT '[]',
  log_bytes INTEGER NOT NULL DEFAULT 0,
  logs_truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs(created_at, id);
CREATE INDEX runs_unfinished ON runs(status) WHERE finished_at IS NULL;
CREATE INDEX runs_by_finished ON runs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_by_idempotency_key ON runs(task_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE run_tags (tag TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (tag, run_id)) WITHOUT ROWID;
CREATE TABLE run_logs (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  attributes TEXT,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
)sql",
    // 2: runs triggered by runs, the wait journal, wait tokens.
    R"sql(
ALTER TABLE runs ADD COLUMN parent_id TEXT;
ALTER TABLE runs ADD COLUMN root_id TEXT;
ALTER TABLE runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN batch_id TEXT;
ALTER TABLE runs ADD COLUMN journal TEXT;
CREATE INDEX runs_by_batch ON runs(batch_id, created_at) WHERE batch_id IS NOT NULL;
CREATE INDEX runs_by_parent ON runs(parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE waitpoint_tokens (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  completed_at INTEGER,
  timeout_at INTEGER,
  idempotency_key TEXT,
  idempotency_expires_at INTEGER,
  tags TEXT NOT NULL DEFAULT '[]',
  output TEXT
);
CREATE INDEX waitpoint_tokens_by_created ON waitpoint_tokens(created_at, id);
CREATE INDEX waitpoint_tokens_by_key ON waitpoint_tokens(idempotency_key) WHERE idempotency_key IS NOT NULL;
)sql",
    // 3: queues: a run's queue, concurrency key and priority; queue state set through the API.
    R"sql(
ALTER TABLE runs ADD COLUMN queue TEXT;
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
ALTER TABLE runs ADD COLUMN priority_ms INTEGER NOT NULL DEFAULT 0;
CREATE TABLE queue_state (
  name TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0,
  concurrency_override INTEGER,
  overridden_at INTEGER
) WITHOUT ROWID;
)sql",
    // 4: schedules (cron), and the schedule a run was triggered by. A scheduled run's insert also
    // moves its schedule's last_occurrence, in the same transaction: an occurrence is recorded as
    // fired exactly when its run exists.
    R"sql(
ALTER TABLE runs ADD COLUMN schedule_id TEXT;
CREATE INDEX runs_by_schedule ON runs(schedule_id, created_at) WHERE schedule_id IS NOT NULL;
CREATE TABLE schedules (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  task_id TEXT NOT NULL,
  cron TEXT NOT NULL,
  timezone TEXT NOT NULL,
  external_id TEXT,
  dedup_key TEXT,
  active INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  since INTEGER NOT NULL,
  last_occurrence INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX schedules_by_key ON schedules(type, dedup_key) WHERE dedup_key IS NOT NULL;
)sql",
    // 5: API keys (`taskhost keys create`): the SHA-256 of each key, never the key. Written by the
    // CLI through its own connection (api_key_table) while a taskhost may run on the file; a
    // revoked key keeps its row (revoked_at), so that a store that ever had a key keeps requiring one.
    R"sql(
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  name TEXT,
  hash TEXT NOT NULL UNIQUE,
  display TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
)sql",
    // 6: packets (payloads the SDK offloads and uploads to a signed URL) and the deployment's
    // secrets (the key that signs those URLs and the wait tokens' callback URLs). Packets are
    // BLOBs in a rowid table (large rows do not belong in a WITHOUT ROWID b-tree).
    R"sql(
CREATE TABLE packets (
  storage_path TEXT PRIMARY KEY,
  content_type TEXT NOT NULL,
  data BLOB NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE INDEX packets_by_expiry ON packets(expires_at);
CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
)sql",
    // 7: batches made through the API in two phases (the record, then its NDJSON items): the
    // batch, which run each index got (written with the run's insert, or with the batch's seal for
    // an item whose idempotency key found an earlier run), and the request idempotency keys
    // (x-trigger-request-idempotency-key) of triggers and batch creations, kept for a while.
    R"sql(
CREATE TABLE batches (
  id TEXT PRIMARY KEY,
  run_count INTEGER NOT NULL,
  task_ids TEXT NOT NULL DEFAULT '[]',
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  sealed_at INTEGER,
  idempotency_key TEXT,
  idempotency_key_user TEXT,
  idempotency_expires_at INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX batches_by_idempotency_key ON batches(idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE batch_items (
  batch_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  run_id TEXT NOT NULL,
  PRIMARY KEY (batch_id, idx)
) WITHOUT ROWID;
CREATE TABLE request_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  id TEXT NOT NULL,
  cached INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX request_keys_by_expiry ON request_keys(expires_at);
)sql",
};

/// The first schema version with the api_keys table.
constexpr int64_t api_keys_schema_version = 5;

constexpr std::string_view run_columns =
    "id, task_id, status, created_at, updated_at, started_at, finished_at, delay_until, expires_at, retry_at, ttl, "
    "ttl_ms, idempotency_key, idempotency_key_user, idempotency_expires_at, max_attempts, max_duration_ms, "
    "payload_type, error, metadata, tags, attempts, log_bytes, logs_truncated, parent_id, root_id, depth, batch_id, "
    "journal, queue, concurrency_key, priority_ms, schedule_id";  // then payload, output

std::string dump(const json& j) {
  // The values no-op runs carry, without nlohmann's serializer (an allocation and a locale query
  // each time, on the writer's thread); the same text as it writes.
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: return std::to_string(j.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(j.get<uint64_t>());
    case json::value_t::object:
      if (j.empty()) return "{}";
      break;
    case json::value_t::array:
      if (j.empty()) return "[]";
      break;
    default: break;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<int64_t> opt_us(const std::optional<time_point>& t) {
  if (!t) return std::nullopt;
  return to_us(*t);
}

std::optional<time_point> opt_time(const std::optional<int64_t>& ms) {
  if (!ms) return std::nullopt;
  return from_us(*ms);
}

/// Reads the columns of `run_columns` (and payload, output after them when `full`).
run_record read_row(const sqlite::stmt& s, bool full) {
  run_record r;
  r.id = s.text(0);
  r.task_id = s.text(1);
  r.status = run_status_from_string(s.text(2)).value_or(run_status::system_failure);
  r.created_at = from_us(s.int64(3));
  r.updated_at = from_us(s.int64(4));
  r.started_at = opt_time(s.opt_int64(5));
  r.finished_at = opt_time(s.opt_int64(6));
  r.delay_until = opt_time(s.opt_int64(7));
  r.expires_at = opt_time(s.opt_int64(8));
  r.retry_at = opt_time(s.opt_int64(9));
  if (auto ttl = s.text(10); !ttl.empty()) r.set_rare().ttl = std::move(ttl);
  r.ttl_ms = s.int64(11);
  r.idempotency_key = s.text(12);
  r.idempotency_key_user = s.text(13);
  r.idempotency_expires_at = opt_time(s.opt_int64(14));
  r.max_attempts = static_cast<int>(s.int64(15));
  r.max_duration_ms = s.int64(16);
  r.payload_type = s.text(17);
  if (!s.is_null(18)) r.error = json::parse(s.text(18), nullptr, false);
  if (!s.is_null(19)) r.metadata = json::parse(s.text(19), nullptr, false);
  auto tags = json::parse(s.text(20), nullptr, false);
  if (tags.is_array())
    for (const auto& t : tags)
      if (t.is_string()) r.tags.push_back(t.get<std::string>());
  r.attempts = attempts_from_storage(json::parse(s.text(21), nullptr, false));
  r.log_bytes = static_cast<size_t>(s.int64(22));
  r.logs_truncated = s.int64(23) != 0;
  r.parent_id = s.text(24);
  r.root_id = s.text(25);
  r.depth = static_cast<int>(s.int64(26));
  r.batch_id = s.text(27);
  if (!s.is_null(28)) {
    r.journal = json::parse(s.text(28), nullptr, false);
    if (r.journal.is_discarded()) r.journal = nullptr;
  }
  r.queue = s.text(29);
  r.concurrency_key = s.text(30);
  r.priority_ms = s.int64(31);
  r.schedule_id = s.text(32);
  if (full) {
    r.payload = json::parse(s.text(33), nullptr, false);
    if (r.payload.is_discarded()) r.payload = nullptr;
    if (!s.is_null(34)) r.output = json::parse(s.text(34), nullptr, false);
  }
  return r;
}

std::vector<log_line> load_logs(sqlite::db& d, const std::string& run_id) {
  std::vector<log_line> out;
  auto ls = d.prepare("SELECT time, attempt, level, message, attributes FROM run_logs WHERE run_id = ? ORDER BY seq");
  ls.bind(1, run_id);
  while (ls.step())
    out.push_back({from_us(ls.int64(0)), static_cast<int>(ls.int64(1)), ls.text(2), ls.text(3),
                   ls.is_null(4) ? json() : json::parse(ls.text(4), nullptr, false)});
  return out;
}

std::string make_cursor(const run_record& r) { return "c" + std::to_string(to_us(r.created_at)) + "_" + r.id; }

bool parse_cursor(const std::string& c, int64_t& us, std::string& id) {
  if (c.size() < 4 || c[0] != 'c') return false;
  auto sep = c.find('_');
  if (sep == std::string::npos || sep < 2 || sep + 1 >= c.size()) return false;
  for (size_t i = 1; i < sep; ++i)
    if (!std::isdigit(static_cast<unsigned char>(c[i]))) return false;
  if (sep - 1 > 18) return false;
  us = std::stoll(c.substr(1, sep - 1));
  id = c.substr(sep + 1);
  return true;
}

}  // namespace

bool valid_list_cursor(const std::string& cursor) {
  int64_t us;
  std::string id;
  return parse_cursor(cursor, us, id);
}

struct run_store::hot_run {
  run_record r;
  bool committed = false;  ///< its row exists in SQLite
  bool dirty = false;      ///< changed since it was last taken into a transaction
  bool writing = false;    ///< taken into a transaction that has not ended yet
  bool cold_ok = false;    ///< WAITING and let go: may leave memory once committed
  uint32_t logs_persisted = 0;  ///< (32 bits: beside the flags, the node stays in its size class)
  /// Its row's rowid, once this process inserted it (0: unknown, the row is found by id).
  int64_t rowid = 0;
  std::vector<std::function<void(create_result)>> created;  ///< answered when its insert commits
};

struct run_store::db_state {
  std::unique_ptr<sqlite::db> writer;
  std::unique_ptr<sqlite::db> reader;  ///< == writer for ":memory:"
  std::mutex write_mu;
  std::mutex own_read_mu;
  std::mutex* read_mu = &own_read_mu;  ///< == &write_mu for ":memory:"
  sqlite::db& read_db() { return reader ? *reader : *writer; }
  int lock_fd = -1;
  ~db_state() {
    reader.reset();
    writer.reset();
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

run_store::run_store(store_options opts) : opts_(std::move(opts)), db_(std::make_unique<db_state>()) {
  const bool in_memory = opts_.path == ":memory:";
  const std::string& path = opts_.path;
  auto refuse = [&](const std::string& why) { throw store_error("store " + path + ": " + why); };
  if (!in_memory) {
    std::error_code ec;
    auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) {
      std::filesystem::create_directories(dir, ec);
      if (ec) refuse("cannot create its folder " + dir.string() + ": " + ec.message());
    }
    // One process per store: two would both "recover" the same runs.
    std::string lock_path = path + ".lock";
    db_->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db_->lock_fd < 0) refuse("cannot create " + lock_path + ": " + std::strerror(errno));
    if (::flock(db_->lock_fd, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {0};
      auto n = ::pread(db_->lock_fd, pid, sizeof pid - 1, 0);
      std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : std::string("?");
      holder.erase(holder.find_last_not_of(" \n") + 1);
      refuse("is in use by another taskhost process (pid " + holder + "; " + lock_path + " is locked)");
    }
    std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(db_->lock_fd, 0) != 0 || ::pwrite(db_->lock_fd, me.data(), me.size(), 0) < 0) {
      // the pid is only informative
    }
  }
  try {
    db_->writer = std::make_unique<sqlite::db>(path);
    auto& w = *db_->writer;
    // The first statement that reads the file is where a corrupt or foreign file shows.
    if (!in_memory) {
      auto st = w.prepare("PRAGMA journal_mode=WAL");
      st.step();
      if (st.text(0) != "wal") refuse("cannot switch to WAL mode (journal_mode is " + st.text(0) + ")");
    }
    w.exec(opts_.full_durability ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    // The writer's page cache: 4 MiB (SQLite's default is 2 MiB). When run ids were random,
    // every write landed on a random page of the id index and 16 MiB bought 15% more runs/s; with
    // time-ordered ids (new_run_id) the writes stay near the end of each index, and 4 MiB costs
    // the same CPU as 16 MiB while the peak memory of a 100k burst is about 15 MB lower.
    w.exec("PRAGMA cache_size=-4096");
    w.exec("CREATE TABLE IF NOT EXISTS taskhost_schema (version INTEGER NOT NULL)");
    int64_t version = 0;
    {
      auto st = w.prepare("SELECT version FROM taskhost_schema");
      if (st.step()) version = st.int64(0);
    }
    if (version > static_cast<int64_t>(migrations.size()))
      refuse("was written by a newer taskhost (store schema version " + std::to_string(version) +
             "; this taskhost knows versions up to " + std::to_string(migrations.size()) +
             "). Run the newer taskhost, or point store.path at another file.");
    for (auto v = version; v < static_cast<int64_t>(migrations.size()); ++v) {
      sqlite::transaction(w, [&] {
        w.exec(migrations[static_cast<size_t>(v)]);
        w.exec("DELETE FROM taskhost_schema");
        w.exec("INSERT INTO taskhost_schema(version) VALUES (" + std::to_string(v + 1) + ")");
      });
      if (version > 0) log::info("store migrated", {{"path", path}, {"from", v}, {"to", v + 1}});
    }
    if (in_memory) {
      db_->read_mu = &db_->write_mu;
    } else {
      db_->reader = std::make_unique<sqlite::db>(path, false);
      db_->reader->exec("PRAGMA query_only=1");
    }
    // Every run that was not final when the last process stopped is hot again.
    auto st = w.prepare("SELECT " + std::string(run_columns) +
                        ", payload, output FROM runs WHERE finished_at IS NULL ORDER BY created_at, id");
    while (st.step()) {
      hot_run h;
      h.r = read_row(st, true);
      if (is_final(h.r.status)) continue;
      h.committed = true;
      h.r.logs = load_logs(w, h.r.id);
      h.logs_persisted = static_cast<uint32_t>(h.r.logs.size());
      unfinished_.push_back(h.r.id);
      if (!h.r.idempotency_key.empty()) idem_[h.r.task_id + '\n' + h.r.idempotency_key] = h.r.id;
      hot_.emplace(h.r.id, std::move(h));
    }
  } catch (const sqlite::error& e) {
    std::string msg = e.what();
    if ((e.code() & 0xff) == 26 /*SQLITE_NOTADB*/ || (e.code() & 0xff) == 11 /*SQLITE_CORRUPT*/)
      msg += ". taskhost never recreates a store: move the file away to start with an empty one";
    refuse(msg);
  }
}

run_store::~run_store() {
  // A hot run's map node (its next pointer and this pair) stays in jemalloc's 768-byte size class:
  // a million queued runs are a million of these. 8 bytes more and each takes 896 (see run_record).
  static_assert(sizeof(void*) + sizeof(hot_map::value_type) <= 768, "a hot run outgrew its size class");
}

void run_store::set_notify(std::function<void()> notify) {
  std::lock_guard lock(mu_);
  notify_ = std::move(notify);
}

void run_store::forget_key_locked(const run_record& r) {
  if (r.idempotency_key.empty()) return;  // idem_ holds runs with a key only
  if (auto i = idem_.find(r.task_id + '\n' + r.idempotency_key); i != idem_.end() && i->second == r.id) idem_.erase(i);
}

void run_store::mark_dirty_locked(hot_map::value_type& run) {
  if (!run.second.dirty) {
    run.second.dirty = true;
    dirty_.push_back(&run);
  }
}

std::function<void()> run_store::wake_locked() {
  if (notified_) return {};
  notified_ = true;  // one wake-up until the writer's next flush gathers what is dirty
  return notify_;
}

void run_store::create(run_record r, std::function<void(create_result)> created) {
  std::function<void()> notify;
  std::optional<create_result> answer_now;
  {
    std::unique_lock lock(mu_);
    if (!r.idempotency_key.empty()) {
      const std::string k = r.task_id + '\n' + r.idempotency_key;
      const auto now = clock_type::now();
      auto usable = [&](run_status s, const std::optional<time_point>& expires) {
        return !releases_idempotency_key(s) && (!expires || *expires > now);
      };
      if (auto it = idem_.find(k); it != idem_.end()) {
        auto h = hot_.find(it->second);
        if (h != hot_.end() && usable(h->second.r.status, h->second.r.idempotency_expires_at)) {
          if (!h->second.committed) {
            h->second.created.push_back([created = std::move(created)](create_result res) {
              if (res.status == 200) res.cached = true;
              created(std::move(res));
            });
            return;
          }
          answer_now = create_result{200, h->second.r.id, true, {}};
        }
      }
      if (!answer_now && !idem_.count(k)) {
        std::lock_guard rl(*db_->read_mu);
        auto st = db_->read_db().prepare(
            "SELECT id, status, idempotency_expires_at FROM runs WHERE task_id = ? AND idempotency_key = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1");
        st.bind(1, r.task_id).bind(2, r.idempotency_key);
        if (st.step()) {
          auto s = run_status_from_string(st.text(1)).value_or(run_status::system_failure);
          if (usable(s, opt_time(st.opt_int64(2)))) answer_now = create_result{200, st.text(0), true, {}};
        }
      }
      if (!answer_now) idem_[k] = r.id;
    }
    if (!answer_now) {
      std::string id = r.id;
      hot_run h;
      h.r = std::move(r);
      h.created.push_back(std::move(created));
      auto [it, inserted] = hot_.emplace(id, std::move(h));
      mark_dirty_locked(*it);
      notify = wake_locked();
    }
  }
  if (answer_now) return created(std::move(*answer_now));
  if (notify) notify();
}

void run_store::after_commit(std::function<void(bool, const std::string&)> f) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    commit_waiters_.push_back(std::move(f));
    notify = wake_locked();
  }
  if (notify) notify();
}

std::optional<run_record> run_store::load_locked(const std::string& id, bool with_logs) const {
  std::lock_guard rl(*db_->read_mu);
  auto& d = db_->read_db();
  auto st = d.prepare("SELECT " + std::string(run_columns) + ", payload, output FROM runs WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  run_record r = read_row(st, true);
  if (with_logs) r.logs = load_logs(d, id);
  return r;
}

std::optional<run_record> run_store::get(const std::string& id) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = hot_.find(id); it != hot_.end()) return it->second.r;
  }
  // Not hot: final and committed (runs leave memory only after their commit), or unknown.
  return load_locked(id, true);
}

bool run_store::read(const std::string& id, const std::function<void(const run_record&)>& f) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = hot_.find(id); it != hot_.end()) {
      f(it->second.r);
      return true;
    }
  }
  auto r = load_locked(id, true);
  if (!r) return false;
  f(*r);
  return true;
}

bool run_store::change(const std::string& id, const std::function<void(run_record&)>& f, reach how) {
  std::function<void()> notify;
  bool turned_final = false;
  {
    std::lock_guard lock(mu_);
    auto it = hot_.find(id);
    if (it == hot_.end()) {
      if (how == reach::live) return false;
      auto r = load_locked(id, true);  // final or waiting, and committed: back into memory for this change
      if (!r) return false;
      if (how == reach::unfinished && is_final(r->status)) return false;
      hot_run h;
      h.r = std::move(*r);
      h.committed = true;
      h.cold_ok = h.r.status == run_status::waiting;  // it was let go before it left
      h.logs_persisted = static_cast<uint32_t>(h.r.logs.size());
      it = hot_.emplace(id, std::move(h)).first;
    } else if (how != reach::any && is_final(it->second.r.status)) {
      return false;
    }
    const bool was_final = is_final(it->second.r.status);
    f(it->second.r);
    if (it->second.r.status != run_status::waiting) it->second.cold_ok = false;
    turned_final = !was_final && is_final(it->second.r.status) && final_listener_;
    it->second.r.updated_at = clock_type::now();
    mark_dirty_locked(*it);
    notify = wake_locked();
  }
  if (notify) notify();
  if (turned_final) final_listener_(id);
  return true;
}

void run_store::let_go(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = hot_.find(id);
  if (it == hot_.end() || it->second.r.status != run_status::waiting) return;
  hot_run& h = it->second;
  h.cold_ok = true;
  // Only a state SQLite has: one taken into a transaction that has not ended is not there yet (a
  // read would load the state before it), and the end of that transaction lets it go instead.
  if (h.committed && !h.dirty && !h.writing && h.created.empty()) {
    forget_key_locked(h.r);
    hot_.erase(it);
    ++stats_.evictions;
  }
}

void run_store::set_final_listener(std::function<void(const std::string&)> f) {
  std::lock_guard lock(mu_);
  final_listener_ = std::move(f);
}

std::vector<std::pair<std::string, std::string>> run_store::live_children(const std::string& parent_id) const {
  std::map<std::string, std::string> found;  // id → task id
  {
    // Cold ones (waiting) from SQLite; the memory's view of the others wins below.
    std::lock_guard rl(*db_->read_mu);
    auto st = db_->read_db().prepare("SELECT id, task_id FROM runs WHERE parent_id = ? AND finished_at IS NULL");
    st.bind(1, parent_id);
    while (st.step()) found[st.text(0)] = st.text(1);
  }
  std::lock_guard lock(mu_);
  for (const auto& [id, h] : hot_) {
    if (h.r.parent_id != parent_id) continue;
    if (is_final(h.r.status)) found.erase(id);
    else found[id] = h.r.task_id;
  }
  return {found.begin(), found.end()};
}

std::vector<run_record> run_store::batch_runs(const std::string& batch_id) const {
  std::vector<run_record> out;
  std::unordered_map<std::string, size_t> at;
  {
    std::lock_guard rl(*db_->read_mu);
    auto st = db_->read_db().prepare("SELECT " + std::string(run_columns) + " FROM runs WHERE batch_id = ? ORDER BY created_at, id");
    st.bind(1, batch_id);
    while (st.step()) {
      at[st.text(0)] = out.size();
      out.push_back(read_row(st, false));
    }
  }
  // Newer states (and runs not committed yet) are in memory.
  std::lock_guard lock(mu_);
  for (const auto& [id, h] : hot_) {
    if (h.r.batch_id != batch_id) continue;
    run_record r = h.r;
    r.payload = nullptr;
    r.output.reset();
    r.logs.clear();
    if (auto i = at.find(id); i != at.end()) out[i->second] = std::move(r);
    else out.push_back(std::move(r));
  }
  std::stable_sort(out.begin(), out.end(), [](const run_record& a, const run_record& b) { return a.created_at < b.created_at; });
  return out;
}

bool run_store::update(const std::string& id, const std::function<void(run_record&)>& f) { return change(id, f, reach::any); }

bool run_store::update_live(const std::string& id, const std::function<void(run_record&)>& f) { return change(id, f, reach::live); }

bool run_store::update_unfinished(const std::string& id, const std::function<void(run_record&)>& f) {
  return change(id, f, reach::unfinished);
}

bool run_store::read_live(const std::string& id, const std::function<void(const run_record&)>& f) const {
  std::lock_guard lock(mu_);
  auto it = hot_.find(id);
  if (it == hot_.end() || is_final(it->second.r.status)) return false;
  f(it->second.r);
  return true;
}

bool run_store::dirty() const {
  std::lock_guard lock(mu_);
  return !dirty_.empty() || !commit_waiters_.empty();
}

run_store::stats_t run_store::stats() const {
  std::lock_guard lock(mu_);
  auto s = stats_;
  s.hot_runs = hot_.size();
  return s;
}

std::vector<std::string> run_store::unfinished_runs() const {
  std::lock_guard lock(mu_);
  return unfinished_;
}

namespace {

/// The most rows one transaction of flush() writes (a few MB of serialized rows at most).
constexpr size_t max_rows_per_commit = 4096;

/// A run's row, serialized under the store's lock and written without it.
struct row_op {
  std::string id;
  bool insert = false;
  std::string_view status;  ///< to_string()'s static text
  std::string task_id, payload, payload_type, output, error, metadata, tags, attempts, ttl;
  std::string parent_id, root_id, batch_id, journal, queue, concurrency_key, schedule_id;
  int64_t depth = 0, priority_ms = 0;
  std::optional<int64_t> schedule_occurrence;
  int64_t batch_index = -1;
  std::string request_scope, request_key;
  json payload_value, output_value;  ///< copied under the lock, serialized after it (they may be MBs)
  bool has_output = false;
  std::string idem_key, idem_user;
  int64_t created = 0, updated = 0, ttl_ms = 0, max_attempts = 0, max_duration_ms = 0, log_bytes = 0, logs_truncated = 0;
  std::optional<int64_t> started, finished, delay_until, expires_at, retry_at, idem_expires;
  std::vector<std::string> tag_list;
  size_t logs_from = 0;
  std::vector<log_line> new_logs;
  std::vector<std::function<void(create_result)>> created_waiters;
  int64_t rowid = 0;  ///< the row's rowid: known for an update of a row this process inserted, set by an insert
};

}  // namespace

bool run_store::flush() {
  std::vector<std::function<void(bool, const std::string&)>> waiters;
  std::vector<hot_map::value_type*> pending;
  {
    std::lock_guard lock(mu_);
    notified_ = false;
    waiters.swap(commit_waiters_);
    pending.swap(dirty_);  // they stay marked dirty until their slice is serialized
  }
  // One transaction per slice of max_rows_per_commit: a burst of 100,000 triggers is not copied
  // into rows all at once (that copy was a third of the peak memory), and the first runs of a
  // burst are answered, and start, once the first slice has committed.
  bool ok = true;
  std::string error;
  size_t from = 0;
  do {  // once at least: an empty commit still answers the waiters
    const size_t n = std::min(pending.size() - from, max_rows_per_commit);
    std::string slice_error;
    if (!commit_slice(pending.data() + from, n, slice_error) && ok) {
      ok = false;
      error = std::move(slice_error);
    }
    from += n;
  } while (from < pending.size());
  for (auto& w : waiters) w(ok, error);
  return ok;
}

bool run_store::commit_slice(hot_map::value_type* const* runs, size_t count, std::string& error) {
  std::vector<row_op> ops;
  {
    std::lock_guard lock(mu_);
    ops.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const std::string& id = runs[i]->first;  // still in hot_: dirty until just below
      hot_run& h = runs[i]->second;
      h.dirty = false;
      h.writing = true;  // SQLite has not got this state until the transaction ends
      const run_record& r = h.r;
      row_op& op = ops.emplace_back();
      op.id = id;
      op.insert = !h.committed;
      op.rowid = h.rowid;
      op.status = to_string(r.status);
      if (op.insert) {
        op.task_id = r.task_id;
        op.payload_value = r.payload;
        op.payload_type = r.payload_type;
        op.tags = r.tags.empty() ? std::string("[]") : dump(json(r.tags));
        op.tag_list = r.tags;
        op.ttl = r.rare().ttl;
        op.ttl_ms = r.ttl_ms;
        op.max_attempts = r.max_attempts;
        op.max_duration_ms = r.max_duration_ms;
        op.created = to_us(r.created_at);
        op.created_waiters.swap(h.created);
        op.parent_id = r.parent_id;
        op.root_id = r.root_id;
        op.batch_id = r.batch_id;
        op.depth = r.depth;
        op.queue = r.queue;
        op.concurrency_key = r.concurrency_key;
        op.priority_ms = r.priority_ms;
        op.schedule_id = r.schedule_id;
        op.schedule_occurrence = opt_us(r.rare().schedule_occurrence);
        op.batch_index = r.rare().batch_index;
        op.request_scope = r.rare().request_scope;
        op.request_key = r.rare().request_key;
      }
      if (r.output) {
        op.output_value = *r.output;
        op.has_output = true;
      }
      if (r.error) op.error = dump(*r.error);
      if (!r.metadata.is_null()) op.metadata = dump(r.metadata);
      op.attempts = attempts_to_storage(r.attempts);
      if (!r.journal.is_null()) op.journal = dump(r.journal);
      op.idem_key = r.idempotency_key;
      op.idem_user = r.idempotency_key_user;
      op.idem_expires = opt_us(r.idempotency_expires_at);
      op.updated = to_us(r.updated_at);
      op.started = opt_us(r.started_at);
      op.finished = is_final(r.status) ? opt_us(r.finished_at ? r.finished_at : std::optional<time_point>(r.updated_at)) : std::nullopt;
      op.delay_until = opt_us(r.delay_until);
      op.expires_at = opt_us(r.expires_at);
      op.retry_at = opt_us(r.retry_at);
      op.log_bytes = static_cast<int64_t>(r.log_bytes);
      op.logs_truncated = r.logs_truncated;
      op.logs_from = h.logs_persisted;
      if (r.logs.size() > h.logs_persisted) op.new_logs.assign(r.logs.begin() + static_cast<ptrdiff_t>(h.logs_persisted), r.logs.end());
    }
  }
  for (auto& op : ops) {
    if (op.insert) op.payload = dump(op.payload_value);
    if (op.has_output) op.output = dump(op.output_value);
    op.payload_value = nullptr;
    op.output_value = nullptr;
  }

  bool ok = true;
  if (!ops.empty()) {
    std::lock_guard wl(db_->write_mu);
    auto& w = *db_->writer;
    try {
      sqlite::transaction(w, [&] {
        auto ins = w.prepare(
            "INSERT INTO runs (id, task_id, status, created_at, updated_at, started_at, finished_at, delay_until, "
            "expires_at, retry_at, ttl, ttl_ms, idempotency_key, idempotency_key_user, idempotency_expires_at, "
            "max_attempts, max_duration_ms, payload_type, error, metadata, tags, attempts, log_bytes, logs_truncated, "
            "payload, output, parent_id, root_id, depth, batch_id, journal, queue, concurrency_key, priority_ms, schedule_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        auto fired = w.prepare(
            "UPDATE schedules SET last_occurrence = ?1 WHERE id = ?2 AND (last_occurrence IS NULL OR last_occurrence < ?1)");
        static const std::string update_run =
            "UPDATE runs SET status=?1, updated_at=?2, started_at=?3, finished_at=?4, delay_until=?5, expires_at=?6, "
            "retry_at=?7, idempotency_key=?8, idempotency_key_user=?9, idempotency_expires_at=?10, error=?11, metadata=?12, "
            "attempts=?13, log_bytes=?14, logs_truncated=?15, output=?16, journal=?17 ";
        static const std::string update_by_id = update_run + "WHERE id=?18";
        // A row this process inserted is found by its rowid: one b-tree search fewer than through
        // the id's index (the id is still compared, so a rowid that changed cannot hit another run).
        static const std::string update_by_rowid = update_run + "WHERE rowid=?19 AND id=?18";
        auto upd = w.prepare(update_by_id);
        auto upd_rowid = w.prepare(update_by_rowid);
        auto tag = w.prepare("INSERT OR IGNORE INTO run_tags (tag, run_id) VALUES (?, ?)");
        auto item = w.prepare("INSERT OR IGNORE INTO batch_items (batch_id, idx, run_id) VALUES (?, ?, ?)");
        auto request = w.prepare(
            "INSERT OR REPLACE INTO request_keys (scope, key, id, cached, created_at, expires_at) VALUES (?, ?, ?, 0, ?, ?)");
        auto logq = w.prepare(
            "INSERT OR REPLACE INTO run_logs (run_id, seq, time, attempt, level, message, attributes) VALUES (?,?,?,?,?,?,?)");
        // Texts are bound without a copy: they live in `ops`, which outlives these statements.
        for (auto& op : ops) {
          if (op.insert) {
            ins.bind_text_static(1, op.id).bind_text_static(2, op.task_id).bind_text_static(3, op.status);
            ins.bind(4, op.created).bind(5, op.updated);
            ins.bind(6, op.started).bind(7, op.finished).bind(8, op.delay_until).bind(9, op.expires_at).bind(10, op.retry_at);
            ins.bind_text_static_or_null(11, op.ttl).bind(12, op.ttl_ms).bind_text_static_or_null(13, op.idem_key);
            ins.bind_text_static_or_null(14, op.idem_user).bind(15, op.idem_expires).bind(16, op.max_attempts);
            ins.bind(17, op.max_duration_ms).bind_text_static(18, op.payload_type).bind_text_static_or_null(19, op.error);
            ins.bind_text_static_or_null(20, op.metadata).bind_text_static(21, op.tags).bind_text_static(22, op.attempts);
            ins.bind(23, op.log_bytes);
            ins.bind(24, op.logs_truncated).bind_text_static(25, op.payload).bind_text_static_or_null(26, op.output);
            ins.bind_text_static_or_null(27, op.parent_id).bind_text_static_or_null(28, op.root_id).bind(29, op.depth);
            ins.bind_text_static_or_null(30, op.batch_id).bind_text_static_or_null(31, op.journal);
            ins.bind_text_static_or_null(32, op.queue).bind_text_static_or_null(33, op.concurrency_key).bind(34, op.priority_ms);
            ins.bind_text_static_or_null(35, op.schedule_id);
            ins.step();
            ins.reset();
            op.rowid = w.last_insert_rowid();
            if (op.schedule_occurrence) {
              fired.bind(1, *op.schedule_occurrence).bind(2, op.schedule_id);
              fired.step();
              fired.reset();
            }
            for (const auto& t : op.tag_list) {
              tag.bind(1, t).bind(2, op.id);
              tag.step();
              tag.reset();
            }
            if (op.batch_index >= 0 && !op.batch_id.empty()) {
              item.bind(1, op.batch_id).bind(2, op.batch_index).bind(3, op.id);
              item.step();
              item.reset();
            }
            if (!op.request_key.empty()) {
              const int64_t expires = op.created + std::chrono::duration_cast<std::chrono::microseconds>(request_key_ttl).count();
              request.bind(1, op.request_scope).bind(2, op.request_key).bind(3, op.id).bind(4, op.created).bind(5, expires);
              request.step();
              request.reset();
            }
          } else {
            auto update = [&](sqlite::stmt& u) {
              u.bind_text_static(1, op.status).bind(2, op.updated).bind(3, op.started).bind(4, op.finished).bind(5, op.delay_until);
              u.bind(6, op.expires_at).bind(7, op.retry_at).bind_text_static_or_null(8, op.idem_key);
              u.bind_text_static_or_null(9, op.idem_user);
              u.bind(10, op.idem_expires).bind_text_static_or_null(11, op.error).bind_text_static_or_null(12, op.metadata);
              u.bind_text_static(13, op.attempts).bind(14, op.log_bytes).bind(15, op.logs_truncated);
              u.bind_text_static_or_null(16, op.output);
              u.bind_text_static_or_null(17, op.journal).bind_text_static(18, op.id);
              u.step();
              u.reset();
              return w.changes() > 0;
            };
            if (op.rowid != 0) upd_rowid.bind(19, op.rowid);
            if (op.rowid == 0 || !update(upd_rowid)) {
              op.rowid = 0;  // by id from now on
              update(upd);
            }
          }
          for (size_t i = 0; i < op.new_logs.size(); ++i) {
            const auto& l = op.new_logs[i];
            logq.bind(1, op.id).bind(2, static_cast<int64_t>(op.logs_from + i)).bind(3, to_us(l.time)).bind(4, int64_t{l.attempt});
            logq.bind(5, l.level).bind(6, l.message);
            if (l.attributes.is_object() && !l.attributes.empty()) logq.bind(7, dump(l.attributes));
            else logq.bind_null(7);
            logq.step();
            logq.reset();
          }
        }
      });
    } catch (const sqlite::error& e) {
      ok = false;
      error = e.disk_full() ? std::string("the run store's disk is full (") + e.what() + ")"
                            : std::string("the run store could not commit: ") + e.what();
    }
  }

  std::vector<std::pair<std::function<void(create_result)>, create_result>> answers;
  {
    std::lock_guard lock(mu_);
    if (ok) {
      ++stats_.commits;
      stats_.rows_written += ops.size();
    } else {
      ++stats_.failed_commits;
    }
    for (size_t i = 0; i < ops.size(); ++i) {
      // Still in hot_: a run taken into a transaction leaves it only here (let_go() waits for
      // `writing` to clear), and the map's rehashes keep its nodes where they are.
      row_op& op = ops[i];
      hot_map::value_type* const run = runs[i];
      hot_run& h = run->second;
      h.writing = false;
      if (ok) {
        h.committed = true;
        h.rowid = op.rowid;
        h.logs_persisted = static_cast<uint32_t>(std::max<size_t>(h.logs_persisted, op.logs_from + op.new_logs.size()));
        for (auto& c : op.created_waiters) {
          answers.emplace_back(std::move(c), create_result{200, op.id, false, {}});
          if (&c == &op.created_waiters.front()) answers.back().second.payload_json = std::move(op.payload);  // written
        }
        // Triggers that found its idempotency key while this insert was being written joined it
        // here (in create()); they are answered with it now.
        for (auto& c : h.created) answers.emplace_back(std::move(c), create_result{200, op.id, false, {}});
        h.created.clear();
        // A final run leaves memory once committed; so does a WAITING one (it may wait for
        // months): whatever completes its wait loads it back (update_unfinished).
        if (!h.dirty && (is_final(h.r.status) || (h.cold_ok && h.r.status == run_status::waiting)) && h.created.empty()) {
          forget_key_locked(h.r);
          hot_.erase(op.id);
          ++stats_.evictions;
        }
      } else if (op.insert) {
        // Never acknowledged, never routed: the run did not happen.
        for (auto& c : op.created_waiters) answers.emplace_back(std::move(c), create_result{503, {}, false, error});
        for (auto& c : h.created) answers.emplace_back(std::move(c), create_result{503, {}, false, error});
        forget_key_locked(h.r);
        if (h.dirty) std::erase(dirty_, run);
        hot_.erase(op.id);
      } else {
        mark_dirty_locked(*run);  // try again at the next flush
      }
    }
  }
  for (auto& [f, res] : answers) {
    res.committed_with = answers.size();
    f(std::move(res));
  }
  return ok;
}

run_list_page run_store::list(const run_list_query& q) const {
  std::string sql = "SELECT " + std::string(run_columns) + " FROM runs WHERE 1=1";
  auto placeholders = [](size_t n) {
    std::string s = "(";
    for (size_t i = 0; i < n; ++i) s += i ? ",?" : "?";
    return s + ")";
  };
  if (!q.statuses.empty()) sql += " AND status IN " + placeholders(q.statuses.size());
  if (!q.task_ids.empty()) sql += " AND task_id IN " + placeholders(q.task_ids.size());
  if (!q.tags.empty()) sql += " AND id IN (SELECT run_id FROM run_tags WHERE tag IN " + placeholders(q.tags.size()) + ")";
  if (q.created_from) sql += " AND created_at >= ?";
  if (q.created_to) sql += " AND created_at <= ?";
  if (!q.schedule_id.empty()) sql += " AND schedule_id = ?";
  if (!q.batch_id.empty()) sql += " AND batch_id = ?";
  int64_t c_us = 0;
  std::string c_id;
  const bool backwards = q.after.empty() && !q.before.empty();
  if (!q.after.empty() && parse_cursor(q.after, c_us, c_id)) sql += " AND (created_at < ? OR (created_at = ? AND id < ?))";
  else if (backwards && parse_cursor(q.before, c_us, c_id)) sql += " AND (created_at > ? OR (created_at = ? AND id > ?))";
  sql += backwards ? " ORDER BY created_at ASC, id ASC" : " ORDER BY created_at DESC, id DESC";
  const size_t size = std::clamp<size_t>(q.page_size, 1, 100);
  sql += " LIMIT " + std::to_string(size + 1);

  run_list_page page;
  {
    std::lock_guard rl(*db_->read_mu);
    auto st = db_->read_db().prepare(sql);
    int i = 1;
    for (auto s : q.statuses) st.bind(i++, to_string(s));
    for (const auto& t : q.task_ids) st.bind(i++, t);
    for (const auto& t : q.tags) st.bind(i++, t);
    if (q.created_from) st.bind(i++, to_us(*q.created_from));
    if (q.created_to) st.bind(i++, to_us(*q.created_to));
    if (!q.schedule_id.empty()) st.bind(i++, q.schedule_id);
    if (!q.batch_id.empty()) st.bind(i++, q.batch_id);
    if (!c_id.empty()) {
      st.bind(i, c_us).bind(i + 1, c_us).bind(i + 2, c_id);
      i += 3;
    }
    while (st.step()) page.runs.push_back(read_row(st, false));
  }
  const bool more = page.runs.size() > size;
  if (more) page.runs.pop_back();
  if (backwards) std::reverse(page.runs.begin(), page.runs.end());
  if (!page.runs.empty()) {
    if (backwards) {
      if (more) page.previous = make_cursor(page.runs.front());
      page.next = make_cursor(page.runs.back());
    } else {
      if (more) page.next = make_cursor(page.runs.back());
      if (!q.after.empty()) page.previous = make_cursor(page.runs.front());
    }
  }
  // Runs still going: show their state as it is now, not as last committed.
  std::lock_guard lock(mu_);
  for (auto& r : page.runs) {
    auto it = hot_.find(r.id);
    if (it == hot_.end()) continue;
    r = it->second.r;
    r.payload = nullptr;
    r.output.reset();
    r.logs.clear();
  }
  return page;
}

size_t run_store::purge_finished_before(time_point cutoff) {
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  size_t n = 0;
  const int64_t us = to_us(cutoff);
  sqlite::transaction(w, [&] {
    // A finished run of a batch whose parent has not finished stays: the parent may still need
    // its result (a batch's results go into the parent's journal only with its last item).
    const std::string old = "(SELECT id FROM runs AS c WHERE c.finished_at IS NOT NULL AND c.finished_at < " + std::to_string(us) +
                            " AND (c.parent_id IS NULL OR c.batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS p WHERE "
                            "p.id = c.parent_id AND p.finished_at IS NULL)))";
    w.exec("DELETE FROM run_tags WHERE run_id IN " + old);
    w.exec("DELETE FROM run_logs WHERE run_id IN " + old);
    w.exec("DELETE FROM runs WHERE id IN " + old);
    n = static_cast<size_t>(w.changes());
  });
  return n;
}

namespace {

/// The ids `sql` selects, its parameters ?1 the cutoff and ?2 now (epoch µs).
std::vector<std::string> select_ids(sqlite::db& w, const char* sql, time_point cutoff, time_point now) {
  auto st = w.prepare(sql);
  st.bind(1, to_us(cutoff)).bind(2, to_us(now));
  std::vector<std::string> ids;
  while (st.step()) ids.push_back(st.text(0));
  return ids;
}

/// Runs `sql` (its one parameter: an id) for each of `ids`; returns the rows it deleted.
size_t delete_each(sqlite::db& w, const char* sql, const std::vector<std::string>& ids) {
  auto st = w.prepare(sql);
  size_t n = 0;
  for (const auto& id : ids) {
    st.bind(1, id);
    st.step();
    st.reset();
    n += static_cast<size_t>(w.changes());
  }
  return n;
}

}  // namespace

size_t run_store::purge_tokens_before(time_point cutoff, time_point now) {
  // Tokens that WAITING runs still wait for: their journals' pending token entries (a run is
  // told of its token's end as it happens; only a crash in between leaves one pending).
  std::unordered_set<std::string> pending;
  {
    std::lock_guard rl(*db_->read_mu);
    auto st = db_->read_db().prepare(
        "SELECT journal FROM runs WHERE status = 'WAITING' AND finished_at IS NULL AND journal IS NOT NULL");
    while (st.step()) {
      json j = json::parse(st.text(0), nullptr, false);
      if (!j.is_object() || !j.contains("ops") || !j["ops"].is_object()) continue;
      for (const auto& [key, e] : j["ops"].items())
        if (e.is_object() && e.value("kind", "") == "token" && !e.value("done", false)) pending.insert(e.value("tokenId", ""));
    }
  }
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  size_t n = 0;
  sqlite::transaction(w, [&] {
    auto ids = select_ids(w,
                          "SELECT id FROM waitpoint_tokens WHERE created_at < ?1 "
                          "AND ((status != 'WAITING' AND COALESCE(completed_at, created_at) < ?1) "
                          // Past its timeout, and nothing that waited recorded it: ended all the same.
                          "OR (status = 'WAITING' AND timeout_at IS NOT NULL AND timeout_at < ?1)) "
                          "AND (idempotency_expires_at IS NULL OR idempotency_expires_at <= ?2)",
                          cutoff, now);
    std::erase_if(ids, [&](const std::string& id) { return pending.count(id) > 0; });
    n = delete_each(w, "DELETE FROM waitpoint_tokens WHERE id = ?", ids);
  });
  return n;
}

size_t run_store::purge_batches_before(time_point cutoff, time_point now) {
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  size_t n = 0;
  sqlite::transaction(w, [&] {
    auto ids = select_ids(w,
                          "SELECT id FROM batches WHERE created_at < ?1 AND (idempotency_expires_at IS NULL OR idempotency_expires_at <= ?2) "
                          "AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.batch_id = batches.id)",
                          cutoff, now);
    delete_each(w, "DELETE FROM batch_items WHERE batch_id = ?", ids);
    n = delete_each(w, "DELETE FROM batches WHERE id = ?", ids);
  });
  return n;
}

namespace {

constexpr std::string_view token_columns =
    "id, status, created_at, completed_at, timeout_at, idempotency_key, idempotency_expires_at, tags, output";

token_record read_token(const sqlite::stmt& s) {
  token_record t;
  t.id = s.text(0);
  t.status = s.text(1);
  t.created_at = from_us(s.int64(2));
  t.completed_at = opt_time(s.opt_int64(3));
  t.timeout_at = opt_time(s.opt_int64(4));
  t.idempotency_key = s.text(5);
  t.idempotency_expires_at = opt_time(s.opt_int64(6));
  auto tags = json::parse(s.text(7), nullptr, false);
  if (tags.is_array())
    for (const auto& x : tags)
      if (x.is_string()) t.tags.push_back(x.get<std::string>());
  if (!s.is_null(8)) t.output = json::parse(s.text(8), nullptr, false);
  return t;
}

}  // namespace

token_record run_store::create_token(token_record t, bool& cached) {
  cached = false;
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  try {
    if (!t.idempotency_key.empty()) {
      auto q = w.prepare("SELECT " + std::string(token_columns) +
                         " FROM waitpoint_tokens WHERE idempotency_key = ? ORDER BY created_at DESC LIMIT 1");
      q.bind(1, t.idempotency_key);
      if (q.step()) {
        token_record old = read_token(q);
        if (!old.idempotency_expires_at || *old.idempotency_expires_at > clock_type::now()) {
          cached = true;
          return old;
        }
      }
    }
    auto st = w.prepare("INSERT INTO waitpoint_tokens (" + std::string(token_columns) + ") VALUES (?,?,?,?,?,?,?,?,?)");
    st.bind(1, t.id).bind(2, t.status).bind(3, to_us(t.created_at)).bind(4, opt_us(t.completed_at));
    st.bind(5, opt_us(t.timeout_at)).bind_text_or_null(6, t.idempotency_key).bind(7, opt_us(t.idempotency_expires_at));
    st.bind(8, dump(json(t.tags)));
    if (t.output) st.bind(9, dump(*t.output));
    else st.bind_null(9);
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the token could not be recorded: ") + e.what());
  }
  return t;
}

std::optional<token_record> run_store::get_token(const std::string& id) {
  auto read = [&]() -> std::optional<token_record> {
    std::lock_guard rl(*db_->read_mu);
    auto st = db_->read_db().prepare("SELECT " + std::string(token_columns) + " FROM waitpoint_tokens WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_token(st);
  };
  auto t = read();
  if (t && t->status == "WAITING" && t->timeout_at && *t->timeout_at <= clock_type::now()) {
    time_out_token(id);
    t = read();
  }
  return t;
}

namespace {
/// Runs one guarded UPDATE of a token; tells whether it changed it, or why not.
token_change token_transition(sqlite::db& w, std::mutex& mu, const std::string& id, const char* what, const std::string& sql,
                              const std::function<void(sqlite::stmt&, int64_t now)>& bind) {
  std::lock_guard wl(mu);
  try {
    auto st = w.prepare(sql);
    bind(st, to_us(clock_type::now()));
    st.step();
    if (w.changes() > 0) return token_change::changed;
    auto q = w.prepare("SELECT status FROM waitpoint_tokens WHERE id = ?");
    q.bind(1, id);
    return q.step() ? token_change::already_final : token_change::unknown;
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the token could not be ") + what + ": " + e.what());
  }
}
}  // namespace

token_change run_store::complete_token(const std::string& id, const json& output) {
  return token_transition(*db_->writer, db_->write_mu, id, "completed",
                          "UPDATE waitpoint_tokens SET status='COMPLETED', completed_at=?, output=? "
                          "WHERE id=? AND status='WAITING' AND (timeout_at IS NULL OR timeout_at > ?)",
                          [&](sqlite::stmt& st, int64_t now) { st.bind(1, now).bind(2, dump(output)).bind(3, id).bind(4, now); });
}

token_change run_store::time_out_token(const std::string& id) {
  return token_transition(*db_->writer, db_->write_mu, id, "timed out",
                          "UPDATE waitpoint_tokens SET status='TIMED_OUT', completed_at=timeout_at "
                          "WHERE id=? AND status='WAITING' AND timeout_at IS NOT NULL AND timeout_at <= ?",
                          [&](sqlite::stmt& st, int64_t now) { st.bind(1, id).bind(2, now); });
}

std::vector<token_record> run_store::list_tokens(const token_list_query& q) {
  std::vector<token_record> out;
  std::string sql = "SELECT " + std::string(token_columns) + " FROM waitpoint_tokens WHERE 1=1";
  auto placeholders = [](size_t n) {
    std::string p = "(";
    for (size_t i = 0; i < n; ++i) p += i ? ",?" : "?";
    return p + ")";
  };
  if (!q.statuses.empty()) sql += " AND status IN " + placeholders(q.statuses.size());
  if (!q.idempotency_key.empty()) sql += " AND idempotency_key = ?";
  if (!q.tags.empty()) sql += " AND EXISTS (SELECT 1 FROM json_each(waitpoint_tokens.tags) WHERE value IN " + placeholders(q.tags.size()) + ")";
  if (q.created_from) sql += " AND created_at >= ?";
  if (q.created_to) sql += " AND created_at <= ?";
  if (!q.after.empty()) sql += " AND (created_at, id) < (SELECT created_at, id FROM waitpoint_tokens WHERE id = ?)";
  sql += " ORDER BY created_at DESC, id DESC LIMIT ?";
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare(sql);
  int i = 1;
  for (const auto& s : q.statuses) st.bind(i++, s);
  if (!q.idempotency_key.empty()) st.bind(i++, q.idempotency_key);
  for (const auto& t : q.tags) st.bind(i++, t);
  if (q.created_from) st.bind(i++, to_us(*q.created_from));
  if (q.created_to) st.bind(i++, to_us(*q.created_to));
  if (!q.after.empty()) st.bind(i++, q.after);
  st.bind(i, static_cast<int64_t>(q.limit));
  while (st.step()) out.push_back(read_token(st));
  return out;
}

bool run_store::reset_idempotency_key(const std::string& task_id, const std::string& key) {
  std::function<void()> notify;
  bool found = false;
  {
    // Memory first (so that a trigger meanwhile cannot match a run still holding the key there),
    // then the rows on disk; a hot run's next commit writes its cleared key too.
    std::lock_guard lock(mu_);
    idem_.erase(task_id + '\n' + key);
    for (auto& run : hot_) {
      hot_run& h = run.second;
      if (h.r.task_id != task_id || h.r.idempotency_key != key) continue;
      h.r.idempotency_key.clear();
      h.r.idempotency_expires_at.reset();
      mark_dirty_locked(run);
      found = true;
    }
    if (found) notify = wake_locked();
    std::lock_guard wl(db_->write_mu);  // (the order create() takes for ":memory:": mu_, then the db)
    try {
      auto st = db_->writer->prepare(
          "UPDATE runs SET idempotency_key = NULL, idempotency_expires_at = NULL WHERE task_id = ? AND idempotency_key = ?");
      st.bind(1, task_id).bind(2, key);
      st.step();
      if (db_->writer->changes() > 0) found = true;
    } catch (const sqlite::error& e) {
      throw store_error(std::string("the idempotency key could not be reset: ") + e.what());
    }
  }
  if (notify) notify();
  return found;
}

std::string run_store::secret(const std::string& name, const std::function<std::string()>& make) {
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  try {
    auto q = w.prepare("SELECT value FROM secrets WHERE name = ?");
    q.bind(1, name);
    if (q.step()) return q.blob(0);
    std::string value = make();
    auto st = w.prepare("INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)");
    st.bind(1, name).bind_blob_static(2, value).bind(3, to_us(clock_type::now()));
    st.step();
    return value;
  } catch (const sqlite::error& e) {
    throw store_error("store " + opts_.path + ": the secret '" + name + "' could not be read or recorded: " + e.what());
  }
}

void run_store::save_packet(const packet_record& p) {
  std::lock_guard wl(db_->write_mu);
  try {
    auto st = db_->writer->prepare(
        "INSERT INTO packets (storage_path, content_type, data, size, created_at, expires_at) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT(storage_path) DO UPDATE SET content_type=excluded.content_type, data=excluded.data, size=excluded.size "
        "WHERE used_at IS NULL");
    st.bind(1, p.storage_path).bind(2, p.content_type).bind_blob_static(3, p.data).bind(4, static_cast<int64_t>(p.data.size()));
    st.bind(5, to_us(p.created_at)).bind(6, to_us(p.expires_at));
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error(e.disk_full() ? std::string("the run store's disk is full (") + e.what() + ")"
                                    : std::string("the packet could not be recorded: ") + e.what());
  }
}

std::optional<packet_record> run_store::get_packet(const std::string& storage_path, time_point now) {
  std::lock_guard rl(*db_->read_mu);
  try {
    auto st = db_->read_db().prepare(
        "SELECT content_type, data, created_at, expires_at, used_at FROM packets WHERE storage_path = ? AND expires_at > ?");
    st.bind(1, storage_path).bind(2, to_us(now));
    if (!st.step()) return std::nullopt;
    packet_record p;
    p.storage_path = storage_path;
    p.content_type = st.text(0);
    p.data = st.blob(1);
    p.created_at = from_us(st.int64(2));
    p.expires_at = from_us(st.int64(3));
    p.used_at = opt_time(st.opt_int64(4));
    return p;
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the packet could not be read: ") + e.what());
  }
}

void run_store::packet_used(const std::string& storage_path, time_point now, std::chrono::milliseconds grace) {
  std::lock_guard wl(db_->write_mu);
  try {
    auto st = db_->writer->prepare(
        "UPDATE packets SET used_at = COALESCE(used_at, ?1), expires_at = MIN(expires_at, ?2) WHERE storage_path = ?3");
    st.bind(1, to_us(now)).bind(2, to_us(now + grace)).bind(3, storage_path);
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the packet could not be marked used: ") + e.what());
  }
}

size_t run_store::purge_packets(time_point now) {
  std::lock_guard wl(db_->write_mu);
  try {
    auto st = db_->writer->prepare("DELETE FROM packets WHERE expires_at <= ?");
    st.bind(1, to_us(now));
    st.step();
    return static_cast<size_t>(db_->writer->changes());
  } catch (const sqlite::error& e) {
    throw store_error(std::string("expired packets could not be deleted: ") + e.what());
  }
}

namespace {

constexpr std::string_view batch_columns =
    "id, run_count, task_ids, status, created_at, updated_at, sealed_at, idempotency_key, idempotency_key_user, "
    "idempotency_expires_at";

batch_record read_batch(const sqlite::stmt& st) {
  batch_record b;
  b.id = st.text(0);
  b.run_count = st.int64(1);
  auto tasks = json::parse(st.text(2), nullptr, false);
  if (tasks.is_array())
    for (const auto& t : tasks)
      if (t.is_string()) b.task_ids.push_back(t.get<std::string>());
  b.status = st.text(3);
  b.created_at = from_us(st.int64(4));
  b.updated_at = from_us(st.int64(5));
  b.sealed_at = opt_time(st.opt_int64(6));
  b.idempotency_key = st.text(7);
  b.idempotency_key_user = st.text(8);
  b.idempotency_expires_at = opt_time(st.opt_int64(9));
  return b;
}

void insert_request_key(sqlite::db& w, const request_key_record& rk) {
  auto st = w.prepare("INSERT OR REPLACE INTO request_keys (scope, key, id, cached, created_at, expires_at) VALUES (?,?,?,?,?,?)");
  st.bind(1, rk.scope).bind(2, rk.key).bind(3, rk.id).bind(4, int64_t{rk.cached ? 1 : 0});
  st.bind(5, to_us(rk.created_at)).bind(6, to_us(rk.expires_at));
  st.step();
}

}  // namespace

batch_record run_store::create_batch(batch_record b, const request_key_record* rk, bool& cached) {
  cached = false;
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  try {
    sqlite::transaction(w, [&] {
      if (!b.idempotency_key.empty()) {
        auto q = w.prepare("SELECT " + std::string(batch_columns) + " FROM batches WHERE idempotency_key = ?");
        q.bind(1, b.idempotency_key);
        if (q.step()) {
          batch_record old = read_batch(q);
          if (!old.idempotency_expires_at || *old.idempotency_expires_at > clock_type::now()) {
            cached = true;
            b = std::move(old);
          } else {
            // Its key has expired: the key is free for the new batch (the old one keeps its runs).
            auto free = w.prepare("UPDATE batches SET idempotency_key = NULL WHERE id = ?");
            free.bind(1, old.id);
            free.step();
          }
        }
      }
      if (!cached) {
        auto st = w.prepare("INSERT INTO batches (" + std::string(batch_columns) + ") VALUES (?,?,?,?,?,?,?,?,?,?)");
        st.bind(1, b.id).bind(2, b.run_count).bind(3, dump(json(b.task_ids))).bind(4, b.status);
        st.bind(5, to_us(b.created_at)).bind(6, to_us(b.updated_at)).bind(7, opt_us(b.sealed_at));
        st.bind_text_or_null(8, b.idempotency_key).bind_text_or_null(9, b.idempotency_key_user);
        st.bind(10, opt_us(b.idempotency_expires_at));
        st.step();
      }
      if (rk) {
        request_key_record r = *rk;
        r.id = b.id;
        r.cached = cached;
        insert_request_key(w, r);
      }
    });
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the batch could not be recorded: ") + e.what());
  }
  return b;
}

std::optional<batch_record> run_store::get_batch(const std::string& id) const {
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare("SELECT " + std::string(batch_columns) + " FROM batches WHERE id = ?");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return read_batch(st);
}

std::vector<std::pair<int64_t, std::string>> run_store::batch_items(const std::string& id) const {
  std::vector<std::pair<int64_t, std::string>> out;
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare("SELECT idx, run_id FROM batch_items WHERE batch_id = ? ORDER BY idx");
  st.bind(1, id);
  while (st.step()) out.emplace_back(st.int64(0), st.text(1));
  return out;
}

void run_store::record_batch_items(const std::string& id, const std::vector<std::pair<int64_t, std::string>>& existing_runs,
                                   bool seal, time_point now) {
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  try {
    sqlite::transaction(w, [&] {
      auto item = w.prepare("INSERT OR IGNORE INTO batch_items (batch_id, idx, run_id) VALUES (?, ?, ?)");
      for (const auto& [idx, run] : existing_runs) {
        item.bind(1, id).bind(2, idx).bind(3, run);
        item.step();
        item.reset();
      }
      if (seal) {
        auto st = w.prepare("UPDATE batches SET status = 'COMPLETED', sealed_at = ?1, updated_at = ?1 WHERE id = ?2 AND sealed_at IS NULL");
        st.bind(1, to_us(now)).bind(2, id);
        st.step();
      }
    });
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the batch's items could not be recorded: ") + e.what());
  }
}

std::optional<request_key_record> run_store::find_request_key(const std::string& scope, const std::string& key, time_point now) const {
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare(
      "SELECT id, cached, created_at, expires_at FROM request_keys WHERE scope = ? AND key = ? AND expires_at > ?");
  st.bind(1, scope).bind(2, key).bind(3, to_us(now));
  if (!st.step()) return std::nullopt;
  return request_key_record{scope, key, st.text(0), st.int64(1) != 0, from_us(st.int64(2)), from_us(st.int64(3))};
}

void run_store::save_request_key(const request_key_record& rk) {
  std::lock_guard wl(db_->write_mu);
  try {
    insert_request_key(*db_->writer, rk);
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the request's idempotency key could not be recorded: ") + e.what());
  }
}

size_t run_store::purge_request_keys(time_point now) {
  std::lock_guard wl(db_->write_mu);
  auto& w = *db_->writer;
  auto st = w.prepare("DELETE FROM request_keys WHERE expires_at <= ?");
  st.bind(1, to_us(now));
  st.step();
  return static_cast<size_t>(w.changes());
}

std::vector<queue_state_record> run_store::queue_states() const {
  std::vector<queue_state_record> out;
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare("SELECT name, paused, concurrency_override, overridden_at FROM queue_state ORDER BY name");
  while (st.step()) {
    queue_state_record q;
    q.name = st.text(0);
    q.paused = st.int64(1) != 0;
    if (auto o = st.opt_int64(2)) q.override_limit = static_cast<int>(*o);
    q.overridden_at_ms = st.opt_int64(3);
    out.push_back(std::move(q));
  }
  return out;
}

void run_store::save_queue_state(const queue_state_record& q) {
  std::lock_guard wl(db_->write_mu);
  try {
    auto st = db_->writer->prepare(
        "INSERT INTO queue_state (name, paused, concurrency_override, overridden_at) VALUES (?,?,?,?) "
        "ON CONFLICT(name) DO UPDATE SET paused=excluded.paused, concurrency_override=excluded.concurrency_override, "
        "overridden_at=excluded.overridden_at");
    st.bind(1, q.name).bind(2, int64_t{q.paused ? 1 : 0});
    st.bind(3, q.override_limit ? std::optional<int64_t>(*q.override_limit) : std::nullopt).bind(4, q.overridden_at_ms);
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the queue's state could not be recorded: ") + e.what());
  }
}

namespace {
schedule_record schedule_from_row(sqlite::stmt& st) {
  schedule_record r;
  r.id = st.text(0);
  r.type = st.text(1);
  r.task_id = st.text(2);
  r.cron = st.text(3);
  r.timezone = st.text(4);
  r.external_id = st.text(5);
  r.dedup_key = st.text(6);
  r.active = st.int64(7) != 0;
  r.created_at = from_us(st.int64(8));
  r.updated_at = from_us(st.int64(9));
  r.since = from_us(st.int64(10));
  r.last_occurrence = opt_time(st.opt_int64(11));
  return r;
}
}  // namespace

std::vector<schedule_record> run_store::schedules() const {
  std::vector<schedule_record> out;
  std::lock_guard rl(*db_->read_mu);
  auto st = db_->read_db().prepare(
      "SELECT id, type, task_id, cron, timezone, external_id, dedup_key, active, created_at, updated_at, since, "
      "last_occurrence FROM schedules ORDER BY created_at, id");
  while (st.step()) out.push_back(schedule_from_row(st));
  return out;
}

void run_store::save_schedule(const schedule_record& r) {
  std::lock_guard wl(db_->write_mu);
  try {
    // last_occurrence is the flush's to move (with the run of each occurrence); a save never
    // moves it back.
    auto st = db_->writer->prepare(
        "INSERT INTO schedules (id, type, task_id, cron, timezone, external_id, dedup_key, active, created_at, "
        "updated_at, since, last_occurrence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET type=excluded.type, task_id=excluded.task_id, cron=excluded.cron, "
        "timezone=excluded.timezone, external_id=excluded.external_id, dedup_key=excluded.dedup_key, "
        "active=excluded.active, updated_at=excluded.updated_at, since=excluded.since");
    st.bind(1, r.id).bind(2, r.type).bind(3, r.task_id).bind(4, r.cron).bind(5, r.timezone);
    st.bind_text_or_null(6, r.external_id).bind_text_or_null(7, r.dedup_key).bind(8, int64_t{r.active ? 1 : 0});
    st.bind(9, to_us(r.created_at)).bind(10, to_us(r.updated_at)).bind(11, to_us(r.since)).bind(12, opt_us(r.last_occurrence));
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the schedule could not be recorded: ") + e.what());
  }
}

bool run_store::delete_schedule(const std::string& id) {
  std::lock_guard wl(db_->write_mu);
  try {
    auto st = db_->writer->prepare("DELETE FROM schedules WHERE id = ?");
    st.bind(1, id);
    st.step();
    return db_->writer->changes() > 0;
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the schedule could not be deleted: ") + e.what());
  }
}

namespace {

constexpr std::string_view api_key_columns = "id, name, hash, display, created_at, revoked_at";

std::vector<api_key_record> read_api_keys(sqlite::db& db) {
  std::vector<api_key_record> out;
  auto st = db.prepare("SELECT " + std::string(api_key_columns) + " FROM api_keys ORDER BY created_at, id");
  while (st.step()) {
    api_key_record k;
    k.id = st.text(0);
    k.name = st.text(1);
    k.hash = st.text(2);
    k.display = st.text(3);
    k.created_at = from_us(st.int64(4));
    if (auto r = st.opt_int64(5)) k.revoked_at = from_us(*r);
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

std::vector<api_key_record> run_store::api_keys() const {
  std::lock_guard rl(*db_->read_mu);
  try {
    return read_api_keys(db_->read_db());
  } catch (const sqlite::error& e) {
    throw store_error(std::string("the API keys could not be read: ") + e.what());
  }
}

api_key_table::api_key_table(const std::string& path) : path_(path) {
  auto refuse = [&](const std::string& why) { throw store_error("store " + path + ": " + why); };
  if (path == ":memory:") refuse("keeps nothing, so it cannot hold API keys; use auth.keys_file or auth.keys_from_env");
  int64_t version = 0;
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  try {
    if (exists) {
      db_ = std::make_unique<sqlite::db>(path, false);
      auto st = db_->prepare("SELECT version FROM taskhost_schema");
      if (st.step()) version = st.int64(0);
    }
  } catch (const sqlite::error& e) {
    // No taskhost_schema table: an empty file, or one no taskhost has opened yet.
    if ((e.code() & 0xff) == 26 /*SQLITE_NOTADB*/ || (e.code() & 0xff) == 11 /*SQLITE_CORRUPT*/) refuse(e.what());
    version = 0;
  }
  if (!exists || version < api_keys_schema_version) {
    db_.reset();
    // Create or upgrade the store as `taskhost run` would — only when no taskhost holds it.
    const std::string lock_path = path + ".lock";
    int fd = exists ? ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
      const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
      ::close(fd);
      if (held)
        refuse("predates API keys (store schema version " + std::to_string(version) +
               ") and the taskhost running on it cannot add them; stop it, then run this command again");
    }
    run_store upgrade(store_options{path, false});
  }
  try {
    if (!db_) db_ = std::make_unique<sqlite::db>(path, false);
  } catch (const sqlite::error& e) {
    refuse(e.what());
  }
}

api_key_table::~api_key_table() = default;

void api_key_table::insert(const api_key_record& k) {
  try {
    auto st = db_->prepare("INSERT INTO api_keys (" + std::string(api_key_columns) + ") VALUES (?,?,?,?,?,?)");
    st.bind(1, k.id).bind_text_or_null(2, k.name).bind(3, k.hash).bind(4, k.display).bind(5, to_us(k.created_at));
    st.bind(6, opt_us(k.revoked_at));
    st.step();
  } catch (const sqlite::error& e) {
    throw store_error("store " + path_ + ": the key could not be recorded: " + e.what());
  }
}

std::vector<api_key_record> api_key_table::list() {
  try {
    return read_api_keys(*db_);
  } catch (const sqlite::error& e) {
    throw store_error("store " + path_ + ": the API keys could not be read: " + e.what());
  }
}

api_key_table::revoke_result api_key_table::revoke(const std::string& id, time_point now) {
  try {
    auto st = db_->prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
    st.bind(1, to_us(now)).bind(2, id);
    st.step();
    if (db_->changes() > 0) return revoke_result::revoked;
    auto q = db_->prepare("SELECT 1 FROM api_keys WHERE id = ?");
    q.bind(1, id);
    return q.step() ? revoke_result::already_revoked : revoke_result::unknown;
  } catch (const sqlite::error& e) {
    throw store_error("store " + path_ + ": the key could not be revoked: " + e.what());
  }
}

}  // namespace taskhost
