// The kill harness's checks: the ledger file as the kill left it (read-only, before the restart
// can repair anything), and the bank as the restart left it (before any input). Each finding is a
// Violation naming the check; kill-harness.ts documents what each one proves.
import { join } from "node:path";
import Database from "better-sqlite3";
import { SelftestResult } from "../src/admin/protocol.js";
import { AdminClient } from "../src/cli/client.js";
import { secretHash } from "../src/domain/credentials.js";
import { GENESIS_HASH, verifyChain } from "../src/domain/events.js";
import { display, type ServerLink, type SimLink } from "./kill-clients.js";
import type { Model } from "./kill-model.js";
import { toEvent } from "../src/ledger/ledger.js";

/** Where a parcel whose deposit was acknowledged may be: in its compartment, or gone out by its recipient or staff. */
const STORED_OR_LATER = new Set(["stored", "collecting", "picked_up", "removed"]);

type Row = Record<string, unknown>;


const sameJson = (a: unknown, b: unknown) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Row)[k])]));
}

export interface Oracle {
  dataDir: string;
  deviceKey: Buffer;
  model: Model;
  server: ServerLink;
}

/** The ledger right after SIGKILL, read-only. Returns the head seq. */
export function checkAfterKill(o: Oracle): number {
  const { model, server } = o;
  const v = (check: string, detail: string) => model.violation(check, detail);
  const db = new Database(join(o.dataDir, "ledger.db"), { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.pragma("integrity_check(20)") as { integrity_check: string }[]).map((r) => r.integrity_check);
    if (integrity.join() !== "ok") v("integrity_check", integrity.join("; "));

    const first = db.prepare("SELECT seq, prev_hash FROM events ORDER BY seq LIMIT 1").get() as { seq: number; prev_hash: string } | undefined;
    if (first && first.seq !== 1) v("gap-free seq", `the log starts at seq ${first.seq}: events before it are gone`);
    const rows = db.prepare("SELECT * FROM events ORDER BY seq").iterate() as IterableIterator<Row>;
    const chain = verifyChain((function* () { for (const r of rows) yield toEvent(r); })(), first?.prev_hash ?? GENESIS_HASH, first?.seq ?? 1);
    if (!chain.ok) v("hash chain, gap-free seq", `broken at seq ${chain.brokenAt}: ${chain.reason}`);
    const head = (db.prepare("SELECT max(seq) AS s FROM events").get() as { s: number | null }).s ?? 0;

    // What the server holds was published after its commit: it must be in the ledger, unchanged.
    const hashAt = db.prepare("SELECT hash FROM events WHERE seq = ?").pluck();
    for (const [seq, e] of server.events) {
      const hash = hashAt.get(seq) as string | undefined;
      if (hash === undefined) v("published events stay", `seq ${seq} (${e.type}) reached the server but is not in the ledger (head ${head})`);
      else if (hash !== e.hash) v("published events stay", `seq ${seq} (${e.type}) differs from what the server received`);
    }
    for (const r of server.rewritten.splice(0)) v("published events stay", `seq ${r.seq} sent twice with different hashes`);
    const seen = Math.max(0, ...model.snapshotSeqs);
    if (seen > head) v("acknowledged head stays", `a snapshot reply said seq ${seen}, the ledger ends at ${head}`);

    // Commands answered ok are on record with that very reply (a repeat is answered from it).
    const stored = db.prepare("SELECT reply FROM commands WHERE id = ?").pluck();
    for (const cmd of server.commands.values()) {
      const first = cmd.replies[0];
      if (!first?.ok) continue;
      const reply = stored.get(cmd.id) as string | null | undefined;
      if (reply === undefined || reply === null) v("answered commands stay", `${cmd.name} ${cmd.id} was answered ok but is not on record`);
      else if (!sameJson(JSON.parse(reply), first)) v("answered commands stay", `${cmd.name} ${cmd.id}: recorded reply differs from the one sent`);
    }

    const parcel = db.prepare("SELECT status FROM parcels WHERE id = ?").pluck();
    const deposited = db.prepare("SELECT count(*) FROM events WHERE parcel = ? AND type = 'parcel.deposited'").pluck();
    for (const [id, d] of model.deposits) {
      const status = parcel.get(id) as string | undefined;
      if (!status || !STORED_OR_LATER.has(status)) v("acknowledged deposits stay", `${id} (acknowledged in cycle ${d.cycle}, ${d.via}) is ${status ?? "missing"}`);
      if (deposited.get(id) !== 1) v("acknowledged deposits stay", `${id}: ${String(deposited.get(id))} parcel.deposited events`);
    }
    for (const [id, cycle] of model.pickups) {
      const status = parcel.get(id) as string | undefined;
      if (status !== "picked_up") v("acknowledged pickups stay", `${id} (acknowledged in cycle ${cycle}) is ${status ?? "missing"}`);
    }
    for (const [id, want] of model.takenOut) {
      const status = parcel.get(id) as string | undefined;
      if (status !== want) v("acknowledged pickups stay", `${id} taken out by the technician (${want}) is ${status ?? "missing"}`);
    }
    for (const res of model.reservations.values()) {
      const status = parcel.get(res.parcel) as string | undefined;
      if (res.state === "cancelled" && status !== "cancelled") v("answered commands stay", `reservation ${res.parcel} cancelled (acknowledged) is ${status ?? "missing"}`);
      if (["acked", "claimed", "cancelling", "deposited"].includes(res.state) && !status) v("answered commands stay", `reservation ${res.parcel} (acknowledged) is missing`);
    }

    const twice = db
      .prepare(
        `SELECT parcel, type, count(*) AS n FROM events WHERE parcel IS NOT NULL
           AND type IN ('parcel.reserved', 'parcel.deposited', 'parcel.picked_up', 'parcel.removed') GROUP BY parcel, type HAVING n > 1`,
      )
      .all() as { parcel: string; type: string; n: number }[];
    for (const t of twice) v("each step once", `${t.parcel}: ${t.n} × ${t.type}`);

    checkCodes(db, o, "after the kill", true);
    return head;
  } finally {
    db.close();
  }
}

