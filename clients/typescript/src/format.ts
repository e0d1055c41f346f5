// Numbers as the service's emails and the seed apps write them, in English
// and Danish. Written out rather than left to Intl so that every runtime
// (a Node built with small-icu included) prints the same.
import type { Locale } from "./client.js";

const SEPARATORS: Record<Locale, { group: string; decimal: string }> = {
  en: { group: ",", decimal: "." },
  da: { group: ".", decimal: "," },
};

const BYTE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"] as const;

/** 10000 → "10,000" (en), "10.000" (da); `decimals` fixed places (default 0). */
export function formatNumber(value: number, locale: Locale = "en", decimals = 0): string {
  if (!Number.isFinite(value)) return String(value);
  const { group, decimal } = SEPARATORS[locale];
  const fixed = Math.abs(value).toFixed(decimals);
  const [whole = "0", fraction] = fixed.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, group);
  const negative = value < 0 && Number(fixed) !== 0;
  return `${negative ? "-" : ""}${grouped}${fraction === undefined ? "" : decimal + fraction}`;
}

/** 1073741824 → "1.00 GB" (en), "1,00 GB" (da); binary units, `decimals` places (default 2) above 1 KB. */
export function formatBytes(bytes: number, locale: Locale = "en", decimals = 2): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  let unit = 0;
  let value = Math.abs(bytes);
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // 1023.999 KB rounds to "1024.00 KB": say "1.00 MB" instead.
  if (unit > 0 && Number(value.toFixed(decimals)) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const sign = bytes < 0 ? -1 : 1;
  return `${formatNumber(sign * value, locale, unit === 0 ? 0 : decimals)} ${BYTE_UNITS[unit]}`;
}

/**
 * A percentage as the API gives it (85.5 means 85.5 %): → "85%" (en, da); "85,5%" (da, 1 decimal).
 * Rounded down, never up: 99.7 % is not yet "100%", nor 79.6 % the "80%" a warning starts at, so
 * the figure never claims a threshold the status and the notices have not reached.
 */
export function formatPercent(percent: number, locale: Locale = "en", decimals = 0): string {
  const scale = 10 ** decimals;
  // The epsilon keeps binary fractions whole: 0.29 * 100 is 28.999999999999996.
  const down = Math.floor(percent * scale + 1e-9) / scale;
  return `${formatNumber(down, locale, decimals)}%`;
}
