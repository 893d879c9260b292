// What the kill harness knows from the outside, and nothing more: the codes recipients were sent,
// which deposits and pickups a person saw acknowledged, which server commands were answered, and
// which doors may unlock right now. The oracle (kill-oracle.ts) holds the ledger to it.
import type { SimEvent } from "../src/sim/protocol.js";
import type { ReplyEnvelope } from "../src/sync/commands.js";
import type { SentCommand } from "./kill-clients.js";

/** live: sent to the recipient, never typed. typed: keys sent, the answer cut by a kill. used: its door opened (or it was revoked). */
export type CodeState = "live" | "typed" | "used";

export interface CodeRecord {
  code: string;
  parcel: string;
  compartment: string;
  state: CodeState;
  /** Seen as a notify on the sim socket, or only unsealed from parcel.deposited by the server. */
  source: "notify" | "server";
  /** The same 8 digits drawn again later for another parcel: no longer a probe of this one. */
  reissued?: boolean;
  /** The cycle in which it was seen used (its door opened, or it was revoked). */
  usedIn?: number;
}

export type ReservationState = "sent" | "acked" | "refused" | "claimed" | "cancelling" | "cancelled" | "deposited";

export interface Reservation {
  parcel: string;
  compartment: string | null;
  state: ReservationState;
}

export interface Violation {
  cycle: number;
  check: string;
  detail: string;
}

export interface Counters {
  depositsAcked: number;
  reservedDepositsAcked: number;
  pickupsAcked: number;
  wrongCodes: number;
  lockedOut: number;
  noFit: number;
  probes: number;
  reservesAcked: number;
  cancelsAcked: number;
  snapshots: number;
  commandsResent: number;
  inDoubtCodesUsed: number;
  inDoubtCodesLive: number;
  faultsCleared: number;
  remotePickups: number;
  staffRemovals: number;
  unlocks: number;
  /** Kills aimed at the start of a chosen phase (the others come at a uniformly random time). */
  aimedKills: number;
}

export class Model {
  cycle = 0;
  private current = "idle";
  private since = performance.now();
  /** Time spent in each phase of the load (ms): where a uniformly random kill is likely to land. */
  readonly phaseMs: Record<string, number> = {};
  readonly codes = new Map<string, CodeRecord>();
  readonly codeOfParcel = new Map<string, string>();
  /** Acknowledged deposits: a notify reached the recipient (or the server got parcel.deposited). */
  readonly deposits = new Map<string, { cycle: number; via: "keypad" | "reserved" | "server" }>();
  /** Acknowledged pickups ("Thank you" after the door closed), by parcel. */
  readonly pickups = new Map<string, number>();
  /** Parcels the harness's technician took out (remote pickup or staff removal), with the status they must keep. */
  readonly takenOut = new Map<string, "picked_up" | "removed">();
  readonly reservations = new Map<string, Reservation>();
  readonly snapshotSeqs: number[] = [];
  readonly violations: Violation[] = [];
  readonly counters: Counters = {
    depositsAcked: 0, reservedDepositsAcked: 0, pickupsAcked: 0, wrongCodes: 0, lockedOut: 0, noFit: 0, probes: 0,
    reservesAcked: 0, cancelsAcked: 0, snapshots: 0, commandsResent: 0, inDoubtCodesUsed: 0, inDoubtCodesLive: 0,
    faultsCleared: 0, remotePickups: 0, staffRemovals: 0, unlocks: 0, aimedKills: 0,
  };
  /** Compartments whose lock may fire now ("*": the next one, a deposit's door not yet chosen). */
  private readonly expected = new Set<string>();

  /** Where the keypad flow is: recorded at each kill. */
  get phase(): string {
    return this.current;
  }

  set phase(p: string) {
    const t = performance.now();
    this.phaseMs[this.current] = (this.phaseMs[this.current] ?? 0) + t - this.since;
    this.current = p;
    this.since = t;
    this.onPhase?.(p);
  }

  /** Told of every phase entered (an aimed kill waits for one). */
  onPhase: ((phase: string) => void) | undefined;

  violation(check: string, detail: string): void {
    this.violations.push({ cycle: this.cycle, check, detail });
  }

