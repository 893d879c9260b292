// `lockerd --check-config [--data DIR]`: what a start would check, without starting. The config
// (already parsed by then), the files and keys it names, its sensors, the channel map, and, with a
// data directory, the layout plan a start would apply to that ledger (bank/layout.ts), computed on
// a read-only view of it: nothing is migrated, written or created there, and it works while a
// lockerd runs on it. Exit 0 when a start would go ahead and apply the plan, 78 when something is
// refused or a check failed.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describePlan, layoutChanges, planLayout, readLayoutState, specOf, type LayoutPlan } from "./bank/layout.js";
import { channelMap, sensorWarnings } from "./config/checks.js";
import { compartmentIds, type Config } from "./config/schema.js";
import { verifyChain } from "./domain/events.js";
import { checkDataDir, keyFingerprint, META_BANK, META_KEY, type BankIdentity } from "./ledger/datadir.js";
import { toEvent } from "./ledger/ledger.js";
import { MIGRATIONS } from "./ledger/migrations.js";
import { openLedgerReadOnly } from "./ledger/readonly.js";
import { Sealer, SignatureVerifier } from "./sync/seal.js";

type Level = "ok" | "warn" | "FAIL";
interface Check {
  level: Level;
  text: string;
}

export interface CheckReport {
  /** A start would go ahead: no check failed, nothing refused. */
  ok: boolean;
  text: string;
}

