// The components, registered on import:
//   <quota-usage-card>, <quota-usage>, <quota-warning>,
//   <quota-exceeded-dialog>, <quota-history>.
export { getJson, QuotaElement } from "./base.js";
export { QuotaExceededDialog } from "./exceeded-dialog.js";
export { QuotaHistory } from "./history.js";
export { QuotaUsage } from "./usage.js";
export { QuotaUsageCard, statusOf, type Status } from "./usage-card.js";
export { QuotaWarning } from "./warning.js";

import type { QuotaExceededDialog } from "./exceeded-dialog.js";
import type { QuotaHistory } from "./history.js";
import type { QuotaUsage } from "./usage.js";
import type { QuotaUsageCard } from "./usage-card.js";
import type { QuotaWarning } from "./warning.js";

declare global {
  interface HTMLElementTagNameMap {
    "quota-usage-card": QuotaUsageCard;
    "quota-usage": QuotaUsage;
    "quota-warning": QuotaWarning;
    "quota-exceeded-dialog": QuotaExceededDialog;
    "quota-history": QuotaHistory;
  }
}
