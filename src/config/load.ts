import { readFileSync } from "node:fs";
import type { z } from "zod";
import { ErrorCode, LockerError } from "../errors.js";
import { ConfigSchema, loadRealProfile, type Config } from "./schema.js";

/** "bank.columns[0].compartments[3].size" */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || "(root)";
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      return `${formatPath(issue.path)}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    }
    return `${formatPath(issue.path)}: ${issue.message}`;
  });
}

/** Validate a parsed config object; throws LockerError(config) listing every bad field. */
export function parseConfig(raw: unknown, source = "config"): Config {
  // jitless: a config is parsed once (at start, SIGHUP, a policy); compiling zod's fast path for
  // each object schema first costs more (~10 ms at start) than the one parse it would speed up.
  const result = ConfigSchema.safeParse(raw, { jitless: true });
  if (result.success) return result.data;
  const issues = formatIssues(result.error);
  throw new LockerError(ErrorCode.Config, `${source}: ${issues.length} invalid field(s)`, { issues });
}

/** The config file, read and parsed (synchronously: a reload; the real profile must be loaded already). */
export function loadConfig(file: string): Config {
  return parseConfig(readConfigFile(file), file);
}

/** The config file at start: the real profile's schemas are loaded first when it names that profile. */
export async function loadConfigAtStart(file: string): Promise<Config> {
  const raw = readConfigFile(file);
  if ((raw as { hardware?: { profile?: unknown } } | null)?.hardware?.profile === "real") await loadRealProfile();
  return parseConfig(raw, file);
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new LockerError(ErrorCode.Config, `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? "error"})`, {
      issues: [`${file}: cannot be read`],
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LockerError(ErrorCode.Config, `${file}: not valid JSON`, { issues: [`(root): ${(e as Error).message}`] });
  }
  return raw;
}
