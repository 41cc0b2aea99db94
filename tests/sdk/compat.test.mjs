// The official @trigger.dev/sdk (4.8.3), unchanged, against a running taskhost: what a Node
// backend does today must work when only TRIGGER_API_URL and TRIGGER_SECRET_KEY change.
// Needs TRIGGER_API_URL pointing at a taskhost that serves hello.so and the good, durable and
// schedules fixture plugins, and TRIGGER_SECRET_KEY holding one of its API keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { tasks, runs, schedules, batch, idempotencyKeys, wait, configure, auth, NotFoundError, AuthenticationError, BadRequestError, BatchTriggerError, WaitpointTimeoutError } from "@trigger.dev/sdk";

assert.match(process.env.TRIGGER_SECRET_KEY ?? "", /^tr_dev_[0-9A-Za-z]{32}$/, "run.sh passes a real key");
configure({ baseURL: process.env.TRIGGER_API_URL, secretKey: process.env.TRIGGER_SECRET_KEY });

async function finished(id) {
  for (let i = 0; i < 400; i++) {
    const r = await runs.retrieve(id);
    if (r.isCompleted) return r;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`run ${id} did not finish`);
}

test("tasks.trigger returns a handle and runs.retrieve shows the completed run", async () => {
  const handle = await tasks.trigger("hello-world", { message: "Hello world!" });
  assert.match(handle.id, /^run_[1-9a-km-z]{21}$/);
  assert.ok(handle.publicAccessToken, "x-trigger-jwt becomes publicAccessToken");
  const run = await finished(handle.id);
  assert.equal(run.status, "COMPLETED");
  assert.equal(run.isSuccess, true);
  assert.equal(run.taskIdentifier, "hello-world");
  assert.deepEqual(run.payload, { message: "Hello world!" });
  assert.deepEqual(run.output, { echo: "Hello world!" });
  assert.equal(run.attemptCount, 1);
  assert.ok(run.createdAt instanceof Date && !isNaN(run.createdAt));
  assert.ok(run.finishedAt instanceof Date && run.finishedAt >= run.createdAt);
});

test("payloads of every JSON kind reach the task as plain JSON", async () => {
  for (const payload of [[1, 2, 3], 42, true, { nested: { a: [null, "x"] } }, "a plain string"]) {
    const run = await finished((await tasks.trigger("fixture-echo", payload)).id);
    assert.deepEqual(run.output.payload, payload);
  }
});

test("tags and maxAttempts options are honoured", async () => {
  const h = await tasks.trigger("fixture-throw", {}, { maxAttempts: 1, tags: ["b", "a"] });
  const run = await finished(h.id);
  assert.equal(run.status, "FAILED");
  assert.equal(run.isFailed, true);
  assert.deepEqual(run.tags, ["a", "b"]);
  assert.equal(run.attemptCount, 1);
  assert.equal(run.error.message, "boom: the task failed");
  assert.equal(run.output, undefined);
});

test("an unknown task is a NotFoundError at once, not after retries", async () => {
  const t0 = Date.now();
  await assert.rejects(tasks.trigger("no-such-task", {}), (e) => {
    assert.ok(e instanceof NotFoundError);
    assert.equal(e.status, 404);
    assert.match(e.message, /Task 'no-such-task' not found/);
    return true;
  });
  assert.ok(Date.now() - t0 < 900, "x-should-retry: false stops the SDK's retries");
});

