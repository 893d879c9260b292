// The one Ledger: compartments, parcels, credentials, people, terminals and the hash-chained
// event log (which is also the outbox). Reads are methods on Ledger; writes only happen inside
// `transact`, through a LedgerTx, so a state change and the event reporting it commit together.
//
//   bank ──transact(tx => { tx.updateCompartment(); tx.event() })──▶ SQLite (WAL, synchronous=FULL)
//                                   │ after COMMIT
//                                   ▼
//                       onCommit listeners (sync, sim view)
import { randomUUID } from "node:crypto";
import Database from "better-sqlite3";
import type { Role, Size } from "../config/schema.js";
import type { CompartmentState } from "../domain/compartment.js";
import type { SecretKind } from "../domain/credentials.js";
import {
  canonicalJson,
  eventHash,
  GENESIS_HASH,
  verifyChain,
  type ChainCheck,
  type LedgerEvent,
  type NewEvent,
} from "../domain/events.js";
import type { NoticeKind } from "../domain/deadlines.js";
import type { LockoutState } from "../domain/lockout.js";
import { ErrorCode, LockerError } from "../errors.js";
import { migrate } from "./migrations.js";
import { checkFile } from "./quick-check.js";

export type DoorState = "open" | "closed" | "unknown";
export type ParcelStatus =
  | "reserved"
  | "depositing"
  | "awaiting_recipient"
  | "stored"
  | "collecting"
  | "picked_up"
  | "collected"
  | "removed"
  | "cancelled";
export type Direction = "inbound" | "outbound";
export type CredentialStatus = "live" | "used" | "revoked";
/** What a stored secret is: a pickup code, a PIN, a badge, or a drop-off code (hashed in the "code" domain, so live codes stay unique across both). */
export type CredentialKind = SecretKind | "dropoff";

export interface Compartment {
  id: string;
  position: number;
  size: Size;
  refrigerated: boolean;
  accessible: boolean;
  state: CompartmentState;
  enabled: boolean;
  door: DoorState;
  parcelId: string | null;
  since: number;
  doorOpened: boolean;
  pulses: number;
  failedOpens: number;
  faultReason: string | null;
  /** Forced open at this time: out of assignment until a technician clears it. */
  inspectSince: number | null;
  /** Retired at this time: the config no longer has it (bank/layout.ts); kept for its history only. */
  retiredAt: number | null;
}

export interface Person {
  id: string;
  name: string;
  roles: Role[];
  number: string | null;
  active: boolean;
}

export interface Parcel {
  id: string;
  status: ParcelStatus;
  size: Size;
  compartmentId: string | null;
  recipientId: string | null;
  depositorId: string | null;
  createdAt: number;
  depositedAt: number | null;
  closedAt: number | null;
  collectorId: string | null;
  /** code | badge | staff | technician | server */
  collectVia: string | null;
  collectCredential: number | null;
  collectTerminal: string | null;
  /** Set when the parcel passed its expiry: its code no longer opens; staff remove it. */
  expiredAt: number | null;
  direction: Direction;
}

export interface StoredCommand {
  id: string;
  name: string;
  receivedAt: number;
  repliedAt: number | null;
  reply: unknown;
  /** Kept at least until then (bank clock); null for ids recorded before migration 4. */
  keepUntil: number | null;
  /** What the command was, to tell a repeat from a reused id; null before migration 4. */
  digest: string | null;
}

export interface Deadline {
  parcelId: string;
  stage: number;
  kind: NoticeKind;
  dueAt: number;
}

export interface Credential {
  id: number;
  kind: CredentialKind;
  personId: string | null;
  parcelId: string | null;
  status: CredentialStatus;
}

type Row = Record<string, unknown>;

const CHECKPOINT_IDLE_MS = 1000;
const CHECKPOINT_EVERY = 500;
/** SQLite page cache. better-sqlite3 defaults to 16 MiB; the unlock path touches a few index pages, the OS page cache holds the rest, and RSS stays low. */
const CACHE_KIB = 2048;
/** A ledger write that took this long is reported (onSlowWrite): a sound disk commits in a millisecond or so. */
export const SLOW_WRITE_MS = 50;

const COMPARTMENT_COLUMNS: Record<keyof Omit<Compartment, "id">, string> = {
  position: "position",
  size: "size",
  refrigerated: "refrigerated",
  accessible: "accessible",
  state: "state",
  enabled: "enabled",
  door: "door",
  parcelId: "parcel_id",
  since: "since",
  doorOpened: "door_opened",
  pulses: "pulses",
  failedOpens: "failed_opens",
  faultReason: "fault_reason",
  inspectSince: "inspect_since",
  retiredAt: "retired_at",
};

const PARCEL_COLUMNS: Record<keyof Omit<Parcel, "id">, string> = {
  status: "status",
  size: "size",
  compartmentId: "compartment_id",
  recipientId: "recipient_id",
  depositorId: "depositor_id",
  createdAt: "created_at",
  depositedAt: "deposited_at",
  closedAt: "closed_at",
  collectorId: "collector_id",
  collectVia: "collect_via",
  collectCredential: "collect_cred",
  collectTerminal: "collect_term",
  expiredAt: "expired_at",
  direction: "direction",
};

