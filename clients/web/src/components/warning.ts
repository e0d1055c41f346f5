// <quota-warning>: the at-risk banner (the seeds' dashboard warning), absent
// (the host hidden, nothing rendered) when nothing is at risk.
//
// mode="compact" (default): one line, for a dashboard; mode="full": a
// heading and each resource at risk with its figures.
// Fed by `data` (the org report) or fetched from `src` + `org`. Attributes:
// src, org, locale, mode, usage-href ("View usage"), upgrade-href.
// Parts: banner, title, list, item, message (why new use is refused), actions, usage-link, upgrade.
// A banner with something exceeded or blocked is role="alert"; one that only
// approaches a limit is role="status".
import { define, QuotaElement } from "./base.js";
import { type Child, h } from "./dom.js";
import { amount, percent, resourceName } from "./i18n.js";
import { statusOf } from "./usage-card.js";

const CSS = `
.banner{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;border-left:6px solid var(--_c)}
.banner.full{display:grid}
.body{flex:1 1 auto}
.title{font-size:1.05em;color:var(--_t)}
.list{display:grid;gap:2px;margin-top:6px}
.actions{display:flex;gap:8px;flex-wrap:wrap}
`;

export class QuotaWarning extends QuotaElement {
  static readonly observedAttributes = [...QuotaElement.baseAttributes, "mode", "usage-href", "upgrade-href"];

  constructor() {
    super(CSS);
  }

  protected override rendered(): void {
    this.hidden = this.root.childElementCount === 0;
  }

  protected render(): Child {
    const data = this.data;
    if (!data) return null;
    const { t, locale } = this;
    const atRisk = [...data.atRisk.exceeded, ...data.atRisk.approaching.filter((r) => !data.atRisk.exceeded.includes(r))];
    const resources = atRisk.flatMap((name) => data.resources.filter((u) => u.resource === name));
    if (resources.length === 0 && !data.blocked.blocked) return null;

    const severe = data.atRisk.exceeded.length > 0 || data.blocked.blocked;
    const full = this.getAttribute("mode") === "full";
    const usageHref = this.getAttribute("usage-href");
    const upgrade = this.getAttribute("upgrade-href");
    const pct = (u: (typeof resources)[number]) => u.percentage ?? 0;
    const compactList = resources.map((u) => `${resourceName(u.resource, locale)} ${percent(pct(u), locale)}`).join(", ");
    // A trial that ended blocks whatever the use: say that, not "limit reached".
    const headline = data.blocked.reason === "trial_expired" ? t.trialExpired : severe ? t.reached : t.approaching;
    // Why new use is refused, in the org's language, as the service says it.
    const why = data.blocked.blocked && data.blocked.message ? h("p", { part: "message", lang: data.locale }, data.blocked.message) : null;

    return h(
      "div",
      { class: `card banner ${severe ? "exceeded" : "warning"}${full ? " full" : ""}`, part: "banner", role: severe ? "alert" : "status", lang: locale },
      h(
        "div",
        { class: "body" },
        full
          ? [
              h("h2", { class: "title", part: "title" }, headline),
              h(
                "ul",
                { class: "list", part: "list" },
                resources.map((u) =>
                  h(
                    "li",
                    { class: statusOf(u.used, u.limit), part: "item" },
                    h("strong", null, resourceName(u.resource, locale)),
                    `: ${t.of(amount(u.resource, u.used, locale), amount(u.resource, u.limit ?? 0, locale))} `,
                    h("span", { class: "tag" }, `(${percent(pct(u), locale)})`),
                  ),
                ),
              ),
              why,
            ]
          : [h("p", { part: "title" }, h("strong", { class: "tag" }, headline), compactList ? ` — ${compactList}` : null), why],
      ),
      usageHref || upgrade
        ? h(
            "div",
            { class: "actions", part: "actions" },
            usageHref ? h("a", { class: "button secondary", part: "usage-link", href: usageHref }, t.viewUsage) : null,
            upgrade ? h("a", { class: "button", part: "upgrade", href: upgrade }, t.upgrade) : null,
          )
        : null,
    );
  }
}

define("quota-warning", QuotaWarning);
