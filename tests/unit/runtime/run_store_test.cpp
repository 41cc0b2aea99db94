// The run store on real SQLite files: group commit, acknowledgement after commit, reopening,
// idempotency keys, listing, purging, and the files it must refuse.
#include "runtime/run_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "runtime/ids.hpp"
#include "runtime/sqlite.hpp"
#include "support/process.hpp"

using namespace taskhost;
using namespace std::chrono_literals;
using taskhost::test::temp_dir;

namespace {

run_record new_run(const std::string& task = "t", run_status s = run_status::queued) {
  run_record r;
  r.id = new_run_id();
  r.task_id = task;
  r.status = s;
  r.payload = {{"n", 1}};
  r.created_at = r.updated_at = clock_type::now();
  return r;
}

/// Creates and commits a run; returns what create() answered.
create_result create_committed(run_store& s, run_record r) {
  std::optional<create_result> got;
  s.create(std::move(r), [&](create_result c) { got = c; });
  if (!got) EXPECT_TRUE(s.flush());
  EXPECT_TRUE(got.has_value());
  return got.value_or(create_result{0});
}

void finish(run_store& s, const std::string& id, run_status st) {
  ASSERT_TRUE(s.update_live(id, [&](run_record& r) {
    r.status = st;
    r.finished_at = clock_type::now();
  }));
  ASSERT_TRUE(s.flush());
}

}  // namespace

TEST(RunStoreTest, NewRunIsAcknowledgedOnlyAfterItsCommitAndManyShareOne) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  int notified = 0;
  s.set_notify([&] { ++notified; });
  std::vector<std::string> acked;
  for (int i = 0; i < 100; ++i) s.create(new_run(), [&](create_result c) { acked.push_back(c.run_id); });
  EXPECT_TRUE(acked.empty()) << "nothing is acknowledged before the commit";
  EXPECT_EQ(notified, 1) << "one wake-up for the whole group";
  EXPECT_TRUE(s.flush());
  EXPECT_EQ(acked.size(), 100u);
  EXPECT_EQ(s.stats().commits, 1u) << "one transaction for the group";
  EXPECT_EQ(s.stats().rows_written, 100u);

  // Committed means on disk: another connection sees the rows.
  sqlite::db other((tmp / "runs.db").string(), false);
  auto st = other.prepare("SELECT count(*) FROM runs");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.int64(0), 100);
}

TEST(RunStoreTest, ABurstIsWrittenInSlicesTheFirstAnsweredBeforeTheLastIsWritten) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  constexpr int n = 10000;  // 4,096 rows per transaction: three slices
  std::vector<std::string> ids, acked;
  size_t acked_when_waiter_ran = 0;
  int waiter_calls = 0;
  for (int i = 0; i < n; ++i) {
    auto r = new_run();
    ids.push_back(r.id);
    s.create(std::move(r), [&](create_result c) {
      EXPECT_EQ(c.status, 200);
      if (acked.size() == 4095) {  // the last answer of the first slice: the others are not written yet
        sqlite::db other((tmp / "runs.db").string(), false);
        auto st = other.prepare("SELECT count(*) FROM runs");
        EXPECT_TRUE(st.step());
        EXPECT_EQ(st.int64(0), 4096);
      }
      acked.push_back(c.run_id);
    });
  }
  s.after_commit([&](bool ok, const std::string&) {  // everything changed before it is committed
    EXPECT_TRUE(ok);
    acked_when_waiter_ran = acked.size();
    ++waiter_calls;
  });
  EXPECT_TRUE(s.flush());
  EXPECT_EQ(acked, ids) << "every trigger answered, in order";
  EXPECT_EQ(waiter_calls, 1);
  EXPECT_EQ(acked_when_waiter_ran, size_t(n));
  EXPECT_EQ(s.stats().commits, 3u);
  EXPECT_EQ(s.stats().rows_written, uint64_t(n));
  EXPECT_FALSE(s.dirty());
  sqlite::db other((tmp / "runs.db").string(), false);
  auto st = other.prepare("SELECT count(*) FROM runs");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.int64(0), n);
}

TEST(RunStoreTest, ReopenedStoreHasEveryCommittedRunAndListsTheUnfinished) {
  temp_dir tmp;
  std::string queued, done, executing;
  {
    run_store s({(tmp / "runs.db").string()});
    auto at = [](int s) {
      auto r = new_run();
      r.created_at = clock_type::now() - std::chrono::seconds(10 - s);
      return r;
    };
    queued = create_committed(s, at(1)).run_id;
    done = create_committed(s, at(2)).run_id;
    executing = create_committed(s, at(3)).run_id;
    finish(s, done, run_status::completed);
    s.update_live(executing, [](run_record& r) {
      r.status = run_status::executing;
      r.attempts.push_back({1, attempt_status::executing, clock_type::now(), std::nullopt, std::nullopt, {{"run", true, std::nullopt}}});
      r.metadata = {{"progress", 0.5}};
      append_log(r, {clock_type::now(), 1, "info", "halfway", {{"k", 1}}});
    });
    EXPECT_FALSE(s.update_live(done, [](run_record&) {})) << "a final run is not live";
    ASSERT_TRUE(s.flush());
    // Not committed: lost with the process, as if it had crashed here.
    s.update_live(queued, [](run_record& r) { r.status = run_status::dequeued; });
  }
  run_store s({(tmp / "runs.db").string()});
  auto unfinished = s.unfinished_runs();
  ASSERT_EQ(unfinished.size(), 2u);
  EXPECT_EQ(unfinished[0], queued) << "oldest first";
  EXPECT_EQ(unfinished[1], executing);
  EXPECT_EQ(s.get(queued)->status, run_status::queued);
  auto e = s.get(executing);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, run_status::executing);
  ASSERT_EQ(e->attempts.size(), 1u);
  EXPECT_FALSE(e->attempts[0].finished_at);
  EXPECT_EQ(e->attempts[0].stages.at(0).name, "run");
  EXPECT_EQ(e->metadata["progress"], 0.5);
  ASSERT_EQ(e->logs.size(), 1u);
  EXPECT_EQ(e->logs[0].message, "halfway");
  EXPECT_EQ(e->payload["n"], 1);
  auto d = s.get(done);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, run_status::completed);
  EXPECT_TRUE(d->finished_at);
  EXPECT_FALSE(s.get("run_nope"));
}

