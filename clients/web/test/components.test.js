// The components in a real Chromium: in a plain HTML page and in a React
// page, fed by the client's usageHandler in front of quota-local; fed by
// properties for the colour boundaries and the screenshots; in English and
// Danish; checked by axe-core. Driven by role and accessible name.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { api, assertAccessible, barValues, eventually, launch, newOrg, ok, screenshot, startPageServer, usageOf, watchErrors } from "./helpers.js";
import { history, NAMES, report, richReport, usage } from "./fixtures.js";

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
/** @type {Awaited<ReturnType<typeof startPageServer>>} */
let pages;

before(async () => {
  [browser, pages] = await Promise.all([launch(), startPageServer()]);
});
after(async () => {
  await browser?.close();
  await pages?.close();
});

const GREEN = "rgb(22, 163, 74)";
const YELLOW = "rgb(234, 179, 8)";
const RED = "rgb(220, 38, 38)";

/**
 * Opens a test page as the app's user of `org` (the `org` cookie is the app's session).
 * @param {string} path
 * @param {string} org
 */
async function open(path, org) {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  await browser.context.addCookies([{ name: "org", value: org, url: pages.url }]);
  await page.goto(`${pages.url}${path}`);
  return { page, errors };
}

/**
 * The fill's colour inside a progressbar.
 * @param {import("playwright-core").Locator} bar
 */
const fillColour = (bar) => bar.evaluate((el) => getComputedStyle(/** @type {Element} */ (el.firstElementChild)).backgroundColor);

/**
 * Every limited resource's bar in `scope` says what the API says: aria-valuenow = used, aria-valuemax = limit.
 * @param {import("playwright-core").Locator | import("playwright-core").Page} scope
 * @param {any} report
 * @param {"en" | "da"} locale
 */
async function assertBarsMatch(scope, report, locale) {
  for (const u of report.resources) {
    const name = /** @type {Record<string, string>} */ (NAMES[locale])[u.resource] ?? u.resource;
    const bar = scope.getByRole("progressbar", { name, exact: true });
    if (u.limit === null) {
      assert.equal(await bar.count(), 0, `${u.resource} is unlimited: no bar`);
      continue;
    }
    const values = await barValues(bar);
    assert.deepEqual(values, { now: u.used, max: u.limit, min: 0 }, `${u.resource}'s bar`);
    const expected = u.used >= u.limit ? RED : u.used * 100 >= u.limit * 80 ? YELLOW : GREEN;
    assert.equal(await fillColour(bar), expected, `${u.resource} at ${u.used}/${u.limit}`);
  }
}