/**
 * Every code the harness knows against the credentials table: used ones never live again, live ones
 * still live. `settle`: codes typed when the kill came take the state the ledger gives them.
 */
export function checkCodes(db: Database.Database, o: Oracle, when: string, settle: boolean): void {
  const { model } = o;
  const rows = db.prepare("SELECT status, parcel_id FROM credentials WHERE kind = 'code' AND hash = ?");
  for (const rec of model.codes.values()) {
    if (rec.reissued) continue;
    const all = rows.all(secretHash(o.deviceKey, "code", rec.code)) as { status: string; parcel_id: string | null }[];
    const live = all.find((r) => r.status === "live");
    if (live && live.parcel_id !== rec.parcel) {
      rec.reissued = true; // 8 random digits drawn again for another parcel: no longer about this one
      continue;
    }
    if (rec.state === "typed" && settle) {
      if (live) rec.state = "live";
      else model.markUsed(rec);
      if (live) model.counters.inDoubtCodesLive++;
      else model.counters.inDoubtCodesUsed++;
      continue;
    }
    if (rec.state === "used" && live) model.violation("no code valid twice", `${rec.code} of ${rec.parcel} opened its door, yet is live ${when}`);
    if (rec.state === "live" && !live) {
      const was = all.map((r) => r.status).join(",") || "absent";
      model.violation("acknowledged codes stay valid", `${rec.code} of ${rec.parcel} (${rec.source}) is ${was} ${when}`);
      model.markUsed(rec);
    }
  }
}

/** The restarted bank before any input: nothing left to pulse, doors shut, selftest clean, codes as they were. */
export async function checkAfterRestart(o: Oracle & { sim: SimLink; adminPath: string }): Promise<void> {
  const { model, sim } = o;
  const view = await sim.state();
  const busy = view.filter((c) => c.state === "loading" || c.state === "unloading");
  if (busy.length) model.violation("relays quiet after restart", `flows left to pulse after the restart: ${busy.map((c) => `${c.id} ${c.state}`).join(", ")}`);
  const open = view.filter((c) => c.door !== "closed");
  if (open.length) model.violation("relays quiet after restart", `doors not shut after the restart: ${open.map((c) => `${c.id} ${c.door}`).join(", ")}`);

  const admin = await AdminClient.connect(o.adminPath);
  try {
    const r = SelftestResult.parse(await admin.request("selftest", {}, "kill-harness"));
    for (const c of r.checks) if (!c.ok) model.violation(`selftest: ${c.name}`, c.detail);
  } finally {
    admin.close();
  }

  const db = new Database(join(o.dataDir, "ledger.db"), { readonly: true, fileMustExist: true });
  try {
    checkCodes(db, o, "after the restart", false);
  } finally {
    db.close();
  }
}

/** Type used codes at the keypad: each must be refused, and no lock may fire (the unlock monitor). */
export async function probeUsedCodes(sim: SimLink, model: Model, codes: readonly string[]): Promise<void> {
  for (let i = 0, waits = 0; i < codes.length; i++) {
    const code = codes[i]!;
    model.phase = "probe";
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    const answer = await sim.waitFor<"display">((e) => ["open", "not valid", "Too many", "faulty", "unavailable"].some((t) => display(t)(e)), { from: m, what: "answer to a used code" });
    const text = answer.lines.join(" | ");
    if (/Too many/.test(text) && !/not valid/.test(text)) {
      // Locked out: refused unchecked, which proves nothing. Wait, then type it again.
      model.counters.lockedOut++;
      await new Promise((r) => setTimeout(r, 1100));
      if (++waits <= 5) i--;
      continue;
    }
    model.counters.probes++;
    if (/not valid/.test(text)) continue;
    model.violation("no code valid twice", `used code ${code} answered "${text}"`);
    const door = /Door ([A-Z][0-9]{2}) open/.exec(text)?.[1];
    if (!door) continue;
    await sim.waitFor((e) => e.ev === "door" && e.compartment === door && e.state === "open", { from: m, what: `door ${door} open` });
    sim.send({ op: "door", compartment: door, state: "closed" });
  }
}
