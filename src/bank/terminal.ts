// The keypad dialogue (keys 0-9, *, #) with its display, one per terminal.
//
//   idle ──digits #──▶ pickup by code ──▶ "Door A07 open"
//    │ * PIN #  (or a badge, or a drop-off code: a session starts, in that person's name)
//    ▼
//   courier: size ─▶ depositing (door opens) ─▶ door closed ─▶ recipient no. # ─▶ stored ─▶ another?
//                                                              └ * ─▶ taking (door reopens, parcel back) ─▶ another?
//   staff:   menu ─1▶ size …   ─2▶ door no. # ─▶ taking ─▶ door closed ─▶ shelf no. # ─▶ idle
//                 ─3▶ door no. # ─▶ override open (audited) ─▶ idle   ─4▶ door no. # ─▶ out of service ─▶ idle
//   badge, nothing to pick up: offer ("1 = drop one off") ─1▶ size (then #) ─▶ depositing ─▶ idle
//   another? ("1 = yes") ─1▶ size (then #) ─▶ …
//
// A session belongs to the person whose credential started it and ends with their business: a
// finished flow returns to idle, or to a continuation screen (offer, another?) that only a key
// pressed for it continues. On those screens, and in a size menu reached from them, a choice is a
// single digit then # ("1", size, "#"): more digits than that are a code typed by the next person
// (codes have at least 4), so the stale session ends and the digits become a pickup attempt. A
// digit a menu does not offer does the same. No key for idleTimeoutMs (offerMs on a continuation
// screen): the session ends, idle. Every session's start and end is a `session` event.
import { SIZES, type Config, type Size } from "../config/schema.js";
import type { Buzzer, Display, Input } from "../drivers/types.js";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
import type { Person } from "../ledger/ledger.js";
import { EventEmitter } from "node:events";
import type { Logger } from "../log.js";
import type { Bank, BankEvents, OpenTicket } from "./bank.js";
import type { Technician } from "./technician.js";
import { looksLikePass, type Passes } from "./passes.js";
import type { Fingers } from "./fingers.js";

const MAX_DIGITS = 12;

/** Compartments kept for parcels that ask for them; `#` at the size menu cycles through those the bank has. */
type Special = "refrigerated" | "accessible";
const SPECIAL_LABEL: Record<Special, string> = { refrigerated: "cold", accessible: "low" };

/** What staff want done to the door they name: remove its parcel, open it (override), take it out of service. */
type DoorPurpose = "remove" | "open" | "disable";
const DOOR_PROMPT: Record<DoorPurpose, string> = { remove: "Remove: door no.?", open: "Open: door no.?", disable: "Disable: door no.?" };
/** Recorded as the reason of a staff action taken at the keypad (lockerctl asks a technician for one). */
const KEYPAD_REASON = "staff at the keypad";
/** How a session started: the credential its person presented. */
export type SessionVia = "pin" | "badge" | "finger" | "dropoff";
/** done: their business ended; timeout: no key; superseded: the next person's code or credential. */
export type SessionEnd = "done" | "timeout" | "superseded" | "stopped";
export type SessionChange =
  | { kind: "started"; session: number; terminal: string; person: string; via: SessionVia }
  | { kind: "ended"; session: number; terminal: string; person: string; reason: SessionEnd };

export interface TerminalEvents {
  session: [SessionChange];
}

/**
 * A choice on a screen that continues a session after its business ended: one digit, then #.
 * `typed`: every digit pressed since the continuation screen, so the next person's code is kept whole.
 */
interface Confirm {
  typed: string;
  choice?: Size | "collect";
}

type Mode =
  | { m: "idle"; buf: string; spoiled?: boolean }
  | { m: "pin"; buf: string; spoiled?: boolean }
  | { m: "menu"; person: Person }
  /** Nothing to pick up: "1 = drop one off, * = done". */
  | { m: "offer"; person: Person }
  /** A courier's flow ended: "Another parcel? 1 = yes, * = done". */
  | { m: "another"; person: Person }
  /** Choosing a size; `outbound`: a sender dropping a parcel off (with the drop-off code used, if any); `confirm`: reached from a continuation screen. */
  | { m: "size"; person: Person; outbound?: { credentialId: number | null }; special?: Special; confirm?: Confirm }
  | { m: "collecting"; person: Person; open: string[] }
  | { m: "shelf"; person: Person; parcel: string; compartment: string; buf: string; spoiled?: boolean }
  | { m: "depositing"; person: Person; parcel: string; compartment: string; outbound?: { credentialId: number | null } }
  | { m: "recipient"; person: Person; parcel: string; compartment: string; buf: string; spoiled?: boolean }
  | { m: "door"; person: Person; buf: string; spoiled?: boolean; purpose: DoorPurpose }
  | { m: "taking"; person: Person; compartment: string; why: "remove" | "return" };

