import type { components } from "./generated/openapi.js";
import { QuotaApiError } from "./errors.js";
import { newIdempotencyKey, send, type Call, type TransportOptions } from "./transport.js";

type Schemas = components["schemas"];

// The contract's shapes, under the names an app uses. Nothing here redefines one.
export type Resource = components["parameters"]["Resource"];
/** A resource counted by what exists (contacts, users, …): the ones `release` gives back. */
export type TotalResource = components["parameters"]["TotalResource"];
export type UsageResult = Schemas["UsageResult"];
export type Feature = components["parameters"]["Feature"];
export type Locale = Schemas["Locale"];
export type Usage = Schemas["Usage"];
export type OrgUsage = Schemas["OrgUsage"];
export type History = Schemas["History"];
export type OrgFeatures = Schemas["OrgFeatures"];
export type Entitlement = Schemas["Entitlement"];
export type OrgProfile = Schemas["OrgProfile"];
export type OrgPatch = Schemas["OrgPatch"];
export type ReservationOutcome = Schemas["ReservationOutcome"];
export type GrantRequest = Schemas["GrantRequest"];
export type GrantResult = Schemas["GrantResult"];
export type GrantRevokedResult = Schemas["GrantRevokedResult"];
export type ResetRequest = Schemas["ResetRequest"];
export type ResetResult = Schemas["ResetResult"];
export type AuditLog = Schemas["AuditLog"];
export type OrgList = Schemas["OrgList"];
export type OrgSummary = Schemas["OrgSummary"];
export type OrgFilter = "all" | "at_risk" | "blocked" | "trial_ending";
export type ChannelRequest = Schemas["ChannelRequest"];
export type Channel = Schemas["Channel"];
export type ChannelEvent = Schemas["ChannelEvent"];
export type ChannelList = Schemas["ChannelList"];
export type DeliveryList = Schemas["DeliveryList"];

/** What to answer for check, consume and reserve when the service cannot be reached and the retries are spent. */
export type OnUnavailable = "deny" | "allow";

/** The service's decision (the contract's Decision). */
export type ServiceDecision = Schemas["Decision"] & { fallback: false };

/** The client's own answer when the service could not be reached: what `onUnavailable` says. */
export interface FallbackDecision {
  allowed: boolean;
  reason: null;
  message: null;
  usage: null;
  fallback: true;
  /** Why there is no answer (`NETWORK_ERROR`, `TIMEOUT`, `STORE_UNAVAILABLE`, …). */
  error: QuotaApiError;
  /** The key the write was sent with: call again with it and the write counts at most once. Null for a check. */
  idempotencyKey: string | null;
}

/** A refusal is a value: `allowed: false`, with `reason`, the localized `message` and `usage`. */
export type Decision = ServiceDecision | FallbackDecision;

export type CheckManyResult =
  | { allowed: boolean; fallback: false; decisions: Partial<Record<Resource, ServiceDecision>> }
  | { allowed: boolean; fallback: true; decisions: Partial<Record<Resource, FallbackDecision>>; error: QuotaApiError };

/** Units held until `commit` or `release` (or their expiry). */
export interface Reservation {
  readonly allowed: true;
  /** True when the service could not be reached and `onUnavailable` is "allow": nothing is held, and commit and release record nothing. */
  readonly fallback: boolean;
  readonly decision: Decision;
  /** What the service answered (`reservationId`, `amount`, `expiresAt`, …); null on a fallback. */
  readonly held: Schemas["Reservation"] | null;
  /** Record the actual use (default: all that was held) and free the rest. */
  commit(amount?: number): Promise<CommitResult>;
  /** Free the units, recording nothing. Null on a fallback. */
  release(): Promise<ReservationOutcome | null>;
}

/** A reserve that holds nothing: refused (429, 402), or denied because the service could not be reached. */
export interface NotReserved {
  readonly allowed: false;
  readonly fallback: boolean;
  readonly decision: Decision;
}

export type ReserveResult = Reservation | NotReserved;

/**
 * A commit's answer. `allowed: false` when the actual use exceeds the hold and
 * the difference is refused (the reservation stays open); `outcome` is null on
 * a fallback reservation.
 */
export type CommitResult = { allowed: true; outcome: ReservationOutcome | null } | { allowed: false; decision: ServiceDecision };

export interface QuotaClientOptions {
  /** Where the API is, e.g. the stack's `ApiUrl` or `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** A bearer token (JWT); or `getToken`, asked before every attempt. */
  token?: string;
  getToken?: () => string | Promise<string>;
  /** The most one call may take, its retries included (default 30 000 ms). */
  timeoutMs?: number;
  /**
   * The most one attempt may take before it is abandoned and retried (default
   * 12 000 ms: the service's functions answer within their 11 s timeout, so
   * past it no answer is coming).
   */
  attemptTimeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** For check, consume and reserve once retries are spent (default "deny"). */
  onUnavailable?: OnUnavailable;
  /** A fetch to use instead of the platform's. */
  fetch?: typeof fetch;
}

