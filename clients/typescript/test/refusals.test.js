// A refusal is a value: the Decision with allowed: false, never an exception.
import assert from "node:assert/strict";
import { test } from "node:test";
import { adminClient, newOrg, served } from "./helpers.js";

const client = adminClient();

test("429: a free org at its limit is refused, with the reason, its localized message and usage; nothing is recorded", async () => {
  const orgId = await newOrg({ plan: "free", locale: "da" });
  const full = served(await client.consume(orgId, "conversations", { amount: 100 }));
  assert.equal(full.allowed, true);
  assert.equal(full.usage.used, 100);

  const refused = served(await client.consume(orgId, "conversations"));
  assert.equal(refused.allowed, false);
  assert.equal(refused.reason, "quota_exceeded");
  assert.equal(refused.message, "Månedlig kvote nået. Opgrader for at fortsætte.");
  assert.equal(refused.usage.used, 100);
  assert.equal(refused.usage.limit, 100);
  assert.equal(refused.usage.blocked, true);

  const check = served(await client.check(orgId, "conversations"));
  assert.equal(check.allowed, false);
  assert.equal(check.reason, "quota_exceeded");

  const reserve = await client.reserve(orgId, "conversations", { amount: 1 });
  assert.equal(reserve.allowed, false);
  assert.equal(reserve.fallback, false);
  assert.equal(reserve.decision.reason, "quota_exceeded");

  assert.equal((await client.usage(orgId)).resources.find((r) => r.resource === "conversations")?.used, 100);
});

test("402: a free org whose trial has ended is refused with trial_expired", async () => {
  const orgId = await newOrg({ plan: "free", trialEndsAt: "2020-01-01T00:00:00Z" });
  const refused = served(await client.consume(orgId, "conversations"));
  assert.equal(refused.allowed, false);
  assert.equal(refused.reason, "trial_expired");
  assert.equal(refused.message, "Free trial expired. Upgrade to continue.");
  assert.equal(refused.usage.used, 0);

  const reserve = await client.reserve(orgId, "contacts", { amount: 1 });
  assert.equal(reserve.allowed, false);
  assert.equal(reserve.decision.reason, "trial_expired");

  const usage = await client.usage(orgId);
  assert.equal(usage.trial?.expired, true);
  assert.equal(usage.blocked.reason, "trial_expired");
  assert.equal(usage.resources.find((r) => r.resource === "conversations")?.used, 0);
});
