// Commands from the central server: decode (zod), check expiry and signature, execute once, reply.
//
//   cmd/<name> bytes ─▶ decodeCommand ─▶ seen before? ─▶ expired? ─▶ signed? ─▶ execute ─▶ reply
//                        (bad_input,      (first reply)   (expired)   (unauthorized
//                         unknown_command,                             + alarm event)
//                         payload_too_large)
//
// Idempotency: the command id is inserted in the same transaction as the change it makes, with the
// reply, so a repeat — also after a restart, also after a crash mid-command — never executes twice.
// `open` waits for the door: its id is committed first ("executing"), the reply written when the
// door opened or the lock gave up. A transient refusal (busy, hardware) is not remembered, so the
// server may retry with the same id; a definitive one is.
import type { RemoteOps } from "../bank/remote.js";
import type { Bank } from "../bank/bank.js";
import type { OpenResult } from "../bank/actuation.js";
import type { OpenReport } from "../bank/technician.js";
import { ErrorCode, isLockerError, isTransient, LockerError } from "../errors.js";
import type { Compartment, Ledger, LedgerTx } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import {
  canonicalCommand,
  decodeCommand,
  requiresSignature,
  type Command,
  type CommandName,
  type CompartmentSnapshot,
  type StateMessage,
} from "./contract.js";
import type { SignatureVerifier } from "./seal.js";

export type ReplyEnvelope =
  | { id: string; ok: true; result: unknown }
  | { id: string | null; ok: false; error: { code: ErrorCode; message: string } };

export interface CommandRouterDeps {
  ledger: Ledger;
  bank: Bank;
  remote: RemoteOps;
  site: string;
  device: string;
  /** When set, SIGNED_COMMANDS need a valid Ed25519 `sig`. */
  verifier?: SignatureVerifier | undefined;
  clockSkewMs: number;
  now: () => number;
  log: Logger;
  /** Re-publish events (replay) on the events topic. */
  replay: (fromSeq: number, limit: number) => number;
  /** Publish the retained state now (snapshot). */
  publishState: () => void;
}

const DEFAULT_REPLAY = 1000;

export function snapshotOf(c: Compartment): CompartmentSnapshot {
  return { id: c.id, size: c.size, refrigerated: c.refrigerated, accessible: c.accessible, state: c.state, enabled: c.enabled, door: c.door, since: c.since };
}

export function stateMessage(ledger: Ledger, now: number): StateMessage {
  return { seq: ledger.headSeq, ts: now, compartments: ledger.compartments().map(snapshotOf) };
}

/** A definitive "no" that still commits what led to it (e.g. assignment.failed with no_fit). */
class Refusal {
  constructor(readonly error: LockerError) {}
}

export class CommandRouter {
  private readonly log: Logger;
  /** Commands executing right now, by id: a repeat that arrives meanwhile waits for the same reply. */
  private readonly running = new Map<string, Promise<ReplyEnvelope>>();

  constructor(private readonly deps: CommandRouterDeps) {
    this.log = deps.log.child({ module: "commands" });
  }

  /** Handle one `cmd/<name>` message. Never throws; always resolves to the reply to send. */
  async handle(name: string, payload: Uint8Array | string): Promise<ReplyEnvelope> {
    const decoded = decodeCommand(name, payload);
    if (!decoded.ok) {
      this.log.warn({ command: name, id: decoded.id, code: decoded.error.code, reason: decoded.error.message }, "command refused");
      return { id: decoded.id, ok: false, error: decoded.error };
    }
    const cmd = decoded.command;
    const running = this.running.get(cmd.id);
    if (running) return running;
    const seen = this.deps.ledger.command(cmd.id);
    if (seen) {
      if (seen.name !== cmd.name) return this.refuse(cmd, ErrorCode.BadInput, `command id ${cmd.id} was used for ${seen.name}`);
      if (seen.reply) return seen.reply as ReplyEnvelope;
      return this.refuse(cmd, ErrorCode.Busy, `command ${cmd.id} was interrupted by a restart before it finished: see the events for its outcome`);
    }
    const check = this.admit(cmd);
    if (check) return check;
    const p = this.execute(cmd).finally(() => this.running.delete(cmd.id));
    this.running.set(cmd.id, p);
    return p;
  }

