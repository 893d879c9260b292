// The bank runtime: every action on a compartment, whoever asks (keypad, badge, server, technician),
// goes through one method here.
//
//   input ─▶ Bank method ─▶ domain rule ─▶ ledger.transact(state + event) ─▶ ActuationQueue ─▶ lock
//   door edge ─▶ onDoor ─▶ ledger.transact(door + flow step) ─▶ BankEvents (terminal, sim view)
//
// The fact that authorizes an unlock is committed (synchronous=FULL) before the coil is energized.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { CompartmentLayout, Config, Size } from "../config/schema.js";
import { assignCompartment, noFit } from "../domain/assignment.js";
import { assertTransition } from "../domain/compartment.js";
import { generateCode, secretHash } from "../domain/credentials.js";
import { noticesFor } from "../domain/deadlines.js";
import { lockoutRemaining, NO_LOCKOUT, recordFailure } from "../domain/lockout.js";
import type { DoorState, Hardware } from "../drivers/types.js";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
import type { Compartment, Credential, Ledger, LedgerTx, Parcel, ParcelStatus, Person } from "../ledger/ledger.js";
import type { EventType, NewEvent } from "../domain/events.js";
import type { Logger } from "../log.js";
import { ActuationQueue, type OpenResult } from "./actuation.js";
import { DoorWaiters } from "./doors.js";
import { holdCollect, rollBack, undoCollect, undoDeposit } from "./recovery.js";
import type { Sealer } from "../sync/seal.js";
import { seedPeople } from "./setup.js";

/** How a parcel leaves: recipient's code or badge, the server's override (forgotten code), staff removal, the depositor taking it back, a courier collecting outbound. */
export type CollectVia = "code" | "badge" | "finger" | "app" | "remote" | "staff" | "return" | "courier";

/** What closing the door after each kind of collection makes of the parcel. */
const COLLECT_OUTCOME = {
  code: { status: "picked_up", event: "parcel.picked_up" },
  badge: { status: "picked_up", event: "parcel.picked_up" },
  finger: { status: "picked_up", event: "parcel.picked_up" },
  app: { status: "picked_up", event: "parcel.picked_up" },
  remote: { status: "picked_up", event: "parcel.picked_up" },
  staff: { status: "removed", event: "parcel.removed" },
  return: { status: "cancelled", event: "parcel.cancelled" },
  courier: { status: "collected", event: "parcel.collected" },
} as const satisfies Record<CollectVia, { status: ParcelStatus; event: EventType }>;

export interface BankEvents {
  /** A deposit door closed on a parcel. awaitingRecipient: the depositor must still name the recipient. */
  loaded: [{ parcel: string; compartment: string; awaitingRecipient: boolean }];
  /** A pickup or removal door closed: the compartment is free again. */
  unloaded: [{ parcel: string; compartment: string; via: CollectVia }];
  /** A lock was pulsed (with retries) and the door never opened: the compartment is now in fault. */
  openFailed: [{ parcel: string | null; compartment: string; purpose: "deposit" | "collect" }];
  /**
   * A door could not be opened because its board is down (no pulse sent: the flow is rolled back,
   * the code still valid) or did not answer (the flow is held until the board answers again).
   */
  openUnavailable: [{ parcel: string | null; compartment: string; purpose: "deposit" | "collect"; held: boolean }];
  /** A fresh pickup code, in clear, for whoever must deliver it (sim notify, sealed for the server). */
  codeIssued: [{ parcel: string; person: string; name: string; compartment: string; code: string }];
}

export interface BankDeps {
  ledger: Ledger;
  hardware: Hardware;
  layout: readonly CompartmentLayout[];
  config: Config;
  deviceKey: Buffer;
  log: Logger;
  now: () => number;
  /** Seals a fresh code for the server (sync.sealKey); without it no code leaves the bank. */
  sealer?: Sealer | undefined;
}

export interface OpenTicket {
  compartment: string;
  parcel: string | null;
  /** Settles when the door was seen open, or the lock gave up. */
  result: Promise<OpenResult>;
}

const CODE_ATTEMPTS = 50;
/** Outcome records held back by a full disk (Bank.recordOutcome): a few per door at most in practice. */
const MAX_LATE_OUTCOMES = 256;

export class Bank extends EventEmitter<BankEvents> {
  readonly actuation: ActuationQueue;
  /** The compartments served: the ledger's live ones (bank/layout.ts liveLayout); setLayout on a live change. */
  private served: readonly CompartmentLayout[] = [];
  private readonly byId = new Map<string, CompartmentLayout>();
  private readonly byChannel = new Map<number, CompartmentLayout>();
  private readonly byKeypad = new Map<string, CompartmentLayout>();
  private readonly waiters: DoorWaiters;
  private readonly log: Logger;
  private readonly onDoorEdge = (channel: number, state: DoorState) => this.onDoor(channel, state);
  /** Flows whose pulse's outcome is unknown until their board answers again (lockUncertain). */
  private readonly held = new Set<string>();
  /** Attempts refused unchecked while a terminal was locked out, until its next record. */
  private readonly refusedWhileLocked = new Map<string, number>();
  /** Set once stop() began: nothing may be scheduled against the ledger after it. */
  private stopping = false;
  /** Outcome records the disk refused, kept until it takes writes again (recordOutcome). */
  private readonly lateOutcomes: NewEvent[] = [];
  private settleTimer: NodeJS.Timeout | undefined;
  /** Codes drawn inside a door transaction, announced once it committed. */
  private readonly pendingCodes: BankEvents["codeIssued"][0][] = [];

  constructor(private readonly deps: BankDeps) {
    super();
    this.log = deps.log.child({ module: "bank" });
    this.index(deps.layout);
    this.waiters = new DoorWaiters(
      (id) => this.deps.hardware.doors.read(this.layoutOf(id).lock) === "open",
      (id) => this.deps.hardware.doors.read(this.layoutOf(id).lock) !== "unknown",
    );
    this.actuation = new ActuationQueue({
      locks: deps.hardware.locks,
      doors: this.waiters,
      log: this.log,
      options: deps.config.locks,
      beforeRetry: (compartment, attempt, pulseMs) =>
        this.write((tx) => {
          tx.updateCompartment(compartment, { pulses: this.compartment(compartment).pulses + 1 });
          tx.event({ type: "lock.retried", compartment, data: { attempt, pulseMs } });
        }),
    });
  }

