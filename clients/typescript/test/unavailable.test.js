// onUnavailable, both ways, with the service stopped, and with one that
// accepts connections and never answers.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { QuotaApiError, QuotaClient } from "@quota-service/client";
import { adminClient, newOrg, startQuotaLocal, token } from "./helpers.js";

/** @type {string} */
let orgId;
/** @type {string} */
let stoppedUrl;

before(async () => {
  orgId = await newOrg({ plan: "growth" });
  // A quota-local of this test's own: it answers, then it is stopped.
  const service = await startQuotaLocal();
  const live = new QuotaClient({ baseUrl: service.baseUrl, token: token() });
  const decision = await live.consume(orgId, "contacts");
  assert.equal(decision.allowed, true);
  assert.equal(decision.fallback, false);
  await service.stop();
  stoppedUrl = service.baseUrl;
});

/** @param {Partial<import("@quota-service/client").QuotaClientOptions>} options */
const stopped = (options) => new QuotaClient({ baseUrl: stoppedUrl, token: token(), retries: 2, timeoutMs: 60_000, ...options });

test('"deny" (the default): check, consume, checkMany and reserve answer allowed: false, fallback: true', async () => {
  const client = stopped({});
  const consume = await client.consume(orgId, "contacts", { idempotencyKey: "when-back" });
  assert.equal(consume.allowed, false);
  assert(consume.fallback);
  assert.equal(consume.error.code, "NETWORK_ERROR");
  assert.equal(consume.error.unavailable, true);
  assert.equal(consume.idempotencyKey, "when-back");
  assert.equal(consume.usage, null);

  const check = await client.check(orgId, "contacts");
  assert.equal(check.allowed, false);
  assert.equal(check.fallback, true);
  assert.equal((await client.canUse(orgId, "contacts")).allowed, false);

  const many = await client.checkMany(orgId, { contacts: 1, users: 1 });
  assert.equal(many.allowed, false);
  assert.equal(many.fallback, true);
  assert.equal(many.decisions.users?.allowed, false);

  const reserve = await client.reserve(orgId, "contacts", { amount: 3 });
  assert.equal(reserve.allowed, false);
  assert.equal(reserve.fallback, true);

  // Reads have no fallback: they throw.
  await assert.rejects(client.usage(orgId), (err) => err instanceof QuotaApiError && err.code === "NETWORK_ERROR" && err.status === 0);
});

test('"allow": the same calls answer allowed: true, fallback: true, and record nothing', async () => {
  const client = stopped({ onUnavailable: "allow" });
  const consume = await client.consume(orgId, "contacts");
  assert.equal(consume.allowed, true);
  assert.equal(consume.fallback, true);
  assert.equal((await client.check(orgId, "contacts")).allowed, true);
  const many = await client.checkMany(orgId, { contacts: 1 });
  assert.equal(many.allowed, true);
  assert.equal(many.fallback, true);

  const reserve = await client.reserve(orgId, "contacts", { amount: 3 });
  assert(reserve.allowed);
  assert.equal(reserve.fallback, true);
  assert.equal(reserve.held, null);
  assert.deepEqual(await reserve.commit(2), { allowed: true, outcome: null });
  assert.equal(await reserve.release(), null);

  // Per call, the policy can be the other one.
  assert.equal((await client.consume(orgId, "contacts", { onUnavailable: "deny" })).allowed, false);
  // Nothing of it reached the service.
  assert.equal((await adminClient().usage(orgId)).resources.find((r) => r.resource === "contacts")?.used, 1);
});

/** @type {Array<import("node:net").Socket>} */
const sockets = [];
let requests = 0;
const silent = createServer((socket) => {
  sockets.push(socket);
  socket.once("data", () => requests++);
});
after(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

test("a service that never answers: each attempt times out, then onUnavailable decides", async () => {
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = silent.address();
  assert(address !== null && typeof address === "object");
  const baseUrl = `http://127.0.0.1:${address.port}`;
  const client = new QuotaClient({ baseUrl, token: token(), retries: 1, attemptTimeoutMs: 300, timeoutMs: 60_000 });

  const denied = await client.consume(orgId, "contacts");
  assert.equal(denied.allowed, false);
  assert(denied.fallback);
  assert.equal(denied.error.code, "TIMEOUT");
  const allowed = await client.check(orgId, "contacts", { onUnavailable: "allow" });
  assert.equal(allowed.allowed, true);
  assert.equal(allowed.fallback, true);
  await assert.rejects(client.features(orgId), { code: "TIMEOUT", unavailable: true });
  // One attempt and one retry per call.
  assert.equal(requests, 6);
});
