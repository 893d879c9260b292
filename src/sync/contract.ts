// The MQTT contract between a bank and the central server: every topic under <prefix>/<site>/<device>
// and the zod schema of every payload. docs/asyncapi.yaml tells the same contract to server engineers;
// test/unit/sync/contract.test.ts fails when the two drift apart.
//
//   bank ──▶ status (retained; also the Last Will) · events · state (retained) · telemetry · reply/<name>
//   bank ◀── cmd/<name>
//
// Inbound payloads are strict (an unknown key is an error) and carry no defaults or transforms: the
// value a command parses to is exactly the value its sender signed. Outbound payloads are typed;
// servers should ignore keys they do not know, so fields can be added without breaking them.
import { z } from "zod";
import { formatIssues } from "../config/load.js";
import { ConfigSchema, Role, ROLES, Size, TopicPrefix } from "../config/schema.js";
import { COMPARTMENT_STATES } from "../domain/compartment.js";
import { canonicalJson, EVENT_TYPES } from "../domain/events.js";
import { ErrorCode } from "../errors.js";

/** Larger command payloads are refused before JSON.parse. A full directory batch (ASCII) stays well below. */
export const MAX_COMMAND_BYTES = 256 * 1024;
export const MAX_DIRECTORY_UPSERTS = 200;
export const MAX_DIRECTORY_REMOVALS = 1000;
export const MAX_BADGES_PER_PERSON = 8;
/** Events one replay may re-publish (also its default). */
export const MAX_REPLAY_LIMIT = 1000;
/** One replay per this interval, bank-wide: a refusal is `busy` with retryAfterMs. */
export const REPLAY_INTERVAL_MS = 10_000;

// ── shared fields ─────────────────────────────────────────────────────────

const timestamp = z.int().min(0).describe("wall-clock ms since the Unix epoch");
const count = z.int().min(0);
const token = (what: string) =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, `expected ${what}: 1-64 letters, digits or . _ : - (not first)`);
const commandId = token("a command id");
const parcelId = token("a parcel id");
/** Text the ledger stores: well-formed Unicode only (a lone surrogate cannot be stored as it was hashed). */
const text = (min: number, max: number) => z.string().min(min).max(max).refine((s) => s.isWellFormed(), "expected well-formed Unicode text");
const personId = text(1, 64);
const compartmentId = z.string().regex(/^[A-Z][0-9]{2}$/, "expected a compartment such as A07");
const hash = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits");
const badgeId = z.string().regex(/^[0-9A-Fa-f]{4,32}$/, "expected a hex badge id");
const reason = z.string().min(3).max(200);
/** Ed25519 signature (64 bytes), standard base64 with padding. */
const signature = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "expected a base64 Ed25519 signature (88 characters)");
const DoorState = z.enum(["open", "closed", "unknown"]);

// ── outbound: status, events, state, telemetry ────────────────────────────

/**
 * The bank's clock and how it judges a command's times (sync/clock.ts fills it in): a server can
 * see a bank whose clock is off before its commands are refused as expired.
 */
export const ClockInfo = z.object({
  now: timestamp.describe("the bank's clock when the message was made"),
  synchronized: z.enum(["yes", "no", "unknown"]).describe("whether NTP (systemd-timesyncd) has set the clock since boot; unknown without timesyncd"),
  skewToleranceMs: count.describe("sync.clockSkewS: how far issuedAt / expiresAt may be off the bank clock"),
  maxCommandLifetimeMs: count.describe("sync.maxCommandLifetimeS: longest expiresAt - issuedAt accepted"),
});
export type ClockInfo = z.infer<typeof ClockInfo>;

/**
 * Retained. The same payload with state "offline" is the Last Will, set at connect: the only status
 * without clock (it would be stale). `instance` tells two banks with one identity apart.
 */
