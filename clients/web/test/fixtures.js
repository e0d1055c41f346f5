// Contract-shaped data for the components fed by properties (the colour
// boundaries, the screenshots): typed against the generated contract, so a
// fixture that drifts from infra/openapi.yaml fails the type-check.

/** @typedef {import("@quota-service/client").Usage} Usage */
/** @typedef {import("@quota-service/client").OrgUsage} OrgUsage */
/** @typedef {import("@quota-service/client").History} History */

const DAY = 86_400_000;

/** The resources' names, as the components show them (shared/plans.json's, capitalised). */
export const NAMES = {
  en: {
    conversations: "Conversations", users: "Users", contacts: "Contacts", leads: "Leads", accounts: "Accounts",
    opportunities: "Opportunities", projects: "Projects", documents: "Documents", tasks: "Tasks", storage: "Storage",
  },
  da: {
    conversations: "Samtaler", users: "Brugere", contacts: "Kontakter", leads: "Leads", accounts: "Konti",
    opportunities: "Salgsmuligheder", projects: "Projekter", documents: "Dokumenter", tasks: "Opgaver", storage: "Lagerplads",
  },
};

/** Today at 00:00 UTC, as a date string, shifted by `days`. */
export function day(days = 0) {
  const d = new Date(Date.now() + days * DAY);
  return d.toISOString().slice(0, 10);
}

/** The current month's period (UTC), as the API reports it. */
export function period() {
  const now = new Date();
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  const iso = (/** @type {Date} */ d) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
  return { start: iso(start), end: iso(end), daysRemaining: Math.ceil((end.getTime() - now.getTime()) / DAY) };
}

/**
 * One resource's usage, with the API's arithmetic.
 * @param {string} resource
 * @param {number} used
 * @param {number | null} limit
 * @param {Partial<Usage>} [extra]
 * @returns {Usage}
 */
export function usage(resource, used, limit, extra = {}) {
  const held = extra.held ?? 0;
  const percentage = limit === null ? null : limit === 0 ? 100 : Math.round((used * 10000) / limit) / 100;
  const status = percentage === null ? "ok" : percentage >= 100 ? "exceeded" : percentage >= 80 ? "warning" : "ok";
  const monthly = resource === "conversations";
  const p = period();
  /** @type {Usage} */
  const base = {
    resource,
    kind: monthly ? "period" : "total",
    used,
    held,
    limit,
    planLimit: limit,
    grants: [],
    remaining: limit === null ? null : Math.max(0, limit - used - held),
    percentage,
    overage: limit === null ? 0 : Math.max(0, used - limit),
    status,
    blocked: limit !== null && used + held >= limit && (extra.enforcement ?? "hard") === "hard",
    enforcement: "hard",
    period: monthly ? { start: p.start, end: p.end } : null,
    forecast: null,
  };
  return { ...base, ...extra };
}

/**
 * An org report around `resources`.
 * @param {Usage[]} resources
 * @param {{ locale?: "en" | "da", plan?: string, trial?: OrgUsage["trial"], blockedMessage?: string | null }} [options]
 * @returns {OrgUsage}
 */
export function report(resources, options = {}) {
  const p = period();
  const exceeded = resources.filter((r) => r.status === "exceeded").map((r) => r.resource);
  const approaching = resources.filter((r) => r.status === "warning").map((r) => r.resource);
  const blocked = resources.filter((r) => r.blocked).map((r) => r.resource);
  const features = ["api_access", "webhooks", "remove_branding", "custom_domain", "advanced_analytics", "priority_support", "sso"];
  return {
    orgId: "acme",
    plan: options.plan ?? "growth",
    locale: options.locale ?? "en",
    timezone: "UTC",
    period: { start: p.start, end: p.end, daysRemaining: p.daysRemaining, nextReset: p.end },
    resources,
    atRisk: { approaching, exceeded },
    blocked: {
      blocked: blocked.length > 0,
      reason: blocked.length > 0 ? "quota_exceeded" : null,
      resources: blocked,
      message: blocked.length > 0 ? (options.blockedMessage ?? null) : null,
    },
    notificationsSent: {},
    trial: options.trial ?? null,
    features: Object.fromEntries(
      features.map((feature, i) => [feature, { feature, enabled: i < 5, source: /** @type {"plan"} */ ("plan") }]),
    ),
  };
}

/** A growth org with a bit of everything: conversations at 85 % with a forecast, storage in bytes, a grant, held units. */
export function richReport(locale = /** @type {"en" | "da"} */ ("en")) {
  const p = period();
  const forecast = new Date(Date.now() + 3 * DAY).toISOString().replace(/\.\d{3}Z$/, "Z");
  return report(
    [
      usage("conversations", 255, 300, { enforcement: "soft", forecast, held: 5 }),
      usage("contacts", 24_100, 25_000, { grants: [{ id: "grt_0123456789abcdef01234567", amount: 1000, expiresAt: p.end }], planLimit: 24_000 }),
      usage("users", 9, 20),
      usage("storage", 12_884_901_888, 107_374_182_400),
      usage("projects", 102, 100, { blocked: true }),
      usage("leads", 1200, null),
    ],
    { locale, plan: "growth" },
  );
}

/**
 * 30 days of conversations: a steady climb through the month.
 * @param {string} [resource]
 * @returns {History}
 */
export function history(resource = "conversations", days = 30) {
  const list = [];
  const today = new Date();
  const monthStart = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1);
  for (let i = days - 1; i >= 1; i--) {
    const at = Date.now() - i * DAY;
    const sinceStart = Math.max(0, Math.floor((at - monthStart) / DAY) + 1);
    const inPrevious = at < monthStart;
    const used = inPrevious ? Math.round(((days - i) * 280) / 30) : Math.min(255, sinceStart * 11 + ((i * 7) % 5));
    list.push({ date: new Date(at).toISOString().slice(0, 10), used, limit: 300 });
  }
  return { orgId: "acme", resource, from: day(-(days - 1)), to: day(0), days: list };
}