describe("in a plain HTML page, through the client's usageHandler", () => {
  test("every bar says what the API says, in the org's own language, and the warning names what is at risk", async () => {
    // A free org at 85 % of its conversations, 80 % of contacts, 100 % of projects, half its storage.
    const org = await newOrg("plain", { plan: "free", locale: "en" }, { conversations: 85, contacts: 200, projects: 3, storage: 536870912 });
    const expected = await usageOf(org);
    const { page, errors } = await open(`/pages/plain.html?org=${org}`, org);

    const usageRegion = page.getByRole("region", { name: "Usage" });
    await assertBarsMatch(usageRegion, expected, "en");
    // The card on its own, and the bar's text for screen readers.
    const cards = page.getByRole("progressbar", { name: "Conversations", exact: true });
    assert.equal(await cards.count(), 2);
    assert.equal(await cards.first().getAttribute("aria-valuetext"), "85 of 100 used (85%)");
    await usageRegion.getByText("512.00 MB of 1.00 GB used").waitFor();
    await usageRegion.getByText("15 remaining").first().waitFor();

    // Projects are at 100 %: the banners are alerts (compact and full), naming each resource at risk.
    const alerts = page.getByRole("alert").filter({ hasText: "You have reached your limit" });
    await eventually(async () => assert.equal(await alerts.count(), 2));
    await alerts.filter({ hasText: "Projects 100%" }).waitFor();
    const full = alerts.filter({ has: page.getByRole("heading", { name: "You have reached your limit" }) });
    for (const text of ["Projects: 3 of 3", "Conversations: 85 of 100", "Contacts: 200 of 250"]) await full.getByText(text).waitFor();
    // Links the app set.
    assert.equal(await page.getByRole("link", { name: "View usage" }).getAttribute("href"), "#usage");

    // The history: an image named after the resource, with its written summary.
    await page.getByRole("img", { name: "Conversations, last 30 days" }).waitFor();
    await page.getByRole("figure").getByText("85 of 100 used.").waitFor();

    await assertAccessible(page, "plain page (en)");
    await screenshot(page, "components-plain-page-en");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("Danish: texts, numbers and bytes follow an org whose locale is da", async () => {
    const org = await newOrg("plain-da", { plan: "free", locale: "da" }, { conversations: 85, storage: 805_306_368 });
    const expected = await usageOf(org);
    assert.equal(expected.locale, "da");
    const { page, errors } = await open(`/pages/plain.html?org=${org}`, org);

    const usageRegion = page.getByRole("region", { name: "Forbrug" });
    await assertBarsMatch(usageRegion, expected, "da");
    assert.equal(await page.getByRole("progressbar", { name: "Samtaler" }).first().getAttribute("aria-valuetext"), "85 af 100 brugt (85%)");
    await usageRegion.getByText("768,00 MB af 1,00 GB brugt").waitFor();
    // Only approaching: a status, not an alert.
    const status = page.getByRole("status").filter({ hasText: "I nærmer jer jeres grænse" });
    await eventually(async () => assert.equal(await status.count(), 2));
    assert.equal(await page.getByRole("alert").count(), 0);
    await page.getByRole("link", { name: "Se forbrug" }).waitFor();
    await usageRegion.getByText("Jeres plan: Gratis").waitFor();
    await page.getByRole("img", { name: "Samtaler, seneste 30 dage" }).waitFor();

    await assertAccessible(page, "plain page (da)");
    await screenshot(page, "components-plain-page-da");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a period's dates are the org's days, from its first to its last, wherever the viewer is", async () => {
    // Auckland is 11–13 hours from the browser's Copenhagen: its periods begin
    // on the previous day there, and end at midnight of the next one's first day.
    const org = await newOrg("auckland", { plan: "free", locale: "en", timezone: "Pacific/Auckland", anchorDay: 1 }, { conversations: 1 });
    const report = await usageOf(org);
    assert.equal(report.timezone, "Pacific/Auckland");
    // Auckland's offset is +12 or +13 hours: the instants shifted into it, as UTC dates.
    const MIN = 60_000;
    const first = new Date(Date.parse(report.period.start) + 13 * 60 * MIN + MIN);
    const last = new Date(Date.parse(report.period.end) + 12 * 60 * MIN - MIN);
    const reset = new Date(Date.parse(report.period.end) + 13 * 60 * MIN + MIN);
    assert.equal(first.getUTCDate(), 1, "anchor day 1");
    assert.equal(reset.getUTCDate(), 1);
    assert.equal(new Date(last.getTime() + 86_400_000).getUTCDate(), 1, "the last day is the eve of the next period's first");

    const { page, errors } = await open(`/pages/plain.html?org=${org}`, org);
    const region = page.getByRole("region", { name: "Usage" });
    const periodText = await region.getByText(/^Billing period /).innerText();
    const m = /^Billing period (\d+) (\S+) – (\d+) (\S+) (\d{4}) · \d+ days? left$/.exec(periodText);
    assert.ok(m, periodText);
    assert.deepEqual([Number(m[1]), Number(m[3]), Number(m[5])], [1, last.getUTCDate(), last.getUTCFullYear()], periodText);
    assert.equal(m[2], m[4], `one month: ${periodText}`);
    const resets = await page.locator("#card").getByText(/ · Resets /).innerText();
    assert.match(resets, new RegExp(` · Resets 1 \\S+ ${reset.getUTCFullYear()}$`));
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("the warning is absent when nothing is at risk", async () => {
    const org = await newOrg("calm", { plan: "growth", locale: "en" }, { conversations: 10, contacts: 5 });
    const { page, errors } = await open(`/pages/plain.html?org=${org}`, org);
    await page.getByRole("region", { name: "Usage" }).getByRole("progressbar", { name: "Conversations" }).waitFor();
    // Loaded (the same fetch fed them), and nothing to say: no banner, no live region.
    await eventually(async () => {
      assert.equal(await page.getByRole("status").count(), 0);
      assert.equal(await page.getByRole("alert").count(), 0);
      assert.equal(await page.getByText("approaching").count(), 0);
    });
    const hidden = await page.evaluate(() => [...document.querySelectorAll("quota-warning")].map((w) => /** @type {HTMLElement} */ (w).hidden));
    assert.deepEqual(hidden, [true, true]);
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe("fed by properties", () => {
  test("the colour rule: green below 80 %, yellow from 80 %, red from 100 %; the bar keeps the API's figures", async () => {
    const { page, errors } = await open("/pages/fixtures.html", "none");
    const cases = [
      [0, 100, GREEN],
      [79, 100, GREEN],
      [80, 100, YELLOW],
      [99, 100, YELLOW],
      [100, 100, RED],
      [120, 100, RED],
      [7999, 10000, GREEN],
      [8000, 10000, YELLOW],
      [0, 0, RED],
    ];
    await page.evaluate((list) => {
      const slot = /** @type {HTMLElement} */ (document.querySelector("#slot"));
      for (const [used, limit] of list) {
        const card = document.createElement("quota-usage-card");
        const pct = limit === 0 ? 100 : (Number(used) * 100) / Number(limit);
        /** @type {any} */ (card).usage = {
          resource: "contacts", kind: "total", used, held: 0, limit, planLimit: limit, grants: [],
          remaining: Math.max(0, Number(limit) - Number(used)), percentage: pct, overage: Math.max(0, Number(used) - Number(limit)),
          status: "ok", blocked: false, enforcement: "soft", period: null, forecast: null,
        };
        slot.append(card);
      }
    }, cases);
    const bars = page.getByRole("progressbar", { name: "Contacts" });
    await eventually(async () => assert.equal(await bars.count(), cases.length));
    for (const [i, [used, limit, colour]] of cases.entries()) {
      const bar = bars.nth(i);
      assert.deepEqual(await barValues(bar), { now: used, max: limit, min: 0 });
      assert.equal(await fillColour(bar), colour, `${used} of ${limit}`);
    }
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a trial that ended is what the warning says, at any use; the client's fallback opens no dialog", async () => {
    const { page, errors } = await open("/pages/fixtures.html", "none");
    const data = report([usage("conversations", 10, 100)], { plan: "free", locale: "en" });
    data.blocked = { blocked: true, reason: "trial_expired", resources: ["conversations"], message: "Free trial expired. Upgrade to continue." };
    data.trial = { endsAt: "2026-01-01T00:00:00Z", expired: true };
    await page.evaluate((report) => {
      const warning = document.createElement("quota-warning");
      /** @type {any} */ (warning).data = report;
      document.querySelector("#slot")?.append(warning);
    }, data);
    const alert = page.getByRole("alert");
    await alert.getByText("Free trial expired", { exact: true }).waitFor();
    assert.equal(await alert.getByText("You have reached your limit").count(), 0);

    // No answer from the service (the client's "deny" fallback): not the quota's refusal.
    const answer = await page.evaluate(() => {
      const dialog = /** @type {any} */ (document.createElement("quota-exceeded-dialog"));
      document.querySelector("#slot")?.append(dialog);
      return dialog.show({ allowed: false, reason: null, message: null, usage: null, fallback: true, error: { code: "TIMEOUT" }, idempotencyKey: "k-1" });
    });
    assert.equal(answer, "unavailable");
    assert.equal(await page.getByRole("dialog").count(), 0);
    assert.equal(await page.getByText("Monthly quota reached").count(), 0);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("themed from outside: custom properties and parts reach into the shadow roots", async () => {
    const { page, errors } = await open("/pages/fixtures.html", "none");
    await page.addStyleTag({
      content: `.brand { --quota-ok: rgb(1, 2, 3); --quota-warning: rgb(4, 5, 6); }
        quota-usage::part(title) { text-transform: uppercase; }
        quota-usage::part(card) { border-color: rgb(7, 8, 9); }`,
    });
    await page.evaluate((data) => {
      const slot = /** @type {HTMLElement} */ (document.querySelector("#slot"));
      slot.className = "brand";
      const usage = Object.assign(document.createElement("quota-usage"), { data });
      slot.append(usage);
    }, report([usage("conversations", 10, 100), usage("contacts", 90, 100)]));
    const region = page.getByRole("region", { name: "Usage" });
    assert.equal(await fillColour(region.getByRole("progressbar", { name: "Conversations" })), "rgb(1, 2, 3)");
    assert.equal(await fillColour(region.getByRole("progressbar", { name: "Contacts" })), "rgb(4, 5, 6)");
    const title = region.getByRole("heading", { name: "Contacts" });
    assert.equal(await title.evaluate((el) => getComputedStyle(el).textTransform), "uppercase");
    const card = region.getByRole("article", { name: "Contacts" });
    assert.equal(await card.evaluate((el) => getComputedStyle(el).borderTopColor), "rgb(7, 8, 9)");
    assert.deepEqual(errors, []);
    await page.close();
  });

  for (const locale of /** @type {const} */ (["en", "da"])) {
    test(`each component, for the screenshots (${locale})`, async () => {
      const { page, errors } = await open("/pages/fixtures.html", "none");
      // The app's page is in the org's language: what has no data of its own (the dialog) follows it.
      await page.evaluate((lang) => (document.documentElement.lang = lang), locale);
      const data = richReport(locale);
      const atRiskOnly = report([usage("conversations", 255, 300, { enforcement: "soft" }), usage("contacts", 210, 250)], { locale, plan: "free" });
      await page.evaluate(
        ({ data, atRiskOnly, history }) => {
          const slot = /** @type {HTMLElement} */ (document.querySelector("#slot"));
          const add = (/** @type {string} */ tag, /** @type {Record<string, string>} */ attrs, /** @type {Record<string, unknown>} */ props) => {
            const el = document.createElement(tag);
            for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
            Object.assign(el, props);
            const wrap = document.createElement("div");
            wrap.dataset.shot = tag + (attrs.mode ? `-${attrs.mode}` : "");
            wrap.append(el);
            slot.append(wrap);
            return el;
          };
          add("quota-usage-card", { resource: "conversations", "upgrade-href": "/billing" }, { data });
          add("quota-warning", { mode: "compact", "usage-href": "#usage", "upgrade-href": "/billing" }, { data: atRiskOnly });
          add("quota-warning", { mode: "full", "upgrade-href": "/billing" }, { data });
          add("quota-history", { resource: "conversations" }, { history, data });
          add("quota-usage", { "upgrade-href": "/billing" }, { data });
          add("quota-exceeded-dialog", { "upgrade-href": "/billing", plan: "free" }, {});
        },
        { data, atRiskOnly, history: history() },
      );
      const t = locale === "da"
        ? { usage: "Forbrug", dialog: "Månedlig kvote nået", approaching: "I nærmer jer jeres grænse", reached: "I har nået jeres grænse", chart: "Samtaler, seneste 30 dage", storage: "12,00 GB af 100,00 GB brugt", over: "2 over grænsen", held: "5 reserveret", granted: "inkl. 1.000 tildelt" }
        : { usage: "Usage", dialog: "Monthly quota reached", approaching: "You are approaching your limit", reached: "You have reached your limit", chart: "Conversations, last 30 days", storage: "12.00 GB of 100.00 GB used", over: "2 over the limit", held: "5 reserved", granted: "includes 1,000 granted" };
      const usageRegion = page.getByRole("region", { name: t.usage });
      await assertBarsMatch(usageRegion, data, locale);
      for (const text of [t.storage, t.over, t.held, t.granted]) await usageRegion.getByText(text).first().waitFor();
      await page.getByRole("status").filter({ hasText: t.approaching }).waitFor();
      await page.getByRole("alert").filter({ hasText: t.reached }).waitFor();
      await page.getByRole("img", { name: t.chart }).waitFor();

      for (const name of ["quota-usage-card", "quota-warning-compact", "quota-warning-full", "quota-history", "quota-usage"]) {
        await screenshot(page.locator(`[data-shot="${name}"]`), `component-${name.replace("quota-", "")}-${locale}`);
      }
      await assertAccessible(page, `fixtures (${locale})`);

      // The dialog, opened with a refusal (as a consume answers it).
      const refusal = {
        allowed: false,
        reason: "quota_exceeded",
        message: locale === "da" ? "Månedlig kvote nået. Opgrader for at fortsætte." : "Monthly quota reached. Upgrade to continue.",
        usage: usage("conversations", 100, 100),
        fallback: false,
      };
      // show() answers when the dialog closes: not awaited here.
      await page.evaluate((d) => void (/** @type {any} */ (document.querySelector("quota-exceeded-dialog")).show(d)), refusal);
      const dialog = page.getByRole("dialog", { name: t.dialog });
      await dialog.waitFor();
      await assertAccessible(page, `dialog (${locale})`);
      await screenshot(page, `component-exceeded-dialog-${locale}`);
      assert.deepEqual(errors, []);
      await page.close();
    });
  }
});

test("importing the components where there is no DOM (a server rendering the page) defines nothing and throws nothing", async () => {
  const module = await import(new URL("../dist/components/quota-components.js", import.meta.url).href);
  assert.equal(typeof module.QuotaUsageCard, "function");
  assert.equal(typeof globalThis.customElements, "undefined");
});

describe("in a React page", () => {
  test("attributes, properties and a ref work as in plain HTML", async () => {
    const org = await newOrg("react", { plan: "free", locale: "en" }, { conversations: 90, contacts: 120 });
    const expected = await usageOf(org);
    const { page, errors } = await open(`/pages/react.html?org=${org}`, org);

    await page.getByRole("heading", { name: "Usage components in a React page" }).waitFor();
    await assertBarsMatch(page.getByRole("region", { name: "Usage" }), expected, "en");
    // The card React handed a Usage object to, as a property.
    const contacts = page.getByRole("article", { name: "Contacts" }).filter({ has: page.getByRole("link", { name: "Upgrade" }) });
    assert.deepEqual(await barValues(contacts.getByRole("progressbar", { name: "Contacts" })), { now: 120, max: 250, min: 0 });
    await page.getByRole("status").filter({ hasText: "You are approaching your limit" }).waitFor();

    // A refusal from the API itself, shown through the ref.
    await ok("POST", `/v1/orgs/${org}/usage/conversations/consume`, { amount: 10 });
    const refused = await api("POST", `/v1/orgs/${org}/usage/conversations/consume`, { amount: 1 });
    assert.equal(refused.status, 429);
    await page.evaluate((d) => (/** @type {any} */ (window).refusal = d), refused.body);
    await page.getByRole("button", { name: "Start a conversation" }).click();
    const dialog = page.getByRole("dialog", { name: "Monthly quota reached" });
    await dialog.getByText("Monthly quota reached. Upgrade to continue.").waitFor();
    await dialog.getByRole("button", { name: "Not now" }).click();
    await dialog.waitFor({ state: "hidden" });

    await assertAccessible(page, "React page");
    await screenshot(page, "components-react-page-en");
    assert.deepEqual(errors, []);
    await page.close();
  });
});
