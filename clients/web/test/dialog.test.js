// <quota-exceeded-dialog> by keyboard alone, opened with a refusal the API
// really answered (429): Tab and Shift+Tab cycle inside, Esc closes, focus
// returns to the button that opened it; English and Danish.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { api, assertAccessible, eventually, launch, newOrg, startPageServer, watchErrors } from "./helpers.js";

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

/**
 * What has focus, through shadow roots: its text, and whether it is inside an open dialog.
 * @param {import("playwright-core").Page} page
 */
function focused(page) {
  return page.evaluate(() => {
    /** @type {Element | null} */
    let el = document.activeElement;
    while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
    const dialog = el?.closest("dialog");
    return { text: el?.textContent?.trim() ?? "", inDialog: Boolean(dialog && /** @type {HTMLDialogElement} */ (dialog).open) };
  });
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} key
 * @param {string} text
 * @param {boolean} inDialog
 */
async function press(page, key, text, inDialog = true) {
  await page.keyboard.press(key);
  await eventually(async () => assert.deepEqual(await focused(page), { text, inDialog }, `after ${key}`), 10_000);
}

const TEXTS = {
  en: { title: "Monthly quota reached", message: "Monthly quota reached. Upgrade to continue.", close: "Not now", upgrade: "Upgrade", plan: "Free", current: "Current usage" },
  da: { title: "Månedlig kvote nået", message: "Månedlig kvote nået. Opgrader for at fortsætte.", close: "Ikke nu", upgrade: "Opgrader", plan: "Gratis", current: "Nuværende forbrug" },
};

for (const locale of /** @type {const} */ (["en", "da"])) {
  test(`keyboard only (${locale}): Tab cycles inside the dialog, Esc closes it, focus returns`, async () => {
    const t = TEXTS[locale];
    const org = await newOrg(`dialog-${locale}`, { plan: "free", locale }, { conversations: 100 });
    const refused = await api("POST", `/v1/orgs/${org}/usage/conversations/consume`, { amount: 1 });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.message, t.message);

    const page = await browser.context.newPage();
    const errors = watchErrors(page);
    await browser.context.addCookies([{ name: "org", value: org, url: pages.url }]);
    await page.goto(`${pages.url}/pages/plain.html?org=${org}&locale=${locale}`);
    await page.evaluate((decision) => (/** @type {any} */ (window).refusal = decision), refused.body);
    const trigger = page.getByRole("button", { name: "Start a conversation" });
    await trigger.waitFor();
    // The dialog takes the plan from the org's usage, which the page has loaded once the bars show.
    await page.getByRole("progressbar").first().waitFor();

    // Tab to the button, from the top of the page, as a keyboard user does.
    await eventually(async () => {
      await page.keyboard.press("Tab");
      assert.equal((await focused(page)).text, "Start a conversation");
    }, 30_000);
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: t.title });
    await dialog.waitFor();
    assert.equal(await dialog.getAttribute("aria-modal"), "true");
    await dialog.getByText(t.message).waitFor();
    for (const text of ["100", t.plan, t.current]) await dialog.getByText(text, { exact: true }).first().waitFor();
    // Focus starts on the call to action, and stays inside both ways round.
    assert.deepEqual(await focused(page), { text: t.upgrade, inDialog: true });
    await press(page, "Tab", t.close);
    await press(page, "Tab", t.upgrade);
    await press(page, "Tab", t.close);
    await press(page, "Shift+Tab", t.upgrade);
    await press(page, "Shift+Tab", t.close);
    await press(page, "Shift+Tab", t.upgrade);
    await assertAccessible(page, `dialog open (${locale})`);

    // Esc closes; focus is back on the button.
    await press(page, "Escape", "Start a conversation", false);
    await dialog.waitFor({ state: "hidden" });

    // Again, closed with its own button by Enter.
    await page.keyboard.press("Enter");
    await dialog.waitFor();
    await press(page, "Tab", t.close);
    await press(page, "Enter", "Start a conversation", false);
    await dialog.waitFor({ state: "hidden" });
    assert.deepEqual(errors, []);
    await page.close();
  });
}
