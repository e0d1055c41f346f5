// <quota-usage>: the usage page: the org's plan, billing period and trial,
// why it is blocked if it is, a card per resource, its features, and the
// upgrade call to action.
//
// Fed by `data` (the org report) or fetched from `src` + `org`. Attributes:
// src, org, locale, upgrade-href, resources (a space-separated subset, in
// that order), hide-features, heading-level (2–5, default 2).
// Parts: page, header, title, plan, period, trial, blocked, grid, features, upgrade.
// Each resource is a <quota-usage-card> inside it: the custom properties set
// on <quota-usage> reach them, and so do the cards' parts
// (`quota-usage::part(fill)`: exported).
import { define, QuotaElement } from "./base.js";
import { type Child, h, uid } from "./dom.js";
import { date, featureName, lastDay, planName } from "./i18n.js";
import "./usage-card.js";

const CSS = `
.page{display:grid;gap:var(--_gap)}
.header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:12px}
.title{font-size:1.25em}
.plan strong{font-size:1.15em}
.blocked{border-color:var(--_exceeded);color:var(--_exceeded-t);font-weight:600}
.grid{display:grid;gap:var(--_gap);grid-template-columns:repeat(auto-fill,minmax(var(--quota-card-min,240px),1fr))}
.features ul{display:grid;gap:4px 16px;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));margin-top:8px}
.features li::before{content:"✓ ";color:var(--_ok-t);font-weight:700}
.features li.off::before{content:"✗ ";color:var(--_muted)}
.features li.off{color:var(--_muted)}
`;

export class QuotaUsage extends QuotaElement {
  static readonly observedAttributes = [...QuotaElement.baseAttributes, "upgrade-href", "resources", "hide-features", "heading-level"];

  constructor() {
    super(CSS);
  }

  protected render(): Child {
    const data = this.data;
    const { t, locale } = this;
    if (!data) {
      if (this.failed) return h("p", { class: "card muted", role: "alert" }, t.failed);
      return this.loading ? h("p", { class: "card muted", "aria-busy": "true" }, t.loading) : null;
    }
    const level = Math.min(5, Math.max(2, Number(this.getAttribute("heading-level")) || 2));
    const wanted = this.getAttribute("resources")?.split(/\s+/).filter(Boolean);
    const resources = wanted
      ? wanted.flatMap((r) => data.resources.filter((u) => u.resource === r))
      : // Monthly resources first, as the seeds' usage page shows them.
        [...data.resources].sort((a, b) => Number(b.kind === "period") - Number(a.kind === "period"));
    const upgrade = this.getAttribute("upgrade-href");
    const features = Object.values(data.features);

    const titleId = uid("quota-usage");
    return h(
      "section",
      { class: "page", part: "page", lang: locale, "aria-labelledby": titleId },
      h(
        "div",
        { class: "header", part: "header" },
        h(`h${level}`, { class: "title", part: "title", id: titleId }, t.usageTitle),
        upgrade ? h("a", { class: "button", part: "upgrade", href: upgrade }, t.upgradePlan) : null,
      ),
      h(
        "div",
        { class: "card plan", part: "plan" },
        h("p", null, `${t.yourPlan}: `, h("strong", null, planName(data.plan, locale))),
        h(
          "p",
          { class: "muted", part: "period" },
          t.billingPeriod(date(data.period.start, locale, { year: false, timeZone: data.timezone }), lastDay(data.period.end, locale, data.timezone)),
          ` · ${t.daysLeft(data.period.daysRemaining)}`,
        ),
        data.trial
          ? h("p", { part: "trial", class: data.trial.expired ? "tag exceeded" : "muted" }, data.trial.expired ? t.trialExpired : t.trialEnds(date(data.trial.endsAt, locale, { timeZone: data.timezone })))
          : null,
      ),
      data.blocked.blocked && data.blocked.message ? h("p", { class: "card blocked", part: "blocked", role: "alert" }, data.blocked.message) : null,
      h(
        "div",
        { class: "grid", part: "grid" },
        resources.map((usage) =>
          h("quota-usage-card", {
            resource: usage.resource,
            locale,
            "heading-level": level + 1,
            // `quota-usage::part(fill)` and friends reach every card.
            exportparts: "card, header, title, status, figures, bar, fill, held, details",
            ".data": data,
          }),
        ),
      ),
      this.hasAttribute("hide-features") || features.length === 0
        ? null
        : h(
            "div",
            { class: "card features", part: "features" },
            h(`h${level + 1}`, null, t.features),
            h(
              "ul",
              null,
              features.map((f) =>
                h(
                  "li",
                  { class: f.enabled ? "" : "off" },
                  featureName(f.feature, locale),
                  h("span", { class: "sr" }, `: ${f.enabled ? t.included : t.notIncluded}`),
                ),
              ),
            ),
          ),
    );
  }
}

define("quota-usage", QuotaUsage);
