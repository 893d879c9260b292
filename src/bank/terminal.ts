// The keypad dialogue (keys 0-9, *, #) with its display, one per terminal.
//
//   idle ──digits #──▶ pickup by code ──▶ "Door A07 open"
//    │ * PIN #
//    ▼
//   courier: size ─▶ depositing (door opens) ─▶ door closed ─▶ recipient no. # ─▶ stored ─▶ size (next parcel)
//                                                              └ * ─▶ taking (door reopens, parcel back) ─▶ size
//   staff:   menu ─1▶ size …   ─2▶ door no. # ─▶ taking ─▶ door closed ─▶ menu
//                 ─3▶ door no. # ─▶ override open (audited)   ─4▶ door no. # ─▶ out of service
//
// `*` goes back one step (from idle with digits typed: clears them). No key for idleTimeoutMs: idle.
import { SIZES, type Config, type Size } from "../config/schema.js";
import type { Buzzer, Display, Input } from "../drivers/types.js";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
import type { Person } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank, BankEvents, OpenTicket } from "./bank.js";
import type { Technician } from "./technician.js";

const MAX_DIGITS = 12;

/** Compartments kept for parcels that ask for them; `#` at the size menu cycles through those the bank has. */
type Special = "refrigerated" | "accessible";
const SPECIAL_LABEL: Record<Special, string> = { refrigerated: "cold", accessible: "low" };

/** What staff want done to the door they name: remove its parcel, open it (override), take it out of service. */
type DoorPurpose = "remove" | "open" | "disable";
const DOOR_PROMPT: Record<DoorPurpose, string> = { remove: "Remove: door no.?", open: "Open: door no.?", disable: "Disable: door no.?" };
/** Recorded as the reason of a staff action taken at the keypad (lockerctl asks a technician for one). */
const KEYPAD_REASON = "staff at the keypad";
/** After a deposit the courier's session stays open this long for the next parcel, then the keypad is the public's again. */
const NEXT_PARCEL_MS = 10_000;

type Mode =
  | { m: "idle"; buf: string; spoiled?: boolean }
  | { m: "pin"; buf: string; spoiled?: boolean }
  | { m: "menu"; person: Person }
  /** Choosing a size; `outbound`: a sender dropping a parcel off (with the drop-off code used, if any). */
  | { m: "size"; person: Person; outbound?: { credentialId: number | null }; special?: Special }
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
}

export class Terminal {
  private mode: Mode = { m: "idle", buf: "" };
  /** Set while a result message is shown; the mode's own screen comes back when it ends. */
  private message: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly sizes: readonly Size[];
  private readonly onLoaded = (e: BankEvents["loaded"][0]) => this.loaded(e);
  private readonly onUnloaded = (e: BankEvents["unloaded"][0]) => this.unloaded(e);
  private readonly onOpenFailed = (e: BankEvents["openFailed"][0]) => this.openFailed(e);

  constructor(private readonly deps: TerminalDeps) {
    this.log = deps.log.child({ module: "terminal", terminal: deps.id });
    this.sizes = SIZES.filter((s) => deps.sizes.includes(s));
  }

  start(): void {
    this.deps.bank.on("loaded", this.onLoaded);
    this.deps.bank.on("unloaded", this.onUnloaded);
    this.deps.bank.on("openFailed", this.onOpenFailed);
    this.render();
  }

  stop(): void {
    this.deps.bank.off("loaded", this.onLoaded);
    this.deps.bank.off("unloaded", this.onUnloaded);
    this.deps.bank.off("openFailed", this.onOpenFailed);
    clearTimeout(this.message);
    clearTimeout(this.idleTimer);
  }

  get state(): Mode["m"] {
    return this.mode.m;
  }

  /** A prompt from the bank (door left open): shown when nobody is mid-dialogue. */
  notice(lines: string[]): void {
    if (this.mode.m === "idle" && !this.mode.buf) this.flash(lines, undefined, this.mode);
  }

