// One HTTP call with its retries. The rules, in the order they apply:
//
// 1. A write's Idempotency-Key is chosen once per call (the caller's, or a new
//    UUID) and sent on every attempt, so a repeat is answered with the first
//    outcome and counts once.
// 2. Only failures after which nothing, or exactly the same thing, can happen
//    again are retried: no answer (network failure, attempt timeout), 502/503/504,
//    and API Gateway's throttling. A route that a repeat could change
//    (`repeat: "when-not-applied"`) is retried only on answers that say nothing
//    was recorded (503 STORE_UNAVAILABLE, throttling).
// 3. Waits grow exponentially with jitter, never shorter than `Retry-After`,
//    and the call gives up rather than wait past its total `timeoutMs`.
import { QuotaApiError, type ErrorCode } from "./errors.js";

export interface TransportOptions {
  baseUrl: string;
  getToken: () => string | Promise<string>;
  timeoutMs: number;
  attemptTimeoutMs: number;
  retries: number;
  fetch: typeof fetch;
}

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path segments, encoded here: ["v1", "orgs", orgId, "usage"]. */
  path: readonly string[];
  query?: Record<string, number | string | undefined>;
  body?: unknown;
  idempotencyKey?: string;
  /**
   * "always": a repeat cannot change the outcome (a read, a keyed write, a
   * commit or release by its id, a PUT of the same values).
   * "when-not-applied": retried only when the answer says nothing was recorded.
   */
  repeat: "always" | "when-not-applied";
  /** Answer 402 and 429 carrying a Decision as values, not errors. */
  refusals?: boolean;
}

export interface Answer<T> {
  status: number;
  body: T;
}

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 4_000;

export async function send<T>(t: TransportOptions, call: Call): Promise<Answer<T>> {
  const deadline = Date.now() + t.timeoutMs;
  for (let attempt = 1; ; attempt++) {
    let failure: QuotaApiError;
    try {
      return await attemptOnce<T>(t, call, Math.min(t.attemptTimeoutMs, deadline - Date.now()));
    } catch (err) {
      if (!(err instanceof QuotaApiError)) throw err;
      failure = err;
    }
    const repeatable = failure.unavailable && (call.repeat === "always" || nothingRecorded(failure));
    if (!repeatable || attempt > t.retries) throw failure;
    const wait = backoff(attempt, failure.retryAfter);
    if (Date.now() + wait >= deadline) throw failure;
    await sleep(wait);
  }
}

/** Answers after which the contract says nothing was recorded. */
function nothingRecorded(err: QuotaApiError): boolean {
  return err.code === "STORE_UNAVAILABLE" || err.code === "TOO_MANY_REQUESTS";
}

/** Exponential, with "equal jitter" (half fixed, half random), at least `Retry-After`. */
function backoff(attempt: number, retryAfter: number | null): number {
  const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt - 1));
  const jittered = exp / 2 + (Math.random() * exp) / 2;
  return retryAfter === null ? jittered : Math.max(retryAfter * 1000, jittered);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function attemptOnce<T>(t: TransportOptions, call: Call, timeoutMs: number): Promise<Answer<T>> {
  const headers: Record<string, string> = {
    accept: "application/json",
    authorization: `Bearer ${await t.getToken()}`,
  };
  if (call.body !== undefined) headers["content-type"] = "application/json";
  if (call.idempotencyKey !== undefined) headers["idempotency-key"] = call.idempotencyKey;

  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, timeoutMs));
  let status: number;
  let text: string;
  let retryAfterHeader: string | null;
  try {
    const res = await t.fetch(url(t.baseUrl, call), {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: controller.signal,
    });
    status = res.status;
    retryAfterHeader = res.headers.get("retry-after");
    text = await res.text();
  } catch (err) {
    if (controller.signal.aborted) {
      throw new QuotaApiError({ status: 0, code: "TIMEOUT", message: `no answer within ${timeoutMs} ms`, unavailable: true, cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new QuotaApiError({ status: 0, code: "NETWORK_ERROR", message, unavailable: true, cause: err });
  } finally {
    clearTimeout(timer);
  }
  return interpret<T>(status, text, retryAfterHeader, call);
}

function url(baseUrl: string, call: Call): string {
  const path = call.path.map(encodeURIComponent).join("/");
  const query = Object.entries(call.query ?? {})
    .filter((entry): entry is [string, number | string] => entry[1] !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");
  return `${baseUrl.replace(/\/+$/, "")}/${path}${query ? `?${query}` : ""}`;
}

function interpret<T>(status: number, text: string, retryAfterHeader: string | null, call: Call): Answer<T> {
  const body = parseJson(text);
  if (status >= 200 && status < 300 && body !== undefined) return { status, body: body as T };
  const isDecision = isRecord(body) && typeof body.allowed === "boolean" && isRecord(body.usage);
  if ((status === 402 || status === 429) && call.refusals && isDecision) return { status, body: body as T };

  const serviceError = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  const gatewayMessage = isRecord(body) && typeof body.message === "string" ? body.message : undefined;
  let code: ErrorCode;
  if (serviceError && typeof serviceError.code === "string") code = serviceError.code as ErrorCode;
  else if (status === 401) code = "UNAUTHORIZED";
  else if (status === 403) code = "FORBIDDEN";
  else if (status === 429 && !isDecision) code = "TOO_MANY_REQUESTS";
  else code = "UNEXPECTED_RESPONSE";
  const message =
    serviceError && typeof serviceError.message === "string"
      ? serviceError.message
      : (gatewayMessage ?? `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`);
  const unavailable = status === 502 || status === 503 || status === 504 || code === "TOO_MANY_REQUESTS";
  throw new QuotaApiError({ status, code, message, retryAfter: parseRetryAfter(retryAfterHeader), unavailable });
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `Retry-After` in seconds: a number of seconds, or an HTTP date. */
function parseRetryAfter(value: string | null): number | null {
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}

/** A fresh Idempotency-Key: the platform's `crypto.randomUUID` (Node 19+, browsers, edge runtimes), or Node 18's `node:crypto`. */
export async function newIdempotencyKey(): Promise<string> {
  const webCrypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof webCrypto?.randomUUID === "function") return webCrypto.randomUUID();
  // Node 18 has no global `crypto`. The specifier is a variable so that
  // bundlers for browsers leave it alone (a browser never gets here).
  const nodeCrypto = "node:crypto";
  const mod = (await import(/* webpackIgnore: true */ /* @vite-ignore */ nodeCrypto)) as { randomUUID: () => string };
  return mod.randomUUID();
}
