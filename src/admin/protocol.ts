// The admin socket's contract: what lockerctl sends (requests.ts, re-exported here) and what the
// daemon answers, one JSON object a line. The same zod schemas validate requests in the daemon and
// replies in lockerctl and the tests; the daemon loads only requests.ts.
//
//   → {"id":1,"cmd":"open","args":{"compartment":"A07","reason":"stuck"},"user":"alice"}
//   ← {"id":1,"ok":true,"result":{...}}   or   {"id":1,"ok":false,"error":{"code":"...","message":"..."}}
//   streams (events --follow, sensors --watch, watch): {"id":1,"stream":{...}} lines until the client closes
//
// Who is asking: `user` is only what the client claims. The daemon records a change under the OS
// user the kernel vouches for, proven once per connection by creating a file (src/admin/identity.ts
// says why this way and not SO_PEERCRED, /proc or a shared secret):
//
//   → {"id":1,"cmd":"hello","args":{}}
//   ← {"id":1,"ok":true,"result":{"nonce":"<32 lowercase hex: 128 random bits>","dir":"/run/lockerd/admin.proof","expiresInMs":10000}}
//     the client creates <dir>/<nonce>: open(path, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600), close;
//     it stays empty. <dir> is the socket's path without ".sock", plus ".proof": lockerd's own,
//     mode 1733 (sticky; anyone may create, nobody else may list), made at start.
//   → {"id":2,"cmd":"prove","args":{"nonce":"<the nonce>","uid":1001}}        uid: the client's effective uid
//   ← {"id":2,"ok":true,"result":{"user":"alice","uid":1001}}
//   or {"id":2,"ok":false,"error":{"code":"proof_refused","message":"...","context":{"reason":"hardlink"}}}
//
// lockerd lstat()s the file (a regular file, not a symlink, one link, owned by `uid`, changed after
// the hello), names its owner from /etc/passwd (`uid:N` without an entry), unlinks it, and from then
// on records every change on this connection with `actor` = that name, and the request's `user`
// beside it as `data.claimedUser` when it differs (`sudo lockerctl` run by alice: actor root,
// claimedUser alice). A nonce proves once, only on its connection, within `expiresInMs`; at most
// 4 are pending per connection; a proven connection stays proven (hello/prove again: refused).
// Error codes: `proof_refused` (context.reason: unknown_nonce, expired, missing, symlink,
// not_a_file, hardlink, uid_mismatch, stale, too_many_pending, already_proven), `proof_unavailable`
// (lockerd has no usable proof directory), `identity_required` (a command that changes something,
// on a connection that has not proven who it is). Only READ_ONLY_COMMANDS run unproven (logged
// as unverified); every other command, including any added later, needs the proof.
// `user` may be left out of hello and prove; every other request carries it.
import { z } from "zod";
import { ProofNonce } from "./requests.js";

export * from "./requests.js";

export const HelloResult = z.object({ nonce: ProofNonce, dir: z.string(), expiresInMs: z.number() });
export type HelloResult = z.infer<typeof HelloResult>;
export const ProveResult = z.object({ user: z.string(), uid: z.number() });
export type ProveResult = z.infer<typeof ProveResult>;

export const ErrorBody = z.object({ code: z.string(), message: z.string(), context: z.record(z.string(), z.unknown()).optional() });

export const CompartmentRow = z.object({
  id: z.string(),
  keypad: z.string(),
  size: z.string(),
  state: z.string(),
  door: z.string(),
  enabled: z.boolean(),
  parcel: z.string().nullable(),
  parcelAgeMs: z.number().nullable(),
  since: z.number(),
  pulses: z.number(),
  failedOpens: z.number(),
  faultReason: z.string().nullable(),
  /** Held out of assignment: forced open (until a technician enables it again) or a fault; and since when. */
  held: z.enum(["inspection", "fault"]).nullable(),
  heldSince: z.number().nullable(),
});
export type CompartmentRow = z.infer<typeof CompartmentRow>;

export const Health = z.enum(["ok", "degraded", "faulted", "absent"]);

export const DeviceStatus = z.object({ name: z.string(), kind: z.string(), health: Health, detail: z.string() });

export const Alarm = z.object({
  kind: z.string(),
  compartment: z.string().nullable(),
  since: z.number(),
  detail: z.string(),
});
export type Alarm = z.infer<typeof Alarm>;

/** Another process connects with this bank's identity (the link's TakeoverGuard). */
export const DuplicateIdentityView = z.object({
  since: z.number(),
  takeovers: z.number(),
  lastAt: z.number(),
  evidence: z.string(),
});

/** The last three are the link's: absent when sync is disabled (no link). */
export const SyncStatus = z.object({
  enabled: z.boolean(),
  connected: z.boolean(),
  url: z.string().nullable(),
  backlog: z.number(),
  lastAckAt: z.number().nullable(),
  headSeq: z.number(),
  /** Why the link is not (or was last not) connected; null once a connection is up. */
  lastError: z.string().nullable().optional(),
  /** sync.url's endpoints, in the order the link tries them (`url` is the one it is on). */
  endpoints: z.array(z.string()).optional(),
  /** The MQTT version of the link's connection: "5" or "3.1.1" (sync.protocol). */
  protocol: z.enum(["5", "3.1.1"]).optional(),
  /** This bank instance's id, as its status on the broker says. */
  instance: z.string().optional(),
  duplicateIdentity: DuplicateIdentityView.nullable().optional(),
});
export type SyncStatus = z.infer<typeof SyncStatus>;

