#include "runtime/waits.hpp"

#include <algorithm>
#include <future>
#include <set>

#include "runtime/ids.hpp"
#include "runtime/log.hpp"
#include "taskhost/config/duration.hpp"

namespace taskhost {
namespace {

const json empty_object = json::object();

json& journal_of(run_record& r) {
  if (!r.journal.is_object()) {
    int epoch = r.attempts.empty() ? 1 : r.attempts.back().number;
    r.journal = {{"epoch", epoch}, {"ops", json::object()}, {"waiting", json::array()}};
  }
  return r.journal;
}

/// The journal's entries, read-only (an empty object when there are none).
const json& ops_of(const json& journal) {
  if (!journal.is_object()) return empty_object;
  auto it = journal.find("ops");
  return it != journal.end() && it->is_object() ? *it : empty_object;
}

bool all_done(const json& journal) {
  const json& ops = journal.value("ops", empty_object);
  for (const auto& k : journal.value("waiting", json::array())) {
    if (!k.is_string()) continue;
    auto it = ops.find(k.get<std::string>());
    if (it == ops.end() || !it->value("done", false)) return false;
  }
  return true;
}

/// Item i's result as a batch entry written before results were held in memory recorded it
/// ("results" in the entry); null when there is none.
const json& recorded_result(const json& entry, size_t i) {
  static const json none;
  auto it = entry.find("results");
  return it != entry.end() && it->is_array() && i < it->size() ? (*it)[i] : none;
}

json error_result(const std::string& id, const std::string& name, const std::string& message) {
  return {{"ok", false}, {"id", id}, {"error", {{"name", name}, {"message", message}}}};
}

json token_result(const token_record& t) {
  if (t.status == "COMPLETED") return {{"ok", true}, {"output", t.output ? *t.output : json(nullptr)}};
  return {{"ok", false},
          {"error", {{"name", "WaitpointTimeoutError"}, {"message", "wait token " + t.id + " timed out"}}}};
}

}  // namespace

void new_journal_epoch(run_record& r, int attempt) {
  if (!r.journal.is_object()) return;
  json& ops = r.journal["ops"];
  for (auto it = ops.begin(); it != ops.end();) {
    if (it.key().rfind("k:", 0) == 0) ++it;
    else it = ops.erase(it);
  }
  r.journal["epoch"] = attempt;
  r.journal["waiting"] = json::array();
}

std::string wait_kinds(const json& journal, const json& keys) {
  std::set<std::string> kinds;
  const json& ops = journal.is_object() ? journal.value("ops", empty_object) : empty_object;
  for (const auto& k : keys)
    if (k.is_string())
      if (auto it = ops.find(k.get<std::string>()); it != ops.end()) kinds.insert(it->value("kind", ""));
  std::string out;
  for (const auto& k : kinds) out += (out.empty() ? "" : ",") + k;
  return out;
}

json token_to_json(const token_record& t) {
  std::string status = t.status;
  if (status == "WAITING" && t.timeout_at && *t.timeout_at <= clock_type::now()) status = "TIMED_OUT";
  json j = {{"id", t.id}, {"status", status}, {"createdAt", format_time(t.created_at)}, {"tags", t.tags}};
  if (t.completed_at) j["completedAt"] = format_time(*t.completed_at);
  if (t.timeout_at) j["timeoutAt"] = format_time(*t.timeout_at);
  if (!t.idempotency_key.empty()) j["idempotencyKey"] = t.idempotency_key;
  if (t.idempotency_expires_at) j["idempotencyKeyExpiresAt"] = format_time(*t.idempotency_expires_at);
  if (t.output) {
    j["output"] = *t.output;
    j["outputIsError"] = false;
  }
  return j;
}

json token_to_api_json(const token_record& t) {
  json j = token_to_json(t);
  j.erase("output");
  j.erase("outputIsError");
  // What the token was completed with, as the SDK reads it (§5.9): a string it parses by
  // outputType. A timed-out token's output is the error the SDK turns into WaitpointTimeoutError.
  if (j["status"] == "COMPLETED") {
    j["output"] = t.output ? t.output->dump(-1, ' ', false, json::error_handler_t::replace) : std::string("null");
    j["outputType"] = "application/json";
    j["outputIsError"] = false;
  } else if (j["status"] == "TIMED_OUT") {
    const std::string at = t.timeout_at ? format_time(*t.timeout_at) : format_time(clock_type::now());
    j["output"] = json{{"message", "Waitpoint timed out at " + at}, {"code", "TRIGGER_WAITPOINT_TIMEOUT"}}.dump();
    j["outputType"] = "application/json";
    j["outputIsError"] = true;
  }
  return j;
}

wait_coordinator::wait_coordinator(wait_env env) : env_(std::move(env)) {}

json wait_coordinator::call(const std::string& run_id, const std::string& method, const json& req) {
  if (stopped_) throw call_error("taskhost is shutting down");
  if (!req.is_object()) throw call_error("the request is not a JSON object");
  if (method == "op") return op(run_id, req);
  if (method == "step_done") {
    const std::string key = req.value("key", "");
    bool found = false;
    env_.store->update_live(run_id, [&](run_record& r) {
      json& ops = journal_of(r)["ops"];
      found = true;
      ops[key] = {{"kind", "step"}, {"name", req.value("name", "")}, {"done", true}, {"result", req.value("result", json())}};
    });
    if (!found) throw call_error("the run has ended (canceled or timed out)");
    return json::object();
  }
  throw call_error("unknown host call '" + method + "'");
}

json wait_coordinator::op(const std::string& run_id, const json& req) {
  const std::string kind = req.value("kind", "");
  std::string key;
  std::optional<json> existing;
  run_record parent;  // the fields a child takes from it
  bool live = env_.store->read_live(run_id, [&](const run_record& r) {
    int epoch = r.journal.is_object() ? r.journal.value("epoch", 1) : (r.attempts.empty() ? 1 : r.attempts.back().number);
    if (req.contains("key") && req["key"].is_string() && !req["key"].get<std::string>().empty())
      key = "k:" + req["key"].get<std::string>();
    else
      key = "e" + std::to_string(epoch) + "#" + std::to_string(req.value("seq", -1));
    if (r.journal.is_object())
      if (auto it = ops_of(r.journal).find(key); it != ops_of(r.journal).end()) existing = *it;
    parent.id = r.id;
    parent.root_id = r.root_id;
    parent.depth = r.depth;
  });
  if (!live) throw call_error("the run has ended (canceled or timed out)");
  if (existing) {
    const std::string was = existing->value("kind", "");
    if (was != kind)
      throw call_error("replay diverged: the run's code now does '" + kind + "' where its journal recorded '" + was +
                       "' (" + key + "). Code between awaits must do the same on every replay: keep what changes "
                       "(time, random numbers, I/O) inside ctx.step");
    return {{"key", key}, {"done", existing->value("done", false)}, {"result", existing->value("result", json())}, {"replayed", true}};
  }

  auto record = [&](json entry) {
    if (!env_.store->update_live(run_id, [&](run_record& r) { journal_of(r)["ops"][key] = entry; }))
      throw call_error("the run has ended (canceled or timed out)");
    return json{{"key", key}, {"done", entry.value("done", false)}, {"result", entry.value("result", json())}};
  };
  auto parse_item = [&](const std::string& task, const json& item, const std::string& where) {
    auto p = parse_trigger_json(task, item, env_.max_payload_bytes);  // its "payload" and "options"
    if (!p.input) throw call_error(where + p.error.message);
    if (p.input->payload_type == "application/store")
      throw call_error(where + "payloadType application/store (an uploaded packet) is only accepted over the HTTP API");
    return std::move(*p.input);
  };

  if (kind == "step") return {{"key", key}, {"done", false}};  // recorded by step_done
  if (kind == "duration") {
    const auto now = clock_type::now();
    int64_t until_us;
    if (req.contains("untilMs")) {
      until_us = req.value("untilMs", int64_t{0}) * 1000;
    } else {
      int64_t ms = req.value("ms", int64_t{0});
      if (ms < 0) throw call_error("a wait of negative length (" + std::to_string(ms) + " ms)");
      until_us = to_us(now) + ms * 1000;
    }
    bool done = until_us <= to_us(now);
    return record({{"kind", "duration"}, {"until", until_us}, {"done", done}, {"result", done ? json::object() : json()}});
  }
  if (kind == "task" || kind == "trigger") {
    const std::string task = req.value("task", "");
    if (!env_.has_task(task)) {
      if (kind == "trigger") throw call_error("Task '" + task + "' not found");
      return record({{"kind", kind}, {"runId", ""}, {"done", true}, {"result", error_result("", "TaskNotFoundError", "Task '" + task + "' not found")}});
    }
    trigger_input in = parse_item(task, req, "");
    const std::string child = new_run_id();
    json out = record(kind == "task" ? json{{"kind", kind}, {"runId", child}, {"done", false}}
                                     : json{{"kind", kind}, {"done", true}, {"result", {{"id", child}}}});
    start_child(run_id, kind == "task" ? key : std::string(), -1, "", child, std::move(in), parent);
    if (kind == "trigger") wait_committed(run_id, key);  // the code gets the id of a recorded run
    return out;
  }
  if (kind == "batch" || kind == "batch_trigger") {
    const std::string task = req.value("task", "");
    const json& items = req.contains("items") ? req["items"] : empty_object;
    if (!items.is_array()) throw call_error("a batch needs an array of items");
    if (items.size() > max_batch_items)
      throw call_error("a batch holds at most " + std::to_string(max_batch_items) + " items; this one has " + std::to_string(items.size()));
    if (!env_.has_task(task)) throw call_error("batch of task '" + task + "': the task is not deployed, so no item can be triggered");
    std::vector<trigger_input> inputs;
    inputs.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i)
      inputs.push_back(parse_item(task, items[i].is_object() ? items[i] : json::object(), "batch item " + std::to_string(i) + ": "));
    const std::string batch = new_id("batch_");
    json runs = json::array();
    std::vector<std::string> ids;
    for (size_t i = 0; i < inputs.size(); ++i) ids.push_back(new_run_id());
    for (const auto& id : ids) runs.push_back(id);
    json entry;
    if (kind == "batch") {
      entry = {{"kind", kind}, {"batchId", batch}, {"runs", runs}, {"done", ids.empty()}};
      if (ids.empty()) entry["result"] = {{"id", batch}, {"runs", json::array()}};
    } else {
      entry = {{"kind", kind}, {"done", true}, {"result", {{"batchId", batch}, {"runs", runs}}}};
    }
    json out = record(std::move(entry));
    if (kind == "batch" && !ids.empty()) {
      std::lock_guard lock(mu_);
      batches_[run_id + '\n' + key] = {std::vector<json>(ids.size()), ids.size()};
    }
    for (size_t i = 0; i < inputs.size(); ++i)
      start_child(run_id, kind == "batch" ? key : std::string(), static_cast<int>(i), batch, ids[i], std::move(inputs[i]), parent);
    if (kind == "batch_trigger") wait_committed(run_id, key);
    return out;
  }
  if (kind == "token") {
    const std::string id = req.value("id", "");
    auto t = env_.store->get_token(id);
    if (!t) throw call_error("unknown wait token '" + id + "'");
    json entry = {{"kind", "token"}, {"tokenId", id}, {"done", false}};
    if (t->timeout_at) entry["timeoutAt"] = to_us(*t->timeout_at);
    json out = record(std::move(entry));
    watch(id, {run_id, key, -1});
    if (t->status != "WAITING") {
      complete_op(run_id, key, -1, token_result(*t));
      return {{"key", key}, {"done", true}, {"result", token_result(*t)}};
    }
    return out;
  }
  if (kind == "create_token") {
    try {
      return record({{"kind", kind}, {"done", true}, {"result", create_token(req.value("options", json::object()))}});
    } catch (const store_error& e) {
      throw call_error(e.what());
    }
  }
  if (kind == "complete_token") {
    std::string error;
    if (complete_token(req.value("id", ""), req.value("data", json()), error) != 200) throw call_error(error);
    return record({{"kind", kind}, {"done", true}, {"result", json::object()}});
  }
  throw call_error("unknown operation kind '" + kind + "'");
}

