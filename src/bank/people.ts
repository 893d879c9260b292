// The people directory: who may use the bank and how (roles, recipient number, PIN, badges). It
// lives in the ledger and has ONE owner at a time (config `people.owner`):
//
//   "server"     the server's `directory` command changes it; lockerctl can only list it.
//   "lockerctl"  a technician changes it with `lockerctl people ...`; a `directory` command is
//                refused with `forbidden` (two owners would undo each other's changes).
//
// Default: "server" when sync is enabled, else "lockerctl". Every change is one transaction with
// its event, and the event's `actor` names who made it (the OS user lockerctl proved, or
// "server[:name]"); the person changed is `data.person`. Secrets (PINs, badge ids) are stored only
// as HMACs under the device key, never logged, never in an event.
//
// `seed.people` in the config is for the simulated bank only (the schema refuses it on real
// hardware): applied at start when the seed block changed since last applied (a digest in meta),
// so adding or removing a demo person in the sim's config takes effect.
import { createHash } from "node:crypto";
import type { Config, Role } from "../config/schema.js";
import { isTrivialCode, secretHash } from "../domain/credentials.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Ledger, LedgerTx, Person } from "../ledger/ledger.js";
import type { Fingers } from "./fingers.js";

export type PeopleOwner = "server" | "lockerctl";

export function peopleOwner(config: Pick<Config, "people" | "sync">): PeopleOwner {
  return config.people.owner ?? (config.sync.enabled ? "server" : "lockerctl");
}

/** Who makes a change: the event's actor, plus what is recorded beside it (e.g. claimedUser). */
export interface ChangedBy {
  actor: string;
  data?: Record<string, unknown> | undefined;
}

export interface PersonView {
  id: string;
  name: string;
  roles: Role[];
  number: string | null;
  active: boolean;
  pin: boolean;
  badges: number;
  /** Fingerprints enrolled (live slots on the bank's modules). */
  fingers: number;
  updatedAt: number;
}

export interface DirectoryEntry {
  id: string;
  name: string;
  roles: Role[];
  number?: string | undefined;
  badges?: string[] | undefined;
  active: boolean;
}

const SEED_META = "people.seedDigest";
export const MIN_PIN = 4;
export const MAX_PIN = 12;

export class People {
  private readonly stmt;

  constructor(private readonly deps: { ledger: Ledger; deviceKey: Buffer; owner: PeopleOwner; now: () => number; fingers?: Fingers | undefined }) {
    this.stmt = {
      list: deps.ledger.db.prepare(
        `SELECT p.*, (SELECT count(*) FROM credentials c WHERE c.person_id = p.id AND c.kind = 'pin' AND c.status = 'live') AS pins,
                (SELECT count(*) FROM credentials c WHERE c.person_id = p.id AND c.kind = 'badge' AND c.status = 'live') AS badges,
                (SELECT count(*) FROM finger_slots f WHERE f.person_id = p.id AND f.status = 'live') AS fingers
         FROM people p ORDER BY p.id`,
      ),
    };
  }

  get owner(): PeopleOwner {
    return this.deps.owner;
  }

  list(): PersonView[] {
    return (this.stmt.list.all() as Record<string, unknown>[]).map((r) => ({
      id: r.id as string,
      name: r.name as string,
      roles: String(r.roles).split(",").filter(Boolean) as Role[],
      number: (r.number as string | null) ?? null,
      active: r.active === 1,
      pin: Number(r.pins) > 0,
      badges: Number(r.badges),
      fingers: Number(r.fingers),
      updatedAt: r.updated_at as number,
    }));
  }

  /** Refuse a change from whoever does not own the directory. */
  assertOwner(by: PeopleOwner): void {
    if (by === this.deps.owner) return;
    const how = this.deps.owner === "server" ? "the server's directory command" : "`lockerctl people` on the bank";
    throw new LockerError(ErrorCode.Forbidden, `this bank's people directory is managed by ${how} (config people.owner: "${this.deps.owner}")`, { owner: this.deps.owner });
  }

  // ── the technician's changes (lockerctl people ...) ───────────────────────

  add(p: { id: string; name: string; roles: Role[]; number?: string | undefined }, by: ChangedBy): PersonView {
    this.assertOwner("lockerctl");
    const { ledger, now } = this.deps;
    if (ledger.person(p.id)) throw new LockerError(ErrorCode.BadInput, `person ${p.id} exists: use set-pin, set-badge, enable or disable`, { person: p.id });
    this.assertNumberFree(p.number, p.id);
    ledger.transact((tx) => {
      tx.upsertPerson({ id: p.id, name: p.name, roles: p.roles, number: p.number ?? null, active: true }, now());
      tx.event({ type: "person.added", actor: by.actor, data: { ...by.data, person: p.id, roles: p.roles, number: p.number !== undefined } });
    });
    return this.view(p.id);
  }