/** The data directory's disk: ok, low (under storage.minFreeMb), full (the ledger's writes fail). */
export const StorageStatus = z.object({
  path: z.string(),
  freeBytes: z.number().nullable(),
  minFreeBytes: z.number(),
  state: z.enum(["ok", "low", "full"]),
  since: z.number().nullable(),
  detail: z.string().nullable(),
});
export type StorageStatus = z.infer<typeof StorageStatus>;

/** The bank's clock (sync/clock.ts): the contract's ClockInfo and what the bank knows besides. */
export const ClockStatus = z.object({
  now: z.number(),
  synchronized: z.enum(["yes", "no", "unknown"]),
  skewToleranceMs: z.number(),
  maxCommandLifetimeMs: z.number(),
  lastSyncedAt: z.number().nullable(),
  lowerBound: z.number().nullable(),
  lastStep: z.object({ from: z.number(), to: z.number(), deltaMs: z.number(), at: z.number() }).nullable(),
});
export type ClockStatus = z.infer<typeof ClockStatus>;

export const StatusResult = z.object({
  device: z.string(),
  version: z.string(),
  pid: z.number(),
  startedAt: z.number(),
  uptimeMs: z.number(),
  now: z.number(),
  devices: z.array(DeviceStatus),
  sync: SyncStatus,
  alarms: z.array(Alarm),
  counts: z.record(z.string(), z.number()),
  temperatures: z.array(
    z.object({ compartment: z.string(), celsius: z.number().nullable(), humidity: z.number().nullable(), at: z.number().nullable(), ok: z.boolean() }),
  ),
  storage: StorageStatus.optional(),
  clock: ClockStatus.optional(),
});
export type StatusResult = z.infer<typeof StatusResult>;

export const LedgerEventView = z.object({
  seq: z.number(),
  id: z.string(),
  ts: z.number(),
  type: z.string(),
  compartment: z.string().nullable(),
  parcel: z.string().nullable(),
  actor: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
});

export const RelayTestResult = z.object({
  results: z.array(
    z.object({
      compartment: z.string(),
      opened: z.boolean(),
      attempts: z.number(),
      ms: z.number().nullable(),
      error: z.string().nullable(),
      /** The lock's board did not take the pulse: says nothing about the lock. */
      unavailable: z.literal(true).optional(),
      /** The door read open before the pulse: the test proves nothing. */
      unverified: z.literal(true).optional(),
    }),
  ),
});

export const SelftestResult = z.object({
  ok: z.boolean(),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  /** Checks not run, and why (lockerctl reading the ledger file: nothing that needs the hardware). */
  skipped: z.array(z.object({ name: z.string(), detail: z.string() })).optional(),
});

export const SensorsResult = z.object({ doors: z.array(z.object({ compartment: z.string(), channel: z.number(), door: z.string() })) });

/** What `reload` did: the layout plan's lines (as check-config prints them) and what needs a restart. */
export const ReloadResult = z.object({
  layout: z.enum(["applied", "refused", "deferred", "failed"]),
  plan: z.array(z.string()),
  restart: z.array(z.string()),
});
export type ReloadResult = z.infer<typeof ReloadResult>;

export const PersonRow = z.object({
  id: z.string(),
  name: z.string(),
  roles: z.array(z.string()),
  number: z.string().nullable(),
  active: z.boolean(),
  pin: z.boolean(),
  badges: z.number(),
  fingers: z.number().default(0),
  updatedAt: z.number(),
});
export type PersonRow = z.infer<typeof PersonRow>;

export const FingerEnrolled = z.object({ person: z.string(), reader: z.string(), slot: z.number(), fingers: z.number() });
export const FingersRemoved = z.object({ person: z.string(), withdrawn: z.number(), deleted: z.number() });

export const PeopleResult = z.object({ owner: z.enum(["server", "lockerctl"]), people: z.array(PersonRow) });

export const BackupResult = z.object({
  bank: z.string(),
  keyFingerprint: z.string(),
  headSeq: z.number(),
  events: z.number(),
  createdAt: z.number(),
  bytes: z.number(),
  /** sha256 (hex) of the whole file as streamed: lockerctl checks it before renaming into place. */
  sha256: z.string(),
});
export type BackupResult = z.infer<typeof BackupResult>;

/** One line of a stream. */
export const StreamItem = z.discriminatedUnion("kind", [
  /** backup: the next piece of the file, base64; in order. */
  z.object({ kind: z.literal("chunk"), data: z.string() }),
  /** people-enroll-finger: what the person at the sensor is asked to do now. */
  z.object({ kind: z.literal("finger"), step: z.enum(["place", "lift", "again", "stored"]), n: z.number().optional(), of: z.number().optional(), why: z.string().optional(), slot: z.number().optional() }),
  z.object({ kind: z.literal("event"), event: LedgerEventView }),
  z.object({ kind: z.literal("door"), compartment: z.string(), door: z.string(), ts: z.number() }),
  z.object({ kind: z.literal("compartments"), compartments: z.array(CompartmentRow), alarms: z.array(Alarm) }),
]);
export type StreamItem = z.infer<typeof StreamItem>;

export const AdminReply = z.union([
  z.object({ id: z.number().nullable(), ok: z.literal(true), result: z.unknown() }),
  z.object({ id: z.number().nullable(), ok: z.literal(false), error: ErrorBody }),
  z.object({ id: z.number(), stream: StreamItem }),
]);
export type AdminReply = z.infer<typeof AdminReply>;