void wait_coordinator::start_child(const std::string& parent_id, const std::string& key, int index, const std::string& batch_id,
                                   const std::string& id, trigger_input in, const run_record& parent) {
  // The id was made before the run is recorded: the parent's journal names it first, so a
  // restart never finds a child that its parent does not know about.
  run_record r = new_run_record(std::move(in), id, clock_type::now());
  r.parent_id = parent_id;
  r.root_id = parent.root_id.empty() ? parent_id : parent.root_id;
  r.depth = parent.depth + 1;
  r.batch_id = batch_id;
  if (!key.empty()) watch(id, {parent_id, key, index});
  if (stopped_) throw call_error("taskhost is shutting down");
  env_.create_run(std::move(r), [this, parent_id, key, index, id](create_result c) {
    if (key.empty()) return;
    if (c.status != 200) {
      complete_op(parent_id, key, index, error_result(id, "TriggerError", "the child run could not be recorded: " + c.error));
    } else if (c.run_id != id) {
      // An idempotency key gave an earlier run: wait for that one instead.
      {
        std::lock_guard lock(mu_);
        waiters_.erase(id);
      }
      env_.store->update_unfinished(parent_id, [&](run_record& r) {
        if (!ops_of(r.journal).contains(key)) return;
        json& e = r.journal["ops"][key];
        if (index >= 0) e["runs"][static_cast<size_t>(index)] = c.run_id;
        else e["runId"] = c.run_id;
      });
      watch(c.run_id, {parent_id, key, index});
      json res = run_result(c.run_id);
      if (!res.contains("pending")) run_finished(c.run_id);
    }
  });
}

