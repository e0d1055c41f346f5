// Channels through the client, against quota-local: a customer's own token
// adds a signed webhook to a receiver of the test's own (on loopback), the
// receiver verifies the delivery as any Standard Webhooks receiver would,
// the deliveries list shows it, and removal is idempotent.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { test } from "node:test";
import { QuotaApiError, QuotaClient } from "@quota-service/client";
import { BASE_URL, adminClient, newOrg, token } from "./helpers.js";

/**
 * What a receiver does with a delivery: checks the signature over
 * `${id}.${timestamp}.${body}` with the secret's key, and that it is recent.
 * @param {string} secret the channel's `whsec_…`
 * @param {import("node:http").IncomingHttpHeaders} headers
 * @param {string} body the raw body, as received
 */
function verify(secret, headers, body) {
  const id = String(headers["webhook-id"]);
  const timestamp = String(headers["webhook-timestamp"]);
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest();
  return String(headers["webhook-signature"])
    .split(" ")
    .some((sig) => {
      const [version, value] = sig.split(",");
      const given = Buffer.from(value ?? "", "base64");
      return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

/** A receiver on loopback that records what it gets. */
async function receiver() {
  /** @type {{ headers: import("node:http").IncomingHttpHeaders, body: string }[]} */
  const got = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      got.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  assert(address !== null && typeof address === "object");
  return { got, url: `http://127.0.0.1:${address.port}/quota`, close: () => server.close() };
}

test("a customer adds a signed webhook and gets its threshold, verified", async () => {
  const orgId = await newOrg({ plan: "free" }, "channels");
  const customer = new QuotaClient({ baseUrl: BASE_URL, token: token("quota:read quota:write", orgId) });
  const hook = await receiver();
  try {
    const channel = await customer.channels.add(orgId, { type: "webhook", url: hook.url, events: ["QuotaThresholdCrossed"] });
    assert.match(channel.secret ?? "", /^whsec_/);
    assert.equal((await customer.channels.list(orgId)).channels[0]?.secret, undefined, "the secret is shown once");

    await customer.consume(orgId, "conversations", { amount: 80 });
    for (let i = 0; hook.got.length === 0; i++) {
      assert(i < 6000, "no delivery within two minutes");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [delivery] = hook.got;
    assert(delivery);
    assert.equal(verify(channel.secret ?? "", delivery.headers, delivery.body), true, "signed with the channel's secret");
    assert.equal(verify(channel.secret ?? "", delivery.headers, delivery.body.replace("80", "81")), false, "a forged body fails");
    const event = JSON.parse(delivery.body);
    assert.equal(event.type, "QuotaThresholdCrossed");
    assert.deepEqual([event.data.orgId, event.data.threshold], [orgId, 80]);

    let listed;
    for (let i = 0; ; i++) {
      listed = (await customer.channels.deliveries(orgId, channel.id)).deliveries;
      if (listed[0]?.status === "delivered") break;
      assert(i < 6000, "the delivery never settled");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(listed[0]?.webhookId, delivery.headers["webhook-id"]);

    // Another org's channels are not this customer's.
    const other = await newOrg({ plan: "free" }, "channels-other");
    await assert.rejects(customer.channels.list(other), (e) => e instanceof QuotaApiError && e.status === 403);

    assert.equal((await customer.channels.remove(orgId, channel.id))?.id, channel.id);
    assert.equal(await customer.channels.remove(orgId, channel.id), null, "gone either way");
    assert.deepEqual((await adminClient().channels.list(orgId)).channels, []);
  } finally {
    hook.close();
  }
});

test("a URL inside a network is refused with its code", async () => {
  const orgId = await newOrg({ plan: "free" }, "channels-ssrf");
  await assert.rejects(
    adminClient().channels.add(orgId, { type: "slack", url: "https://169.254.169.254/latest", events: ["QuotaExceeded"] }),
    (e) => e instanceof QuotaApiError && e.status === 400 && e.code === "CHANNEL_URL_FORBIDDEN",
  );
});
