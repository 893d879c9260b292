// The shipped daemon and lockerctl as two bundles (dist/lockerd/), built from tsc's output by
// rolldown, Vite's bundler (already installed with vitest; a dev dependency): one file per entry
// instead of ~60 ES modules, each resolved, read, compiled and linked at every start. Measured
// here: lockerd's start to ready 327 → 274 ms (median of 7, same machine, same flags). Dependencies
// in node_modules stay external (their addons, and what a Pi's npm ci installs). Modules loaded
// only on demand (the real drivers, the server link, restore, check-config) stay separate chunks,
// loaded as before. dist/lockerd/ sits at the same depth as dist/src/, so paths the code builds
// from import.meta.url (the package.json main.ts reads) are the same in both.
//   node dist/scripts/bundle.js        (npm run build runs it after tsc)
import { rmSync } from "node:fs";
import { join } from "node:path";
import { rolldown } from "rolldown";

const ROOT = new URL("../../", import.meta.url).pathname;
export const BUNDLE_DIR = join(ROOT, "dist/lockerd");

export async function bundle(): Promise<void> {
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  const build = await rolldown({
    input: { lockerd: join(ROOT, "dist/src/main.js"), lockerctl: join(ROOT, "dist/src/cli/lockerctl.js") },
    platform: "node",
    // Packages (and node: builtins) are loaded from node_modules at run time, as before.
    external: (id) => !id.startsWith(".") && !id.startsWith("/"),
    logLevel: "warn",
  });
  await build.write({ dir: BUNDLE_DIR, format: "esm", entryFileNames: "[name].js", chunkFileNames: "chunks/[name]-[hash].js" });
  await build.close();
}

await bundle();