void wait_coordinator::wait_committed(const std::string& run_id, const std::string& key) {
  auto done = std::make_shared<std::promise<std::string>>();
  auto committed = done->get_future();
  env_.store->after_commit([done](bool ok, const std::string& error) { done->set_value(ok ? std::string() : error); });
  std::string error = committed.wait_for(std::chrono::seconds(30)) == std::future_status::ready
                          ? committed.get()
                          : std::string("the run store did not commit within 30 s");
  if (error.empty()) return;
  // Not recorded: the journal must not hand out its id again.
  env_.store->update_live(run_id, [&](run_record& r) {
    if (r.journal.is_object()) r.journal["ops"].erase(key);
  });
  throw call_error("the run could not be recorded: " + error);
}

void wait_coordinator::watch(const std::string& target, waiter w) {
  std::lock_guard lock(mu_);
  waiters_[target].push_back(std::move(w));
}

json wait_coordinator::run_result(const std::string& id) {
  json out;
  bool found = env_.store->read(id, [&](const run_record& r) {  // no copy of the run (its logs, its payload)
    if (!is_final(r.status)) {
      out = {{"pending", true}};
    } else if (r.status == run_status::completed) {
      out = {{"ok", true}, {"id", id}, {"status", "COMPLETED"}, {"output", r.output ? *r.output : json(nullptr)}};
    } else {
      const std::string ended = "run " + id + " ended " + std::string(to_string(r.status));
      json err = r.error ? *r.error : json{{"message", ended}};
      if (!err.is_object()) err = json{{"message", err.dump()}};
      if (!err.contains("message")) err["message"] = ended;
      out = {{"ok", false}, {"id", id}, {"status", to_string(r.status)}, {"error", std::move(err)}};
    }
  });
  if (!found) return error_result(id, "RunNotFoundError", "run " + id + " was never recorded (taskhost stopped before it was committed)");
  return out;
}

