// Every method of QuotaClient against the running quota-local.
import assert from "node:assert/strict";
import { test } from "node:test";
import { QuotaApiError, QuotaClient } from "@quota-service/client";
import { BASE_URL, adminClient, newOrg, newOrgId, served, token } from "./helpers.js";

const client = adminClient();

test("orgs.put creates, then updates only the fields given; orgs.get reads the profile", async () => {
  const orgId = newOrgId("orgs");
  const created = await client.orgs.put(orgId, { plan: "growth", locale: "da", limits: { contacts: 5 } });
  assert.equal(created.orgId, orgId);
  assert.equal(created.plan, "growth");
  assert.equal(created.locale, "da");
  assert.deepEqual(created.limits, { contacts: 5 });
  assert.equal(created.trialEndsAt, null);

  const updated = await client.orgs.put(orgId, { features: { sso: true } });
  assert.equal(updated.plan, "growth");
  assert.deepEqual(updated.features, { sso: true });
  assert.deepEqual(updated.limits, { contacts: 5 });

  assert.deepEqual(await client.orgs.get(orgId), updated);
});

test("consume records the amount; the caller's own key counts once however often it is sent", async () => {
  const orgId = await newOrg({ plan: "growth" });
  const first = served(await client.consume(orgId, "contacts", { amount: 2 }));
  assert.equal(first.allowed, true);
  assert.equal(first.reason, null);
  assert.equal(first.message, null);
  assert.equal(first.usage.resource, "contacts");
  assert.equal(first.usage.used, 2);

  const one = served(await client.consume(orgId, "contacts", { idempotencyKey: "order-42" }));
  const again = served(await client.consume(orgId, "contacts", { idempotencyKey: "order-42" }));
  assert.equal(one.usage.used, 3);
  assert.equal(again.allowed, true);
  assert.equal(again.usage.used, 3);
  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "contacts")?.used, 3);

  // Two calls without a key are two consumes: each gets its own key.
  served(await client.consume(orgId, "contacts"));
  served(await client.consume(orgId, "contacts"));
  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "contacts")?.used, 5);
});

test("release gives back units of a total resource, never below 0; setUsage sets the count", async () => {
  const orgId = await newOrg({ plan: "growth" });
  served(await client.consume(orgId, "contacts", { amount: 5 }));
  const released = await client.release(orgId, "contacts", 2);
  assert.equal(released.usage.used, 3);
  assert.equal((await client.release(orgId, "contacts")).usage.used, 2, "one by default");
  assert.equal((await client.release(orgId, "contacts", 10)).usage.used, 0, "never below 0");
  const set = await client.setUsage(orgId, "conversations", 42);
  assert.equal(set.usage.resource, "conversations");
  assert.equal(set.usage.used, 42);
  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "conversations")?.used, 42);
  await assert.rejects(
    // @ts-expect-error conversations are counted per period: nothing to give back
    client.release(orgId, "conversations", 1),
    (err) => err instanceof QuotaApiError && err.status === 400 && err.code === "NOT_RELEASABLE",
  );
});

test("check, canUse and checkMany decide without recording", async () => {
  const orgId = await newOrg({ plan: "growth", limits: { contacts: 10 } });
  served(await client.consume(orgId, "contacts", { amount: 8 }));

  const fits = served(await client.check(orgId, "contacts", { amount: 2 }));
  assert.equal(fits.allowed, true);
  assert.equal(fits.usage.used, 8);
  assert.equal(fits.usage.remaining, 2);

  const tooMany = served(await client.check(orgId, "contacts", { amount: 3 }));
  assert.equal(tooMany.allowed, false);
  assert.equal(tooMany.reason, "quota_exceeded");

  assert.equal((await client.canUse(orgId, "contacts")).allowed, true);
  assert.equal((await client.canUse(orgId, "contacts", 3)).allowed, false);

  const many = await client.checkMany(orgId, { contacts: 2, users: 1 });
  assert.equal(many.fallback, false);
  assert.equal(many.allowed, true);
  assert.deepEqual(Object.keys(many.decisions).sort(), ["contacts", "users"]);
  assert.equal(many.decisions.contacts?.allowed, true);
  assert.equal(many.decisions.contacts?.fallback, false);

  const notAll = await client.checkMany(orgId, { contacts: 3, users: 1 });
  assert.equal(notAll.allowed, false);
  assert.equal(notAll.decisions.contacts?.allowed, false);
  assert.equal(notAll.decisions.users?.allowed, true);

  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "contacts")?.used, 8);
});

