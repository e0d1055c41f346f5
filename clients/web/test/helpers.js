// Shared by the browser tests: the quota-local that scripts/test.sh started
// (QUOTA_BASE_URL), tokens minted by it, the API for setting up orgs, the
// system Chromium driven by playwright-core, a loopback server for the
// component pages (with the client's own usageHandler in front of
// quota-local), axe-core, and waiting for states (never fixed sleeps).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "../scripts/chromium.mjs";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** @param {string} name */
function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with scripts/test.sh`);
  return value;
}

export const BASE_URL = env("QUOTA_BASE_URL");
const BIN = env("QUOTA_LOCAL_BIN");
/** Where screenshots go (scripts/test.sh: a scratch directory, unless QUOTA_WEB_SCREENSHOTS names one). */
export const SCREENSHOTS = process.env.QUOTA_WEB_SCREENSHOTS || join(tmpdir(), "quota-web-screenshots");
mkdirSync(SCREENSHOTS, { recursive: true });

/** Generous: a slow, busy 2-core machine. */
export const TIMEOUT = 60_000;

/**
 * A token minted by `quota-local token` (HS256 with LOCAL_JWT_SECRET).
 * @param {string} [scope]
 * @param {string} [org]
 * @param {string} [sub]
 */
export function token(scope = "quota:admin", org = "", sub = "web-tests") {
  const args = ["token", "--sub", sub, "--scope", scope, ...(org ? ["--org", org] : [])];
  return execFileSync(BIN, args, { encoding: "utf8" }).trim();
}

export const ADMIN = token("quota:admin", "", "operator@example.test");

/**
 * One API call with the admin token (or `as`); answers the status and the JSON body.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{ as?: string, key?: string }} [options]
 * @returns {Promise<{ status: number, body: any }>}
 */
export async function api(method, path, body, options = {}) {
  /** @type {Record<string, string>} */
  const headers = { authorization: `Bearer ${options.as ?? ADMIN}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (options.key) headers["idempotency-key"] = options.key;
  const res = await fetch(`${BASE_URL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
export async function ok(method, path, body) {
  const res = await api(method, path, body);
  assert(res.status >= 200 && res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const RUN = Math.random().toString(36).slice(2, 8);
let count = 0;
/** An org id no other test or run uses (short: it shows in the screenshots). */
export function newOrgId(label = "org") {
  return `${label}-${RUN}${++count}`;
}

/**
 * Creates an org, consumes `use` ({resource: amount}) and answers its id.
 * @param {string} label
 * @param {Record<string, unknown>} profile
 * @param {Record<string, number>} [use]
 */
export async function newOrg(label, profile, use = {}) {
  const orgId = newOrgId(label);
  await ok("PUT", `/v1/orgs/${orgId}`, profile);
  for (const [resource, amount] of Object.entries(use)) {
    await ok("POST", `/v1/orgs/${orgId}/usage/${resource}/consume`, { amount });
  }
  return orgId;
}

/** @param {string} orgId */
export const usageOf = (orgId) => ok("GET", `/v1/orgs/${orgId}/usage`);

/**
 * The system Chromium (Debian's), headless, with its background networking
 * off and a profile of its own; only loopback is ever contacted (host names
 * other than 127.0.0.1 do not resolve).
 */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "quota-web-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    locale: "en-GB",
    timezoneId: "Europe/Copenhagen",
    reducedMotion: "reduce",
  });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT);
  // Nothing but loopback, whatever a page asks for (a test may route more itself).
  await context.route(/^(?!http:\/\/127\.0\.0\.1[:/])/, (route) => route.abort("blockedbyclient"));
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Collects what a page says went wrong: uncaught errors and console errors
 * (a Content-Security-Policy refusal among them).
 * @param {import("playwright-core").Page} page
 */
export function watchErrors(page) {
  /** @type {string[]} */
  const errors = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

/**
 * Retries `check` until it passes or `timeout` runs out (then throws its last failure).
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {number} [timeout]
 * @returns {Promise<T>}
 */
export async function eventually(check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let delay = 25;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 500);
  }
}

/**
 * A progressbar's figures, as assistive technology reads them.
 * @param {import("playwright-core").Locator} bar
 */
export async function barValues(bar) {
  await bar.waitFor({ state: "visible" });
  return {
    now: Number(await bar.getAttribute("aria-valuenow")),
    max: Number(await bar.getAttribute("aria-valuemax")),
    min: Number(await bar.getAttribute("aria-valuemin")),
  };
}

const AXE = readFileSync(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core in the page (evaluated, so the page's CSP does not stop it),
 * and answers the serious and critical violations.
 * @param {import("playwright-core").Page} page
 */
export async function axeViolations(page) {
  await page.evaluate(AXE);
  const results = await page.evaluate(async () => {
    // What the evaluated script defined.
    const axe = /** @type {any} */ (window).axe;
    const run = await axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((/** @type {any} */ v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((/** @type {any} */ n) => n.target.join(" ")).slice(0, 5),
    }));
  });
  return results.filter((/** @type {{ impact: string }} */ v) => v.impact === "serious" || v.impact === "critical");
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} label
 */
export async function assertAccessible(page, label) {
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${label}: axe found serious or critical violations:\n${JSON.stringify(violations, null, 2)}`);
}