export interface TerminalDeps {
  id: string;
  bank: Bank;
  technician: Technician;
  display: Display;
  buzzer: Buzzer;
  sizes: readonly Size[];
  /** Special compartment kinds this bank has (a cold or low compartment exists). */
  specials: readonly Special[];
  options: Config["terminal"];
  log: Logger;
  /** Fingerprint slots → people (bank/fingers.ts); without it a finger is ignored. */
  fingers?: Fingers | undefined;
  /** App passes at the scanner (bank/passes.ts); without it a pass is read as any other scan. */
  passes?: Passes | undefined;
}

interface Session {
  id: number;
  person: Person;
}

let sessionIds = 0;

export class Terminal extends EventEmitter<TerminalEvents> {
  private mode: Mode = { m: "idle", buf: "" };
  /** The person this terminal acts for now, from their credential to the end of their business. */
  private session: Session | null = null;
  /** Set while a result message is shown; the mode's own screen comes back when it ends. */
  private message: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private sizes: readonly Size[];
  private specials: readonly Special[];
  /** What the bank offers after a live layout change, taken once nobody is in a session (setOffer). */
  private nextOffer: { sizes: readonly Size[]; specials: readonly Special[] } | undefined;
  /** The display during a fingerprint enrolment (enrollment()); null: none under way. */
  private enrollLines: string[] | null = null;
  /** Reserved deposits an app pass opened here, until their door closes on the parcel. */
  private readonly passDeposits = new Set<string>();
  private readonly onLoaded = (e: BankEvents["loaded"][0]) => this.loaded(e);
  private readonly onUnloaded = (e: BankEvents["unloaded"][0]) => this.unloaded(e);
  private readonly onOpenFailed = (e: BankEvents["openFailed"][0]) => this.openFailed(e, "jammed");
  private readonly onUnavailable = (e: BankEvents["openUnavailable"][0]) => this.openFailed(e, "unavailable");

  constructor(private readonly deps: TerminalDeps) {
    super();
    this.log = deps.log.child({ module: "terminal", terminal: deps.id });
    this.sizes = SIZES.filter((s) => deps.sizes.includes(s));
    this.specials = deps.specials;
  }

  /**
   * The sizes and special kinds the bank has after a live layout change (SIGHUP). Taken at once
   * when nobody is in a session, else when the session ends: a menu never changes under a
   * person's finger (the digit they type means what the screen said).
   */
  setOffer(sizes: readonly Size[], specials: readonly Special[]): void {
    this.nextOffer = { sizes, specials };
    if (!this.session) this.takeOffer();
  }

  private takeOffer(): void {
    if (!this.nextOffer) return;
    this.sizes = SIZES.filter((s) => this.nextOffer!.sizes.includes(s));
    this.specials = this.nextOffer.specials;
    this.nextOffer = undefined;
  }

  start(): void {
    this.deps.bank.on("loaded", this.onLoaded);
    this.deps.bank.on("unloaded", this.onUnloaded);
    this.deps.bank.on("openFailed", this.onOpenFailed);
    this.deps.bank.on("openUnavailable", this.onUnavailable);
    this.render();
  }

  stop(): void {
    this.deps.bank.off("loaded", this.onLoaded);
    this.deps.bank.off("unloaded", this.onUnloaded);
    this.deps.bank.off("openFailed", this.onOpenFailed);
    this.deps.bank.off("openUnavailable", this.onUnavailable);
    clearTimeout(this.message);
    clearTimeout(this.idleTimer);
    this.endSession("stopped");
  }

  get state(): Mode["m"] {
    return this.mode.m;
  }

  /** The person this terminal acts for now, if any. */
  get sessionPerson(): string | null {
    return this.session?.person.id ?? null;
  }

  /** A prompt from the bank (door left open): shown when nobody is mid-dialogue. */
  notice(lines: string[]): void {
    if (this.mode.m === "idle" && !this.mode.buf) this.flash(lines, undefined, this.mode);
  }

  /** Whatever a person presented at this terminal's devices. */
  input(input: Input): void {
    if (this.enrollLines) return this.log.info({ kind: input.kind }, "input ignored during a fingerprint enrolment");
    switch (input.kind) {
      case "keys":
        return this.keys(input.keys);
      case "badge":
        return this.badge(input.id);
      case "scan":
        return this.scan(input.text);
    }
  }

