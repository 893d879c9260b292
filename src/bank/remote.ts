// What the central server may do to a bank (MQTT commands): reserve a compartment, cancel a
// reservation, open a door remotely, issue or revoke a parcel's code, change a compartment, keep
// the directory of people, change policies. Each change and its event commit in one transaction;
// the command router (sync/commands.ts) records the command id in the same transaction.
import type { Config, Size } from "../config/schema.js";
import { ConfigSchema } from "../config/schema.js";
import { assignCompartment, noFit } from "../domain/assignment.js";
import { assertTransition } from "../domain/compartment.js";
import { isTrivialCode, secretHash } from "../domain/credentials.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Compartment, Ledger, LedgerTx } from "../ledger/ledger.js";
import type { Bank, OpenTicket } from "./bank.js";
import type { DirectoryEntry, People } from "./people.js";
import type { OpenReport, Technician } from "./technician.js";

export interface RemoteDeps {
  bank: Bank;
  technician: Technician;
  ledger: Ledger;
  config: Config;
  deviceKey: Buffer;
  people: People;
  now: () => number;
}

/** The server's actor name in events, e.g. "server" or "server:alice". */
function serverActor(actor?: string): string {
  return actor ? `server:${actor}` : "server";
}

export type PolicyPatch = {
  policies?: Partial<Config["policies"]> | undefined;
  lockout?: Partial<Config["lockout"]> | undefined;
};


const POLICY_META = "policy.overrides";

export class RemoteOps {
  constructor(private readonly deps: RemoteDeps) {}

  /** Hold a free compartment for a parcel the server announced; a courier scanning it gets that door. */
  reserve(
    tx: LedgerTx,
    a: { parcel: string; recipient: string; size: Size; refrigerated?: boolean | undefined; accessible?: boolean | undefined },
  ): { parcel: string; compartment: string; size: Size } | { refused: LockerError } {
    const { ledger, config, now } = this.deps;
    if (ledger.parcel(a.parcel)) throw new LockerError(ErrorCode.IllegalTransition, `parcel ${a.parcel} is already known`, { parcel: a.parcel });
    const recipient = ledger.person(a.recipient);
    if (!recipient?.active) throw new LockerError(ErrorCode.UnknownPerson, `no active person ${a.recipient}: send a directory upsert first`);
    const special = { ...(a.refrigerated ? { refrigerated: true } : {}), ...(a.accessible ? { accessible: true } : {}) };
    const chosen = assignCompartment(ledger.compartments(), { size: a.size, allowLarger: config.policies.offerLarger, ...special });
    if (!chosen) {
      tx.event({ type: "assignment.failed", parcel: a.parcel, actor: "server", data: { size: a.size, terminal: "server", ...special } });
      // Not thrown: the event must commit (the parcel goes to the counter), with the refusal.
      return { refused: noFit(a.size, special) };
    }
    const t = now();
    assertTransition(chosen.id, chosen.state, "reserved");
    tx.insertParcel({ id: a.parcel, status: "reserved", size: a.size, compartmentId: chosen.id, recipientId: recipient.id, depositorId: null, createdAt: t });
    tx.updateCompartment(chosen.id, { state: "reserved", parcelId: a.parcel, since: t });
    tx.event({ type: "parcel.reserved", compartment: chosen.id, parcel: a.parcel, actor: "server", data: { size: a.size, recipient: recipient.id, ...special } });
    tx.event({ type: "compartment.reserved", compartment: chosen.id, parcel: a.parcel, actor: "server", data: { size: chosen.size } });
    return { parcel: a.parcel, compartment: chosen.id, size: chosen.size };
  }