test("usage, history, features and feature read the org", async () => {
  const orgId = await newOrg({ plan: "growth", features: { sso: true } });
  served(await client.consume(orgId, "conversations", { amount: 7 }));

  const usage = await client.usage(orgId);
  assert.equal(usage.orgId, orgId);
  assert.equal(usage.plan, "growth");
  assert.equal(usage.trial, null);
  const conversations = usage.resources.find((r) => r.resource === "conversations");
  assert.equal(conversations?.used, 7);
  assert.equal(conversations?.limit, 300);
  assert.equal(conversations?.enforcement, "soft");
  assert.equal(usage.features.sso?.enabled, true);

  // A snapshot is written by the daily job; run it (over HTTP, as an operator would).
  const job = await fetch(`${BASE_URL}/v1/admin/jobs/daily`, { method: "POST", headers: { authorization: `Bearer ${token()}` } });
  assert.equal(job.status, 200);
  const history = await client.history(orgId, "conversations", { days: 2 });
  assert.equal(history.orgId, orgId);
  assert.equal(history.resource, "conversations");
  assert.equal(history.days.length, 1);
  assert.equal(history.days[0]?.date, history.to);
  assert.equal(history.days[0]?.used, 7);
  assert.equal(history.days[0]?.limit, 300);

  const features = await client.features(orgId);
  assert.equal(features.plan, "growth");
  assert.deepEqual(features.features.sso, { feature: "sso", enabled: true, source: "override" });
  assert.deepEqual(features.features.priority_support, { feature: "priority_support", enabled: false, source: "plan" });
  assert.deepEqual(await client.feature(orgId, "custom_domain"), { feature: "custom_domain", enabled: true, source: "plan" });
  const plans = await client.plans();
  assert.equal(plans.plans.free?.limits.conversations?.limit, 100);
  // The admin's list of orgs, page by page, finds this one.
  let cursor;
  let found;
  do {
    const page = await adminClient().admin.listOrgs({ limit: 100, cursor });
    found = found ?? page.orgs.find((o) => o.orgId === orgId);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && !found);
  assert.equal(found?.plan, "growth");
});

test("reserve holds units; commit records the actual use once; release frees them", async () => {
  const orgId = await newOrg({ plan: "growth", limits: { contacts: 10 } });
  const held = await client.reserve(orgId, "contacts", { amount: 6, ttlSeconds: 600 });
  assert.equal(held.allowed, true);
  assert.equal(held.fallback, false);
  assert.equal(held.held?.amount, 6);
  assert.match(held.held?.reservationId ?? "", /^rsv_/);
  assert.equal(served(held.decision).usage.held, 6);
  assert.equal(served(await client.check(orgId, "contacts", { amount: 5 })).allowed, false);

  const committed = await held.commit(4);
  assert(committed.allowed);
  assert.equal(committed.outcome?.status, "committed");
  assert.equal(committed.outcome?.used, 4);
  assert.equal(committed.outcome?.usage?.used, 4);
  assert.equal(committed.outcome?.usage?.held, 0);
  // A repeat answers the first outcome and records nothing more.
  const repeat = await held.commit(4);
  assert(repeat.allowed);
  assert.equal(repeat.outcome?.used, 4);
  await assert.rejects(held.release(), { name: "QuotaApiError", status: 409, code: "RESERVATION_COMMITTED" });

  const other = await client.reserve(orgId, "contacts", { amount: 5 });
  assert(other.allowed);
  const released = await other.release();
  assert.equal(released?.status, "released");
  assert.equal(released?.used, 0);
  assert.equal((await other.release())?.status, "released");
  const usage = (await client.usage(orgId)).resources.find((r) => r.resource === "contacts");
  assert.equal(usage?.used, 4);
  assert.equal(usage?.held, 0);
});

test("a reserve with the caller's key holds once; a commit above the hold that the limit refuses is a value", async () => {
  const orgId = await newOrg({ plan: "growth", limits: { contacts: 10 } });
  const a = await client.reserve(orgId, "contacts", { amount: 4, idempotencyKey: "batch-7" });
  const b = await client.reserve(orgId, "contacts", { amount: 4, idempotencyKey: "batch-7" });
  assert(a.allowed && b.allowed);
  assert.equal(b.held?.reservationId, a.held?.reservationId);
  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "contacts")?.held, 4);

  const refused = await a.commit(11);
  assert.equal(refused.allowed, false);
  assert(!refused.allowed);
  assert.equal(refused.decision.reason, "quota_exceeded");
  // The reservation stays open; a commit within the limit still works.
  const ok = await a.commit(10);
  assert(ok.allowed);
  assert.equal(ok.outcome?.used, 10);
});

