// Commands from the central server: decode (zod), check signature and validity window, execute once, reply.
//
//   cmd/<name> bytes ─▶ decodeCommand ─▶ repeat? ─▶ signed? ─▶ id reused? ─▶ in its window? ─▶ execute ─▶ reply
//                        (bad_input,      (first     (unauthorized (bad_input)  (expired,
//                         unknown_command, reply)     + alarm)                   bad_input: lifetime)
//                         payload_too_large)
//
// Replay: a command is valid from issuedAt to expiresAt (issuedAt + sync.maxCommandLifetimeS when
// left out), each end widened by sync.clockSkewS, and never longer than the maximum. Its id is kept
// at least until that window has closed, so a captured command meets its id or its expiry, never
// neither. A repeat must be the same command (digest): the same id with another payload is refused.
// A signed command refused for any of these raises alarm.unauthorized_command.
//
// Idempotency: the command id is inserted in the same transaction as the change it makes, with the
// reply, so a repeat — also after a restart — never executes twice. `open` waits for the door: its
// id is committed first ("executing"), the reply written when the door opened or the lock gave up;
// after a crash in between, a repeat is answered from the events the open left (openOutcome). A
// transient refusal (busy, hardware) is not remembered, so the server may retry with the same id; a
// definitive one is. Every event a command causes carries data.command = its id (Ledger.causedBy).
import { createHash } from "node:crypto";
import type { RemoteOps } from "../bank/remote.js";
import type { Bank } from "../bank/bank.js";
import type { OpenResult } from "../bank/actuation.js";
import type { OpenReport } from "../bank/technician.js";
import { DEFAULT_COMMAND_LIFETIME_S } from "../config/schema.js";
import { holdOf } from "../domain/compartment.js";
import { ErrorCode, isLockerError, isTransient, LockerError } from "../errors.js";
import type { Compartment, Ledger, LedgerTx, StoredCommand } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import {
  canonicalCommand,
  decodeCommand,
  MAX_REPLAY_LIMIT,
  REPLAY_INTERVAL_MS,
  requiresSignature,
  type Command,
  type CommandName,
  type CompartmentSnapshot,
  type StateMessage,
} from "./contract.js";
import type { SignatureVerifier } from "./seal.js";

type ErrorBody = { code: ErrorCode; message: string; retryAfterMs?: number };
export type ReplyEnvelope = { id: string; ok: true; result: unknown } | { id: string | null; ok: false; error: ErrorBody };

/** data.reason of alarm.unauthorized_command (the link adds "retained": a command delivered retained). */
export type UnauthorizedReason = "unsigned" | "signature" | "expired" | "future" | "lifetime" | "replayed";

export interface CommandRouterDeps {
  ledger: Ledger;
  bank: Bank;
  remote: RemoteOps;
  site: string;
  device: string;
  /** When set, SIGNED_COMMANDS need a valid Ed25519 `sig`, and any `sig` must verify. */
  verifier?: SignatureVerifier | undefined;
  clockSkewMs: number;
  /** maxCommandLifetimeMs(config.sync); DEFAULT_COMMAND_LIFETIME_S when not given. */
  maxCommandLifetimeMs?: number | undefined;
  now: () => number;
  /**
   * The bank's clock (sync/clock.ts). While it is not synchronized, a command's window is judged
   * against what the bank knows for sure (outOfWindowUnsynced); without it, the clock is trusted.
   */
  clock?: { unsynced(): boolean; lowerBound(): number | undefined; check?(): unknown } | undefined;
  log: Logger;
  /** Re-publish events (replay) on the events topic. */
  replay: (fromSeq: number, limit: number) => number;
  /** Publish the retained state now (snapshot). */
  publishState: () => void;
}

export function snapshotOf(c: Compartment): CompartmentSnapshot {
  const { held } = holdOf(c);
  return { id: c.id, size: c.size, refrigerated: c.refrigerated, accessible: c.accessible, state: c.state, enabled: c.enabled, door: c.door, since: c.since, held };
}

export function stateMessage(ledger: Ledger, now: number): StateMessage {
  return { seq: ledger.headSeq, ts: now, compartments: ledger.compartments().map(snapshotOf) };
}

/** A definitive "no" that still commits what led to it (e.g. assignment.failed with no_fit). */
class Refusal {
  constructor(readonly error: LockerError) {}
}

