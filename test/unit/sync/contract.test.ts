// The MQTT contract: docs/asyncapi.yaml must say what src/sync/contract.ts enforces, and the zod
// schemas must accept what a server sends and refuse the rest with an error naming the field.
import { createPrivateKey, createPublicKey, sign, verify, type JsonWebKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, expectTypeOf, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { parseConfig } from "../../../src/config/load.js";
import { ConfigSchema, DEFAULT_COMMAND_LIFETIME_S, maxCommandLifetimeMs } from "../../../src/config/schema.js";
import { EVENT_TYPES, eventHash, type LedgerEvent } from "../../../src/domain/events.js";
import type { DeviceHealth as DriverHealth } from "../../../src/drivers/types.js";
import { ErrorCode } from "../../../src/errors.js";
import type { Compartment } from "../../../src/ledger/ledger.js";
import { snapshotOf } from "../../../src/sync/commands.js";
import {
  canonicalCommand,
  COMMAND_NAMES,
  COMMANDS,
  decodeCommand,
  DELIVERY,
  isCommandName,
  MAX_COMMAND_BYTES,
  MAX_DIRECTORY_UPSERTS,
  MAX_REPLAY_LIMIT,
  OUTBOUND,
  parseTopic,
  REPLAY_INTERVAL_MS,
  REPLIES,
  SIGNED_COMMANDS,
  topics,
  type CommandArgs,
  type CommandName,
  type CompartmentSnapshot,
  type DeviceHealth,
  type EventMessage,
  type ReplyError,
  type TopicKind,
} from "../../../src/sync/contract.js";
import { exampleConfig } from "../../helpers/daemon.js";

// ── the document, loosely typed: only what the tests read ─────────────────

type Node = Record<string, unknown>;
interface Ref {
  $ref: string;
}
interface Example {
  name?: string;
  payload: Node;
}
interface Message {
  payload: unknown;
  examples?: Example[];
  "x-lockerd-canonical-example"?: string;
}
interface Channel {
  address: string;
  messages: Record<string, Ref>;
}
interface Operation {
  action: "send" | "receive";
  channel: Ref;
  bindings: Ref;
  reply?: { channel: Ref };
  "x-lockerd-signed"?: boolean;
}
interface LastWill {
  topic: string;
  qos: number;
  retain: boolean;
  message: string;
}
interface AsyncApiDoc {
  asyncapi: string;
  info: { "x-lockerd-example-key": JsonWebKey };
  servers: Record<string, { protocol: string; bindings: { mqtt: { lastWill: LastWill } } }>;
  channels: Record<string, Channel>;
  operations: Record<string, Operation>;
  components: { parameters: Record<string, { examples: string[] }> };
}

const DOC_FILE = fileURLToPath(new URL("../../../docs/asyncapi.yaml", import.meta.url));
const raw = parse(readFileSync(DOC_FILE, "utf8")) as Node;
const doc = raw as unknown as AsyncApiDoc;

const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);

/** Follows `#/a/b` references (siblings of $ref are annotations and ignored, as in draft 7). */
function resolver(root: Node) {
  const resolve = (value: unknown): Node => {
    let node = value;
    for (let hops = 0; isNode(node) && typeof node.$ref === "string"; hops++) {
      if (hops > 20) throw new Error(`reference loop at ${node.$ref}`);
      const ref: string = node.$ref;
      if (!ref.startsWith("#/")) throw new Error(`only local references: ${ref}`);
      node = ref
        .slice(2)
        .split("/")
        .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
        .reduce<unknown>((at, key) => (isNode(at) ? at[key] : undefined), root);
      if (node === undefined) throw new Error(`dangling reference ${ref}`);
    }
    if (!isNode(node)) throw new Error(`expected a schema object, got ${JSON.stringify(node)}`);
    return node;
  };
  return resolve;
}
const fromDoc = resolver(raw);

const BOUNDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"] as const;

/**
 * What a JSON Schema says about the wire, in one form for both sides: property names, required
 * lists, types (nullable folded in), enums and consts, patterns and formats, ranges and sizes,
 * unions, and closed objects for inbound payloads. Descriptions, examples and titles are prose;
 * z.int()'s ±2^53 bounds and the pattern zod adds to a format are zod's, not the contract's.
 * Outbound objects are open (servers ignore unknown keys), so their `additionalProperties: false`
 * and defaults do not count.
 */