  /** Withdraw a reservation before the parcel is in. */
  cancel(tx: LedgerTx, parcelId: string): { parcel: string; compartment: string | null } {
    const parcel = this.deps.ledger.parcel(parcelId);
    if (!parcel) throw new LockerError(ErrorCode.UnknownParcel, `no parcel ${parcelId}`);
    if (parcel.status === "depositing") throw new LockerError(ErrorCode.Busy, `parcel ${parcelId} is being deposited right now`);
    if (parcel.status !== "reserved") {
      throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcelId} is ${parcel.status}: only a reservation can be cancelled`);
    }
    const t = this.deps.now();
    const cid = parcel.compartmentId;
    tx.updateParcel(parcelId, { status: "cancelled", closedAt: t });
    tx.revokeParcelCredentials(parcelId, "code", t);
    tx.event({ type: "parcel.cancelled", compartment: cid, parcel: parcelId, actor: "server", data: { reserved: true } });
    if (cid) {
      const c = this.compartment(cid);
      if (c.state === "reserved" && c.parcelId === parcelId) {
        tx.updateCompartment(cid, { state: "free", parcelId: null, since: t });
        tx.event({ type: "compartment.released", compartment: cid, parcel: parcelId, actor: "server", data: {} });
      }
    }
    return { parcel: parcelId, compartment: cid };
  }

  /**
   * Remote override. With a parcel: the recipient forgot the code; the door opens only while it
   * holds that parcel and closing it records the pickup. Without: a plain audited open.
   */
  open(a: { compartment: string; reason: string; parcel?: string | undefined; actor?: string | undefined }): OpenTicket | Promise<OpenReport> {
    const { bank, ledger, technician } = this.deps;
    const c = this.compartment(a.compartment);
    if (a.parcel === undefined) return technician.open(c.id, { user: serverActor(a.actor), reason: a.reason });
    const parcel = ledger.parcel(a.parcel);
    if (!parcel || c.parcelId !== a.parcel || c.state !== "occupied" || parcel.status !== "stored") {
      throw new LockerError(ErrorCode.IllegalTransition, `${c.id} does not hold parcel ${a.parcel} ready for pickup`, { state: c.state });
    }
    return bank.collect(parcel, c, { via: "remote", credentialId: null, collectorId: a.actor ?? parcel.recipientId, terminal: "server" });
  }

  /** A new code for a stored parcel; every older one stops working. Returns the code (in clear) when the bank drew it. */
  issueCode(tx: LedgerTx, parcelId: string, supplied?: string): { seq: number; code: string } {
    const { ledger, deviceKey, now, bank, config } = this.deps;
    const parcel = ledger.parcel(parcelId);
    if (!parcel) throw new LockerError(ErrorCode.UnknownParcel, `no parcel ${parcelId}`);
    if (parcel.status !== "stored" || parcel.direction !== "inbound") {
      throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcelId} is ${parcel.status}: codes are issued for stored parcels`);
    }
    if (supplied !== undefined && isTrivialCode(supplied)) throw new LockerError(ErrorCode.BadInput, "code is too easy to guess");
    if (supplied !== undefined && supplied.length < config.codes.length) {
      throw new LockerError(ErrorCode.BadInput, `code must have at least ${config.codes.length} digits`);
    }
    const t = now();
    const revoked = tx.revokeParcelCredentials(parcelId, "code", t);
    let code: string;
    if (supplied === undefined) {
      code = bank.drawCode(tx, "code", { parcelId, personId: parcel.recipientId });
    } else {
      try {
        tx.insertCredential("code", secretHash(deviceKey, "code", supplied), { parcelId, personId: parcel.recipientId }, t);
      } catch (e) {
        if ((e as LockerError).code === ErrorCode.Busy) throw new LockerError(ErrorCode.Busy, "that code is live for another parcel: choose another");
        throw e;
      }
      code = supplied;
    }
    const ev = tx.event({
      type: "code.issued",
      compartment: parcel.compartmentId,
      parcel: parcelId,
      actor: "server",
      data: { kind: "code", by: supplied === undefined ? "bank" : "server", revoked, ...(supplied === undefined ? bank.sealed(code, parcelId) : {}) },
    });
    return { seq: ev.seq, code };
  }

  revokeCodes(tx: LedgerTx, parcelId: string): { parcel: string; revoked: number } {
    if (!this.deps.ledger.parcel(parcelId)) throw new LockerError(ErrorCode.UnknownParcel, `no parcel ${parcelId}`);
    const revoked = tx.revokeParcelCredentials(parcelId, "code", this.deps.now());
    tx.event({ type: "code.revoked", parcel: parcelId, actor: "server", data: { revoked } });
    return { parcel: parcelId, revoked };
  }

  /**
   * Enable / disable and resize (a free compartment only: the size is what assignment reads).
   * Enabling is the technician's enable: it also clears a fault and a forced-open inspection, which
   * hold a compartment that is still enabled.
   */
  setCompartment(tx: LedgerTx, a: { compartment: string; enabled?: boolean | undefined; size?: Size | undefined; reason?: string | undefined }): Compartment {
    const c = this.compartment(a.compartment);
    if (a.size !== undefined && a.size !== c.size) {
      if (c.state !== "free") throw new LockerError(ErrorCode.Busy, `${c.id} is ${c.state}: resize it when it is free`, { state: c.state });
      tx.updateCompartment(c.id, { size: a.size });
      tx.event({ type: "compartment.resized", compartment: c.id, actor: "server", data: { from: c.size, to: a.size, reason: a.reason ?? null } });
    }
    const held = c.state === "fault" || c.inspectSince !== null;
    if (a.enabled !== undefined && (a.enabled !== c.enabled || (a.enabled && held))) {
      this.deps.technician.setEnabled(c.id, a.enabled, { user: "server", ...(a.reason ? { reason: a.reason } : {}) });
    }
    return this.compartment(c.id);
  }

  /** Batched upserts and removals of people. A leaver's badge stops working with this commit. */
  /** The server's directory command: People.directory, refused when lockerctl owns the directory. */
  directory(tx: LedgerTx, a: { upserts?: DirectoryEntry[] | undefined; removals?: string[] | undefined }): { upserted: number; removed: number } {
    return this.deps.people.directory(tx, a, { actor: "server" });
  }

  /** Patch the deadline and lockout policies; persisted, and applied to the running bank at once. */
  policy(tx: LedgerTx, patch: PolicyPatch): { policies: Config["policies"]; lockout: Config["lockout"] } {
    const { config } = this.deps;
    const next = applyPolicy(config, patch);
    const stored = JSON.parse(this.deps.ledger.meta(POLICY_META) ?? "{}") as PolicyPatch;
    const merged: PolicyPatch = { policies: { ...stored.policies, ...patch.policies }, lockout: { ...stored.lockout, ...patch.lockout } };
    tx.setMeta(POLICY_META, JSON.stringify(merged));
    tx.event({ type: "policy.changed", actor: "server", data: { ...patch } });
    Object.assign(config.policies, next.policies);
    Object.assign(config.lockout, next.lockout);
    return { policies: { ...config.policies }, lockout: { ...config.lockout } };
  }

  private compartment(id: string): Compartment {
    return this.deps.bank.compartment(id);
  }
}

/** The config's policies with a patch applied, checked by the config's own schema (ranges, cross-field rules). */
export function applyPolicy(config: Config, patch: PolicyPatch): { policies: Config["policies"]; lockout: Config["lockout"] } {
  const candidate = { ...config, policies: { ...config.policies, ...patch.policies }, lockout: { ...config.lockout, ...patch.lockout } };
  const parsed = ConfigSchema.safeParse(stripDefaults(candidate), { jitless: true }); // one parse: no fast path compiled (config/load.ts)
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new LockerError(ErrorCode.BadInput, `policy rejected: ${msg}`);
  }
  return { policies: parsed.data.policies, lockout: parsed.data.lockout };
}

/** Policy overrides the server set earlier (meta), applied to a config at start. */
export function storedPolicy(ledger: Ledger): PolicyPatch {
  return JSON.parse(ledger.meta(POLICY_META) ?? "{}") as PolicyPatch;
}

function stripDefaults(c: Config): unknown {
  return JSON.parse(JSON.stringify(c)) as unknown;
}