export interface ConsumeOptions {
  amount?: number;
  /** Yours, to make a retry of your own count once; otherwise one is made for this call. */
  idempotencyKey?: string;
  onUnavailable?: OnUnavailable;
}

export interface CheckOptions {
  amount?: number;
  onUnavailable?: OnUnavailable;
}

export interface ReserveOptions {
  amount: number;
  ttlSeconds?: number;
  idempotencyKey?: string;
  onUnavailable?: OnUnavailable;
}

export type GrantOptions = GrantRequest & { idempotencyKey?: string };

export class QuotaClient {
  readonly #t: TransportOptions;
  readonly #onUnavailable: OnUnavailable;

  readonly orgs: {
    /** Create (201) or update (200) an org; fields left out keep their value. */
    put(orgId: string, patch?: OrgPatch, options?: { idempotencyKey?: string }): Promise<OrgProfile>;
    get(orgId: string): Promise<OrgProfile>;
  };

  readonly admin: {
    /** Set counts to 0 (one resource, or every `period` one) and re-arm their thresholds; audited. */
    reset(orgId: string, request: ResetRequest & { idempotencyKey?: string }): Promise<ResetResult>;
    /** Add units to a resource's limit until `expiresAt`; audited. */
    grant(orgId: string, request: GrantOptions): Promise<GrantResult>;
    /** Revoke a live grant; a repeat answers the first revoke. */
    revoke(orgId: string, grantId: string): Promise<GrantRevokedResult>;
    audit(orgId: string, options?: { limit?: number }): Promise<AuditLog>;
    /** A page of the orgs, most at risk first; pass `nextCursor` back for the next. */
    listOrgs(options?: { limit?: number; cursor?: string; filter?: OrgFilter }): Promise<OrgList>;
  };

  /**
   * An org's own notification channels. Needs `quota:admin`, or
   * `quota:write` on a token bound to that org (a customer's own).
   */
  readonly channels: {
    /** A webhook (signed; its `secret` is in this answer only), Slack or Discord channel for `events`. */
    add(orgId: string, request: ChannelRequest & { idempotencyKey?: string }): Promise<Channel>;
    list(orgId: string): Promise<ChannelList>;
    /** Resolves when the channel is gone: with it, or null when there was none (an earlier attempt removed it). */
    remove(orgId: string, channelId: string): Promise<Channel | null>;
    /** Its recent deliveries, newest first, each with its attempts. */
    deliveries(orgId: string, channelId: string, options?: { limit?: number }): Promise<DeliveryList>;
  };

  constructor(options: QuotaClientOptions) {
    const { token, getToken } = options;
    if ((token === undefined) === (getToken === undefined)) {
      throw new TypeError("QuotaClient needs exactly one of `token` and `getToken`");
    }
    const platformFetch = options.fetch ?? globalThis.fetch;
    if (typeof platformFetch !== "function") throw new TypeError("no fetch: pass `fetch` to QuotaClient");
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.#t = {
      baseUrl: options.baseUrl,
      getToken: getToken ?? (() => token ?? ""),
      timeoutMs,
      attemptTimeoutMs: Math.min(options.attemptTimeoutMs ?? 12_000, timeoutMs),
      retries: options.retries ?? 3,
      // Called unbound: some platforms' fetch refuses another `this`.
      fetch: (input, init) => platformFetch(input, init),
    };
    this.#onUnavailable = options.onUnavailable ?? "deny";

