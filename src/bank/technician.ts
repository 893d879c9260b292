// What a technician does to the bank through lockerctl: open a door, take a compartment out of
// service or back in, test every lock, read the sensors, see what is wrong. Every change is an
// audited ledger event naming the OS user and the reason, committed before the lock fires.
import type { DoorState, Hardware } from "../drivers/types.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Ledger } from "../ledger/ledger.js";
import { EVENTS_ALARMS } from "../ledger/migrations.js";
import type { Logger } from "../log.js";
import type { OpenResult } from "./actuation.js";
import type { Bank } from "./bank.js";

export interface TechnicianDeps {
  bank: Bank;
  ledger: Ledger;
  hardware: Hardware;
  now: () => number;
  log: Logger;
}

export interface Actor {
  /** lockerctl: the OS user the admin socket proved (admin/identity.ts); else a person id, a terminal, `server`. */
  user: string;
  reason: string;
  /** lockerctl: the user the client claimed (SUDO_USER, its request's `user`) when it is not `user`; kept in the events' data. */
  claimedUser?: string | undefined;
}

/** The claimed user beside the proven one, for an event's data. */
const claim = (who: { claimedUser?: string | undefined }) => (who.claimedUser ? { claimedUser: who.claimedUser } : {});

export interface OpenReport {
  compartment: string;
  opened: boolean;
  attempts: number;
  /** Pulse start to door seen open. */
  ms: number | null;
  error: string | null;
  /** The lock's board did not take the pulse (down, or no answer): not the lock's fault, nothing marked. */
  unavailable?: true;
  /** relay-test: the door already read open before the pulse, so the pulse proves nothing (wrong sensor polarity?). */
  unverified?: true;
}

export interface OpenAlarm {
  kind: "fault" | "lockout" | "forced_open" | "door_open" | "no_recipient" | "expired" | "sensor_flapping" | "temperature" | "sensor_fault";
  compartment: string | null;
  since: number;
  detail: string;
}


export class Technician {
  private readonly log: Logger;

  private readonly query;

  constructor(private readonly deps: TechnicianDeps) {
    this.log = deps.log.child({ module: "technician" });
    const db = deps.ledger.db;
    this.query = {
      lockouts: db.prepare("SELECT id, locked_until FROM terminals WHERE locked_until > ?"),
      // One aggregate only: SQLite then takes the bare columns (ts, data) from the max(seq) row.
      sensorAlarms: db.prepare(
        `SELECT compartment, substr(type, 7) AS kind, max(seq) AS seq, ts, data FROM events
         WHERE ${EVENTS_ALARMS} AND type <> 'alarm.cleared' GROUP BY compartment, type`,
      ),
      cleared: db.prepare("SELECT max(seq) AS seq FROM events WHERE type = 'alarm.cleared' AND compartment = ? AND json_extract(data, '$.alarm') = ?"),
      lastEvent: db.prepare("SELECT ts FROM events WHERE type = ? AND compartment = ? ORDER BY seq DESC LIMIT 1"),
    };
  }

  /** Open one door (remote override for a technician), whatever the compartment holds. */
  async open(entry: string, who: Actor): Promise<OpenReport> {
    const c = this.deps.bank.compartmentByKeypad(entry);
    this.deps.ledger.transact((tx) => {
      tx.updateCompartment(c.id, { pulses: c.pulses + 1 });
      tx.event({ type: "admin.open", compartment: c.id, parcel: c.parcelId, actor: who.user, data: { reason: who.reason, state: c.state, ...claim(who) } });
    });
    return this.pulse(c.id, who);
  }