const toCompartment = (r: Row): Compartment => ({
  id: r.id as string,
  position: r.position as number,
  size: r.size as Size,
  refrigerated: r.refrigerated === 1,
  accessible: r.accessible === 1,
  state: r.state as CompartmentState,
  enabled: r.enabled === 1,
  door: r.door as DoorState,
  parcelId: (r.parcel_id as string | null) ?? null,
  since: r.since as number,
  doorOpened: r.door_opened === 1,
  pulses: r.pulses as number,
  failedOpens: r.failed_opens as number,
  faultReason: (r.fault_reason as string | null) ?? null,
  inspectSince: (r.inspect_since as number | null) ?? null,
  retiredAt: (r.retired_at as number | null) ?? null,
});

const toParcel = (r: Row): Parcel => ({
  id: r.id as string,
  status: r.status as ParcelStatus,
  size: r.size as Size,
  compartmentId: (r.compartment_id as string | null) ?? null,
  recipientId: (r.recipient_id as string | null) ?? null,
  depositorId: (r.depositor_id as string | null) ?? null,
  createdAt: r.created_at as number,
  depositedAt: (r.deposited_at as number | null) ?? null,
  closedAt: (r.closed_at as number | null) ?? null,
  collectorId: (r.collector_id as string | null) ?? null,
  collectVia: (r.collect_via as string | null) ?? null,
  collectCredential: (r.collect_cred as number | null) ?? null,
  collectTerminal: (r.collect_term as string | null) ?? null,
  expiredAt: (r.expired_at as number | null) ?? null,
  direction: (r.direction as Direction | undefined) ?? "inbound",
});

const toPerson = (r: Row): Person => ({
  id: r.id as string,
  name: r.name as string,
  roles: (r.roles as string).split(",").filter(Boolean) as Role[],
  number: (r.number as string | null) ?? null,
  active: r.active === 1,
});

/** An events row as the event it stores (also for tools that read a ledger file directly). */
export const toEvent = (r: Row): LedgerEvent => ({
  seq: r.seq as number,
  id: r.id as string,
  ts: r.ts as number,
  type: r.type as LedgerEvent["type"],
  compartment: (r.compartment as string | null) ?? null,
  parcel: (r.parcel as string | null) ?? null,
  actor: (r.actor as string | null) ?? null,
  data: JSON.parse(r.data as string) as Record<string, unknown>,
  prevHash: r.prev_hash as string,
  hash: r.hash as string,
});

/** SQLite booleans are integers. */
const toSql = (v: unknown): unknown => (typeof v === "boolean" ? (v ? 1 : 0) : v);

export interface LedgerOptions {
  /** Wall-clock ms for record timestamps. */
  now: () => number;
  /** FULL (default): a commit is on disk before transact() returns. */
  /** OFF only for simulations of many banks in one process (benchmarks): no fsync at all. */
  synchronous?: "FULL" | "NORMAL" | "OFF";
}

/** The tables a start checks before serving (Ledger.checkForStart): those that do not grow with the years. */
export const START_CHECKED: ReadonlySet<string> = new Set(["meta", "compartments", "terminals", "finger_slots"]);

export class Ledger {
  readonly db: Database.Database;
  private readonly now: () => number;
  private head: { seq: number; hash: string };
  private pending: LedgerEvent[] = [];
  private inTx = false;
  private readonly listeners = new Set<(events: readonly LedgerEvent[]) => void>();
  private readonly slowListeners = new Set<(ms: number) => void>();
  private full: { since: number; detail: string } | undefined;
  private readonly storageListeners = new Set<(problem: { since: number; detail: string } | undefined) => void>();
  /** The server command whose execution appends events right now (causedBy). */
  private cause: string | undefined;
  /**
   * True while the wall clock is not synchronized (sync/clock.ts): every event appended meanwhile
   * carries data.clockUnsynced = true, inside the hashed data (the chain's contract is unchanged).
   */
  clockUnsynced: (() => boolean) | undefined;
  private readonly stmt;
  private readonly updateCache = new Map<string, Database.Statement>();
  private checkpointTimer: NodeJS.Timeout | undefined;
  private commitsSinceCheckpoint = 0;
  readonly tx: LedgerTx;