std::vector<wait_coordinator::waiter> wait_coordinator::take_waiters(const std::string& target) {
  std::lock_guard lock(mu_);
  auto it = waiters_.find(target);
  if (it == waiters_.end()) return {};
  std::vector<waiter> ws = std::move(it->second);
  waiters_.erase(it);
  return ws;
}

void wait_coordinator::park(const std::string& run_id, std::shared_ptr<parked_run> p) {
  std::lock_guard lock(mu_);
  parked_[run_id] = std::move(p);
}

void wait_coordinator::unpark(const std::string& run_id) {
  std::lock_guard lock(mu_);
  parked_.erase(run_id);
}

void wait_coordinator::run_finished(const std::string& id) {
  {
    // A parent that ended (failed, canceled, or done without awaiting its batch) never reads
    // the results of its batches still under way: their children's ends find no progress and no
    // unfinished parent to read it from, and change nothing.
    std::lock_guard lock(mu_);
    const std::string prefix = id + '\n';
    auto it = batches_.lower_bound(prefix);
    while (it != batches_.end() && it->first.compare(0, prefix.size(), prefix) == 0) it = batches_.erase(it);
  }
  std::vector<waiter> ws = take_waiters(id);
  if (ws.empty()) return;
  json res = run_result(id);
  for (auto& w : ws) complete_op(w.run_id, w.key, w.index, res);
}

