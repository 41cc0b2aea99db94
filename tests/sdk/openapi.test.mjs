// The OpenAPI document (docs/openapi.json) against the real server: every documented operation is
// called, and every answer — status and body — must be one the document describes. Response
// objects are checked strictly: a field the server sends that the schema does not name fails (so
// the document cannot fall behind the code), unless the schema allows extra fields on purpose.
// Needs TRIGGER_API_URL, TRIGGER_SECRET_KEY (as compat.test.mjs) and OPENAPI_DOC (the file's path).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const base = process.env.TRIGGER_API_URL;
const key = process.env.TRIGGER_SECRET_KEY;
const doc = JSON.parse(readFileSync(process.env.OPENAPI_DOC, "utf8"));

// Strict copies of the schemas: objects with properties and no word on extra fields get
// additionalProperties: false.
function strict(s) {
  if (Array.isArray(s)) return s.map(strict);
  if (!s || typeof s !== "object") return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) out[k] = k === "properties" ? Object.fromEntries(Object.entries(v).map(([n, p]) => [n, strict(p)])) : strict(v);
  if (out.type === "object" && out.properties && !("additionalProperties" in out)) out.additionalProperties = false;
  return out;
}
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: "doc", components: strict(doc.components) });
const rewrite = (s) => JSON.parse(JSON.stringify(strict(s)).replaceAll('"#/components/', '"doc#/components/'));
// One compiled validator per schema object of the document (ajv compiles a fresh copy each time).
const validators = new Map();
function validatorFor(schema) {
  if (!validators.has(schema)) validators.set(schema, ajv.compile(rewrite(schema)));
  return validators.get(schema);
}

// Every documented operation, and a matcher for its path ({queue} may hold a slash).
const operations = [];
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    const re = new RegExp("^" + path.replace(/\{queue\}/g, "(.+)").replace(/\{[^}]+\}/g, "([^/]+)") + "$");
    operations.push({ method: method.toUpperCase(), path, re, op, seen: new Set() });
  }
}
/** Calls the server and checks the answer against the document; returns {status, body, headers}. */
async function call(method, path, body, { auth = true, headers = {}, ndjson = false } = {}) {
  const h = { ...headers };
  if (auth) h.authorization = `Bearer ${key}`;
  if (body !== undefined) h["content-type"] = ndjson ? "application/x-ndjson" : "application/json";
  // ndjson: `body` is an array of items, sent one a line
  const text_body = body === undefined ? undefined : ndjson ? body.map((l) => JSON.stringify(l) + "\n").join("") : JSON.stringify(body);
  const res = await fetch(base + path, { method, headers: h, body: text_body });
  const text = await res.text();
  const pathOnly = path.split("?")[0];
  const candidates = operations.filter((o) => o.re.test(pathOnly));
  const op = candidates.find((o) => o.method === method);
  assert.ok(op, `${method} ${pathOnly} is not documented (documented methods here: ${candidates.map((o) => o.method).join(", ") || "none"})`);
  const r = op.op.responses[String(res.status)] ?? op.op.responses.default;
  assert.ok(r, `${method} ${op.path} answered ${res.status}, which the document does not list (${Object.keys(op.op.responses)}): ${text}`);
  const resolved = r.$ref ? doc.components.responses[r.$ref.split("/").pop()] : r;
  const schema = resolved.content?.["application/json"]?.schema;
  const json = text ? JSON.parse(text) : undefined;
  if (schema) {
    const validate = validatorFor(schema);
    assert.ok(validate(json), `${method} ${op.path} ${res.status}: ${ajv.errorsText(validate.errors)}\n${text.slice(0, 2000)}`);
  }
  op.seen.add(res.status);
  return { status: res.status, body: json, headers: res.headers };
}

async function finished(id) {
  for (let i = 0; i < 400; i++) {
    const r = await call("GET", `/api/v3/runs/${id}`);
    if (r.body.isCompleted) return r.body;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`run ${id} did not finish`);
}

