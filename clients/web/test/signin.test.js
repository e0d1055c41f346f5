// Signing in on AWS: the authorization code flow with PKCE against the
// issuer that config.json names. The issuer here is a stand-in answered by
// the browser's own request interception (nothing leaves the machine): it
// checks what a real one checks (client, redirect, state, S256 challenge
// against the verifier) and hands out a token quota-local accepts.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";
import { BASE_URL, launch, token, watchErrors } from "./helpers.js";

/** @type {Awaited<ReturnType<typeof launch>>} */
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const ISSUER = "https://127.0.0.1:9/idp";
const OIDC = { authority: ISSUER, clientId: "console-client", scopes: "openid quota:read quota:admin", redirectPath: "/console/" };
const CORS = { "access-control-allow-origin": "*", "content-type": "application/json" };

/** @param {Buffer} bytes */
const base64Url = (bytes) => bytes.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/**
 * A page whose config.json names the stand-in issuer, which it also answers.
 * @param {string} accessToken what the token endpoint hands out
 * @param {{ forgeState: boolean }} [options] forgeState: the issuer answers with another state than it was sent
 */
async function withIssuer(accessToken, options = { forgeState: false }) {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  /** @type {{ authorize: URLSearchParams | null, token: URLSearchParams | null }} */
  const seen = { authorize: null, token: null };
  await page.route(`${BASE_URL}/console/config.json`, (route) =>
    route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ apiBase: "", oidc: OIDC }) }),
  );
  await page.route(`${ISSUER}/**`, async (route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (url.pathname === "/idp/.well-known/openid-configuration") {
      await route.fulfill({
        status: 200,
        headers: CORS,
        body: JSON.stringify({ issuer: ISSUER, authorization_endpoint: `${ISSUER}/authorize`, token_endpoint: `${ISSUER}/token` }),
      });
    } else if (url.pathname === "/idp/authorize") {
      seen.authorize = url.searchParams;
      const state = options.forgeState ? "forged" : (url.searchParams.get("state") ?? "");
      await route.fulfill({ status: 302, headers: { location: `${BASE_URL}/console/?code=code-123&state=${encodeURIComponent(state)}` } });
    } else if (url.pathname === "/idp/token" && request.method() === "POST") {
      const form = new URLSearchParams(request.postData() ?? "");
      seen.token = form;
      const challenge = seen.authorize?.get("code_challenge");
      const verifier = form.get("code_verifier") ?? "";
      const valid =
        form.get("grant_type") === "authorization_code" &&
        form.get("code") === "code-123" &&
        form.get("client_id") === OIDC.clientId &&
        form.get("redirect_uri") === `${BASE_URL}/console/` &&
        base64Url(createHash("sha256").update(verifier).digest()) === challenge;
      await route.fulfill(
        valid
          ? { status: 200, headers: CORS, body: JSON.stringify({ access_token: accessToken, token_type: "Bearer", expires_in: 3600 }) }
          : { status: 400, headers: CORS, body: JSON.stringify({ error: "invalid_grant" }) },
      );
    } else {
      await route.fulfill({ status: 404, headers: CORS, body: "{}" });
    }
  });
  return { page, errors, seen };
}

test("authorization code with PKCE: to the issuer and back, signed in, the code gone from the address", async () => {
  const { page, errors, seen } = await withIssuer(token("quota:admin", "", "cognito-user"));
  await page.goto(`${BASE_URL}/console/`);
  await page.getByRole("heading", { name: "Sign in to the quota console" }).waitFor();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Signed in as cognito-user · Admin").waitFor();
  await page.getByRole("heading", { name: "Organizations", level: 1 }).waitFor();

  const authorize = /** @type {URLSearchParams} */ (seen.authorize);
  assert.equal(authorize.get("response_type"), "code");
  assert.equal(authorize.get("client_id"), OIDC.clientId);
  assert.equal(authorize.get("redirect_uri"), `${BASE_URL}/console/`);
  assert.equal(authorize.get("scope"), OIDC.scopes);
  assert.equal(authorize.get("code_challenge_method"), "S256");
  assert.match(authorize.get("code_challenge") ?? "", /^[A-Za-z0-9_-]{43}$/);
  assert.match(/** @type {URLSearchParams} */ (seen.token).get("code_verifier") ?? "", /^[A-Za-z0-9_-]{43,128}$/);
  assert.equal(new URL(page.url()).search, "");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.pkce")), null);
  assert.deepEqual(errors, []);
  await page.close();
});

test("an answer that does not match the request (state) signs nobody in", async () => {
  // A sign-in this tab began (its verifier is waiting), answered with another state.
  const { page, seen } = await withIssuer(token(), { forgeState: true });
  await page.goto(`${BASE_URL}/console/`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Sign-in failed: the sign-in answer does not match the request (state)" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.token")), null);
  assert.equal(new URL(page.url()).search, "");
  assert.equal(seen.token, null, "the code was never exchanged");
  await page.close();
});

test("with an identity provider, a link carrying a token in its fragment signs nobody in", async () => {
  const { page, errors } = await withIssuer(token("quota:admin", "", "someone-else"));
  await page.goto(`${BASE_URL}/console/#access_token=${token("quota:admin", "", "someone-else")}`);
  await page.getByRole("heading", { name: "Sign in to the quota console" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.token")), null);
  assert(!page.url().includes("access_token"), page.url());
  assert.equal(await page.getByText("Signed in as someone-else").count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a provider's prefixed scopes (quota/quota:admin, as Cognito writes them) make an admin", async () => {
  const page = await browser.context.newPage();
  await page.goto(`${BASE_URL}/console/#access_token=${token("openid quota/quota:read quota/quota:admin", "", "prefixed")}`);
  await page.getByText("Signed in as prefixed · Admin").waitFor();
  await page.close();
});

test("a deployed console without an identity provider takes no token from a link either", async () => {
  const page = await browser.context.newPage();
  const errors = watchErrors(page);
  await page.route(`${BASE_URL}/console/config.json`, (route) =>
    route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ apiBase: "", oidc: null, fragmentSignIn: false }) }),
  );
  await page.goto(`${BASE_URL}/console/#access_token=${token("quota:admin", "", "someone-else")}`);
  await page.getByText("This console has no sign-in configured").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("quota-console.token")), null);
  assert(!page.url().includes("access_token"), page.url());
  assert.deepEqual(errors, []);
  await page.close();
});
