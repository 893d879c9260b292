// The admin socket's requests (the contract is described in protocol.ts, which re-exports all of
// this): the daemon validates requests with these alone, without building the reply schemas that
// only lockerctl and the tests parse.
import { z } from "zod";
import type { Role } from "../config/schema.js";

/** The config's roles (a type import: lockerctl does not load the config schema). */
const ROLES = ["recipient", "courier", "staff", "technician"] as const satisfies readonly Role[];

export const MAX_REQUEST_BYTES = 16 * 1024;

const compartmentId = z.string().regex(/^[A-Za-z][0-9]{1,2}$|^[0-9]{3,4}$/, "expected a compartment such as A07 (or keypad number 107)");
const reason = z.string().trim().min(3, "a reason of at least 3 characters is required").max(200);
const personId = z.string().min(1).max(64).regex(/^[A-Za-z0-9._:@-]+$/, "expected a person id (letters, digits, . _ : @ -)");
const user = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, "expected an OS user name");

/** hello's nonce: 16 random bytes, lowercase hex (the proof file's name). */
export const ProofNonce = z.string().regex(/^[0-9a-f]{32}$/, "expected the 32 hex digits of a hello's nonce");

/**
 * Every admin request's schema, built at the first request rather than at every start (its ~100
 * zod schemas cost ~10 ms of the start, on a Pi several times that).
 */
export const adminRequest = (): ReturnType<typeof buildAdminRequest> => (built ??= buildAdminRequest());
let built: ReturnType<typeof buildAdminRequest> | undefined;

const buildAdminRequest = () => z.discriminatedUnion("cmd", [
  // Identity: hello, create <dir>/<nonce>, prove (header comment).
  z.strictObject({ id: z.int(), user: user.optional(), cmd: z.literal("hello"), args: z.strictObject({}).default({}) }),
  z.strictObject({ id: z.int(), user: user.optional(), cmd: z.literal("prove"), args: z.strictObject({ nonce: ProofNonce, uid: z.int().min(0).max(2 ** 32 - 2) }) }),
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
        type: z.string().max(64).optional().describe("exact type (parcel.picked_up), a family without a dot (alarm: every alarm.*), or a prefix ending in '.' (alarm.)"),
        limit: z.int().min(1).max(10_000).default(50),
        follow: z.boolean().default(false),
      })
      .default({ limit: 50, follow: false }),
  }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("sync"), args: z.strictObject({}).default({}) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("stats"), args: z.strictObject({ days: z.int().min(1).max(3650).default(30) }).default({ days: 30 }) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("watch"), args: z.strictObject({}).default({}) }),
  // The people directory (when config people.owner is "lockerctl"; listing always).
  z.strictObject({ id: z.int(), user, cmd: z.literal("people-list"), args: z.strictObject({}).default({}) }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("people-add"),
    args: z.strictObject({
      person: personId,
      name: z.string().trim().min(1).max(120),
      roles: z.array(z.enum(ROLES)).min(1).max(ROLES.length),
      number: z.string().regex(/^[0-9]{2,12}$/, "expected a recipient number of 2 to 12 digits").optional(),
    }),
  }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("people-enable"), args: z.strictObject({ person: personId, reason: reason.optional() }) }),
  z.strictObject({ id: z.int(), user, cmd: z.literal("people-disable"), args: z.strictObject({ person: personId, reason: reason.optional() }) }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("people-set-pin"),
    // The PIN travels only on this socket (0660, the admin group); the daemon keeps its HMAC.
    args: z.strictObject({ person: personId, pin: z.string().regex(/^[0-9]{4,12}$/, "a PIN is 4 to 12 digits").nullable() }),
  }),
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("people-set-badge"),
    args: z.strictObject({ person: personId, badges: z.array(z.string().regex(/^[0-9A-Fa-f]{4,32}$/, "expected a hex badge id")).max(4) }),
  }),
  // A fingerprint enrolled on the bank's module (the person at the sensor): each step streamed as a
  // `finger` item and shown on the bank's display; the answer is the slot on record.
  z.strictObject({
    id: z.int(),
    user,
    cmd: z.literal("people-enroll-finger"),
    args: z.strictObject({ person: personId, captures: z.union([z.literal(2), z.literal(3)]).default(2), reader: z.string().min(1).max(200).optional() }),
  }),
  // A person's fingerprints withdrawn (one slot, or all): they open nothing at once, the module deletes them.
  z.strictObject({ id: z.int(), user, cmd: z.literal("people-remove-finger"), args: z.strictObject({ person: personId, slot: z.int().min(0).max(65_535).optional() }) }),
  // Read the config file again and apply its layout where safe (as SIGHUP does); the answer says what happened.
  z.strictObject({ id: z.int(), user, cmd: z.literal("reload"), args: z.strictObject({}).default({}) }),
  // A consistent copy of the ledger with its device key, streamed as `chunk` items, then its summary.
  z.strictObject({ id: z.int(), user, cmd: z.literal("backup"), args: z.strictObject({}).default({}) }),
]);
export type AdminRequest = z.infer<ReturnType<typeof buildAdminRequest>>;
export type AdminCommand = AdminRequest["cmd"];
/** Every request but the identity handshake. */
export type CommandRequest = Exclude<AdminRequest, { cmd: "hello" | "prove" }>;

/**
 * Commands that change nothing: they run on a connection that has not proven its user. Everything
 * else (open, disable, enable, relay-test, people-*, backup, and any command added later) needs a
 * proven connection: a new command is refused unproven until someone adds it here on purpose.
 */
export const READ_ONLY_COMMANDS: ReadonlySet<AdminCommand> = new Set(["status", "compartments", "sensors", "selftest", "events", "sync", "stats", "watch"] as const satisfies readonly AdminCommand[]);

/** Does this command need a connection whose OS user is proven (hello/prove)? */
export function needsIdentity(cmd: AdminCommand): boolean {
  return cmd !== "hello" && cmd !== "prove" && !READ_ONLY_COMMANDS.has(cmd);
}

/** Error codes of the admin socket's own (the rest are src/errors.ts's). */
export const AdminErrorCode = {
  /** A command that changes something, on a connection that has not proven its user. */
  IdentityRequired: "identity_required",
  /** hello or prove refused; context.reason says which check. */
  ProofRefused: "proof_refused",
  /** lockerd has no usable proof directory: nobody can prove (changes refused until it is fixed). */
  ProofUnavailable: "proof_unavailable",
} as const;

