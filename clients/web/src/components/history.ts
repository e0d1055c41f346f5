// <quota-history resource="conversations" days="30">: daily use as bars, the
// limit as a line, and for monthly resources the forecast: the period's
// rate so far carried to the period's end, with the day the limit is
// reached (the API's `forecast`) marked. An SVG with role="img" and a
// written summary; no charting library.
//
// Fed by `history` (the contract's History) and `usage` (that resource's
// Usage: today's live figure, the limit, the period and forecast), or by
// `data` (the org report) for the usage, or fetched from `src` + `org`
// (GET …/usage/{resource}/history?days=n and GET …/usage).
// Attributes: src, org, locale, resource, days (1–366, default 30), heading-level.
// Parts: chart, title, summary, svg, legend.
// Custom properties: --quota-chart-used, --quota-chart-limit, --quota-chart-forecast.
import type { History, Usage } from "@quota-service/client";
import { define, getJson, QuotaElement } from "./base.js";
import { type Child, h, s } from "./dom.js";
import { amount, date, resourceName } from "./i18n.js";

const CSS = `
.title{font-size:1em;font-weight:600;margin-bottom:4px}
svg{display:block;width:100%;height:auto;margin:8px 0;overflow:visible}
.used{fill:var(--quota-chart-used,#3b82f6)}
.limit{stroke:var(--quota-chart-limit,#dc2626);stroke-width:2;fill:none}
.forecast{stroke:var(--quota-chart-forecast,#7c3aed);stroke-width:2;stroke-dasharray:6 4;fill:none}
.dot{fill:var(--quota-chart-forecast,#7c3aed)}
.axis{stroke:var(--_border);stroke-width:1}
text{fill:var(--_muted);font-size:11px;font-family:inherit}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;color:var(--_muted)}
.legend span::before{content:"";display:inline-block;width:14px;height:4px;margin-right:6px;vertical-align:middle;background:var(--_k)}
.k-used{--_k:var(--quota-chart-used,#3b82f6)}
.k-limit{--_k:var(--quota-chart-limit,#dc2626)}
.k-forecast{--_k:repeating-linear-gradient(90deg,var(--quota-chart-forecast,#7c3aed) 0 5px,transparent 5px 8px)}
`;

const DAY = 86_400_000;
const W = 640;
const H = 220;
const M = { top: 12, right: 12, bottom: 24, left: 56 };

