// Versioned schema. PRAGMA user_version holds the number of migrations applied; each migration runs
// in its own transaction. Append new migrations; never edit a released one.
import type Database from "better-sqlite3";

/** The events in index events_alarms (migration 10): a query's WHERE names this to use it. */
export const EVENTS_ALARMS = "type IN ('alarm.sensor_flapping', 'alarm.temperature', 'alarm.sensor_fault', 'alarm.cleared')";

export const MIGRATIONS: readonly string[] = [
  // 1: the first ledger
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

  CREATE TABLE compartments (
    id            TEXT PRIMARY KEY,
    position      INTEGER NOT NULL,
    size          TEXT NOT NULL,
    refrigerated  INTEGER NOT NULL DEFAULT 0,
    accessible    INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'free',
    enabled       INTEGER NOT NULL DEFAULT 1,
    door          TEXT NOT NULL DEFAULT 'unknown',
    parcel_id     TEXT,
    since         INTEGER NOT NULL,
    door_opened   INTEGER NOT NULL DEFAULT 0,  -- door seen open since the current unlock
    pulses        INTEGER NOT NULL DEFAULT 0,
    failed_opens  INTEGER NOT NULL DEFAULT 0,
    fault_reason  TEXT
  ) STRICT;

  CREATE TABLE people (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,               -- comma-separated Role values
    number     TEXT UNIQUE,                 -- recipient number typed on the keypad
    active     INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE parcels (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    size           TEXT NOT NULL,
    compartment_id TEXT,
    recipient_id   TEXT,
    depositor_id   TEXT,
    created_at     INTEGER NOT NULL,
    deposited_at   INTEGER,
    closed_at      INTEGER,
    -- who is taking it out, and with what, while the door is open for a pickup or removal
    collector_id   TEXT,
    collect_via    TEXT,
    collect_cred   INTEGER,
    collect_term   TEXT
  ) STRICT;
  -- Not on status: a status change on the unlock path then touches no index page.
  CREATE INDEX parcels_recipient ON parcels(recipient_id) WHERE recipient_id IS NOT NULL;

  -- Codes, PINs and badge ids, only as HMAC-SHA256 under the device key.
  CREATE TABLE credentials (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,               -- code | pin | badge
    hash       BLOB NOT NULL,
    person_id  TEXT,
    parcel_id  TEXT,
    status     TEXT NOT NULL DEFAULT 'live', -- live | used | revoked
    created_at INTEGER NOT NULL,
    used_at    INTEGER
  ) STRICT;
  CREATE UNIQUE INDEX credentials_live ON credentials(hash) WHERE status = 'live';
  CREATE INDEX credentials_parcel ON credentials(parcel_id) WHERE parcel_id IS NOT NULL;
  CREATE INDEX credentials_person ON credentials(person_id) WHERE person_id IS NOT NULL;

  CREATE TABLE terminals (
    id              TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL,
    window_start    INTEGER NOT NULL,
    window_failures INTEGER NOT NULL
  ) STRICT;

  -- The custody log and the outbox: gap-free seq, hash chain, published_at set on PUBACK.
  -- Few indexes on purpose: each one is another page written (and fsynced) on the unlock path.
  -- id is a random UUID made here, unique without an index; the outbox walks seq order.
  CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    type         TEXT NOT NULL,
    compartment  TEXT,
    parcel       TEXT,
    actor        TEXT,
    data         TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    published_at INTEGER
  ) STRICT;
  CREATE INDEX events_parcel ON events(parcel) WHERE parcel IS NOT NULL;
  `,
  // 2: persisted notice due times (reminder, escalation, expiry), so a restart neither loses nor repeats one
  `
  CREATE TABLE deadlines (
    parcel_id TEXT NOT NULL,
    stage     INTEGER NOT NULL,
    kind      TEXT NOT NULL,               -- reminder | escalation | expiry
    due_at    INTEGER NOT NULL,
    sent_at   INTEGER,
    outcome   TEXT,                        -- sent | superseded | void (parcel left first)
    PRIMARY KEY (parcel_id, stage)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX deadlines_due ON deadlines(due_at) WHERE sent_at IS NULL;
  ALTER TABLE parcels ADD COLUMN expired_at INTEGER;
  -- outbound: a person drops a parcel off for a courier to collect
  ALTER TABLE parcels ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';
  CREATE INDEX parcels_outbound ON parcels(status) WHERE direction = 'outbound';
  -- forced open: not assigned again until a technician has looked (ts of the alarm, or NULL)
  ALTER TABLE compartments ADD COLUMN inspect_since INTEGER;
  `,
  // 3: the server link. Events go out in seq order and the broker acknowledges them in order
  // (MQTT 3.1.1 §4.6, MQTT 5 §4.6), so one watermark in meta ('outbox.acked') says what is
  // published: no per-row UPDATE for each PUBACK, no index to keep. Commands are remembered by id
  // with their reply, so a repeat (also after a restart) is answered, never executed again.
  `
  ALTER TABLE events DROP COLUMN published_at;
  CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    replied_at   INTEGER,
    reply        TEXT                         -- the reply envelope as JSON; NULL while executing
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX commands_received ON commands(received_at);
  `,
  // 4: a command id is kept until its command could no longer be accepted (keep_until: its expiry
  // plus the clock-skew tolerance, bank clock), and a repeat must be the same command (digest:
  // sha256 of its canonical form and sig), so neither a late replay nor a reused id runs anything.
  `
  ALTER TABLE commands ADD COLUMN keep_until INTEGER;
  ALTER TABLE commands ADD COLUMN digest TEXT;
  `,
  // 5: a terminal's failures decay with time only (one per lockout.decayMs since the last), so the
  // time of the last one is kept; a valid credential no longer resets the count.
  `
  ALTER TABLE terminals ADD COLUMN last_failure_at INTEGER NOT NULL DEFAULT 0;
  `,
  // 6: a badge tap looks up the holder's stored parcels: by recipient and status, not every parcel
  // the recipient ever had (the soak saw badge taps grow 1.8 → 8.6 ms with 22k parcels a person).
  `
  CREATE INDEX parcels_recipient_status ON parcels(recipient_id, status);
  `,
  // 7: a compartment the config no longer has is retired, not deleted: its row keeps the history
  // (events and parcels name it), and it is never assigned, opened or shown as live again unless
  // the config brings it back (bank/layout.ts).
  `
  ALTER TABLE compartments ADD COLUMN retired_at INTEGER;
  `,
  // 8: the enterprise tier's access methods (issue 16).
  //  - An app pass's nonce is a credential of kind 'pass' (HMAC of the nonce under the device key),
  //    for its parcel, written used in the transaction that opens the door: a pass opens once, and a
  //    flow rolled back (the door never opened) makes it live again, as a code. Looked up whatever
  //    its status (a used one is refused), so it has its own index.
  //  - A fingerprint template lives on its module only; the ledger keeps which slot of which module
  //    is whose. 'deleting': the person was disabled and the module has not yet confirmed the slot's
  //    deletion (it was down): the slot opens nothing meanwhile, and the deletion is retried.
  `
  CREATE INDEX credentials_pass ON credentials(hash) WHERE kind = 'pass';
  CREATE TABLE finger_slots (
    reader      TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    person_id   TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'live', -- live | deleting
    enrolled_at INTEGER NOT NULL,
    PRIMARY KEY (reader, slot)
  ) STRICT;
  CREATE INDEX finger_slots_person ON finger_slots(person_id);
  `,
  // 9: the start restores open temperature and sensor alarms (bank/temperature.ts) without reading
  // the whole event log (1M events: 150 ms at every start). Partial: only alarm events are in it,
  // so the events an unlock writes touch no page of it. Built once, at the first start after it.
  `
  CREATE INDEX events_alarms ON events(compartment, type) WHERE type IN ('alarm.temperature', 'alarm.sensor_fault', 'alarm.cleared');
  `,
  // 10: the same index with alarm.sensor_flapping: without it the open-alarms query of every
  // `lockerctl status` and watch refresh (bank/technician.ts) could not use the index and read the
  // whole event log (10M events: seconds on the event loop). Queries that mean to use it name
  // exactly EVENTS_ALARMS, as SQLite uses a partial index only for a WHERE that implies its own.
  `
  DROP INDEX events_alarms;
  CREATE INDEX events_alarms ON events(compartment, type) WHERE ${EVENTS_ALARMS};
  `,
];

export function migrate(db: Database.Database): { from: number; to: number } {
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > MIGRATIONS.length) {
    throw new Error(`ledger schema ${from} is newer than this lockerd (${MIGRATIONS.length}): refusing to downgrade`);
  }
  for (let v = from; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return { from, to: MIGRATIONS.length };
}
