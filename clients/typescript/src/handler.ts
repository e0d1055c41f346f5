// A Fetch-API handler that lets a browser read its own org's usage through
// the app's server, so that the browser never holds a service token. It
// answers three read routes, for the org the app's session names, and
// nothing else:
//
//   GET …/orgs/{orgId}/usage
//   GET …/orgs/{orgId}/usage/{resource}/history?days=n
//   GET …/orgs/{orgId}/features
//
// The routes are matched at the end of the path, wherever the app mounts it.
import type { QuotaClient, Resource } from "./client.js";
import { QuotaApiError } from "./errors.js";

export interface UsageHandlerOptions {
  client: QuotaClient;
  /** The org of the signed-in user, from the app's own session; null or undefined when there is none. */
  resolveOrgId: (request: Request) => string | null | undefined | Promise<string | null | undefined>;
}

const ROUTE = /(?:^|\/)orgs\/([^/]+)\/(usage|features|usage\/([^/]+)\/history)$/;

export function usageHandler({ client, resolveOrgId }: UsageHandlerOptions): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    const match = ROUTE.exec(url.pathname);
    const orgId = decode(match?.[1]);
    const route = match?.[2];
    const resource = match?.[3] === undefined ? null : decode(match[3]);
    if (orgId === undefined || route === undefined || resource === undefined) {
      return error(404, "NOT_FOUND", "no such route");
    }
    if (request.method !== "GET") {
      return error(405, "METHOD_NOT_ALLOWED", "only GET is served here", { allow: "GET" });
    }
    const sessionOrg = await resolveOrgId(request);
    if (!sessionOrg) return error(401, "UNAUTHORIZED", "no session");
    if (sessionOrg !== orgId) return error(403, "FORBIDDEN", "this session may read its own org only");

    try {
      if (route === "usage") return json(200, await client.usage(orgId));
      if (route === "features") return json(200, await client.features(orgId));
      const days = url.searchParams.get("days");
      if (days !== null && !/^[0-9]{1,3}$/.test(days)) {
        return error(400, "INVALID_REQUEST", "days must be a whole number from 1 to 366");
      }
      const history = await client.history(orgId, resource as Resource, { days: days === null ? undefined : Number(days) });
      return json(200, history);
    } catch (err) {
      if (!(err instanceof QuotaApiError)) throw err;
      // What the browser asked wrong passes through; the service's opinion
      // of the app's own token or setup does not.
      if (err.status === 400 || err.status === 404) return error(err.status, err.code, err.message);
      if (err.unavailable) {
        const retry = err.retryAfter === null ? undefined : { "retry-after": String(Math.ceil(err.retryAfter)) };
        return error(503, "STORE_UNAVAILABLE", "usage is unavailable for now; try again shortly", retry);
      }
      return error(502, "BAD_GATEWAY", "the quota service refused this app's request");
    }
  };
}

function decode(segment: string | undefined): string | undefined {
  if (segment === undefined) return undefined;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "private, no-store", ...headers },
  });
}

function error(status: number, code: string, message: string, headers?: Record<string, string>): Response {
  return json(status, { error: { code, message } }, headers);
}
