import type { components } from "./generated/openapi.js";

/** The contract's stable error codes (`Error.error.code` in infra/openapi.yaml). */
export type ServiceErrorCode = components["schemas"]["Error"]["error"]["code"];

/**
 * Every code a {@link QuotaApiError} can carry: the contract's, and the
 * client's own for answers that never came from the service:
 * - `NETWORK_ERROR`: no HTTP answer (connection refused or lost);
 * - `TIMEOUT`: no answer within the attempt's time;
 * - `TOO_MANY_REQUESTS`: a 429 that is not a quota decision (API Gateway's throttling);
 * - `UNEXPECTED_RESPONSE`: an answer that is not the contract's (a proxy's error page, say).
 */
export type ErrorCode = ServiceErrorCode | "NETWORK_ERROR" | "TIMEOUT" | "TOO_MANY_REQUESTS" | "UNEXPECTED_RESPONSE";

export interface QuotaApiErrorInit {
  status: number;
  code: ErrorCode;
  message: string;
  retryAfter?: number | null;
  unavailable?: boolean;
  cause?: unknown;
}

/**
 * The service answered an error, or did not answer at all. A refusal (429
 * `quota_exceeded`, 402 `trial_expired`) is never one: it is a decision with
 * `allowed: false`.
 */
export class QuotaApiError extends Error {
  /** The HTTP status; 0 when no answer came (`NETWORK_ERROR`, `TIMEOUT`). */
  readonly status: number;
  readonly code: ErrorCode;
  /** Seconds the service asked to wait before trying again (`Retry-After`), or null. */
  readonly retryAfter: number | null;
  /**
   * True when the service could not be reached or could not answer for now
   * (503, 502, 504, throttling, network failure, timeout): these are what the
   * client retries, and what `onUnavailable` decides about once retries are spent.
   */
  readonly unavailable: boolean;

  constructor(init: QuotaApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "QuotaApiError";
    this.status = init.status;
    this.code = init.code;
    this.retryAfter = init.retryAfter ?? null;
    this.unavailable = init.unavailable ?? false;
  }
}
