// Sign-in for the console. The access token lives in sessionStorage (this tab
// only, gone when it closes) and is sent as the bearer token on every API call.
//
// - Locally: /console/#access_token=<JWT> (what an OIDC implicit redirect
//   carries; scripts/run-local prints the URL). The fragment is read once and
//   stripped from the address bar and history.
// - On AWS: the authorization code flow with PKCE (S256) against the issuer
//   in config.json's `oidc` (Cognito's hosted UI): the endpoints come from the
//   issuer's discovery document; the code comes back to `redirectPath` and is
//   exchanged for tokens by the browser (a public client: no secret).

export interface OidcConfig {
  authority: string;
  clientId: string;
  scopes: string;
  redirectPath: string;
}

export interface ConsoleConfig {
  /** Where the API is; "" means the console's own origin. */
  apiBase: string;
  oidc: OidcConfig | null;
  /** Whether a token in the address's fragment signs in: quota-local's console only. */
  fragmentSignIn: boolean;
}

export interface Session {
  token: string;
  sub: string;
  scopes: string[];
  /** The org an org-bound token may touch, or null. */
  orgId: string | null;
  /** Whether the token may change things (quota:admin, with or without a provider's prefix). */
  admin: boolean;
  /** Seconds since the epoch, or null when the token says nothing. */
  expiresAt: number | null;
}

const TOKEN = "quota-console.token";
const PKCE = "quota-console.pkce";

/** The console's settings; when they cannot be read, no way to sign in (failing closed). */
export async function loadConfig(): Promise<ConsoleConfig> {
  try {
    const res = await fetch("./config.json", { headers: { accept: "application/json" }, cache: "no-store" });
    if (!res.ok) return { apiBase: "", oidc: null, fragmentSignIn: false };
    const body = (await res.json()) as Partial<ConsoleConfig>;
    return {
      apiBase: typeof body.apiBase === "string" ? body.apiBase : "",
      oidc: body.oidc ?? null,
      fragmentSignIn: body.fragmentSignIn === true,
    };
  } catch {
    return { apiBase: "", oidc: null, fragmentSignIn: false };
  }
}

function base64UrlDecode(part: string): string {
  const padded = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** What the console reads from the token: who, which scopes (`scope` or `scp`, a string or an array), which org. */
export function parseToken(token: string): Session | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(base64UrlDecode(payload)) as Record<string, unknown>;
  } catch {
    return null;
  }
  const raw = claims.scope ?? claims.scp;
  const scopes = (Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(" ") : []).filter(
    (s): s is string => typeof s === "string" && s !== "",
  );
  // Cognito prefixes scopes with its resource server ("quota/quota:admin").
  const has = (scope: string) => scopes.some((s) => s === scope || s.endsWith(`/${scope}`));
  const orgId = typeof claims.org_id === "string" && claims.org_id !== "" && claims.org_id !== "null" ? claims.org_id : null;
  return {
    token,
    sub: typeof claims.sub === "string" ? claims.sub : "",
    scopes,
    orgId,
    admin: has("quota:admin") && orgId === null,
    expiresAt: typeof claims.exp === "number" ? claims.exp : null,
  };
}

export function currentSession(): Session | null {
  const token = sessionStorage.getItem(TOKEN);
  const session = token ? parseToken(token) : null;
  if (session && session.expiresAt !== null && session.expiresAt * 1000 <= Date.now()) {
    signOut();
    return null;
  }
  return session;
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN);
}

/**
 * Takes a token from the address: `#access_token=…` (only where the
 * settings say so: quota-local), or `?code=…&state=…` (the PKCE redirect).
 * Either is removed from the address bar. Anywhere else a fragment token is
 * ignored: a link carrying someone else's token must not sign anyone in as
 * them (nothing ties it to a sign-in this tab began). Throws when a code
 * cannot be exchanged.
 */
export async function completeSignIn(config: ConsoleConfig): Promise<void> {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromFragment = hash.get("access_token");
  if (fromFragment) {
    history.replaceState(null, "", location.pathname + location.search);
    if (config.fragmentSignIn) sessionStorage.setItem(TOKEN, fromFragment);
    return;
  }
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  const error = query.get("error");
  if ((!code && !error) || !config.oidc) return;
  history.replaceState(null, "", location.pathname + location.hash);
  if (error) throw new Error(`${error}: ${query.get("error_description") ?? ""}`.trim());
  const pending = JSON.parse(sessionStorage.getItem(PKCE) ?? "null") as { verifier: string; state: string; back: string } | null;
  sessionStorage.removeItem(PKCE);
  if (!pending || pending.state !== query.get("state") || !code) throw new Error("the sign-in answer does not match the request (state)");
  const endpoints = await discover(config.oidc);
  const res = await fetch(endpoints.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.oidc.clientId,
      code,
      redirect_uri: redirectUri(config.oidc),
      code_verifier: pending.verifier,
    }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string };
  if (!res.ok || !body.access_token) throw new Error(`token exchange failed: ${body.error ?? `HTTP ${res.status}`}`);
  sessionStorage.setItem(TOKEN, body.access_token);
  if (pending.back) history.replaceState(null, "", location.pathname + pending.back);
}

/** Sends the browser to the issuer's sign-in page (authorization code + PKCE). */
export async function startSignIn(oidc: OidcConfig): Promise<void> {
  const endpoints = await discover(oidc);
  const verifier = base64Url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64Url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state, back: location.hash }));
  const url = new URL(endpoints.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(oidc),
    scope: oidc.scopes,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

function redirectUri(oidc: OidcConfig): string {
  return new URL(oidc.redirectPath, location.origin).toString();
}

async function discover(oidc: OidcConfig): Promise<{ authorization_endpoint: string; token_endpoint: string }> {
  const res = await fetch(`${oidc.authority.replace(/\/+$/, "")}/.well-known/openid-configuration`, { headers: { accept: "application/json" } });
  if (!res.ok) throw new Error(`the issuer's discovery document: HTTP ${res.status}`);
  return (await res.json()) as { authorization_endpoint: string; token_endpoint: string };
}
