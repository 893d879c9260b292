// System tools the tests use. Each one is installed by scripts/test-deps.sh (npm test runs it as
// `pretest`; CI through .ci/run), so a missing one is a broken machine, not a reason to skip: the
// test fails and says which command installs it.
import { spawnSync } from "node:child_process";

const FIX = "install the test tools: `sudo scripts/test-deps.sh` (npm test runs it first as pretest)";

/** True when `name` is on PATH (or is an executable path). */
export function hasTool(name: string): boolean {
  return spawnSync("sh", ["-c", 'command -v "$1" >/dev/null 2>&1', "sh", name], { stdio: "ignore" }).status === 0;
}

/** Throws, naming the fix, when one of the tools is missing. Call it in beforeAll. */
export function requireTools(...names: string[]): void {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: ${FIX}`);
}