size_t wait_coordinator::batches_under_way() {
  std::lock_guard lock(mu_);
  return batches_.size();
}

std::optional<json> wait_coordinator::batch_item_done(const std::string& run_id, const std::string& key, size_t index, json result) {
  const std::string id = run_id + '\n' + key;
  std::unique_lock lock(mu_);
  auto it = batches_.find(id);
  if (it == batches_.end()) {
    // A batch recorded before this process started (restore() brings its items here): its
    // progress is made again from the journal.
    lock.unlock();
    batch_progress p;
    bool pending = false;
    env_.store->read(run_id, [&](const run_record& r) {  // a waiting run may be cold
      if (is_final(r.status)) return;
      const json& ops = ops_of(r.journal);
      auto e = ops.find(key);
      if (e == ops.end() || e->value("done", false) || e->value("kind", "") != "batch" || !e->contains("runs")) return;
      pending = true;
      p.results.resize((*e)["runs"].size());
      p.left = p.results.size();
      for (size_t i = 0; i < p.results.size(); ++i)
        if (const json& done = recorded_result(*e, i); !done.is_null()) {
          p.results[i] = done;
          --p.left;
        }
    });
    if (!pending) return std::nullopt;
    lock.lock();
    it = batches_.try_emplace(id, std::move(p)).first;
  }
  batch_progress& p = it->second;
  if (index >= p.results.size() || !p.results[index].is_null() || p.left == 0) return std::nullopt;
  p.results[index] = std::move(result);
  if (--p.left > 0) return std::nullopt;
  json runs(std::move(p.results));
  batches_.erase(it);
  return runs;
}

void wait_coordinator::complete_op(const std::string& run_id, const std::string& key, int index, json result) {
  if (index >= 0) {
    // A batch's item: its result waits here until the batch's last one, and the parent's
    // journal is written once then (not once per item, each time with all results so far).
    auto all = batch_item_done(run_id, key, static_cast<size_t>(index), std::move(result));
    if (!all) return;
    result = std::move(*all);
  }
  bool wake = false;
  std::string task;
  env_.store->update_unfinished(run_id, [&](run_record& r) {  // a waiting run may be cold
    if (!r.journal.is_object()) return;
    json& ops = r.journal["ops"];
    auto it = ops.find(key);
    if (it == ops.end() || it->value("done", false)) return;
    json& e = *it;
    if (e.value("kind", "") == "batch") {
      if (index < 0) return;
      e["result"] = {{"id", e["batchId"]}, {"runs", std::move(result)}};
      e.erase("results");  // of journals written before the results were kept in memory
      e.erase("remaining");
    } else {
      e["result"] = std::move(result);
    }
    e["done"] = true;
    if (r.status == run_status::waiting && all_done(r.journal)) {
      wake = true;
      task = r.task_id;
    }
  });
  if (!wake || stopped_) return;
  // Offered by its supervisor: resumed from here, a hand-off fewer.
  std::shared_ptr<parked_run> p;
  {
    std::lock_guard lock(mu_);
    if (auto it = parked_.find(run_id); it != parked_.end()) {
      p = std::move(it->second);
      parked_.erase(it);
    }
  }
  int expected = parked_run::parked;
  if (p && p->state.compare_exchange_strong(expected, parked_run::taken) && p->resume(*p)) return;
  env_.wake(run_id, task);
}