// A run this store inserted is updated through its rowid, the id compared too: a row whose rowid
// changed under the store (another connection; VACUUM may renumber) is still found by its id, and
// a run now holding the old rowid is left alone.
TEST(RunStoreTest, AnUpdateFindsItsRowByIdWhenItsRowidChangedAndNeverTouchesAnotherRun) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  run_store s({path});
  const std::string a = create_committed(s, new_run()).run_id;
  const std::string b = create_committed(s, new_run()).run_id;
  ASSERT_TRUE(s.update_live(a, [](run_record& r) { r.status = run_status::dequeued; }));
  ASSERT_TRUE(s.flush());  // by rowid, as inserted

  sqlite::db other(path, false);
  auto rowid_of = [&](const std::string& id) {
    auto st = other.prepare("SELECT rowid FROM runs WHERE id = ?");
    st.bind(1, id);
    return st.step() ? st.int64(0) : int64_t{-1};
  };
  auto status_of = [&](const std::string& id) {
    auto st = other.prepare("SELECT status FROM runs WHERE id = ?");
    st.bind(1, id);
    return st.step() ? st.text(0) : std::string("(none)");
  };
  const int64_t a_was = rowid_of(a), b_was = rowid_of(b);
  other.exec("UPDATE runs SET rowid = " + std::to_string(b_was + 100) + " WHERE id = '" + a + "'");
  other.exec("UPDATE runs SET rowid = " + std::to_string(a_was) + " WHERE id = '" + b + "'");
  ASSERT_EQ(rowid_of(b), a_was);

  ASSERT_TRUE(s.update_live(a, [](run_record& r) { r.status = run_status::executing; }));
  ASSERT_TRUE(s.flush());
  EXPECT_EQ(status_of(a), "EXECUTING");
  EXPECT_EQ(status_of(b), "QUEUED") << "the run now at a's old rowid was written";
  ASSERT_TRUE(s.update_live(b, [](run_record& r) { r.status = run_status::dequeued; }));  // nothing at b's old rowid
  ASSERT_TRUE(s.flush());
  EXPECT_EQ(status_of(b), "DEQUEUED");
  EXPECT_EQ(status_of(a), "EXECUTING");
  finish(s, a, run_status::completed);
  EXPECT_EQ(status_of(a), "COMPLETED");
}

// Payloads and outputs are stored as the JSON text nlohmann writes (small values take a shorter
// path to it) and read back as the same values.
TEST(RunStoreTest, SmallPayloadsAndOutputsAreStoredAsTheirJsonText) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  run_store s({path});
  const std::vector<json> values = {nullptr, true, false, 0, -5, int64_t{-9223372036854775807LL - 1}, uint64_t{18446744073709551615ULL},
                                    json::object(), json::array(), 1.5, "text", json{{"a", 1}}, json::array({1, "x"})};
  std::vector<std::string> ids;
  for (const auto& v : values) {
    auto r = new_run();
    r.payload = v;
    ids.push_back(create_committed(s, std::move(r)).run_id);
    finish(s, ids.back(), run_status::completed);
    ASSERT_TRUE(s.update(ids.back(), [&](run_record& r) { r.output = v; }));
  }
  ASSERT_TRUE(s.flush());
  sqlite::db other(path, false);
  for (size_t i = 0; i < values.size(); ++i) {
    auto st = other.prepare("SELECT payload, output FROM runs WHERE id = ?");
    st.bind(1, ids[i]);
    ASSERT_TRUE(st.step()) << i;
    EXPECT_EQ(st.text(0), values[i].dump()) << i;
    EXPECT_EQ(st.text(1), values[i].dump()) << i;
    auto back = s.get(ids[i]);
    ASSERT_TRUE(back) << i;
    EXPECT_EQ(back->payload, values[i]) << i;
    ASSERT_TRUE(back->output) << i;
    EXPECT_EQ(*back->output, values[i]) << i;
  }
}

TEST(RunStoreTest, FinalRunsLeaveMemoryOnceCommittedButStayReadable) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(create_committed(s, new_run()).run_id);
  EXPECT_EQ(s.stats().hot_runs, 50u);
  for (const auto& id : ids) {
    s.update_live(id, [](run_record& r) {
      r.status = run_status::completed;
      r.output = json{{"ok", true}};
      r.finished_at = clock_type::now();
    });
  }
  ASSERT_TRUE(s.flush());
  EXPECT_EQ(s.stats().hot_runs, 0u);
  auto r = s.get(ids[7]);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->output, json({{"ok", true}}));
  // A log line after the end (an on_complete hook logging) is still kept.
  EXPECT_TRUE(s.update(ids[7], [](run_record& r) { append_log(r, {clock_type::now(), 1, "info", "late", json::object()}); }));
  ASSERT_TRUE(s.flush());
  EXPECT_EQ(s.get(ids[7])->logs.size(), 1u);
  EXPECT_EQ(s.stats().hot_runs, 0u);
}

TEST(RunStoreTest, SameIdempotencyKeyGivesTheSameRunUntilItFailsOrExpires) {
  temp_dir tmp;
  auto keyed = [](const std::string& task, const std::string& key, std::chrono::milliseconds ttl = 24h) {
    auto r = new_run(task);
    r.idempotency_key = key;
    r.idempotency_expires_at = r.created_at + ttl;
    return r;
  };
  std::string k1_holder;
  {
  run_store s({(tmp / "runs.db").string()});
  auto first = create_committed(s, keyed("t", "k1"));
  EXPECT_FALSE(first.cached);

  // Pending in the same group: answered with the first run, after the commit.
  auto a = keyed("t", "k2");
  std::string a_id = a.id;
  std::vector<create_result> got;
  s.create(std::move(a), [&](create_result c) { got.push_back(c); });
  s.create(keyed("t", "k2"), [&](create_result c) { got.push_back(c); });
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(s.flush());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].run_id, a_id);
  EXPECT_TRUE(got[1].cached);

  auto dup = create_committed(s, keyed("t", "k1"));
  EXPECT_EQ(dup.run_id, first.run_id);
  EXPECT_TRUE(dup.cached);
  EXPECT_FALSE(create_committed(s, keyed("other-task", "k1")).cached) << "keys are per task";

  // COMPLETED and CANCELED keep the key (also once the run has left memory)...
  finish(s, first.run_id, run_status::completed);
  EXPECT_EQ(create_committed(s, keyed("t", "k1")).run_id, first.run_id);
  // ...FAILED releases it.
  finish(s, a_id, run_status::failed);
  auto again = create_committed(s, keyed("t", "k2"));
  EXPECT_FALSE(again.cached);
  EXPECT_NE(again.run_id, a_id);
  EXPECT_EQ(create_committed(s, keyed("t", "k2")).run_id, again.run_id) << "the new run holds the key now";

  // Past its TTL the key is free.
  auto short_lived = create_committed(s, keyed("t", "k3", 50ms));
  std::this_thread::sleep_for(80ms);
  auto after_ttl = create_committed(s, keyed("t", "k3"));
  EXPECT_FALSE(after_ttl.cached);
  EXPECT_NE(after_ttl.run_id, short_lived.run_id);

  k1_holder = first.run_id;
  }
  // And it survives a restart.
  run_store s({(tmp / "runs.db").string()});
  EXPECT_EQ(create_committed(s, keyed("t", "k1")).run_id, k1_holder);
}