/** 0 → 10, 87 → 100, 1234 → 1500: a round top for the axis. */
function niceCeil(value: number): number {
  if (value <= 0) return 10;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

const dayStart = (day: string): number => Date.parse(`${day}T00:00:00Z`);

export class QuotaHistory extends QuotaElement {
  static readonly observedAttributes = [...QuotaElement.baseAttributes, "resource", "days", "heading-level"];
  #history: History | undefined;
  #usage: Usage | undefined;

  constructor() {
    super(CSS);
  }

  /** The contract's History for the resource: set it, or let the element fetch it from `src`. */
  get history(): History | undefined {
    return this.#history;
  }
  set history(value: History | undefined) {
    this.#history = value ?? undefined;
    this.requestRender();
  }

  /** The resource's Usage (live figure, limit, period, forecast); else taken from `data`. */
  get usage(): Usage | undefined {
    return this.#usage ?? this.resourceUsage(this.#resource);
  }
  set usage(value: Usage | undefined) {
    this.#usage = value ?? undefined;
    this.requestRender();
  }

  get #resource(): string {
    return this.getAttribute("resource") ?? this.#history?.resource ?? this.#usage?.resource ?? "conversations";
  }

  get #days(): number {
    const days = Number(this.getAttribute("days"));
    return Number.isInteger(days) && days >= 1 && days <= 366 ? days : 30;
  }

  override attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if ((name === "resource" || name === "days") && old !== value && this.isConnected && this.url("usage") !== null) {
      void this.refresh();
      return;
    }
    super.attributeChangedCallback(name, old, value);
  }

  override connectedCallback(): void {
    if (this.#history === undefined) void this.refresh();
    this.requestRender();
  }

  override async refresh(): Promise<void> {
    if (this.url("usage") === null) return;
    return super.refresh();
  }

  protected override async fetchData(): Promise<void> {
    const url = this.url("usage", this.#resource, "history");
    if (url === null) return;
    const [history] = await Promise.all([getJson<History>(`${url}?days=${this.#days}`, this.headers), super.fetchData()]);
    this.#history = history;
  }

  protected render(): Child {
    const { t, locale } = this;
    const history = this.#history;
    const usage = this.usage;
    if (!history) {
      if (this.failed) return h("p", { class: "card muted", role: "alert" }, t.failed);
      return this.loading ? h("p", { class: "card muted", "aria-busy": "true" }, t.loading) : null;
    }
    const resource = history.resource;
    const n = (v: number) => amount(resource, v, locale);
    const level = Math.min(6, Math.max(2, Number(this.getAttribute("heading-level")) || 3));
    const windowDays = Math.round((dayStart(history.to) - dayStart(history.from)) / DAY) + 1;

    // The snapshots, with today's live figure in place of (or after) today's snapshot.
    const days = history.days.map((d) => ({ ...d }));
    const today = days.find((d) => d.date === history.to);
    if (usage && today) today.used = usage.used;
    else if (usage) days.push({ date: history.to, used: usage.used, limit: usage.limit });

    const from = dayStart(history.from);
    const now = Math.min(Math.max(Date.now(), dayStart(history.to)), dayStart(history.to) + DAY);
    // A monthly resource's forecast: the rate so far, carried to the period's end.
    let projection: { at: number; value: number } | null = null;
    // Not past a hard limit that is already reached: nothing more will be used this period.
    const stopped = usage?.enforcement === "hard" && usage.limit !== null && usage.used >= usage.limit;
    if (usage?.kind === "period" && usage.period && usage.used > 0 && !stopped) {
      const start = Date.parse(usage.period.start);
      const end = Date.parse(usage.period.end);
      if (end > now && now > start) projection = { at: end, value: usage.used + (usage.used / (now - start)) * (end - now) };
    }
    const until = Math.max(dayStart(history.to) + DAY, projection?.at ?? 0);
    const limitNow = usage ? usage.limit : (days[days.length - 1]?.limit ?? null);
    const top = niceCeil(
      Math.max(...days.map((d) => Math.max(d.used, d.limit ?? 0)), limitNow ?? 0, projection?.value ?? 0, 1) * 1.05,
    );
    const plotW = W - M.left - M.right;
    const plotH = H - M.top - M.bottom;
    const x = (at: number) => M.left + ((at - from) / (until - from)) * plotW;
    const y = (v: number) => M.top + plotH - (Math.min(v, top) / top) * plotH;
    const barW = Math.max(1, (plotW * DAY) / (until - from) - 2);

    // The limit as a step line through the days, then on to the end at today's limit.
    const limitPoints: string[] = [];
    for (const d of days) {
      if (d.limit === null) continue;
      limitPoints.push(`${limitPoints.length ? "L" : "M"}${x(dayStart(d.date)).toFixed(1)},${y(d.limit).toFixed(1)}`);
      limitPoints.push(`L${x(dayStart(d.date) + DAY).toFixed(1)},${y(d.limit).toFixed(1)}`);
    }
    if (limitNow !== null) {
      const startAt = limitPoints.length ? dayStart(history.to) + DAY : from;
      limitPoints.push(`${limitPoints.length ? "L" : "M"}${x(startAt).toFixed(1)},${y(limitNow).toFixed(1)}`);
      limitPoints.push(`L${x(until).toFixed(1)},${y(limitNow).toFixed(1)}`);
    }
    const forecastAt = usage?.forecast ? Date.parse(usage.forecast) : null;

    const summary = [
      days.length === 0 ? t.noData : null,
      usage ? (usage.limit === null ? t.summaryUnlimited(n(usage.used)) : t.summary(n(usage.used), n(usage.limit))) : null,
      forecastAt !== null ? t.reachedOn(date(new Date(forecastAt), locale, { timeZone: this.data?.timezone })) : null,
      projection ? t.projected(n(Math.round(projection.value)), date(new Date(projection.at), locale, { timeZone: this.data?.timezone })) : null,
    ]
      .filter(Boolean)
      .join(" ");

    const tick = (v: number) => [
      s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }),
      s("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, n(v)),
    ];
    const label = (at: number, anchor: string) =>
      s("text", { x: x(at), y: H - 6, "text-anchor": anchor }, date(new Date(at), locale, { year: false, utc: true }));

    return h(
      "figure",
      { class: "card", part: "chart", lang: locale },
      h(`h${level}`, { class: "title", part: "title" }, t.history(resourceName(resource, locale), windowDays)),
      s(
        "svg",
        { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t.history(resourceName(resource, locale), windowDays), part: "svg" },
        tick(0),
        tick(top / 2),
        tick(top),
        days.map((d) =>
          s(
            "rect",
            { class: "used", x: x(dayStart(d.date) + DAY / 2) - barW / 2, y: y(d.used), width: barW, height: Math.max(0, y(0) - y(d.used)) },
            s("title", null, `${date(d.date, locale, { utc: true })}: ${n(d.used)}`),
          ),
        ),
        limitPoints.length ? s("path", { class: "limit", d: limitPoints.join("") }) : null,
        projection && usage
          ? s("path", { class: "forecast", d: `M${x(now)},${y(usage.used)}L${x(projection.at)},${y(projection.value)}` })
          : null,
        forecastAt !== null && limitNow !== null && forecastAt <= until
          ? s("circle", { class: "dot", cx: x(forecastAt), cy: y(limitNow), r: 5 })
          : null,
        label(from, "start"),
        label(until - 1, "end"),
      ),
      h("figcaption", { class: "muted", part: "summary" }, summary),
      h(
        "p",
        { class: "legend", part: "legend", "aria-hidden": "true" },
        h("span", { class: "k-used" }, t.legendUsed),
        limitNow !== null ? h("span", { class: "k-limit" }, t.legendLimit) : null,
        projection ? h("span", { class: "k-forecast" }, t.legendForecast) : null,
      ),
    );
  }
}

define("quota-history", QuotaHistory);
