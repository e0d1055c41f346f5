// The console's way to the API: the TypeScript client (retries, an
// Idempotency-Key on grants, typed errors) for every route it has, and a
// plain GET for the two it does not have yet (the org list and the plan
// catalogue), answering the same QuotaApiError.
import { type components, QuotaApiError, QuotaClient } from "@quota-service/client";

export type OrgSummary = components["schemas"]["OrgSummary"];
export type OrgList = components["schemas"]["OrgList"];
export type Catalogue = components["schemas"]["Catalogue"];
export type OrgFilter = "all" | "at_risk" | "blocked" | "trial_ending";

export class Api {
  readonly client: QuotaClient;
  readonly #base: string;
  readonly #token: () => string;
  #catalogue: Promise<Catalogue> | null = null;

  constructor(apiBase: string, token: () => string) {
    this.#base = (apiBase || location.origin).replace(/\/+$/, "");
    this.#token = token;
    this.client = new QuotaClient({ baseUrl: this.#base, getToken: token, retries: 2, timeoutMs: 20_000 });
  }

  /** GET /v1/admin/orgs: a page of orgs, most at risk first. */
  listOrgs(options: { filter?: OrgFilter; cursor?: string | null; limit?: number } = {}): Promise<OrgList> {
    const query = new URLSearchParams({ limit: String(options.limit ?? 50) });
    if (options.filter && options.filter !== "all") query.set("filter", options.filter);
    if (options.cursor) query.set("cursor", options.cursor);
    return this.#get(`/v1/admin/orgs?${query.toString()}`);
  }

  /** GET /v1/plans: the plan catalogue (read once). */
  catalogue(): Promise<Catalogue> {
    this.#catalogue ??= this.#get<Catalogue>("/v1/plans").catch((err: unknown) => {
      this.#catalogue = null;
      throw err;
    });
    return this.#catalogue;
  }

  async #get<T>(path: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.#base}${path}`, { headers: { accept: "application/json", authorization: `Bearer ${this.#token()}` } });
    } catch (err) {
      throw new QuotaApiError({ status: 0, code: "NETWORK_ERROR", message: err instanceof Error ? err.message : String(err), unavailable: true });
    }
    const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string }; message?: string } | null;
    if (res.ok && body) return body as T;
    const code = (body?.error?.code ?? (res.status === 401 ? "UNAUTHORIZED" : res.status === 403 ? "FORBIDDEN" : "UNEXPECTED_RESPONSE")) as QuotaApiError["code"];
    throw new QuotaApiError({ status: res.status, code, message: body?.error?.message ?? body?.message ?? `HTTP ${res.status}`, unavailable: res.status >= 502 });
  }
}

/**
 * One Idempotency-Key per write the operator means. The same write tried
 * again by hand after a failure (an answer lost, a timeout, the service
 * unsure it applied it) goes under the first try's key, so the service
 * answers what that did instead of applying it twice: two grants, two
 * resets. Another write, the same one after a success, or one made again
 * after `RETRY_WINDOW_MS` (a deliberate repeat, not a retry) gets a new key.
 */
export class IntendedWrite {
  static readonly RETRY_WINDOW_MS = 10 * 60_000;
  #request = "";
  #key = "";
  #since = 0;

  keyFor(request: unknown): string {
    const text = JSON.stringify(request);
    const now = Date.now();
    if (text !== this.#request || !this.#key || now - this.#since > IntendedWrite.RETRY_WINDOW_MS) {
      this.#request = text;
      this.#key = crypto.randomUUID();
      this.#since = now;
    }
    return this.#key;
  }

  /** It was applied: the next write is a new one. */
  done(): void {
    this.#request = "";
    this.#key = "";
  }
}

/** One line for a failure: the service's message and code. */
export function describeError(err: unknown): string {
  if (err instanceof QuotaApiError) return err.status ? `${err.message} (${err.code}, HTTP ${err.status})` : `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

export function isUnauthorized(err: unknown): boolean {
  return err instanceof QuotaApiError && err.status === 401;
}

export function isStatus(err: unknown, status: number): boolean {
  return err instanceof QuotaApiError && err.status === status;
}
