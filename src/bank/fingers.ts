// Fingerprints: a finger on a module's sensor is a credential like a badge. The template never
// leaves the module (drivers/readers/fingerprint); the ledger keeps only which slot of which module
// is whose (finger_slots, migration 8).
//
//   touch ─▶ module: Search ─▶ {slot, score ≥ threshold} ─▶ finger_slots (live) ─▶ active person ─▶ as a badge
//                            ─▶ no match / low score    ─▶ code.rejected (kind finger), lockout as a wrong code
//
// Enrolment (lockerctl people enroll-finger): the module's sequence (two or three touches, model,
// store in a free slot), each step on the bank's display and on the technician's terminal, then
// the slot and person.finger_enrolled in one transaction. A leaver's slots (disabled by lockerctl or
// the server's directory) are withdrawn in the transaction that disables them (person.finger_removed,
// status 'deleting'): they open nothing from that moment. The deletion on the module follows,
// retried while the module is down, and each template deleted is recorded (person.finger_deleted).
import type Database from "better-sqlite3";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
import type { FingerEnrollStep, FingerprintReader } from "../drivers/types.js";
import type { Ledger, LedgerTx, Person } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank } from "./bank.js";
import type { ChangedBy } from "./people.js";

export interface FingerSlot {
  reader: string;
  slot: number;
  person: string;
  status: "live" | "deleting";
  enrolledAt: number;
}

export interface FingersDeps {
  ledger: Ledger;
  bank: Bank;
  readers: readonly FingerprintReader[];
  now: () => number;
  log: Logger;
  /** How often slots waiting for deletion are tried again while their module does not answer. */
  retryMs?: number;
}

/** An enrolment's progress, for the display and the technician's terminal. */
export type EnrollProgress = FingerEnrollStep | { step: "stored"; slot: number };

const RETRY_MS = 30_000;

export class Fingers {
  private readonly log: Logger;
  private readonly stmt: Record<"slot" | "ofPerson" | "insert" | "withdraw" | "deleting" | "remove" | "all", Database.Statement>;
  private readonly listeners: (() => void)[] = [];
  private retry: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private enrolling = false;
  private stopped = false;

  constructor(private readonly deps: FingersDeps) {
    this.log = deps.log.child({ module: "fingers" });
    const db = deps.ledger.db;
    this.stmt = {
      slot: db.prepare("SELECT * FROM finger_slots WHERE reader = ? AND slot = ?"),
      ofPerson: db.prepare("SELECT * FROM finger_slots WHERE person_id = ? ORDER BY reader, slot"),
      insert: db.prepare("INSERT INTO finger_slots (reader, slot, person_id, status, enrolled_at) VALUES (?, ?, ?, 'live', ?)"),
      withdraw: db.prepare("UPDATE finger_slots SET status = 'deleting' WHERE reader = ? AND slot = ? AND status = 'live'"),
      deleting: db.prepare("SELECT * FROM finger_slots WHERE status = 'deleting' ORDER BY reader, slot"),
      remove: db.prepare("DELETE FROM finger_slots WHERE reader = ? AND slot = ?"),
      all: db.prepare("SELECT * FROM finger_slots ORDER BY reader, slot"),
    };
  }

  get readers(): readonly FingerprintReader[] {
    return this.deps.readers;
  }