function wireShape(schema: unknown, resolve: (s: unknown) => Node, outbound: boolean): Node {
  const s = resolve(schema);
  const recurse = (v: unknown) => wireShape(v, resolve, outbound);
  const union = s.anyOf ?? s.oneOf;
  if (Array.isArray(union)) {
    const branches = union.map(resolve);
    const others = branches.filter((b) => b.type !== "null");
    if (branches.length === 2 && others.length === 1) return { ...recurse(others[0]), nullable: true };
    return { union: branches.map(recurse) };
  }
  const out: Node = {};
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t) => t !== "null");
    if (types.length < s.type.length) out.nullable = true;
    out.type = types.length === 1 ? types[0] : [...types].sort();
  } else if (s.type !== undefined) out.type = s.type;
  if ("const" in s) out.const = s.const;
  if (Array.isArray(s.enum)) out.enum = [...s.enum].sort();
  if (s.format !== undefined) out.format = s.format;
  else if (s.pattern !== undefined) out.pattern = s.pattern;
  for (const key of BOUNDS) {
    const v = s[key];
    if (v === undefined || (key === "minimum" && v === Number.MIN_SAFE_INTEGER) || (key === "maximum" && v === Number.MAX_SAFE_INTEGER)) continue;
    out[key] = v;
  }
  if (s.items !== undefined) out.items = recurse(s.items);
  if (isNode(s.properties)) out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, recurse(v)]));
  if (Array.isArray(s.required) && s.required.length > 0) out.required = [...(s.required as string[])].sort();
  const extra = s.additionalProperties;
  if (extra === true || (isNode(extra) && Object.keys(extra).length === 0)) out.additionalProperties = "any";
  else if (extra === false) {
    if (!outbound) out.additionalProperties = false;
  } else if (extra !== undefined) out.additionalProperties = recurse(extra);
  if (s.propertyNames !== undefined) {
    const names = recurse(s.propertyNames);
    if (!(names.type === "string" && Object.keys(names).length === 1)) out.propertyNames = names;
  }
  if (!outbound && s.default !== undefined) out.default = s.default;
  return out;
}

/** The zod schema that governs a document channel, and which way it flows. */
function zodFor(channelId: string): { schema: z.ZodType; outbound: boolean } {
  if (channelId in OUTBOUND) return { schema: OUTBOUND[channelId as keyof typeof OUTBOUND], outbound: true };
  const [, kind, name] = /^(cmd|reply)-(.+)$/.exec(channelId) ?? [];
  if (!name || !isCommandName(name)) throw new Error(`channel ${channelId} matches no topic of the contract`);
  return kind === "cmd" ? { schema: COMMANDS[name], outbound: false } : { schema: REPLIES[name], outbound: true };
}

function zodShape(channelId: string): Node {
  const { schema, outbound } = zodFor(channelId);
  const json = z.toJSONSchema(schema, { io: outbound ? "output" : "input" }) as Node;
  return wireShape(json, resolver(json), outbound);
}

function messageOf(channelId: string): Message {
  const refs = Object.values(doc.channels[channelId]?.messages ?? {});
  expect(refs, `channel ${channelId} carries exactly one message`).toHaveLength(1);
  return fromDoc(refs[0]) as unknown as Message;
}

function docShape(channelId: string): Node {
  return wireShape(messageOf(channelId).payload, fromDoc, zodFor(channelId).outbound);
}

