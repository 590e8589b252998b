// fal's own JavaScript client (@fal-ai/client from npm), unchanged, against
// `fal serve --demo` over HTTPS. Run by crates/cli/tests/cli/js_client.rs as
//
//   node fal_client.mjs CASE...
//
// with FAL_URL (https://127.0.0.1:PORT), FAL_KEY (KEY_ID:KEY_SECRET),
// FAL_JS_CLIENT_DIR (where scripts/setup-js-client.sh installed the client)
// and NODE_EXTRA_CA_CERTS (the test's private CA). The only change from
// talking to fal.ai is the requestMiddleware below, which sends fal's hosts
// to ours. Each case is a function in CASES; each prints one JSON line
// {"case": NAME, "passed": true, ...} after its checks, or the script exits
// nonzero with the failed check on stderr.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.FAL_JS_CLIENT_DIR, "package.json"));
const { fal, ApiError } = require("@fal-ai/client");

const BASE = process.env.FAL_URL.replace(/\/$/, "");
const KEY = process.env.FAL_KEY;
const KEY_ID = KEY.split(":")[0];
const APP = "fal-ai/echo";
const REVOKED_DETAIL = "This key was revoked: use another key, or generate a new one";

// fal's hosts, as @fal-ai/client builds its URLs, to this server's.
const HOSTS = [
  ["https://fal.run/", `${BASE}/run/`],
  ["https://queue.fal.run/", `${BASE}/queue/`],
];
fal.config({
  credentials: KEY,
  requestMiddleware: async (request) => {
    for (const [theirs, ours] of HOSTS) {
      if (request.url.startsWith(theirs)) {
        return { ...request, url: ours + request.url.slice(theirs.length) };
      }
    }
    return request;
  },
});

const report = (name, extra = {}) =>
  console.log(JSON.stringify({ case: name, passed: true, ...extra }));

/** Awaits `promise`, which must fail with our 401 and its detail. */
async function refusedAsRevoked(promise, what) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ApiError, `${what}: expected an ApiError, got ${error}`);
  assert.equal(error.status, 401, `${what}: status`);
  assert.equal(error.body?.detail, REVOKED_DETAIL, `${what}: detail`);
}

