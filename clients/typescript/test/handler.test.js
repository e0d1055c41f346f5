// usageHandler: the read routes for the session's own org, and nothing else.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { QuotaClient, usageHandler } from "@quota-service/client";
import { adminClient, freePort, newOrg, served, token } from "./helpers.js";

/** @type {string} */
let mine;
/** @type {string} */
let theirs;
before(async () => {
  mine = await newOrg({ plan: "growth", features: { sso: true } }, "mine");
  theirs = await newOrg({ plan: "growth" }, "theirs");
  served(await adminClient().consume(mine, "conversations", { amount: 3 }));
});

// The app's session, here a header its own auth would have set.
const handler = usageHandler({
  client: adminClient(),
  resolveOrgId: (request) => request.headers.get("x-session-org"),
});

/**
 * @param {string} method
 * @param {string} path
 * @param {string | null} [session]
 */
function call(method, path, session = mine) {
  /** @type {Record<string, string>} */
  const headers = session === null ? {} : { "x-session-org": session };
  const body = method === "GET" || method === "HEAD" ? undefined : "{}";
  return handler(new Request(`http://127.0.0.1/api/quota${path}`, { method, headers, body }));
}

test("serves the session's own usage, history and features", async () => {
  const usage = await call("GET", `/orgs/${mine}/usage`);
  assert.equal(usage.status, 200);
  assert.equal(usage.headers.get("cache-control"), "private, no-store");
  const report = await usage.json();
  assert.equal(report.orgId, mine);
  assert.equal(report.resources.find((/** @type {{ resource: string }} */ r) => r.resource === "conversations").used, 3);

  const history = await call("GET", `/orgs/${mine}/usage/conversations/history?days=7`);
  assert.equal(history.status, 200);
  const h = await history.json();
  assert.equal(h.orgId, mine);
  assert.equal(h.resource, "conversations");

  const features = await call("GET", `/orgs/${mine}/features`);
  assert.equal(features.status, 200);
  assert.deepEqual((await features.json()).features.sso, { feature: "sso", enabled: true, source: "override" });
});

test("refuses another org (403) and a request without a session (401)", async () => {
  for (const path of [`/orgs/${theirs}/usage`, `/orgs/${theirs}/usage/conversations/history`, `/orgs/${theirs}/features`]) {
    const res = await call("GET", path);
    assert.equal(res.status, 403, path);
    assert.equal((await res.json()).error.code, "FORBIDDEN");
  }
  const anonymous = await call("GET", `/orgs/${mine}/usage`, null);
  assert.equal(anonymous.status, 401);
});

test("refuses every write route, and every other route (404, or 405 on a served path)", async () => {
  const r = `/orgs/${mine}`;
  const refused = [
    ["PUT", r, 404],
    ["GET", r, 404],
    ["POST", `${r}/usage/conversations/consume`, 404],
    ["POST", `${r}/usage/contacts/release`, 404],
    ["PUT", `${r}/usage/contacts`, 404],
    ["POST", `${r}/usage/conversations/reserve`, 404],
    ["POST", `${r}/reservations/rsv_abc/commit`, 404],
    ["DELETE", `${r}/reservations/rsv_abc`, 404],
    ["POST", `${r}/check`, 404],
    ["GET", `${r}/usage/conversations/check`, 404],
    ["GET", `${r}/features/sso`, 404],
    ["POST", `/admin${r}/reset`, 404],
    ["POST", `/admin${r}/grants`, 404],
    ["DELETE", `/admin${r}/grants/grt_5f1c0a9e3b7d4c2a8e6f0b1d`, 404],
    ["GET", `/admin${r}/audit`, 404],
    ["POST", "/admin/jobs/daily", 404],
    ["POST", `${r}/usage`, 405],
    ["PUT", `${r}/usage`, 405],
    ["DELETE", `${r}/usage`, 405],
    ["POST", `${r}/features`, 405],
    ["POST", `${r}/usage/conversations/history`, 405],
  ];
  for (const [method, path, status] of refused) {
    const res = await call(String(method), String(path));
    assert.equal(res.status, status, `${method} ${path}`);
    if (status === 405) assert.equal(res.headers.get("allow"), "GET");
  }
  // None of it reached the service.
  const conversations = (await adminClient().usage(mine)).resources.find((u) => u.resource === "conversations");
  assert.equal(conversations?.used, 3);
  assert.equal(conversations?.held, 0);
});

test("passes the service's 400 and 404 through, and answers 503 when it cannot be reached", async () => {
  const unknown = await call("GET", `/orgs/${mine}/usage/widgets/history`);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "UNKNOWN_RESOURCE");
  const badDays = await call("GET", `/orgs/${mine}/usage/conversations/history?days=abc`);
  assert.equal(badDays.status, 400);
  const tooMany = await call("GET", `/orgs/${mine}/usage/conversations/history?days=400`);
  assert.equal(tooMany.status, 400);
  assert.equal((await tooMany.json()).error.code, "INVALID_REQUEST");

  const down = usageHandler({
    client: new QuotaClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, token: token(), retries: 0 }),
    resolveOrgId: () => mine,
  });
  const res = await down(new Request(`http://127.0.0.1/orgs/${mine}/usage`));
  assert.equal(res.status, 503);
});

// The same handler behind a plain Node HTTP server, converted as the
// README's Express example does it.
/** @type {import("node:http").Server} */
let server;
after(() => server?.close());

test("mounted in a Node HTTP server, as in the README's Express example", async () => {
  server = createServer(async (req, res) => {
    const request = new Request(new URL(req.url ?? "/", "http://127.0.0.1"), {
      method: req.method,
      headers: { "x-session-org": mine },
    });
    const response = await handler(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(await response.text());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  assert(address !== null && typeof address === "object");
  const base = `http://127.0.0.1:${address.port}/api/quota`;
  const ok = await fetch(`${base}/orgs/${mine}/usage`);
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).orgId, mine);
  assert.equal((await fetch(`${base}/orgs/${theirs}/usage`)).status, 403);
  assert.equal((await fetch(`${base}/orgs/${mine}/usage/conversations/consume`, { method: "POST" })).status, 404);
});
