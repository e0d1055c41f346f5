// <quota-usage-card resource="conversations">: one resource, with a
// progress bar (role="progressbar", aria-valuenow = used, aria-valuemax =
// limit, named after the resource), used / limit / remaining, held units,
// overage, days left, next reset, forecast and an upgrade link.
//
// Fed by `usage` (one Usage), or `data` (the org report) with `resource`, or
// fetched from `src` + `org`. Attributes: resource, src, org, locale,
// upgrade-href, heading-level (2–6, default 3).
// Parts: card, header, title, status, figures, bar, fill, held, details, upgrade.
// The host reflects `status` (ok, warning, exceeded) for styling.
import type { Usage } from "@quota-service/client";
import { define, QuotaElement } from "./base.js";
import { type Child, h, uid } from "./dom.js";
import { amount, date, type Locale, percent, resourceName, texts } from "./i18n.js";

export type Status = "ok" | "warning" | "exceeded";

/** The colour rule: green below 80 %, yellow from 80 %, red from 100 % of the effective limit. */
export function statusOf(used: number, limit: number | null): Status {
  if (limit === null) return "ok";
  if (limit === 0 || used >= limit) return "exceeded";
  return used * 100 >= limit * 80 ? "warning" : "ok";
}

/** The bar: role="progressbar" with the API's used and limit, named after the resource. */
export function usageBar(usage: Usage, locale: Locale): HTMLElement {
  const t = texts(locale);
  const status = statusOf(usage.used, usage.limit);
  const limit = usage.limit ?? 0;
  const fill = h("div", { class: "fill", part: "fill" });
  const held = h("div", { class: "held", part: "held" });
  const share = (n: number) => (limit > 0 ? Math.min(100, (n * 100) / limit) : n > 0 ? 100 : 0);
  fill.style.width = `${share(usage.used)}%`;
  held.style.width = `${Math.max(0, Math.min(100 - share(usage.used), share(usage.held)))}%`;
  const pct = usage.percentage ?? (limit > 0 ? (usage.used * 100) / limit : 100);
  return h(
    "div",
    {
      role: "progressbar",
      class: `bar ${status}`,
      part: "bar",
      "aria-label": resourceName(usage.resource, locale),
      "aria-valuemin": 0,
      "aria-valuemax": limit,
      "aria-valuenow": usage.used,
      "aria-valuetext": `${t.of(amount(usage.resource, usage.used, locale), amount(usage.resource, limit, locale))} ${t.used} (${percent(pct, locale)})`,
    },
    fill,
    held,
  );
}

export const CARD_CSS = `
.head{display:flex;justify-content:space-between;align-items:baseline;gap:8px;margin-bottom:6px}
.title{font-size:1em;font-weight:600}
.figures{margin-bottom:8px}
.figures strong{font-size:1.5em}
.bar{display:flex;height:10px;background:var(--_track);border-radius:999px;overflow:hidden}
.fill{background:var(--_c)}
.held{background:repeating-linear-gradient(45deg,var(--_held) 0 4px,transparent 4px 8px)}
.details{margin-top:8px;display:grid;gap:2px}
.details .tag{font-weight:600}
.upgrade{margin-top:12px}
`;

export class QuotaUsageCard extends QuotaElement {
  static readonly observedAttributes = [...QuotaElement.baseAttributes, "resource", "upgrade-href", "heading-level"];
  #usage: Usage | undefined;
  /** The org period's end, for days left and the next reset when `usage` is set alone. */
  periodEnd: string | undefined;

  constructor() {
    super(CARD_CSS);
  }

  /** One resource's usage (the contract's Usage): set it, or let the element take it from `data` or `src`. */
  get usage(): Usage | undefined {
    return this.#usage ?? this.resourceUsage(this.getAttribute("resource"));
  }
  set usage(value: Usage | undefined) {
    this.#usage = value ?? undefined;
    this.requestRender();
  }

  override async refresh(): Promise<void> {
    if (this.#usage) return;
    return super.refresh();
  }

  override connectedCallback(): void {
    if (this.#usage) this.requestRender();
    else super.connectedCallback();
  }

  protected override rendered(): void {
    const usage = this.usage;
    if (usage) this.setAttribute("status", statusOf(usage.used, usage.limit));
    else this.removeAttribute("status");
  }

  protected render(): Child {
    const usage = this.usage;
    const { t, locale } = this;
    if (!usage) {
      if (this.failed) return h("p", { class: "card muted", part: "card", role: "alert" }, t.failed);
      return this.loading ? h("p", { class: "card muted", part: "card", "aria-busy": "true" }, t.loading) : null;
    }
    const status = statusOf(usage.used, usage.limit);
    const n = (v: number) => amount(usage.resource, v, locale);
    const level = Math.min(6, Math.max(2, Number(this.getAttribute("heading-level")) || 3));
    // Days left and the next reset, for `period` resources: the report's own figures when there is one.
    const org = this.data?.period;
    const end = usage.kind !== "period" ? undefined : (org?.nextReset ?? usage.period?.end ?? this.periodEnd);
    const daysLeft =
      end === undefined ? null : (org?.daysRemaining ?? Math.max(0, Math.ceil((Date.parse(end) - Date.now()) / 86_400_000)));
    const upgrade = this.getAttribute("upgrade-href");
    const label = usage.blocked && status !== "exceeded" ? t.blocked : t.status[status];
    const grantTotal = usage.grants.reduce((sum, g) => sum + g.amount, 0);

    const titleId = uid("quota-card");
    return h(
      "article",
      { class: `card ${status}`, part: "card", lang: locale, "aria-labelledby": titleId },
      h(
        "div",
        { class: "head", part: "header" },
        h(`h${level}`, { class: "title", part: "title", id: titleId }, resourceName(usage.resource, locale)),
        label ? h("span", { class: "tag", part: "status" }, label) : null,
      ),
      h(
        "p",
        { class: "figures", part: "figures" },
        usage.limit === null
          ? [h("strong", null, n(usage.used)), " ", t.used, " · ", t.unlimited]
          : [h("strong", null, n(usage.used)), " ", t.of("", n(usage.limit)).trim(), " ", t.used],
      ),
      usage.limit === null ? null : usageBar(usage, locale),
      h(
        "ul",
        { class: "details", part: "details" },
        usage.remaining === null ? null : h("li", null, t.remaining(n(usage.remaining))),
        usage.held > 0 ? h("li", null, t.held(n(usage.held))) : null,
        grantTotal > 0 ? h("li", { class: "muted" }, t.granted(n(grantTotal))) : null,
        usage.overage > 0
          ? h("li", { class: "tag" }, t.over(n(usage.overage)), usage.enforcement === "soft" ? ` · ${t.overageBilled}` : null)
          : null,
        daysLeft === null || end === undefined ? null : h("li", { class: "muted" }, `${t.daysLeft(daysLeft)} · ${t.resets(date(end, locale, { timeZone: this.data?.timezone }))}`),
        usage.forecast ? h("li", { class: "muted" }, t.forecast(date(usage.forecast, locale, { timeZone: this.data?.timezone }))) : null,
      ),
      upgrade ? h("a", { class: "button upgrade", part: "upgrade", href: upgrade }, t.upgrade) : null,
    );
  }
}

define("quota-usage-card", QuotaUsageCard);