  /** Keys as they arrive from the keypad; anything but 0-9 * # is ignored. */
  keys(keys: string): void {
    for (const k of keys) {
      if (!/^[0-9*#]$/.test(k)) continue;
      this.key(k);
    }
  }

  badge(id: string): void {
    if (this.enrollLines) return this.log.info("badge ignored during a fingerprint enrolment");
    const busy = ["depositing", "recipient", "door", "taking", "collecting", "shelf"].includes(this.mode.m);
    if (busy) return this.log.info({ mode: this.mode.m }, "badge ignored mid-flow");
    this.dismissMessage();
    this.armIdle();
    try {
      this.identified(this.deps.bank.personByBadge(this.deps.id, id), "badge");
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /**
   * A finger on a fingerprint module (bank/fingers.ts): its person, as a badge's; a touch the
   * module matched to nobody is refused like an unknown badge.
   */
  finger(reader: string, touch: { slot: number; score: number } | { rejected: string }): void {
    const fingers = this.deps.fingers;
    if (!fingers || this.enrollLines) return;
    const busy = ["depositing", "recipient", "door", "taking", "collecting", "shelf"].includes(this.mode.m);
    if (busy) return this.log.info({ mode: this.mode.m }, "finger ignored mid-flow");
    this.dismissMessage();
    this.armIdle();
    try {
      if ("rejected" in touch) throw fingers.refuse(this.deps.id, touch.rejected);
      this.identified(fingers.personBySlot(this.deps.id, reader, touch.slot), "finger");
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /**
   * An enrolment under way at this bank (lockerctl people enroll-finger): its step on the display,
   * the keypad and readers ignored meanwhile; null: over, `done` shown as a result.
   */
  enrollment(lines: string[] | null, done?: { lines: string[]; ok: boolean }): void {
    this.enrollLines = lines;
    if (lines) {
      clearTimeout(this.message);
      this.message = undefined;
      this.show(lines);
      return;
    }
    if (done) return this.flash(done.lines, done.ok ? "ok" : "error", this.mode);
    this.render();
  }

  /** A person identified by a credential they carry (badge, finger): their parcels open, or their menu. */
  private identified(person: Person, via: "badge" | "finger"): void {
    try {
      this.beginSession(person, via);
      const tickets = this.deps.bank.pickupForPerson(this.deps.id, person, via);
      if (tickets.length) return this.opened(tickets);
      if (person.roles.includes("staff")) return this.go({ m: "menu", person });
      if (person.roles.includes("courier")) return this.go({ m: "size", person });
      // Nothing to pick up: a drop-off (a return for a courier to collect) only if they ask for one.
      this.armIdle(this.deps.options.offerMs);
      this.go({ m: "offer", person });
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /**
   * A QR code or barcode: a pickup code, bare or as `L:<code>`; or, for a courier at the size menu
   * (or asked for another parcel), the label of a parcel the server reserved a compartment for.
   */
  scan(text: string): void {
    if (this.deps.passes && looksLikePass(text.trim())) return this.presentPass(text.trim());
    const mode = this.mode;
    const isCode = /^(?:L:)?[0-9]{4,12}$/.test(text.trim());
    const courierWaiting = (mode.m === "size" && !mode.outbound) || mode.m === "another";
    if (courierWaiting && !isCode) return this.depositReserved(mode.person, text.trim());
    this.dismissMessage();
    const m = /^(?:L:)?([0-9]{4,12})$/.exec(text.trim());
    this.idle("superseded");
    this.submitCode(m ? m[1]! : "");
  }

  /** An app pass (bank/passes.ts): whoever was at the keypad is done; the pass's door opens once. */
  private presentPass(text: string): void {
    this.dismissMessage();
    this.idle("superseded");
    try {
      const r = this.deps.passes!.present(this.deps.id, text);
      if (r.kind === "pickup") return this.opened([r.ticket]);
      this.deps.buzzer.sound("ok");
      this.passDeposits.add(r.ticket.parcel!);
      this.flash([`Door ${r.ticket.compartment} open`, "Put parcel in and", "close the door"], undefined, { m: "idle", buf: "" });
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  private key(k: string): void {
    this.armIdle(this.isContinuation() ? this.deps.options.offerMs : undefined);
    const mode = this.mode;
    // Which key and where, never which digit (a code or a PIN is being typed).
    if (this.log.isLevelEnabled("debug")) this.log.debug({ key: k === "#" || k === "*" ? k : "digit", mode: mode.m }, "key");
    if ("spoiled" in mode && mode.spoiled) {
      if (k === "#" || k === "*") {
        mode.spoiled = false;
        this.dismissMessage();
        this.render();
      }
      return;
    }
    this.dismissMessage();
    switch (mode.m) {
      case "idle":
        if (k === "*") return this.go(mode.buf ? { m: "idle", buf: "" } : { m: "pin", buf: "" });
        if (k === "#") return mode.buf ? this.submitCode(mode.buf) : this.render();
        return this.digit(mode, k);
      case "pin":
        if (k === "*") return this.go({ m: "idle", buf: "" });
        if (k === "#") return this.submitPin(mode.buf);
        return this.digit(mode, k);
      case "menu":
        if (k === "*") return this.idle("done");
        if (k === "1") return this.go({ m: "size", person: mode.person });
        if (k === "2") return this.go({ m: "door", person: mode.person, buf: "", purpose: "remove" });
        if (k === "3") return this.go({ m: "door", person: mode.person, buf: "", purpose: "open" });
        if (k === "4") return this.go({ m: "door", person: mode.person, buf: "", purpose: "disable" });
        if (k === "#") return this.render();
        return this.typedCode(k);
      case "offer":
      case "another":
        if (k === "1") {
          const outbound = mode.m === "offer" ? { outbound: { credentialId: null } } : {};
          return this.go({ m: "size", person: mode.person, ...outbound, confirm: { typed: k } });
        }
        if (k === "*") return this.idle("done");
        if (k === "#") return this.render();
        return this.typedCode(k);
      case "size":
        return mode.confirm ? this.confirmKey(mode, mode.confirm, k) : this.sizeKey(mode, k);
      case "collecting":
        return this.render(); // waiting on the doors
      case "shelf":
        if (k === "*") return this.idle("done");
        if (k === "#") return this.submitShelf(mode);
        return this.digit(mode, k);
      case "recipient":
        if (k === "*") {
          if (!mode.buf) return this.takeBack(mode);
          mode.buf = "";
          return this.render();
        }
        if (k === "#") return this.submitRecipient(mode);
        return this.digit(mode, k);
      case "door":
        if (k === "*") return this.go(this.home(mode.person));
        if (k === "#") return this.submitDoor(mode);
        return this.digit(mode, k);
      case "depositing":
      case "taking":
        return this.render(); // waiting on the door; keys only refresh the prompt
    }
  }

  /** The size menu right after a credential: one key chooses. */
  private sizeKey(mode: Extract<Mode, { m: "size" }>, k: string): void {
    if (k === "*") return mode.person.roles.includes("staff") && !mode.outbound ? this.go({ m: "menu", person: mode.person }) : this.idle("done");
    if (k === "#") return this.go({ ...mode, special: this.nextSpecial(mode.special) });
    if (k === "0" && !mode.outbound && this.mayCollect(mode.person)) return this.collectOutbound(mode.person);
    const size = this.sizes[Number(k) - 1];
    if (!size) return this.typedCode(k);
    return this.deposit(mode.person, size, mode.outbound, mode.special);
  }

  /** The size menu reached from a continuation screen: a digit selects, # confirms; more digits are a code. */
  private confirmKey(mode: Extract<Mode, { m: "size" }>, confirm: Confirm, k: string): void {
    if (k === "*") {
      if (confirm.choice === undefined) return this.idle("done");
      return this.go({ ...mode, confirm: { typed: confirm.typed.slice(0, -1) } });
    }
    if (k === "#") {
      if (confirm.choice === undefined) return this.go({ ...mode, special: this.nextSpecial(mode.special) });
      if (confirm.choice === "collect") return this.collectOutbound(mode.person);
      return this.deposit(mode.person, confirm.choice, mode.outbound, mode.special);
    }
    const choice = k === "0" && !mode.outbound && this.mayCollect(mode.person) ? "collect" : this.sizes[Number(k) - 1];
    if (confirm.choice !== undefined || !choice) return this.typedCode(confirm.typed + k);
    this.deps.buzzer.sound("key");
    this.go({ ...mode, confirm: { typed: confirm.typed + k, choice } });
  }

  /** Digits a screen did not ask for: somebody typing a code. The stale session ends; the digits start a code entry. */
  private typedCode(digits: string): void {
    this.log.info({ mode: this.mode.m }, "digits not offered here: read as a code, session ended");
    this.idle("superseded");
    const mode: Mode = { m: "idle", buf: "" };
    this.mode = mode;
    for (const d of digits) this.digit(mode, d);
  }

  /** A digit into the current entry. An overlong entry is spoiled: further digits are ignored until # or *. */
  private digit(mode: { buf: string; spoiled?: boolean }, k: string): void {
    if (mode.spoiled) return;
    if (mode.buf.length >= MAX_DIGITS) {
      mode.buf = "";
      mode.spoiled = true;
      return this.flash(["Too many digits", "Press * or #", "and start again"], "error", this.mode);
    }
    mode.buf += k;
    this.deps.buzzer.sound("key");
    this.render();
  }

  private submitCode(code: string): void {
    try {
      const r = this.deps.bank.presentCode(this.deps.id, code);
      if (r.kind === "pickup") return this.opened([r.ticket]);
      this.deps.buzzer.sound("ok");
      this.armIdle();
      this.beginSession(r.sender, "dropoff");
      this.go({ m: "size", person: r.sender, outbound: { credentialId: r.credentialId } });
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  private submitPin(pin: string): void {
    try {
      const person = this.deps.bank.personByPin(this.deps.id, pin);
      this.deps.buzzer.sound("ok");
      this.beginSession(person, "pin");
      this.go(this.home(person));
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /** normal → each special kind the bank has → normal. */
  private nextSpecial(current: Special | undefined): Special | undefined {
    const order = [undefined, ...this.specials];
    return order[(order.indexOf(current) + 1) % order.length];
  }

  private mayCollect(person: Person): boolean {
    return person.roles.includes("courier") || person.roles.includes("staff");
  }

  private deposit(person: Person, size: Size, outbound?: { credentialId: number | null }, special?: Special): void {
    try {
      const t = this.deps.bank.beginDeposit(this.deps.id, size, person, outbound, special ? { [special]: true } : {});
      this.deps.buzzer.sound("ok");
      this.go({ m: "depositing", person, parcel: t.parcel!, compartment: t.compartment, ...(outbound ? { outbound } : {}) });
    } catch (e) {
      this.fail(e, this.sizeAgain(person, outbound));
    }
  }

  /**
   * The size menu again after something went wrong (no fit, a jammed or unavailable door): the
   * person may have walked away, so a choice there is one digit then # (a code typed by the next
   * person is read as a code), and it waits offerMs.
   */
  private sizeAgain(person: Person, outbound?: { credentialId: number | null }): Mode {
    this.armIdle(this.deps.options.offerMs);
    return { m: "size", person, ...(outbound ? { outbound } : {}), confirm: { typed: "" } };
  }

  private depositReserved(person: Person, parcel: string): void {
    this.dismissMessage();
    this.armIdle();
    try {
      const t = this.deps.bank.beginReservedDeposit(this.deps.id, parcel, person);
      this.deps.buzzer.sound("ok");
      this.go({ m: "depositing", person, parcel: t.parcel!, compartment: t.compartment });
    } catch (e) {
      this.fail(e, this.sizeAgain(person));
    }
  }

  private collectOutbound(courier: Person): void {
    try {
      const tickets = this.deps.bank.collectOutbound(this.deps.id, courier);
      if (!tickets.length) return this.flash(["No parcels to collect"], "error", this.sizeAgain(courier));
      this.deps.buzzer.sound("ok");
      this.go({ m: "collecting", person: courier, open: tickets.map((t) => t.compartment) });
    } catch (e) {
      this.fail(e, this.sizeAgain(courier));
    }
  }

  private submitRecipient(mode: Extract<Mode, { m: "recipient" }>): void {
    try {
      const { compartment } = this.deps.bank.completeDeposit(mode.parcel, mode.buf, mode.person.id);
      this.another(mode.person, [`Stored in ${compartment}`, "Recipient notified"]);
    } catch (e) {
      mode.buf = "";
      this.fail(e, mode);
    }
  }

  private submitDoor(mode: Extract<Mode, { m: "door" }>): void {
    const who = { user: mode.person.id, reason: KEYPAD_REASON };
    try {
      const c = this.deps.bank.compartmentByKeypad(mode.buf);
      switch (mode.purpose) {
        case "remove": {
          const t = this.deps.bank.openForRemoval(this.deps.id, c.id, mode.person);
          return this.go({ m: "taking", person: mode.person, compartment: t.compartment, why: "remove" });
        }
        case "disable":
          this.deps.technician.setEnabled(c.id, false, who);
          return this.done([`${c.id} out of service`, "lockerctl enable", "puts it back"], "ok");
        case "open": {
          // The override is recorded (synchronously, in open()) while the session is still theirs.
          const result = this.deps.technician.open(c.id, who);
          this.done([`Opening ${c.id}`], "ok");
          const after = this.mode;
          result.then(
            (r) => {
              // Shown only while nobody else has started typing since.
              if (this.mode === after) this.flash([r.opened ? `Door ${c.id} open` : `Door ${c.id} ${r.unavailable ? "unavailable" : "jammed"}`], r.opened ? "ok" : "error", after);
            },
            (e: unknown) => {
              if (this.mode === after) this.fail(e, after);
            },
          );
          return;
        }
      }
    } catch (e) {
      mode.buf = "";
      this.fail(e, mode);
    }
  }

  private submitShelf(mode: Extract<Mode, { m: "shelf" }>): void {
    if (!mode.buf) return this.idle("done"); // no shelf: fine
    try {
      this.deps.bank.recordShelf(mode.parcel, mode.buf, mode.person);
      this.done([`Shelf ${mode.buf} noted`], "ok");
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  private takeBack(mode: Extract<Mode, { m: "recipient" }>): void {
    try {
      const t = this.deps.bank.cancelDeposit(this.deps.id, mode.parcel, mode.person);
      this.go({ m: "taking", person: mode.person, compartment: t.compartment, why: "return" });
    } catch (e) {
      this.fail(e, mode);
    }
  }

  private opened(tickets: OpenTicket[]): void {
    const ids = tickets.map((t) => t.compartment);
    this.deps.buzzer.sound("ok");
    const first = ids.length === 1 ? `Door ${ids[0]} open` : `Doors ${ids.slice(0, 4).join(" ")}`;
    this.endSession("done");
    this.flash([first, ids.length === 1 ? "Take your parcel" : "open: take parcels", "and close the door"], undefined, { m: "idle", buf: "" });
  }

  // ── sessions ──────────────────────────────────────────────────────────────

  private beginSession(person: Person, via: SessionVia): void {
    this.endSession("superseded");
    this.session = { id: ++sessionIds, person };
    this.log.info({ session: this.session.id, person: person.id, via }, "session started");
    this.emit("session", { kind: "started", session: this.session.id, terminal: this.deps.id, person: person.id, via });
  }

  private endSession(reason: SessionEnd): void {
    const s = this.session;
    if (!s) return;
    this.session = null;
    this.takeOffer();
    this.log.info({ session: s.id, person: s.person.id, reason }, "session ended");
    this.emit("session", { kind: "ended", session: s.id, terminal: this.deps.id, person: s.person.id, reason });
  }

  /** The session ends; the keypad is the public's again. */
  private idle(reason: SessionEnd): void {
    this.endSession(reason);
    this.go({ m: "idle", buf: "" });
  }

  /** A result, then idle: this person's business is over. */
  private done(lines: string[], sound: "ok" | "error" | undefined): void {
    this.endSession("done");
    this.flash(lines, sound, { m: "idle", buf: "" });
  }

  /** A courier's parcel is in (or back out): "Another parcel? 1 = yes", shortly, else idle. */
  private another(person: Person, lines: string[]): void {
    this.armIdle(this.deps.options.offerMs);
    this.flash([...lines, "Another parcel?", "1 = yes  * = done"], "ok", { m: "another", person });
  }

  private isContinuation(): boolean {
    const m = this.mode;
    return m.m === "offer" || m.m === "another" || (m.m === "size" && m.confirm !== undefined);
  }

  // ── bank events ───────────────────────────────────────────────────────────

  private loaded(e: BankEvents["loaded"][0]): void {
    const mode = this.mode;
    if (this.passDeposits.delete(e.parcel)) {
      if (mode.m === "idle") this.flash([`Stored in ${e.compartment}`, "Recipient notified", "Thank you"], "ok", mode);
      return;
    }
    if (mode.m !== "depositing" || mode.parcel !== e.parcel) return;
    if (mode.outbound) {
      this.armIdle();
      return this.done(["Parcel dropped off", `in ${e.compartment}`, "Thank you"], "ok");
    }
    // A reserved parcel: the recipient is known, the code went out with the deposit.
    if (!e.awaitingRecipient) return this.another(mode.person, [`Stored in ${e.compartment}`, "Recipient notified"]);
    this.armIdle();
    this.go({ m: "recipient", person: mode.person, parcel: e.parcel, compartment: e.compartment, buf: "" });
  }

  private unloaded(e: BankEvents["unloaded"][0]): void {
    const mode = this.mode;
    if (mode.m === "taking" && mode.compartment === e.compartment) {
      this.armIdle();
      if (mode.why === "return") return this.another(mode.person, ["Deposit cancelled", `${e.compartment} is free`]);
      return this.go({ m: "shelf", person: mode.person, parcel: e.parcel, compartment: e.compartment, buf: "" });
    }
    if (mode.m === "collecting" && mode.open.includes(e.compartment)) {
      const open = mode.open.filter((c) => c !== e.compartment);
      if (open.length) return this.go({ ...mode, open });
      return this.another(mode.person, ["Outbound collected"]);
    }
    if (mode.m === "idle" && (e.via === "code" || e.via === "badge" || e.via === "finger" || e.via === "app")) this.flash(["Thank you"], undefined, mode);
  }

  /** A door that did not open: jammed (the lock fired, the door stayed shut) or unavailable (its board did not take the pulse). */
  private openFailed(e: BankEvents["openFailed"][0], why: "jammed" | "unavailable"): void {
    const mode = this.mode;
    const what = `Door ${e.compartment} ${why}`;
    if (mode.m === "collecting" && mode.open.includes(e.compartment)) {
      const open = mode.open.filter((c) => c !== e.compartment);
      return this.flash([what, why === "jammed" ? "Reported" : "Try again later"], "error", open.length ? { ...mode, open } : this.afterCourier(mode.person));
    }
    const mine = (mode.m === "depositing" || mode.m === "taking") && mode.compartment === e.compartment;
    if (mine) {
      const next: Mode = mode.m === "depositing" ? this.sizeAgain(mode.person, mode.outbound) : this.home(mode.person);
      return this.flash([what, mode.m === "depositing" ? "Choose size again" : why === "jammed" ? "Reported" : "Try again later"], "error", next);
    }
    if (mode.m === "idle" && e.purpose === "collect") {
      const lines = why === "jammed" ? [what, "Please go to", "the mailroom"] : [what, "Code still valid:", "try again later", "or see the mailroom"];
      this.flash(lines, "error", { m: "idle", buf: "" });
    }
  }

  // ── screen ────────────────────────────────────────────────────────────────

  private home(person: Person): Mode {
    return person.roles.includes("staff") ? { m: "menu", person } : { m: "size", person };
  }

  private afterCourier(person: Person): Mode {
    return { m: "another", person };
  }

  private go(mode: Mode): void {
    if (mode.m !== this.mode.m) this.log.debug({ from: this.mode.m, to: mode.m }, "dialogue step");
    this.mode = mode;
    this.render();
  }

  private fail(e: unknown, next: Mode): void {
    if (!isLockerError(e)) this.log.error({ err: e }, "terminal action failed");
    if (next.m === "idle" || next.m === "pin") this.endSession("done");
    this.flash(this.errorLines(e), "error", next);
  }

  private errorLines(e: unknown): string[] {
    if (!(e instanceof LockerError)) return ["Sorry, error", "Please try again"];
    switch (e.code) {
      case ErrorCode.InvalidCredential: {
        const ms = Number(e.context.lockedForMs ?? 0);
        if (e.context.kind === "finger") return ms ? ["Finger not known", "Too many tries:", `wait ${Math.ceil(ms / 1000)} s`] : ["Finger not known", "Try again or use", "your code"];
        if (e.context.kind === "pass") return [...passLines(String(e.context.reason)), ...(ms ? [`Too many tries: wait ${Math.ceil(ms / 1000)} s`] : [])];
        return ms ? ["Code not valid", "Too many tries:", `wait ${Math.ceil(ms / 1000)} s`] : ["Code not valid", "Try again"];
      }
      case ErrorCode.LockedOut:
        return ["Too many tries", `Wait ${Math.ceil(Number(e.context.waitMs) / 1000)} s`];
      case ErrorCode.LockFault:
        return [`Door ${String(e.context.compartment)} faulty`, "Please go to", "the mailroom"];
      case ErrorCode.HardwareUnavailable:
        if (e.context.compartment === undefined) return ["Lockers unavailable", "Please try again", "later"];
        return [`Door ${String(e.context.compartment)} unavailable`, "Code still valid:", "try again later", "or see the mailroom"];
      case ErrorCode.ParcelExpired:
        return ["Pickup time over", "Please ask the", "mailroom staff"];
      case ErrorCode.Storage:
        return ["Out of service:", "storage full", "Please try later", "or see the mailroom"];
      case ErrorCode.NoFit:
        return [`No ${e.context.kind ? `${String(e.context.kind)} ` : ""}${String(e.context.size)} free`, "Pick another size", "or use the counter"];
      case ErrorCode.UnknownPerson:
        return ["Unknown recipient", "Enter number again"];
      case ErrorCode.UnknownCompartment:
        return ["No such door", "e.g. 107 = A07"];
      default:
        return [e.message];
    }
  }

  /** Show a result for messageMs (or until a key), then `next`'s screen. */
  private flash(lines: string[], sound: "ok" | "error" | undefined, next: Mode): void {
    if (sound) this.deps.buzzer.sound(sound);
    this.mode = next;
    clearTimeout(this.message);
    this.message = setTimeout(() => {
      this.message = undefined;
      this.render();
    }, this.deps.options.messageMs);
    this.message.unref?.();
    this.show(lines);
  }

  private dismissMessage(): void {
    if (!this.message) return;
    clearTimeout(this.message);
    this.message = undefined;
  }

  private armIdle(ms = this.deps.options.idleTimeoutMs): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.mode.m === "idle" && !this.mode.buf && !this.session) return;
      this.log.info({ mode: this.mode.m }, "idle timeout: dialogue reset");
      this.dismissMessage();
      this.idle("timeout");
    }, ms);
    this.idleTimer.unref?.();
  }

  private render(): void {
    if (this.message) return;
    if (this.enrollLines) return this.show(this.enrollLines);
    const mode = this.mode;
    const mask = (b: string) => "*".repeat(b.length);
    const sizes = this.sizes.map((s, i) => `${i + 1}=${s}`).join(" ");
    switch (mode.m) {
      case "idle":
        return this.show(mode.buf ? ["Enter code", `Code: ${mask(mode.buf)}`, "# = OK  * = clear"] : ["Enter code", "or tap badge", "then press #"]);
      case "pin":
        return this.show(["Courier/staff PIN", `PIN: ${mask(mode.buf)}`, "# = OK  * = back"]);
      case "menu":
        return this.show([`Hello ${mode.person.name}`, "1 Deposit 2 Remove", "3 Open  4 Disable", "* = exit"]);
      case "offer":
        return this.show(["No parcels for you", mode.person.name, "1 = drop one off", "* = done"]);
      case "another":
        return this.show(["Another parcel?", "1 = yes  * = done"]);
      case "size": {
        const kind = mode.special ? ` (${SPECIAL_LABEL[mode.special]})` : "";
        const more = this.specials.length ? `#=${this.specials.map((k) => SPECIAL_LABEL[k]).join("/")}  *=back` : "* = back";
        const title = mode.outbound ? `Drop off: size?${kind}` : `Parcel size?${kind}`;
        if (mode.confirm?.choice !== undefined) {
          const chosen = mode.confirm.choice === "collect" ? "Collect outbound" : `Size ${mode.confirm.choice}${kind}`;
          return this.show([title, chosen, "# = open door", "* = change"]);
        }
        if (mode.confirm) return this.show([title, sizes, "then # to open", more.replace("back", "done")]);
        if (mode.outbound) return this.show([title, sizes, more.replace("back", "cancel")]);
        const waiting = mode.person.roles.includes("courier") ? this.deps.bank.outboundCount() : 0;
        return this.show([title, sizes, ...(waiting ? [`0 = collect ${waiting} out`] : []), more]);
      }
      case "shelf":
        return this.show([`Removed from ${mode.compartment}`, "Shelf no.? #=skip", `No: ${mode.buf}`]);
      case "collecting":
        return this.show([`Doors ${mode.open.slice(0, 3).join(" ")}`, "open: take parcels,", "close the doors"]);
      case "depositing":
        return this.show([`Door ${mode.compartment} open`, "Put parcel in and", "close the door"]);
      case "recipient":
        return this.show([`Parcel in ${mode.compartment}`, "Recipient number?", `No: ${mode.buf}`, mode.buf ? "# = OK  * = clear" : "#=OK  *=take back"]);
      case "door":
        return this.show([DOOR_PROMPT[mode.purpose], "e.g. 107 = A07", `No: ${mode.buf}`, "# = OK  * = back"]);
      case "taking":
        return this.show([`Door ${mode.compartment} open`, mode.why === "return" ? "Take parcel back," : "Remove parcel and", "close the door"]);
    }
  }

  private show(lines: string[]): void {
    const { displayLines, displayWidth } = this.deps.options;
    this.deps.display.show(lines.slice(0, displayLines).map((l) => l.slice(0, displayWidth)));
  }
}

/** What the display says for each refused pass (docs/asyncapi.yaml, App passes). */
function passLines(reason: string): string[] {
  switch (reason) {
    case "expired":
      return ["Pass expired", "Ask for a new one"];
    case "not_yet_valid":
      return ["Pass not valid yet"];
    case "wrong_site":
    case "wrong_device":
      return ["Pass is for", "another locker"];
    case "already_used":
      return ["Pass already used"];
    case "parcel_not_stored":
      return ["No parcel here", "for this pass"];
    case "parcel_not_reserved":
      return ["No reservation", "for this pass"];
    case "no_key":
      return ["Passes not accepted", "here: use your code"];
    default:
      return ["Pass not valid"];
  }
}
