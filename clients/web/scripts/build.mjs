// Builds, with esbuild:
//   dist/components/quota-components.js  the five web components (ESM, minified)
//   dist/console/{index.html,console.js,console.css}  the operator console (committed:
//                                         the stack compiles these files in)
//
//   node scripts/build.mjs           build into dist/
//   node scripts/build.mjs --check   build into a scratch directory and fail when the
//                                    committed dist/console/ differs from it
//
// The TypeScript client is bundled from its source (clients/typescript/src), so
// the build needs neither its dist nor a link in node_modules.
import { build } from "esbuild";
import { cpSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "quota-web-build-")) : join(root, "dist");

/** @type {import("esbuild").BuildOptions} */
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  alias: { "@quota-service/client": join(root, "../typescript/src/index.ts") },
};

try {
  rmSync(join(out, "components"), { recursive: true, force: true });
  rmSync(join(out, "console"), { recursive: true, force: true });
  await build({ ...common, entryPoints: [join(root, "src/components/index.ts")], outfile: join(out, "components/quota-components.js") });
  await build({
    ...common,
    entryPoints: { console: join(root, "src/console/main.ts") },
    outdir: join(out, "console"),
  });
  await build({ ...common, entryPoints: [join(root, "src/console/console.css")], outfile: join(out, "console/console.css"), format: undefined });
  mkdirSync(join(out, "console"), { recursive: true });
  cpSync(join(root, "src/console/index.html"), join(out, "console/index.html"));

  if (check) {
    const fresh = join(out, "console");
    const committed = join(root, "dist/console");
    const names = (/** @type {string} */ dir) => {
      try {
        return readdirSync(dir).sort();
      } catch {
        return [];
      }
    };
    const all = [...new Set([...names(fresh), ...names(committed)])].sort();
    const stale = all.filter((name) => {
      try {
        return !readFileSync(join(fresh, name)).equals(readFileSync(join(committed, name)));
      } catch {
        return true;
      }
    });
    if (stale.length > 0) {
      console.error(`dist/console/ is not what the build makes (${stale.join(", ")}): run \`npm run build\` in clients/web and commit dist/console/`);
      process.exitCode = 1;
    } else {
      console.log(`dist/console/ is what the build makes (${all.join(", ")})`);
    }
  }
} finally {
  if (check) rmSync(out, { recursive: true, force: true });
}