  /** Expiry and signature. Returns the refusal, or undefined when the command may run. */
  private admit(cmd: Command): ReplyEnvelope | undefined {
    const { now, clockSkewMs, verifier, site, device } = this.deps;
    if (cmd.expiresAt !== undefined && now() > cmd.expiresAt + clockSkewMs) {
      return this.refuse(cmd, ErrorCode.Expired, `expired at ${new Date(cmd.expiresAt).toISOString()} (bank clock ${new Date(now()).toISOString()})`);
    }
    if (!verifier || !requiresSignature(cmd.name)) return undefined;
    let why: string | undefined;
    if (!cmd.sig) why = `${cmd.name} must be signed`;
    else if (cmd.expiresAt === undefined) why = `a signed ${cmd.name} must carry expiresAt, so a captured one cannot be replayed later`;
    else if (!verifier.verify(canonicalCommand({ ...cmd, site, device }), cmd.sig)) why = "signature does not verify";
    if (!why) return undefined;
    try {
      this.deps.ledger.transact((tx) =>
        tx.event({ type: "alarm.unauthorized_command", actor: "server", data: { command: cmd.name, id: cmd.id, reason: why } }),
      );
    } catch (e) {
      this.log.error({ err: e }, "unauthorized command alarm not recorded");
    }
    return this.refuse(cmd, ErrorCode.Unauthorized, why);
  }

  private refuse(cmd: { id: string; name: string }, code: ErrorCode, message: string): ReplyEnvelope {
    this.log.warn({ command: cmd.name, id: cmd.id, code, reason: message }, "command refused");
    return { id: cmd.id, ok: false, error: { code, message } };
  }

  private async execute(cmd: Command): Promise<ReplyEnvelope> {
    if (cmd.name === "open") return this.executeOpen(cmd);
    const { ledger, now } = this.deps;
    const after: (() => void)[] = [];
    try {
      const reply = ledger.transact((tx) => {
        tx.insertCommand(cmd.id, cmd.name, now());
        const result = this.run(tx, cmd, after);
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
      return this.failed(cmd, e);
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
        const limit = cmd.args.limit ?? DEFAULT_REPLAY;
        const { fromSeq } = cmd.args;
        // Counted now, published once the command is on record.
        const count = Math.max(0, Math.min(limit, ledger.headSeq - fromSeq + 1));
        after.push(() => this.deps.replay(fromSeq, limit));
        return { fromSeq, count, headSeq: ledger.headSeq };
      }
    }
  }

  private async executeOpen(cmd: Extract<Command, { name: "open" }>): Promise<ReplyEnvelope> {
    const { ledger, remote, now } = this.deps;
    // The id commits first (a crash from here on leaves it "interrupted", never run twice); the
    // open's own authorization commits in the bank before its coil is energized.
    try {
      ledger.transact((tx) => tx.insertCommand(cmd.id, cmd.name, now()));
    } catch (e) {
      return this.failed(cmd, e);
    }
    let reply: ReplyEnvelope;
    try {
      const pending = remote.open(cmd.args);
      const opened = await ("result" in pending ? pending.result : pending).then((r: OpenResult | OpenReport) => r.opened);
      reply = opened
        ? { id: cmd.id, ok: true, result: { compartment: cmd.args.compartment, parcel: cmd.args.parcel ?? null } }
        : { id: cmd.id, ok: false, error: { code: ErrorCode.LockFault, message: `${cmd.args.compartment}: the door did not open; it is out of service` } };
    } catch (e) {
      reply = this.failed(cmd, e);
    }
    try {
      ledger.transact((tx) => tx.setCommandReply(cmd.id, reply, now()));
    } catch (e) {
      this.log.error({ err: e, id: cmd.id }, "reply of open not recorded");
    }
    return reply;
  }

  /** A refusal from the bank: remembered unless it may succeed on a retry with the same id. */
  private failed(cmd: Command, e: unknown): ReplyEnvelope {
    const err = isLockerError(e) ? e : new LockerError(ErrorCode.Internal, "internal error");
    if (!isLockerError(e)) this.log.error({ err: e, command: cmd.name, id: cmd.id }, "command failed");
    const reply: ReplyEnvelope = { id: cmd.id, ok: false, error: { code: err.code, message: err.message } };
    this.log.warn({ command: cmd.name, id: cmd.id, code: err.code, reason: err.message }, "command refused");
    if (!isTransient(err) && err.code !== ErrorCode.Internal && err.code !== ErrorCode.ShuttingDown && cmd.name !== "open") {
      try {
        this.deps.ledger.transact((tx) => {
          tx.insertCommand(cmd.id, cmd.name, this.deps.now());
          tx.setCommandReply(cmd.id, reply, this.deps.now());
        });
      } catch (e2) {
        this.log.warn({ err: e2, id: cmd.id }, "refusal not remembered");
      }
    }
    return reply;
  }
}

export type { CommandName };
