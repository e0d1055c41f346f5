// The orgs screen: GET /v1/admin/orgs, most at risk first (each page comes
// sorted so; pages are appended as they come), with the API's filters, and a
// form to open an org by its id (all a token without quota:admin can do here).
import { h } from "../components/dom.js";
import { amount, date, percent, planName, resourceName } from "../components/i18n.js";
import { statusOf } from "../components/usage-card.js";
import type { OrgFilter, OrgSummary } from "./api.js";
import type { Ctx } from "./main.js";
import { busy, field, options } from "./ui.js";

const FILTERS: OrgFilter[] = ["all", "at_risk", "blocked", "trial_ending"];

export async function renderOrgs(ctx: Ctx): Promise<void> {
  const { t, session } = ctx;
  const wanted = new URLSearchParams(location.hash.split("?")[1] ?? "").get("filter");
  let filter: OrgFilter = FILTERS.find((f) => f === wanted) ?? "all";

  const lookup = field(t.orgId, h("input", { type: "text", name: "org", required: true, autocomplete: "off", spellcheck: "false" }));
  const openForm = h(
    "form",
    {
      class: "inline",
      "aria-label": t.openOrg,
      onsubmit: (event: Event) => {
        event.preventDefault();
        const id = lookup.control.value.trim();
        if (id) location.hash = `#/orgs/${encodeURIComponent(id)}`;
      },
    },
    lookup.wrapper,
    h("button", { type: "submit" }, t.open),
  );

  const heading = h("h1", null, t.orgs);
  ctx.main.replaceChildren(heading);
  if (!session.admin) {
    ctx.main.append(h("p", { class: "note" }, t.readOnlyNote), h("section", { class: "panel" }, h("h2", null, t.openOrg), openForm));
    return;
  }

  const select = field(t.filter, h("select", null, options(FILTERS.map((f) => [f, t.filters[f] ?? f]), filter)));
  // A new filter reloads the list in place (focus stays on the select); the address remembers it.
  select.control.addEventListener("change", () => {
    filter = FILTERS.find((f) => f === select.control.value) ?? "all";
    history.replaceState(null, "", filter === "all" ? "#/" : `#/?filter=${filter}`);
    body.replaceChildren();
    cursor = null;
    more.hidden = true;
    status.textContent = t.loading;
    void load();
  });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "orgs" },
    h("caption", null, t.orgsCaption),
    h("thead", null, h("tr", null, [t.colOrg, t.colPlan, t.colStatus, t.colWorst, t.colTrial].map((c) => h("th", { scope: "col" }, c)))),
    body,
  );
  const status = h("p", { class: "muted", role: "status" }, t.loading);
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t.loadMore);
  ctx.main.append(
    h("div", { class: "toolbar" }, select.wrapper, openForm),
    h("div", { class: "table-wrap" }, table),
    status,
    more,
  );

  let cursor: string | null = null;
  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    try {
      const page = await ctx.api.listOrgs({ filter, cursor });
      if (!ctx.current() || mine !== asked) return;
      body.append(...page.orgs.map((org) => row(ctx, org)));
      cursor = page.nextCursor;
      more.hidden = cursor === null;
      status.textContent = body.childElementCount === 0 && cursor === null ? t.noOrgs : "";
    } catch (err) {
      if (!ctx.current() || mine !== asked) return;
      status.textContent = "";
      ctx.fail(err);
    }
  };
  more.addEventListener("click", () => void busy(more, load));
  await load();
}

function row(ctx: Ctx, org: OrgSummary): HTMLElement {
  const { t, locale } = ctx;
  const atRisk = org.atRisk.map((r) => resourceName(r, locale)).join(", ");
  const state = org.blocked ? "exceeded" : org.atRisk.length > 0 ? "warning" : "ok";
  const statusText = org.blocked ? (t.blockedBy[org.blockedReason ?? ""] ?? t.blocked) : atRisk ? t.atRisk(atRisk) : t.ok;
  const worst = org.worst;
  let nearest: HTMLElement | string = t.none;
  if (worst) {
    const n = (v: number) => amount(worst.resource, v, locale);
    const meter = h("span", { class: `mini ${statusOf(worst.used, worst.limit)}`, "aria-hidden": "true" }, h("span"));
    (meter.firstChild as HTMLElement).style.width = `${Math.min(100, worst.percentage ?? 0)}%`;
    nearest = h(
      "span",
      { class: "worst" },
      `${resourceName(worst.resource, locale)}: ${worst.limit === null ? `${n(worst.used)} (${t.unlimited})` : `${n(worst.used)} / ${n(worst.limit)}`}`,
      worst.percentage === null ? null : ` (${percent(worst.percentage, locale)})`,
      meter,
    );
  }
  return h(
    "tr",
    null,
    h("th", { scope: "row" }, h("a", { href: `#/orgs/${encodeURIComponent(org.orgId)}` }, org.orgId)),
    h("td", null, planName(org.plan, locale)),
    h("td", { class: `state ${state}` }, statusText),
    h("td", null, nearest),
    h("td", null, org.trialEndsAt ? date(org.trialEndsAt, locale) : t.none),
  );
}