  /** Listen to the modules (each touch) and finish deletions left from before. */
  start(onTouch: (reader: FingerprintReader, touch: { slot: number; score: number } | { rejected: string }) => void): void {
    for (const r of this.deps.readers) {
      const finger = (m: { slot: number; score: number }) => onTouch(r, m);
      const rejected = (x: { reason: string }) => onTouch(r, { rejected: x.reason });
      r.on("finger", finger);
      r.on("rejected", rejected);
      this.listeners.push(() => {
        r.off("finger", finger);
        r.off("rejected", rejected);
      });
    }
    // A person disabled anywhere (lockerctl, the server's directory): their slots go from the modules.
    this.listeners.push(
      this.deps.ledger.onCommit((evs) => {
        if (evs.some((e) => e.type === "person.finger_removed")) this.sweepSoon();
      }),
    );
    this.sweepSoon();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const off of this.listeners.splice(0)) off();
  }

  /** The person whose finger matched `slot` on `reader`, or a refused credential (counted toward the lockout). */
  personBySlot(terminal: string, reader: string, slot: number): Person {
    this.deps.bank.assertNotLockedOut(terminal);
    const row = this.stmt.slot.get(reader, slot) as SlotRow | undefined;
    const person = row?.status === "live" ? this.deps.ledger.person(row.person_id) : undefined;
    if (!person?.active) throw this.deps.bank.badAttempt(terminal, "finger", row ? "finger withdrawn" : "unknown finger");
    return person;
  }

  /** A touch the module could not match: refused like a wrong badge. */
  refuse(terminal: string, reason: string): LockerError {
    this.deps.bank.assertNotLockedOut(terminal);
    return this.deps.bank.badAttempt(terminal, "finger", reason);
  }

  slotsOf(person: string): FingerSlot[] {
    return (this.stmt.ofPerson.all(person) as SlotRow[]).map(view);
  }

  all(): FingerSlot[] {
    return (this.stmt.all.all() as SlotRow[]).map(view);
  }

  /**
   * Enrol one of `person`'s fingers on the module (the only one, or `readerName`). Resolves with the
   * slot once stored and on record; rejects with a LockerError saying why (context.reason).
   */
  async enroll(personId: string, by: ChangedBy, onStep: (s: EnrollProgress) => void, opts: { captures?: 2 | 3; reader?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<FingerSlot> {
    const person = this.deps.ledger.person(personId);
    if (!person) throw new LockerError(ErrorCode.UnknownPerson, `no person ${personId}`, { person: personId });
    if (!person.active) throw new LockerError(ErrorCode.IllegalTransition, `${personId} is disabled: enable them first`, { person: personId });
    const reader = this.reader(opts.reader);
    if (this.enrolling) throw new LockerError(ErrorCode.Busy, "an enrolment is under way: try again when it is done");
    this.enrolling = true;
    try {
      const { slot } = await reader.enroll("free", onStep, {
        ...(opts.captures ? { captures: opts.captures } : {}),
        ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      // The technician gave up (lockerctl interrupted) as the last touch was stored: not on record, so not kept.
      if (opts.signal?.aborted) {
        await reader.deleteSlots([slot]).catch((err: unknown) => this.log.warn({ err, slot }, "could not delete a cancelled enrolment"));
        throw new LockerError(ErrorCode.BadInput, "enrolment cancelled", { reason: "cancelled" });
      }
      const now = this.deps.now();
      try {
        this.deps.ledger.transact((tx) => {
          // A slot the ledger still lists (a deletion that never reached the module) is this template's now.
          this.stmt.remove.run(reader.name, slot);
          this.stmt.insert.run(reader.name, slot, personId, now);
          tx.event({ type: "person.finger_enrolled", actor: by.actor, data: { ...by.data, person: personId, reader: reader.name, slot } });
        });
      } catch (e) {
        // Not on record: the template must not stay on the module, where it would match nobody we know.
        await reader.deleteSlots([slot]).catch((err: unknown) => this.log.warn({ err, slot }, "could not delete an enrolment the ledger refused"));
        throw e;
      }
      onStep({ step: "stored", slot });
      return { reader: reader.name, slot, person: personId, status: "live", enrolledAt: now };
    } finally {
      this.enrolling = false;
    }
  }

  /** Withdraw a person's fingers (one slot, or all): they open nothing at once; the module deletes them. */
  async remove(personId: string, by: ChangedBy, slot?: number): Promise<{ withdrawn: number; deleted: number }> {
    if (!this.deps.ledger.person(personId)) throw new LockerError(ErrorCode.UnknownPerson, `no person ${personId}`, { person: personId });
    const live = (this.stmt.ofPerson.all(personId) as SlotRow[]).filter((r) => r.status === "live" && (slot === undefined || r.slot === slot));
    if (slot !== undefined && !live.length) throw new LockerError(ErrorCode.BadInput, `${personId} has no finger in slot ${slot}`);
    const withdrawn = this.deps.ledger.transact((tx) => this.withdraw(tx, live, by, "removed"));
    await this.sweep();
    const left = new Set((this.stmt.ofPerson.all(personId) as SlotRow[]).map((r) => `${r.reader}#${r.slot}`));
    return { withdrawn, deleted: live.filter((r) => !left.has(`${r.reader}#${r.slot}`)).length };
  }

  /**
   * In the transaction that disables or removes a person (bank/people.ts): their slots open nothing
   * from now on (person.finger_removed each); the modules delete them after the commit.
   */
  withdrawIn(tx: LedgerTx, personId: string, by: ChangedBy, reason: string): number {
    const live = (this.stmt.ofPerson.all(personId) as SlotRow[]).filter((r) => r.status === "live");
    return this.withdraw(tx, live, by, reason);
  }

  private withdraw(tx: LedgerTx, rows: readonly SlotRow[], by: ChangedBy, reason: string): number {
    for (const r of rows) {
      this.stmt.withdraw.run(r.reader, r.slot);
      tx.event({ type: "person.finger_removed", actor: by.actor, data: { ...by.data, person: r.person_id, reader: r.reader, slot: r.slot, reason } });
    }
    return rows.length;
  }

  private reader(name?: string): FingerprintReader {
    const readers = this.deps.readers;
    if (!readers.length) throw new LockerError(ErrorCode.HardwareUnavailable, "this bank has no fingerprint reader (a reader of type \"fingerprint\" in the hardware profile)");
    const r = name ? readers.find((x) => x.name === name) : readers[0];
    if (!r) throw new LockerError(ErrorCode.BadInput, `no fingerprint reader ${name}; this bank has ${readers.map((x) => x.name).join(", ")}`);
    if (readers.length > 1 && !name) throw new LockerError(ErrorCode.BadInput, `this bank has ${readers.length} fingerprint readers: name one (${readers.map((x) => x.name).join(", ")})`);
    return r;
  }

  private sweepSoon(): void {
    if (this.stopped) return;
    setImmediate(() => void this.sweep());
  }

  /** Delete the slots marked 'deleting' from their modules; those whose module did not answer wait for the next try. */
  private sweep(): Promise<void> {
    const run = async () => {
      if (this.stopped) return;
      clearTimeout(this.retry);
      const rows = this.stmt.deleting.all() as SlotRow[];
      let left = 0;
      for (const reader of this.deps.readers) {
        const mine = rows.filter((r) => r.reader === reader.name);
        if (!mine.length) continue;
        try {
          await reader.deleteSlots(mine.map((r) => r.slot));
        } catch (e) {
          left += mine.length;
          this.log.warn({ err: isLockerError(e) ? e.message : e, reader: reader.name, slots: mine.length }, "fingerprint slots not yet deleted from the module: trying again");
          continue;
        }
        if (this.stopped || !this.deps.ledger.db.open) return;
        try {
          this.deps.ledger.transact((tx) => {
            for (const r of mine) {
              this.stmt.remove.run(r.reader, r.slot);
              tx.event({ type: "person.finger_deleted", actor: "lockerd", data: { person: r.person_id, reader: r.reader, slot: r.slot } });
            }
          });
        } catch (e) {
          left += mine.length;
          this.log.error({ err: e }, "could not record deleted fingerprint slots");
        }
      }
      // Slots of a module this bank no longer has stay on record, opening nothing.
      if (left && !this.stopped) {
        this.retry = setTimeout(() => void this.sweep(), this.deps.retryMs ?? RETRY_MS);
        this.retry.unref?.();
      }
    };
    const next = (this.sweeping ?? Promise.resolve()).then(run, run);
    this.sweeping = next;
    return next;
  }
}

interface SlotRow {
  reader: string;
  slot: number;
  person_id: string;
  status: "live" | "deleting";
  enrolled_at: number;
}

function view(r: SlotRow): FingerSlot {
  return { reader: r.reader, slot: r.slot, person: r.person_id, status: r.status, enrolledAt: r.enrolled_at };
}