const iso = (t: number) => new Date(t).toISOString();
/** Scanned after an interrupted open's authorization before giving up on finding its outcome. */
const OUTCOME_SCAN = 10_000;

export class CommandRouter {
  private readonly log: Logger;
  private readonly maxLifetimeMs: number;
  /** Commands executing right now, by id: a repeat that arrives meanwhile waits for the same reply. */
  private readonly running = new Map<string, { digest: string; reply: Promise<ReplyEnvelope> }>();
  private lastReplayAt: number | undefined;

  constructor(private readonly deps: CommandRouterDeps) {
    this.log = deps.log.child({ module: "commands" });
    this.maxLifetimeMs = deps.maxCommandLifetimeMs ?? DEFAULT_COMMAND_LIFETIME_S * 1000;
  }

  /** Handle one `cmd/<name>` message. Never throws; always resolves to the reply to send. */
  async handle(name: string, payload: Uint8Array | string): Promise<ReplyEnvelope> {
    const decoded = decodeCommand(name, payload);
    if (!decoded.ok) {
      this.log.warn({ command: name, id: decoded.id, code: decoded.error.code, reason: decoded.error.message }, "command refused");
      return { id: decoded.id, ok: false, error: decoded.error };
    }
    const cmd = decoded.command;
    const digest = this.digest(cmd);
    const running = this.running.get(cmd.id);
    if (running?.digest === digest) return running.reply;
    const seen = running ? undefined : this.deps.ledger.command(cmd.id);
    if (seen && seen.name === cmd.name && (seen.digest === null || seen.digest === digest)) {
      return seen.reply ? (seen.reply as ReplyEnvelope) : this.interrupted(cmd, seen);
    }
    const refusal = this.authenticate(cmd);
    if (refusal) return refusal;
    if (running || seen) return this.reused(cmd, seen);
    const late = this.outOfWindow(cmd);
    if (late) return late;
    const reply = this.execute(cmd, digest).finally(() => this.running.delete(cmd.id));
    this.running.set(cmd.id, { digest, reply });
    return reply;
  }

  /** sha256 of what the command is: name, bank, payload and sig. A repeat has the same one. */
  private digest(cmd: Command): string {
    const { site, device } = this.deps;
    return createHash("sha256").update(canonicalCommand({ ...cmd, site, device })).update(`\n${cmd.sig ?? ""}`).digest("hex");
  }

  /** The signature, when a server key is configured: required on SIGNED_COMMANDS, and checked wherever present. */
  private authenticate(cmd: Command): ReplyEnvelope | undefined {
    const { verifier, site, device } = this.deps;
    if (!verifier) return undefined;
    if (!cmd.sig) return requiresSignature(cmd.name) ? this.refuseAndAlarm(cmd, "unsigned", ErrorCode.Unauthorized, `${cmd.name} must be signed`) : undefined;
    if (verifier.verify(canonicalCommand({ ...cmd, site, device }), cmd.sig)) return undefined;
    return this.refuseAndAlarm(cmd, "signature", ErrorCode.Unauthorized, "signature does not verify");
  }

  private reused(cmd: Command, seen: StoredCommand | undefined): ReplyEnvelope {
    const what = seen && seen.name !== cmd.name ? `for ${seen.name}` : "for another command";
    return this.refuseAndAlarm(cmd, "replayed", ErrorCode.BadInput, `command id ${cmd.id} was used ${what}: use a fresh id for every command`);
  }

  /** expiresAt, or issuedAt + the maximum lifetime when the command leaves it out. */
  private expiryOf(cmd: Command): number {
    return cmd.expiresAt ?? cmd.issuedAt + this.maxLifetimeMs;
  }