/**
 * Saves a screenshot under SCREENSHOTS (a whole page with `fullPage`).
 * @param {import("playwright-core").Page | import("playwright-core").Locator} target
 * @param {string} name
 * @param {{ fullPage?: boolean }} [options]
 */
export async function screenshot(target, name, options = {}) {
  const path = join(SCREENSHOTS, `${name}.png`);
  if ("goto" in target) await target.screenshot({ path, animations: "disabled", fullPage: options.fullPage ?? false });
  else await target.screenshot({ path, animations: "disabled" });
}

/** The TypeScript client, built from its source for Node (its usageHandler serves the component pages). */
async function loadClient() {
  const dir = mkdtempSync(join(tmpdir(), "quota-web-client-"));
  const outfile = join(dir, "client.mjs");
  await build({
    entryPoints: [join(ROOT, "../typescript/src/index.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    logLevel: "error",
  });
  try {
    return /** @type {any} */ (await import(pathToFileURL(outfile).href));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The React test page, bundled (react, react-dom and the components). */
async function bundleReactPage() {
  const result = await build({
    entryPoints: [join(ROOT, "test/pages/react-app.js")],
    bundle: true,
    format: "esm",
    target: "es2022",
    write: false,
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    alias: { "@quota-service/client": join(ROOT, "../typescript/src/index.ts") },
    logLevel: "error",
  });
  return result.outputFiles[0]?.text ?? "";
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".json": "application/json" };

/**
 * A loopback server for the component pages:
 *   /pages/<name>.html        test/pages/
 *   /quota-components.js      dist/components/ (what `npm run build` made)
 *   /react-app.js             the React page's bundle
 *   /api/quota/…              the client's usageHandler, in front of quota-local,
 *                             for the org named by the `org` cookie (the app's "session")
 */
export async function startPageServer() {
  const { QuotaClient, usageHandler } = await loadClient();
  const handler = usageHandler({
    client: new QuotaClient({ baseUrl: BASE_URL, token: token("quota:read", "", "web-tests-app") }),
    resolveOrgId: (/** @type {Request} */ request) => /(?:^|;\s*)org=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1],
  });
  const react = await bundleReactPage();
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      try {
        if (url.pathname.startsWith("/api/quota/")) {
          const headers = new Headers();
          for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
          const response = await handler(new Request(new URL(url.pathname + url.search, "http://127.0.0.1"), { method: req.method, headers }));
          res.writeHead(response.status, Object.fromEntries(response.headers));
          res.end(await response.text());
          return;
        }
        /** @type {string | null} */
        let file = null;
        let body = null;
        if (url.pathname === "/quota-components.js") file = join(ROOT, "dist/components/quota-components.js");
        else if (url.pathname === "/react-app.js") body = react;
        else if (/^\/pages\/[\w-]+\.html$/.test(url.pathname)) file = join(ROOT, "test", url.pathname);
        if (file === null && body === null) {
          res.writeHead(404).end("not found");
          return;
        }
        const type = TYPES[/** @type {keyof typeof TYPES} */ (extname(file ?? url.pathname))] ?? "application/octet-stream";
        res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
        res.end(body ?? readFileSync(/** @type {string} */ (file)));
      } catch (err) {
        res.writeHead(500).end(String(err));
      }
    })();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  assert(address !== null && typeof address === "object");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}
