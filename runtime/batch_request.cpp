#include "runtime/batch_request.hpp"

#include <algorithm>
#include <cmath>

#include "runtime/run.hpp"

namespace taskhost {
namespace {

using json = nlohmann::json;

/// A JSON number that is a whole number (2 and 2.0 alike: JavaScript cannot tell them apart).
std::optional<int64_t> whole_number(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

batch_create_parse_result parse_batch_create_body(std::string_view body) {
  auto fail = [](std::string msg) { return batch_create_parse_result{std::nullopt, {400, std::move(msg)}}; };
  json b = json::parse(body, nullptr, false);
  if (b.is_discarded() || !b.is_object())
    return fail("the body must be a JSON object like {\"runCount\": 10, \"taskIdentifiers\": [\"my-task\"]}");
  batch_create_input in;
  auto rc = b.find("runCount");
  if (rc == b.end()) return fail("runCount is required: the number of items the batch will hold");
  auto n = whole_number(*rc);
  if (!n || *n < 1) return fail("runCount must be a positive whole number, got " + rc->dump());
  if (*n > max_batch_run_count)
    return fail("runCount is " + std::to_string(*n) + "; a batch holds at most " + std::to_string(max_batch_run_count) + " items");
  in.run_count = *n;
  if (auto t = b.find("taskIdentifiers"); t != b.end() && !t->is_null()) {
    if (!t->is_array() || t->empty()) return fail("taskIdentifiers must be a non-empty array of task ids");
    for (const auto& id : *t) {
      if (!id.is_string() || id.get_ref<const std::string&>().empty()) return fail("taskIdentifiers must contain task ids (non-empty strings)");
      in.task_ids.push_back(id.get<std::string>());
    }
    std::sort(in.task_ids.begin(), in.task_ids.end());
    in.task_ids.erase(std::unique(in.task_ids.begin(), in.task_ids.end()), in.task_ids.end());
  }
  for (const char* k : {"parentRunId", "resumeParentOnCompletion"})
    if (auto it = b.find(k); it != b.end() && !it->is_null())
      return fail(std::string("'") + k + "' is not supported by this taskhost yet (batches triggered from a task use ctx.batch_trigger)");
  if (auto k = b.find("idempotencyKey"); k != b.end() && !k->is_null()) {
    if (!k->is_string() || k->get_ref<const std::string&>().empty() || k->get_ref<const std::string&>().size() > max_idempotency_key_chars)
      return fail("idempotencyKey must be a string of 1 to " + std::to_string(max_idempotency_key_chars) + " characters");
    in.idempotency_key = k->get<std::string>();
    if (auto o = b.find("idempotencyKeyOptions"); o != b.end() && o->is_object())
      if (auto u = o->find("key"); u != o->end() && u->is_string() && u->get_ref<const std::string&>().size() <= max_idempotency_key_chars)
        in.idempotency_key_user = u->get<std::string>();
  }
  return {std::move(in), {}};
}

batch_items_parse_result parse_batch_items(std::string_view body, uint64_t max_payload_bytes) {
  batch_items_parse_result out;
  auto fail = [&](std::string msg) {
    out.items.clear();
    out.error = {400, std::move(msg)};
    return std::move(out);
  };
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = "line " + std::to_string(line_no);
    json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded()) return fail(where + " is not valid JSON (each line must be one item: {\"index\", \"task\", \"payload\", \"options\"})");
    if (!j.is_object()) return fail(where + " is not a JSON object (each line must be one item: {\"index\", \"task\", \"payload\", \"options\"})");
    auto idx = j.find("index");
    std::optional<int64_t> index = idx == j.end() ? std::nullopt : whole_number(*idx);
    if (!index || *index < 0) return fail(where + ": the item needs an index, a whole number from 0");
    auto task = j.find("task");
    if (task == j.end() || !task->is_string() || task->get_ref<const std::string&>().empty())
      return fail(where + " (index " + std::to_string(*index) + "): the item needs a task (a task id)");
    auto parsed = parse_trigger_json(task->get_ref<const std::string&>(), j, max_payload_bytes);
    // A payload over the limit is a 413 for a single trigger; here it is one bad line of a 200-ish
    // stream, and the whole request is refused as a bad request naming it.
    if (!parsed.input) return fail("item " + std::to_string(*index) + " (" + where + "): " + parsed.error.message);
    out.items.push_back({*index, line_no, std::move(*parsed.input)});
  }
  return out;
}

}  // namespace taskhost