TEST(RunStoreTest, ListFiltersAndPagesNewestFirst) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  std::vector<std::string> ids;  // oldest first
  auto t0 = clock_type::now() - 1h;
  for (int i = 0; i < 23; ++i) {
    auto r = new_run(i % 2 ? "odd" : "even");
    r.created_at = t0 + std::chrono::seconds(i);
    if (i % 5 == 0) r.tags = {"five"};
    if (i == 3) r.tags = {"three", "x"};
    ids.push_back(create_committed(s, std::move(r)).run_id);
  }
  finish(s, ids[4], run_status::completed);
  finish(s, ids[6], run_status::failed);

  // Paging through everything, 10 at a time, newest first, each run once.
  std::vector<std::string> seen;
  run_list_query q;
  q.page_size = 10;
  int pages = 0;
  run_list_page page;
  for (;;) {
    page = s.list(q);
    ++pages;
    for (const auto& r : page.runs) seen.push_back(r.id);
    if (page.next.empty()) break;
    q.after = page.next;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 23u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], ids[22 - i]);

  // Back one page from the last.
  run_list_query back;
  back.page_size = 10;
  ASSERT_FALSE(page.previous.empty());
  back.before = page.previous;
  auto prev = s.list(back);
  ASSERT_EQ(prev.runs.size(), 10u);
  EXPECT_EQ(prev.runs.front().id, ids[12]);
  EXPECT_EQ(prev.runs.back().id, ids[3]);

  run_list_query by_status;
  by_status.statuses = {run_status::completed, run_status::failed};
  auto st = s.list(by_status);
  ASSERT_EQ(st.runs.size(), 2u);
  EXPECT_EQ(st.runs[0].id, ids[6]);
  EXPECT_TRUE(st.next.empty());

  run_list_query by_task;
  by_task.task_ids = {"odd"};
  EXPECT_EQ(s.list(by_task).runs.size(), 11u);

  run_list_query by_tag;
  by_tag.tags = {"five", "three"};
  EXPECT_EQ(s.list(by_tag).runs.size(), 6u) << "any of the tags: 0,5,10,15,20 and 3";

  run_list_query by_time;
  by_time.created_from = t0 + 10s;
  by_time.created_to = t0 + 12s;
  auto tm = s.list(by_time);
  ASSERT_EQ(tm.runs.size(), 3u);
  EXPECT_EQ(tm.runs[0].id, ids[12]);

  EXPECT_FALSE(valid_list_cursor("garbage"));
  EXPECT_FALSE(valid_list_cursor("c12x_run"));
}

TEST(RunStoreTest, PurgeDeletesEndedTokensPastTheCutoffButNoneAWaitingRunOrAnIdempotencyKeyStillNeeds) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  const auto long_ago = clock_type::now() - std::chrono::hours(24 * 40);
  auto token = [&](std::optional<time_point> key_expires = std::nullopt, std::optional<time_point> timeout = std::nullopt) {
    token_record t;
    t.id = new_id("waitpoint_");
    t.created_at = long_ago;
    t.timeout_at = timeout;
    if (key_expires) {
      t.idempotency_key = "k-" + t.id;
      t.idempotency_expires_at = key_expires;
    }
    bool cached = false;
    return s.create_token(t, cached).id;
  };
  const auto completed = token();
  const auto timed_out = token(std::nullopt, long_ago + std::chrono::hours(1));
  // Past its timeout long ago, but nothing waited for it, so nothing recorded its end: the API
  // shows it TIMED_OUT, and it is stored WAITING.
  const auto timed_out_unseen = token(std::nullopt, long_ago + std::chrono::hours(1));
  const auto times_out_later = token(std::nullopt, clock_type::now() + std::chrono::hours(1));
  const auto awaited_timed_out = token(std::nullopt, long_ago + std::chrono::hours(1));
  const auto waiting = token();
  const auto keyed = token(clock_type::now() + std::chrono::hours(1));
  const auto key_expired = token(clock_type::now() - std::chrono::hours(1));
  const auto awaited = token();
  for (const auto& id : {completed, keyed, key_expired, awaited}) ASSERT_EQ(s.complete_token(id, {{"ok", 1}}), token_change::changed);
  ASSERT_EQ(s.time_out_token(timed_out), token_change::changed);
  // A WAITING run whose journal has not yet recorded its token's completion (a crash in between).
  auto r = new_run("t", run_status::waiting);
  r.journal = {{"epoch", 1},
               {"ops", {{"e1#0", {{"kind", "token"}, {"tokenId", awaited}, {"done", false}}},
                        {"e1#1", {{"kind", "token"}, {"tokenId", awaited_timed_out}, {"done", false}}}}},
               {"waiting", {"e1#0", "e1#1"}}};
  create_committed(s, std::move(r));
  std::this_thread::sleep_for(20ms);
  const auto cutoff = clock_type::now();
  const auto young = token();
  ASSERT_EQ(s.complete_token(young, {{"ok", 2}}), token_change::changed);  // created long ago, ended after the cutoff

  EXPECT_EQ(s.purge_tokens_before(cutoff, clock_type::now()), 4u);
  EXPECT_FALSE(s.get_token(completed));
  EXPECT_FALSE(s.get_token(timed_out));
  EXPECT_FALSE(s.get_token(timed_out_unseen)) << "its timeout ended it before the cutoff";
  EXPECT_FALSE(s.get_token(key_expired));
  EXPECT_TRUE(s.get_token(waiting)) << "a WAITING token without a timeout is never purged";
  EXPECT_TRUE(s.get_token(times_out_later));
  EXPECT_TRUE(s.get_token(awaited_timed_out)) << "a waiting run still needs its result";
  EXPECT_TRUE(s.get_token(keyed)) << "its idempotency key is still in force";
  EXPECT_TRUE(s.get_token(awaited)) << "a waiting run still needs its result";
  EXPECT_TRUE(s.get_token(young));
  EXPECT_EQ(s.purge_tokens_before(cutoff, clock_type::now()), 0u);
}