  /** The validity window, each end widened by the skew tolerance. Checked after the signature. */
  private outOfWindow(cmd: Command): ReplyEnvelope | undefined {
    const { now, clockSkewMs, clock: bankClock } = this.deps;
    bankClock?.check?.(); // a step since the last look is recorded before the command is judged
    if (bankClock?.unsynced()) return this.outOfWindowUnsynced(cmd, bankClock.lowerBound());
    const t = now();
    const expiresAt = this.expiryOf(cmd);
    const clock = `bank clock ${iso(t)}, tolerance ${clockSkewMs / 1000} s`;
    if (t > expiresAt + clockSkewMs) {
      const implied = cmd.expiresAt === undefined ? ` (issuedAt + ${this.maxLifetimeMs / 1000} s: it has no expiresAt)` : "";
      return this.refuseAndAlarm(cmd, "expired", ErrorCode.Expired, `expired at ${iso(expiresAt)}${implied} (${clock})`);
    }
    if (cmd.issuedAt > t + clockSkewMs) {
      return this.refuseAndAlarm(cmd, "future", ErrorCode.Expired, `issuedAt ${iso(cmd.issuedAt)} is ahead of the bank (${clock}): check the server's clock`);
    }
    if (expiresAt - cmd.issuedAt > this.maxLifetimeMs) {
      const s = Math.round((expiresAt - cmd.issuedAt) / 1000);
      return this.refuseAndAlarm(cmd, "lifetime", ErrorCode.BadInput, `expiresAt: a command is valid at most ${this.maxLifetimeMs / 1000} s after issuedAt, this one ${s} s`);
    }
    return undefined;
  }

  /**
   * The window while the bank's clock is not synchronized (a Pi without RTC before NTP: its clock
   * may be years behind or ahead). The bank clock says nothing then, so:
   *   - expired only when the window closed before `lower`, the least the time can be (the last
   *     synchronized time + the uptime since: sync/clock.ts); with no such time, not judged;
   *   - never "future": issuedAt ahead of the bank clock is what an unsynchronized bank expects;
   *   - the lifetime limit as always.
   * Replay stays impossible: the id must be unused and the signature valid as ever, an id is kept
   * at least until its window closed (keepUntil, from the command's own times), and ids are
   * forgotten only while the clock is synchronized (Retention pauses), so a window that closed
   * after `lower` still has its id on record. Once synchronized, the normal window applies.
   */
  private outOfWindowUnsynced(cmd: Command, lower: number | undefined): ReplyEnvelope | undefined {
    const { clockSkewMs } = this.deps;
    const expiresAt = this.expiryOf(cmd);
    if (lower !== undefined && lower > expiresAt + clockSkewMs) {
      const implied = cmd.expiresAt === undefined ? ` (issuedAt + ${this.maxLifetimeMs / 1000} s: it has no expiresAt)` : "";
      const why = `bank clock not synchronized; the time is at least ${iso(lower)} (last synchronized time + uptime), tolerance ${clockSkewMs / 1000} s`;
      return this.refuseAndAlarm(cmd, "expired", ErrorCode.Expired, `expired at ${iso(expiresAt)}${implied} (${why})`);
    }
    if (expiresAt - cmd.issuedAt > this.maxLifetimeMs) {
      const s = Math.round((expiresAt - cmd.issuedAt) / 1000);
      return this.refuseAndAlarm(cmd, "lifetime", ErrorCode.BadInput, `expiresAt: a command is valid at most ${this.maxLifetimeMs / 1000} s after issuedAt, this one ${s} s`);
    }
    this.log.info({ command: cmd.name, id: cmd.id, issuedAt: iso(cmd.issuedAt), bankClock: iso(this.deps.now()) }, "command judged on an unsynchronized clock: its window is not closed as far as the bank can know");
    return undefined;
  }

  /** A refusal; an alarm too when a server key is configured and the command is, or claims to be, signed. */
  private refuseAndAlarm(cmd: Command, reason: UnauthorizedReason, code: ErrorCode, message: string): ReplyEnvelope {
    if (this.deps.verifier && (cmd.sig !== undefined || requiresSignature(cmd.name))) {
      try {
        this.deps.ledger.transact((tx) =>
          tx.event({ type: "alarm.unauthorized_command", actor: "server", data: { name: cmd.name, id: cmd.id, reason, message } }),
        );
      } catch (e) {
        this.log.error({ err: e }, "unauthorized command alarm not recorded");
      }
    }
    return this.refuse(cmd, code, message);
  }

  private refuse(cmd: { id: string; name: string }, code: ErrorCode, message: string): ReplyEnvelope {
    this.log.warn({ command: cmd.name, id: cmd.id, code, reason: message }, "command refused");
    return { id: cmd.id, ok: false, error: { code, message } };
  }

  /** What the commands table keeps with an id: until when, and what it was. */
  private record(cmd: Command, digest: string): { keepUntil: number; digest: string } {
    return { keepUntil: this.expiryOf(cmd) + this.deps.clockSkewMs, digest };
  }

