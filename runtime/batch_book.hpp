// Batches made through the API in two phases (Trigger.dev's v3 batch API, trigger-rest-api.md
// §5.2): create() records a batch that expects runCount items; add_items() takes a stream of them.
// Each index gets one run however often it is sent — the SDK re-sends the whole stream when it
// retries — and the batch is sealed (COMPLETED) once every index 0..runCount-1 has its run.
//
// Durability: an index has its run exactly when that run is committed, because the run's insert
// records (batch, index) → run in the same transaction (run_record::batch_index). An item whose
// idempotency key finds an earlier run is recorded with the batch's seal, before the answer. A
// stream is answered only after all of that is committed; after a crash, what is committed is
// what the next stream sees.
//
// Concurrency: two streams of one batch may overlap (a retry after a lost connection). An index
// is claimed under the batch's lock before its run is created, so it gets one run; the other
// stream counts it as deduplicated.
//
// Example:
//
//   taskhost::batch_book book({.store = &store, .has_task = ..., .has_queue = ..., .create_run = ...});
//   auto created = book.create({.run_count = 2, .task_ids = {"echo"}});     // {"id", "runCount", "isCached"}
//   book.add_items(created.body["id"], std::move(items), [](taskhost::api_answer a) { ... });
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/batch_request.hpp"
#include "runtime/run_service.hpp"

namespace taskhost {

class batch_book {
public:
  struct env {
    run_store* store = nullptr;
    std::function<bool(const std::string& task)> has_task;    ///< the task is deployed
    std::function<bool(const std::string& queue)> has_queue;  ///< the queue is declared
    /// Records a run and hands it to its task; `done` once, on any thread, after the commit (or
    /// with the refusal: 503 shutting down or store failing, 400 unknown queue).
    std::function<void(run_record, std::function<void(create_result)>)> create_run;
    /// Reads an uploaded packet (an item's offloaded payload; trigger_request.hpp). Unset: an item
    /// that names a packet is refused.
    packet_reader read_packet;
    /// A recorded run took its payload from the packet at this storagePath. Unset: nothing.
    std::function<void(const std::string& storage_path)> packet_used;
  };

  /// OWNERSHIP: the store must outlive the book, and the book every create_run callback.
  explicit batch_book(env e);
  ~batch_book();
  batch_book(const batch_book&) = delete;
  batch_book& operator=(const batch_book&) = delete;

  /// Phase 1 (see run_service::create_batch). Records the request's idempotency key with it.
  api_answer create(const batch_create_input& in);
  /// Phase 2 (see run_service::add_batch_items). Every item is checked (index in range, task among
  /// the batch's taskIdentifiers and deployed, queue declared) before any run is created. An item
  /// whose payload the SDK offloaded (application/store) reads its packet only if it gets a run: a
  /// deduplicated one — the SDK re-sends the whole stream — needs none, and its packet may be gone.
  void add_items(const std::string& id, std::vector<batch_item> items, std::function<void(api_answer)> done);
  /// RetrieveBatchV2Response for an API batch (runs in index order) or a task's batch (runs
  /// oldest first), plus "allRunsFinished" and, for a task's batch, "parentId"; 404 unknown.
  api_answer get(const std::string& id) const;

  /// Batches with a stream in flight (their state is in memory only meanwhile).
  size_t live() const;

private:
  struct state;
  struct stream;
  std::shared_ptr<state> acquire(const std::string& id);
  void release(const std::string& id);
  void complete(const std::shared_ptr<stream>& s);

  env env_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<state>> live_;
};

}  // namespace taskhost
