// App passes at the bank's scanner (docs/asyncapi.yaml, App passes): a token the server signed,
// shown as a QR code on the recipient's or courier's phone, checked here offline.
//
//   text ─▶ verifyPass (format, signature, site, device, time window) ─▶ parcel state ─▶ nonce never used
//        ─▶ the door opens: pickup.started / deposit.started (data.via "app") and the nonce written
//           used in the same transaction
//
// Every refusal is a code.rejected (data.kind "pass", data.reason) counted toward the terminal's
// lockout like a wrong code, and the display says which it was. A pass opens at most once: its
// nonce is a credential of kind 'pass' (HMAC under the device key), used when its door opens; a
// flow rolled back because the door never opened (lock unavailable, stop before the pulse) makes
// it live again, as a code.
import type { Config } from "../config/schema.js";
import { secretHash } from "../domain/credentials.js";
import { looksLikePass, verifyPass, type PassCheck, type PassRefusal, type PassStateRefusal } from "../domain/pass.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank, OpenTicket } from "./bank.js";

export { looksLikePass };

export interface PassDeps {
  bank: Bank;
  ledger: Ledger;
  deviceKey: Buffer;
  config: Pick<Config, "device" | "sync">;
  now: () => number;
  /** The bank's clock (sync/clock.ts): while unsynchronized, the window is judged as for commands. */
  clock?: { unsynced(): boolean; lowerBound(): number | undefined } | undefined;
  log: Logger;
}

export type PassResult = { kind: "pickup" | "deposit"; ticket: OpenTicket };

export class Passes {
  private readonly findPass;
  private readonly log: Logger;

  constructor(private readonly deps: PassDeps) {
    this.log = deps.log.child({ module: "passes" });
    this.findPass = deps.ledger.db.prepare("SELECT id, status FROM credentials WHERE kind = 'pass' AND hash = ?");
  }

  /** A scanned pass: its compartment opens, or a LockerError (invalid_credential, context.reason). */
  present(terminal: string, text: string): PassResult {
    const { bank, config, ledger } = this.deps;
    bank.assertNotLockedOut(terminal);
    const check: PassCheck = {
      publicKey: config.sync.serverPublicKey,
      site: config.device.site,
      device: config.device.id,
      now: this.deps.now(),
      skewMs: config.sync.clockSkewS * 1000,
      ...(this.deps.clock?.unsynced() ? { unsynced: { lower: this.deps.clock.lowerBound() } } : {}),
    };
    const verdict = verifyPass(text, check);
    if (!verdict.ok) return this.refuse(terminal, verdict.reason, verdict.pass?.parcelId);
    const pass = verdict.pass;
    const hash = secretHash(this.deps.deviceKey, "pass", pass.nonce);
    const prior = this.findPass.get(hash) as { id: number; status: string } | undefined;
    if (prior && prior.status !== "live") return this.refuse(terminal, "already_used", pass.parcelId);
    const use = { hash, credentialId: prior?.id ?? null };
    const parcel = ledger.parcel(pass.parcelId);
    if (pass.kind === "pickup") {
      if (!parcel || parcel.status !== "stored" || !parcel.compartmentId || parcel.direction !== "inbound") return this.refuse(terminal, "parcel_not_stored", pass.parcelId);
      const ticket = bank.collectByPass(terminal, parcel, use);
      this.log.info({ parcel: parcel.id, compartment: ticket.compartment }, "app pass: pickup");
      return { kind: "pickup", ticket };
    }
    if (!parcel || parcel.status !== "reserved" || !parcel.compartmentId) return this.refuse(terminal, "parcel_not_reserved", pass.parcelId);
    const ticket = bank.reservedDeposit(terminal, parcel.id, "app", use);
    this.log.info({ parcel: parcel.id, compartment: ticket.compartment }, "app pass: deposit");
    return { kind: "deposit", ticket };
  }

  private refuse(terminal: string, reason: PassRefusal | PassStateRefusal, parcel?: string): never {
    this.log.info({ terminal, reason, ...(parcel ? { parcel } : {}) }, "app pass refused");
    throw this.deps.bank.badAttempt(terminal, "pass", reason);
  }
}