  /**
   * `file`: the daemon's ledger, opened, set up and migrated. A Database: one opened elsewhere only
   * to be read (ledger/read-ledger.ts: lockerctl without the daemon): taken as it is, nothing written.
   */
  constructor(file: string | Database.Database, opts: LedgerOptions) {
    this.now = opts.now;
    if (typeof file !== "string") this.db = file;
    else try {
      this.db = new Database(file);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${opts.synchronous ?? "FULL"}`);
      this.db.pragma("foreign_keys = ON");
      this.db.pragma("busy_timeout = 2000");
      this.db.pragma("wal_autocheckpoint = 0");
      this.db.pragma(`cache_size = -${CACHE_KIB}`);
      migrate(this.db);
    } catch (e) {
      throw new LockerError(ErrorCode.Storage, `ledger ${file}: ${(e as Error).message}`, { file });
    }
    const db = this.db;
    this.stmt = {
      // Live compartments only: a retired one is never assigned, opened or shown (bank/layout.ts).
      compartments: db.prepare("SELECT * FROM compartments WHERE retired_at IS NULL ORDER BY position"),
      compartment: db.prepare("SELECT * FROM compartments WHERE id = ?"),
      insertCompartment: db.prepare(
        "INSERT INTO compartments (id, position, size, refrigerated, accessible, since) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      parcel: db.prepare("SELECT * FROM parcels WHERE id = ?"),
      parcelsOf: db.prepare("SELECT * FROM parcels WHERE recipient_id = ? AND status = ? ORDER BY created_at"),
      outbound: db.prepare("SELECT * FROM parcels WHERE direction = 'outbound' AND status = 'stored' ORDER BY created_at"),
      insertParcel: db.prepare(
        "INSERT INTO parcels (id, status, size, compartment_id, recipient_id, depositor_id, created_at, direction, collect_cred) VALUES (@id, @status, @size, @compartmentId, @recipientId, @depositorId, @createdAt, @direction, @collectCredential)",
      ),
      person: db.prepare("SELECT * FROM people WHERE id = ?"),
      personByNumber: db.prepare("SELECT * FROM people WHERE number = ?"),
      upsertPerson: db.prepare(
        `INSERT INTO people (id, name, roles, number, active, updated_at) VALUES (@id, @name, @roles, @number, @active, @now)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, roles = excluded.roles, number = excluded.number,
           active = excluded.active, updated_at = excluded.updated_at`,
      ),
      credential: db.prepare("SELECT id, kind, person_id, parcel_id, status FROM credentials WHERE hash = ? AND status = 'live'"),
      insertCredential: db.prepare(
        "INSERT INTO credentials (kind, hash, person_id, parcel_id, created_at) VALUES (?, ?, ?, ?, ?)",
      ),
      setCredential: db.prepare("UPDATE credentials SET status = ?, used_at = ? WHERE id = ?"),
      parcelCredentials: db.prepare("SELECT id, status FROM credentials WHERE parcel_id = ? AND kind = ? ORDER BY id DESC"),
      // Live codes, and the one a pickup is using right now: revoked, it must not come back if that pickup is rolled back.
      revokeParcel: db.prepare(
        `UPDATE credentials SET status = 'revoked', used_at = @now WHERE parcel_id = @parcel AND kind = @kind
           AND (status = 'live' OR id = (SELECT collect_cred FROM parcels WHERE id = @parcel AND status = 'collecting'))`,
      ),
      relive: db.prepare("UPDATE credentials SET status = 'live', used_at = NULL WHERE id = ? AND status = 'used'"),
      revokePerson: db.prepare("UPDATE credentials SET status = 'revoked', used_at = ? WHERE person_id = ? AND kind = ? AND status = 'live'"),
      liveCodes: db.prepare("SELECT count(*) AS n FROM credentials WHERE kind = 'code' AND status = 'live'"),
      terminal: db.prepare("SELECT * FROM terminals WHERE id = ?"),
      setTerminal: db.prepare(
        `INSERT INTO terminals (id, failures, locked_until, window_start, window_failures, last_failure_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until,
           window_start = excluded.window_start, window_failures = excluded.window_failures, last_failure_at = excluded.last_failure_at`,
      ),
      meta: db.prepare("SELECT value FROM meta WHERE key = ?"),
      insertDeadline: db.prepare("INSERT INTO deadlines (parcel_id, stage, kind, due_at) VALUES (?, ?, ?, ?)"),
      closeDeadline: db.prepare("UPDATE deadlines SET sent_at = ?, outcome = ? WHERE parcel_id = ? AND stage = ? AND sent_at IS NULL"),
      voidDeadlines: db.prepare("UPDATE deadlines SET sent_at = ?, outcome = 'void' WHERE parcel_id = ? AND sent_at IS NULL"),
      dueDeadlines: db.prepare(
        "SELECT parcel_id, stage, kind, due_at FROM deadlines WHERE sent_at IS NULL AND parcel_id IN (SELECT parcel_id FROM deadlines WHERE sent_at IS NULL AND due_at <= ?) ORDER BY parcel_id, stage",
      ),
      nextDeadline: db.prepare("SELECT min(due_at) AS due FROM deadlines WHERE sent_at IS NULL"),
      setMeta: db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
      head: db.prepare("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"),
      insertEvent: db.prepare(
        "INSERT INTO events (seq, id, ts, type, compartment, parcel, actor, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      eventsFrom: db.prepare("SELECT * FROM events WHERE seq >= ? ORDER BY seq LIMIT ?"),
      eventsAll: db.prepare("SELECT * FROM events ORDER BY seq"),
      eventsOfParcel: db.prepare("SELECT * FROM events WHERE parcel = ? ORDER BY seq"),
      count: db.prepare("SELECT count(*) AS events FROM events"),
      firstEvent: db.prepare("SELECT seq, prev_hash FROM events ORDER BY seq LIMIT 1"),
      pruneEvents: db.prepare("DELETE FROM events WHERE seq < ?"),
      firstSinceIn: db.prepare("SELECT min(seq) AS seq FROM events WHERE seq >= ? AND seq < ? AND ts >= ?"),
      // From the parcels under way to their events through events_parcel: as a join SQLite walked the
      // whole event log (1M events: 280 ms at every start and every hourly prune; now under 1 ms).
      firstUnderWay: db.prepare(
        `SELECT min(seq) AS seq FROM events
          WHERE parcel IN (SELECT id FROM parcels WHERE status IN ('reserved', 'depositing', 'awaiting_recipient', 'stored', 'collecting'))`,
      ),
      command: db.prepare("SELECT id, name, received_at, replied_at, reply, keep_until, digest FROM commands WHERE id = ?"),
      insertCommand: db.prepare("INSERT INTO commands (id, name, received_at, keep_until, digest) VALUES (?, ?, ?, ?, ?)"),
      replyCommand: db.prepare("UPDATE commands SET reply = ?, replied_at = ? WHERE id = ?"),
      pruneCommands: db.prepare("DELETE FROM commands WHERE received_at < ? AND reply IS NOT NULL AND (keep_until IS NULL OR keep_until < ?)"),
      // No index on data: read only for a command a restart cut short, once.
      causedBy: db.prepare("SELECT * FROM events WHERE json_extract(data, '$.command') = ? ORDER BY seq"),
    };
    let h: { seq: number; hash: string } | undefined;
    try {
      h = this.stmt.head.get() as typeof h;
    } catch (e) {
      // The log's right edge, where every event is appended, does not read: damaged.
      throw new LockerError(ErrorCode.Storage, `ledger ${typeof file === "string" ? file : "(open)"} is damaged at the newest events: ${(e as Error).message}`, { file });
    }
    this.head = h ?? { seq: 0, hash: GENESIS_HASH };
    this.tx = new LedgerTx(this);
  }

  // ── transactions ──────────────────────────────────────────────────────────

  /**
   * Run `fn` in one IMMEDIATE transaction. Everything it writes, state and events, commits
   * together or not at all; listeners hear of the events only after COMMIT.
   */
  transact<T>(fn: (tx: LedgerTx) => T): T {
    if (this.inTx) return fn(this.tx); // nested: part of the outer transaction
    const savedHead = this.head;
    this.inTx = true;
    let result: T;
    const started = performance.now();
    try {
      result = this.db.transaction(() => fn(this.tx)).immediate();
    } catch (e) {
      this.head = savedHead;
      this.pending = [];
      throw this.storageError(e);
    } finally {
      this.inTx = false;
    }
    const ms = performance.now() - started;
    if (ms >= SLOW_WRITE_MS) for (const l of this.slowListeners) l(ms);
    const committed = this.pending;
    this.pending = [];
    this.scheduleCheckpoint();
    if (committed.length) for (const l of this.listeners) l(committed);
    // Last: whoever hears of it may write again (the storage monitor catches up what was lost).
    if (this.full) this.setFull(undefined);
    return result;
  }

  /**
   * SQLite's automatic checkpoint runs inside the COMMIT that crosses the threshold, putting a
   * database-file fsync on whatever decision made that commit (an unlock). Instead checkpoints run
   * when the ledger has been idle for a second, or after CHECKPOINT_EVERY commits, off the
   * caller's path (setImmediate: after the lock has been told to fire).
   */
  private scheduleCheckpoint(): void {
    clearTimeout(this.checkpointTimer);
    if (++this.commitsSinceCheckpoint >= CHECKPOINT_EVERY) {
      this.checkpointTimer = undefined;
      setImmediate(() => this.checkpoint());
      return;
    }
    this.checkpointTimer = setTimeout(() => this.checkpoint(), CHECKPOINT_IDLE_MS);
    this.checkpointTimer.unref();
  }

  /**
   * Write the WAL back into the database file. Runs from a timer: it must never throw (a full disk
   * here used to be an uncaught exception, exit 70, at every start). A failure is remembered as
   * the ledger's storage problem and tried again at the next commit.
   */
  checkpoint(): void {
    clearTimeout(this.checkpointTimer);
    this.commitsSinceCheckpoint = 0;
    if (!this.db.open || this.inTx) return;
    try {
      this.db.pragma("wal_checkpoint(PASSIVE)");
    } catch (e) {
      this.storageError(e);
    }
  }

  /** Set while the disk refuses the ledger's writes (SQLITE_FULL, an I/O error): since when, and what. */
  get storageProblem(): { since: number; detail: string } | undefined {
    return this.full;
  }

  /** Told when the ledger's writes start failing for lack of space (or I/O) and when one succeeds again. */
  onStorage(listener: (problem: { since: number; detail: string } | undefined) => void): () => void {
    this.storageListeners.add(listener);
    return () => this.storageListeners.delete(listener);
  }

  /** A write error as the caller should see it: a full disk becomes LockerError storage (context.full). */
  private storageError(e: unknown): unknown {
    const code = (e as { code?: unknown }).code;
    const full = code === "SQLITE_FULL" || (typeof code === "string" && code.startsWith("SQLITE_IOERR"));
    if (!full) return e;
    const detail = `${this.db.name}: ${(e as Error).message}`;
    if (!this.full) this.setFull({ since: this.now(), detail });
    return new LockerError(ErrorCode.Storage, `ledger not writable (disk full or failing): ${detail}`, { full: true });
  }

  private setFull(problem: { since: number; detail: string } | undefined): void {
    this.full = problem;
    for (const l of this.storageListeners) l(problem);
  }

  /** Called with the events of each committed transaction, in seq order. */
  onCommit(listener: (events: readonly LedgerEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Told of each committed transaction that took SLOW_WRITE_MS or more (its fsync, nearly always:
   * a sound disk syncs in a millisecond or less). A door waits for that commit: a disk that stalls
   * shows here first, long before it fails.
   */
  onSlowWrite(listener: (ms: number) => void): () => void {
    this.slowListeners.add(listener);
    return () => this.slowListeners.delete(listener);
  }

  /**
   * Run `fn` with every event appended during it (synchronously, in any transaction) marked
   * data.command = `command`: the server can then tell which events its command caused, also
   * those the bank and technician code write on its behalf (pickup.started, admin.open, ...).
   */
  causedBy<T>(command: string, fn: () => T): T {
    const outer = this.cause;
    this.cause = command;
    try {
      return fn();
    } finally {
      this.cause = outer;
    }
  }

  /** @internal used by LedgerTx */
  appendEvent(e: NewEvent): LedgerEvent {
    if (!this.inTx) throw new LockerError(ErrorCode.Internal, "event outside a transaction");
    let data = this.cause !== undefined && e.data?.command === undefined ? { ...e.data, command: this.cause } : e.data;
    if (data?.clockUnsynced === undefined && this.clockUnsynced?.()) data = { ...data, clockUnsynced: true };
    const base = {
      seq: this.head.seq + 1,
      id: randomUUID(),
      ts: this.now(),
      type: e.type,
      // Hashed exactly as SQLite will give them back: TEXT is stored as UTF-8, where a lone UTF-16
      // surrogate cannot exist (it reads back as U+FFFD): one in an actor broke the chain (fuzzer).
      compartment: wellFormed(e.compartment),
      parcel: wellFormed(e.parcel),
      actor: wellFormed(e.actor),
      data: data ?? {},
      prevHash: this.head.hash,
    };
    // Stored as canonical JSON, which parses back to data with the same canonical form and hash.
    const text = canonicalJson(base.data);
    base.data = JSON.parse(text) as Record<string, unknown>;
    const ev: LedgerEvent = { ...base, hash: eventHash(base) };
    this.stmt.insertEvent.run(ev.seq, ev.id, ev.ts, ev.type, ev.compartment, ev.parcel, ev.actor, text, ev.prevHash, ev.hash);
    this.head = { seq: ev.seq, hash: ev.hash };
    this.pending.push(ev);
    return ev;
  }

  /** @internal used by LedgerTx */
  requireTx(): void {
    if (!this.inTx) throw new LockerError(ErrorCode.Internal, "ledger write outside a transaction");
  }

  /** @internal used by LedgerTx: UPDATE with a statement cached per set of columns. */
  update(table: "compartments" | "parcels", columns: Record<string, string>, id: string, patch: Record<string, unknown>): void {
    this.requireTx();
    const keys = Object.keys(patch).filter((k) => patch[k] !== undefined);
    if (!keys.length) return;
    const cacheKey = `${table}:${keys.join(",")}`;
    let st = this.updateCache.get(cacheKey);
    if (!st) {
      const sets = keys.map((k) => {
        const col = columns[k];
        if (!col) throw new LockerError(ErrorCode.Internal, `no column for ${table}.${k}`);
        return `${col} = ?`;
      });
      st = this.db.prepare(`UPDATE ${table} SET ${sets.join(", ")} WHERE id = ?`);
      this.updateCache.set(cacheKey, st);
    }
    const info = st.run(...keys.map((k) => toSql(patch[k])), id);
    if (info.changes !== 1) throw new LockerError(ErrorCode.Internal, `${table} ${id} not found`);
  }

  /** @internal */
  get statements() {
    return this.stmt;
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /** The bank's live compartments, in lock-channel order (never a retired one). */
  compartments(): Compartment[] {
    return (this.stmt.compartments.all() as Row[]).map(toCompartment);
  }

  /** One compartment by id, a retired one too (retiredAt set): callers that serve it check the bank's layout. */
  compartment(id: string): Compartment | undefined {
    const r = this.stmt.compartment.get(id) as Row | undefined;
    return r && toCompartment(r);
  }

  parcel(id: string): Parcel | undefined {
    const r = this.stmt.parcel.get(id) as Row | undefined;
    return r && toParcel(r);
  }

  parcelsOf(personId: string, status: ParcelStatus): Parcel[] {
    return (this.stmt.parcelsOf.all(personId, status) as Row[]).map(toParcel);
  }

  /** Outbound parcels dropped off and waiting for a courier. */
  outboundWaiting(): Parcel[] {
    return (this.stmt.outbound.all() as Row[]).map(toParcel);
  }

  person(id: string): Person | undefined {
    const r = this.stmt.person.get(id) as Row | undefined;
    return r && toPerson(r);
  }

  personByNumber(number: string): Person | undefined {
    const r = this.stmt.personByNumber.get(number) as Row | undefined;
    return r && toPerson(r);
  }

  /** The live credential whose HMAC is `hash`, if any: one index probe. */
  liveCredential(hash: Buffer): Credential | undefined {
    const r = this.stmt.credential.get(hash) as Row | undefined;
    return (
      r && {
        id: r.id as number,
        kind: r.kind as CredentialKind,
        personId: (r.person_id as string | null) ?? null,
        parcelId: (r.parcel_id as string | null) ?? null,
        status: r.status as CredentialStatus,
      }
    );
  }

  /** The newest credential of a kind issued for a parcel (e.g. the pickup code). */
  parcelCredential(parcelId: string, kind: SecretKind): { id: number; status: CredentialStatus } | undefined {
    return this.stmt.parcelCredentials.get(parcelId, kind) as { id: number; status: CredentialStatus } | undefined;
  }

  liveCodeCount(): number {
    return (this.stmt.liveCodes.get() as { n: number }).n;
  }

  terminal(id: string): LockoutState | undefined {
    const r = this.stmt.terminal.get(id) as Row | undefined;
    return (
      r && {
        failures: r.failures as number,
        lockedUntil: r.locked_until as number,
        windowStart: r.window_start as number,
        windowFailures: r.window_failures as number,
        lastFailureAt: r.last_failure_at as number,
      }
    );
  }

  /** Every unsent notice of each parcel that has at least one due by `now`. */
  dueDeadlines(now: number): Deadline[] {
    return (this.stmt.dueDeadlines.all(now) as Row[]).map((r) => ({
      parcelId: r.parcel_id as string,
      stage: r.stage as number,
      kind: r.kind as NoticeKind,
      dueAt: r.due_at as number,
    }));
  }

  nextDeadline(): number | undefined {
    return ((this.stmt.nextDeadline.get() as { due: number | null }).due ?? undefined) as number | undefined;
  }

  meta(key: string): string | undefined {
    return (this.stmt.meta.get(key) as { value: string } | undefined)?.value;
  }

  get headSeq(): number {
    return this.head.seq;
  }

  eventsFrom(seq: number, limit = 1000): LedgerEvent[] {
    return (this.stmt.eventsFrom.all(seq, limit) as Row[]).map(toEvent);
  }

  eventsOfParcel(parcelId: string): LedgerEvent[] {
    return (this.stmt.eventsOfParcel.all(parcelId) as Row[]).map(toEvent);
  }

  /** Events kept (a scan of the whole log: selftest only) and not yet acknowledged by the broker. */
  counts(): { events: number; unpublished: number } {
    const { events } = this.stmt.count.get() as { events: number };
    return { events, unpublished: this.unpublished() };
  }

  /** Events the broker has not acknowledged yet: from the head and the watermark, no scan. */
  unpublished(): number {
    return this.head.seq - this.ackedSeq();
  }

  /**
   * Write a meta value without waiting for the disk (synchronous=NORMAL for this one commit): for
   * the outbox watermark, where losing the last write to a power cut only re-sends events the
   * server already has (at least once), and an fsync per batch of PUBACKs would stall the loop
   * the unlock path runs on. The next durable commit makes it durable too (same WAL).
   */
  setMetaLazy(key: string, value: string): void {
    if (this.inTx) throw new LockerError(ErrorCode.Internal, "setMetaLazy inside a transaction");
    const sync = this.db.pragma("synchronous", { simple: true }) as number;
    this.db.pragma("synchronous = NORMAL");
    try {
      this.stmt.setMeta.run(key, value);
    } catch (e) {
      throw this.storageError(e);
    } finally {
      this.db.pragma(`synchronous = ${sync}`);
    }
    this.scheduleCheckpoint();
  }

  /** The last seq the broker acknowledged: every event up to it is published. */
  ackedSeq(): number {
    return Number(this.meta("outbox.acked") ?? 0);
  }

  /** A command seen before, with its reply (null while it is still executing). */
  command(id: string): StoredCommand | undefined {
    const r = this.stmt.command.get(id) as Row | undefined;
    if (!r) return undefined;
    return {
      id: r.id as string,
      name: r.name as string,
      receivedAt: r.received_at as number,
      repliedAt: (r.replied_at as number | null) ?? null,
      reply: r.reply === null ? null : (JSON.parse(r.reply as string) as unknown),
      keepUntil: (r.keep_until as number | null) ?? null,
      digest: (r.digest as string | null) ?? null,
    };
  }

  /** Events marked as caused by a server command (causedBy), in seq order. */
  eventsCausedBy(command: string): LedgerEvent[] {
    return (this.stmt.causedBy.all(command) as Row[]).map(toEvent);
  }

  /**
   * Retention: delete the oldest events, a prefix of the chain, up to (not including) the first that
   * must stay: the first newer than `before` (ms), the first of any parcel still in the bank (its
   * whole custody history is kept while it is there), the first the broker has not acknowledged
   * (`published`: with a server link), and always the newest (it anchors the chain and the next
   * seq). The chain stays verifiable: the first event kept carries its prevHash, verify() starts
   * from it. Also forgets commands answered before `before`, never one whose command could still be
   * accepted (keep_until not yet passed). At most `limit` events go in one call (one transaction:
   * a first prune of years of history is many short ones, Retention.pass); `more` says whether
   * some past retention are left.
   */
  prune(before: number, opts: { published: boolean; limit?: number } = { published: true }): { events: number; commands: number; more: boolean } {
    const now = this.now();
    const run = this.db.transaction(() => {
      const head = this.head.seq;
      const others = Math.min(head, opts.published ? this.ackedSeq() + 1 : head, (this.stmt.firstUnderWay.get() as { seq: number | null }).seq ?? head);
      const first = (this.stmt.firstEvent.get() as { seq: number } | undefined)?.seq ?? others;
      // The candidate range [first, end) is read once, by seq: the first event in it newer than
      // `before` ends the prefix. A batch reads its own range only, never the whole log.
      const end = Math.min(others, first + (opts.limit ?? Infinity));
      const recent = end > first ? (this.stmt.firstSinceIn.get(first, end, before) as { seq: number | null }).seq : null;
      const upTo = recent ?? end;
      const events = upTo > first ? this.stmt.pruneEvents.run(upTo).changes : 0;
      return { events, commands: this.stmt.pruneCommands.run(before, now).changes, more: recent === null && end < others };
    });
    return run.immediate();
  }

  /**
   * The ledger file's own check (PRAGMA quick_check, or integrity_check with `full`), on a
   * read-only connection: "ok", or the first problems SQLite reports. Never throws.
   */
  static check(file: string, full = false): string {
    return checkFile(file, { full });
  }

  /**
   * The check a start makes before the bank serves, on a read-only connection: quick_check of the
   * tables whose size does not grow with the bank's years and volume (START_CHECKED: the
   * compartments, the terminals, the meta, the fingerprint slots), while the event log's tail is
   * verified by its hash chain (verifyTail: the last 1,000 events read, linked and hashed, the
   * b-tree's right edge that every new event is appended to). The tables that grow (events,
   * parcels, credentials, people, deadlines, commands: 1M codes or 10M events make seconds of
   * quick_check, several times that on a Pi's SD card) are checked with the whole file right after
   * the start in the background (LedgerCheck in bank/storage.ts: alarm.ledger_damaged), by
   * `lockerctl selftest`, and before a restore. A damaged page read meanwhile fails its read: the
   * request is refused, nothing opens.
   */
  static checkForStart(file: string): string {
    return checkFile(file, { only: [...START_CHECKED] });
  }

  /** The same check on this ledger's own connection (selftest; lockerctl reading a ledger it must not touch). */
  integrity(full = true): string {
    return checkFile(this.db, { full });
  }

  /** The schema version the file is at (PRAGMA user_version: migrations applied). */
  schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  /**
   * What the tables must agree on, whatever damage or bug: each a query that returns the rows that
   * break it. Empty: all hold. (selftest runs them; the property test checks the same from outside.)
   */
  invariants(): { rule: string; rows: string[] }[] {
    const RULES: [string, string][] = [
      ["a parcel is in one compartment", "SELECT parcel_id AS x FROM compartments WHERE parcel_id IS NOT NULL GROUP BY parcel_id HAVING count(*) > 1"],
      [
        "a compartment's parcel exists and says it is there",
        "SELECT c.id || ' holds ' || c.parcel_id AS x FROM compartments c LEFT JOIN parcels p ON p.id = c.parcel_id WHERE c.parcel_id IS NOT NULL AND (p.id IS NULL OR p.compartment_id IS NOT c.id)",
      ],
      [
        "a parcel under way is held by its compartment",
        `SELECT p.id || ' (' || p.status || ')' AS x FROM parcels p WHERE p.status IN ('reserved', 'depositing', 'awaiting_recipient', 'stored', 'collecting')
           AND NOT EXISTS (SELECT 1 FROM compartments c WHERE c.parcel_id = p.id)`,
      ],
      [
        "a compartment's state agrees with its parcel",
        `SELECT c.id || ' ' || c.state || ' with ' || coalesce(p.status, 'no parcel') AS x FROM compartments c LEFT JOIN parcels p ON p.id = c.parcel_id
          WHERE (c.state = 'free' AND c.parcel_id IS NOT NULL)
             OR (c.state = 'reserved' AND coalesce(p.status, '') <> 'reserved')
             OR (c.state = 'loading' AND coalesce(p.status, '') <> 'depositing')
             OR (c.state = 'occupied' AND coalesce(p.status, '') NOT IN ('stored', 'awaiting_recipient'))
             OR (c.state = 'unloading' AND coalesce(p.status, '') <> 'collecting')
             OR (c.state = 'fault' AND p.id IS NOT NULL AND p.status NOT IN ('stored', 'awaiting_recipient'))`,
      ],
      ["a retired compartment holds no parcel", "SELECT id || ' holds ' || parcel_id AS x FROM compartments WHERE retired_at IS NOT NULL AND parcel_id IS NOT NULL"],
      [
        "a live pickup code belongs to a parcel waiting for it",
        `SELECT 'credential ' || cr.id || ' of ' || coalesce(cr.parcel_id, 'no parcel') AS x FROM credentials cr LEFT JOIN parcels p ON p.id = cr.parcel_id
          WHERE cr.kind = 'code' AND cr.status = 'live' AND coalesce(p.status, '') <> 'stored'`,
      ],
    ];
    return RULES.map(([rule, sql]) => ({ rule, rows: (this.db.prepare(sql).all() as { x: string }[]).map((r) => r.x) }));
  }

  /** The last `n` events hash and link as they should (what start checks; selftest walks the whole chain). */
  verifyTail(n: number): ChainCheck {
    const from = Math.max(1, this.head.seq - n + 1);
    const events = this.eventsFrom(from, n);
    if (!events.length) return { ok: true, checked: 0 };
    const check = verifyChain(events, events[0]!.prevHash, events[0]!.seq);
    if (check.ok && events.at(-1)!.hash !== this.head.hash) return { ok: false, checked: check.checked, brokenAt: this.head.seq, reason: "head hash differs" };
    return check;
  }

  /** Walk the chain from the first event kept (genesis unless published events were pruned). */
  verify(): ChainCheck {
    const first = this.stmt.firstEvent.get() as { seq: number; prev_hash: string } | undefined;
    const rows = this.stmt.eventsAll.iterate() as IterableIterator<Row>;
    return verifyChain(
      (function* () {
        for (const r of rows) yield toEvent(r);
      })(),
      first?.prev_hash ?? GENESIS_HASH,
      first?.seq ?? 1,
    );
  }

  close(): void {
    clearTimeout(this.checkpointTimer);
    if (this.db.open) this.db.close();
  }
}

/** The write side of the ledger; only reachable inside Ledger.transact. */
export class LedgerTx {
  constructor(private readonly ledger: Ledger) {}

  event(e: NewEvent): LedgerEvent {
    return this.ledger.appendEvent(e);
  }

  insertCompartment(c: Pick<Compartment, "id" | "position" | "size" | "refrigerated" | "accessible" | "since">): void {
    this.ledger.requireTx();
    this.ledger.statements.insertCompartment.run(c.id, c.position, c.size, toSql(c.refrigerated), toSql(c.accessible), c.since);
  }

  updateCompartment(id: string, patch: Partial<Omit<Compartment, "id">>): void {
    this.ledger.update("compartments", COMPARTMENT_COLUMNS, id, patch);
  }

  insertParcel(
    p: Pick<Parcel, "id" | "status" | "size" | "compartmentId" | "recipientId" | "depositorId" | "createdAt"> &
      Partial<Pick<Parcel, "direction" | "collectCredential">>,
  ): void {
    this.ledger.requireTx();
    this.ledger.statements.insertParcel.run({ direction: "inbound", collectCredential: null, ...p });
  }

  updateParcel(id: string, patch: Partial<Omit<Parcel, "id">>): void {
    this.ledger.update("parcels", PARCEL_COLUMNS, id, patch);
  }

  upsertPerson(p: Person, now: number): void {
    this.ledger.requireTx();
    this.ledger.statements.upsertPerson.run({ ...p, roles: p.roles.join(","), active: toSql(p.active), now });
  }

  /** Store a secret's HMAC. Throws LockerError(busy) when a live credential has the same hash. */
  insertCredential(kind: CredentialKind, hash: Buffer, owner: { personId?: string | null; parcelId?: string | null }, now: number): number {
    this.ledger.requireTx();
    try {
      const info = this.ledger.statements.insertCredential.run(kind, hash, owner.personId ?? null, owner.parcelId ?? null, now);
      return Number(info.lastInsertRowid);
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new LockerError(ErrorCode.Busy, "a live credential with this value exists", { kind });
      }
      throw e;
    }
  }

  setCredentialStatus(id: number, status: CredentialStatus, at: number | null): void {
    this.ledger.requireTx();
    this.ledger.statements.setCredential.run(status, at, id);
  }

  revokeParcelCredentials(parcelId: string, kind: SecretKind, now: number): number {
    this.ledger.requireTx();
    return this.ledger.statements.revokeParcel.run({ now, parcel: parcelId, kind }).changes;
  }

  /** A flow that spent a credential was rolled back: it works again, unless it was revoked meanwhile. */
  reliveCredential(id: number): void {
    this.ledger.requireTx();
    this.ledger.statements.relive.run(id);
  }

  revokePersonCredentials(personId: string, kind: SecretKind, now: number): number {
    this.ledger.requireTx();
    return this.ledger.statements.revokePerson.run(now, personId, kind).changes;
  }

  setTerminal(id: string, s: LockoutState): void {
    this.ledger.requireTx();
    this.ledger.statements.setTerminal.run(id, s.failures, s.lockedUntil, s.windowStart, s.windowFailures, s.lastFailureAt);
  }

  insertDeadline(d: Deadline): void {
    this.ledger.requireTx();
    this.ledger.statements.insertDeadline.run(d.parcelId, d.stage, d.kind, d.dueAt);
  }

  closeDeadline(parcelId: string, stage: number, outcome: "sent" | "superseded", at: number): void {
    this.ledger.requireTx();
    this.ledger.statements.closeDeadline.run(at, outcome, parcelId, stage);
  }

  /** The parcel left (picked up, removed, cancelled): its pending notices will never be sent. */
  voidDeadlines(parcelId: string, at: number): void {
    this.ledger.requireTx();
    this.ledger.statements.voidDeadlines.run(at, parcelId);
  }

  setMeta(key: string, value: string): void {
    this.ledger.requireTx();
    this.ledger.statements.setMeta.run(key, value);
  }

  /** Remember a command id before executing it: a second insert of the same id fails (busy). */
  insertCommand(id: string, name: string, at: number, keep: { keepUntil?: number; digest?: string } = {}): void {
    this.ledger.requireTx();
    try {
      this.ledger.statements.insertCommand.run(id, name, at, keep.keepUntil ?? null, keep.digest ?? null);
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new LockerError(ErrorCode.Busy, `command ${id} seen before`);
      throw e;
    }
  }

  setCommandReply(id: string, reply: unknown, at: number): void {
    this.ledger.requireTx();
    this.ledger.statements.replyCommand.run(JSON.stringify(reply), at, id);
  }
}

/** A string as it survives a round trip through SQLite's UTF-8 TEXT (lone surrogates → U+FFFD). */
function wellFormed(s: string | null | undefined): string | null {
  return s == null ? null : s.toWellFormed();
}