test("admin.grant adds units once per key, revoke takes them off, reset zeroes, audit lists it all", async () => {
  const orgId = await newOrg({ plan: "free" });
  const grant = await client.admin.grant(orgId, { resource: "conversations", amount: 50, reason: "Black Friday boost", idempotencyKey: "bf-1" });
  assert.equal(grant.orgId, orgId);
  assert.equal(grant.grant.amount, 50);
  assert.equal(grant.grant.reason, "Black Friday boost");
  assert.equal(grant.usage.limit, 150);
  const replay = await client.admin.grant(orgId, { resource: "conversations", amount: 50, reason: "Black Friday boost", idempotencyKey: "bf-1" });
  assert.equal(replay.grant.id, grant.grant.id);
  assert.equal(replay.usage.limit, 150);

  served(await client.consume(orgId, "conversations", { amount: 3 }));
  const revoked = await client.admin.revoke(orgId, grant.grant.id);
  assert.equal(revoked.revoked.id, grant.grant.id);
  assert.equal(revoked.usage.limit, 100);
  // A repeat answers the first revoke.
  const again = await client.admin.revoke(orgId, grant.grant.id);
  assert.equal(again.revoked.id, grant.grant.id);
  assert.equal(again.usage.limit, 100);

  const reset = await client.admin.reset(orgId, { resource: "conversations", reason: "support ticket 4711" });
  assert.equal(reset.orgId, orgId);
  assert.equal(reset.reset.length, 1);
  assert.equal(reset.reset[0]?.used, 0);

  const audit = await client.admin.audit(orgId, { limit: 10 });
  assert.deepEqual(
    audit.entries.map((e) => e.action),
    ["reset", "grant_revoked", "grant_added", "org_created"],
  );
  assert.equal(audit.entries[0]?.reason, "support ticket 4711");
  assert.equal(audit.entries[0]?.actor, "ts-client-tests");
  assert.equal((await client.admin.audit(orgId, { limit: 1 })).entries.length, 1);
});

test("errors carry the contract's status and code", async () => {
  const unknown = newOrgId("missing");
  await assert.rejects(client.usage(unknown), (err) => {
    assert(err instanceof QuotaApiError);
    assert.equal(err.status, 404);
    assert.equal(err.code, "ORG_NOT_FOUND");
    assert.equal(err.unavailable, false);
    return true;
  });
  await assert.rejects(client.usage("not a valid id!"), { status: 400, code: "INVALID_ORG_ID" });
  const orgId = await newOrg({ plan: "growth" });
  served(await client.consume(orgId, "contacts", { amount: 1, idempotencyKey: "k-1" }));
  await assert.rejects(client.consume(orgId, "contacts", { amount: 2, idempotencyKey: "k-1" }), { status: 422, code: "IDEMPOTENCY_KEY_REUSED" });
  await assert.rejects(client.consume(orgId, "contacts", { amount: 0 }), { status: 400, code: "INVALID_REQUEST" });

  // The gateway's own answers (quota-local gives them as API Gateway does).
  const forged = new QuotaClient({ baseUrl: BASE_URL, token: "not-a-jwt" });
  await assert.rejects(forged.usage(orgId), { status: 401, code: "UNAUTHORIZED" });
  const otherOrg = new QuotaClient({ baseUrl: BASE_URL, getToken: () => token("quota:read", "someone-else") });
  await assert.rejects(otherOrg.usage(orgId), { status: 403, code: "FORBIDDEN" });
  const readOnly = new QuotaClient({ baseUrl: BASE_URL, getToken: async () => Promise.resolve(token("quota:read")) });
  await assert.rejects(readOnly.consume(orgId, "contacts"), { status: 403, code: "FORBIDDEN" });
});

test("the constructor wants exactly one of token and getToken", () => {
  assert.throws(() => new QuotaClient({ baseUrl: BASE_URL }), TypeError);
  assert.throws(() => new QuotaClient({ baseUrl: BASE_URL, token: "a", getToken: () => "b" }), TypeError);
});