TEST(RunStoreTest, PurgeDeletesOldApiBatchesThatNoRunCarriesWithTheirItems) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  const auto long_ago = clock_type::now() - std::chrono::hours(24 * 40);
  auto batch = [&](time_point created, std::optional<time_point> key_expires = std::nullopt) {
    batch_record b;
    b.id = new_id("batch_");
    b.run_count = 1;
    b.created_at = b.updated_at = created;
    if (key_expires) {
      b.idempotency_key = "k-" + b.id;
      b.idempotency_expires_at = key_expires;
    }
    bool cached = false;
    return s.create_batch(b, nullptr, cached).id;
  };
  const auto emptied = batch(long_ago);   // its runs were purged
  const auto with_run = batch(long_ago);  // a run of it is still kept
  const auto keyed = batch(long_ago, clock_type::now() + std::chrono::hours(1));
  auto r = new_run();
  r.batch_id = with_run;
  const auto run = create_committed(s, std::move(r)).run_id;
  s.record_batch_items(emptied, {{0, run}}, true, clock_type::now());  // an item matched to another batch's run
  std::this_thread::sleep_for(20ms);
  const auto cutoff = clock_type::now();
  const auto young = batch(clock_type::now());

  EXPECT_EQ(s.purge_batches_before(cutoff, clock_type::now()), 1u);
  EXPECT_FALSE(s.get_batch(emptied));
  EXPECT_TRUE(s.batch_items(emptied).empty()) << "its items go with it";
  EXPECT_TRUE(s.get_batch(with_run));
  EXPECT_TRUE(s.get_batch(keyed)) << "its idempotency key is still in force";
  EXPECT_TRUE(s.get_batch(young));
  EXPECT_TRUE(s.get(run)) << "a run is never purged for its batch";
}

TEST(RunStoreTest, PurgeDeletesOldFinalRunsWithTheirTagsAndLogsOnly) {
  temp_dir tmp;
  run_store s({(tmp / "runs.db").string()});
  auto old_done = new_run();
  old_done.tags = {"a"};
  auto old_id = create_committed(s, std::move(old_done)).run_id;
  s.update_live(old_id, [](run_record& r) { append_log(r, {clock_type::now(), 1, "info", "x", json::object()}); });
  finish(s, old_id, run_status::completed);
  auto running = create_committed(s, new_run()).run_id;
  // Old finished children in batches: of a finished parent (purged), of an unfinished one (kept:
  // the parent may still need its result); and one not in a batch of the unfinished parent
  // (purged: a lone child's result is in its parent's journal from its end).
  auto orphan = new_run();
  orphan.parent_id = old_id;
  orphan.batch_id = "batch_a";
  auto orphan_id = create_committed(s, std::move(orphan)).run_id;
  finish(s, orphan_id, run_status::completed);
  auto awaited = new_run();
  awaited.parent_id = running;
  awaited.batch_id = "batch_b";
  auto awaited_id = create_committed(s, std::move(awaited)).run_id;
  finish(s, awaited_id, run_status::completed);
  auto lone = new_run();
  lone.parent_id = running;
  auto lone_id = create_committed(s, std::move(lone)).run_id;
  finish(s, lone_id, run_status::completed);
  std::this_thread::sleep_for(20ms);
  auto cutoff = clock_type::now();
  auto young = create_committed(s, new_run()).run_id;
  finish(s, young, run_status::completed);

  EXPECT_EQ(s.purge_finished_before(cutoff), 3u);
  EXPECT_FALSE(s.get(old_id));
  EXPECT_FALSE(s.get(orphan_id));
  EXPECT_FALSE(s.get(lone_id));
  EXPECT_TRUE(s.get(running)) << "unfinished runs are never purged";
  EXPECT_TRUE(s.get(awaited_id)) << "a finished batch child of an unfinished parent is kept";
  EXPECT_TRUE(s.get(young));
  finish(s, running, run_status::completed);
  EXPECT_EQ(s.purge_finished_before(cutoff), 1u) << "once its parent finished, an old child goes";
  EXPECT_FALSE(s.get(awaited_id));
  sqlite::db other((tmp / "runs.db").string(), false);
  auto st = other.prepare("SELECT (SELECT count(*) FROM run_tags) + (SELECT count(*) FROM run_logs)");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.int64(0), 0);
}

TEST(RunStoreTest, CorruptOrForeignFileIsRefusedWithThePathAndNeverRecreated) {
  temp_dir tmp;
  const std::string garbage(8192, 'g');
  tmp.write("runs.db", garbage);
  try {
    run_store s({(tmp / "runs.db").string()});
    FAIL() << "opened a file that is not SQLite";
  } catch (const store_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find((tmp / "runs.db").string()), std::string::npos) << m;
    EXPECT_NE(m.find("file is not a database"), std::string::npos) << m;
    EXPECT_NE(m.find("never recreates"), std::string::npos) << m;
  }
  EXPECT_EQ(test::read_text(tmp / "runs.db"), garbage) << "the file is left as it was";
}

