// Fails when src/generated/openapi.ts is not what openapi-typescript makes of
// infra/openapi.yaml today (then run `npm run generate` and commit the result).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const committed = join(root, "src/generated/openapi.ts");
const dir = mkdtempSync(join(tmpdir(), "quota-client-gen-"));
try {
  const fresh = join(dir, "openapi.ts");
  const cli = join(root, "node_modules/openapi-typescript/bin/cli.js");
  execFileSync(process.execPath, [cli, join(root, "../../infra/openapi.yaml"), "--output", fresh], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (readFileSync(fresh, "utf8") === readFileSync(committed, "utf8")) {
    console.log("generated types match infra/openapi.yaml");
  } else {
    console.error("src/generated/openapi.ts is stale: run `npm run generate` in clients/typescript and commit it");
    spawnSync("diff", ["-u", committed, fresh], { stdio: "inherit" });
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