wait_coordinator::wait_state wait_coordinator::suspend(const std::string& run_id, const json& keys) {
  // Only what the run's own journal holds can complete: anything else would never wake it.
  std::string invalid;
  bool live = env_.store->update_live(run_id, [&](run_record& r) {
    const json& ops = ops_of(r.journal);
    for (const auto& k : keys)
      if (!k.is_string() || !ops.contains(k.get<std::string>())) invalid = k.dump();
    if (keys.empty()) invalid = "[]";
    if (invalid.empty()) journal_of(r)["waiting"] = keys;
  });
  if (!invalid.empty()) {
    wait_state w;
    w.known = live;
    w.invalid = "the run suspended waiting for " + invalid + ", which is not an operation it started (a plugin bug)";
    return w;
  }
  return check(run_id, true);
}

wait_coordinator::wait_state wait_coordinator::check(const std::string& run_id, bool resume_if_done) {
  // Tokens past their timeout first (SQLite, outside the store's lock).
  std::vector<std::string> due_tokens;
  const auto now = clock_type::now();
  env_.store->read(run_id, [&](const run_record& r) {  // a waiting run may be cold
    if (is_final(r.status) || !r.journal.is_object()) return;
    const json& ops = ops_of(r.journal);
    for (const auto& k : r.journal.value("waiting", json::array())) {
      if (!k.is_string()) continue;
      auto it = ops.find(k.get<std::string>());
      if (it == ops.end() || it->value("done", false) || it->value("kind", "") != "token") continue;
      if (it->contains("timeoutAt") && (*it)["timeoutAt"].get<int64_t>() <= to_us(now)) due_tokens.push_back(it->value("tokenId", ""));
    }
  });
  for (const auto& t : due_tokens) {
    try {
      env_.store->time_out_token(t);
      if (auto tok = env_.store->get_token(t)) finish_token(t, token_result(*tok));
    } catch (const store_error& e) {
      log::error("wait token could not be timed out", {{"token", t}, {"error", e.what()}});
    }
  }
  wait_state w;
  env_.store->update_unfinished(run_id, [&](run_record& r) {
    w.known = true;
    json& j = journal_of(r);
    json& ops = j["ops"];
    const json keys = j["waiting"];
    w.kinds = wait_kinds(j, keys);
    for (const auto& k : keys) {
      if (!k.is_string()) continue;
      auto it = ops.find(k.get<std::string>());
      if (it == ops.end() || it->value("done", false)) continue;
      if (it->value("kind", "") == "duration") {
        int64_t until = it->value("until", int64_t{0});
        if (until <= to_us(now)) {
          (*it)["done"] = true;
          (*it)["result"] = json::object();
          continue;
        }
        if (!w.next_wake || from_us(until) < *w.next_wake) w.next_wake = from_us(until);
      } else if (it->value("kind", "") == "token" && it->contains("timeoutAt")) {
        auto at = from_us((*it)["timeoutAt"].get<int64_t>());
        if (!w.next_wake || at < *w.next_wake) w.next_wake = at;
      }
    }
    w.all_done = all_done(j);
    if (w.all_done && resume_if_done) {
      j["waiting"] = json::array();
      r.status = run_status::executing;
    } else if (!w.all_done) {
      r.status = run_status::waiting;
    }
  });
  return w;
}

void wait_coordinator::restore(const std::string& run_id) {
  std::vector<std::tuple<std::string, std::string, int, std::string>> pending;  // key, kind, index, target
  env_.store->read(run_id, [&](const run_record& r) {
    if (is_final(r.status) || !r.journal.is_object()) return;
    for (const auto& [key, e] : ops_of(r.journal).items()) {
      if (e.value("done", false)) continue;
      const std::string kind = e.value("kind", "");
      if (kind == "task") pending.emplace_back(key, kind, -1, e.value("runId", ""));
      else if (kind == "token") pending.emplace_back(key, kind, -1, e.value("tokenId", ""));
      else if (kind == "batch" && e.contains("runs"))
        for (size_t i = 0; i < e["runs"].size(); ++i)
          if (recorded_result(e, i).is_null()) pending.emplace_back(key, kind, static_cast<int>(i), e["runs"][i].get<std::string>());
    }
  });
  for (const auto& [key, kind, index, target] : pending) {
    watch(target, {run_id, key, index});
    if (kind == "token") {
      auto t = env_.store->get_token(target);
      if (!t) complete_op(run_id, key, index, {{"ok", false}, {"error", {{"name", "WaitpointNotFoundError"}, {"message", "wait token " + target + " is gone"}}}});
      else if (t->status != "WAITING") finish_token(target, token_result(*t));
    } else {
      json res = run_result(target);
      if (!res.contains("pending")) run_finished(target);
    }
  }
}