TEST(RunStoreTest, StoreFromANewerTaskhostIsRefused) {
  temp_dir tmp;
  { run_store s({(tmp / "runs.db").string()}); }
  {
    sqlite::db d((tmp / "runs.db").string());
    d.exec("UPDATE taskhost_schema SET version = 999");
  }
  try {
    run_store s({(tmp / "runs.db").string()});
    FAIL() << "opened a store from the future";
  } catch (const store_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer taskhost (store schema version 999"), std::string::npos) << e.what();
  }
}

TEST(RunStoreTest, SecondStoreOnTheSameFileIsRefused) {
  temp_dir tmp;
  run_store first({(tmp / "runs.db").string()});
  try {
    run_store second({(tmp / "runs.db").string()});
    FAIL() << "two stores on one file";
  } catch (const store_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another taskhost process (pid " + std::to_string(::getpid())), std::string::npos)
        << e.what();
  }
}

TEST(RunStoreTest, UnwritableFolderIsAClearError) {
  temp_dir tmp;
  tmp.write("not-a-dir", "x");
  try {
    run_store s({(tmp / "not-a-dir/sub/runs.db").string()});
    FAIL();
  } catch (const store_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create its folder"), std::string::npos) << e.what();
  }
}

TEST(RunStoreTest, InMemoryStoreWorksTheSameWay) {
  run_store s({":memory:"});
  auto id = create_committed(s, new_run()).run_id;
  finish(s, id, run_status::completed);
  EXPECT_EQ(s.get(id)->status, run_status::completed);
  EXPECT_EQ(s.list({}).runs.size(), 1u);
}

TEST(RunStoreTest, AWaitingRunLetGoLeavesMemoryOnceCommittedAndComesBackForItsWait) {
  run_store s({":memory:"});
  auto parent = new_run("t", run_status::executing);
  const std::string pid = parent.id;
  create_committed(s, parent);
  auto child = new_run("c");
  child.parent_id = pid;
  const std::string cid = child.id;
  create_committed(s, child);
  ASSERT_TRUE(s.update_live(pid, [](run_record& r) {
    r.status = run_status::waiting;
    r.journal = {{"epoch", 1}, {"ops", {{"e1#0", {{"kind", "duration"}, {"done", false}}}}}, {"waiting", {"e1#0"}}};
  }));
  ASSERT_TRUE(s.flush());
  EXPECT_TRUE(s.read_live(pid, [](const run_record&) {})) << "its supervisor still holds it";
  s.let_go(pid);
  EXPECT_FALSE(s.read_live(pid, [](const run_record&) {})) << "a committed WAITING run let go is not held in memory";
  EXPECT_EQ(s.stats().hot_runs, 1u);  // the child
  auto cold = s.get(pid);
  ASSERT_TRUE(cold);
  EXPECT_EQ(cold->status, run_status::waiting);
  EXPECT_EQ(cold->journal["waiting"][0], "e1#0");
  // Cancelling it (its children are found too) or completing its wait loads it back.
  auto kids = s.live_children(pid);
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(kids[0].first, cid);
  EXPECT_EQ(kids[0].second, "c");
  ASSERT_TRUE(s.update_unfinished(pid, [](run_record& r) {
    r.journal["ops"]["e1#0"]["done"] = true;
    r.status = run_status::executing;
  }));
  EXPECT_TRUE(s.read_live(pid, [](const run_record& r) { EXPECT_EQ(r.journal["ops"]["e1#0"]["done"], true); }));
  ASSERT_TRUE(s.flush());
  EXPECT_TRUE(s.read_live(pid, [](const run_record&) {})) << "an executing run stays in memory";
  finish(s, pid, run_status::completed);
  ASSERT_TRUE(s.flush());
  bool called = false;
  EXPECT_FALSE(s.update_unfinished(pid, [&](run_record&) { called = true; }));
  EXPECT_FALSE(called) << "a final run is not changed by update_unfinished";
  EXPECT_FALSE(s.update_unfinished("run_unknown", [&](run_record&) { called = true; }));
  EXPECT_FALSE(called);
}

// The race behind a stalled chain of waiting runs: the run's wait completed (a change), the writer
// took that change into a transaction that has not ended, and its supervisor let it go meanwhile.
// The run must stay in memory until the transaction ends: read from SQLite before then, it would
// still be waiting, and the wake-up that reads it would put it back to sleep for ever.
TEST(RunStoreTest, ARunLetGoWhileItsLastChangeIsBeingCommittedLeavesMemoryOnlyAfterTheCommit) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  run_store s({path});
  auto parent = new_run("t", run_status::executing);
  const std::string pid = parent.id;
  create_committed(s, parent);
  ASSERT_TRUE(s.update_live(pid, [](run_record& r) {
    r.status = run_status::waiting;
    r.journal = {{"epoch", 1}, {"ops", {{"e1#0", {{"kind", "task"}, {"done", false}}}}}, {"waiting", {"e1#0"}}};
  }));
  ASSERT_TRUE(s.flush());
  ASSERT_TRUE(s.update_unfinished(pid, [](run_record& r) { r.journal["ops"]["e1#0"]["done"] = true; }));
  auto done_in = [&](const std::string& where) {
    bool done = false;
    EXPECT_TRUE(s.read(pid, [&](const run_record& r) { done = r.journal["ops"]["e1#0"].value("done", false); })) << where;
    return done;
  };

  sqlite::db other(path, false);
  other.exec("BEGIN IMMEDIATE");  // the writer's transaction waits for this one's lock
  std::thread writer([&] { EXPECT_TRUE(s.flush()); });
  while (s.dirty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the change is taken; its commit waits
  s.let_go(pid);
  EXPECT_TRUE(done_in("while its commit waits")) << "the change being committed was lost to a read";
  EXPECT_TRUE(s.read_live(pid, [](const run_record&) {})) << "it leaves memory only once its state is committed";
  other.exec("COMMIT");
  writer.join();
  EXPECT_FALSE(s.read_live(pid, [](const run_record&) {})) << "let go and committed: it leaves memory";
  EXPECT_TRUE(done_in("after its commit"));
}

// A trigger that finds its idempotency key held by a run whose insert is in a transaction that
// has not ended yet is answered with that run once the transaction ends: it joins the run's
// waiters, and the end of that transaction answers them all (it was left unanswered, and its
// HTTP request without a response, when it came after the writer had taken the insert).
TEST(RunStoreTest, ATriggerJoiningARunWhoseInsertIsBeingCommittedIsAnsweredByThatCommit) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  run_store s({path});
  auto keyed = [] {
    auto r = new_run("t");
    r.idempotency_key = "k";
    r.idempotency_expires_at = r.created_at + 24h;
    return r;
  };
  auto first = keyed();
  const std::string first_id = first.id;
  std::mutex mu;
  std::vector<create_result> got;
  auto collect = [&](create_result c) {
    std::lock_guard lock(mu);
    got.push_back(std::move(c));
  };

  sqlite::db other(path, false);
  other.exec("BEGIN IMMEDIATE");  // the writer's transaction waits for this one's lock
  s.create(std::move(first), collect);
  std::thread writer([&] { EXPECT_TRUE(s.flush()); });
  while (s.dirty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the insert is taken; its commit waits
  s.create(keyed(), collect);
  other.exec("COMMIT");
  writer.join();

  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), 2u) << "the trigger that joined the run being committed was never answered";
  EXPECT_EQ(got[0].run_id, first_id);
  EXPECT_FALSE(got[0].cached);
  EXPECT_EQ(got[1].status, 200);
  EXPECT_EQ(got[1].run_id, first_id);
  EXPECT_TRUE(got[1].cached);
  EXPECT_EQ(s.stats().hot_runs, 1u) << "the run itself stays (QUEUED)";
}

TEST(RunStoreTest, SchedulesAreSavedReplacedAndDeletedAndSurviveAReopen) {
  temp_dir tmp;
  const auto path = (tmp / "runs.db").string();
  schedule_record a;
  a.id = "sched_a";
  a.task_id = "report";
  a.cron = "0 9 * * 1-5";
  a.timezone = "Europe/London";
  a.external_id = "customer-1";
  a.dedup_key = "k1";
  a.created_at = a.updated_at = a.since = clock_type::now();
  {
    run_store s({path});
    s.save_schedule(a);
    auto b = a;
    b.id = "sched_b";
    b.type = "DECLARATIVE";
    b.dedup_key = "k1";  // the same key in another type is another schedule
    s.save_schedule(b);
    a.cron = "30 9 * * *";
    a.active = false;
    s.save_schedule(a);  // replaces
    ASSERT_EQ(s.schedules().size(), 2u);
    EXPECT_TRUE(s.delete_schedule("sched_b"));
    EXPECT_FALSE(s.delete_schedule("sched_b"));
  }
  run_store s({path});
  auto all = s.schedules();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, "sched_a");
  EXPECT_EQ(all[0].cron, "30 9 * * *");
  EXPECT_EQ(all[0].timezone, "Europe/London");
  EXPECT_EQ(all[0].external_id, "customer-1");
  EXPECT_EQ(all[0].dedup_key, "k1");
  EXPECT_FALSE(all[0].active);
  EXPECT_FALSE(all[0].last_occurrence);
  // Two IMPERATIVE schedules may not share a deduplication key.
  auto c = a;
  c.id = "sched_c";
  EXPECT_THROW(s.save_schedule(c), store_error);
}

