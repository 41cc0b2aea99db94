#include "runtime/batch_book.hpp"

#include <algorithm>
#include <atomic>
#include <unordered_set>

#include "runtime/ids.hpp"

namespace taskhost {

namespace {

enum slot : uint8_t { free_slot = 0, claimed = 1, has_run = 2 };

api_answer error_answer(int status, std::string msg) { return {status, {{"error", std::move(msg)}}}; }

std::string item_at(const batch_item& it) {
  return "item " + std::to_string(it.index) + " (line " + std::to_string(it.line) + ")";
}

}  // namespace

/// A batch's state while streams of it are in flight: which index is free, claimed by a stream
/// that is creating its run, or has its run. Loaded from the store by the first stream.
struct batch_book::state {
  std::mutex mu;
  bool loaded = false;
  bool unknown = false;
  batch_record rec;
  std::vector<uint8_t> slots;  ///< by index
  int64_t with_run = 0;        ///< slots == has_run
  int users = 0;               ///< streams holding it (guarded by the book's mu_)
};

/// One stream being answered: the runs it asked for, and what became of them.
struct batch_book::stream {
  std::string id;
  std::shared_ptr<state> st;
  std::function<void(api_answer)> done;
  int64_t deduplicated = 0;
  std::atomic<size_t> left{0};
  std::mutex mu;
  std::vector<std::pair<int64_t, create_result>> results;
  std::vector<std::pair<int64_t, std::string>> packets;  ///< (index, storagePath) of payloads read from packets
};

batch_book::batch_book(env e) : env_(std::move(e)) {}
batch_book::~batch_book() = default;

api_answer batch_book::create(const batch_create_input& in) {
  for (const auto& t : in.task_ids)
    if (!env_.has_task(t)) return error_answer(404, "Task '" + t + "' not found");
  const auto now = clock_type::now();
  batch_record b;
  b.id = new_id("batch_");
  b.run_count = in.run_count;
  b.task_ids = in.task_ids;
  b.created_at = b.updated_at = now;
  if (!in.idempotency_key.empty()) {
    b.idempotency_key = in.idempotency_key;
    b.idempotency_key_user = in.idempotency_key_user;
    b.idempotency_expires_at = now + std::chrono::milliseconds(in.idempotency_key_ttl_ms);
  }
  request_key_record rk{"batch", in.request_key, {}, false, now, now + request_key_ttl};
  bool cached = false;
  try {
    b = env_.store->create_batch(std::move(b), in.request_key.empty() ? nullptr : &rk, cached);
  } catch (const store_error& e) {
    return error_answer(503, e.what());
  }
  json body = {{"id", b.id}, {"runCount", b.run_count}, {"isCached", cached}};
  if (!b.idempotency_key.empty()) body["idempotencyKey"] = b.idempotency_key;
  return {200, std::move(body)};
}

std::shared_ptr<batch_book::state> batch_book::acquire(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& st = live_[id];
  if (!st) st = std::make_shared<state>();
  ++st->users;
  return st;
}

void batch_book::release(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end() && --it->second->users == 0) live_.erase(it);
}

size_t batch_book::live() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