test("runs: trigger, retrieve, list, logs, cancel, replay, reschedule", async () => {
  const t = await call("POST", "/api/v1/tasks/fixture-logs/trigger", { payload: { n: 1 }, options: { tags: ["oa"], metadata: { m: 1 } } });
  assert.equal(t.status, 200);
  const run = await finished(t.body.id);
  assert.equal(run.status, "COMPLETED");
  const failed = (await call("POST", "/api/v1/tasks/fixture-throw/trigger", { options: { maxAttempts: 1 } })).body.id;
  await finished(failed);
  assert.equal((await call("GET", `/api/v1/runs?filter[tag]=oa&page[size]=1`)).status, 200);
  assert.equal((await call("GET", `/api/v1/runs?page[size]=2`)).body.data.length, 2);
  assert.equal((await call("GET", `/api/v1/runs/${t.body.id}/logs`)).status, 200);
  assert.equal((await call("POST", `/api/v1/runs/${t.body.id}/replay`)).status, 200);
  const delayed = (await call("POST", "/api/v1/tasks/fixture-echo/trigger", { payload: 1, options: { delay: "1h" } })).body.id;
  assert.equal((await call("GET", `/api/v3/runs/${delayed}`)).body.status, "DELAYED");
  assert.equal((await call("POST", `/api/v1/runs/${delayed}/reschedule`, { delay: "2h" })).status, 200);
  assert.equal((await call("POST", `/api/v2/runs/${delayed}/cancel`)).status, 200);
  // errors the document lists
  assert.equal((await call("POST", "/api/v1/tasks/no-such-task/trigger", {})).status, 404);
  assert.equal((await call("POST", "/api/v1/tasks/fixture-echo/trigger", { options: { tags: 7 } })).status, 400);
  assert.equal((await call("GET", "/api/v3/runs/run_nope")).status, 404);
  assert.equal((await call("GET", "/api/v1/runs?filter[status]=NOPE")).status, 400);
  assert.equal((await call("POST", `/api/v1/runs/${t.body.id}/reschedule`, { delay: "1h" })).status, 400);
  assert.equal((await call("GET", "/api/v1/runs", undefined, { auth: false })).status, 401);
});

test("waitpoint tokens: create, list, retrieve, complete", async () => {
  const c = await call("POST", "/api/v1/waitpoints/tokens", { timeout: "1h", tags: ["oa"], idempotencyKey: `oa-${Date.now()}` });
  assert.equal(c.status, 200);
  const id = c.body.id;
  assert.equal((await call("GET", `/api/v1/waitpoints/tokens/${id}`)).body.status, "WAITING");
  assert.equal((await call("POST", `/api/v1/waitpoints/tokens/${id}/complete`, { data: { ok: 1 } })).status, 200);
  assert.equal((await call("GET", `/api/v1/waitpoints/tokens/${id}`)).body.status, "COMPLETED");
  assert.equal((await call("GET", "/api/v1/waitpoints/tokens?filter[status]=COMPLETED&page[size]=5")).status, 200);
  assert.equal((await call("GET", "/api/v1/waitpoints/tokens/waitpoint_nope")).status, 404);
  assert.equal((await call("POST", "/api/v1/waitpoints/tokens/waitpoint_nope/complete", { data: 1 })).status, 404);
});

