// The operator console, served by quota-local at /console/, in a real
// Chromium: sign in with #access_token=, find an org at risk, read its bars,
// reset with a reason (toast and audit entry), add and revoke a grant (the
// limit grows and shrinks), override a feature, change plan and limits; a
// read-only token changes nothing; Danish; axe-core; screenshots.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ADMIN,
  api,
  assertAccessible,
  BASE_URL,
  barValues,
  eventually,
  launch,
  newOrg,
  ok,
  screenshot,
  token,
  usageOf,
  watchErrors,
} from "./helpers.js";
import { NAMES } from "./fixtures.js";

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {{ risky: string, blocked: string, calm: string }} */
let orgs;

before(async () => {
  browser = await launch();
  orgs = {
    // 90 of 100 conversations (and 5 more held by an open reservation), 120 of 250 contacts.
    risky: await newOrg("risky", { plan: "free", locale: "en", timezone: "Europe/Copenhagen" }, { conversations: 90, contacts: 120, storage: 268435456 }),
    blocked: await newOrg("blocked", { plan: "free", locale: "da" }, { conversations: 100 }),
    calm: await newOrg("calm", { plan: "growth", locale: "en" }, { conversations: 3 }),
  };
  assert.equal((await api("POST", `/v1/orgs/${orgs.risky}/usage/conversations/reserve`, { amount: 5, ttlSeconds: 3600 })).status, 201);
  // Today's snapshot, for the history chart.
  const job = await api("POST", "/v1/admin/jobs/daily");
  assert(job.status === 200 || job.status === 202, JSON.stringify(job));
});
after(async () => {
  await browser?.close();
});

/**
 * A new tab (its own sessionStorage), signed in through the fragment.
 * @param {string} tokenValue
 * @param {string} [then] a route to go to after signing in
 */
async function signIn(tokenValue, then) {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  /** @type {{ method: string, path: string, key: string | undefined }[]} */
  const writes = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (request.method() !== "GET" && url.pathname.startsWith("/v1/")) {
      writes.push({ method: request.method(), path: url.pathname, key: request.headers()["idempotency-key"] });
    }
  });
  await page.goto(`${BASE_URL}/console/#access_token=${tokenValue}`);
  await page.getByRole("button", { name: /Sign out|Log ud/ }).waitFor();
  if (then) {
    await page.evaluate((hash) => (location.hash = hash), then);
  }
  return { page, errors, writes };
}

/**
 * Every write the console sent carried an Idempotency-Key (the client's), but a
 * revoke: the service answers a repeated revoke with the first outcome.
 * @param {{ method: string, path: string, key: string | undefined }[]} writes
 * @param {number} atLeast
 */