void batch_book::add_items(const std::string& id, std::vector<batch_item> items, std::function<void(api_answer)> done) {
  auto st = acquire(id);
  auto s = std::make_shared<stream>();
  s->id = id;
  s->st = st;
  s->done = std::move(done);
  auto answer = [&](api_answer a) {
    release(id);
    auto d = std::move(s->done);
    d(std::move(a));
  };
  std::vector<batch_item*> todo;
  {
    std::lock_guard lock(st->mu);
    if (!st->loaded) {
      st->loaded = true;
      try {
        if (auto rec = env_.store->get_batch(id)) {
          st->rec = std::move(*rec);
          st->slots.assign(size_t(st->rec.run_count), free_slot);
          for (const auto& [idx, run] : env_.store->batch_items(id))
            if (idx >= 0 && idx < st->rec.run_count && st->slots[size_t(idx)] != has_run) {
              st->slots[size_t(idx)] = has_run;
              ++st->with_run;
            }
        } else {
          st->unknown = true;
        }
      } catch (const std::exception& e) {
        st->loaded = false;  // the next stream tries again
        return answer(error_answer(503, std::string("the batch could not be read: ") + e.what()));
      }
    }
    if (st->unknown) return answer(error_answer(404, "Batch not found: " + id));
    const auto& rec = st->rec;
    if (rec.sealed())  // the SDK re-sends everything on a retry: nothing new can come
      return answer({200, {{"id", id}, {"itemsAccepted", 0}, {"itemsDeduplicated", items.size()}, {"sealed", true}}});
    // Every item is checked before any run is created: a refused stream triggers nothing.
    for (const auto& it : items) {
      if (it.index >= rec.run_count)
        return answer(error_answer(400, item_at(it) + ": index " + std::to_string(it.index) + " is out of range: the batch holds " +
                                            std::to_string(rec.run_count) + " items (indexes 0.." + std::to_string(rec.run_count - 1) + ")"));
      const auto& task = it.in.task_id;
      if (!rec.task_ids.empty() && !std::binary_search(rec.task_ids.begin(), rec.task_ids.end(), task)) {
        std::string list;
        for (const auto& t : rec.task_ids) list += (list.empty() ? "" : ", ") + t;
        return answer(error_answer(400, item_at(it) + ": task '" + task + "' is not one of the batch's taskIdentifiers (" + list + ")"));
      }
      if (!env_.has_task(task)) return answer(error_answer(404, "Task '" + task + "' not found (" + item_at(it) + ")"));
      if (!it.in.queue.empty() && !env_.has_queue(it.in.queue))
        return answer(error_answer(400, item_at(it) + ": Queue '" + it.in.queue + "' not found: options.queue must name a queue of the deployment"));
    }
    for (auto& it : items) {
      auto& slot = st->slots[size_t(it.index)];
      if (slot != free_slot) {
        ++s->deduplicated;  // has its run, or is claimed (by this stream or one in flight)
        continue;
      }
      slot = claimed;
      todo.push_back(&it);
    }
  }
  // Offloaded payloads: read from their packets now, for the items that get a run. A packet that
  // is missing refuses the stream (and frees its claims), as any bad item does.
  for (auto* it : todo) {
    if (it->in.payload_type != "application/store") continue;
    std::string path = it->in.payload.is_string() ? it->in.payload.get<std::string>() : std::string();
    auto e = env_.read_packet ? resolve_stored_payload(it->in, env_.read_packet)
                              : std::optional<request_error>(request_error{400, "offloaded payloads (application/store) are not supported here"});
    if (e) {
      {
        std::lock_guard lock(st->mu);
        for (auto* t : todo) st->slots[size_t(t->index)] = free_slot;
      }
      return answer(error_answer(e->status, item_at(*it) + ": " + e->message));
    }
    s->packets.emplace_back(it->index, std::move(path));
  }
  if (todo.empty()) return complete(s);
  s->left = todo.size();
  s->results.reserve(todo.size());
  const auto now = clock_type::now();
  for (auto* it : todo) {
    const int64_t index = it->index;
    run_record r = new_run_record(std::move(it->in), new_run_id(), now);
    r.batch_id = id;
    r.set_rare().batch_index = int(index);
    // All of them are in the store's next commit (or the few after it): one transaction for a
    // stream, not one per item.
    env_.create_run(std::move(r), [this, s, index](create_result c) {
      {
        std::lock_guard lock(s->mu);
        s->results.emplace_back(index, std::move(c));
      }
      if (--s->left == 0) complete(s);
    });
  }
}