  private async execute(cmd: Command, digest: string): Promise<ReplyEnvelope> {
    if (cmd.name === "open") return this.executeOpen(cmd, digest);
    const { ledger, now } = this.deps;
    const after: (() => void)[] = [];
    try {
      const reply = ledger.transact((tx) => {
        tx.insertCommand(cmd.id, cmd.name, now(), this.record(cmd, digest));
        const result = ledger.causedBy(cmd.id, () => this.run(tx, cmd, after));
        const reply: ReplyEnvelope =
          result instanceof Refusal
            ? { id: cmd.id, ok: false, error: { code: result.error.code, message: result.error.message } }
            : { id: cmd.id, ok: true, result };
        tx.setCommandReply(cmd.id, reply, now());
        return reply;
      });
      for (const f of after) f();
      this.log.info({ command: cmd.name, id: cmd.id }, "command executed");
      return reply;
    } catch (e) {
      return this.failed(cmd, digest, e);
    }
  }

  /** Synchronous commands, inside the transaction that records the command id. */
  private run(tx: LedgerTx, cmd: Exclude<Command, { name: "open" }>, after: (() => void)[]): unknown {
    const { remote, ledger, now } = this.deps;
    switch (cmd.name) {
      case "reserve": {
        const r = remote.reserve(tx, cmd.args);
        return "refused" in r ? new Refusal(r.refused) : r;
      }
      case "cancel":
        return remote.cancel(tx, cmd.args.parcel);
      case "issue-code":
        return { parcel: cmd.args.parcel, seq: remote.issueCode(tx, cmd.args.parcel, cmd.args.code).seq };
      case "revoke-code":
        return remote.revokeCodes(tx, cmd.args.parcel);
      case "set-compartment":
        return snapshotOf(remote.setCompartment(tx, cmd.args));
      case "directory":
        return remote.directory(tx, cmd.args);
      case "policy":
        return remote.policy(tx, cmd.args);
      case "snapshot":
        after.push(() => this.deps.publishState());
        return stateMessage(ledger, now());
      case "replay": {
        // Bank-wide, on the bank clock (a step back leaves at most one interval to wait).
        const wait = Math.min(REPLAY_INTERVAL_MS, (this.lastReplayAt ?? -Infinity) + REPLAY_INTERVAL_MS - now());
        if (wait > 0) throw new LockerError(ErrorCode.Busy, `one replay per ${REPLAY_INTERVAL_MS / 1000} s`, { retryAfterMs: wait });
        this.lastReplayAt = now();
        const limit = cmd.args.limit ?? MAX_REPLAY_LIMIT;
        const { fromSeq } = cmd.args;
        // Counted now, published once the command is on record.
        const count = Math.max(0, Math.min(limit, ledger.headSeq - fromSeq + 1));
        after.push(() => this.deps.replay(fromSeq, limit));
        return { fromSeq, count, headSeq: ledger.headSeq };
      }
    }
  }

  private async executeOpen(cmd: Extract<Command, { name: "open" }>, digest: string): Promise<ReplyEnvelope> {
    const { ledger, remote, now } = this.deps;
    // The id commits first (a crash from here on leaves it "interrupted", never run twice); the
    // open's own authorization commits in the bank before its coil is energized.
    try {
      ledger.transact((tx) => tx.insertCommand(cmd.id, cmd.name, now(), this.record(cmd, digest)));
    } catch (e) {
      return this.failed(cmd, digest, e);
    }
    let reply: ReplyEnvelope;
    try {
      const pending = ledger.causedBy(cmd.id, () => remote.open(cmd.args));
      const opened = await ("result" in pending ? pending.result : pending).then((r: OpenResult | OpenReport) => r.opened);
      reply = opened ? openedReply(cmd) : notOpened(cmd, ErrorCode.LockFault, `${cmd.args.compartment}: the door did not open; it is out of service`);
    } catch (e) {
      reply = this.failed(cmd, digest, e);
    }
    this.remember(cmd, reply);
    return reply;
  }

  private remember(cmd: Command, reply: ReplyEnvelope): void {
    try {
      this.deps.ledger.transact((tx) => tx.setCommandReply(cmd.id, reply, this.deps.now()));
    } catch (e) {
      this.log.error({ err: e, id: cmd.id }, `reply of ${cmd.name} not recorded`);
    }
  }