TEST(RunStoreTest, AScheduledRunsCommitRecordsItsOccurrenceInTheSameTransaction) {
  temp_dir tmp;
  const auto path = (tmp / "runs.db").string();
  const auto t1 = clock_type::now() - 1h;
  const auto t2 = clock_type::now();
  std::string run_id;
  {
    run_store s({path});
    schedule_record sch;
    sch.id = "sched_o";
    sch.task_id = "report";
    sch.cron = "0 * * * *";
    sch.created_at = sch.updated_at = sch.since = t1 - 1h;
    s.save_schedule(sch);
    auto r = new_run("report");
    r.schedule_id = "sched_o";
    r.set_rare().schedule_occurrence = t2;
    run_id = r.id;
    auto older = new_run("report");
    older.schedule_id = "sched_o";
    older.set_rare().schedule_occurrence = t1;  // a late commit of an older occurrence never moves it back
    std::optional<create_result> got;
    s.create(std::move(r), [&](create_result c) { got = c; });
    EXPECT_FALSE(s.schedules()[0].last_occurrence) << "not before the run's commit";
    ASSERT_TRUE(s.flush());
    ASSERT_TRUE(got && got->status == 200);
    create_committed(s, std::move(older));
    // Saving the schedule (an API change) does not move it either.
    auto changed = s.schedules()[0];
    changed.last_occurrence.reset();
    s.save_schedule(changed);
  }
  run_store s({path});
  auto sch = s.schedules();
  ASSERT_EQ(sch.size(), 1u);
  ASSERT_TRUE(sch[0].last_occurrence);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::microseconds>(sch[0].last_occurrence->time_since_epoch()),
            std::chrono::duration_cast<std::chrono::microseconds>(t2.time_since_epoch()));
  EXPECT_EQ(s.get(run_id)->schedule_id, "sched_o");
  run_list_query q;
  q.schedule_id = "sched_o";
  EXPECT_EQ(s.list(q).runs.size(), 2u);
  q.schedule_id = "sched_other";
  EXPECT_TRUE(s.list(q).runs.empty());
}

namespace {
api_key_record key_record(const std::string& name, const std::string& hash) {
  return {new_id("key_"), name, hash, "tr_dev_abcde…", clock_type::now(), std::nullopt};
}
}  // namespace

TEST(RunStoreTest, ApiKeyTableWritesBesideAnOpenStoreWhichSeesTheKeys) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  run_store s({path});  // a server holds the store
  EXPECT_TRUE(s.api_keys().empty());
  api_key_table t(path);
  auto a = key_record("ci", std::string(64, 'a'));
  auto b = key_record("", std::string(64, 'b'));
  b.created_at = a.created_at + 1ms;  // listed oldest first
  t.insert(a);
  t.insert(b);
  auto seen = s.api_keys();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].id, a.id);
  EXPECT_EQ(seen[0].name, "ci");
  EXPECT_EQ(seen[0].hash, a.hash);
  EXPECT_EQ(seen[0].display, "tr_dev_abcde…");
  EXPECT_FALSE(seen[0].revoked_at);
  EXPECT_EQ(seen[1].name, "");
  EXPECT_EQ(t.revoke(a.id, clock_type::now()), api_key_table::revoke_result::revoked);
  EXPECT_EQ(t.revoke(a.id, clock_type::now()), api_key_table::revoke_result::already_revoked);
  EXPECT_EQ(t.revoke("key_unknown", clock_type::now()), api_key_table::revoke_result::unknown);
  seen = s.api_keys();
  EXPECT_TRUE(seen[0].revoked_at.has_value());
  EXPECT_FALSE(seen[1].revoked_at.has_value());
  EXPECT_EQ(t.list().size(), 2u);
  // The store's own writes go on beside it.
  EXPECT_EQ(create_committed(s, new_run()).status, 200);
  EXPECT_THROW(t.insert(key_record("dup", a.hash)), store_error) << "one row per hash";
}

TEST(RunStoreTest, ApiKeyTableMakesAStoreThatDoesNotExistYet) {
  temp_dir tmp;
  const std::string path = (tmp / "state/runs.db").string();
  {
    api_key_table t(path);
    t.insert(key_record("first", std::string(64, 'c')));
  }
  run_store s({path});
  ASSERT_EQ(s.api_keys().size(), 1u);
  EXPECT_EQ(s.api_keys()[0].name, "first");
}

TEST(RunStoreTest, ApiKeyTableUpgradesAnOlderStoreOnlyWhenNoTaskhostHoldsIt) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  auto make_v4 = [&] {
    { run_store s({path}); }
    sqlite::db d(path);
    // (and what later versions added; the migrations after 4 create them again)
    d.exec("DROP TABLE api_keys; DROP TABLE packets; DROP TABLE secrets; DROP TABLE batches; DROP TABLE batch_items; "
           "DROP TABLE request_keys; UPDATE taskhost_schema SET version = 4");
  };
  make_v4();
  {
    // A taskhost of schema 4 runs on it: the CLI must not migrate under it.
    int fd = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    try {
      api_key_table t(path);
      FAIL() << "migrated a store another process holds";
    } catch (const store_error& e) {
      EXPECT_NE(std::string(e.what()).find("predates API keys (store schema version 4) and the taskhost running on it cannot add them"),
                std::string::npos)
          << e.what();
    }
    ::close(fd);
  }
  api_key_table t(path);
  t.insert(key_record("after-upgrade", std::string(64, 'd')));
  auto version_of = [](const std::string& p) {
    sqlite::db d(p);
    auto st = d.prepare("SELECT version FROM taskhost_schema");
    return st.step() ? st.int64(0) : -1;
  };
  { run_store fresh({(tmp / "fresh.db").string()}); }
  EXPECT_EQ(version_of(path), version_of((tmp / "fresh.db").string())) << "migrated to the latest version";
  EXPECT_GE(version_of(path), 5);
}

TEST(RunStoreTest, ApiKeyTableRefusesAnInMemoryStore) {
  try {
    api_key_table t(":memory:");
    FAIL() << "keys in a store that keeps nothing";
  } catch (const store_error& e) {
    EXPECT_NE(std::string(e.what()).find("keeps nothing, so it cannot hold API keys"), std::string::npos) << e.what();
  }
  run_store s({":memory:"});
  EXPECT_TRUE(s.api_keys().empty()) << "an in-memory store has the table, empty";
}