void batch_book::complete(const std::shared_ptr<stream>& s) {
  auto& st = *s->st;
  api_answer out;
  {
    std::lock_guard lock(st.mu);
    std::vector<std::pair<int64_t, std::string>> existing;  // items whose idempotency key found an earlier run
    int64_t accepted = 0;
    std::optional<api_answer> failed;
    int64_t failed_index = -1;
    for (auto& [index, c] : s->results) {
      if (c.status == 200) {
        st.slots[size_t(index)] = has_run;
        ++st.with_run;
        ++accepted;
        if (c.cached) existing.emplace_back(index, c.run_id);
      } else {
        st.slots[size_t(index)] = free_slot;  // a retry of the stream tries it again
        if (!failed || index < failed_index) {
          failed_index = index;
          failed = error_answer(c.status, "item " + std::to_string(index) + ": " + c.error);
        }
      }
    }
    const bool seal = !st.rec.sealed() && st.with_run == st.rec.run_count;
    if (!existing.empty() || seal) {
      const auto now = clock_type::now();
      try {
        env_.store->record_batch_items(s->id, existing, seal, now);
        if (seal) {
          st.rec.sealed_at = now;
          st.rec.updated_at = now;
          st.rec.status = "COMPLETED";
        }
      } catch (const store_error& e) {
        for (const auto& [index, run] : existing) {
          st.slots[size_t(index)] = free_slot;
          --st.with_run;
        }
        failed = error_answer(503, e.what());
      }
    }
    if (failed) {
      out = std::move(*failed);
    } else {
      out = {200, {{"id", s->id}, {"itemsAccepted", accepted}, {"itemsDeduplicated", s->deduplicated}, {"sealed", st.rec.sealed()}}};
      if (!st.rec.sealed()) {
        out.body["enqueuedCount"] = st.with_run;
        out.body["expectedCount"] = st.rec.run_count;
      }
    }
  }
  if (env_.packet_used && !s->packets.empty()) {
    std::unordered_set<int64_t> made;  // the indexes whose run was recorded with its packet's payload
    for (const auto& [index, c] : s->results)
      if (c.status == 200 && !c.cached) made.insert(index);
    for (const auto& [index, path] : s->packets)
      if (made.count(index)) env_.packet_used(path);
  }
  release(s->id);
  auto done = std::move(s->done);
  done(std::move(out));
}

api_answer batch_book::get(const std::string& id) const {
  std::optional<batch_record> rec;
  std::vector<run_record> runs;
  std::vector<std::pair<int64_t, std::string>> items;
  try {
    rec = env_.store->get_batch(id);
    runs = env_.store->batch_runs(id);  // the runs carrying the batch's id
    if (rec) items = env_.store->batch_items(id);
  } catch (const std::exception& e) {
    return error_answer(503, std::string("the batch could not be read: ") + e.what());
  }
  if (!rec && runs.empty()) return error_answer(404, "Batch not found: " + id);
  json ids = json::array();
  bool all_final = true;
  time_point created = rec ? rec->created_at : runs.front().created_at;
  time_point updated = rec ? rec->updated_at : created;
  for (const auto& r : runs) {
    if (!rec) ids.push_back(r.id);
    all_final = all_final && is_final(r.status);
    updated = std::max(updated, r.updated_at);
  }
  for (const auto& [idx, run] : items) ids.push_back(run);
  // Trigger.dev's status tells whether every item has been made into a run (not whether the runs
  // have finished): a task's batch is made at once; an API batch once sealed.
  const bool sealed = !rec || rec->sealed();
  json processing = {{"errors", json::array()}};
  if (rec && rec->sealed_at) processing["completedAt"] = format_time(*rec->sealed_at);
  else if (!rec) processing["completedAt"] = format_time(created);
  json body = {{"id", id},
               {"status", sealed ? "COMPLETED" : "PENDING"},
               {"createdAt", format_time(created)},
               {"updatedAt", format_time(updated)},
               {"runCount", rec ? rec->run_count : int64_t(runs.size())},
               {"runs", std::move(ids)},
               {"processing", std::move(processing)},
               {"allRunsFinished", sealed && all_final}};
  if (rec && !rec->idempotency_key.empty())
    body["idempotencyKey"] = rec->idempotency_key_user.empty() ? rec->idempotency_key : rec->idempotency_key_user;
  if (!runs.empty() && !runs.front().parent_id.empty()) body["parentId"] = runs.front().parent_id;
  return {200, std::move(body)};
}

}  // namespace taskhost