  /** Disable (a leaver: every PIN and badge revoked at once) or enable again (credentials stay revoked). */
  setActive(id: string, active: boolean, by: ChangedBy, reason?: string): PersonView {
    this.assertOwner("lockerctl");
    const p = this.person(id);
    const { ledger, now } = this.deps;
    ledger.transact((tx) => {
      const t = now();
      tx.upsertPerson({ ...p, active }, t);
      if (active) {
        tx.event({ type: "person.enabled", actor: by.actor, data: { ...by.data, person: id, reason: reason ?? null } });
      } else {
        const pins = tx.revokePersonCredentials(id, "pin", t);
        const badges = tx.revokePersonCredentials(id, "badge", t);
        tx.event({ type: "person.disabled", actor: by.actor, data: { ...by.data, person: id, pins, badges, reason: reason ?? null } });
        this.deps.fingers?.withdrawIn(tx, id, by, "person disabled");
      }
    });
    return this.view(id);
  }

  /** A new PIN (or none): the old one is revoked in the same transaction. */
  setPin(id: string, pin: string | null, by: ChangedBy): PersonView {
    this.assertOwner("lockerctl");
    const p = this.person(id);
    if (pin !== null) checkPin(pin);
    this.replaceCredential(p, "pin", pin === null ? [] : [pin], by, "person.pin_set");
    return this.view(id);
  }

  /** Badges replace the person's badges (none: every badge revoked). */
  setBadges(id: string, badges: string[], by: ChangedBy): PersonView {
    this.assertOwner("lockerctl");
    const p = this.person(id);
    this.replaceCredential(p, "badge", badges, by, "person.badge_set");
    return this.view(id);
  }

  // ── the server's directory command ─────────────────────────────────────────

  /** Inside the transaction that records the command id (sync/commands.ts). */
  directory(tx: LedgerTx, a: { upserts?: DirectoryEntry[] | undefined; removals?: string[] | undefined }, by: ChangedBy): { upserted: number; removed: number } {
    this.assertOwner("server");
    const t = this.deps.now();
    for (const p of a.upserts ?? []) {
      this.assertNumberFree(p.number, p.id);
      tx.upsertPerson({ id: p.id, name: p.name, roles: p.roles, number: p.number ?? null, active: p.active }, t);
      tx.revokePersonCredentials(p.id, "badge", t);
      if (!p.active) tx.revokePersonCredentials(p.id, "pin", t);
      this.insertAll(tx, p.id, "badge", p.badges ?? [], t);
      tx.event({ type: "person.updated", actor: by.actor, data: { ...by.data, person: p.id, roles: p.roles, active: p.active, badges: p.badges?.length ?? 0, number: p.number !== undefined } });
      if (!p.active) this.deps.fingers?.withdrawIn(tx, p.id, by, "person disabled");
    }
    let removed = 0;
    for (const id of a.removals ?? []) {
      const p = this.deps.ledger.person(id);
      if (!p) continue;
      tx.upsertPerson({ ...p, active: false }, t);
      const badges = tx.revokePersonCredentials(id, "badge", t);
      const pins = tx.revokePersonCredentials(id, "pin", t);
      tx.event({ type: "person.removed", actor: by.actor, data: { ...by.data, person: id, badges, pins } });
      this.deps.fingers?.withdrawIn(tx, id, by, "person removed");
      removed++;
    }
    return { upserted: a.upserts?.length ?? 0, removed };
  }

  // ── the simulator's seed ───────────────────────────────────────────────────