  /** Whatever a person presented at this terminal's devices. */
  input(input: Input): void {
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
    const busy = ["depositing", "recipient", "door", "taking", "collecting"].includes(this.mode.m);
    if (busy) return this.log.info({ mode: this.mode.m }, "badge ignored mid-flow");
    this.dismissMessage();
    this.armIdle();
    try {
      const person = this.deps.bank.personByBadge(this.deps.id, id);
      const tickets = this.deps.bank.pickupForPerson(this.deps.id, person);
      if (tickets.length) return this.opened(tickets);
      if (person.roles.includes("staff")) return this.go({ m: "menu", person });
      if (person.roles.includes("courier")) return this.go({ m: "size", person });
      // Nothing to pick up: offer to drop one off (a return) for a courier to collect.
      this.flash(["No parcels for you", person.name], undefined, { m: "size", person, outbound: { credentialId: null } });
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /**
   * A QR code or barcode: a pickup code, bare or as `L:<code>`; or, for a courier at the size menu,
   * the label of a parcel the server reserved a compartment for.
   */
  scan(text: string): void {
    const mode = this.mode;
    if (mode.m === "size" && !mode.outbound && !/^(?:L:)?[0-9]{4,12}$/.test(text.trim())) return this.depositReserved(mode.person, text.trim());
    this.dismissMessage();
    const m = /^(?:L:)?([0-9]{4,12})$/.exec(text.trim());
    this.mode = { m: "idle", buf: "" };
    this.submitCode(m ? m[1]! : "");
  }

  private key(k: string): void {
    this.armIdle();
    const mode = this.mode;
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
        if (k === "*") return this.go({ m: "idle", buf: "" });
        if (k === "1") return this.go({ m: "size", person: mode.person });
        if (k === "2") return this.go({ m: "door", person: mode.person, buf: "", purpose: "remove" });
        if (k === "3") return this.go({ m: "door", person: mode.person, buf: "", purpose: "open" });
        if (k === "4") return this.go({ m: "door", person: mode.person, buf: "", purpose: "disable" });
        return this.render();
      case "size": {
        if (k === "*") return this.go(mode.person.roles.includes("staff") && !mode.outbound ? { m: "menu", person: mode.person } : { m: "idle", buf: "" });
        if (k === "0" && !mode.outbound) return this.collectOutbound(mode.person);
        if (k === "#") return this.go({ ...mode, special: this.nextSpecial(mode.special) });
        const size = this.sizes[Number(k) - 1];
        if (!size) return this.render();
        return this.deposit(mode.person, size, mode.outbound, mode.special);
      }
      case "collecting":
        return this.render(); // waiting on the doors
      case "shelf":
        if (k === "*") return this.go(this.home(mode.person));
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
      this.go({ m: "size", person: r.sender, outbound: { credentialId: r.credentialId } });
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  private submitPin(pin: string): void {
    try {
      const person = this.deps.bank.personByPin(this.deps.id, pin);
      this.deps.buzzer.sound("ok");
      this.go(this.home(person));
    } catch (e) {
      this.fail(e, { m: "idle", buf: "" });
    }
  }

  /** normal → each special kind the bank has → normal. */
  private nextSpecial(current: Special | undefined): Special | undefined {
    const order = [undefined, ...this.deps.specials];
    return order[(order.indexOf(current) + 1) % order.length];
  }

  private deposit(person: Person, size: Size, outbound?: { credentialId: number | null }, special?: Special): void {
    try {
      const t = this.deps.bank.beginDeposit(this.deps.id, size, person, outbound, special ? { [special]: true } : {});
      this.deps.buzzer.sound("ok");
      this.go({ m: "depositing", person, parcel: t.parcel!, compartment: t.compartment, ...(outbound ? { outbound } : {}) });
    } catch (e) {
      this.fail(e, { m: "size", person, ...(outbound ? { outbound } : {}) });
    }
  }

  private depositReserved(person: Person, parcel: string): void {
    this.dismissMessage();
    this.armIdle();
    try {
      const t = this.deps.bank.beginReservedDeposit(this.deps.id, parcel, person);
      this.deps.buzzer.sound("ok");
      this.go({ m: "depositing", person, parcel: t.parcel!, compartment: t.compartment });
    } catch (e) {
      this.fail(e, { m: "size", person });
    }
  }

  private collectOutbound(courier: Person): void {
    try {
      const tickets = this.deps.bank.collectOutbound(this.deps.id, courier);
      if (!tickets.length) return this.flash(["No parcels to collect"], "error", { m: "size", person: courier });
      this.deps.buzzer.sound("ok");
      this.go({ m: "collecting", person: courier, open: tickets.map((t) => t.compartment) });
    } catch (e) {
      this.fail(e, { m: "size", person: courier });
    }
  }

  private submitRecipient(mode: Extract<Mode, { m: "recipient" }>): void {
    try {
      const { compartment } = this.deps.bank.completeDeposit(mode.parcel, mode.buf, mode.person.id);
      this.flash([`Stored in ${compartment}`, "Recipient notified", "Next parcel: size", "* = done"], "ok", { m: "size", person: mode.person });
      this.armIdle(NEXT_PARCEL_MS);
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
          return this.flash([`${c.id} out of service`, "lockerctl enable", "puts it back"], "ok", this.home(mode.person));
        case "open": {
          const menu = this.home(mode.person);
          this.flash([`Opening ${c.id}`], "ok", menu);
          this.deps.technician.open(c.id, who).then(
            (r) => {
              if (this.mode === menu) this.flash([r.opened ? `Door ${c.id} open` : `Door ${c.id} jammed`], r.opened ? "ok" : "error", menu);
            },
            (e: unknown) => this.fail(e, menu),
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
    if (!mode.buf) return this.go(this.home(mode.person)); // no shelf: fine
    try {
      this.deps.bank.recordShelf(mode.parcel, mode.buf, mode.person);
      this.flash([`Shelf ${mode.buf} noted`], "ok", this.home(mode.person));
    } catch (e) {
      this.fail(e, this.home(mode.person));
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
    this.flash([first, ids.length === 1 ? "Take your parcel" : "open: take parcels", "and close the door"], undefined, { m: "idle", buf: "" });
  }

  // ── bank events ───────────────────────────────────────────────────────────

  private loaded(e: BankEvents["loaded"][0]): void {
    const mode = this.mode;
    if (mode.m !== "depositing" || mode.parcel !== e.parcel) return;
    this.armIdle();
    if (mode.outbound) return this.flash(["Parcel dropped off", `in ${e.compartment}`, "Thank you"], "ok", { m: "idle", buf: "" });
    if (!e.awaitingRecipient) {
      // A reserved parcel: the recipient is known, the code went out with the deposit.
      this.flash([`Stored in ${e.compartment}`, "Recipient notified", "Next parcel: size", "* = done"], "ok", { m: "size", person: mode.person });
      return this.armIdle(NEXT_PARCEL_MS);
    }
    this.go({ m: "recipient", person: mode.person, parcel: e.parcel, compartment: e.compartment, buf: "" });
  }

  private unloaded(e: BankEvents["unloaded"][0]): void {
    const mode = this.mode;
    if (mode.m === "taking" && mode.compartment === e.compartment) {
      if (mode.why === "return") return this.flash(["Deposit cancelled", `${e.compartment} is free`], "ok", { m: "size", person: mode.person });
      return this.go({ m: "shelf", person: mode.person, parcel: e.parcel, compartment: e.compartment, buf: "" });
    }
    if (mode.m === "collecting" && mode.open.includes(e.compartment)) {
      const open = mode.open.filter((c) => c !== e.compartment);
      if (open.length) return this.go({ ...mode, open });
      return this.flash(["Outbound collected", "Thank you"], "ok", { m: "size", person: mode.person });
    }
    if (mode.m === "idle" && (e.via === "code" || e.via === "badge")) this.flash(["Thank you"], undefined, mode);
  }

  private openFailed(e: BankEvents["openFailed"][0]): void {
    const mode = this.mode;
    if (mode.m === "collecting" && mode.open.includes(e.compartment)) {
      const open = mode.open.filter((c) => c !== e.compartment);
      return this.flash([`Door ${e.compartment} jammed`, "Reported"], "error", open.length ? { ...mode, open } : { m: "size", person: mode.person });
    }
    const mine = (mode.m === "depositing" || mode.m === "taking") && mode.compartment === e.compartment;
    if (mine) {
      const next: Mode =
        mode.m === "depositing" ? { m: "size", person: mode.person, ...(mode.outbound ? { outbound: mode.outbound } : {}) } : this.home(mode.person);
      return this.flash([`Door ${e.compartment} jammed`, mode.m === "depositing" ? "Choose size again" : "Reported"], "error", next);
    }
    if (mode.m === "idle" && e.purpose === "collect") {
      this.flash([`Door ${e.compartment} jammed`, "Please go to", "the mailroom"], "error", { m: "idle", buf: "" });
    }
  }

  // ── screen ────────────────────────────────────────────────────────────────

  private home(person: Person): Mode {
    return person.roles.includes("staff") ? { m: "menu", person } : { m: "size", person };
  }

  private go(mode: Mode): void {
    this.mode = mode;
    this.render();
  }

  private fail(e: unknown, next: Mode): void {
    if (!isLockerError(e)) this.log.error({ err: e }, "terminal action failed");
    this.flash(this.errorLines(e), "error", next);
  }

  private errorLines(e: unknown): string[] {
    if (!(e instanceof LockerError)) return ["Sorry, error", "Please try again"];
    switch (e.code) {
      case ErrorCode.InvalidCredential: {
        const ms = Number(e.context.lockedForMs ?? 0);
        return ms ? ["Code not valid", "Too many tries:", `wait ${Math.ceil(ms / 1000)} s`] : ["Code not valid", "Try again"];
      }
      case ErrorCode.LockedOut:
        return ["Too many tries", `Wait ${Math.ceil(Number(e.context.waitMs) / 1000)} s`];
      case ErrorCode.LockFault:
        return [`Door ${String(e.context.compartment)} faulty`, "Please go to", "the mailroom"];
      case ErrorCode.ParcelExpired:
        return ["Pickup time over", "Please ask the", "mailroom staff"];
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
      if (this.mode.m === "idle" && !this.mode.buf) return;
      this.log.info({ mode: this.mode.m }, "idle timeout: dialogue reset");
      this.dismissMessage();
      this.go({ m: "idle", buf: "" });
    }, ms);
    this.idleTimer.unref?.();
  }

  private render(): void {
    if (this.message) return;
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
      case "size": {
        const kind = mode.special ? ` (${SPECIAL_LABEL[mode.special]})` : "";
        const more = this.deps.specials.length ? `#=${this.deps.specials.map((k) => SPECIAL_LABEL[k]).join("/")}  *=back` : "* = back";
        if (mode.outbound) return this.show([`Drop off: size?${kind}`, sizes, more.replace("back", "cancel")]);
        const waiting = mode.person.roles.includes("courier") ? this.deps.bank.outboundCount() : 0;
        return this.show([`Parcel size?${kind}`, sizes, ...(waiting ? [`0 = collect ${waiting} out`] : []), more]);
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