  /**
   * Layout, people, the doors as they read now, interrupted flows. A disk that refuses writes does
   * not stop the bank from starting: it then refuses what needs a write, and resync() does the rest
   * once the ledger takes writes again.
   */
  async start(): Promise<void> {
    // The layout is the runtime's to bring up to date before the bank is built (bank/layout.ts).
    const { ledger, hardware, config, deviceKey, now } = this.deps;
    try {
      seedPeople(ledger, config.seed.people, deviceKey, now());
    } catch (e) {
      if (!isLockerError(e, ErrorCode.Storage)) throw e;
      this.log.error({ err: e }, "people not brought up to date: the ledger takes no writes");
    }
    this.resync();
    hardware.doors.on("change", this.onDoorEdge);
  }

  /** Every door as it reads now, then the flows left open; after a start, or once the ledger takes writes again. */
  resync(): void {
    this.writeLateOutcomes();
    for (const c of this.served) this.onDoor(c.lock, this.deps.hardware.doors.read(c.lock), "start");
    this.recoverInterrupted();
    this.settleHeld();
  }

  /** Resolves once the flows whose pulses never began are undone (the ledger is still open then). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.settleTimer);
    this.deps.hardware.doors.off("change", this.onDoorEdge);
    const dropped = this.actuation.stop();
    this.waiters.cancelAll();
    await dropped;
  }

  /**
   * A live layout change (SIGHUP, bank/layout.ts applied it to the ledger): the compartments served
   * from now on. A compartment new here, or on a new lock channel, has its door read at once.
   */
  setLayout(layout: readonly CompartmentLayout[]): void {
    const before = new Map(this.served.map((l) => [l.id, l.lock]));
    this.index(layout);
    for (const l of layout) if (before.get(l.id) !== l.lock) this.onDoor(l.lock, this.deps.hardware.doors.read(l.lock), "start");
  }

  /** The compartments served now. */
  get layout(): readonly CompartmentLayout[] {
    return this.served;
  }

  private index(layout: readonly CompartmentLayout[]): void {
    this.served = [...layout];
    this.byId.clear();
    this.byChannel.clear();
    this.byKeypad.clear();
    for (const c of layout) {
      this.byId.set(c.id, c);
      this.byChannel.set(c.lock, c);
      this.byKeypad.set(c.keypadNumber, c);
    }
  }

  // ── lookups ───────────────────────────────────────────────────────────────

  compartments(): Compartment[] {
    return this.deps.ledger.compartments();
  }

  compartment(id: string): Compartment {
    const c = this.deps.ledger.compartment(id);
    if (!c || !this.byId.has(id)) throw this.unknownCompartment(id);
    return c;
  }

  /** A door named on the keypad: column number then row (A07 = 107), or its id. */
  compartmentByKeypad(entry: string): Compartment {
    const layout = this.byKeypad.get(entry) ?? this.byId.get(entry.toUpperCase());
    if (!layout) throw this.unknownCompartment(entry);
    return this.compartment(layout.id);
  }

  /** The compartment whose lock and door sensor are on `channel`, if any. */
  compartmentOnChannel(channel: number): string | undefined {
    return this.byChannel.get(channel)?.id;
  }

  layoutOf(id: string): CompartmentLayout {
    const l = this.byId.get(id);
    if (!l) throw this.unknownCompartment(id);
    return l;
  }

  // ── credentials ───────────────────────────────────────────────────────────

  /**
   * Throws locked_out (context.waitMs) while the terminal is locked after bad codes, PINs or
   * badges. Nothing is checked and nothing written then: what was refused unchecked is counted
   * here and summarized on the terminal's next record (refusedWhileLocked).
   */
  assertNotLockedOut(terminal: string): void {
    const state = this.deps.ledger.terminal(terminal) ?? NO_LOCKOUT;
    const waitMs = lockoutRemaining(state, this.deps.now(), this.deps.config.lockout);
    if (waitMs <= 0) return;
    this.refusedWhileLocked.set(terminal, (this.refusedWhileLocked.get(terminal) ?? 0) + 1);
    throw new LockerError(ErrorCode.LockedOut, `terminal locked for ${Math.ceil(waitMs / 1000)} s`, { waitMs });
  }

  /** A code typed at the keypad: a recipient's pickup code (opens their compartment), or a sender's drop-off code. */
  presentCode(terminal: string, code: string): { kind: "pickup"; ticket: OpenTicket } | { kind: "dropoff"; sender: Person; credentialId: number } {
    this.assertNotLockedOut(terminal);
    const cred = this.codeCredential(code);
    if (cred?.kind === "dropoff") {
      const sender = cred.personId ? this.deps.ledger.person(cred.personId) : undefined;
      if (!sender?.active) throw this.badAttempt(terminal, "code");
      return { kind: "dropoff", sender, credentialId: cred.id };
    }
    return { kind: "pickup", ticket: this.pickup(terminal, cred) };
  }

  /** A recipient's pickup code: opens the compartment holding their parcel. */
  pickupByCode(terminal: string, code: string): OpenTicket {
    this.assertNotLockedOut(terminal);
    return this.pickup(terminal, this.codeCredential(code));
  }

  private codeCredential(code: string): Credential | undefined {
    return /^[0-9]{4,12}$/.test(code) ? this.deps.ledger.liveCredential(secretHash(this.deps.deviceKey, "code", code)) : undefined;
  }

  private pickup(terminal: string, cred: Credential | undefined): OpenTicket {
    const parcel = cred?.parcelId ? this.deps.ledger.parcel(cred.parcelId) : undefined;
    if (!cred || cred.kind !== "code" || !parcel || parcel.status !== "stored" || !parcel.compartmentId) {
      throw this.badAttempt(terminal, "code");
    }
    if (parcel.expiredAt !== null) throw expired(parcel);
    const compartment = this.compartment(parcel.compartmentId);
    this.assertServiceable(compartment);
    return this.collect(parcel, compartment, { via: "code", credentialId: cred.id, collectorId: parcel.recipientId, terminal });
  }