  /**
   * Apply `seed.people` when it changed since it was last applied: each listed person upserted
   * with their PIN and badge, each person a previous seed listed and this one does not disabled.
   * Returns the number of events written (0: the seed was already applied).
   */
  seed(people: Config["seed"]["people"]): number {
    const { ledger, deviceKey, now } = this.deps;
    const digest = createHash("sha256").update(deviceKey).update(JSON.stringify(people)).digest("hex");
    if (ledger.meta(SEED_META) === digest) return 0;
    // A bank seeded before the digest existed: its first seed stands; record it and change nothing.
    if (ledger.meta(SEED_META) === undefined && ledger.meta("seeded") === "1") {
      ledger.transact((tx) => {
        tx.setMeta(SEED_META, digest);
        tx.setMeta("people.seeded", JSON.stringify(people.map((p) => p.id)));
      });
      return 0;
    }
    const previous = new Set<string>(JSON.parse(ledger.meta("people.seeded") ?? "[]") as string[]);
    let events = 0;
    ledger.transact((tx) => {
      const t = now();
      for (const p of people) {
        previous.delete(p.id);
        tx.upsertPerson({ id: p.id, name: p.name, roles: p.roles, number: p.number ?? null, active: p.active }, t);
        for (const kind of ["pin", "badge"] as const) tx.revokePersonCredentials(p.id, kind, t);
        if (p.active) {
          if (p.pin) this.insertAll(tx, p.id, "pin", [p.pin], t);
          if (p.badge) this.insertAll(tx, p.id, "badge", [p.badge], t);
        }
        tx.event({ type: "person.seeded", actor: "config", data: { person: p.id, roles: p.roles, pin: !!p.pin, badge: !!p.badge, active: p.active } });
        events++;
      }
      for (const id of previous) {
        const p = ledger.person(id);
        if (!p?.active) continue;
        tx.upsertPerson({ ...p, active: false }, t);
        const pins = tx.revokePersonCredentials(id, "pin", t);
        const badges = tx.revokePersonCredentials(id, "badge", t);
        tx.event({ type: "person.disabled", actor: "config", data: { person: id, pins, badges, reason: "no longer in seed.people" } });
        events++;
      }
      tx.setMeta("people.seeded", JSON.stringify(people.map((p) => p.id)));
      tx.setMeta(SEED_META, digest);
      tx.setMeta("seeded", "1");
    });
    return events;
  }

  // ── helpers ────────────────────────────────────────────────────────────────

  private person(id: string): Person {
    const p = this.deps.ledger.person(id);
    if (!p) throw new LockerError(ErrorCode.UnknownPerson, `no person ${id} (lockerctl people list shows who there is)`, { person: id });
    return p;
  }

  private view(id: string): PersonView {
    return this.list().find((p) => p.id === id)!;
  }

  private assertNumberFree(number: string | undefined, id: string): void {
    const byNumber = number ? this.deps.ledger.personByNumber(number) : undefined;
    if (byNumber && byNumber.id !== id) throw new LockerError(ErrorCode.BadInput, `number ${number} belongs to ${byNumber.id}`, { person: id });
  }

  private replaceCredential(p: Person, kind: "pin" | "badge", values: string[], by: ChangedBy, type: "person.pin_set" | "person.badge_set"): void {
    if (!p.active && values.length) throw new LockerError(ErrorCode.IllegalTransition, `${p.id} is disabled: enable them first`, { person: p.id });
    const { ledger, now } = this.deps;
    ledger.transact((tx) => {
      const t = now();
      const revoked = tx.revokePersonCredentials(p.id, kind, t);
      this.insertAll(tx, p.id, kind, values, t);
      tx.event({ type, actor: by.actor, data: { ...by.data, person: p.id, set: values.length, revoked } });
    });
  }

  /** Store each secret's HMAC; one that is live for somebody else is refused without saying whose. */
  private insertAll(tx: LedgerTx, personId: string, kind: "pin" | "badge", values: string[], t: number): void {
    for (const v of values) {
      try {
        tx.insertCredential(kind, secretHash(this.deps.deviceKey, kind, v), { personId }, t);
      } catch (e) {
        if ((e as LockerError).code !== ErrorCode.Busy) throw e;
        const what = kind === "pin" ? "this PIN is in use: choose another" : `a badge of ${personId} is live for another person`;
        throw new LockerError(ErrorCode.BadInput, what, { person: personId });
      }
    }
  }
}

/** A PIN a person will type: digits only, 4-12 long, not a run or repeat (1234, 0000, 2020). */
export function checkPin(pin: string): void {
  if (!/^[0-9]+$/.test(pin)) throw new LockerError(ErrorCode.BadInput, "a PIN is digits only");
  if (pin.length < MIN_PIN || pin.length > MAX_PIN) throw new LockerError(ErrorCode.BadInput, `a PIN has ${MIN_PIN} to ${MAX_PIN} digits`);
  if (isTrivialCode(pin)) throw new LockerError(ErrorCode.BadInput, "that PIN is too easy to guess (a run or a repeat): choose another");
}