export const StatusMessage = z.object({
  state: z.enum(["online", "offline"]),
  version: z.string(),
  bootedAt: timestamp,
  instance: z.string().describe("this bank instance: a random id kept in its ledger (meta sync.instance)"),
  clock: ClockInfo.optional(),
});
export type StatusMessage = z.infer<typeof StatusMessage>;

/** One ledger event, exactly as stored: the server re-hashes it to verify custody (events.ts). */
export const EventMessage = z.object({
  seq: z.int().min(1),
  id: z.uuid(),
  ts: timestamp,
  type: z.enum(EVENT_TYPES),
  compartment: compartmentId.nullable(),
  parcel: parcelId.nullable(),
  actor: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
  prevHash: hash,
  hash,
});
export type EventMessage = z.infer<typeof EventMessage>;

export const CompartmentSnapshot = z.object({
  id: compartmentId,
  size: Size,
  refrigerated: z.boolean(),
  accessible: z.boolean(),
  state: z.enum(COMPARTMENT_STATES),
  enabled: z.boolean(),
  door: DoorState,
  since: timestamp,
  held: z
    .enum(["inspection", "fault"])
    .nullable()
    .describe("kept out of assignment until someone clears it (set-compartment enabled: true): forced open and not yet inspected, or a fault"),
});
export type CompartmentSnapshot = z.infer<typeof CompartmentSnapshot>;

/** Retained. `seq` is the last event the snapshot includes, so a server can line it up with `events`. */
export const StateMessage = z.object({ seq: count, ts: timestamp, compartments: z.array(CompartmentSnapshot) });
export type StateMessage = z.infer<typeof StateMessage>;

export const DeviceHealth = z.object({
  name: z.string(),
  kind: z.enum(["locks", "doors", "reader", "display", "buzzer", "sensor"]),
  health: z.enum(["ok", "degraded", "faulted", "absent"]),
  detail: z.string(),
});

export const TelemetryMessage = z.object({
  ts: timestamp,
  uptimeMs: count,
  queueDepth: count.describe("events not yet acknowledged by the broker (outbox backlog)"),
  cpuTempC: z.number().nullable(),
  diskFreeBytes: count,
  devices: z.array(DeviceHealth),
  temperatures: z.array(
    z.object({ compartment: compartmentId, celsius: z.number().nullable(), ok: z.boolean(), at: timestamp.nullable() }),
  ),
  clock: ClockInfo,
  storage: z
    .object({
      state: z.enum(["ok", "low", "full"]).describe("ok; low: under the configured floor; full: the ledger's writes fail and the bank refuses what needs one"),
      since: timestamp.nullable(),
      minFreeBytes: count,
    })
    .optional(),
});
export type TelemetryMessage = z.infer<typeof TelemetryMessage>;

// ── inbound: command arguments ────────────────────────────────────────────

// Patches of the config's own policy sections: the same fields and ranges (one source), every field
// optional and without its default, so a patch that leaves a field out leaves it as it is.
type Patch<S extends z.ZodRawShape> = {
  [K in keyof S]: z.ZodOptional<S[K] extends z.ZodDefault<infer T> ? T : S[K]>;
};
function patchOf<S extends z.ZodRawShape>(section: z.ZodObject<S>) {
  const fields = Object.entries(section.shape).map(([key, field]) => [key, z.optional(field instanceof z.ZodDefault ? field.unwrap() : field)]);
  return z.strictObject(Object.fromEntries(fields) as Patch<S>);
}
const policies = ConfigSchema.shape.policies.unwrap();
const lockout = ConfigSchema.shape.lockout.unwrap();

/** An upsert replaces the whole record: badges left out means the person has none. */
const DirectoryPerson = z.strictObject({
  id: personId,
  name: z.string().min(1).max(120),
  roles: z.array(Role).min(1).max(ROLES.length),
  number: z.string().regex(/^[0-9]{2,12}$/, "expected 2-12 digits").optional(),
  badges: z.array(badgeId).max(MAX_BADGES_PER_PERSON).optional(),
  active: z.boolean(),
});