  /** A command on record without a reply: an open a restart cut short. Its outcome is in the events. */
  private interrupted(cmd: Command, seen: StoredCommand): ReplyEnvelope {
    const reply = cmd.name === "open" ? openOutcome(this.deps.ledger, cmd) : undefined;
    if (!reply) return this.refuse(cmd, ErrorCode.Busy, `command ${cmd.id} (received ${iso(seen.receivedAt)}) has not finished yet`);
    this.remember(cmd, reply);
    this.log.info({ command: cmd.name, id: cmd.id, ok: reply.ok }, "interrupted command answered from the ledger");
    return reply;
  }

  /** A refusal from the bank: remembered unless it may succeed on a retry with the same id. */
  private failed(cmd: Command, digest: string, e: unknown): ReplyEnvelope {
    const err = isLockerError(e) ? e : new LockerError(ErrorCode.Internal, "internal error");
    if (!isLockerError(e)) this.log.error({ err: e, command: cmd.name, id: cmd.id }, "command failed");
    const retryAfterMs = err.context.retryAfterMs;
    const error: ErrorBody = { code: err.code, message: err.message, ...(typeof retryAfterMs === "number" ? { retryAfterMs } : {}) };
    const reply: ReplyEnvelope = { id: cmd.id, ok: false, error };
    this.log.warn({ command: cmd.name, id: cmd.id, code: err.code, reason: err.message }, "command refused");
    if (!isTransient(err) && err.code !== ErrorCode.Internal && err.code !== ErrorCode.ShuttingDown && cmd.name !== "open") {
      try {
        this.deps.ledger.transact((tx) => {
          tx.insertCommand(cmd.id, cmd.name, this.deps.now(), this.record(cmd, digest));
          tx.setCommandReply(cmd.id, reply, this.deps.now());
        });
      } catch (e2) {
        this.log.warn({ err: e2, id: cmd.id }, "refusal not remembered");
      }
    }
    return reply;
  }
}

type OpenCommand = Extract<Command, { name: "open" }>;

function openedReply(cmd: OpenCommand): ReplyEnvelope {
  return { id: cmd.id, ok: true, result: { compartment: cmd.args.compartment, parcel: cmd.args.parcel ?? null } };
}

function notOpened(cmd: OpenCommand, code: ErrorCode, message: string): ReplyEnvelope {
  return { id: cmd.id, ok: false, error: { code, message } };
}

/**
 * The reply an open would have had, read from the events: its authorization (admin.open or
 * pickup.started naming the command), then the first decisive event at that door. Undefined while
 * nothing has decided it yet (the daemon has not restarted since).
 */
export function openOutcome(ledger: Ledger, cmd: OpenCommand): ReplyEnvelope | undefined {
  const c = cmd.args.compartment;
  const stopped = (what: string) => notOpened(cmd, ErrorCode.ShuttingDown, `${c}: lockerd stopped before the door was seen open${what}`);
  const start = ledger.eventsCausedBy(cmd.id).find((e) => e.type === "admin.open" || e.type === "pickup.started");
  if (!start) return stopped(" and before it was unlocked: it did not open");
  for (let seq = start.seq + 1, scanned = 0; scanned < OUTCOME_SCAN; ) {
    const page = ledger.eventsFrom(seq, 500);
    if (!page.length) return undefined;
    for (const e of page) {
      if (e.type === "system.started") return stopped(", and it was not open at the restart either: send a new open if it is still wanted");
      if (e.compartment !== c) continue;
      switch (e.type) {
        case "door.opened":
        case "lock.skipped":
        case "parcel.picked_up":
          return openedReply(cmd);
        case "compartment.fault":
          return notOpened(cmd, ErrorCode.LockFault, `${c}: the door did not open; it is out of service`);
        case "lock.unavailable":
          return notOpened(cmd, ErrorCode.HardwareUnavailable, `${c}: the lock's board was down, no pulse was sent: it did not open`);
        case "pickup.aborted":
          if (e.data.outcome === "unknown") return stopped(", and whether it opened is unknown: the compartment is held (fault) until someone inspects it");
          if (e.data.reason === "interrupted") return stopped(": the pickup was rolled back, the parcel is still inside");
          return notOpened(cmd, ErrorCode.HardwareUnavailable, `${c}: the pickup was aborted (${String(e.data.reason)}): the door did not open`);
      }
    }
    seq = page[page.length - 1]!.seq + 1;
    scanned += page.length;
  }
  return undefined;
}

export type { CommandName };