test("batches: create, send items, retrieve (both paths)", async () => {
  const created = await call("POST", "/api/v3/batches", { runCount: 2, taskIdentifiers: ["fixture-echo"] },
                             { headers: { "x-trigger-request-idempotency-key": `oa-${Date.now()}` } });
  assert.equal(created.status, 202);
  const id = created.body.id;
  const half = await call("POST", `/api/v3/batches/${id}/items`, [{ index: 0, task: "fixture-echo", payload: { n: 0 } }], { ndjson: true });
  assert.equal(half.body.sealed, false);
  const all = await call("POST", `/api/v3/batches/${id}/items`,
                         [0, 1].map((i) => ({ index: i, task: "fixture-echo", payload: { n: i }, options: { tags: ["oa"] } })), { ndjson: true });
  assert.equal(all.body.sealed, true);
  assert.equal((await call("GET", `/api/v2/batches/${id}`)).body.status, "COMPLETED");
  assert.equal((await call("GET", `/api/v1/batches/${id}`)).body.runs.length, 2);
  const keyed = await call("POST", "/api/v3/batches", { runCount: 1, idempotencyKey: `oa-batch-${Date.now()}`, idempotencyKeyOptions: { key: "k", scope: "global" } });
  assert.equal((await call("GET", `/api/v2/batches/${keyed.body.id}`)).body.idempotencyKey, "k");
  // errors the document lists
  assert.equal((await call("POST", "/api/v3/batches", { runCount: 1001 })).status, 400);
  assert.equal((await call("POST", "/api/v3/batches", { runCount: 1, taskIdentifiers: ["no-such-task"] })).status, 404);
  assert.equal((await call("POST", `/api/v3/batches/${id}/items`, { index: 0, task: "fixture-echo" })).status, 415);
  const open = (await call("POST", "/api/v3/batches", { runCount: 1 })).body.id;  // (a sealed batch takes any resend)
  assert.equal((await call("POST", `/api/v3/batches/${open}/items`, [{ index: 5, task: "fixture-echo" }], { ndjson: true })).status, 400);
  assert.equal((await call("POST", "/api/v3/batches/batch_nope/items", [{ index: 0, task: "fixture-echo" }], { ndjson: true })).status, 404);
  assert.equal((await call("GET", "/api/v1/batches/batch_nope")).status, 404);
  assert.equal((await call("GET", "/api/v2/batches/batch_nope")).status, 404);
  assert.equal((await call("GET", `/api/v1/runs?filter[batch]=${id}`)).body.data.length, 2);
});

test("queues: list, retrieve, pause, resume, override, reset", async () => {
  assert.equal((await call("GET", "/api/v1/queues?page=1&perPage=10")).status, 200);
  assert.equal((await call("GET", "/api/v1/queues/one")).body.name, "one");
  assert.equal((await call("GET", "/api/v1/queues/task%2Ffixture-echo")).body.type, "task");
  assert.equal((await call("POST", "/api/v1/queues/one/pause", { action: "pause" })).body.paused, true);
  assert.equal((await call("POST", "/api/v1/queues/one/pause", { action: "resume" })).body.paused, false);
  assert.equal((await call("POST", "/api/v1/queues/one/concurrency/override", { concurrencyLimit: 3 })).body.concurrencyLimit, 3);
  assert.equal((await call("POST", "/api/v1/queues/one/concurrency/reset")).body.concurrencyLimit, 1);
  assert.equal((await call("GET", "/api/v1/queues/nope")).status, 404);
});

test("schedules: create, list, retrieve, update, deactivate, activate, delete; time zones", async () => {
  const s = await call("POST", "/api/v1/schedules", { task: "sched-echo", cron: "0 9 * * 1-5", timezone: "Europe/London", deduplicationKey: "oa-1" });
  assert.equal(s.status, 200);
  const id = s.body.id;
  assert.equal((await call("GET", "/api/v1/schedules?perPage=100")).status, 200);
  assert.equal((await call("GET", `/api/v1/schedules/${id}`)).body.id, id);
  assert.equal((await call("PUT", `/api/v1/schedules/${id}`, { task: "sched-echo", cron: "0 0 * * *" })).status, 200);
  assert.equal((await call("POST", `/api/v1/schedules/${id}/deactivate`)).body.active, false);
  assert.equal((await call("POST", `/api/v1/schedules/${id}/activate`)).body.active, true);
  assert.equal((await call("DELETE", `/api/v1/schedules/${id}`)).body.id, id);
  assert.equal((await call("GET", `/api/v1/schedules/${id}`)).status, 404);
  assert.equal((await call("POST", "/api/v1/schedules", { task: "sched-echo", cron: "61 * * * *" })).status, 400);
  assert.ok((await call("GET", "/api/v1/timezones?excludeUtc=true", undefined, { auth: false })).body.timezones.length > 300);
});