TEST(RunStoreTest, ResetIdempotencyKeyFreesItForHotColdAndReopenedRuns) {
  temp_dir tmp;
  auto keyed = [](const std::string& task, const std::string& key) {
    auto r = new_run(task);
    r.idempotency_key = key;
    r.idempotency_expires_at = r.created_at + 24h;
    return r;
  };
  std::string finished_id;
  {
    run_store s({(tmp / "runs.db").string()});
    // A run still in memory (queued).
    auto hot = create_committed(s, keyed("t", "hot"));
    EXPECT_EQ(create_committed(s, keyed("t", "hot")).run_id, hot.run_id);
    EXPECT_FALSE(s.reset_idempotency_key("other-task", "hot")) << "a key is reset for one task";
    EXPECT_TRUE(s.reset_idempotency_key("t", "hot"));
    auto fresh = create_committed(s, keyed("t", "hot"));
    EXPECT_FALSE(fresh.cached);
    EXPECT_NE(fresh.run_id, hot.run_id);
    EXPECT_TRUE(s.get(hot.run_id)->idempotency_key.empty());
    // A finished run, out of memory: only its row holds the key.
    auto done = create_committed(s, keyed("t", "cold"));
    finish(s, done.run_id, run_status::completed);
    EXPECT_EQ(create_committed(s, keyed("t", "cold")).run_id, done.run_id);
    EXPECT_TRUE(s.reset_idempotency_key("t", "cold"));
    EXPECT_NE(create_committed(s, keyed("t", "cold")).run_id, done.run_id);
    EXPECT_FALSE(s.reset_idempotency_key("t", "never-used"));
    finished_id = create_committed(s, keyed("t", "after-restart")).run_id;
    finish(s, finished_id, run_status::completed);
  }
  run_store s({(tmp / "runs.db").string()});
  EXPECT_TRUE(s.reset_idempotency_key("t", "after-restart"));
  EXPECT_NE(create_committed(s, keyed("t", "after-restart")).run_id, finished_id);
}

TEST(RunStoreTest, PacketsAreKeptUntilTheirTtlOrShortlyAfterUseAndSurviveAReopen) {
  temp_dir tmp;
  const auto t0 = clock_type::now();
  std::string big(300 * 1024, 'x');
  big[7] = '\0';  // bytes, not text
  {
    run_store s({(tmp / "runs.db").string()});
    s.save_packet({"packets/a/payload.json", "application/super+json", big, t0, t0 + 1h, {}});
    s.save_packet({"packets/b/payload.txt", "text/plain", "short", t0, t0 + 1h, {}});
    s.save_packet({"packets/c/payload.json", "application/json", "1", t0, t0 + 1min, {}});
  }
  run_store s({(tmp / "runs.db").string()});
  auto a = s.get_packet("packets/a/payload.json", t0);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->data, big) << "every byte, the NUL too";
  EXPECT_EQ(a->content_type, "application/super+json");
  EXPECT_FALSE(a->used_at);
  EXPECT_FALSE(s.get_packet("packets/nope", t0));
  EXPECT_FALSE(s.get_packet("packets/c/payload.json", t0 + 2min)) << "expired: gone for readers before it is purged";

  // Used: it stays a grace period (a retried request finds it), then goes.
  s.packet_used("packets/b/payload.txt", t0, 10min);
  EXPECT_TRUE(s.get_packet("packets/b/payload.txt", t0 + 5min));
  EXPECT_FALSE(s.get_packet("packets/b/payload.txt", t0 + 11min));
  // Once used, uploading again changes nothing; before, it replaces the bytes.
  s.save_packet({"packets/b/payload.txt", "text/plain", "changed", t0, t0 + 1h, {}});
  EXPECT_EQ(s.get_packet("packets/b/payload.txt", t0)->data, "short");
  s.save_packet({"packets/a/payload.json", "application/super+json", "{\"json\":1}", t0, t0 + 1h, {}});
  EXPECT_EQ(s.get_packet("packets/a/payload.json", t0)->data, "{\"json\":1}");

  EXPECT_EQ(s.purge_packets(t0 + 2min), 1u) << "c, past its TTL";
  EXPECT_EQ(s.purge_packets(t0 + 11min), 1u) << "b, past its grace after use";
  EXPECT_EQ(s.purge_packets(t0 + 2h), 1u) << "a, past its TTL";
  EXPECT_EQ(s.purge_packets(t0 + 3h), 0u);
}

TEST(RunStoreTest, ASecretIsMadeOnceAndKeptAcrossReopens) {
  temp_dir tmp;
  int made = 0;
  auto make = [&] {
    ++made;
    return std::string(32, char('a' + made));
  };
  std::string first;
  {
    run_store s({(tmp / "runs.db").string()});
    first = s.secret("url-signing", make);
    EXPECT_EQ(s.secret("url-signing", make), first);
    EXPECT_NE(s.secret("other", make), first);
  }
  run_store s({(tmp / "runs.db").string()});
  EXPECT_EQ(s.secret("url-signing", make), first);
  EXPECT_EQ(made, 2);
}

TEST(RunStoreTest, TokenListFiltersByStatusKeyTagsAndTimeAndPages) {
  run_store s({":memory:"});
  const auto t0 = clock_type::now();
  auto token = [&](const std::string& id, std::vector<std::string> tags, const std::string& key, int age_s) {
    token_record t;
    t.id = id;
    t.created_at = t0 - std::chrono::seconds(age_s);
    t.tags = std::move(tags);
    t.idempotency_key = key;
    bool cached = false;
    s.create_token(t, cached);
  };
  token("waitpoint_a", {"x"}, "ka", 40);
  token("waitpoint_b", {"x", "y"}, "", 30);
  token("waitpoint_c", {"z"}, "kc", 20);
  token("waitpoint_d", {}, "", 10);
  ASSERT_EQ(s.complete_token("waitpoint_b", 1), token_change::changed);
  auto ids = [](const std::vector<token_record>& ts) {
    std::vector<std::string> out;
    for (const auto& t : ts) out.push_back(t.id);
    return out;
  };
  token_list_query q;
  EXPECT_EQ(ids(s.list_tokens(q)), (std::vector<std::string>{"waitpoint_d", "waitpoint_c", "waitpoint_b", "waitpoint_a"}));
  q.statuses = {"COMPLETED"};
  EXPECT_EQ(ids(s.list_tokens(q)), std::vector<std::string>{"waitpoint_b"});
  q.statuses = {"WAITING", "COMPLETED"};
  q.tags = {"y", "z"};
  EXPECT_EQ(ids(s.list_tokens(q)), (std::vector<std::string>{"waitpoint_c", "waitpoint_b"}));
  q = {};
  q.idempotency_key = "ka";
  EXPECT_EQ(ids(s.list_tokens(q)), std::vector<std::string>{"waitpoint_a"});
  q = {};
  q.created_from = t0 - 35s;
  q.created_to = t0 - 15s;
  EXPECT_EQ(ids(s.list_tokens(q)), (std::vector<std::string>{"waitpoint_c", "waitpoint_b"}));
  q = {};
  q.limit = 2;
  q.after = "waitpoint_c";
  EXPECT_EQ(ids(s.list_tokens(q)), (std::vector<std::string>{"waitpoint_b", "waitpoint_a"}));
}