  /** @internal (passes.ts) A verified pickup pass for a stored parcel: its compartment opens, the pass spent with it. */
  collectByPass(terminal: string, parcel: Parcel, pass: PassUse): OpenTicket {
    if (!parcel.compartmentId) throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcel.id} is not in a compartment`);
    if (parcel.expiredAt !== null) throw expired(parcel);
    const compartment = this.compartment(parcel.compartmentId);
    this.assertServiceable(compartment);
    return this.collect(parcel, compartment, { via: "app", credentialId: null, collectorId: parcel.recipientId, terminal, pass });
  }

  /** A courier's or staff member's PIN. */
  personByPin(terminal: string, pin: string): Person {
    this.assertNotLockedOut(terminal);
    const cred = /^[0-9]{4,12}$/.test(pin) ? this.deps.ledger.liveCredential(secretHash(this.deps.deviceKey, "pin", pin)) : undefined;
    const person = cred?.kind === "pin" && cred.personId ? this.deps.ledger.person(cred.personId) : undefined;
    if (!person?.active || !person.roles.some((r) => r === "courier" || r === "staff")) throw this.badAttempt(terminal, "pin");
    return person;
  }

  /** The active holder of a badge, or invalid_credential. */
  personByBadge(terminal: string, badge: string): Person {
    this.assertNotLockedOut(terminal);
    const cred = /^[0-9A-Fa-f]{4,32}$/.test(badge) ? this.deps.ledger.liveCredential(secretHash(this.deps.deviceKey, "badge", badge)) : undefined;
    const person = cred?.kind === "badge" && cred.personId ? this.deps.ledger.person(cred.personId) : undefined;
    if (!person?.active) throw this.badAttempt(terminal, "badge");
    return person;
  }

  /** A badge tap or a finger: every compartment holding a parcel for this person, one after the other. */
  pickupForPerson(terminal: string, person: Person, via: "badge" | "finger" = "badge"): OpenTicket[] {
    const parcels = this.deps.ledger.parcelsOf(person.id, "stored");
    const live = parcels.filter((p) => p.expiredAt === null);
    if (parcels.length && !live.length) throw expired(parcels[0]!);
    const tickets: OpenTicket[] = [];
    for (const parcel of live) {
      const compartment = parcel.compartmentId ? this.deps.ledger.compartment(parcel.compartmentId) : undefined;
      if (!compartment || compartment.state !== "occupied" || !this.lockAvailable(compartment.id)) continue;
      tickets.push(this.collect(parcel, compartment, { via, credentialId: null, collectorId: person.id, terminal }));
    }
    return tickets;
  }

  // ── deposit ───────────────────────────────────────────────────────────────

  /**
   * Pick a compartment for a parcel of `size` and open it. no_fit when none is free. `outbound`:
   * a person drops a parcel off for a courier (with the drop-off code that allowed it, if any).
   */
  beginDeposit(
    terminal: string,
    size: Size,
    depositor: Person,
    outbound?: { credentialId: number | null },
    special: { refrigerated?: boolean; accessible?: boolean } = {},
  ): OpenTicket {
    const { ledger, config, now } = this.deps;
    const usable = ledger.compartments().filter((c) => this.lockAvailable(c.id));
    const chosen = assignCompartment(usable, { size, allowLarger: config.policies.offerLarger, ...special });
    if (!chosen) {
      // Free compartments whose board is down are not "full": say the bank is unavailable for now.
      const down = usable.length < ledger.compartments().length && assignCompartment(ledger.compartments(), { size, allowLarger: config.policies.offerLarger, ...special });
      this.write((tx) => tx.event({ type: "assignment.failed", actor: depositor.id, data: { size, terminal, ...special, ...(down ? { reason: "lock board not answering" } : {}) } }));
      if (down) throw new LockerError(ErrorCode.HardwareUnavailable, "the lock board of the free compartments is not answering; try again later", {});
      throw noFit(size, special);
    }
    const parcelId = `L-${randomBytes(5).toString("hex")}`;
    const t = now();
    this.write((tx) => {
      assertTransition(chosen.id, chosen.state, "loading");
      tx.insertParcel({
        id: parcelId,
        status: "depositing",
        size,
        compartmentId: chosen.id,
        recipientId: null,
        depositorId: depositor.id,
        createdAt: t,
        direction: outbound ? "outbound" : "inbound",
        collectCredential: outbound?.credentialId ?? null,
      });
      if (outbound?.credentialId != null) tx.setCredentialStatus(outbound.credentialId, "used", t);
      // A door already standing open counts as opened: no pulse, and closing it completes the flow.
      const open = chosen.door === "open";
      tx.updateCompartment(chosen.id, { state: "loading", parcelId, doorOpened: open, since: t, pulses: chosen.pulses + (open ? 0 : 1) });
      tx.event({
        type: "deposit.started",
        compartment: chosen.id,
        parcel: parcelId,
        actor: depositor.id,
        data: { size, terminal, pulseMs: this.actuation.pulseLength, ...(outbound ? { outbound: true } : {}) },
      });
      if (open) tx.event({ type: "lock.skipped", compartment: chosen.id, parcel: parcelId, data: { purpose: "deposit", reason: "door already open", attempts: 0 } });
    });
    return this.actuate(chosen.id, parcelId, "deposit", chosen.door === "open");
  }

  /** A courier scans a parcel the server reserved a compartment for: that compartment opens. */
  beginReservedDeposit(terminal: string, parcelId: string, courier: Person): OpenTicket {
    if (!courier.roles.includes("courier") && !courier.roles.includes("staff")) throw new LockerError(ErrorCode.Unauthorized, "couriers only");
    return this.reservedDeposit(terminal, parcelId, courier.id);
  }

  /**
   * @internal (passes.ts) The reserved compartment of `parcelId` opens for its deposit. `pass`: an
   * app pass allowed it; its nonce is written used in the same transaction (a live one, from a
   * deposit rolled back, is reused) and kept as the parcel's collectCredential, so a rollback makes
   * it live again.
   */
  reservedDeposit(terminal: string, parcelId: string, actor: string, pass?: PassUse): OpenTicket {
    const parcel = this.deps.ledger.parcel(parcelId);
    if (!parcel || parcel.status !== "reserved" || !parcel.compartmentId) {
      throw new LockerError(ErrorCode.UnknownParcel, `no reservation for parcel ${parcelId}`, { parcel: parcelId });
    }
    const c = this.compartment(parcel.compartmentId);
    if (c.state === "fault") throw new LockerError(ErrorCode.LockFault, `${c.id} is out of service: please go to the mailroom`, { compartment: c.id });
    this.assertLockAvailable(c.id);
    const t = this.deps.now();
    const open = c.door === "open";
    this.write((tx) => {
      assertTransition(c.id, c.state, "loading");
      const credential = pass ? spendPass(tx, pass, parcel.id, t) : null;
      tx.updateParcel(parcel.id, { status: "depositing", depositorId: actor, ...(credential !== null ? { collectCredential: credential } : {}) });
      tx.updateCompartment(c.id, { state: "loading", doorOpened: open, since: t, pulses: c.pulses + (open ? 0 : 1) });
      tx.event({
        type: "deposit.started",
        compartment: c.id,
        parcel: parcel.id,
        actor,
        data: { size: parcel.size, terminal, pulseMs: this.actuation.pulseLength, reserved: true, ...(pass ? { via: "app" } : {}) },
      });
      if (open) tx.event({ type: "lock.skipped", compartment: c.id, parcel: parcel.id, data: { purpose: "deposit", reason: "door already open", attempts: 0 } });
    });
    return this.actuate(c.id, parcel.id, "deposit", open);
  }

  /** A drop-off code for a person who will leave a parcel for a courier (a return). Returns it in clear, once. */
  issueDropoffCode(personId: string, actor: string): string {
    const person = this.deps.ledger.person(personId);
    if (!person?.active) throw new LockerError(ErrorCode.UnknownPerson, `no active person ${personId}`);
    return this.write((tx) => {
      const code = this.drawCode(tx, "dropoff", { personId });
      tx.event({ type: "code.issued", actor, data: { kind: "dropoff", person: personId } });
      return code;
    });
  }

  outboundCount(): number {
    return this.deps.ledger.outboundWaiting().length;
  }

  /** A courier collects every outbound parcel: their compartments open one after the other. */
  collectOutbound(terminal: string, courier: Person): OpenTicket[] {
    if (!courier.roles.includes("courier") && !courier.roles.includes("staff")) throw new LockerError(ErrorCode.Unauthorized, "couriers only");
    return this.deps.ledger.outboundWaiting().flatMap((parcel) => {
      const c = parcel.compartmentId ? this.deps.ledger.compartment(parcel.compartmentId) : undefined;
      return c?.state === "occupied" && this.lockAvailable(c.id) ? [this.collect(parcel, c, { via: "courier", credentialId: null, collectorId: courier.id, terminal })] : [];
    });
  }

  /** The depositor names the recipient (keypad number) of a parcel now locked in. Issues the pickup code. */
  completeDeposit(parcelId: string, recipientNumber: string, actor: string): { compartment: string; recipient: Person } {
    const parcel = this.deps.ledger.parcel(parcelId);
    if (!parcel || parcel.status !== "awaiting_recipient" || !parcel.compartmentId) {
      throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcelId} is not waiting for a recipient`);
    }
    const recipient = /^[0-9]{2,12}$/.test(recipientNumber) ? this.deps.ledger.personByNumber(recipientNumber) : undefined;
    if (!recipient?.active) throw new LockerError(ErrorCode.UnknownPerson, `no recipient ${recipientNumber}`);
    const compartment = parcel.compartmentId;
    const code = this.write((tx) => {
      tx.updateParcel(parcelId, { recipientId: recipient.id });
      return this.store(tx, { ...parcel, recipientId: recipient.id }, actor);
    });
    this.emit("codeIssued", { parcel: parcelId, person: recipient.id, name: recipient.name, compartment, code });
    return { compartment, recipient };
  }

  /** Where staff put a removed parcel (a shelf number), for whoever asks at the counter. */
  recordShelf(parcelId: string, shelf: string, staff: Person): void {
    const parcel = this.deps.ledger.parcel(parcelId);
    if (parcel?.status !== "removed") throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcelId} was not removed`);
    this.write((tx) => tx.event({ type: "parcel.shelved", parcel: parcelId, actor: staff.id, data: { shelf } }));
  }

  /** The depositor changes their mind before naming a recipient: the door opens to take the parcel back. */
  cancelDeposit(terminal: string, parcelId: string, depositor: Person): OpenTicket {
    const parcel = this.deps.ledger.parcel(parcelId);
    if (!parcel || parcel.status !== "awaiting_recipient" || !parcel.compartmentId || parcel.depositorId !== depositor.id) {
      throw new LockerError(ErrorCode.IllegalTransition, `parcel ${parcelId} cannot be taken back`);
    }
    this.assertLockAvailable(parcel.compartmentId);
    return this.collect(parcel, this.compartment(parcel.compartmentId), { via: "return", credentialId: null, collectorId: depositor.id, terminal });
  }

  // ── staff ─────────────────────────────────────────────────────────────────

  /** Staff take a parcel out (expired, misdelivered): the door opens, closing it frees the compartment. */
  openForRemoval(terminal: string, compartmentId: string, staff: Person): OpenTicket {
    if (!staff.roles.includes("staff")) throw new LockerError(ErrorCode.Unauthorized, "staff only");
    const compartment = this.compartment(compartmentId);
    const parcel = compartment.parcelId ? this.deps.ledger.parcel(compartment.parcelId) : undefined;
    if (compartment.state !== "occupied" || !parcel) {
      throw new LockerError(ErrorCode.IllegalTransition, `${compartmentId} holds no parcel`, { state: compartment.state });
    }
    this.assertLockAvailable(compartment.id);
    return this.collect(parcel, compartment, { via: "staff", credentialId: null, collectorId: staff.id, terminal });
  }

  // ── internals ─────────────────────────────────────────────────────────────

  /** @internal (remote.ts) */
  collect(
    parcel: Parcel,
    compartment: Compartment,
    how: { via: CollectVia; credentialId: number | null; collectorId: string | null; terminal: string; pass?: PassUse },
  ): OpenTicket {
    const t = this.deps.now();
    this.write((tx) => {
      assertTransition(compartment.id, compartment.state, "unloading");
      const credentialId = how.pass ? spendPass(tx, how.pass, parcel.id, t) : how.credentialId;
      if (credentialId !== null && !how.pass) tx.setCredentialStatus(credentialId, "used", t);
      tx.updateParcel(parcel.id, {
        status: "collecting",
        collectorId: how.collectorId,
        collectVia: how.via,
        collectCredential: credentialId,
        collectTerminal: how.terminal,
      });
      const open = compartment.door === "open";
      tx.updateCompartment(compartment.id, { state: "unloading", doorOpened: open, since: t, pulses: compartment.pulses + (open ? 0 : 1) });
      tx.event({
        type: "pickup.started",
        compartment: compartment.id,
        parcel: parcel.id,
        actor: how.collectorId,
        data: { via: how.via, terminal: how.terminal, pulseMs: this.actuation.pulseLength },
      });
      if (open) tx.event({ type: "lock.skipped", compartment: compartment.id, parcel: parcel.id, data: { purpose: "collect", reason: "door already open", attempts: 0 } });
    });
    return this.actuate(compartment.id, parcel.id, "collect", compartment.door === "open");
  }

  private actuate(compartment: string, parcel: string | null, purpose: "deposit" | "collect", doorOpen: boolean): OpenTicket {
    if (doorOpen) return { compartment, parcel, result: Promise.resolve({ opened: true, attempts: 0, skipped: true }) };
    const flowState = purpose === "deposit" ? "loading" : "unloading";
    // Still the same flow, and its door not yet seen open? (Asked when the pulse's turn comes.)
    const stillWanted = () => {
      const c = this.deps.ledger.compartment(compartment);
      return c?.state === flowState && c.parcelId === parcel && !c.doorOpened;
    };
    const result = this.actuation.open(compartment, this.layoutOf(compartment).lock, stillWanted).then((r) => {
      if (r.stopped && r.started === 0) this.stoppedBeforePulse(compartment, parcel);
      else if (r.unavailable) this.lockUnavailable(compartment, parcel, purpose, r);
      else if (r.uncertain && !r.stopped) this.lockUncertain(compartment, parcel, purpose, r);
      else if (!r.opened && !r.stopped) this.lockFailed(compartment, purpose, r);
      // The authorization is on record; say why no coil fired for it. (A disk that refuses this
      // write loses only the note: nothing may throw out of here, the ticket's result is often
      // not awaited, and an unhandled rejection would stop the daemon.)
      const skip = r.skipped
        ? { purpose, reason: "door already opened", attempts: r.attempts }
        : r.opened && r.unfired
          ? { purpose, reason: "door opened; board did not acknowledge", attempts: r.attempts, unfired: r.unfired }
          : undefined;
      if (skip) this.recordOutcome({ type: "lock.skipped", compartment, parcel, data: skip }, "a skipped pulse");
      return r;
    });
    return { compartment, parcel, result };
  }

  /** The daemon stopped while this flow's pulse waited its turn: nothing fired; undone now, while that is known. */
  private stoppedBeforePulse(compartmentId: string, parcelId: string | null): void {
    if (!this.deps.ledger.db.open) return;
    try {
      this.write((tx) => {
        const c = this.compartment(compartmentId);
        if ((c.state !== "loading" && c.state !== "unloading") || c.parcelId !== parcelId || c.doorOpened) return;
        tx.updateCompartment(c.id, { pulses: Math.max(0, c.pulses - 1) });
        rollBack(tx, c, parcelId ? this.deps.ledger.parcel(parcelId) : undefined, this.deps.now(), "stopped before its pulse");
      });
    } catch (e) {
      this.log.error({ err: e, compartment: compartmentId }, "could not undo a flow stopped before its pulse");
    }
  }

  /**
   * No pulse was sent (the board is known to be down): nothing happened at the door, so the flow is
   * rolled back as if never started. No fault, no pulse counted, the person's code still valid.
   */
  private lockUnavailable(compartmentId: string, parcelId: string | null, purpose: "deposit" | "collect", r: OpenResult): void {
    const now = this.deps.now();
    try {
      this.write((tx) => {
        const c = this.compartment(compartmentId);
        tx.updateCompartment(c.id, { pulses: Math.max(0, c.pulses - (r.unfired ?? 1)) });
        tx.event({ type: "lock.unavailable", compartment: c.id, parcel: parcelId, data: { purpose, unfired: r.unfired ?? 1, error: describe(r.error) } });
        if ((c.state !== "loading" && c.state !== "unloading") || c.parcelId !== parcelId || c.doorOpened) return; // moved on
        rollBack(tx, c, this.deps.ledger.parcel(parcelId ?? "") ?? undefined, now, "lock unavailable");
      });
    } catch (e) {
      this.log.error({ err: e, compartment: compartmentId }, "could not record an unavailable lock");
      return;
    }
    this.emit("openUnavailable", { parcel: parcelId, compartment: compartmentId, purpose, held: false });
  }

  /**
   * A pulse went out but the board did not acknowledge it, or the door cannot be read: whether it
   * opened is unknown. The flow is held as it is (the code stays used: it must not open twice)
   * until the board answers again and the door can be read (settleHeld).
   */
  private lockUncertain(compartmentId: string, parcelId: string | null, purpose: "deposit" | "collect", r: OpenResult): void {
    try {
      this.write((tx) =>
        tx.event({ type: "lock.uncertain", compartment: compartmentId, parcel: parcelId, data: { purpose, attempts: r.attempts, unfired: r.unfired ?? 0, error: describe(r.error) } }),
      );
    } catch (e) {
      this.log.error({ err: e, compartment: compartmentId }, "could not record an uncertain lock");
      return;
    }
    this.held.add(compartmentId);
    this.emit("openUnavailable", { parcel: parcelId, compartment: compartmentId, purpose, held: true });
    // One lost reply is no outage: if the board still answers after another verify window, its
    // door reading is fresh and settles the flow. A board that went silent is declared faulted by
    // then, and its flows wait for its recovery (Runtime → settleHeld).
    clearTimeout(this.settleTimer);
    // A pulse the stop cut short lands here too: no timer may outlive the ledger it reads.
    if (this.stopping) return;
    this.settleTimer = setTimeout(() => this.settleHeld(), this.deps.config.locks.openVerifyMs);
    this.settleTimer.unref?.();
  }

  /**
   * Flows held because their board did not answer: once the door can be read again, a door seen
   * open goes on as a normal flow, and one still shut (never seen open) is rolled back: the code
   * works again. Called when a device recovers, and after each uncertain outcome.
   */
  settleHeld(): string[] {
    const settled: string[] = [];
    if (this.stopping) return settled;
    for (const id of [...this.held]) {
      const layout = this.byId.get(id);
      const c = this.deps.ledger.compartment(id);
      if (!layout || !c || (c.state !== "loading" && c.state !== "unloading") || c.doorOpened) {
        this.held.delete(id);
        continue;
      }
      const door = this.deps.hardware.doors.read(layout.lock);
      if (door === "unknown" || !this.lockAvailable(id)) continue;
      this.held.delete(id);
      if (door === "open") {
        this.onDoor(layout.lock, "open");
        settled.push(id);
        continue;
      }
      try {
        const parcel = c.parcelId ? this.deps.ledger.parcel(c.parcelId) : undefined;
        this.write((tx) => {
          tx.event({ type: "lock.settled", compartment: id, parcel: c.parcelId, data: { door, outcome: "not opened" } });
          rollBack(tx, c, parcel, this.deps.now(), "lock unavailable");
        });
        settled.push(id);
      } catch (e) {
        this.log.error({ err: e, compartment: id }, "could not settle a held flow");
      }
    }
    return settled;
  }

  /** Whether the board driving this compartment's lock answers (true where the hardware cannot tell). */
  lockAvailable(id: string): boolean {
    const layout = this.byId.get(id);
    if (!layout) return false; // not served (retired): never offered
    return this.deps.hardware.lockAvailable?.(layout.lock) ?? true;
  }

  private assertLockAvailable(id: string): void {
    if (this.lockAvailable(id)) return;
    throw new LockerError(ErrorCode.HardwareUnavailable, `${id}: its lock board is not answering; try again later`, { compartment: id });
  }

  /** The door never opened: out of service; the person's parcel and code stay as they were. */
  private lockFailed(compartmentId: string, purpose: "deposit" | "collect", r: OpenResult): void {
    const now = this.deps.now();
    let parcelId: string | null = null;
    try {
      this.write((tx) => {
        const c = this.compartment(compartmentId);
        if (c.state !== "loading" && c.state !== "unloading") return; // the door opened late and the flow moved on
        parcelId = c.parcelId;
        const parcel = parcelId ? this.deps.ledger.parcel(parcelId) : undefined;
        if (purpose === "deposit" && parcel) {
          undoDeposit(tx, parcel, now);
          tx.event({ type: "deposit.aborted", compartment: c.id, parcel: parcel.id, data: { reason: "lock did not open" } });
        } else if (parcel) {
          undoCollect(tx, parcel);
          tx.event({ type: "pickup.aborted", compartment: c.id, parcel: parcel.id, data: { reason: "lock did not open" } });
        }
        tx.updateCompartment(c.id, {
          state: "fault",
          faultReason: "lock did not open",
          failedOpens: c.failedOpens + 1,
          parcelId: purpose === "deposit" ? null : c.parcelId,
          since: now,
        });
        const error = r.error === undefined ? {} : { error: r.error instanceof Error ? r.error.message : String(r.error) };
        tx.event({ type: "compartment.fault", compartment: c.id, data: { reason: "lock did not open", attempts: r.attempts, unfired: r.unfired ?? 0, purpose, ...error } });
      });
    } catch (e) {
      this.log.error({ err: e, compartment: compartmentId }, "could not record lock fault");
      return;
    }
    this.emit("openFailed", { parcel: parcelId, compartment: compartmentId, purpose });
  }

  /** Door edges from the sensors (and the reading at start). */
  private onDoor(channel: number, state: DoorState, origin: "edge" | "start" = "edge"): void {
    const layout = this.byChannel.get(channel);
    if (!layout || state === "unknown") return;
    try {
      // Asked before the waiter is settled: a door a pulse is waiting for is no forced door.
      const pulsed = this.waiters.expecting(layout.id);
      if (state === "open") this.waiters.opened(layout.id);
      const done = this.write((tx) => this.doorStep(tx, layout.id, state, origin, pulsed));
      const codes = this.pendingCodes.splice(0);
      if (done) this.emit(done.kind, done.payload as never);
      // Codes drawn in that transaction exist now: announce them (never one whose commit failed:
      // a recipient must not be sent a code the bank does not have).
      for (const c of codes) this.emit("codeIssued", c);
    } catch (e) {
      this.pendingCodes.length = 0;
      this.log.error({ err: e, compartment: layout.id, state }, "door change not recorded");
    }
  }

  private doorStep(
    tx: LedgerTx,
    id: string,
    state: "open" | "closed",
    origin: "edge" | "start",
    pulsed = false,
  ):
    | { kind: "loaded"; payload: BankEvents["loaded"][0] }
    | { kind: "unloaded"; payload: BankEvents["unloaded"][0] }
    | undefined {
    const c = this.compartment(id);
    if (c.door === state) return undefined;
    const now = this.deps.now();
    const expected = c.state === "loading" || c.state === "unloading" || pulsed;
    tx.updateCompartment(id, { door: state, ...(state === "open" && expected ? { doorOpened: true } : {}) });
    tx.event({ type: state === "open" ? "door.opened" : "door.closed", compartment: id, data: origin === "start" ? { origin } : {} });
    if (origin === "edge" && state === "open" && !expected && c.state !== "fault") {
      tx.updateCompartment(id, { inspectSince: now });
      tx.event({ type: "alarm.forced_open", compartment: id, parcel: c.parcelId, data: { state: c.state } });
    }
    if (state !== "closed" || !c.doorOpened || !c.parcelId) return undefined;
    const parcel = this.deps.ledger.parcel(c.parcelId);
    if (!parcel) return undefined;
    if (c.state === "unloading") return { kind: "unloaded", payload: this.finishCollect(tx, c, parcel, now, {}) };
    if (c.state === "loading" && parcel.direction === "outbound") {
      assertTransition(id, c.state, "occupied");
      tx.updateCompartment(id, { state: "occupied", doorOpened: false, since: now });
      tx.updateParcel(parcel.id, { status: "stored", depositedAt: now, collectCredential: null });
      tx.event({ type: "parcel.dropped_off", compartment: id, parcel: parcel.id, actor: parcel.depositorId, data: { size: parcel.size } });
      return { kind: "loaded", payload: { parcel: parcel.id, compartment: id, awaitingRecipient: false } };
    }
    if (c.state === "loading" && parcel.recipientId !== null) {
      // Reserved by the server for a known recipient: stored at once, the code goes out.
      assertTransition(id, c.state, "occupied");
      tx.updateCompartment(id, { state: "occupied", doorOpened: false, since: now });
      const code = this.store(tx, { ...parcel, depositedAt: now }, parcel.depositorId ?? "courier");
      const recipient = this.deps.ledger.person(parcel.recipientId);
      this.pendingCodes.push({ parcel: parcel.id, person: parcel.recipientId, name: recipient?.name ?? parcel.recipientId, compartment: id, code });
      return { kind: "loaded", payload: { parcel: parcel.id, compartment: id, awaitingRecipient: false } };
    }
    if (c.state === "loading") {
      assertTransition(id, c.state, "occupied");
      tx.updateCompartment(id, { state: "occupied", doorOpened: false, since: now });
      tx.updateParcel(parcel.id, { status: "awaiting_recipient", depositedAt: now });
      tx.event({ type: "parcel.awaiting_recipient", compartment: id, parcel: parcel.id, actor: parcel.depositorId, data: {} });
      return { kind: "loaded", payload: { parcel: parcel.id, compartment: id, awaitingRecipient: true } };
    }
    return undefined;
  }

  /** A collection is done: the parcel has left its compartment (door closed after it opened, or an item sensor's word). */
  private finishCollect(tx: LedgerTx, c: Compartment, parcel: Parcel, now: number, extra: Record<string, unknown>): BankEvents["unloaded"][0] {
    const via = (parcel.collectVia ?? "code") as CollectVia;
    const outcome = COLLECT_OUTCOME[via];
    assertTransition(c.id, c.state, "free");
    tx.updateParcel(parcel.id, { status: outcome.status, closedAt: now });
    if (via !== "code" && via !== "badge") tx.revokeParcelCredentials(parcel.id, "code", now);
    tx.updateCompartment(c.id, { state: "free", parcelId: null, doorOpened: false, since: now });
    tx.voidDeadlines(parcel.id, now);
    tx.event({
      type: outcome.event,
      compartment: c.id,
      parcel: parcel.id,
      actor: parcel.collectorId,
      data: { via, terminal: parcel.collectTerminal, recipient: parcel.recipientId, ...extra },
    });
    return { parcel: parcel.id, compartment: c.id, via };
  }

  /**
   * Flows left open by the last run whose door was never seen open. A collection's pulse may have
   * fired and the door opened and shut unrecorded (a crash, a full disk between the commits), so it
   * is settled from what can be known: an item sensor that sees the compartment empty completes it,
   * one that sees the parcel rolls it back (the code works again); without one the compartment is
   * held for inspection and the used code stays used: a one-time code is never valid twice. A
   * deposit is rolled back (the courier is long gone); an item sensor that sees something inside
   * holds it for inspection. (A pulse known not to have fired was rolled back at the stop.)
   */
  private recoverInterrupted(): void {
    const { ledger, hardware, now } = this.deps;
    for (const c of ledger.compartments()) {
      if ((c.state !== "loading" && c.state !== "unloading") || c.door === "open" || c.doorOpened) continue;
      const parcel = c.parcelId ? ledger.parcel(c.parcelId) : undefined;
      const item = this.byId.has(c.id) ? (hardware.itemPresent?.(this.layoutOf(c.id).lock) ?? null) : null;
      const t = now();
      try {
        this.write((tx) => {
          if (c.state === "unloading" && parcel && item === false) {
            this.finishCollect(tx, c, parcel, t, { settled: "item sensor" });
          } else if (c.state === "unloading" && parcel && item === null) {
            holdCollect(tx, parcel);
            tx.updateCompartment(c.id, { state: "fault", faultReason: "pickup outcome unknown after restart: inspect, then lockerctl enable", doorOpened: false, since: t });
            tx.event({ type: "pickup.aborted", compartment: c.id, parcel: parcel.id, data: { reason: "interrupted", outcome: "unknown", held: true } });
            tx.event({ type: "compartment.fault", compartment: c.id, parcel: parcel.id, data: { reason: "pickup outcome unknown after restart", purpose: "collect" } });
          } else {
            rollBack(tx, c, parcel, t, "interrupted");
            if (c.state === "loading" && item === true) {
              tx.updateCompartment(c.id, { inspectSince: t });
              tx.event({ type: "alarm.item_left_inside", compartment: c.id, data: { reason: "interrupted deposit: something is inside" } });
            }
          }
        });
        this.log.warn({ compartment: c.id, state: c.state, item }, "interrupted flow settled");
      } catch (e) {
        this.log.error({ err: e, compartment: c.id }, "could not settle an interrupted flow");
      }
    }
  }

  /** Issue the pickup code for a parcel in its compartment and record the deposit. Returns the code. */
  store(tx: LedgerTx, parcel: Parcel, actor: string): string {
    const now = this.deps.now();
    tx.revokeParcelCredentials(parcel.id, "code", now);
    const code = this.drawCode(tx, "code", { parcelId: parcel.id, personId: parcel.recipientId });
    tx.updateParcel(parcel.id, { status: "stored", depositedAt: parcel.depositedAt ?? now });
    tx.event({
      type: "parcel.deposited",
      compartment: parcel.compartmentId,
      parcel: parcel.id,
      actor,
      data: { size: parcel.size, recipient: parcel.recipientId, depositor: parcel.depositorId, credential: "code", ...this.sealed(code, parcel.id) },
    });
    const compartment = parcel.compartmentId ? this.deps.ledger.compartment(parcel.compartmentId) : undefined;
    for (const n of noticesFor(this.deps.config.policies, parcel.depositedAt ?? now, parcel.size, compartment?.refrigerated ?? false)) {
      tx.insertDeadline({ parcelId: parcel.id, ...n });
    }
    return code;
  }

  /** `{sealedCode}` for an event, when the server gave a key to seal codes for. */
  sealed(code: string, parcelId: string): { sealedCode?: ReturnType<Sealer["seal"]> } {
    return this.deps.sealer ? { sealedCode: this.deps.sealer.seal(code, parcelId) } : {};
  }

  /** A fresh random code, unique among live pickup and drop-off codes, stored as its HMAC. @internal (remote.ts) */
  drawCode(tx: LedgerTx, kind: "code" | "dropoff", owner: { parcelId?: string; personId?: string | null }): string {
    for (let i = 0; i < CODE_ATTEMPTS; i++) {
      const code = generateCode(this.deps.config.codes.length);
      try {
        tx.insertCredential(kind, secretHash(this.deps.deviceKey, "code", code), owner, this.deps.now());
        return code;
      } catch (e) {
        if ((e as LockerError).code === ErrorCode.Busy) continue; // another live code has it: draw again
        throw e;
      }
    }
    throw new LockerError(ErrorCode.Busy, "could not draw a unique code: code space nearly full");
  }

  /**
   * A wrong code, PIN or badge: counted against the terminal (decaying with time only). One row per
   * attempt until the terminal locks; while locked nothing is checked or written (assertNotLockedOut),
   * so a flood costs a bounded number of rows: at most `threshold` per lockout, which grows.
   */
  /** @internal (passes.ts, fingers) A refused credential: counted toward the terminal's lockout, on record. */
  badAttempt(terminal: string, kind: "code" | "pin" | "badge" | "pass" | "finger", reason?: string): LockerError {
    const { ledger, now, config } = this.deps;
    const out = recordFailure(ledger.terminal(terminal) ?? NO_LOCKOUT, now(), config.lockout);
    const refused = this.refusedWhileLocked.get(terminal) ?? 0;
    this.write((tx) => {
      tx.setTerminal(terminal, out.state);
      tx.event({ type: "code.rejected", data: { terminal, kind, failures: out.state.failures, ...(reason ? { reason } : {}), ...(refused ? { refusedWhileLocked: refused } : {}) } });
      if (out.lockedForMs) tx.event({ type: "terminal.locked_out", data: { terminal, ms: out.lockedForMs, failures: out.state.failures } });
      if (out.alarm) tx.event({ type: "alarm.brute_force", data: { terminal, inWindow: out.state.windowFailures } });
    });
    this.refusedWhileLocked.delete(terminal);
    return new LockerError(ErrorCode.InvalidCredential, `${kind} not valid${reason ? `: ${reason}` : ""}`, { lockedForMs: out.lockedForMs, kind, ...(reason ? { reason } : {}) });
  }


  private assertServiceable(c: Compartment): void {
    if (c.state === "fault") {
      throw new LockerError(ErrorCode.LockFault, `${c.id} is out of service: please go to the mailroom`, { compartment: c.id });
    }
    if (c.state !== "occupied") throw new LockerError(ErrorCode.Busy, `${c.id} is busy`, { compartment: c.id, state: c.state });
    this.assertLockAvailable(c.id);
  }

  private unknownCompartment(id: string): LockerError {
    const ids = this.served.map((l) => l.id);
    return new LockerError(ErrorCode.UnknownCompartment, `no compartment ${id} (valid: ${ids[0]}..${ids[ids.length - 1]})`, { id });
  }

  /**
   * The record of what became of a pulse with no state change behind it (lock.skipped: an
   * authorization spent without a coil; a technician's unacknowledged attempts). A disk that refuses
   * the write must not lose it: the audit trail would show an authorization never spent, and a
   * reader matching pulses to authorizations would pair the next pulse with the wrong one. Kept in
   * memory (bounded) with the time it happened, and written right after storage.recovered. Never
   * throws: a ticket's result is often not awaited, and an unhandled rejection stops the daemon.
   */
  recordOutcome(e: NewEvent, what: string): void {
    try {
      this.write((tx) => tx.event(e));
      return;
    } catch (err) {
      if (!this.deps.ledger.storageProblem || this.stopping) {
        this.log.error({ err, compartment: e.compartment }, `could not record ${what}`);
        return;
      }
    }
    if (this.lateOutcomes.length >= MAX_LATE_OUTCOMES) {
      this.log.error({ compartment: e.compartment, type: e.type }, `could not record ${what}: the disk is full and ${MAX_LATE_OUTCOMES} records already wait`);
      return;
    }
    this.lateOutcomes.push({ ...e, data: { ...e.data, occurredAt: this.deps.now() } });
    this.log.warn({ compartment: e.compartment, type: e.type, waiting: this.lateOutcomes.length }, `the disk is full: ${what} is recorded once it takes writes again`);
  }

  /** The outcome records the disk refused, in the order they happened, in one transaction. */
  private writeLateOutcomes(): void {
    if (!this.lateOutcomes.length) return;
    try {
      this.write((tx) => {
        for (const e of this.lateOutcomes) tx.event(e);
      });
      this.log.info({ records: this.lateOutcomes.length }, "records the full disk held back are written");
      this.lateOutcomes.length = 0;
    } catch (err) {
      this.log.error({ err, waiting: this.lateOutcomes.length }, "could not write the records the full disk held back");
    }
  }

  private write<T>(fn: (tx: LedgerTx) => T): T {
    return this.deps.ledger.transact(fn);
  }
}

function describe(e: unknown): string | null {
  return e === undefined ? null : e instanceof Error ? e.message : String(e);
}

function expired(parcel: Parcel): LockerError {
  return new LockerError(ErrorCode.ParcelExpired, `parcel ${parcel.id} passed its pickup deadline: please see the mailroom`, {
    compartment: parcel.compartmentId,
  });
}

/** An app pass being spent: the HMAC of its nonce, and its credential row if it has one (live: a rolled-back use). */
export interface PassUse {
  hash: Buffer;
  credentialId: number | null;
}

/** The pass's credential, used now (inserted the first time), in the caller's transaction. */
function spendPass(tx: LedgerTx, pass: PassUse, parcelId: string, at: number): number {
  const id = pass.credentialId ?? tx.insertCredential("pass", pass.hash, { parcelId }, at);
  tx.setCredentialStatus(id, "used", at);
  return id;
}
