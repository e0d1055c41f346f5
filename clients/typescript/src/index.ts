export { QuotaClient } from "./client.js";
export type {
  AuditLog,
  Channel,
  ChannelEvent,
  ChannelList,
  ChannelRequest,
  CheckManyResult,
  CheckOptions,
  CommitResult,
  ConsumeOptions,
  Decision,
  DeliveryList,
  Entitlement,
  FallbackDecision,
  Feature,
  GrantOptions,
  GrantRequest,
  GrantResult,
  GrantRevokedResult,
  History,
  Locale,
  NotReserved,
  OnUnavailable,
  OrgFeatures,
  OrgPatch,
  OrgProfile,
  OrgUsage,
  QuotaClientOptions,
  Reservation,
  ReservationOutcome,
  ReserveOptions,
  ReserveResult,
  ResetRequest,
  ResetResult,
  Resource,
  ServiceDecision,
  Usage,
} from "./client.js";
export { QuotaApiError } from "./errors.js";
export type { ErrorCode, ServiceErrorCode } from "./errors.js";
export { formatBytes, formatNumber, formatPercent } from "./format.js";
export { usageHandler } from "./handler.js";
export type { UsageHandlerOptions } from "./handler.js";
/** The contract's generated types, for anything not named above. */
export type { components, paths } from "./generated/openapi.js";
