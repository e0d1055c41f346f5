// What the components say, in English and Danish (the seeds' texts where
// they have one: "Månedlig kvote nået", "Opgrader for at fortsætte.",
// "Gratis prøveperiode udløbet", "I nærmer jer jeres grænse", …), and the
// names of resources, features and plans (as shared/plans.json names them;
// the usage endpoints do not carry names).
import { formatBytes, formatNumber, formatPercent, type Locale } from "@quota-service/client";

export type { Locale };

type Names = Record<Locale, string>;

const RESOURCES: Record<string, Names> = {
  conversations: { en: "Conversations", da: "Samtaler" },
  users: { en: "Users", da: "Brugere" },
  contacts: { en: "Contacts", da: "Kontakter" },
  leads: { en: "Leads", da: "Leads" },
  accounts: { en: "Accounts", da: "Konti" },
  opportunities: { en: "Opportunities", da: "Salgsmuligheder" },
  projects: { en: "Projects", da: "Projekter" },
  documents: { en: "Documents", da: "Dokumenter" },
  tasks: { en: "Tasks", da: "Opgaver" },
  storage: { en: "Storage", da: "Lagerplads" },
};

const FEATURES: Record<string, Names> = {
  api_access: { en: "API access", da: "API-adgang" },
  webhooks: { en: "Webhooks", da: "Webhooks" },
  remove_branding: { en: "Remove widget branding", da: "Fjern branding i widget" },
  custom_domain: { en: "Custom domain", da: "Eget domæne" },
  advanced_analytics: { en: "Advanced analytics", da: "Avanceret analyse" },
  priority_support: { en: "Priority support", da: "Prioriteret support" },
  sso: { en: "Single sign-on (SAML)", da: "Single sign-on (SAML)" },
};

const PLANS: Record<string, Names> = {
  free: { en: "Free", da: "Gratis" },
  basic: { en: "Basic", da: "Basis" },
  growth: { en: "Growth", da: "Vækst" },
  pro: { en: "Pro", da: "Pro" },
};

/** "Conversations" / "Samtaler"; an unknown name as it is. */
export const resourceName = (resource: string, locale: Locale): string => RESOURCES[resource]?.[locale] ?? resource;
/** "conversations" / "samtaler", for use inside a sentence. */
export const resourceNoun = (resource: string, locale: Locale): string => {
  const name = RESOURCES[resource]?.[locale];
  return name === undefined ? resource : name.toLowerCase();
};
export const featureName = (feature: string, locale: Locale): string => FEATURES[feature]?.[locale] ?? feature;
export const planName = (plan: string, locale: Locale): string => PLANS[plan]?.[locale] ?? plan;
export const knownPlans = Object.keys(PLANS);
export const knownResources = Object.keys(RESOURCES);

/** An amount of a resource: bytes for storage, a number otherwise. */
export function amount(resource: string, value: number, locale: Locale): string {
  return resource === "storage" ? formatBytes(value, locale) : formatNumber(value, locale);
}

export { formatNumber, formatPercent };

/** A percentage as the API gives it: whole percents, one decimal below 10 % when not whole. */
export function percent(value: number, locale: Locale): string {
  return formatPercent(value, locale, value > 0 && value < 10 && !Number.isInteger(value) ? 1 : 0);
}

const TAGS: Record<Locale, string> = { en: "en-GB", da: "da-DK" };

/**
 * "5 Nov 2026" / "5. nov. 2026": the day in `timeZone` (the org's IANA zone,
 * as its report names it), else the viewer's; `utc` for a calendar date.
 */
export function date(
  value: string | Date,
  locale: Locale,
  options: { year?: boolean; utc?: boolean; timeZone?: string | undefined } = {},
): string {
  const at = typeof value === "string" ? new Date(value) : value;
  const format = (timeZone: string | undefined) =>
    new Intl.DateTimeFormat(TAGS[locale], {
      day: "numeric",
      month: "short",
      year: options.year === false ? undefined : "numeric",
      timeZone,
    }).format(at);
  const zone = options.utc ? "UTC" : options.timeZone;
  try {
    return format(zone);
  } catch {
    // A zone this browser's time-zone data does not know: the viewer's.
    return format(undefined);
  }
}

/**
 * A period's last day, for "1 Dec – 31 Dec": its `end` is the instant the
 * next one begins (midnight in the org's zone), so the day before it.
 */
export function lastDay(end: string, locale: Locale, timeZone: string | undefined): string {
  return date(new Date(Date.parse(end) - 1), locale, { timeZone });
}

/** "5 Nov 2026, 14:03" / "5. nov. 2026 14.03". */
export function dateTime(value: string, locale: Locale): string {
  return new Intl.DateTimeFormat(TAGS[locale], { dateStyle: "medium", timeStyle: "short" }).format(new Date(value));
}