  expect(compartment: string): void {
    this.expected.add(compartment);
  }

  unexpect(compartment: string): void {
    this.expected.delete(compartment);
  }

  expectNothing(): void {
    this.expected.clear();
  }

  /** Every unlock on the sim socket must be one the harness asked for (relays quiet otherwise, at start too). */
  onSimEvent(e: SimEvent): void {
    if (e.ev !== "unlock") return;
    this.counters.unlocks++;
    if (this.expected.has(e.compartment)) return;
    if (this.expected.delete("*")) return void this.expected.add(e.compartment);
    this.violation("unexpected unlock", `${e.compartment} unlocked (${e.pulseMs} ms) with no flow asking for it; phase ${this.phase}`);
  }

  /** A code a recipient now holds. The notify and the sealed copy must agree. */
  learnCode(parcel: string, code: string, compartment: string, source: CodeRecord["source"]): void {
    const known = this.codeOfParcel.get(parcel);
    if (known !== undefined) {
      if (known !== code) this.violation("one code per parcel", `${parcel}: ${source} says ${code}, earlier ${known}`);
      return;
    }
    const clash = this.codes.get(code);
    if (clash) clash.reissued = true;
    // Learned from the server after the parcel was already taken out: its code is dead, and must stay so.
    const gone = this.takenOut.has(parcel) || this.pickups.has(parcel);
    this.codes.set(code, { code, parcel, compartment, state: gone ? "used" : "live", source, ...(gone ? { usedIn: this.cycle } : {}) });
    this.codeOfParcel.set(parcel, code);
  }

  depositAcked(parcel: string, code: string, compartment: string, via: "keypad" | "reserved"): void {
    this.learnCode(parcel, code, compartment, "notify");
    const rec = this.codes.get(code);
    if (rec?.parcel === parcel) rec.source = "notify";
    if (this.deposits.has(parcel)) return;
    this.deposits.set(parcel, { cycle: this.cycle, via });
    if (via === "keypad") this.counters.depositsAcked++;
    else this.counters.reservedDepositsAcked++;
  }

  pickupAcked(parcel: string): void {
    this.pickups.set(parcel, this.cycle);
    this.counters.pickupsAcked++;
  }

  markUsed(rec: CodeRecord): void {
    rec.state = "used";
    rec.usedIn = this.cycle;
  }

  liveCodes(): CodeRecord[] {
    return [...this.codes.values()].filter((c) => c.state === "live" && !c.reissued);
  }

  usedCodes(): CodeRecord[] {
    return [...this.codes.values()].filter((c) => c.state === "used" && !c.reissued);
  }

  unclaimed(): Reservation[] {
    return [...this.reservations.values()].filter((r) => r.state === "acked");
  }

  /** Replies, also those that arrive after a restart. */
  applyReply(cmd: SentCommand, reply: ReplyEnvelope): void {
    const first = cmd.replies[0]!;
    if (cmd.replies.length > 1 && first.ok && JSON.stringify(first) !== JSON.stringify(reply)) {
      this.violation("a command executes once", `${cmd.name} ${cmd.id} answered ${JSON.stringify(first)}, then ${JSON.stringify(reply)}`);
    }
    if (cmd.replies.length > 1) return;
    const parcel = cmd.args.parcel as string | undefined;
    const res = parcel ? this.reservations.get(parcel) : undefined;
    switch (cmd.name) {
      case "reserve":
        if (!res) return;
        if (reply.ok) {
          res.compartment = (reply.result as { compartment: string }).compartment;
          if (res.state === "sent") res.state = "acked";
          this.counters.reservesAcked++;
        } else if (res.state === "sent") res.state = "refused";
        return;
      case "cancel":
        if (!res) return;
        if (reply.ok) {
          res.state = "cancelled";
          this.counters.cancelsAcked++;
        } else if (res.state === "cancelling") res.state = "acked";
        return;
      case "snapshot":
        if (reply.ok) {
          this.snapshotSeqs.push((reply.result as { seq: number }).seq);
          this.counters.snapshots++;
        }
        return;
    }
  }
}