/** The path of a URL the server handed out, without http.public_url's prefix (run.sh sets /th). */
const handedOutPath = (url) => new URL(url).pathname.replace(/^\/th(?=\/)/, "");

test("packets: presign, upload to the signed URL without a key, trigger by storagePath", async () => {
  const p = await call("PUT", "/api/v2/packets/trigger%2Fpacket_oa%2Fpayload.json");
  assert.equal(p.status, 200);
  const upload = handedOutPath(p.body.presignedUrl);
  assert.equal((await call("PUT", upload, { json: { big: 1 } }, { auth: false })).status, 200);
  const forged = upload.replace(/\/([0-9a-f])([0-9a-f]{63})\//, (_, c, rest) => `/${c === "0" ? "1" : "0"}${rest}/`);
  assert.notEqual(forged, upload);
  assert.equal((await call("PUT", forged, { json: 2 }, { auth: false })).status, 403);
  const t = await call("POST", "/api/v1/tasks/fixture-echo/trigger", { payload: p.body.storagePath, options: { payloadType: "application/store" } });
  assert.equal(t.status, 200);
  assert.deepEqual((await finished(t.body.id)).payload, { json: { big: 1 } }, "uploaded as application/json: the value itself");
  assert.equal((await call("POST", "/api/v1/tasks/fixture-echo/trigger", { payload: "packets/nope", options: { payloadType: "application/store" } })).status, 400);
  assert.equal((await call("PUT", "/api/v2/packets/%01")).status, 400);
  assert.equal((await call("PUT", "/api/v2/packets/x.json", undefined, { auth: false })).status, 401);
});

test("waitpoint tokens: the callback URL, filters; idempotency key reset", async () => {
  const tag = `oa-cb-${Date.now()}`;
  const c = await call("POST", "/api/v1/waitpoints/tokens", { tags: [tag] });
  const cb = handedOutPath(c.body.url);
  assert.equal((await call("POST", cb.replace(/.$/, (x) => (x === "0" ? "1" : "0")), { no: 1 }, { auth: false })).status, 404);
  assert.equal((await call("POST", cb, { via: "callback" }, { auth: false })).status, 200);
  assert.equal((await call("POST", cb, { via: "other" }, { auth: false })).status, 409);
  const got = (await call("GET", `/api/v1/waitpoints/tokens/${c.body.id}`)).body;
  assert.deepEqual(JSON.parse(got.output), { via: "callback" });
  const page = await call("GET", `/api/v1/waitpoints/tokens?filter[status]=COMPLETED,WAITING&filter[tags]=${tag}&filter[createdAt][period]=1h`);
  assert.deepEqual(page.body.data.map((t) => t.id), [c.body.id]);
  assert.equal((await call("GET", "/api/v1/waitpoints/tokens?filter[status]=DONE")).status, 400);

  const key = "b".repeat(63) + String(Date.now() % 10);
  await call("POST", "/api/v1/tasks/fixture-echo/trigger", { payload: 1, options: { idempotencyKey: key } });
  assert.deepEqual((await call("POST", `/api/v1/idempotencyKeys/${key}/reset`, { taskIdentifier: "fixture-echo" })).body, { id: key });
  assert.equal((await call("POST", `/api/v1/idempotencyKeys/${"c".repeat(64)}/reset`, { taskIdentifier: "fixture-echo" })).status, 404);
  assert.equal((await call("POST", `/api/v1/idempotencyKeys/${key}/reset`, {})).status, 400);
});

test("the document and the health check", async () => {
  const d = await call("GET", "/api/openapi.json");
  assert.deepEqual(d.body, doc, "the server serves docs/openapi.json as it is in the repository");
  assert.equal((await call("GET", "/healthz", undefined, { auth: false })).status, 200);
});

test("every documented operation was called and its answer checked (this test runs last)", () => {
  const missed = operations.filter((o) => o.seen.size === 0).map((o) => `${o.method} ${o.path}`);
  assert.deepEqual(missed, [], "documented operations this file never called");
});
