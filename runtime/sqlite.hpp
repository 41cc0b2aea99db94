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
  stmt() = default;
  stmt(sqlite3* db, std::string_view sql);
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
  stmt prepare(std::string_view sql) { return stmt(handle_, sql); }
  sqlite3* handle() { return handle_; }

private:
  sqlite3* handle_ = nullptr;
};

/// Runs `f` in a transaction (BEGIN IMMEDIATE … COMMIT); rolls back and rethrows if it throws.
template <class F>
void transaction(db& d, F&& f) {
  d.exec("BEGIN IMMEDIATE");
  try {
    f();
    d.exec("COMMIT");
  } catch (...) {
    try { d.exec("ROLLBACK"); } catch (...) {}
    throw;
  }
}

}  // namespace taskhost::sqlite
