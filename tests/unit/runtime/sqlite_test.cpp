// The SQLite layer: statements are prepared once per connection and reused, reset and cleared.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "runtime/sqlite.hpp"

namespace taskhost::sqlite {
namespace {

int64_t count(db& d, std::string_view sql) {
  auto s = d.prepare(sql);
  EXPECT_TRUE(s.step());
  return s.int64(0);
}

TEST(SqliteTest, AReusedStatementStartsWithoutTheLastCallsBindings) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER, b TEXT)");
  {
    auto ins = d.prepare("INSERT INTO t (a, b) VALUES (?, ?)");
    ins.bind(1, int64_t{1}).bind(2, "one");
    ins.step();
  }
  {
    auto ins = d.prepare("INSERT INTO t (a, b) VALUES (?, ?)");  // the same statement, from the pool
    ins.bind(1, int64_t{2});                                       // b not bound: NULL, not "one"
    ins.step();
  }
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t"), 2);
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t WHERE b IS NULL AND a = 2"), 1);
}

TEST(SqliteTest, TextBoundWithoutACopyIsStoredAndNotReadAfterTheStep) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER, b TEXT)");
  {
    auto ins = d.prepare("INSERT INTO t (a, b) VALUES (?, ?)");
    std::string text(1000, 'x');
    text += "\xc3\xa9 end";
    ins.bind(1, int64_t{1}).bind_text_static(2, text);
    ins.step();
    ins.reset();
    text.assign(1010, '?');  // the statement must not hold on to the buffer after its reset
    ins.bind(1, int64_t{2}).bind_text_static_or_null(2, "");
    ins.step();
  }
  auto s = d.prepare("SELECT b FROM t WHERE a = 1");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.text(0), std::string(1000, 'x') + "\xc3\xa9 end");
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t WHERE a = 2 AND b IS NULL"), 1);
}

TEST(SqliteTest, SqliteKeepsNoMemoryCountsUnderItsGlobalMutex) {
  // Opening a connection turns SQLite's memory statistics off (they cost a process-wide mutex on
  // every allocation): with them on, a connection with a table in it would show bytes in use.
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'one')");
  EXPECT_EQ(sqlite3_memory_used(), 0);
}

TEST(SqliteTest, TheSameSqlMayBeInUseTwiceAtOnce) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3)");
  auto outer = d.prepare("SELECT a FROM t ORDER BY a");
  auto inner = d.prepare("SELECT a FROM t ORDER BY a");  // a second statement: the first is mid-read
  ASSERT_TRUE(outer.step());
  ASSERT_TRUE(outer.step());
  ASSERT_TRUE(inner.step());
  EXPECT_EQ(outer.int64(0), 2);
  EXPECT_EQ(inner.int64(0), 1);
}

TEST(SqliteTest, AStatementLeftMidReadIsResetForItsNextUse) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2)");
  {
    auto s = d.prepare("SELECT a FROM t ORDER BY a");
    ASSERT_TRUE(s.step());  // left after the first row
  }
  auto s = d.prepare("SELECT a FROM t ORDER BY a");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.int64(0), 1);
  // Its read transaction ended when it went back: a write on the connection goes through.
  d.exec("INSERT INTO t VALUES (3)");
}

TEST(SqliteTest, AFailedStepLeavesTheStatementUsable) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER PRIMARY KEY)");
  auto insert = [&](int64_t v) {
    auto s = d.prepare("INSERT INTO t (a) VALUES (?)");
    s.bind(1, v);
    s.step();
  };
  insert(1);
  EXPECT_THROW(insert(1), error);  // constraint
  insert(2);
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t"), 2);
}

TEST(SqliteTest, BadSqlIsAnErrorEveryTimeAndNotKept) {
  db d(":memory:");
  EXPECT_THROW(d.prepare("SELEC nothing"), error);
  EXPECT_THROW(d.prepare("SELEC nothing"), error);
}

TEST(SqliteTest, ManyDistinctTextsStillWork) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER)");
  for (int i = 0; i < 600; ++i) {  // past the pool's bound on texts
    auto s = d.prepare("INSERT INTO t (a) VALUES (" + std::to_string(i) + ")");
    s.step();
  }
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t"), 600);
}

TEST(SqliteTest, TransactionsCommitAndRollBack) {
  db d(":memory:");
  d.exec("CREATE TABLE t (a INTEGER)");
  transaction(d, [&] { d.exec("INSERT INTO t VALUES (1)"); });
  EXPECT_THROW(transaction(d, [&] {
    d.exec("INSERT INTO t VALUES (2)");
    throw std::runtime_error("no");
  }), std::runtime_error);
  transaction(d, [&] { d.exec("INSERT INTO t VALUES (3)"); });
  EXPECT_EQ(count(d, "SELECT COUNT(*) FROM t"), 2);
}

}  // namespace
}  // namespace taskhost::sqlite