/**
 * Every command payload: the envelope around its own args. The window (expiresAt, or issuedAt +
 * sync.maxCommandLifetimeS without it; both ± sync.clockSkewS) depends on the bank's config and
 * clock, so the router checks it (commands.ts).
 */
function command<A extends z.ZodType>(args: A) {
  return z
    .strictObject({ id: commandId, args, issuedAt: timestamp, expiresAt: timestamp.optional(), sig: signature.optional() })
    .refine((c) => c.expiresAt === undefined || c.expiresAt > c.issuedAt, { path: ["expiresAt"], message: "must be after issuedAt" });
}

/** The payload schema of `cmd/<name>`, per command. */
export const COMMANDS = {
  reserve: command(
    z.strictObject({
      parcel: parcelId,
      recipient: personId,
      size: Size,
      refrigerated: z.boolean().optional(),
      accessible: z.boolean().optional(),
    }),
  ),
  // Withdraws a reservation; a parcel already deposited leaves by pickup, removal or `open`.
  cancel: command(z.strictObject({ parcel: parcelId })),
  // With `parcel`, the door opens only while it holds that parcel, and closing it records a pickup.
  open: command(z.strictObject({ compartment: compartmentId, reason, parcel: parcelId.optional(), actor: personId.optional() })),
  "issue-code": command(z.strictObject({ parcel: parcelId, code: z.string().regex(/^[0-9]{4,12}$/, "expected 4-12 digits").optional() })),
  "revoke-code": command(z.strictObject({ parcel: parcelId })),
  "set-compartment": command(
    z
      .strictObject({ compartment: compartmentId, enabled: z.boolean().optional(), size: Size.optional(), reason: reason.optional() })
      .refine((a) => a.enabled !== undefined || a.size !== undefined, "nothing to change: give enabled and/or size"),
  ),
  directory: command(
    z
      .strictObject({
        upserts: z.array(DirectoryPerson).max(MAX_DIRECTORY_UPSERTS).optional(),
        removals: z.array(personId).max(MAX_DIRECTORY_REMOVALS).optional(),
      })
      .superRefine((a, ctx) => {
        // One person at most once per batch: otherwise the outcome would depend on apply order.
        const seen = new Set<string>();
        const check = (id: string, path: (string | number)[]) => {
          if (seen.has(id)) ctx.addIssue({ code: "custom", path, message: `person ${id} appears twice in one batch` });
          seen.add(id);
        };
        a.upserts?.forEach((u, i) => check(u.id, ["upserts", i, "id"]));
        a.removals?.forEach((id, i) => check(id, ["removals", i]));
      }),
  ),
  snapshot: command(z.strictObject({})),
  replay: command(z.strictObject({ fromSeq: z.int().min(1), limit: z.int().min(1).max(MAX_REPLAY_LIMIT).optional() })),
  policy: command(z.strictObject({ policies: patchOf(policies).optional(), lockout: patchOf(lockout).optional() })),
};

export type CommandName = keyof typeof COMMANDS;
export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[];
export type CommandPayload<K extends CommandName> = z.infer<(typeof COMMANDS)[K]>;
export type CommandArgs<K extends CommandName> = CommandPayload<K>["args"];
/** A decoded command: its name (from the topic) and its payload. */
export type Command = { [K in CommandName]: { name: K } & CommandPayload<K> }[CommandName];

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/**
 * Commands that must carry a valid `sig` when sync.serverPublicKey is configured: every one with a
 * side effect. Broker ACLs are not enough: anyone who can publish on cmd/ could otherwise cancel a
 * signed reservation, resize or re-enable a compartment, or make the bank re-send its whole log.
 * `replay` changes nothing but costs the bank and the broker a lot, so it is signed and also
 * rate-limited (REPLAY_INTERVAL_MS, MAX_REPLAY_LIMIT). Only `snapshot` reads; it may be unsigned,
 * but a `sig` it carries must verify.
 */