TEST(RunStoreTest, ABatchIsRecordedWithItsRequestKeyAndItsIdempotencyKeyFindsIt) {
  temp_dir tmp;
  const std::string path = (tmp / "runs.db").string();
  const auto now = clock_type::now();
  batch_record b;
  b.id = new_id("batch_");
  b.run_count = 3;
  b.task_ids = {"a", "b"};
  b.created_at = b.updated_at = now;
  b.idempotency_key = "bk";
  b.idempotency_key_user = "mine";
  b.idempotency_expires_at = now + 1h;
  request_key_record rk{"batch", "req-1", "", false, now, now + request_key_ttl};
  {
    run_store s({path});
    bool cached = true;
    auto got = s.create_batch(b, &rk, cached);
    EXPECT_FALSE(cached);
    EXPECT_EQ(got.id, b.id);
    batch_record other = b;
    other.id = new_id("batch_");
    request_key_record rk2{"batch", "req-2", "", false, now, now + request_key_ttl};
    auto again = s.create_batch(other, &rk2, cached);
    EXPECT_TRUE(cached);
    EXPECT_EQ(again.id, b.id) << "the same idempotency key: the earlier batch";
    EXPECT_FALSE(s.get_batch(other.id)) << "nothing recorded for the second";
    auto k2 = s.find_request_key("batch", "req-2", now);
    ASSERT_TRUE(k2);
    EXPECT_EQ(k2->id, b.id);
    EXPECT_TRUE(k2->cached) << "a retry of that request gets isCached as it was";
  }
  run_store s({path});  // all of it survives a restart
  auto got = s.get_batch(b.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->run_count, 3);
  EXPECT_EQ(got->task_ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(got->status, "PENDING");
  EXPECT_FALSE(got->sealed());
  EXPECT_EQ(got->idempotency_key_user, "mine");
  auto k = s.find_request_key("batch", "req-1", now);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->id, b.id);
  EXPECT_FALSE(k->cached);
  EXPECT_FALSE(s.find_request_key("trigger:a", "req-1", now)) << "keys are scoped";
}

TEST(RunStoreTest, ABatchIdempotencyKeyPastItsTimeIsFreeForANewBatch) {
  run_store s({":memory:"});
  const auto now = clock_type::now();
  batch_record b;
  b.id = new_id("batch_");
  b.run_count = 1;
  b.created_at = b.updated_at = now - 2h;
  b.idempotency_key = "bk";
  b.idempotency_expires_at = now - 1h;
  bool cached = false;
  s.create_batch(b, nullptr, cached);
  batch_record c = b;
  c.id = new_id("batch_");
  c.idempotency_expires_at = now + 1h;
  auto got = s.create_batch(c, nullptr, cached);
  EXPECT_FALSE(cached);
  EXPECT_EQ(got.id, c.id);
  ASSERT_TRUE(s.get_batch(b.id)) << "the old batch stays";
  EXPECT_EQ(s.get_batch(b.id)->idempotency_key, "");
}

TEST(RunStoreTest, ARunsInsertRecordsItsBatchIndexAndRequestKeyInTheSameTransaction) {
  run_store s({":memory:"});
  auto r = new_run("t");
  r.batch_id = "batch_x";
  r.set_rare().batch_index = 4;
  r.set_rare().request_scope = "trigger:t";
  r.set_rare().request_key = "req";
  EXPECT_FALSE(s.find_request_key("trigger:t", "req", clock_type::now()));
  s.create(r, [](create_result) {});
  EXPECT_TRUE(s.batch_items("batch_x").empty()) << "not before the commit";
  EXPECT_FALSE(s.find_request_key("trigger:t", "req", clock_type::now()));
  ASSERT_TRUE(s.flush());
  EXPECT_EQ(s.batch_items("batch_x"), (std::vector<std::pair<int64_t, std::string>>{{4, r.id}}));
  auto k = s.find_request_key("trigger:t", "req", clock_type::now());
  ASSERT_TRUE(k);
  EXPECT_EQ(k->id, r.id);
  EXPECT_FALSE(k->cached);
  EXPECT_GE(k->expires_at - r.created_at, std::chrono::minutes(10)) << "kept at least 10 minutes";
  run_list_query q;
  q.batch_id = "batch_x";
  auto page = s.list(q);
  ASSERT_EQ(page.runs.size(), 1u);
  EXPECT_EQ(page.runs[0].id, r.id);
  q.batch_id = "batch_y";
  EXPECT_TRUE(s.list(q).runs.empty());
}

TEST(RunStoreTest, RequestKeysAreFoundUntilTheyExpireAndThenPurged) {
  run_store s({":memory:"});
  const auto now = clock_type::now();
  s.save_request_key({"trigger:t", "old", "run_1", true, now - 20min, now - 5min});
  s.save_request_key({"trigger:t", "new", "run_2", false, now, now + 15min});
  EXPECT_FALSE(s.find_request_key("trigger:t", "old", now)) << "expired";
  EXPECT_TRUE(s.find_request_key("trigger:t", "new", now));
  EXPECT_FALSE(s.find_request_key("trigger:t", "new", now + 16min));
  EXPECT_EQ(s.purge_request_keys(now), 1u);
  EXPECT_EQ(s.purge_request_keys(now), 0u);
  EXPECT_TRUE(s.find_request_key("trigger:t", "new", now));
  s.save_request_key({"trigger:t", "old", "run_3", false, now, now + 15min});
  EXPECT_EQ(s.find_request_key("trigger:t", "old", now)->id, "run_3") << "a key past its time is free again";
}

TEST(RunStoreTest, RecordBatchItemsAddsExistingRunsAndSealsOnce) {
  run_store s({":memory:"});
  const auto now = clock_type::now();
  batch_record b;
  b.id = "batch_s";
  b.run_count = 2;
  b.created_at = b.updated_at = now;
  bool cached = false;
  s.create_batch(b, nullptr, cached);
  s.record_batch_items("batch_s", {{1, "run_old"}}, false, now);
  EXPECT_FALSE(s.get_batch("batch_s")->sealed());
  s.record_batch_items("batch_s", {{1, "run_other"}}, true, now + 1s);
  auto got = s.get_batch("batch_s");
  EXPECT_TRUE(got->sealed());
  EXPECT_EQ(got->status, "COMPLETED");
  EXPECT_EQ(to_us(*got->sealed_at), to_us(now + 1s));
  EXPECT_EQ(s.batch_items("batch_s"), (std::vector<std::pair<int64_t, std::string>>{{1, "run_old"}})) << "an index keeps its first run";
  s.record_batch_items("batch_s", {}, true, now + 2s);
  EXPECT_EQ(to_us(*s.get_batch("batch_s")->sealed_at), to_us(now + 1s)) << "sealed once";
}