const channelIdOf = (ref: Ref) => ref.$ref.replace(/^#\/channels\//, "");
const kindOf = (channelId: string): TopicKind => (channelId.startsWith("cmd-") ? "cmd" : channelId.startsWith("reply-") ? "reply" : (channelId as TopicKind));
const param = (name: string) => doc.components.parameters[name]?.examples[0] ?? "";
const PREFIX = param("prefix");
const SITE = param("site");
const DEVICE = param("device");
const T = topics(PREFIX, SITE, DEVICE);
const EXPECTED_CHANNELS = [...Object.keys(OUTBOUND), ...COMMAND_NAMES.flatMap((n) => [`cmd-${n}`, `reply-${n}`])].sort();

// ── drift ─────────────────────────────────────────────────────────────────

describe("docs/asyncapi.yaml agrees with src/sync/contract.ts", () => {
  it("is an AsyncAPI 3.0 document over mqtt and mqtts", () => {
    expect(doc.asyncapi).toBe("3.0.0");
    expect(new Set(Object.values(doc.servers).map((s) => s.protocol))).toEqual(new Set(["mqtt", "mqtts"]));
  });

  it("states the command size limit the bank enforces", () => {
    expect((raw.info as { description: string }).description).toContain(`larger than ${MAX_COMMAND_BYTES} bytes`);
  });

  it("states the command lifetime, the clock-skew tolerance and the replay limits the bank applies", () => {
    const description = (raw.info as { description: string }).description.replace(/\s+/g, " ");
    const sync = ConfigSchema.shape.sync.unwrap().shape;
    const lifetime = sync.maxCommandLifetimeS.unwrap();
    const skew = sync.clockSkewS.unwrap();
    const defaults = parseConfig({ ...exampleConfig(), sync: {} }).sync;
    expect(description).toContain(`\`sync.maxCommandLifetimeS\`, **default ${DEFAULT_COMMAND_LIFETIME_S} s** (${lifetime.minValue} s to ${lifetime.maxValue} s)`);
    expect(description).toContain(`\`sync.clockSkewS\`, **default ${defaults.clockSkewS} s** (${skew.minValue} s to ${skew.maxValue} s)`);
    expect(description).toContain(`one per ${REPLAY_INTERVAL_MS / 1000} s per bank (${REPLAY_INTERVAL_MS} ms), at most ${MAX_REPLAY_LIMIT} events each`);
    const clock = fromDoc({ $ref: "#/components/schemas/ClockInfo" }).properties as Record<string, { description: string }>;
    expect(clock.skewToleranceMs?.description).toContain(`default ${defaults.clockSkewS * 1000}`);
    expect(clock.maxCommandLifetimeMs?.description).toContain(`default ${maxCommandLifetimeMs(defaults)}`);
  });

  it("has one channel per topic: every outbound topic, and cmd + reply for every command, nothing else", () => {
    expect(Object.keys(doc.channels).sort()).toEqual(EXPECTED_CHANNELS);
  });

  it("gives every channel the address topics() builds, and parseTopic reads it back", () => {
    for (const [id, channel] of Object.entries(doc.channels)) {
      const address = channel.address.replace("{prefix}", PREFIX).replace("{site}", SITE).replace("{device}", DEVICE);
      const kind = kindOf(id);
      const name = id.replace(/^(cmd|reply)-/, "") as CommandName;
      const expected = kind === "cmd" ? T.cmd[name] : kind === "reply" ? T.reply[name] : T[kind];
      expect(address, id).toBe(expected);
      expect(parseTopic(T.root, address), id).toEqual(kind === "cmd" || kind === "reply" ? { kind, name } : { kind });
    }
  });

  it.each(EXPECTED_CHANNELS)("%s: the payload schema matches zod's", (channelId) => {
    expect(docShape(channelId)).toEqual(zodShape(channelId));
  });

  it("notices drift: a field added on either side fails the comparison", () => {
    const { schema } = zodFor("status");
    const extended = (schema as typeof OUTBOUND.status).extend({ uptimeMs: z.int() });
    const json = z.toJSONSchema(extended, { io: "output" }) as Node;
    expect(docShape("status")).not.toEqual(wireShape(json, resolver(json), true));

    const payload = structuredClone(fromDoc(fromDoc(doc.channels["cmd-reserve"]?.messages["cmd-reserve"]).payload));
    const args = payload.properties as { args: { properties: Node } };
    args.args.properties.priority = { type: "integer" };
    expect(wireShape(payload, fromDoc, false)).not.toEqual(zodShape("cmd-reserve"));
  });

  it("lists every event type and error code the code has (a new one must be documented)", () => {
    const enumOf = (name: string) => [...(fromDoc({ $ref: `#/components/schemas/${name}` }).enum as string[])].sort();
    expect(enumOf("EventType")).toEqual([...EVENT_TYPES].sort());
    expect(enumOf("ErrorCode")).toEqual(Object.values(ErrorCode).sort());
  });

  it("sends what the bank publishes and receives commands, with the QoS and retain flag of DELIVERY", () => {
    const used = new Set<string>();
    for (const [id, op] of Object.entries(doc.operations)) {
      const channelId = channelIdOf(op.channel);
      const kind = kindOf(channelId);
      used.add(channelId);
      expect(op.action, id).toBe(kind === "cmd" ? "receive" : "send");
      const mqtt = (fromDoc(op.bindings) as { mqtt: { qos: number; retain: boolean } }).mqtt;
      expect({ qos: mqtt.qos, retain: mqtt.retain }, id).toEqual(DELIVERY[kind]);
    }
    expect([...used].sort()).toEqual(EXPECTED_CHANNELS);
  });

  it("marks exactly SIGNED_COMMANDS as signed, and answers each command on its reply channel", () => {
    const receives = Object.values(doc.operations).filter((op) => op.action === "receive");
    expect(receives).toHaveLength(COMMAND_NAMES.length);
    const signed = receives.filter((op) => op["x-lockerd-signed"] === true).map((op) => channelIdOf(op.channel).slice(4));
    expect(signed.sort()).toEqual([...SIGNED_COMMANDS].sort());
    for (const op of receives) {
      expect(typeof op["x-lockerd-signed"], "every command says whether it is signed").toBe("boolean");
      expect(op.reply && channelIdOf(op.reply.channel)).toBe(channelIdOf(op.channel).replace(/^cmd-/, "reply-"));
    }
  });

  it("describes the Last Will: offline status, retained, QoS 1, on the status topic", () => {
    for (const [name, server] of Object.entries(doc.servers)) {
      const will = server.bindings.mqtt.lastWill;
      expect(will.topic.replace("{prefix}", PREFIX).replace("{site}", SITE).replace("{device}", DEVICE), name).toBe(T.status);
      expect({ qos: will.qos, retain: will.retain }).toEqual(DELIVERY.status);
      expect(OUTBOUND.status.parse(JSON.parse(will.message))).toMatchObject({ state: "offline" });
    }
  });
});

describe("the document's examples", () => {
  const examples = EXPECTED_CHANNELS.flatMap((channelId) =>
    (messageOf(channelId).examples ?? []).map((ex, i) => ({ label: `${channelId} #${i} ${ex.name ?? ""}`, channelId, payload: ex.payload })),
  );

  it("cover every message", () => {
    expect(new Set(examples.map((e) => e.channelId))).toEqual(new Set(EXPECTED_CHANNELS));
  });

  it.each(examples)("$label is valid, and an inbound one parses to itself (no defaults, no transforms)", ({ channelId, payload }) => {
    const { schema, outbound } = zodFor(channelId);
    const result = schema.safeParse(payload);
    expect(result.error?.issues ?? []).toEqual([]);
    if (!outbound) expect(result.data).toEqual(payload);
  });

  it("every command example is valid for at most the default lifetime, as a bank would accept it", () => {
    for (const name of COMMAND_NAMES) {
      for (const ex of messageOf(`cmd-${name}`).examples ?? []) {
        const { issuedAt, expiresAt } = COMMANDS[name].parse(ex.payload);
        if (expiresAt !== undefined) expect(expiresAt - issuedAt, name).toBeLessThanOrEqual(DEFAULT_COMMAND_LIFETIME_S * 1000);
      }
    }
  });

  it("the example event's hash verifies", () => {
    const event = messageOf("events").examples?.[0]?.payload as unknown as LedgerEvent;
    const { hash, ...rest } = event;
    expect(eventHash(rest)).toBe(hash);
  });

  it("every signed example verifies with the example key over canonicalCommand", () => {
    const key = createPublicKey({ key: doc.info["x-lockerd-example-key"], format: "jwk" });
    let checked = 0;
    for (const name of COMMAND_NAMES) {
      for (const ex of messageOf(`cmd-${name}`).examples ?? []) {
        const cmd = COMMANDS[name].parse(ex.payload);
        if (!cmd.sig) continue;
        const bytes = canonicalCommand({ site: SITE, device: DEVICE, name, ...cmd });
        expect(verify(null, bytes, key, Buffer.from(cmd.sig, "base64")), `${name} ${ex.name ?? ""}`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(SIGNED_COMMANDS.length);
    const open = messageOf("cmd-open");
    const payload = COMMANDS.open.parse(open.examples?.[0]?.payload);
    expect(canonicalCommand({ site: SITE, device: DEVICE, name: "open", ...payload }).toString("utf8")).toBe(open["x-lockerd-canonical-example"]);
  });
});

// ── commands ──────────────────────────────────────────────────────────────

const envelope = { issuedAt: 1764057000000, expiresAt: 1764057300000 };
/** One realistic command of each kind, as a server would send it. */
const VALID: { [K in CommandName]: { id: string; issuedAt: number; expiresAt?: number; args: CommandArgs<K> } } = {
  reserve: { id: "a1b2c3d4-0001-4000-8000-000000000001", ...envelope, args: { parcel: "1Z999AA10123456784", recipient: "p-1001", size: "M" } },
  cancel: { id: "a1b2c3d4-0002-4000-8000-000000000002", ...envelope, args: { parcel: "1Z999AA10123456784" } },
  open: {
    id: "a1b2c3d4-0003-4000-8000-000000000003",
    ...envelope,
    args: { compartment: "A07", reason: "recipient forgot code", parcel: "1Z999AA10123456784", actor: "helpdesk-7" },
  },
  "issue-code": { id: "a1b2c3d4-0004-4000-8000-000000000004", ...envelope, args: { parcel: "PKG-2026-000123", code: "482913" } },
  "revoke-code": { id: "a1b2c3d4-0005-4000-8000-000000000005", ...envelope, args: { parcel: "PKG-2026-000123" } },
  "set-compartment": { id: "a1b2c3d4-0006-4000-8000-000000000006", issuedAt: 1764057000000, args: { compartment: "B02", enabled: true, size: "L" } },
  directory: {
    id: "a1b2c3d4-0007-4000-8000-000000000007",
    ...envelope,
    args: {
      upserts: [
        { id: "courier-2", name: "Dana Driver", roles: ["courier"], badges: ["C0FFEE02"], active: true },
        { id: "p-1006", name: "Mary Jackson", roles: ["recipient", "staff"], number: "1006", badges: ["04a1b2c6", "04A1B2C7"], active: true },
      ],
      removals: ["p-1004"],
    },
  },
  snapshot: { id: "a1b2c3d4-0008-4000-8000-000000000008", issuedAt: 1764057000000, args: {} },
  replay: { id: "a1b2c3d4-0009-4000-8000-000000000009", issuedAt: 1764057000000, args: { fromSeq: 1030 } },
  policy: {
    id: "a1b2c3d4-0010-4000-8000-000000000010",
    ...envelope,
    args: { policies: { expiryHoursBySize: { XL: 120 }, refrigeratedExpiryHours: 24 }, lockout: { baseDelayMs: 60_000 } },
  },
};

const decode = (name: string, payload: unknown) => decodeCommand(name, typeof payload === "string" ? payload : JSON.stringify(payload));

/** The reply error for a payload built from a valid command; fails when it decodes. */
function refusal(name: CommandName, mutate: (cmd: Node) => unknown) {
  const result = decode(name, mutate(structuredClone(VALID[name]) as unknown as Node));
  if (result.ok) throw new Error("expected a refusal, but it decoded");
  expect(result.error.code).toBe(ErrorCode.BadInput);
  return result;
}

const argsOf = (cmd: Node) => cmd.args as Node;

describe("decodeCommand", () => {
  it.each(COMMAND_NAMES)("accepts a realistic %s, typed, as sent", (name) => {
    const result = decode(name, VALID[name]);
    if (!result.ok) throw new Error(result.error.message);
    expect(result.command).toEqual({ name, ...VALID[name] });
  });

  it("accepts bytes as MQTT delivers them", () => {
    expect(decodeCommand("snapshot", Buffer.from(JSON.stringify(VALID.snapshot))).ok).toBe(true);
  });

  it.each<[string, CommandName, (cmd: Node) => unknown, string]>([
    ["a key the schema does not list", "reserve", (c) => ({ ...c, priority: 1 }), '(root): unknown key "priority"'],
    ["an unknown key in args", "open", (c) => ({ ...c, args: { ...argsOf(c), colour: "red" } }), 'args: unknown key "colour"'],
    ["a wrong type", "reserve", (c) => ({ ...c, args: { ...argsOf(c), size: 7 } }), "args.size: Invalid option"],
    ["a bad size", "reserve", (c) => ({ ...c, args: { ...argsOf(c), size: "XXL" } }), 'args.size: Invalid option: expected one of "S"|"M"|"L"|"XL"'],
    ["a bad size in set-compartment", "set-compartment", (c) => ({ ...c, args: { compartment: "B02", size: "huge" } }), "args.size"],
    ["a missing field", "reserve", (c) => ({ ...c, args: { parcel: "1Z999AA10123456784", size: "M" } }), "args.recipient"],
    ["a timestamp as a string", "cancel", (c) => ({ ...c, issuedAt: "2026-11-25T10:00:00Z" }), "issuedAt: Invalid input: expected number, received string"],
    ["an expiry before issue", "cancel", (c) => ({ ...c, expiresAt: 1764056000000 }), "expiresAt: must be after issuedAt"],
    ["a keypad number instead of a compartment id", "open", (c) => ({ ...c, args: { ...argsOf(c), compartment: "107" } }), "args.compartment: expected a compartment such as A07"],
    ["a reason too short", "open", (c) => ({ ...c, args: { ...argsOf(c), reason: "x" } }), "args.reason"],
    ["a code with letters", "issue-code", (c) => ({ ...c, args: { parcel: "P1", code: "12ab56" } }), "args.code: expected 4-12 digits"],
    ["a parcel id with spaces", "cancel", (c) => ({ ...c, args: { parcel: "my parcel" } }), "args.parcel: expected a parcel id"],
    ["a malformed signature", "open", (c) => ({ ...c, sig: "not-base64!" }), "sig: expected a base64 Ed25519 signature"],
    ["a set-compartment that changes nothing", "set-compartment", (c) => ({ ...c, args: { compartment: "B02" } }), "args: nothing to change"],
    ["a badge that is not hex", "directory", (c) => ({ ...c, args: { upserts: [{ id: "x", name: "X", roles: ["recipient"], badges: ["ZZZZ"], active: true }] } }), "args.upserts[0].badges[0]: expected a hex badge id"],
    ["an unknown role", "directory", (c) => ({ ...c, args: { upserts: [{ id: "x", name: "X", roles: ["admin"], active: true }] } }), "args.upserts[0].roles[0]"],
    ["a person twice in one batch", "directory", (c) => ({ ...c, args: { ...argsOf(c), removals: ["p-1006"] } }), "args.removals[0]: person p-1006 appears twice in one batch"],
    [
      "an oversized directory batch",
      "directory",
      (c) => ({ ...c, args: { upserts: Array.from({ length: MAX_DIRECTORY_UPSERTS + 1 }, (_, i) => ({ id: `p-${i}`, name: `P ${i}`, roles: ["recipient"], active: true })) } }),
      "args.upserts: Too big: expected array to have <=200 items",
    ],
    ["a replay limit of 0", "replay", (c) => ({ ...c, args: { fromSeq: 1, limit: 0 } }), "args.limit"],
    ["a lockout threshold out of range", "policy", (c) => ({ ...c, args: { lockout: { threshold: 0 } } }), "args.lockout.threshold: Too small"],
    ["an unknown policy field", "policy", (c) => ({ ...c, args: { policies: { expiryDays: 3 } } }), 'args.policies: unknown key "expiryDays"'],
    ["args on a snapshot", "snapshot", (c) => ({ ...c, args: { full: true } }), 'args: unknown key "full"'],
    ["an array for a payload", "snapshot", () => [], "(root): Invalid input: expected object"],
  ])("refuses %s, naming the field", (_what, name, mutate, message) => {
    const result = refusal(name, mutate);
    expect(result.error.message).toContain(message);
  });

  it("echoes the command id in a refusal when it could be read", () => {
    expect(refusal("reserve", (c) => ({ ...c, args: {} })).id).toBe(VALID.reserve.id);
    expect(refusal("reserve", (c) => ({ ...c, id: 42 })).id).toBeNull();
  });

  it("refuses an unknown command, naming the known ones", () => {
    const result = decode("explode", VALID.open);
    expect(result).toMatchObject({ ok: false, id: VALID.open.id, error: { code: ErrorCode.UnknownCommand } });
    expect(!result.ok && result.error.message).toMatch(/^unknown command "explode"; known: reserve, cancel, open/);
  });

  it("refuses a payload that is not JSON", () => {
    expect(decode("open", "{oops")).toEqual({ ok: false, id: null, error: { code: ErrorCode.BadInput, message: "payload is not JSON" } });
  });

  it("refuses an oversized payload before parsing it", () => {
    const huge = JSON.stringify({ ...VALID.snapshot, pad: "x".repeat(MAX_COMMAND_BYTES) });
    const result = decode("snapshot", huge);
    expect(result).toMatchObject({ ok: false, id: null, error: { code: ErrorCode.PayloadTooLarge } });
    expect(!result.ok && result.error.message).toContain(`exceeds the ${MAX_COMMAND_BYTES}-byte limit`);
  });

  it("fits the largest valid directory batch under MAX_COMMAND_BYTES", () => {
    const id = (i: number, c: string) => `${c}${i}`.padEnd(64, c);
    const person = (i: number) => ({
      id: id(i, "p"),
      name: "N".repeat(120),
      roles: ["recipient", "courier", "staff", "technician"],
      number: "9".repeat(12),
      badges: Array.from({ length: 8 }, (_, b) => `${b}`.padEnd(32, "F")),
      active: true,
    });
    const cmd = {
      ...VALID.directory,
      sig: "A".repeat(86) + "==",
      args: { upserts: Array.from({ length: 200 }, (_, i) => person(i)), removals: Array.from({ length: 1000 }, (_, i) => id(i, "r")) },
    };
    const text = JSON.stringify(cmd);
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_COMMAND_BYTES);
    expect(decode("directory", text).ok).toBe(true);
  });

  it("has no defaults in inbound schemas, so the parsed command is the signed one", () => {
    for (const name of COMMAND_NAMES) expect(JSON.stringify(z.toJSONSchema(COMMANDS[name], { io: "input" })), name).not.toContain('"default"');
  });
});

// ── topics ────────────────────────────────────────────────────────────────

describe("topics", () => {
  it("builds every topic under <prefix>/<site>/<device>", () => {
    const t = topics("lockers", "hq", "bank-01");
    expect(t).toMatchObject({
      root: "lockers/hq/bank-01",
      status: "lockers/hq/bank-01/status",
      events: "lockers/hq/bank-01/events",
      state: "lockers/hq/bank-01/state",
      telemetry: "lockers/hq/bank-01/telemetry",
      cmdFilter: "lockers/hq/bank-01/cmd/+",
    });
    expect(t.cmd["issue-code"]).toBe("lockers/hq/bank-01/cmd/issue-code");
    expect(t.reply.directory).toBe("lockers/hq/bank-01/reply/directory");
    expect(Object.keys(t.cmd)).toEqual(COMMAND_NAMES);
  });

  it("takes a prefix of several levels, and parses every topic back", () => {
    const t = topics("acme/eu/lockers", "site-7", "bank-12");
    for (const name of COMMAND_NAMES) {
      expect(parseTopic(t.root, t.cmd[name])).toEqual({ kind: "cmd", name });
      expect(parseTopic(t.root, t.reply[name])).toEqual({ kind: "reply", name });
    }
    for (const kind of ["status", "events", "state", "telemetry"] as const) expect(parseTopic(t.root, t[kind])).toEqual({ kind });
  });

  it.each([
    ["lockers/+", "hq", "bank-01"],
    ["#", "hq", "bank-01"],
    ["$SYS", "hq", "bank-01"],
    ["a//b", "hq", "bank-01"],
    ["", "hq", "bank-01"],
    ["lockers", "HQ", "bank-01"],
    ["lockers", "hq", "bank/01"],
  ])("refuses prefix %j, site %j, device %j", (prefix, site, device) => {
    expect(() => topics(prefix, site, device)).toThrow();
  });

  it("parses an unknown command's topic, so it can still be answered", () => {
    expect(parseTopic(T.root, `${T.root}/cmd/explode`)).toEqual({ kind: "cmd", name: "explode" });
  });

  it.each([
    ["another bank", "lockers/hq/bank-02/cmd/open"],
    ["a bank whose id starts the same", "lockers/hq/bank-010/status"],
    ["an extra level", "lockers/hq/bank-01/cmd/open/now"],
    ["an empty command name", "lockers/hq/bank-01/cmd/"],
    ["an unknown kind", "lockers/hq/bank-01/config"],
    ["the root itself", "lockers/hq/bank-01"],
  ])("returns undefined for %s", (_what, topic) => {
    expect(parseTopic("lockers/hq/bank-01", topic)).toBeUndefined();
  });
});

// ── signatures ────────────────────────────────────────────────────────────

describe("canonicalCommand", () => {
  const base = { site: "hq", device: "bank-01", name: "revoke-code", id: "cmd-1", issuedAt: 1000, expiresAt: 2000, args: { parcel: "P1" } };

  it("is sorted, compact JSON of the payload plus name, site and device", () => {
    expect(canonicalCommand(base).toString("utf8")).toBe(
      '{"args":{"parcel":"P1"},"device":"bank-01","expiresAt":2000,"id":"cmd-1","issuedAt":1000,"name":"revoke-code","site":"hq"}',
    );
  });

  it("does not depend on key order, at any depth", () => {
    const a = { ...base, name: "directory", args: { upserts: [{ id: "x", name: "X", roles: ["recipient"], active: true }], removals: ["y"] } };
    const b = { args: { removals: ["y"], upserts: [{ active: true, roles: ["recipient"], name: "X", id: "x" }] }, name: "directory", issuedAt: 1000, id: "cmd-1", expiresAt: 2000, device: "bank-01", site: "hq" };
    expect(canonicalCommand(a).equals(canonicalCommand(b))).toBe(true);
  });

  it("leaves out sig, and expiresAt when absent", () => {
    expect(canonicalCommand({ ...base, sig: "A".repeat(86) + "==" }).equals(canonicalCommand(base))).toBe(true);
    expect(canonicalCommand({ ...base, expiresAt: undefined }).toString()).not.toContain("expiresAt");
  });

  it("binds a signature to one command on one bank", () => {
    const seed = Buffer.alloc(32, 7);
    const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
    const sig = sign(null, canonicalCommand(base), key);
    const ok = (cmd: typeof base) => verify(null, canonicalCommand(cmd), createPublicKey(key), sig);
    expect(ok(base)).toBe(true);
    expect(ok({ ...base, name: "cancel" })).toBe(false);
    expect(ok({ ...base, device: "bank-02" })).toBe(false);
    expect(ok({ ...base, site: "annex" })).toBe(false);
    expect(ok({ ...base, args: { parcel: "P2" } })).toBe(false);
  });
});

// ── types: the contract's outbound types fit what the daemon has ──────────

describe("outbound types", () => {
  it("take the daemon's own records as they are", () => {
    expectTypeOf<LedgerEvent>().toExtend<EventMessage>();
    expectTypeOf<DriverHealth>().toExtend<z.infer<typeof DeviceHealth>>();
    expectTypeOf<Compartment>().toExtend<Omit<CompartmentSnapshot, "held">>();
    expectTypeOf(snapshotOf).returns.toEqualTypeOf<CompartmentSnapshot>();
    expectTypeOf<z.infer<typeof ReplyError>["code"]>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<CommandArgs<"reserve">["size"]>().toEqualTypeOf<"S" | "M" | "L" | "XL">();
  });
});