export const SIGNED_COMMANDS = [
  "reserve",
  "cancel",
  "open",
  "issue-code",
  "revoke-code",
  "set-compartment",
  "directory",
  "replay",
  "policy",
] as const satisfies readonly CommandName[];

export function requiresSignature(name: CommandName): boolean {
  return (SIGNED_COMMANDS as readonly CommandName[]).includes(name);
}

// ── outbound: replies ─────────────────────────────────────────────────────

export const ReplyError = z.object({
  code: z.enum(ErrorCode),
  message: z.string(),
  retryAfterMs: count.optional().describe("with busy from a rate limit: the same command may be sent again after this long"),
});

function reply<R extends z.ZodType>(result: R) {
  return z.discriminatedUnion("ok", [
    z.object({ id: commandId, ok: z.literal(true), result }),
    // id is null when the payload was too broken to read one.
    z.object({ id: commandId.nullable(), ok: z.literal(false), error: ReplyError }),
  ]);
}

/** The payload schema of `reply/<name>`, per command. */
export const REPLIES = {
  reserve: reply(z.object({ parcel: parcelId, compartment: compartmentId, size: Size })),
  cancel: reply(z.object({ parcel: parcelId, compartment: compartmentId.nullable() })),
  // Sent once the door was seen open; a lock that did not open answers lock_fault.
  open: reply(z.object({ compartment: compartmentId, parcel: parcelId.nullable() })),
  // A code the bank chose travels only inside the code.issued event, sealed for the server's key.
  "issue-code": reply(z.object({ parcel: parcelId, seq: z.int().min(1).describe("seq of the code.issued event") })),
  "revoke-code": reply(z.object({ parcel: parcelId, revoked: count })),
  "set-compartment": reply(CompartmentSnapshot),
  directory: reply(z.object({ upserted: count, removed: count })),
  snapshot: reply(StateMessage),
  replay: reply(z.object({ fromSeq: z.int().min(1), count, headSeq: count })),
  policy: reply(z.object({ policies, lockout })),
} satisfies Record<CommandName, z.ZodType>;
export type Reply<K extends CommandName> = z.infer<(typeof REPLIES)[K]>;
export type CommandResult<K extends CommandName> = Extract<Reply<K>, { ok: true }>["result"];

// ── topics ────────────────────────────────────────────────────────────────

export type OutboundTopic = "status" | "events" | "state" | "telemetry";
/** The payload schema of each outbound topic (replies: REPLIES). */
export const OUTBOUND = { status: StatusMessage, events: EventMessage, state: StateMessage, telemetry: TelemetryMessage } as const;

/** QoS and retain flag of every topic kind (docs/asyncapi.yaml). Commands must never be published retained. */
export const DELIVERY = {
  status: { qos: 1, retain: true },
  events: { qos: 1, retain: false },
  state: { qos: 1, retain: true },
  telemetry: { qos: 0, retain: false },
  cmd: { qos: 1, retain: false },
  reply: { qos: 1, retain: false },
} as const satisfies Record<TopicKind, { qos: 0 | 1 | 2; retain: boolean }>;

export { TopicPrefix };
const deviceName = z.string().regex(/^[a-z0-9-]{1,40}$/, "expected lowercase letters, digits, dashes");

export interface Topics {
  /** <prefix>/<site>/<device> */
  readonly root: string;
  readonly status: string;
  readonly events: string;
  readonly state: string;
  readonly telemetry: string;
  /** What the bank subscribes to: <root>/cmd/+ */
  readonly cmdFilter: string;
  readonly cmd: Readonly<Record<CommandName, string>>;
  readonly reply: Readonly<Record<CommandName, string>>;
}

