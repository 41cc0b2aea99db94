#include "runtime/sqlite.hpp"

#include <sqlite3.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace taskhost::sqlite {
namespace {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view context) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int code = db ? sqlite3_extended_errcode(db) : rc;
  throw error(std::string(context) + ": " + msg, code);
}

}  // namespace

bool error::disk_full() const {
  const int primary = code_ & 0xff;
  // EFBIG (a file size limit) surfaces as an I/O error on write, ENOSPC as SQLITE_FULL.
  return primary == SQLITE_FULL || code_ == SQLITE_IOERR_WRITE || code_ == SQLITE_IOERR_FSYNC ||
         code_ == SQLITE_IOERR_TRUNCATE || code_ == SQLITE_IOERR_SHMSIZE;
}

stmt::stmt(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr);
  if (rc != SQLITE_OK) fail(db, rc, "prepare " + std::string(sql.substr(0, 60)));
}

// Node-based: a free list's address stays valid while other SQL texts are added.
struct stmt::pool {
  std::unordered_map<std::string, std::vector<sqlite3_stmt*>> free;
  ~pool() {
    for (auto& [sql, list] : free)
      for (auto* s : list) sqlite3_finalize(s);
  }
};

namespace {
using free_list = std::vector<sqlite3_stmt*>;

void give_back(sqlite3_stmt* st, void* home) {
  if (!st) return;
  if (!home) {
    sqlite3_finalize(st);
    return;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  static_cast<free_list*>(home)->push_back(st);
}
}  // namespace

stmt::stmt(sqlite3* db, std::string_view sql, pool* p) : db_(db) {
  // SQL built from a request (filters of a list) could grow the pool without end: past a few
  // hundred texts, new ones are prepared each time as before.
  constexpr size_t max_texts = 256;
  auto it = p->free.find(std::string(sql));
  if (it == p->free.end() && p->free.size() >= max_texts) {
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, "prepare " + std::string(sql.substr(0, 60)));
    return;
  }
  if (it == p->free.end()) it = p->free.emplace(std::string(sql), free_list{}).first;
  auto& list = it->second;
  home_ = &list;
  if (!list.empty()) {
    st_ = list.back();
    list.pop_back();
    return;
  }
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &st_, nullptr);
  if (rc != SQLITE_OK) fail(db, rc, "prepare " + std::string(sql.substr(0, 60)));
}

stmt::stmt(stmt&& o) noexcept : db_(o.db_), st_(o.st_), home_(o.home_) { o.st_ = nullptr; }

stmt& stmt::operator=(stmt&& o) noexcept {
  if (this != &o) {
    give_back(st_, home_);
    db_ = o.db_;
    st_ = o.st_;
    home_ = o.home_;
    o.st_ = nullptr;
  }
  return *this;
}

stmt::~stmt() { give_back(st_, home_); }

stmt& stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(st_, i, v);
  return *this;
}
stmt& stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text64(st_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}
stmt& stmt::bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
stmt& stmt::bind_text_or_null(int i, std::string_view v) { return v.empty() ? bind_null(i) : bind(i, v); }
stmt& stmt::bind_null(int i) {
  sqlite3_bind_null(st_, i);
  return *this;
}

stmt& stmt::bind_text_static(int i, std::string_view v) {
  sqlite3_bind_text64(st_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
  return *this;
}
stmt& stmt::bind_text_static_or_null(int i, std::string_view v) { return v.empty() ? bind_null(i) : bind_text_static(i, v); }

stmt& stmt::bind_blob_static(int i, std::string_view v) {
  sqlite3_bind_blob64(st_, i, v.data(), v.size(), SQLITE_STATIC);
  return *this;
}

bool stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(st_);
  fail(db_, rc, "step");
}

void stmt::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

bool stmt::is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
int64_t stmt::int64(int col) const { return sqlite3_column_int64(st_, col); }
std::string stmt::text(int col) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
}
std::string stmt::blob(int col) const {
  auto p = static_cast<const char*>(sqlite3_column_blob(st_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
}
std::optional<int64_t> stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

db::db(const std::string& path, bool create) {
  // SQLite counts the memory it allocates under a process-wide mutex, on every malloc and free:
  // about 5% of the CPU of a store busy with commits. Nothing here reads those counts. The setting
  // must come before SQLite is initialized; if something in the process already did that, it
  // fails harmlessly and the counts stay on.
  [[maybe_unused]] static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &handle_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = handle_ ? sqlite3_errmsg(handle_) : sqlite3_errstr(rc);
    int code = handle_ ? sqlite3_extended_errcode(handle_) : rc;
    sqlite3_close_v2(handle_);
    handle_ = nullptr;
    throw error(msg, code);
  }
  pool_ = std::make_unique<stmt::pool>();
  sqlite3_extended_result_codes(handle_, 1);
  sqlite3_busy_timeout(handle_, 5000);
}

db::~db() {
  pool_.reset();  // its statements are finalized before the connection closes
  if (handle_) sqlite3_close_v2(handle_);
}

int64_t db::changes() { return sqlite3_changes64(handle_); }
int64_t db::last_insert_rowid() { return sqlite3_last_insert_rowid(handle_); }

void db::exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(handle_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw error(msg, sqlite3_extended_errcode(handle_));
  }
}

}  // namespace taskhost::sqlite
