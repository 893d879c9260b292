// The admin socket's contract: what lockerctl sends and what the daemon answers, one JSON object a
// line. The same zod schemas validate requests in the daemon and replies in lockerctl and the tests.
//
//   → {"id":1,"cmd":"open","args":{"compartment":"A07","reason":"stuck"},"user":"alice"}
//   ← {"id":1,"ok":true,"result":{...}}   or   {"id":1,"ok":false,"error":{"code":"...","message":"..."}}
//   streams (events --follow, sensors --watch, watch): {"id":1,"stream":{...}} lines until the client closes
import { z } from "zod";

export const MAX_REQUEST_BYTES = 16 * 1024;

const compartmentId = z.string().regex(/^[A-Za-z][0-9]{1,2}$|^[0-9]{3,4}$/, "expected a compartment such as A07 (or keypad number 107)");
const reason = z.string().trim().min(3, "a reason of at least 3 characters is required").max(200);
const user = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, "expected an OS user name");

export const AdminRequest = z.discriminatedUnion("cmd", [
  z.strictObject({ id: z.int(), user, cmd: z.literal("status"), args: z.strictObject({}).default({}) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("compartments"), args: z.strictObject({}).default({}) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("open"), args: z.strictObject({ compartment: compartmentId, reason }) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("disable"), args: z.strictObject({ compartment: compartmentId, reason }) }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("enable"),
    args: z.strictObject({ compartment: compartmentId, reason: reason.optional() }),
  }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("relay-test"),
    args: z.strictObject({ compartments: z.array(compartmentId).max(200).default([]), reason: reason.default("relay test") }),
  }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("sensors"), args: z.strictObject({ watch: z.boolean().default(false) }).default({ watch: false }) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("selftest"), args: z.strictObject({}).default({}) }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("events"),
    args: z
      .strictObject({
        sinceSeq: z.int().min(0).optional(),
        sinceTs: z.int().min(0).optional(),
        type: z.string().max(64).optional().describe("exact type, or a prefix ending in '.' (alarm.)"),
        limit: z.int().min(1).max(10_000).default(50),
        follow: z.boolean().default(false),
      })
      .default({ limit: 50, follow: false }),
  }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("sync"), args: z.strictObject({}).default({}) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("stats"), args: z.strictObject({ days: z.int().min(1).max(3650).default(30) }).default({ days: 30 }) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("watch"), args: z.strictObject({}).default({}) }),
]);
export type AdminRequest = z.infer<typeof AdminRequest>;
export type AdminCommand = AdminRequest["cmd"];

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
});

export const SensorsResult = z.object({ doors: z.array(z.object({ compartment: z.string(), channel: z.number(), door: z.string() })) });

/** One line of a stream. */
export const StreamItem = z.discriminatedUnion("kind", [
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