/** Every topic of one bank. Throws on a prefix, site or device that cannot form a topic. */
export function topics(prefix: string, site: string, device: string): Topics {
  TopicPrefix.parse(prefix);
  deviceName.parse(site);
  deviceName.parse(device);
  const root = `${prefix}/${site}/${device}`;
  const each = (kind: "cmd" | "reply") => Object.fromEntries(COMMAND_NAMES.map((n) => [n, `${root}/${kind}/${n}`])) as Record<CommandName, string>;
  return {
    root,
    status: `${root}/status`,
    events: `${root}/events`,
    state: `${root}/state`,
    telemetry: `${root}/telemetry`,
    cmdFilter: `${root}/cmd/+`,
    cmd: each("cmd"),
    reply: each("reply"),
  };
}

export type TopicKind = OutboundTopic | "cmd" | "reply";
/** `name` is the level after cmd/ or reply/, known or not: an unknown command still gets a reply. */
export type TopicRef = { kind: OutboundTopic } | { kind: "cmd" | "reply"; name: string };

/** The inverse of topics(): undefined for a topic outside `root` or of no known shape. */
export function parseTopic(root: string, topic: string): TopicRef | undefined {
  if (!topic.startsWith(`${root}/`)) return undefined;
  const levels = topic.slice(root.length + 1).split("/");
  const [first, name] = levels;
  if (levels.length === 1 && (first === "status" || first === "events" || first === "state" || first === "telemetry")) return { kind: first };
  if (levels.length === 2 && (first === "cmd" || first === "reply") && name) return { kind: first, name };
  return undefined;
}

// ── decoding and signing ──────────────────────────────────────────────────

export type DecodeResult =
  | { ok: true; command: Command }
  | { ok: false; id: string | null; error: { code: ErrorCode; message: string } };

/**
 * Bytes of `cmd/<name>` → a typed command, or the error to reply with (and the command id, when one
 * could be read). Checks size, JSON, name and schema; expiry and signature need a clock and keys, so
 * they belong to the router.
 */
export function decodeCommand(name: string, payload: Uint8Array | string): DecodeResult {
  const fail = (message: string, id: string | null = null, code: ErrorCode = ErrorCode.BadInput): DecodeResult => ({ ok: false, id, error: { code, message } });
  const bytes = typeof payload === "string" ? Buffer.byteLength(payload) : payload.byteLength;
  if (bytes > MAX_COMMAND_BYTES) return fail(`payload of ${bytes} bytes exceeds the ${MAX_COMMAND_BYTES}-byte limit`, null, ErrorCode.PayloadTooLarge);
  let raw: unknown;
  try {
    raw = JSON.parse(typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8"));
  } catch {
    return fail("payload is not JSON");
  }
  const rawId = typeof raw === "object" && raw !== null ? (raw as { id?: unknown }).id : undefined;
  const id = commandId.safeParse(rawId).success ? (rawId as string) : null;
  if (!isCommandName(name)) return fail(`unknown command "${name}"; known: ${COMMAND_NAMES.join(", ")}`, id, ErrorCode.UnknownCommand);
  const parsed = COMMANDS[name].safeParse(raw);
  if (!parsed.success) return fail(formatIssues(parsed.error).join("; "), id);
  return { ok: true, command: { name, ...parsed.data } as Command };
}

/** What a signature is bound to: the payload plus the command name and bank it was addressed to. */
export interface SignableCommand {
  site: string;
  device: string;
  name: string;
  id: string;
  args: unknown;
  issuedAt: number;
  expiresAt?: number | undefined;
  sig?: string | undefined;
}

/**
 * The exact bytes an Ed25519 `sig` covers: canonical JSON (keys sorted at every depth, no spaces;
 * RFC 8785 for these payloads) of {args, device, expiresAt?, id, issuedAt, name, site}, UTF-8.
 * Name, site and device come from the topic, so a signed `revoke-code` cannot be replayed as
 * `cancel`, nor a command for one bank on another; `sig` and any other key are left out.
 */
export function canonicalCommand(cmd: SignableCommand): Buffer {
  const { site, device, name, id, args, issuedAt, expiresAt } = cmd;
  return Buffer.from(canonicalJson({ args, device, expiresAt, id, issuedAt, name, site }), "utf8");
}
