// Exact through retries: lost answers, outcome-unknown answers and refusals
// to serve, between the client and a real quota-local, each retried by the
// client itself with the same Idempotency-Key.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { QuotaClient } from "@quota-service/client";
import { startProxy } from "./proxy.js";
import { BASE_URL, adminClient, newOrg, served, startQuotaLocal, token } from "./helpers.js";

/** @type {Array<() => Promise<unknown>>} */
const cleanup = [];
after(async () => {
  for (const close of cleanup) await close();
});

/** @param {Parameters<typeof startProxy>[1]} decide */
async function proxied(decide, retries = 10) {
  const proxy = await startProxy(BASE_URL, decide);
  cleanup.push(() => proxy.close());
  // Generous bounds: this must hold on a slow, busy machine.
  const client = new QuotaClient({ baseUrl: proxy.url, token: token(), retries, timeoutMs: 120_000, attemptTimeoutMs: 30_000 });
  return { proxy, client };
}

/** The first time a key (or, for keyless requests, a path) is seen. */
function firstSight() {
  const seen = new Set();
  /** @param {{ idempotencyKey: string | null, method: string, path: string }} r */
  return (r) => {
    const id = r.idempotencyKey ?? `${r.method} ${r.path}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  };
}

const used = async (/** @type {string} */ orgId, /** @type {string} */ resource) =>
  (await adminClient().usage(orgId)).resources.find((r) => r.resource === resource)?.used;

test("300 consumes through a proxy that drops a quarter of the answers after the service answered count exactly 300", async (t) => {
  const orgId = await newOrg({ plan: "growth", limits: { conversations: 100_000 } });
  // Every fourth answer is lost, retries included.
  const { proxy, client } = await proxied((_, i) => (i % 4 === 3 ? "drop" : "pass"));

  /** @type {import("@quota-service/client").Decision[]} */
  const decisions = [];
  let next = 0;
  const worker = async () => {
    while (next < 300) {
      next++;
      decisions.push(await client.consume(orgId, "conversations"));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));

  assert.equal(decisions.length, 300);
  for (const d of decisions) assert.equal(served(d).allowed, true);
  assert.equal(await used(orgId, "conversations"), 300);

  const drops = proxy.seen.filter((r) => r.action === "drop");
  t.diagnostic(`${proxy.seen.length} requests, ${drops.length} answers dropped, ${await used(orgId, "conversations")} counted`);
  assert(drops.length >= 75, `a quarter of the answers dropped (${drops.length} of ${proxy.seen.length})`);
  // Each lost answer cost exactly one more request, which carried the same key.
  assert.equal(proxy.seen.length, 300 + drops.length);
  const keys = new Set(proxy.seen.map((r) => r.idempotencyKey));
  assert.equal(keys.size, 300);
  assert(!keys.has(null));
  for (const drop of drops) {
    assert.equal(proxy.seen.filter((r) => r.idempotencyKey === drop.idempotencyKey && r.action === "pass").length, 1);
  }
});

test("503 OUTCOME_UNKNOWN after the write was applied is retried with the same key and counts once", async () => {
  const orgId = await newOrg({ plan: "growth" });
  const first = firstSight();
  const { proxy, client } = await proxied((r) =>
    first(r)
      ? { forward: true, reply: { status: 503, headers: { "retry-after": "0" }, body: { error: { code: "OUTCOME_UNKNOWN", message: "no answer in time" } } } }
      : "pass",
  );
  for (let i = 0; i < 10; i++) assert.equal(served(await client.consume(orgId, "contacts", { amount: 2 })).allowed, true);
  assert.equal(await used(orgId, "contacts"), 20);
  assert.equal(proxy.seen.length, 20);
  assert.equal(new Set(proxy.seen.map((r) => r.idempotencyKey)).size, 10);
});

test("the service's own 503 OUTCOME_UNKNOWN (its store answered too late) is retried with the same key and counts once", async () => {
  const orgId = await newOrg({ plan: "growth" });
  // Between this test's quota-local and DynamoDB Local: while armed, every
  // transaction is applied at once and its answer comes 5 s late, past the
  // service's store budget (2.8 s).
  const dynamodb = process.env.AWS_ENDPOINT_URL_DYNAMODB;
  assert(dynamodb, "AWS_ENDPOINT_URL_DYNAMODB is set");
  let armed = false;
  const store = await startProxy(dynamodb, (r) =>
    armed && r.target === "DynamoDB_20120810.TransactWriteItems" ? { delay: 5_000 } : "pass",
  );
  const service = await startQuotaLocal({ AWS_ENDPOINT_URL_DYNAMODB: store.url });
  cleanup.push(
    () => service.stop(),
    () => store.close(),
  );

  /** @type {Array<{ status: number, code: unknown }>} */
  const answers = [];
  const client = new QuotaClient({
    baseUrl: service.baseUrl,
    token: token(),
    timeoutMs: 120_000,
    fetch: async (input, init) => {
      armed = answers.length === 0; // the retry finds the store answering again
      const res = await fetch(input, init);
      const body = /** @type {{ error?: { code?: unknown } } | null} */ (await res.clone().json().catch(() => null));
      answers.push({ status: res.status, code: body?.error?.code });
      return res;
    },
  });
  const decision = served(await client.consume(orgId, "contacts", { amount: 3 }));
  assert.equal(decision.allowed, true);
  assert.deepEqual(answers, [
    { status: 503, code: "OUTCOME_UNKNOWN" },
    { status: 200, code: undefined },
  ]);
  assert(store.seen.some((r) => r.action === "delay"));
  assert.equal(await used(orgId, "contacts"), 3);
});

test("503 STORE_UNAVAILABLE and the gateway's throttling 429 are retried, honouring Retry-After", async () => {
  const orgId = await newOrg({ plan: "growth" });
  const first = firstSight();
  let n = 0;
  /** @type {number[]} */
  const arrivals = [];
  const { proxy, client } = await proxied((r) => {
    arrivals.push(Date.now());
    if (!first(r)) return "pass";
    return ++n % 2
      ? { forward: false, reply: { status: 503, headers: { "retry-after": "1" }, body: { error: { code: "STORE_UNAVAILABLE", message: "try again" } } } }
      : { forward: false, reply: { status: 429, body: { message: "Too Many Requests" } } };
  });
  assert.equal(served(await client.consume(orgId, "contacts")).allowed, true);
  assert.equal(served(await client.consume(orgId, "contacts")).allowed, true);
  assert.equal((await client.usage(orgId)).orgId, orgId);
  // A reset is retried too when the answer says nothing was recorded.
  assert.equal((await client.admin.reset(orgId, { resource: "contacts", reason: "test" })).reset[0]?.used, 0);
  assert.deepEqual(
    proxy.seen.map((r) => r.action),
    ["replace-before", "pass", "replace-before", "pass", "replace-before", "pass", "replace-before", "pass"],
  );
  // Each retry after a 503 with `Retry-After: 1` came a second later at the earliest
  // (a lower bound: a slow machine only makes the wait longer).
  for (const i of [0, 4]) {
    const waited = /** @type {number} */ (arrivals[i + 1]) - /** @type {number} */ (arrivals[i]);
    assert(waited >= 990, `retry ${i + 1} came ${waited} ms after the 503 that said Retry-After: 1`);
  }
});

test("reserve, commit, release and grant whose answers are lost are retried with their key and take effect once", async () => {
  const orgId = await newOrg({ plan: "growth", limits: { contacts: 100 } });
  const first = firstSight();
  const { proxy, client } = await proxied((r) => (r.method !== "GET" && first(r) ? "drop" : "pass"));

  const grant = await client.admin.grant(orgId, { resource: "contacts", amount: 10, reason: "lost answer" });
  assert.equal(grant.usage.limit, 110);
  const a = await client.reserve(orgId, "contacts", { amount: 30 });
  const b = await client.reserve(orgId, "contacts", { amount: 20 });
  assert(a.allowed && b.allowed);
  const c = await client.reserve(orgId, "contacts", { amount: 1 });
  assert(c.allowed);
  let contacts = (await client.usage(orgId)).resources.find((r) => r.resource === "contacts");
  assert.equal(contacts?.held, 51);
  assert.equal(contacts?.limit, 110);

  const committed = await a.commit(25);
  assert(committed.allowed);
  assert.equal(committed.outcome?.used, 25);
  assert.equal((await b.release())?.status, "released");
  assert.equal((await c.commit())?.allowed, true);
  contacts = (await client.usage(orgId)).resources.find((r) => r.resource === "contacts");
  assert.equal(contacts?.used, 26);
  assert.equal(contacts?.held, 0);

  // Every write carried an Idempotency-Key, the same on its retry.
  const writes = proxy.seen.filter((r) => r.method !== "GET");
  assert.equal(writes.length, 14); // 7 writes, each answer lost once
  for (const w of writes) assert.notEqual(w.idempotencyKey, null, `${w.method} ${w.path} has a key`);
  assert.equal(new Set(writes.map((w) => w.idempotencyKey)).size, 7);
});

test("a reset whose answer was lost is retried with its key: one reset, audited once, with what it reset", async () => {
  const orgId = await newOrg({ plan: "growth" });
  served(await adminClient().consume(orgId, "contacts", { amount: 5 }));
  let dropped = 0;
  const { proxy, client } = await proxied((r) => (r.path.endsWith("/reset") && dropped++ === 0 ? "drop" : "pass"));
  const reset = await client.admin.reset(orgId, { resource: "contacts", reason: "lost" });
  assert.equal(reset.reset[0]?.used, 0);
  assert.equal(proxy.seen.length, 2, "sent twice, with one key");
  assert.equal(await used(orgId, "contacts"), 0);
  const audit = await adminClient().admin.audit(orgId);
  const resets = audit.entries.filter((e) => e.action === "reset");
  assert.equal(resets.length, 1);
  assert.equal(resets[0]?.before, 5);
});