  /** Pulse each lock in turn (the queue keeps the power budget) and report whether its door opened. */
  async relayTest(entries: readonly string[], who: Actor): Promise<OpenReport[]> {
    const ids = entries.length
      ? entries.map((e) => this.deps.bank.compartmentByKeypad(e).id)
      : this.deps.bank.compartments().filter((c) => !c.parcelId && c.state !== "loading" && c.state !== "unloading").map((c) => c.id);
    const reports: OpenReport[] = [];
    for (const id of ids) {
      const c = this.deps.bank.compartment(id);
      this.deps.ledger.transact((tx) => {
        tx.updateCompartment(id, { pulses: c.pulses + 1 });
        tx.event({ type: "admin.open", compartment: id, parcel: c.parcelId, actor: who.user, data: { reason: who.reason, state: c.state, test: true, ...claim(who) } });
      });
      // A door that reads open before its lock fires cannot show that the lock works: "opened after
      // 0 ms" would be a false pass (a door left open, or a sensor/lock-bit polarity set the wrong way).
      if (this.deps.hardware.doors.read(this.deps.bank.layoutOf(id).lock) === "open") {
        reports.push({ compartment: id, opened: false, attempts: 0, ms: null, error: "door already reads open: close it (or check the door sensor polarity), then test again", unverified: true });
        continue;
      }
      reports.push(await this.pulse(id, who));
    }
    return reports;
  }

  /** Out of service (not assigned to new parcels) or back in; enabling also clears a fault. */
  setEnabled(entry: string, enabled: boolean, who: { user: string; reason?: string | undefined; claimedUser?: string | undefined }): void {
    const c = this.deps.bank.compartmentByKeypad(entry);
    if (!enabled && (c.state === "loading" || c.state === "unloading")) {
      throw new LockerError(ErrorCode.Busy, `${c.id} is in use (${c.state}); try again when its door is closed`);
    }
    const now = this.deps.now();
    this.deps.ledger.transact((tx) => {
      tx.updateCompartment(c.id, { enabled });
      tx.event({ type: enabled ? "compartment.enabled" : "compartment.disabled", compartment: c.id, actor: who.user, data: { reason: who.reason ?? null, ...claim(who) } });
      if (enabled && c.inspectSince !== null) {
        tx.updateCompartment(c.id, { inspectSince: null });
        tx.event({ type: "alarm.cleared", compartment: c.id, actor: who.user, data: { alarm: "forced_open", since: c.inspectSince, ...claim(who) } });
      }
      if (enabled && c.state === "fault") {
        tx.updateCompartment(c.id, { state: c.parcelId ? "occupied" : "free", faultReason: null, since: now });
        tx.event({ type: "compartment.fault_cleared", compartment: c.id, parcel: c.parcelId, actor: who.user, data: { was: c.faultReason, ...claim(who) } });
      }
    });
  }

  sensors(): { compartment: string; channel: number; door: DoorState }[] {
    return this.deps.bank.compartments().map((c) => {
      const channel = this.deps.bank.layoutOf(c.id).lock;
      return { compartment: c.id, channel, door: this.deps.hardware.doors.read(channel) };
    });
  }

  /** What needs a person's attention now. */
  alarms(): OpenAlarm[] {
    const now = this.deps.now();
    const out: OpenAlarm[] = [];
    for (const c of this.deps.bank.compartments()) {
      if (c.state === "fault") out.push({ kind: "fault", compartment: c.id, since: c.since, detail: c.faultReason ?? "fault" });
      if (c.inspectSince !== null) {
        out.push({ kind: "forced_open", compartment: c.id, since: c.inspectSince, detail: "forced open: inspect, then lockerctl enable" });
      }
      if (c.door === "open" && c.state !== "loading" && c.state !== "unloading") {
        out.push({ kind: "door_open", compartment: c.id, since: this.lastEventTs("door.opened", c.id) ?? c.since, detail: "door open outside a flow" });
      }
      const parcel = c.parcelId ? this.deps.ledger.parcel(c.parcelId) : undefined;
      if (parcel?.expiredAt != null && parcel.status === "stored") {
        out.push({ kind: "expired", compartment: c.id, since: parcel.expiredAt, detail: `parcel ${parcel.id} expired: remove it (staff)` });
      }
      if (parcel?.status === "awaiting_recipient") {
        out.push({ kind: "no_recipient", compartment: c.id, since: parcel.depositedAt ?? c.since, detail: `parcel ${parcel.id} has no recipient` });
      }
    }
    const lockouts = this.query.lockouts.all(now) as { id: string; locked_until: number }[];
    for (const t of lockouts) out.push({ kind: "lockout", compartment: null, since: now, detail: `${t.id} locked for ${Math.ceil((t.locked_until - now) / 1000)} s` });

    // Sensor alarms stay open from their event until the alarm.cleared that names them.
    const raised = this.query.sensorAlarms.all() as { compartment: string; kind: "sensor_flapping" | "temperature" | "sensor_fault"; seq: number; ts: number; data: string }[];
    for (const r of raised) {
      if (((this.query.cleared.get(r.compartment, r.kind) as { seq: number | null }).seq ?? 0) > r.seq) continue;
      const data = JSON.parse(r.data) as { celsius?: number; minC?: number; maxC?: number };
      const detail =
        r.kind === "temperature"
          ? `${data.celsius} °C outside ${data.minC}..${data.maxC} °C`
          : r.kind === "sensor_fault"
            ? "temperature sensor not answering"
            : "door sensor flapping: check the switch and magnet";
      out.push({ kind: r.kind, compartment: r.compartment, since: r.ts, detail });
    }
    return out.sort((a, b) => a.since - b.since);
  }