const CASES = {
  // fal.run: POST https://fal.run/fal-ai/echo.
  async run() {
    const { data, requestId } = await fal.run(APP, { input: { prompt: "a red fox" } });
    assert.deepEqual(data, { prompt: "a red fox", fal_key_id: KEY_ID });
    assert.ok(requestId, "x-fal-request-id is passed back");
    report("run", { requestId });
  },

  // fal.stream: POST https://fal.run/fal-ai/echo/stream, events iterated as
  // they arrive, done() is the last one.
  async stream() {
    const stream = await fal.stream(APP, { input: { prompt: "streamed", sleep_ms: 100 } });
    const events = [];
    const arrived = [];
    for await (const event of stream) {
      events.push(event);
      arrived.push(Date.now());
    }
    // The demo app waits sleep_ms between two events: seen as they came,
    // the last is at least 3 × 100 ms after the first.
    assert.ok(arrived[3] - arrived[0] >= 250, `events came together: ${arrived}`);
    const done = await stream.done();
    const output = { prompt: "streamed", sleep_ms: 100, fal_key_id: KEY_ID };
    assert.deepEqual(events, [
      { partial: true, index: 0, of: 3 },
      { partial: true, index: 1, of: 3 },
      { partial: true, index: 2, of: 3 },
      output,
    ]);
    assert.deepEqual(done, output);
    assert.ok(stream.requestId, "x-fal-request-id is passed back");
    report("stream", { events: events.length });
  },

  // Run with a revoked key (FAL_KEY): our 401 and detail on every call,
  // the queue's included (FAL_REQUEST_ID: a request made before).
  async revoked() {
    await refusedAsRevoked(fal.run(APP, { input: {} }), "fal.run");
    const stream = await fal.stream(APP, { input: {} });
    await refusedAsRevoked(stream.done(), "fal.stream");
    const requestId = process.env.FAL_REQUEST_ID;
    assert.ok(requestId, "FAL_REQUEST_ID names a request made before");
    await refusedAsRevoked(fal.queue.submit(APP, { input: {} }), "fal.queue.submit");
    await refusedAsRevoked(fal.subscribe(APP, { input: {} }), "fal.subscribe");
    await refusedAsRevoked(fal.queue.status(APP, { requestId }), "fal.queue.status");
    await refusedAsRevoked(fal.queue.result(APP, { requestId }), "fal.queue.result");
    await refusedAsRevoked(fal.queue.cancel(APP, { requestId }), "fal.queue.cancel");
    report("revoked");
  },

  // --- The queue (/queue/…).

  // fal.subscribe in polling mode, with logs and queue updates.
  async subscribe_polling() {
    const updates = [];
    const { data, requestId } = await fal.subscribe(APP, {
      input: { prompt: "queued", sleep_ms: 300 },
      mode: "polling",
      pollInterval: 100,
      logs: true,
      onQueueUpdate: (u) => updates.push(u.status),
    });
    assert.deepEqual(data, { prompt: "queued", sleep_ms: 300, fal_key_id: KEY_ID });
    assert.ok(requestId);
    assert.ok(updates.includes("IN_PROGRESS") || updates.includes("IN_QUEUE"), `${updates}`);
    report("subscribe_polling", { updates });
  },

  // fal.subscribe in streaming mode (status over server-sent events): the
  // client adds up each event's logs, so each line must come once; when
  // the stream ends it fetches the answer.
  async subscribe_streaming() {
    const updates = [];
    let logs = [];
    const { data } = await fal.subscribe(APP, {
      input: { prompt: "queued", sleep_ms: 300 },
      mode: "streaming",
      logs: true,
      onQueueUpdate: (u) => {
        updates.push(u.status);
        logs = u.logs ?? logs;
      },
    });
    assert.deepEqual(data, { prompt: "queued", sleep_ms: 300, fal_key_id: KEY_ID });
    assert.equal(updates.at(-1), "COMPLETED", `${updates}`);
    assert.ok(updates.includes("IN_PROGRESS"), `${updates}`);
    assert.deepEqual(
      logs.map((l) => l.message),
      ["Started on fal-ai/echo", "Completed"],
    );
    report("subscribe_streaming", { updates });
  },

  // fal.queue.submit, status, result.
  async queue_submit_status_result() {
    const { request_id: requestId } = await fal.queue.submit(APP, {
      input: { prompt: "by id", sleep_ms: 200 },
    });
    assert.ok(requestId);
    let status;
    do {
      await new Promise((r) => setTimeout(r, 100));
      status = await fal.queue.status(APP, { requestId, logs: true });
      assert.ok(["IN_QUEUE", "IN_PROGRESS", "COMPLETED"].includes(status.status));
    } while (status.status !== "COMPLETED");
    const { data } = await fal.queue.result(APP, { requestId });
    assert.deepEqual(data, { prompt: "by id", sleep_ms: 200, fal_key_id: KEY_ID });
    report("queue_submit_status_result", { requestId });
  },

  // fal.queue.cancel of a request still running.
  async queue_cancel() {
    const { request_id: requestId } = await fal.queue.submit(APP, {
      input: { sleep_ms: 60000 },
    });
    await fal.queue.cancel(APP, { requestId });
    let status;
    do {
      await new Promise((r) => setTimeout(r, 100));
      status = await fal.queue.status(APP, { requestId });
    } while (status.status !== "COMPLETED");
    assert.equal(status.error, "Request was cancelled");
    assert.equal(status.error_type, "cancelled");
    let error;
    try {
      await fal.queue.result(APP, { requestId });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ApiError, `the answer of a cancelled request: ${error}`);
    assert.equal(error.status, 499);
    assert.equal(error.body?.detail, "Request was cancelled");
    report("queue_cancel", { requestId });
  },
};

const names = process.argv.slice(2);
assert.ok(names.length > 0, `name the cases to run: ${Object.keys(CASES).join(", ")}`);
for (const name of names) {
  const run = CASES[name];
  assert.ok(run, `no case ${name}; there are: ${Object.keys(CASES).join(", ")}`);
  await run();
}
