// Shared by the tests: the running quota-local (started by scripts/test.sh),
// tokens, fresh org ids, free loopback ports, and a quota-local of a test's own.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { QuotaClient } from "@quota-service/client";

/** @param {string} name */
function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with scripts/test.sh`);
  return value;
}

export const BASE_URL = env("QUOTA_BASE_URL");
const BIN = env("QUOTA_LOCAL_BIN");

/** A token minted by `quota-local token` (HS256 with LOCAL_JWT_SECRET, as the server checks it). */
export function token(scope = "quota:admin", org = "") {
  const args = ["token", "--sub", "ts-client-tests", "--scope", scope, ...(org ? ["--org", org] : [])];
  return execFileSync(BIN, args, { encoding: "utf8" }).trim();
}

const ADMIN = token();

/** @param {Partial<import("@quota-service/client").QuotaClientOptions>} [options] */
export function adminClient(options = {}) {
  return new QuotaClient({ baseUrl: BASE_URL, token: ADMIN, ...options });
}

const RUN = `${Date.now().toString(36)}${process.pid.toString(36)}`;
let count = 0;
/** An org id no other test or run uses. */
export function newOrgId(label = "org") {
  return `ts-${label}-${RUN}-${++count}`;
}

/**
 * Creates an org and returns its id.
 * @param {import("@quota-service/client").OrgPatch} patch
 * @param {string} [label]
 */
export async function newOrg(patch, label) {
  const orgId = newOrgId(label);
  await adminClient().orgs.put(orgId, patch);
  return orgId;
}

/**
 * The service's own decision, asserted as such (not a fallback).
 * @param {import("@quota-service/client").Decision} decision
 */
export function served(decision) {
  assert.equal(decision.fallback, false, `expected the service's decision, got a fallback: ${JSON.stringify(decision)}`);
  return /** @type {import("@quota-service/client").ServiceDecision} */ (decision);
}

/** A loopback port that was free a moment ago (and is closed now). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  assert(address !== null && typeof address === "object");
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  return address.port;
}

/**
 * A quota-local of the test's own, on the same table and stack as the main
 * one (unless `env` says otherwise), so that it can be stopped.
 * @param {Record<string, string>} [env]
 */
export async function startQuotaLocal(env = {}) {
  const port = await freePort();
  const child = spawn(BIN, [], { env: { ...process.env, ...env, PORT: String(port) }, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${baseUrl}/v1/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (i >= 600 || child.exitCode !== null) {
      child.kill("SIGINT");
      throw new Error(`quota-local did not start on ${baseUrl}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baseUrl,
    async stop() {
      child.kill("SIGINT");
      await exited;
    },
  };
}