  private lastEventTs(type: string, compartment: string): number | undefined {
    const r = this.query.lastEvent.get(type, compartment) as { ts: number } | undefined;
    return r?.ts;
  }

  private async pulse(id: string, who: Actor): Promise<OpenReport> {
    const t0 = performance.now();
    let openedAt: number | null = null;
    const onDoor = (channel: number, state: DoorState) => {
      if (state === "open" && channel === this.deps.bank.layoutOf(id).lock && openedAt === null) openedAt = performance.now();
    };
    this.deps.hardware.doors.on("change", onDoor);
    let r: OpenResult;
    try {
      r = await this.deps.bank.actuation.open(id, this.deps.bank.layoutOf(id).lock);
    } finally {
      this.deps.hardware.doors.off("change", onDoor);
    }
    const error = r.error === undefined ? null : r.error instanceof Error ? r.error.message : String(r.error);
    if (r.stopped) throw new LockerError(ErrorCode.ShuttingDown, "lockerd is stopping: the lock was not pulsed");
    const unavailable = r.unavailable === true || r.uncertain === true;
    // A board that did not take the pulse says nothing about the lock: no fault on the compartment.
    if (!r.opened && !unavailable) this.markFault(id, who, r, error);
    if (unavailable) this.recordUnavailable(id, who, r, error);
    else if (r.opened && r.unfired) this.recordUnavailable(id, who, r, error);
    this.log.info({ compartment: id, user: who.user, opened: r.opened, attempts: r.attempts, unavailable }, "technician pulse");
    const ms = r.opened && openedAt !== null ? Math.round(openedAt - t0) : r.opened ? 0 : null;
    return { compartment: id, opened: r.opened, attempts: r.attempts, ms, error: error ?? (unavailable ? "lock board not answering" : null), ...(unavailable ? { unavailable: true as const } : {}) };
  }

  /** Attempts the board did not take: unavailable (none sent), uncertain (not acknowledged), or skipped (the door opened anyway). */
  private recordUnavailable(id: string, who: Actor, r: OpenResult, error: string | null): void {
    this.deps.bank.recordOutcome(
      {
        type: r.opened ? "lock.skipped" : r.unavailable ? "lock.unavailable" : "lock.uncertain",
        compartment: id,
        actor: who.user,
        data: { purpose: "technician", attempts: r.attempts, unfired: r.unfired ?? 0, error, ...(r.opened ? { reason: "door opened; board did not acknowledge" } : {}), ...claim(who) },
      },
      "an unavailable lock",
    );
  }

  private markFault(id: string, who: Actor, r: OpenResult, error: string | null): void {
    const now = this.deps.now();
    this.deps.ledger.transact((tx) => {
      const c = this.deps.bank.compartment(id);
      if (c.state === "loading" || c.state === "unloading") return; // a flow owns it; its own failure path runs
      tx.updateCompartment(id, { state: "fault", faultReason: "lock did not open (technician)", failedOpens: c.failedOpens + 1, since: now });
      tx.event({
        type: "compartment.fault",
        compartment: id,
        actor: who.user,
        data: { reason: "lock did not open", attempts: r.attempts, unfired: r.unfired ?? 0, purpose: "technician", ...(error ? { error } : {}), ...claim(who) },
      });
    });
  }
}