/** Picks the locale: an explicit one, else the data's, else English. */
export function pickLocale(...candidates: (string | null | undefined)[]): Locale {
  for (const c of candidates) if (c === "en" || c === "da") return c;
  return "en";
}

const EN = {
  used: "used",
  of: (used: string, limit: string) => `${used} of ${limit}`,
  remaining: (n: string) => `${n} remaining`,
  held: (n: string) => `${n} reserved`,
  over: (n: string) => `${n} over the limit`,
  overageBilled: "Overage will be billed.",
  granted: (n: string) => `includes ${n} granted`,
  unlimited: "Unlimited",
  daysLeft: (n: number) => (n === 1 ? "1 day left" : `${n} days left`),
  resets: (d: string) => `Resets ${d}`,
  forecast: (d: string) => `At this rate, the limit is reached around ${d}`,
  status: { ok: "", warning: "Almost reached", exceeded: "Limit reached" } as Record<string, string>,
  blocked: "Blocked",
  upgrade: "Upgrade",
  upgradePlan: "Upgrade plan",
  loading: "Loading usage…",
  failed: "Usage could not be loaded.",
  usageTitle: "Usage",
  yourPlan: "Your plan",
  plan: "Plan",
  billingPeriod: (a: string, b: string) => `Billing period ${a} – ${b}`,
  trialEnds: (d: string) => `Free trial ends ${d}`,
  trialExpired: "Free trial expired",
  features: "Features",
  included: "Included",
  notIncluded: "Not included",
  approaching: "You are approaching your limit",
  reached: "You have reached your limit",
  viewUsage: "View usage",
  monthlyQuota: "Monthly quota reached",
  limitReached: (name: string) => `Limit for ${name} reached`,
  upgradeToContinue: "Upgrade to continue.",
  current: "Current usage",
  limit: "Limit",
  resource: "Resource",
  notNow: "Not now",
  history: (name: string, days: number) => `${name}, last ${days} days`,
  legendUsed: "Used per day",
  legendLimit: "Limit",
  legendForecast: "Forecast",
  noData: "No usage recorded in this window yet.",
  summary: (used: string, limit: string) => `${used} of ${limit} used.`,
  summaryUnlimited: (used: string) => `${used} used; no limit.`,
  projected: (n: string, d: string) => `At this rate about ${n} by ${d}.`,
  reachedOn: (d: string) => `The limit is reached around ${d}.`,
};

const DA: typeof EN = {
  used: "brugt",
  of: (used, limit) => `${used} af ${limit}`,
  remaining: (n) => `${n} tilbage`,
  held: (n) => `${n} reserveret`,
  over: (n) => `${n} over grænsen`,
  overageBilled: "Overskydende forbrug vil blive faktureret.",
  granted: (n) => `inkl. ${n} tildelt`,
  unlimited: "Ubegrænset",
  daysLeft: (n) => (n === 1 ? "1 dag tilbage" : `${n} dage tilbage`),
  resets: (d) => `Nulstilles ${d}`,
  forecast: (d) => `Med dette forbrug nås grænsen omkring ${d}`,
  status: { ok: "", warning: "Næsten nået", exceeded: "Grænse nået" },
  blocked: "Blokeret",
  upgrade: "Opgrader",
  upgradePlan: "Opgrader plan",
  loading: "Henter forbrug…",
  failed: "Forbruget kunne ikke hentes.",
  usageTitle: "Forbrug",
  yourPlan: "Jeres plan",
  plan: "Plan",
  billingPeriod: (a, b) => `Faktureringsperiode ${a} – ${b}`,
  trialEnds: (d) => `Gratis prøveperiode slutter ${d}`,
  trialExpired: "Gratis prøveperiode udløbet",
  features: "Funktioner",
  included: "Inkluderet",
  notIncluded: "Ikke inkluderet",
  approaching: "I nærmer jer jeres grænse",
  reached: "I har nået jeres grænse",
  viewUsage: "Se forbrug",
  monthlyQuota: "Månedlig kvote nået",
  limitReached: (name) => `Grænsen for ${name} er nået`,
  upgradeToContinue: "Opgrader for at fortsætte.",
  current: "Nuværende forbrug",
  limit: "Grænse",
  resource: "Ressource",
  notNow: "Ikke nu",
  history: (name, days) => `${name}, seneste ${days} dage`,
  legendUsed: "Brugt pr. dag",
  legendLimit: "Grænse",
  legendForecast: "Prognose",
  noData: "Intet forbrug registreret i perioden endnu.",
  summary: (used, limit) => `${used} af ${limit} brugt.`,
  summaryUnlimited: (used) => `${used} brugt; ingen grænse.`,
  projected: (n, d) => `Med dette forbrug ca. ${n} ved ${d}.`,
  reachedOn: (d) => `Grænsen nås omkring ${d}.`,
};

export type Texts = typeof EN;
export const texts = (locale: Locale): Texts => (locale === "da" ? DA : EN);
