// A thin RAII layer over SQLite's C API: a connection, prepared statements, and errors that carry
// SQLite's own message. Not thread-safe: one thread uses a connection at a time.
//
// Example:
//
//   taskhost::sqlite::db db("/tmp/x.db");
//   db.exec("CREATE TABLE t(a INTEGER)");
//   auto st = db.prepare("INSERT INTO t VALUES (?)");
//   st.bind(1, int64_t{42}); st.step(); st.reset();
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace taskhost::sqlite {

/// An SQLite failure: what() is "<context>: <SQLite's message>"; code() is the extended result code.
class error : public std::runtime_error {
public:
  error(std::string what, int code) : std::runtime_error(std::move(what)), code_(code) {}
  int code() const { return code_; }
  /// The disk (or the file size limit) is full: SQLITE_FULL, or an I/O error that says so.
  bool disk_full() const;

private:
  int code_;
};

class stmt {
public:
  /// The statements of one connection kept prepared for their next use, by SQL text.
  struct pool;

  stmt() = default;
  stmt(sqlite3* db, std::string_view sql);
  /// From `p`'s statements of this SQL (prepared anew when none is free); goes back there, reset,
  /// when destroyed.
  stmt(sqlite3* db, std::string_view sql, pool* p);
  stmt(stmt&& o) noexcept;
  stmt& operator=(stmt&& o) noexcept;
  stmt(const stmt&) = delete;
  stmt& operator=(const stmt&) = delete;
  ~stmt();

  stmt& bind(int i, int64_t v);
  stmt& bind(int i, std::string_view v);
  stmt& bind(int i, const std::optional<int64_t>& v);
  stmt& bind_text_or_null(int i, std::string_view v);  ///< "" binds NULL
  stmt& bind_null(int i);
  /// Binds text without copying it: `v` must stay alive until the statement is stepped and reset
  /// (a wide row's texts are not copied once more on their way into SQLite).
  stmt& bind_text_static(int i, std::string_view v);
  stmt& bind_text_static_or_null(int i, std::string_view v);  ///< "" binds NULL
  /// Binds bytes as a BLOB without copying them: `v` must stay alive until the statement is
  /// stepped and reset (large packets are not copied twice).
  stmt& bind_blob_static(int i, std::string_view v);
  /// True while a row is available; false when done. Throws sqlite::error.
  bool step();
  void reset();  ///< ready to run again; bindings cleared

  bool is_null(int col) const;
  int64_t int64(int col) const;
  std::string text(int col) const;
  std::string blob(int col) const;  ///< a BLOB (or TEXT) column's bytes
  std::optional<int64_t> opt_int64(int col) const;

private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
  void* home_ = nullptr;  // the pool's free list for this SQL, or null: finalized when destroyed
};

class db {
public:
  /// Opens (creating if `create`) the database at `path` (":memory:" works). Throws sqlite::error.
  explicit db(const std::string& path, bool create = true);
  db(const db&) = delete;
  db& operator=(const db&) = delete;
  ~db();

  void exec(std::string_view sql);
  /// Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t changes();
  /// The rowid of the last row inserted on this connection.
  int64_t last_insert_rowid();
  /// A statement of `sql`, prepared once per connection and kept for the next call (parsing a
  /// wide INSERT costs more than running it): back in the connection's pool, reset and its
  /// bindings cleared, when the returned stmt is destroyed.
  stmt prepare(std::string_view sql) { return stmt(handle_, sql, pool_.get()); }
  sqlite3* handle() { return handle_; }

private:
  sqlite3* handle_ = nullptr;
  std::unique_ptr<stmt::pool> pool_;
};

/// Runs `f` in a transaction (BEGIN IMMEDIATE … COMMIT); rolls back and rethrows if it throws.
template <class F>
void transaction(db& d, F&& f) {
  d.prepare("BEGIN IMMEDIATE").step();
  try {
    f();
    d.prepare("COMMIT").step();
  } catch (...) {
    try { d.exec("ROLLBACK"); } catch (...) {}
    throw;
  }
}

}  // namespace taskhost::sqlite