/** The broker password and TLS files (read at start when sync is enabled), and the server's keys. */
function syncChecks(config: Config): Check[] {
  const s = config.sync;
  const out: Check[] = [];
  const files = [
    ["passwordFile", s.passwordFile, "text"],
    ["tls.ca", s.tls?.ca, "certificate"],
    ["tls.cert", s.tls?.cert, "certificate"],
    ["tls.key", s.tls?.key, "key"],
  ].filter((f): f is [string, string, string] => f[1] !== undefined);
  if (!s.enabled) {
    out.push({ level: "ok", text: `sync disabled${files.length ? `: ${files.map(([n]) => `sync.${n}`).join(", ")} not read (a start reads them only with sync.enabled)` : ""}` });
  }
  for (const [name, path, kind] of s.enabled ? files : []) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      out.push({ level: "FAIL", text: `sync.${name}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      continue;
    }
    try {
      if (kind === "certificate") new X509Certificate(bytes);
      if (kind === "key") createPrivateKey(bytes);
      out.push({ level: "ok", text: `sync.${name}: ${path} readable${kind === "text" ? "" : `, a PEM ${kind}`}` });
    } catch {
      out.push({ level: "FAIL", text: `sync.${name}: ${path} is not a PEM ${kind === "key" ? "private key" : kind}` });
    }
  }
  const keys: [string, string | undefined, (k: string) => unknown][] = [
    ["serverPublicKey", s.serverPublicKey, (k) => new SignatureVerifier(k)],
    ["sealKey", s.sealKey, (k) => new Sealer(k)],
  ];
  for (const [name, key, use] of keys) {
    if (key === undefined) continue;
    try {
      use(key);
      out.push({ level: "ok", text: `sync.${name}: a valid public key` });
    } catch (e) {
      out.push({ level: "FAIL", text: `sync.${name}: ${(e as Error).message}` });
    }
  }
  if (s.enabled && !s.sealKey) out.push({ level: "warn", text: "sync.sealKey not set: pickup codes cannot reach the server" });
  return out;
}

function channelLines(config: Config): string[] {
  const rows = channelMap(config);
  if (config.hardware.profile !== "real") return rows.map((r) => `  ${r.compartment}  lock ${r.lock}, door input ${r.lock} (simulated)`);
  return rows.map(
    (r) =>
      `  ${r.compartment}  lock ${r.lock} → ${r.lockBoard ?? "no board"}; door input → ${r.doorBoard ?? "no board"}${r.itemBoard ? `; item sensor → ${r.itemBoard}` : ""}`,
  );
}

/** The plan against the data directory's ledger, read only; or why it could not be computed. */
function planAgainst(config: Config, dataDir: string): { checks: Check[]; plan?: LayoutPlan; source: string } {
  const file = join(dataDir, "ledger.db");
  const configured = compartmentIds(config.bank.columns).map(specOf);
  let fresh: boolean;
  let marker: BankIdentity | undefined;
  try {
    ({ fresh, identity: marker } = checkDataDir(dataDir));
  } catch (e) {
    return { checks: [{ level: "FAIL", text: `data directory: ${(e as Error).message}` }], source: file };
  }
  if (fresh) return { checks: [{ level: "ok", text: `data directory ${dataDir}: no bank yet (a start creates one)` }], plan: planLayout(configured, undefined, { compartments: [], parcels: [] }), source: `${file} (not there yet: an empty ledger)` };
  let db;
  try {
    db = openLedgerReadOnly(file);
  } catch (e) {
    return { checks: [{ level: "FAIL", text: `${file}: cannot be read: ${(e as Error).message}` }], source: file };
  }
  try {
    const checks: Check[] = [];
    db.pragma("busy_timeout = 2000"); // a running lockerd may be mid-commit
    const rows = db.pragma("quick_check(20)") as { quick_check: string }[];
    const quick = rows.map((r) => r.quick_check).join("; ");
    if (quick !== "ok") return { checks: [{ level: "FAIL", text: `${file} is damaged (quick_check: ${quick}): a start refuses it (exit 73)` }], source: file };
    const schema = db.pragma("user_version", { simple: true }) as number;
    if (schema > MIGRATIONS.length) {
      return { checks: [{ level: "FAIL", text: `${file} has ledger schema ${schema}, newer than this lockerd (${MIGRATIONS.length}): a start refuses it` }], source: file };
    }
    checks.push({ level: "ok", text: `${file}: quick_check ok, schema ${schema}${schema < MIGRATIONS.length ? ` (a start migrates it to ${MIGRATIONS.length})` : ""}` });
    const identity = identityProblem(db, dataDir, marker);
    checks.push(identity ? { level: "FAIL", text: `${identity}: a start refuses it (exit 73)` } : { level: "ok", text: "device.key, bank.json and the ledger are one bank's; the custody chain's tail verifies" });
    const state = readLayoutState(db);
    if (state.appliedProblem) checks.push({ level: "warn", text: state.appliedProblem });
    if (!state.applied && state.compartments.length) checks.push({ level: "ok", text: "no record of the last applied layout: the ledger counts as the last applied (the config wins where it differs)" });
    return { checks, plan: planLayout(configured, state.applied, state), source: `${file} (read only)` };
  } finally {
    db.close();
  }
}

/** What a start's identity check (Runtime.confirmIdentity) would refuse, read only; undefined when nothing. */
function identityProblem(db: ReturnType<typeof openLedgerReadOnly>, dataDir: string, marker: BankIdentity | undefined): string | undefined {
  const meta = (key: string) => (db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined)?.value;
  const bank = meta(META_BANK);
  if (bank !== undefined && marker !== undefined && marker.bank !== bank) return `${dataDir}: ledger.db belongs to bank ${bank}, but this directory held bank ${marker.bank}`;
  let key: Buffer;
  try {
    key = readFileSync(join(dataDir, "device.key"));
  } catch (e) {
    return `${dataDir}/device.key cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  const onRecord = meta(META_KEY) ?? marker?.keyFingerprint;
  if (onRecord !== undefined && onRecord !== keyFingerprint(key)) return `${dataDir}: device.key does not belong to this ledger`;
  const tail = (db.prepare("SELECT * FROM events ORDER BY seq DESC LIMIT 1000").all() as Record<string, unknown>[]).map(toEvent).reverse();
  const check = tail.length ? verifyChain(tail, tail[0]!.prevHash, tail[0]!.seq) : { ok: true as const };
  if (!check.ok) return `${dataDir}: the custody chain does not verify at seq ${check.brokenAt} (${check.reason})`;
  return undefined;
}

export function checkConfig(configFile: string, config: Config, dataDir: string | undefined): CheckReport {
  const layout = compartmentIds(config.bank.columns);
  const count = new Map<string, number>();
  for (const c of layout) count.set(c.size, (count.get(c.size) ?? 0) + 1);
  const sizes = [...count].map(([size, n]) => `${n} ${size}`);
  const checks: Check[] = [{ level: "ok", text: "schema: every field valid" }, ...syncChecks(config), ...sensorWarnings(config).map((text): Check => ({ level: "warn", text }))];
  const planned = dataDir === undefined ? undefined : planAgainst(config, dataDir);
  if (planned) checks.push(...planned.checks);
  const failed = checks.some((c) => c.level === "FAIL");
  const refused = !!planned?.plan?.refused.length;
  const ok = !failed && !refused;
  const lines = [
    `${configFile}: ${ok ? "OK" : "NOT OK"} — ${config.device.site}/${config.device.id}, ${layout.length} compartments (${sizes.join(", ")}), hardware ${config.hardware.profile}`,
    "",
    "channels (compartment → lock channel, door input):",
    ...channelLines(config),
    "",
    "checks:",
    ...checks.map((c) => `  ${c.level.padEnd(4)}  ${c.text}`),
    "",
  ];
  if (!planned) {
    lines.push("layout plan: not computed (no --data: the config alone was checked; give --data DIR to see what a start would change in that ledger)");
  } else if (!planned.plan) {
    lines.push(`layout plan against ${planned.source}: not computed (see the checks above)`);
  } else {
    const plan = planned.plan;
    lines.push(`layout plan against ${planned.source}:`);
    const items = describePlan(plan);
    lines.push(...(items.length ? items.map((l) => `  ${l}`) : ["  no change: the ledger has the config's layout"]));
  }
  const plan = planned?.plan;
  const applies = plan && layoutChanges(plan) ? `applies ${plan.added.length} added, ${plan.retired.length} retired, ${plan.changed.length} changed, ${plan.reactivated.length} reactivated` : "changes no compartment";
  lines.push(
    "",
    refused
      ? "result: REFUSED — a start would exit 78 and apply nothing (a SIGHUP would log the refusal and keep the old layout)"
      : failed
        ? "result: NOT OK — a check failed (above)"
        : plan
          ? `result: OK — the plan is appliable: a start (or SIGHUP) ${applies}`
          : "result: OK — config checked; layout plan not computed",
  );
  return { ok, text: `${lines.join("\n")}\n` };
}