function assertKeyed(writes, atLeast) {
  assert(writes.length >= atLeast, JSON.stringify(writes));
  for (const w of writes) {
    if (w.method === "DELETE" && /\/grants\//.test(w.path)) continue;
    assert.match(w.key ?? "", /^[0-9a-f-]{36}$/, `${w.method} ${w.path} without an Idempotency-Key`);
  }
}

/**
 * The org list's row for `orgId`, loading more pages until it shows.
 * @param {import("playwright-core").Page} page
 * @param {string} orgId
 */
async function findRow(page, orgId) {
  const row = page.getByRole("row").filter({ has: page.getByRole("link", { name: orgId, exact: true }) });
  const more = page.getByRole("button", { name: /Load more|Hent flere/ });
  return eventually(async () => {
    if ((await row.count()) === 1) return row;
    if (await more.isVisible()) await more.click();
    throw new Error(`no row for ${orgId} yet`);
  }, 120_000);
}

/**
 * Every limited resource's bar on the org page is the API's used and limit.
 * @param {import("playwright-core").Page} page
 * @param {string} orgId
 * @param {"en" | "da"} [locale]
 */
async function assertBars(page, orgId, locale = "en") {
  const report = await usageOf(orgId);
  const region = page.getByRole("region", { name: locale === "da" ? "Forbrug" : "Usage" });
  let bars = 0;
  for (const u of report.resources) {
    if (u.limit === null) continue;
    const bar = region.getByRole("progressbar", { name: /** @type {Record<string, string>} */ (NAMES[locale])[u.resource], exact: true });
    assert.deepEqual(await barValues(bar), { now: u.used, max: u.limit, min: 0 }, `${u.resource} on the org page`);
    bars++;
  }
  assert(bars >= 9, `${bars} bars`);
  return report;
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} text
 */
const toast = (page, text) => page.getByRole("status").filter({ hasText: text });

describe("the console, as an admin", () => {
  test("signs in from the fragment, finds the org at risk, and its bars say what the API says", async () => {
    const { page, errors } = await signIn(ADMIN);
    // The token left the address bar (and the history entry).
    assert(!page.url().includes("access_token"), page.url());
    assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.token")), ADMIN);
    await page.getByRole("heading", { name: "Organizations", level: 1 }).waitFor();
    await page.getByText("Signed in as operator@example.test · Admin").waitFor();

    await page.getByLabel("Show").selectOption("at_risk");
    const risky = await findRow(page, orgs.risky);
    await risky.getByText("At risk: Conversations").waitFor();
    await risky.getByText("Conversations: 90 / 100 (90%)").waitFor();
    const blocked = await findRow(page, orgs.blocked);
    await blocked.getByText("Blocked: quota exceeded").waitFor();
    // The calm org is not at risk.
    assert.equal(await page.getByRole("link", { name: orgs.calm, exact: true }).count(), 0);
    // Each page as the API sorts it: the blocked before the rest.
    const statuses = await page.getByRole("row").evaluateAll((rows) => rows.slice(1).map((r) => r.children[2]?.textContent ?? ""));
    const firstOpen = statuses.findIndex((s) => !s.startsWith("Blocked"));
    assert(firstOpen === -1 || statuses.slice(firstOpen).every((s) => !s.startsWith("Blocked")) || statuses.length > 50, statuses.join(" | "));
    await assertAccessible(page, "orgs (en)");
    await screenshot(page, "console-orgs-en");

    await risky.getByRole("link", { name: orgs.risky }).click();
    await page.getByRole("heading", { name: `Organization ${orgs.risky}`, level: 1 }).waitFor();
    const report = await assertBars(page, orgs.risky);
    const conversations = report.resources.find((/** @type {any} */ u) => u.resource === "conversations");
    assert.equal(conversations.held, 5);
    const usage = page.getByRole("region", { name: "Usage" });
    await usage.getByRole("article", { name: "Conversations" }).getByText("5 reserved").waitFor();
    await usage.getByRole("article", { name: "Storage" }).getByText("256.00 MB of 1.00 GB used").waitFor();
    await page.getByRole("status").filter({ hasText: "You are approaching your limit" }).waitFor();
    await page.getByRole("img", { name: "Conversations, last 30 days" }).waitFor();
    await page.getByRole("region", { name: "Audit log" }).getByRole("cell", { name: "Org created" }).waitFor();
    await assertAccessible(page, "org page (en)");
    await screenshot(page, "console-org-en", { fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("reset needs a reason in the confirmation dialog, then a toast, an audit entry and a zero bar", async () => {
    const { page, errors, writes } = await signIn(ADMIN, `#/orgs/${orgs.risky}`);
    const usage = page.getByRole("region", { name: "Usage" });
    await usage.getByRole("progressbar", { name: "Conversations" }).waitFor();
    const open = page.getByRole("button", { name: "Reset quota" });
    await open.click();
    const dialog = page.getByRole("dialog", { name: `Reset quota for ${orgs.risky}` });
    await dialog.waitFor();
    assert.equal(await dialog.getAttribute("aria-modal"), "true");
    await dialog.getByLabel("What to reset").selectOption("conversations");
    await dialog.getByRole("button", { name: "Reset", exact: true }).click();
    await dialog.getByText("A reason is required.").waitFor();
    assert.equal(await dialog.getByLabel("Reason").getAttribute("aria-invalid"), "true");
    assert.equal((await usageOf(orgs.risky)).resources.find((/** @type {any} */ u) => u.resource === "conversations").used, 90);
    await assertAccessible(page, "reset dialog (en)");
    await screenshot(page, "console-reset-dialog-en");

    await dialog.getByLabel("Reason").fill("Support ticket 4711");
    await dialog.getByRole("button", { name: "Reset", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await toast(page, "Quota reset: Conversations").waitFor();
    await screenshot(page, "console-reset-toast-en");
    // Focus went back to the button that opened the dialog.
    await eventually(async () => assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Reset quota"));
    const entry = page.getByRole("region", { name: "Audit log" }).getByRole("row").filter({ hasText: "Support ticket 4711" });
    await entry.waitFor();
    await entry.getByRole("cell", { name: "Reset", exact: true }).waitFor();
    await entry.getByRole("cell", { name: "operator@example.test" }).waitFor();
    await eventually(async () => assert.equal((await barValues(usage.getByRole("progressbar", { name: "Conversations" }))).now, 0));
    await assertBars(page, orgs.risky);
    const audit = await ok("GET", `/v1/admin/orgs/${orgs.risky}/audit?limit=5`);
    assert.equal(audit.entries[0].action, "reset");
    assert.equal(audit.entries[0].reason, "Support ticket 4711");
    assertKeyed(writes, 1);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a grant with a reason makes the limit grow; revoking it takes it back", async () => {
    const org = await newOrg("grant", { plan: "free", locale: "en" }, { conversations: 95 });
    const { page, errors, writes } = await signIn(ADMIN, `#/orgs/${org}`);
    const usage = page.getByRole("region", { name: "Usage" });
    const bar = usage.getByRole("progressbar", { name: "Conversations" });
    assert.deepEqual(await barValues(bar), { now: 95, max: 100, min: 0 });

    const form = page.getByRole("form", { name: "Add a grant" });
    await form.getByLabel("Resource").selectOption("conversations");
    await form.getByLabel("Amount").fill("50");
    await form.getByLabel("Reason").fill("Black Friday boost");
    await form.getByRole("button", { name: "Add grant" }).click();
    await toast(page, "Granted 50 conversations; the limit is now 150").waitFor();
    await eventually(async () => assert.deepEqual(await barValues(bar), { now: 95, max: 150, min: 0 }));
    const report = await assertBars(page, org);
    const conversations = report.resources.find((/** @type {any} */ u) => u.resource === "conversations");
    assert.equal(conversations.limit, 150);
    assert.equal(conversations.grants.length, 1);
    const grants = page.getByRole("region", { name: "Grants" });
    await grants.getByRole("row").filter({ hasText: "Conversations" }).getByRole("cell", { name: "50", exact: true }).waitFor();
    await page.getByRole("region", { name: "Audit log" }).getByRole("row").filter({ hasText: "Black Friday boost" }).getByRole("cell", { name: "Grant added" }).waitFor();

    await grants.getByRole("button", { name: "Revoke 50 conversations" }).click();
    await toast(page, "Grant revoked: 50 conversations").waitFor();
    await eventually(async () => assert.deepEqual(await barValues(bar), { now: 95, max: 100, min: 0 }));
    await grants.getByText("No live grants.").waitFor();
    assert.equal((await usageOf(org)).resources.find((/** @type {any} */ u) => u.resource === "conversations").limit, 100);
    assertKeyed(writes, 2);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a grant or a reset tried again by hand after its answer was lost is applied once", async () => {
    const org = await newOrg("again", { plan: "free", locale: "en" }, { conversations: 60, contacts: 5 });
    const { page, errors, writes } = await signIn(ADMIN, `#/orgs/${org}`);
    await page.getByRole("region", { name: "Usage" }).getByRole("progressbar", { name: "Conversations" }).waitFor();
    // Every attempt reaches the service, which applies it; its answer is lost
    // (503 OUTCOME_UNKNOWN) until the operator tries again by hand.
    /** @param {string} glob */
    const loseAnswers = (glob) =>
      page.route(glob, async (route) => {
        await route.fetch();
        await route.fulfill({
          status: 503,
          headers: { "retry-after": "0" },
          json: { error: { code: "OUTCOME_UNKNOWN", message: "the outcome is unknown" } },
        });
      });

    const form = page.getByRole("form", { name: "Add a grant" });
    await form.getByLabel("Resource").selectOption("conversations");
    await form.getByLabel("Amount").fill("50");
    await form.getByLabel("Reason").fill("Retried by hand");
    await loseAnswers("**/v1/admin/orgs/*/grants");
    await form.getByRole("button", { name: "Add grant" }).click();
    await page.getByText(/OUTCOME_UNKNOWN/).first().waitFor();
    await page.unrouteAll({ behavior: "wait" });
    await form.getByRole("button", { name: "Add grant" }).click();
    await toast(page, "Granted 50 conversations; the limit is now 150").waitFor();
    const conversations = (await usageOf(org)).resources.find((/** @type {any} */ u) => u.resource === "conversations");
    assert.equal(conversations.limit, 150, "granted once");
    assert.equal(conversations.grants.length, 1);
    const grantKeys = new Set(writes.filter((w) => w.path.endsWith("/grants")).map((w) => w.key));
    assert.equal(grantKeys.size, 1, "every attempt, by the client and by hand, under one key");

    await page.getByRole("button", { name: "Reset quota" }).click();
    let dialog = page.getByRole("dialog", { name: `Reset quota for ${org}` });
    // Only what a reset starts again: the period's resources, not totals such as contacts.
    const choices = await dialog.getByLabel("What to reset").locator("option").allTextContents();
    assert(choices.includes("Conversations") && !choices.includes("Contacts"), JSON.stringify(choices));
    await dialog.getByLabel("What to reset").selectOption("conversations");
    await dialog.getByLabel("Reason").fill("Ticket 815");
    await loseAnswers("**/v1/admin/orgs/*/reset");
    await dialog.getByRole("button", { name: "Reset", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByText(/OUTCOME_UNKNOWN/).first().waitFor();
    await page.unrouteAll({ behavior: "wait" });
    // Used again since: a second reset would wipe this out.
    assert.equal((await api("POST", `/v1/orgs/${org}/usage/conversations/consume`, { amount: 7 })).status, 200);
    await page.getByRole("button", { name: "Reset quota" }).click();
    dialog = page.getByRole("dialog", { name: `Reset quota for ${org}` });
    await dialog.getByLabel("What to reset").selectOption("conversations");
    await dialog.getByLabel("Reason").fill("Ticket 815");
    await dialog.getByRole("button", { name: "Reset", exact: true }).click();
    await toast(page, "Quota reset: Conversations").waitFor();
    const audit = await ok("GET", `/v1/admin/orgs/${org}/audit?limit=20`);
    assert.equal(audit.entries.filter((/** @type {any} */ e) => e.action === "reset").length, 1, "reset once");
    assert.equal((await usageOf(org)).resources.find((/** @type {any} */ u) => u.resource === "conversations").used, 7);
    assertKeyed(writes, 2);
    // The browser logs each lost answer's 503; nothing else went wrong.
    assert.deepEqual(errors.filter((e) => !/status of 503/.test(e)), []);
    await page.close();
  });

  test("a malformed org link shows the org list, not a blank page", async () => {
    const { page, errors } = await signIn(ADMIN, "#/orgs/%E0");
    await page.getByRole("heading", { name: "Organizations", level: 1 }).waitFor();
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("features are overridden on and back to the plan; plan and limit overrides are saved", async () => {
    const org = await newOrg("settings", { plan: "free", locale: "en" }, { contacts: 10 });
    const { page, errors, writes } = await signIn(ADMIN, `#/orgs/${org}`);
    const features = page.getByRole("region", { name: "Features" });
    const sso = features.getByLabel("Setting: Single sign-on (SAML)");
    await sso.selectOption("on");
    await features.getByRole("button", { name: "Save features" }).click();
    await toast(page, "Features saved").waitFor();
    await eventually(async () => {
      const f = await ok("GET", `/v1/orgs/${org}/features`);
      assert.deepEqual(f.features.sso, { feature: "sso", enabled: true, source: "override" });
    });
    const row = features.getByRole("row", { name: /Single sign-on/ });
    await row.getByRole("cell", { name: "Override" }).waitFor();
    await row.getByRole("cell", { name: "Yes" }).waitFor();

    // Back to the plan's value: the override is removed (null), not set to false.
    await features.getByLabel("Setting: Single sign-on (SAML)").selectOption("");
    await features.getByRole("button", { name: "Save features" }).click();
    await eventually(async () => assert.equal((await ok("GET", `/v1/orgs/${org}`)).features.sso, undefined));
    await row.getByRole("cell", { name: "Plan", exact: true }).waitFor();

    const limits = page.getByRole("region", { name: "Plan and limits" });
    await limits.getByLabel("Plan", { exact: true }).selectOption("growth");
    await limits.getByLabel("Override for Contacts").fill("5000");
    await limits.getByRole("button", { name: "Save plan and limits" }).click();
    await toast(page, "Plan and limits saved").waitFor();
    await eventually(async () => {
      const profile = await ok("GET", `/v1/orgs/${org}`);
      assert.equal(profile.plan, "growth");
      assert.equal(profile.limits.contacts, 5000);
    });
    const contacts = page.getByRole("region", { name: "Usage" }).getByRole("progressbar", { name: "Contacts" });
    await eventually(async () => assert.deepEqual(await barValues(contacts), { now: 10, max: 5000, min: 0 }));
    await assertBars(page, org);
    // Emptying the override gives the plan's limit back.
    await limits.getByLabel("Override for Contacts").fill("");
    await limits.getByRole("button", { name: "Save plan and limits" }).click();
    await eventually(async () => assert.deepEqual(await barValues(contacts), { now: 10, max: 25000, min: 0 }));
    const actions = (await ok("GET", `/v1/admin/orgs/${org}/audit?limit=10`)).entries.map((/** @type {any} */ e) => e.action);
    assert.deepEqual(actions.slice(0, 5).sort(), ["features_changed", "features_changed", "limits_changed", "limits_changed", "plan_changed"]);
    assertKeyed(writes, 3);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("the console, read-only and in Danish", () => {
  test("a token without quota:admin sees the org and has no control that changes anything", async () => {
    const { page, errors } = await signIn(token("quota:read", "", "reader@example.test"));
    await page.getByText("Signed in as reader@example.test · Read only").waitFor();
    await page.getByText("This token has no quota:admin scope").first().waitFor();
    assert.equal(await page.getByRole("table").count(), 0);
    await page.getByLabel("Organization id").fill(orgs.risky);
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByRole("heading", { name: `Organization ${orgs.risky}` }).waitFor();
    await assertBars(page, orgs.risky);
    await page.getByRole("region", { name: "Audit log" }).getByText("The audit log needs the quota:admin scope.").waitFor();
    await page.getByRole("region", { name: "Features" }).getByRole("row", { name: /Single sign-on/ }).waitFor();
    const buttons = await page.getByRole("button").allTextContents();
    assert.deepEqual(buttons.sort(), ["Sign out", "Skip to content"]);
    assert.equal(await page.getByRole("form").count(), 0);
    assert.equal(await page.getByRole("spinbutton").count(), 0);
    assert.equal(await page.getByRole("textbox").count(), 0);
    await assertAccessible(page, "org page, read-only");
    await screenshot(page, "console-org-read-only-en");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("an org-bound token opens its own org", async () => {
    const { page, errors } = await signIn(token("quota:read", orgs.calm, "app"));
    await page.getByRole("heading", { name: `Organization ${orgs.calm}` }).waitFor();
    await assertBars(page, orgs.calm);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("in Danish: the orgs, the org page and the reset dialog, accessible", async () => {
    const { page, errors } = await signIn(ADMIN);
    await page.getByLabel("Language").selectOption("da");
    await page.getByRole("heading", { name: "Organisationer", level: 1 }).waitFor();
    await page.getByLabel("Vis").selectOption("blocked");
    const row = await findRow(page, orgs.blocked);
    await row.getByText("Blokeret: kvote overskredet").waitFor();
    await assertAccessible(page, "orgs (da)");
    await screenshot(page, "console-orgs-da");

    await row.getByRole("link", { name: orgs.blocked }).click();
    await page.getByRole("heading", { name: `Organisation ${orgs.blocked}` }).waitFor();
    await assertBars(page, orgs.blocked, "da");
    await page.getByRole("alert").filter({ hasText: "I har nået jeres grænse" }).waitFor();
    await page.getByRole("alert").filter({ hasText: "Månedlig kvote nået. Opgrader for at fortsætte." }).waitFor();
    await assertAccessible(page, "org page (da)");
    await screenshot(page, "console-org-da", { fullPage: true });
    await page.getByRole("button", { name: "Nulstil kvote" }).click();
    const dialog = page.getByRole("dialog", { name: `Nulstil kvote for ${orgs.blocked}` });
    await dialog.waitFor();
    await assertAccessible(page, "reset dialog (da)");
    await screenshot(page, "console-reset-dialog-da");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    await page.evaluate(() => localStorage.removeItem("quota-console.locale"));
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("an org that does not exist says so, and shows no sections", async () => {
    const { page } = await signIn(ADMIN, "#/orgs/no-such-org");
    await page.getByRole("alert").filter({ hasText: "No organization no-such-org." }).waitFor();
    assert.equal(await page.getByRole("region").count(), 0);
    await page.close();
  });

  test("a token the API refuses ends the session", async () => {
    const page = await browser.context.newPage();
    // Signed with another secret: quota-local answers 401, as API Gateway would.
    const forged = ADMIN.replace(/\.[^.]+$/, ".c2lnbmF0dXJl");
    await page.goto(`${BASE_URL}/console/#access_token=${forged}`);
    await page.getByRole("heading", { name: "Sign in to the quota console" }).waitFor();
    await page.getByRole("alert").filter({ hasText: "Your session has ended" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.token")), null);
    await page.close();
  });
});