test("a wrong key is an AuthenticationError (401) at once, not after retries", async () => {
  const wrongKey = "tr_dev_" + "x".repeat(32);
  for (const call of [() => tasks.trigger("hello-world", {}), () => runs.retrieve("run_doesnotexist"), () => runs.list({ limit: 1 }),
                      () => schedules.list()]) {
    const t0 = Date.now();
    await assert.rejects(auth.withAuth({ baseURL: process.env.TRIGGER_API_URL, secretKey: wrongKey }, call), (e) => {
      assert.ok(e instanceof AuthenticationError, `${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 401);
      assert.match(e.message, /Invalid API key/);
      return true;
    });
    assert.ok(Date.now() - t0 < 900, "x-should-retry: false stops the SDK's retries");
  }
  // The right key again (withAuth only lasted for its callback), and the time zones, which the SDK
  // asks for without a key.
  assert.ok((await runs.list({ limit: 1 })).data);
  assert.ok((await schedules.timezones()).timezones.includes("UTC"));
});

test("without a key header the server answers 401 too (the SDK always sends one; a raw fetch)", async () => {
  const res = await fetch(`${process.env.TRIGGER_API_URL}/api/v1/runs`);
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("x-should-retry"), "false");
  assert.match((await res.json()).error, /Missing Authorization header/);
  const inQuery = await fetch(`${process.env.TRIGGER_API_URL}/api/v1/runs?key=${process.env.TRIGGER_SECRET_KEY}`);
  assert.equal(inQuery.status, 401, "a key in the query string is ignored");
});

test("an unknown run is a NotFoundError", async () => {
  await assert.rejects(runs.retrieve("run_doesnotexist"), (e) => e instanceof NotFoundError);
});

test("runs.cancel cancels an executing run and is a no-op on a finished one", async () => {
  const h = await tasks.trigger("fixture-wait-cancel", { max_s: 30 });
  for (let i = 0; i < 400 && (await runs.retrieve(h.id)).status !== "EXECUTING"; i++) await new Promise((r) => setTimeout(r, 10));
  const res = await runs.cancel(h.id);
  assert.equal(res.id, h.id);
  const run = await runs.retrieve(h.id);
  assert.equal(run.status, "CANCELED");
  assert.equal(run.isCancelled, true);
  assert.equal(run.isCompleted, true);
  assert.equal((await runs.cancel(h.id)).id, h.id);
  await assert.rejects(runs.cancel("run_doesnotexist"), (e) => e instanceof NotFoundError);
});

test("a maxDuration under 5 s is refused with a 400", async () => {
  await assert.rejects(tasks.trigger("fixture-echo", {}, { maxDuration: 2 }), /maxDuration/);
});

test("an idempotency key returns the same run, cached, and shows the caller's key", async () => {
  const key = await idempotencyKeys.create(`compat-${Date.now()}`);
  const a = await tasks.trigger("fixture-echo", { n: 1 }, { idempotencyKey: key });
  const b = await tasks.trigger("fixture-echo", { n: 2 }, { idempotencyKey: key });
  assert.equal(b.id, a.id);
  assert.equal(b.isCached, true);
  assert.notEqual(a.isCached, true);
  const run = await finished(a.id);
  assert.deepEqual(run.output.payload, { n: 1 });
  assert.match(run.idempotencyKey, /^compat-/);
});

test("a delayed run is DELAYED, can be rescheduled, then runs", async () => {
  const h = await tasks.trigger("fixture-echo", {}, { delay: "1h" });
  let run = await runs.retrieve(h.id);
  assert.equal(run.status, "DELAYED");
  assert.ok(run.delayedUntil instanceof Date && run.delayedUntil > new Date(Date.now() + 59 * 60 * 1000));
  const soon = new Date(Date.now() + 200);
  run = await runs.reschedule(h.id, { delay: soon });
  assert.equal(run.id, h.id);
  run = await finished(h.id);
  assert.equal(run.status, "COMPLETED");
  assert.ok(run.startedAt >= new Date(soon.getTime() - 1));
  await assert.rejects(runs.reschedule(h.id, { delay: "1h" }), /not delayed/);
});

test("runs.list pages through runs newest first with filters", async () => {
  const tag = `list-${Date.now()}`;
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await tasks.trigger("fixture-echo", { i }, { tags: [tag] })).id);
  for (const id of ids) await finished(id);
  const seen = [];
  for await (const r of runs.list({ tag, limit: 2 })) seen.push(r.id);
  assert.deepEqual(seen, [...ids].reverse());
  const page = await runs.list({ tag, status: ["COMPLETED"], taskIdentifier: "fixture-echo", limit: 10 });
  assert.equal(page.data.length, 5);
  assert.equal(page.data[0].env.name, "taskhost");
});

test("runs.replay makes a new run with the same payload and tags", async () => {
  const first = await finished((await tasks.trigger("fixture-echo", { again: true }, { tags: ["replayed"] })).id);
  const { id } = await runs.replay(first.id);
  assert.notEqual(id, first.id);
  const run = await finished(id);
  assert.deepEqual(run.payload, { again: true });
  assert.deepEqual(run.tags, ["replayed"]);
});

test("metadata from the trigger and from ctx.metadata is returned as an object", async () => {
  const h = await tasks.trigger("durable-metadata", { hold_ms: 0 }, { metadata: { initial: true } });
  const run = await finished(h.id);
  assert.equal(run.status, "COMPLETED");
  assert.equal(run.metadata.initial, true);
  assert.equal(run.metadata.progress, 2.5);
});

test("a ttl that passes before the run starts expires it, and poll ends", async () => {
  // Both on a queue of one (the SDK's `queue` option): the echo waits for the sleeper's slot.
  const busy = [(await tasks.trigger("fixture-sleep", { ms: 1500 }, { queue: "one" })).id];
  const h = await tasks.trigger("fixture-echo", {}, { ttl: 1, queue: "one" });
  const run = await finished(h.id);
  assert.equal(run.status, "EXPIRED");
  assert.equal(run.isCompleted, true);
  assert.ok(run.expiredAt instanceof Date);
  for (const id of busy) await finished(id);
});

test("queue, concurrencyKey and priority reach the run's queue; an unknown queue is a 400", async () => {
  const h = await tasks.trigger("fixture-echo", { x: 1 }, { queue: "one", concurrencyKey: "tenant-1", priority: 5 });
  const run = await finished(h.id);
  assert.equal(run.status, "COMPLETED");
  await assert.rejects(tasks.trigger("fixture-echo", {}, { queue: "nope" }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /Queue 'nope' not found/);
    return true;
  });
});

test("schedules: create (upsert by deduplicationKey), retrieve, list, update, deactivate, activate, del, timezones", async () => {
  const created = await schedules.create({
    task: "sched-echo", cron: "0 9 * * 1-5", timezone: "Europe/London", externalId: "customer-1", deduplicationKey: "compat-1",
  });
  assert.match(created.id, /^sched_[1-9a-km-z]{21}$/);
  assert.equal(created.type, "IMPERATIVE");
  assert.equal(created.active, true);
  assert.equal(created.generator.type, "CRON");
  assert.equal(created.generator.expression, "0 9 * * 1-5");
  assert.ok(created.generator.description.length > 0);
  assert.equal(created.timezone, "Europe/London");
  assert.equal(created.externalId, "customer-1");
  assert.ok(created.nextRun instanceof Date && created.nextRun > new Date());
  const again = await schedules.create({ task: "sched-echo", cron: "30 9 * * *", deduplicationKey: "compat-1" });
  assert.equal(again.id, created.id, "the same deduplicationKey updates the schedule");
  assert.equal((await schedules.retrieve(created.id)).generator.expression, "30 9 * * *");
  const page = await schedules.list({ perPage: 100 });
  assert.ok(page.data.some((s) => s.id === created.id));
  const updated = await schedules.update(created.id, { task: "sched-echo", cron: "0 0 * * *", timezone: "Asia/Tokyo" });
  assert.equal(updated.timezone, "Asia/Tokyo");
  assert.equal((await schedules.deactivate(created.id)).active, false);
  assert.equal((await schedules.activate(created.id)).active, true);
  await assert.rejects(schedules.create({ task: "sched-echo", cron: "61 * * * *", deduplicationKey: "compat-bad" }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /minute/);
    return true;
  });
  await assert.rejects(schedules.create({ task: "fixture-echo", cron: "* * * * *", deduplicationKey: "compat-plain" }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /not a scheduled task/);
    return true;
  });
  const del = await schedules.del(created.id);
  assert.equal(del.id, created.id);
  await assert.rejects(schedules.retrieve(created.id), NotFoundError);
  const tz = await schedules.timezones();
  assert.ok(tz.timezones.includes("Europe/London") && tz.timezones.includes("UTC"));
  const noUtc = await schedules.timezones({ excludeUtc: true });
  assert.ok(!noUtc.timezones.includes("UTC"));
});

test("a scheduled run carries its schedule payload and names its schedule", async () => {
  const s = await schedules.create({ task: "sched-echo", cron: "* * * * * *", externalId: "ext-7", deduplicationKey: "compat-every-second" });
  let list;
  for (let i = 0; i < 200; i++) {
    list = await runs.list({ schedule: s.id });
    if (list.data.length > 0) break;
    await new Promise((res) => setTimeout(res, 25));
  }
  await schedules.deactivate(s.id);
  assert.ok(list.data.length > 0, "the schedule fired");
  const run = await finished(list.data[0].id);
  assert.equal(run.status, "COMPLETED");
  assert.equal(run.payload.scheduleId, s.id);
  assert.equal(run.payload.externalId, "ext-7");
  assert.equal(run.payload.type, "IMPERATIVE");
  assert.equal(run.payload.upcoming.length, 5);
  assert.equal(run.output.timestamp, run.payload.timestamp);
  assert.equal(run.schedule.id, s.id);
  assert.equal(run.schedule.externalId, "ext-7");
  assert.equal(run.schedule.generator.expression, "* * * * * *");
});

/** Runs `fn` with every fetch the SDK makes recorded as {method, url, authorization}. */
async function recordingFetches(fn) {
  const real = globalThis.fetch;
  const calls = [];
  globalThis.fetch = (url, init = {}) => {
    const h = new Headers(init.headers ?? {});
    calls.push({ method: init.method ?? "GET", url: String(url), authorization: h.get("authorization") });
    return real(url, init);
  };
  try {
    return { result: await fn(), calls };
  } finally {
    globalThis.fetch = real;
  }
}

test("a payload over 128 KiB is uploaded as a packet and the run's payload and output equal it", async () => {
  const big = { items: Array.from({ length: 8000 }, (_, i) => ({ i, text: `item ${i} ü € padding padding` })), at: new Date(0) };
  const expected = JSON.parse(JSON.stringify(big));  // the task gets the plain JSON (dates as ISO strings)
  assert.ok(Buffer.byteLength(JSON.stringify(big)) > 300 * 1024);
  const { result: h, calls } = await recordingFetches(() => tasks.trigger("fixture-echo", big));
  const presign = calls.find((c) => c.method === "PUT" && c.url.includes("/api/v2/packets/"));
  assert.ok(presign, "the SDK asked for a presigned URL: " + JSON.stringify(calls));
  assert.ok(presign.authorization, "presigning is authenticated");
  const put = calls.find((c) => c.method === "PUT" && c.url.includes("/api/v2/packets/upload/"));
  assert.ok(put, "the SDK uploaded the packet");
  assert.equal(put.authorization, null, "the upload carries no key");
  const run = await finished(h.id);
  assert.equal(run.status, "COMPLETED");
  assert.deepEqual(run.payload, expected);
  assert.deepEqual(run.output.payload, expected);

  const text = "t".repeat(200 * 1024) + " ü";
  const t = await finished((await tasks.trigger("fixture-echo", text)).id);
  assert.equal(t.payload, text);
  assert.equal(t.output.payload, text);
});

test("a batch item over 128 KiB is uploaded as a packet and its run gets it, beside small items", async () => {
  const big = { blob: "b".repeat(200 * 1024), n: 1 };
  const { result: handle, calls } = await recordingFetches(() =>
    tasks.batchTrigger("fixture-echo", [{ payload: { n: 0 } }, { payload: big }, { payload: { n: 2 } }]));
  assert.ok(calls.some((c) => c.method === "PUT" && c.url.includes("/api/v2/packets/upload/")), "the big item was uploaded");
  const b = await batch.retrieve(handle.batchId);
  assert.equal(b.runs.length, 3);
  const byN = new Map();
  for (const id of b.runs) {
    const run = await finished(id);
    assert.equal(run.status, "COMPLETED");
    byN.set(run.payload.n, run);
  }
  assert.deepEqual(byN.get(1).payload, big);
  assert.deepEqual(byN.get(1).output.payload, big);
  assert.deepEqual(byN.get(0).payload, { n: 0 });
});

test("a base URL with a path prefix works for packets and callback URLs too", async () => {
  // run.sh sets http.public_url to <server>/th: the URLs taskhost hands out carry it, and taskhost
  // serves requests with or without it.
  const prefixed = process.env.TRIGGER_API_URL + "/th";
  await auth.withAuth({ baseURL: prefixed, secretKey: process.env.TRIGGER_SECRET_KEY }, async () => {
    const big = { blob: "x".repeat(150 * 1024) };
    const { result: h, calls } = await recordingFetches(() => tasks.trigger("fixture-echo", big));
    assert.ok(calls.every((c) => c.url.startsWith(prefixed)), JSON.stringify(calls.map((c) => c.url)));
    assert.deepEqual((await finished(h.id)).output.payload, big);
    const token = await wait.createToken({ timeout: "1h" });
    assert.ok(token.url.startsWith(prefixed + "/api/v1/waitpoints/tokens/"), token.url);
    const res = await fetch(token.url, { method: "POST", body: JSON.stringify({ via: "prefix" }) });
    assert.equal(res.status, 200);
    assert.deepEqual((await wait.retrieveToken(token.id)).output, { via: "prefix" });
  });
});

test("wait tokens: create (cached by idempotencyKey), retrieve before and after completion, complete, list by status", async () => {
  const tag = `compat-token-${Date.now()}`;
  const t = await wait.createToken({ tags: [tag, "other"], timeout: "1h", idempotencyKey: tag });
  assert.match(t.id, /^waitpoint_[1-9a-km-z]{21}$/);
  assert.equal(t.isCached, false);
  assert.match(t.url, /\/api\/v1\/waitpoints\/tokens\/waitpoint_[1-9a-km-z]{21}\/callback\/[0-9a-f]{64}$/);
  assert.ok(t.publicAccessToken && !t.publicAccessToken.startsWith("eyJ"), "the server's x-trigger-jwt, not a token the SDK signed itself");
  const again = await wait.createToken({ idempotencyKey: tag, timeout: "1h" });
  assert.equal(again.id, t.id);
  assert.equal(again.isCached, true);
  assert.equal(again.url, t.url);

  let r = await wait.retrieveToken(t.id);
  assert.equal(r.status, "WAITING");
  assert.equal(r.url, t.url);
  assert.deepEqual([...r.tags].sort(), [tag, "other"].sort());
  assert.equal(r.idempotencyKey, tag);
  assert.ok(r.timeoutAt instanceof Date && r.timeoutAt > new Date(Date.now() + 59 * 60 * 1000));
  assert.ok(r.createdAt instanceof Date);
  assert.equal(r.output, undefined);
  assert.equal(r.completedAt, undefined);

  const data = { approved: true, n: [1, 2], note: "ü" };
  assert.deepEqual(await wait.completeToken(t.id, data), { success: true });
  assert.deepEqual(await wait.completeToken(t, data), { success: true }, "the same data again (a retry) succeeds");
  const t0 = Date.now();
  await assert.rejects(wait.completeToken(t.id, { approved: false }), (e) => {
    assert.equal(e.status, 409);
    assert.match(e.message, /already completed with other data/);
    return true;
  });
  assert.ok(Date.now() - t0 < 900, "x-should-retry: false stops the SDK's retries");
  await assert.rejects(wait.completeToken("waitpoint_doesnotexist", {}), NotFoundError);

  r = await wait.retrieveToken(t);
  assert.equal(r.status, "COMPLETED");
  assert.deepEqual(r.output, data, "output is parsed back to the data");
  assert.equal(r.error, undefined);
  assert.ok(r.completedAt instanceof Date);

  const open = await wait.createToken({ tags: [tag] });
  const completed = await wait.listTokens({ status: "COMPLETED", tags: [tag] });
  assert.deepEqual(completed.data.map((x) => x.id), [t.id]);
  assert.equal(completed.data[0].url, t.url);
  assert.equal(completed.data[0].status, "COMPLETED");
  const waiting = await wait.listTokens({ status: ["WAITING"], tags: [tag] });
  assert.deepEqual(waiting.data.map((x) => x.id), [open.id]);
  const byKey = await wait.listTokens({ idempotencyKey: tag });
  assert.deepEqual(byKey.data.map((x) => x.id), [t.id]);
  const seen = [];
  for await (const x of wait.listTokens({ tags: [tag], limit: 1 })) seen.push(x.id);
  assert.deepEqual(seen, [open.id, t.id], "newest first, one page at a time");
});

test("a raw POST to a token's url completes it without a key; a forged url completes nothing", async () => {
  const t = await wait.createToken({ timeout: "1h" });
  const forged = t.url.replace(/.$/, (c) => (c === "0" ? "1" : "0"));
  const bad = await fetch(forged, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ forged: true }) });
  assert.ok(bad.status === 404 || bad.status === 401, `status ${bad.status}`);
  assert.equal((await wait.retrieveToken(t.id)).status, "WAITING");
  const res = await fetch(t.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ via: "webhook", n: 7 }) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { success: true });
  const r = await wait.retrieveToken(t.id);
  assert.equal(r.status, "COMPLETED");
  assert.deepEqual(r.output, { via: "webhook", n: 7 });
  const empty = await wait.createToken({});
  assert.equal((await fetch(empty.url, { method: "POST" })).status, 200);
  assert.deepEqual((await wait.retrieveToken(empty.id)).output, {}, "an empty body is {}");
});

test("a token with a short timeout ends TIMED_OUT and retrieveToken shows the timeout error", async () => {
  const t = await wait.createToken({ timeout: "1s" });
  await new Promise((res) => setTimeout(res, 1300));
  const r = await wait.retrieveToken(t.id);
  assert.equal(r.status, "TIMED_OUT");
  assert.equal(r.output, undefined);
  assert.ok(r.error instanceof WaitpointTimeoutError, `${r.error?.constructor?.name}`);
  assert.match(r.error.message, /timed out/);
  await assert.rejects(wait.completeToken(t.id, {}), (e) => e.status === 409);
  const listed = await wait.listTokens({ status: "TIMED_OUT" });
  assert.ok(listed.data.some((x) => x.id === t.id));
});

test("idempotencyKeys.reset lets the same key make a new run; an unknown key is a NotFoundError", async () => {
  const key = await idempotencyKeys.create(`compat-reset-${Date.now()}`);
  const a = await tasks.trigger("fixture-echo", { n: 1 }, { idempotencyKey: key });
  const b = await tasks.trigger("fixture-echo", { n: 2 }, { idempotencyKey: key });
  assert.equal(b.id, a.id);
  assert.equal(b.isCached, true);
  const res = await idempotencyKeys.reset("fixture-echo", key);
  assert.equal(res.id, key);
  const c = await tasks.trigger("fixture-echo", { n: 3 }, { idempotencyKey: key });
  assert.notEqual(c.id, a.id);
  assert.notEqual(c.isCached, true);
  assert.equal((await finished(c.id)).output.payload.n, 3);
  assert.equal((await finished(a.id)).output.payload.n, 1, "the first run is untouched");
  const t0 = Date.now();
  await assert.rejects(idempotencyKeys.reset("fixture-echo", await idempotencyKeys.create(`never-${Date.now()}`)), NotFoundError);
  assert.ok(Date.now() - t0 < 900, "x-should-retry: false stops the SDK's retries");
});

// ---- batches (the two-phase API: POST /api/v3/batches, then the items as NDJSON) ----------------

/** Waits for every run (50 at a time) and returns them, in the order given. */
async function allFinished(ids) {
  const out = [];
  for (let i = 0; i < ids.length; i += 50) out.push(...(await Promise.all(ids.slice(i, i + 50).map(finished))));
  return out;
}

async function runIdsOfBatch(batchId) {
  const ids = [];
  for await (const r of runs.list({ batch: batchId, limit: 100 })) ids.push(r.id);
  return ids;
}

/** Checks a batch of fixture-echo runs made from `items`: retrieve, every run, and runs.list({batch}). */
async function checkEchoBatch(handle, items) {
  assert.match(handle.batchId, /^batch_[1-9a-km-z]{21}$/);
  assert.equal(handle.runCount, items.length);
  assert.ok(handle.publicAccessToken, "x-trigger-jwt becomes publicAccessToken");
  const b = await batch.retrieve(handle.batchId);
  assert.equal(b.id, handle.batchId);
  assert.equal(b.status, "COMPLETED", "every item has its run");
  assert.equal(b.runCount, items.length);
  assert.equal(b.runs.length, items.length);
  assert.equal(new Set(b.runs).size, items.length);
  assert.ok(b.createdAt instanceof Date && b.updatedAt >= b.createdAt);
  assert.deepEqual(b.processing.errors, []);
  const done = await allFinished(b.runs);
  done.forEach((r, i) => {
    assert.equal(r.status, "COMPLETED", r.id);
    assert.deepEqual(r.payload, items[i].payload, "runs are listed by index");
    assert.deepEqual(r.output.payload, items[i].payload);
    assert.equal(r.batchId, handle.batchId);
    assert.equal(r.triggerFunction, "batchTrigger");
  });
  assert.deepEqual(new Set(await runIdsOfBatch(handle.batchId)), new Set(b.runs), "runs.list({batch}) lists the batch's runs");
  return done;
}

test("tasks.batchTrigger with 10 items: each payload reaches its run; batch.retrieve and runs.list({batch})", async () => {
  const items = Array.from({ length: 10 }, (_, i) => ({ payload: { i, text: `item ${i}`, when: new Date(0) }, options: { tags: [`b10-${i % 2}`] } }));
  const handle = await tasks.batchTrigger("fixture-echo", items);
  const expected = items.map((it) => ({ ...it, payload: { ...it.payload, when: "1970-01-01T00:00:00.000Z" } }));  // superjson's json part
  const done = await checkEchoBatch(handle, expected);
  assert.deepEqual(done[3].tags, ["b10-1"], "each item's options");
});

test("tasks.batchTrigger with 1,000 items: all of them run", async () => {
  const items = Array.from({ length: 1000 }, (_, i) => ({ payload: { i } }));
  const t0 = Date.now();
  const handle = await tasks.batchTrigger("fixture-echo", items);
  const acked = Date.now() - t0;
  await checkEchoBatch(handle, items);
  console.log(`# 1,000-item batch through the SDK: triggered in ${acked} ms, all finished and checked in ${Date.now() - t0} ms`);
});

test("batch.trigger across two tasks and batch.triggerByTask", async () => {
  const h = await batch.trigger([
    { id: "fixture-echo", payload: { a: 1 }, options: { tags: ["bt"] } },
    { id: "hello-world", payload: { message: "from a batch" } },
  ]);
  const b = await batch.retrieve(h.batchId);
  assert.equal(b.runCount, 2);
  const [echo, hello] = await allFinished(b.runs);
  assert.equal(echo.taskIdentifier, "fixture-echo");
  assert.deepEqual(echo.output.payload, { a: 1 });
  assert.deepEqual(echo.tags, ["bt"]);
  assert.equal(hello.taskIdentifier, "hello-world");
  assert.deepEqual(hello.output, { echo: "from a batch" });
  // triggerByTask takes task objects; from a backend, anything with the task's id.
  const t = await batch.triggerByTask([{ task: { id: "hello-world" }, payload: { message: "by task" } }, { task: { id: "fixture-echo" }, payload: [1, 2] }]);
  const [h2, e2] = await allFinished((await batch.retrieve(t.batchId)).runs);
  assert.deepEqual(h2.output, { echo: "by task" });
  assert.deepEqual(e2.output.payload, [1, 2]);
});

test("a batch idempotency key returns the same batch, cached, without a second set of runs", async () => {
  const key = await idempotencyKeys.create(`compat-batch-${Date.now()}`);
  const items = [{ payload: { n: 1 } }, { payload: { n: 2 } }];
  const a = await tasks.batchTrigger("fixture-echo", items, { idempotencyKey: key });
  const b = await tasks.batchTrigger("fixture-echo", items, { idempotencyKey: key });
  assert.equal(b.batchId, a.batchId);
  assert.equal((await runIdsOfBatch(a.batchId)).length, 2);
  // What the SDK saw (its handle has no isCached): the raw answer to the same creation.
  const res = await fetch(`${process.env.TRIGGER_API_URL}/api/v3/batches`, {
    method: "POST",
    headers: { authorization: `Bearer ${process.env.TRIGGER_SECRET_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ runCount: 2, taskIdentifiers: ["fixture-echo"], idempotencyKey: key }),
  });
  assert.deepEqual(await res.json(), { id: a.batchId, runCount: 2, isCached: true, idempotencyKey: key });
});

test("a batch of an unknown task, or of over 1,000 items, fails at once", async () => {
  let t0 = Date.now();
  await assert.rejects(tasks.batchTrigger("no-such-task", [{ payload: 1 }]), (e) => {
    assert.ok(e instanceof BatchTriggerError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.phase, "create");
    assert.ok(e.cause instanceof NotFoundError);
    assert.match(e.cause.message, /Task 'no-such-task' not found/);
    return true;
  });
  assert.ok(Date.now() - t0 < 900, "x-should-retry: false stops the SDK's retries");
  await assert.rejects(batch.trigger([{ id: "fixture-echo", payload: 1 }, { id: "no-such-task", payload: 2 }]), (e) => e.cause instanceof NotFoundError);
  t0 = Date.now();
  await assert.rejects(tasks.batchTrigger("fixture-echo", Array.from({ length: 1001 }, (_, i) => ({ payload: i }))), (e) => {
    assert.ok(e instanceof BatchTriggerError);
    assert.ok(e.cause instanceof BadRequestError);
    assert.equal(e.cause.status, 400);
    assert.match(e.cause.message, /at most 1000/);
    return true;
  });
  assert.ok(Date.now() - t0 < 900);
});

test("the same x-trigger-request-idempotency-key twice gives the same run, and the same batch (a raw fetch)", async () => {
  const url = process.env.TRIGGER_API_URL;
  const headers = (k) => ({ authorization: `Bearer ${process.env.TRIGGER_SECRET_KEY}`, "content-type": "application/json", "x-trigger-request-idempotency-key": k });
  const k = randomUUID();
  const send = () => fetch(`${url}/api/v1/tasks/fixture-echo/trigger`, { method: "POST", headers: headers(k), body: JSON.stringify({ payload: { k } }) });
  const [r1, r2] = [await send(), await send()];
  const [b1, b2] = [await r1.json(), await r2.json()];
  assert.equal(b2.id, b1.id);
  assert.equal(b2.isCached, false, "the first answer again, not a cached run");
  assert.equal(r2.headers.get("x-trigger-jwt"), r1.headers.get("x-trigger-jwt"));
  const other = await (await fetch(`${url}/api/v1/tasks/fixture-echo/trigger`, { method: "POST", headers: headers(randomUUID()), body: "{}" })).json();
  assert.notEqual(other.id, b1.id);
  const bk = randomUUID();
  const create = () => fetch(`${url}/api/v3/batches`, { method: "POST", headers: headers(bk), body: JSON.stringify({ runCount: 3, taskIdentifiers: ["fixture-echo"] }) });
  const [c1, c2] = [await create(), await create()];
  assert.equal(c1.status, 202);
  assert.equal(c2.status, 202);
  assert.equal((await c2.json()).id, (await c1.json()).id);
});