void wait_coordinator::finish_token(const std::string& token_id, const json& result) {
  for (auto& w : take_waiters(token_id)) complete_op(w.run_id, w.key, w.index, result);
}

json wait_coordinator::create_token(const json& opts) {
  bool cached = false;
  json j = token_to_json(new_token(opts, cached));
  j["isCached"] = cached;
  return j;
}

token_record wait_coordinator::new_token(const json& opts, bool& cached) {
  if (!opts.is_object()) throw call_error("token options must be a JSON object");
  token_record t;
  t.id = new_id("waitpoint_");
  t.created_at = clock_type::now();
  if (auto it = opts.find("timeout"); it != opts.end() && !it->is_null()) {
    std::string why;
    auto at = parse_delay(*it, why);
    if (!at) throw call_error("timeout: " + why);
    t.timeout_at = *at;
  }
  if (auto it = opts.find("idempotencyKey"); it != opts.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().empty() || it->get<std::string>().size() > max_idempotency_key_chars)
      throw call_error("idempotencyKey must be a non-empty string of at most 2048 characters");
    t.idempotency_key = it->get<std::string>();
    std::chrono::milliseconds ttl = std::chrono::hours(24 * 30);
    if (auto k = opts.find("idempotencyKeyTTL"); k != opts.end() && !k->is_null()) {
      auto d = k->is_string() ? config::parse_duration(k->get<std::string>()) : std::nullopt;
      if (!d || d->count() <= 0) throw call_error("idempotencyKeyTTL must be a duration like \"10m\" or \"7d\"");
      ttl = *d;
    }
    t.idempotency_expires_at = t.created_at + ttl;
  }
  if (auto it = opts.find("tags"); it != opts.end() && !it->is_null()) {
    json tags = it->is_string() ? json::array({*it}) : *it;
    if (!tags.is_array() || tags.size() > max_tags_per_run) throw call_error("tags must be a string or an array of at most 10 strings");
    for (const auto& x : tags) {
      if (!x.is_string() || x.get<std::string>().empty() || x.get<std::string>().size() > max_tag_chars)
        throw call_error("each tag must be a non-empty string of at most 128 characters");
      t.tags.push_back(x.get<std::string>());
    }
  }
  return env_.store->create_token(std::move(t), cached);  // store_error: the caller's to answer (503)
}

int wait_coordinator::complete_token(const std::string& id, const json& data, std::string& error, bool same_data_ok) {
  token_change c;
  try {
    c = env_.store->complete_token(id, data);
  } catch (const store_error& e) {
    error = e.what();
    return 503;
  }
  if (c == token_change::unknown) {
    error = "Waitpoint token not found: " + id;
    return 404;
  }
  if (c == token_change::already_final) {
    auto t = env_.store->get_token(id);
    // The same data again is a retry whose first answer was lost: it did what was asked.
    if (same_data_ok && t && t->status == "COMPLETED" && t->output && *t->output == data) return 200;
    error = "Waitpoint token " + id + " is already " + (t && t->status == "TIMED_OUT" ? "timed out" : "completed") +
            (same_data_ok && t && t->status == "COMPLETED" ? " with other data" : "");
    if (t && t->status == "TIMED_OUT") finish_token(id, token_result(*t));
    return 409;
  }
  finish_token(id, {{"ok", true}, {"output", data}});
  return 200;
}

std::optional<token_record> wait_coordinator::token(const std::string& id) { return env_.store->get_token(id); }

std::vector<token_record> wait_coordinator::list_tokens(token_list_query q, bool& more) {
  const size_t limit = q.limit;
  q.limit = limit + 1;
  auto ts = env_.store->list_tokens(q);
  more = ts.size() > limit;
  if (more) ts.resize(limit);
  return ts;
}

}  // namespace taskhost