    const org = (orgId: string, ...rest: string[]) => ["v1", "orgs", orgId, ...rest];
    const admin = (orgId: string, ...rest: string[]) => ["v1", "admin", "orgs", orgId, ...rest];
    // Every admin write carries a key: a retry answers the first outcome
    // (created or updated, what was reset) and the event is published once.
    this.orgs = {
      put: async (orgId, patch, options) =>
        this.#get({
          method: "PUT",
          path: org(orgId),
          body: patch ?? {},
          idempotencyKey: options?.idempotencyKey ?? (await newIdempotencyKey()),
          repeat: "always",
        }),
      get: (orgId) => this.#get({ method: "GET", path: org(orgId), repeat: "always" }),
    };
    this.admin = {
      reset: async (orgId, { idempotencyKey, ...request }) =>
        this.#get({
          method: "POST",
          path: admin(orgId, "reset"),
          body: request,
          idempotencyKey: idempotencyKey ?? (await newIdempotencyKey()),
          repeat: "always",
        }),
      grant: async (orgId, { idempotencyKey, ...request }) =>
        this.#get({
          method: "POST",
          path: admin(orgId, "grants"),
          body: request,
          idempotencyKey: idempotencyKey ?? (await newIdempotencyKey()),
          repeat: "always",
        }),
      // A repeat cannot revoke twice: it answers the first revoke.
      revoke: (orgId, grantId) => this.#get({ method: "DELETE", path: admin(orgId, "grants", grantId), repeat: "always" }),
      audit: (orgId, options) =>
        this.#get({ method: "GET", path: admin(orgId, "audit"), query: { limit: options?.limit }, repeat: "always" }),
      listOrgs: (options) =>
        this.#get({
          method: "GET",
          path: ["v1", "admin", "orgs"],
          query: { limit: options?.limit, cursor: options?.cursor, filter: options?.filter },
          repeat: "always",
        }),
    };
    this.channels = {
      // Keyed: a retry answers the channel (and the secret) the first attempt made.
      add: async (orgId, { idempotencyKey, ...request }) =>
        this.#get({
          method: "POST",
          path: org(orgId, "channels"),
          body: request,
          idempotencyKey: idempotencyKey ?? (await newIdempotencyKey()),
          repeat: "always",
        }),
      list: (orgId) => this.#get({ method: "GET", path: org(orgId, "channels"), repeat: "always" }),
      // A repeat after a removal whose answer was lost finds nothing to remove: gone either way.
      remove: async (orgId, channelId) => {
        try {
          const { removed } = await this.#get<{ removed: Channel }>({
            method: "DELETE",
            path: org(orgId, "channels", channelId),
            repeat: "always",
          });
          return removed;
        } catch (error) {
          if (error instanceof QuotaApiError && error.code === "CHANNEL_NOT_FOUND") return null;
          throw error;
        }
      },
      deliveries: (orgId, channelId, options) =>
        this.#get({
          method: "GET",
          path: org(orgId, "channels", channelId, "deliveries"),
          query: { limit: options?.limit },
          repeat: "always",
        }),
    };
  }

  /** The plan catalogue: every plan's limits and features. */
  plans(): Promise<Schemas["Catalogue"]> {
    return this.#get({ method: "GET", path: ["v1", "plans"], repeat: "always" });
  }

  /** Record `amount` (default 1) units if allowed. A refusal is a value, never an exception. */
  async consume(orgId: string, resource: Resource, options: ConsumeOptions = {}): Promise<Decision> {
    const key = options.idempotencyKey ?? (await newIdempotencyKey());
    return this.#guard(options.onUnavailable, key, async () => {
      const { body } = await send<Schemas["Decision"]>(this.#t, {
        method: "POST",
        path: ["v1", "orgs", orgId, "usage", resource, "consume"],
        body: { amount: options.amount ?? 1 },
        idempotencyKey: key,
        repeat: "always",
        refusals: true,
      });
      return served(body);
    });
  }

  /** Would `amount` (default 1) more be allowed? Records nothing. */
  async check(orgId: string, resource: Resource, options: CheckOptions = {}): Promise<Decision> {
    return this.#guard(options.onUnavailable, null, async () =>
      served(
        await this.#get<Schemas["Decision"]>({
          method: "GET",
          path: ["v1", "orgs", orgId, "usage", resource, "check"],
          query: { amount: options.amount },
          repeat: "always",
        }),
      ),
    );
  }

  /** The seed apps' `canCreateContact(orgId)` for any resource: `if (!(await quota.canUse(org, "contacts")).allowed) …`. */
  canUse(orgId: string, resource: Resource, amount = 1): Promise<Decision> {
    return this.check(orgId, resource, { amount });
  }

  /** Several checks in one request; `allowed` when every one is. */
  async checkMany(
    orgId: string,
    resources: Partial<Record<Resource, number>>,
    options: { onUnavailable?: OnUnavailable } = {},
  ): Promise<CheckManyResult> {
    try {
      const body = await this.#get<Schemas["CheckManyResult"]>({
        method: "POST",
        path: ["v1", "orgs", orgId, "check"],
        body: { resources },
        repeat: "always",
      });
      const decisions: Partial<Record<Resource, ServiceDecision>> = {};
      for (const [resource, decision] of Object.entries(body.decisions)) decisions[resource as Resource] = served(decision);
      return { allowed: body.allowed, fallback: false, decisions };
    } catch (err) {
      if (!(err instanceof QuotaApiError && err.unavailable)) throw err;
      const decision = this.#fallback(options.onUnavailable, err, null);
      const decisions: Partial<Record<Resource, FallbackDecision>> = {};
      for (const resource of Object.keys(resources)) decisions[resource as Resource] = decision;
      return { allowed: decision.allowed, fallback: true, decisions, error: err };
    }
  }

  /** Hold `amount` units while work of unknown size runs; then `commit(actual)` or `release()`. */
  async reserve(orgId: string, resource: Resource, options: ReserveOptions): Promise<ReserveResult> {
    const key = options.idempotencyKey ?? (await newIdempotencyKey());
    try {
      const { status, body } = await send<Schemas["Reservation"] | Schemas["Decision"]>(this.#t, {
        method: "POST",
        path: ["v1", "orgs", orgId, "usage", resource, "reserve"],
        body: { amount: options.amount, ttlSeconds: options.ttlSeconds },
        idempotencyKey: key,
        repeat: "always",
        refusals: true,
      });
      if (status === 201) return this.#held(orgId, body as Schemas["Reservation"]);
      return { allowed: false, fallback: false, decision: served(body as Schemas["Decision"]) };
    } catch (err) {
      if (!(err instanceof QuotaApiError && err.unavailable)) throw err;
      const decision = this.#fallback(options.onUnavailable, err, key);
      if (!decision.allowed) return { allowed: false, fallback: true, decision };
      return {
        allowed: true,
        fallback: true,
        decision,
        held: null,
        commit: () => Promise.resolve({ allowed: true, outcome: null }),
        release: () => Promise.resolve(null),
      };
    }
  }

  /** Everything about the org's usage. */
  usage(orgId: string): Promise<OrgUsage> {
    return this.#get({ method: "GET", path: ["v1", "orgs", orgId, "usage"], repeat: "always" });
  }

  /** Daily snapshots of one resource, oldest first (`days` 1–366, default 30). */
  history(orgId: string, resource: Resource, options: { days?: number } = {}): Promise<History> {
    return this.#get({
      method: "GET",
      path: ["v1", "orgs", orgId, "usage", resource, "history"],
      query: { days: options.days },
      repeat: "always",
    });
  }

  /**
   * Give back `amount` units of a `total` resource (a contact deleted), never below 0. A repeat
   * would give back twice, so it is retried only on answers that say nothing was recorded.
   */
  release(orgId: string, resource: TotalResource, amount = 1): Promise<UsageResult> {
    return this.#get({
      method: "POST",
      path: ["v1", "orgs", orgId, "usage", resource, "release"],
      body: { amount },
      repeat: "when-not-applied",
    });
  }

  /**
   * Set the current count to `value` (reconciling with what really exists; audited). Not keyed: a
   * repeat after a lost answer would undo what was counted in between, so it is retried only on
   * answers that say nothing was recorded.
   */
  setUsage(orgId: string, resource: Resource, value: number): Promise<UsageResult> {
    return this.#get({
      method: "PUT",
      path: ["v1", "orgs", orgId, "usage", resource],
      body: { value },
      repeat: "when-not-applied",
    });
  }

  /** Every feature of the catalogue for the org. */
  features(orgId: string): Promise<OrgFeatures> {
    return this.#get({ method: "GET", path: ["v1", "orgs", orgId, "features"], repeat: "always" });
  }

  /** Whether the org may use one feature. */
  feature(orgId: string, name: Feature): Promise<Entitlement> {
    return this.#get({ method: "GET", path: ["v1", "orgs", orgId, "features", name], repeat: "always" });
  }

  async #get<T>(call: Call): Promise<T> {
    return (await send<T>(this.#t, call)).body;
  }

  #held(orgId: string, held: Schemas["Reservation"]): Reservation {
    const path = ["v1", "orgs", orgId, "reservations", held.reservationId];
    return {
      allowed: true,
      fallback: false,
      decision: served(held.decision),
      held,
      // A commit or release ends the reservation once; a repeat answers the
      // first outcome, so both are retried like keyed writes. The key is sent
      // all the same (the routes accept and ignore it).
      commit: async (amount?: number): Promise<CommitResult> => {
        const { status, body } = await send<ReservationOutcome | Schemas["Decision"]>(this.#t, {
          method: "POST",
          path: [...path, "commit"],
          body: amount === undefined ? undefined : { amount },
          idempotencyKey: await newIdempotencyKey(),
          repeat: "always",
          refusals: true,
        });
        if (status === 200) return { allowed: true, outcome: body as ReservationOutcome };
        return { allowed: false, decision: served(body as Schemas["Decision"]) };
      },
      release: async () =>
        this.#get<ReservationOutcome>({ method: "DELETE", path, idempotencyKey: await newIdempotencyKey(), repeat: "always" }),
    };
  }

  async #guard(policy: OnUnavailable | undefined, key: string | null, run: () => Promise<Decision>): Promise<Decision> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof QuotaApiError && err.unavailable) return this.#fallback(policy, err, key);
      throw err;
    }
  }

  #fallback(policy: OnUnavailable | undefined, error: QuotaApiError, key: string | null): FallbackDecision {
    const allowed = (policy ?? this.#onUnavailable) === "allow";
    return { allowed, reason: null, message: null, usage: null, fallback: true, error, idempotencyKey: key };
  }
}

function served(decision: Schemas["Decision"]): ServiceDecision {
  return { ...decision, fallback: false };
}
