// MQTT command payloads: random bytes, random JSON and mutated valid commands for every command
// name (and names that are none), through the real CommandRouter on a real ledger (the bank of
// fuzzBank, parcels stored), with and without a server key. With a key, some commands are signed
// properly ("authentic"): only those may change the bank.
//
//   (name, payload) ─▶ CommandRouter.handle ─▶ reply        fake time runs until it settles
//   - never throws; the reply is a valid envelope (contract REPLIES) echoing the readable id
//   - undecodable (bad JSON, schema, size, name): refused, the ledger unchanged
//   - with a key, not authentic: refused (snapshot aside), nothing but alarm.unauthorized_command
//   - a door pulses only for an `open` that decoded (and, with a key, was authentic), at most
//     twice per such open (one retry)
//   - the same payload again (a repeat) gets the same reply and changes nothing
//   - the custody chain verifies after every command (what was hashed is what reads back)
import { generateKeyPairSync, sign } from "node:crypto";
import { z } from "zod";
import { ErrorCode } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { CommandRouter, type ReplyEnvelope } from "../../src/sync/commands.js";
import { canonicalCommand, COMMAND_NAMES, decodeCommand, MAX_COMMAND_BYTES, REPLIES, ReplyError, requiresSignature, type CommandName } from "../../src/sync/contract.js";
import { publicKeyB64, SignatureVerifier } from "../../src/sync/seal.js";
import { ChainWatch, closeAllDoors, depositThroughKeypad, fuzzBank } from "./bank.js";
import { turn, type FuzzClock } from "./clock.js";
import { describeError, show, Tally, type FuzzReport } from "./report.js";
import { mutateObject } from "./mutate.js";
import { Rng } from "./rng.js";

export interface MqttFuzzOptions {
  inputs: number;
  seed: number;
  clock: FuzzClock;
  /** sync.serverPublicKey configured: side effects need a valid signature. */
  verifier: boolean;
}

const SITE = "hq";
const DEVICE = "bank-01";
const SERVER_KEYS = generateKeyPairSync("ed25519");
const OTHER_KEYS = generateKeyPairSync("ed25519");
const UNKNOWN_REPLY = z.object({ id: z.string().nullable(), ok: z.literal(false), error: ReplyError });
const PEOPLE = ["p-1001", "p-1002", "p-1003", "p-1004", "courier-1", "staff-1", "nobody"];
const POOL = ["R-1", "R-2", "R-3", "R-4", "R-5", "R-6"];
const COMPARTMENTS = [...["A", "B"].flatMap((c) => Array.from({ length: 12 }, (_, i) => `${c}${String(i + 1).padStart(2, "0")}`)), "C01", "Z99", "a01", "A1", "A13"];

interface Sent {
  name: string;
  payload: string | Buffer;
  /** Signed by the server's key over exactly what was sent (or no key configured). */
  authentic: boolean;
  how: string;
}

/** Valid-looking args for `name`, from pools small enough that commands meet each other's parcels and doors. */
function argsFor(rng: Rng, name: CommandName, parcels: string[]): Record<string, unknown> {
  const parcel = () => rng.pick(rng.chance(0.5) && parcels.length ? parcels : POOL);
  const maybe = <T>(p: number, v: () => T) => (rng.chance(p) ? v() : undefined);
  const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  switch (name) {
    case "reserve":
      return clean({ parcel: rng.chance(0.5) ? `R-${rng.int(100, 100_000)}` : parcel(), recipient: rng.pick(PEOPLE), size: rng.pick(["S", "M", "L"]), refrigerated: maybe(0.2, () => rng.chance(0.5)), accessible: maybe(0.2, () => rng.chance(0.5)) });
    case "cancel":
    case "revoke-code":
      return { parcel: parcel() };
    case "open":
      return clean({ compartment: rng.pick(COMPARTMENTS), reason: rng.weighted([[8, () => rng.pick(["stuck door", "courier called"])], [1, () => rng.pick(["ok", "x".repeat(201)])]])(), parcel: maybe(0.5, parcel), actor: maybe(0.3, () => rng.pick(PEOPLE)) });
    case "issue-code":
      return clean({ parcel: parcel(), code: maybe(0.5, () => rng.digits(rng.int(3, 13))) });
    case "set-compartment":
      return clean({ compartment: rng.pick(COMPARTMENTS), enabled: maybe(0.7, () => rng.chance(0.5)), size: maybe(0.3, () => rng.pick(["S", "M", "L", "XL"])), reason: maybe(0.5, () => "maintenance") });
    case "directory":
      return clean({
        upserts: maybe(0.7, () =>
          Array.from({ length: rng.int(0, 3) }, () =>
            clean({
              id: rng.pick([...PEOPLE, `p-${rng.int(2000, 2100)}`]),
              name: rng.pick(["Ada", "", "Ö", "x".repeat(121)]),
              roles: rng.pick([["recipient"], ["courier"], ["staff"], [], ["admin"]]),
              number: maybe(0.5, () => rng.digits(rng.int(1, 13))),
              badges: maybe(0.5, () => Array.from({ length: rng.int(0, 3) }, () => rng.hex(rng.int(3, 12)))),
              active: rng.chance(0.8),
            }),
          ),
        ),
        removals: maybe(0.3, () => Array.from({ length: rng.int(0, 2) }, () => rng.pick(PEOPLE))),
      });
    case "snapshot":
      return {};
    case "replay":
      return clean({ fromSeq: rng.int(0, 50), limit: maybe(0.5, () => rng.int(0, 1200)) });
    case "policy":
      return clean({
        policies: maybe(0.6, () => clean({ expiryHours: maybe(0.5, () => rng.pick([72, 1, 0, -1, 1e9])), reminderHours: maybe(0.3, () => [rng.int(-1, 48)]), doorLeftOpenS: maybe(0.3, () => rng.int(0, 4000)) })),
        lockout: maybe(0.6, () => clean({ threshold: maybe(0.5, () => rng.int(0, 120)), baseDelayMs: maybe(0.5, () => rng.pick([1000, 30_000, 0])) })),
      });
  }
}

function sigOf(name: string, payload: Record<string, unknown>, key = SERVER_KEYS.privateKey, site = SITE, device = DEVICE): string {
  try {
    const msg = canonicalCommand({ site, device, name, ...(payload as { id: string; args: unknown; issuedAt: number; expiresAt?: number }) });
    return sign(null, msg, key).toString("base64");
  } catch {
    return "(unsignable)";
  }
}

function commandInput(rng: Rng, verifier: boolean, parcels: string[], serial: number): Sent {
  const name = rng.weighted<() => string>([
    [COMMAND_NAMES.length * 4, () => rng.pick(COMMAND_NAMES)],
    [1, () => rng.pick(["", "OPEN", "open/x", "__proto__", "constructor", "hasOwnProperty", "x".repeat(300), "cmd", "+", "#"])],
    [1, () => rng.junk(rng.int(0, 20))],
  ])();
  return rng.weighted<() => Sent>([
    [1, () => ({ name, payload: rng.bytes(rng.int(0, 200)), authentic: !verifier, how: "bytes" })],
    [1, () => ({ name, payload: JSON.stringify(rng.json(4)) ?? "null", authentic: !verifier, how: "json" })],
    [0.02, () => ({ name, payload: `{"id":"big","args":{},"issuedAt":0,"pad":"${"x".repeat(MAX_COMMAND_BYTES)}"}`, authentic: !verifier, how: "oversized" })],
    [
      8,
      () => {
        const known = (COMMAND_NAMES as readonly string[]).includes(name) ? (name as CommandName) : rng.pick(COMMAND_NAMES);
        const now = Date.now();
        const issuedAt = now + rng.weighted([[8, 0], [1, rng.int(-700_000, 700_000)], [0.3, rng.pick([-1, 0, 1e15, 2 ** 53])]]);
        const payload: Record<string, unknown> = { id: rng.chance(0.97) ? `f-${serial}` : rng.pick(["", "-x", "a b", "x".repeat(65)]), args: argsFor(rng, known, parcels), issuedAt };
        if (rng.chance(0.3)) payload.expiresAt = issuedAt + rng.weighted([[4, rng.int(1, 600_000)], [1, rng.int(-10, 10 * 86_400_000)]]);
        let authentic = !verifier;
        let how = "valid";
        if (verifier) {
          how = rng.weighted([[4, "signed"], [3, "unsigned"], [1, "randomSig"], [1, "otherKey"], [1, "otherName"], [1, "otherBank"]]);
          if (how === "signed") payload.sig = sigOf(name, payload);
          if (how === "randomSig") payload.sig = `${Buffer.from(rng.bytes(64)).toString("base64")}`;
          if (how === "otherKey") payload.sig = sigOf(name, payload, OTHER_KEYS.privateKey);
          if (how === "otherName") payload.sig = sigOf(rng.pick(COMMAND_NAMES.filter((n) => n !== name)), payload);
          if (how === "otherBank") payload.sig = sigOf(name, payload, SERVER_KEYS.privateKey, SITE, "bank-02");
          authentic = how === "signed";
        } else if (rng.chance(0.1)) payload.sig = Buffer.from(rng.bytes(64)).toString("base64");
        if (rng.chance(0.35)) {
          mutateObject(rng, payload);
          how += "+mutated";
          // a mutation that left every signed field alone keeps the signature good
          authentic = authentic && (!verifier || sigOf(name, payload) === payload.sig);
        }
        let text = JSON.stringify(payload);
        if (rng.chance(0.03)) {
          text = rng.pick([text.slice(0, rng.int(0, text.length - 1)), `${text}${rng.junk(3)}`, ` ${text}\n`, text.replace(":", "::")]);
          how += "+garbled";
          authentic = authentic && decodeCommand(name, text).ok && JSON.stringify(JSON.parse(text)) === JSON.stringify(payload);
        }
        return { name, payload: text, authentic, how };
      },
    ],
  ])();
}

export async function fuzzMqtt(opts: MqttFuzzOptions): Promise<FuzzReport> {
  const tally = new Tally(`mqtt-${opts.verifier ? "signed" : "unsigned"}`, opts.seed);
  const rng = new Rng(opts.seed);
  // The server owns the people directory here, so directory commands reach the code that applies them.
  const b = await fuzzBank({ patch: (cfg) => (cfg.people = { owner: "server" }) });
  const { rt, hw } = b;
  const clock = opts.clock;
  try {
    for (const [size, who] of [["1", "1001"], ["2", "1002"], ["1", "1003"], ["3", "1001"]] as const) await depositThroughKeypad(b, (ms) => clock.advance(ms), size, who);
    await clock.advance(1000);
    closeAllDoors(b);
    const parcels = b.codes.map((c) => c.parcel);
    const router = new CommandRouter({
      ledger: rt.ledger,
      bank: rt.bank,
      remote: rt.remote,
      site: SITE,
      device: DEVICE,
      verifier: opts.verifier ? new SignatureVerifier(publicKeyB64(SERVER_KEYS.publicKey)) : undefined,
      clockSkewMs: 60_000,
      now: () => Date.now(),
      log: silentLogger(),
      replay: () => 0,
      publishState: () => undefined,
    });

    let current = -1;
    let sent: Sent | undefined;
    const repro = () => show({ seed: opts.seed, verifier: opts.verifier, input: current, name: sent?.name, how: sent?.how, payload: typeof sent?.payload === "string" ? sent.payload.slice(0, 2000) : sent?.payload });
    const allowedOpens = new Map<string, number>();
    const pulses = new Map<string, number>();
    const byChannel = new Map(rt.layout.map((l) => [l.lock, l.id]));
    hw.on("unlock", (channel) => {
      const id = byChannel.get(channel) ?? `channel ${channel}`;
      pulses.set(id, (pulses.get(id) ?? 0) + 1);
      tally.count("pulses");
      if (pulses.get(id)! > 2 * (allowedOpens.get(id) ?? 0)) {
        tally.find({ kind: "unlock", input: current, detail: `${id} pulsed ${pulses.get(id)} times for ${allowedOpens.get(id) ?? 0} accepted open command(s)`, repro: repro() });
      }
    });
    const history: { sent: Sent; reply: ReplyEnvelope }[] = [];
    const chain = new ChainWatch(rt.ledger);

    /** Runs a command to its reply, letting fake time pass while it waits on a door. */
    const run = async (s: Sent): Promise<ReplyEnvelope | undefined> => {
      let reply: ReplyEnvelope | undefined;
      let failure: unknown;
      let done = false;
      router.handle(s.name, s.payload).then(
        (r) => ((reply = r), (done = true)),
        (e: unknown) => ((failure = e), (done = true)),
      );
      for (let waited = 0; !done && waited < 10_000; waited += 100) {
        await turn();
        if (!done) await clock.advance(100);
      }
      if (failure !== undefined) tally.find({ kind: "crash", input: current, detail: `handle rejected: ${describeError(failure)}`, repro: repro() });
      else if (!done) tally.find({ kind: "invariant", input: current, detail: "no reply within 10 s of fake time", repro: repro() });
      return reply;
    };

    for (let i = 0; i < opts.inputs; i++) {
      current = i;
      const repeat = history.length > 0 && rng.chance(0.05);
      const previous = repeat ? rng.pick(history) : undefined;
      sent = previous ? previous.sent : commandInput(rng, opts.verifier, parcels, i);
      tally.count(`how.${sent.how.split("+")[0]}`);
      const decoded = decodeCommand(sent.name, sent.payload);
      const opening = decoded.ok && decoded.command.name === "open" && sent.authentic;
      // An exact repeat of an open that was answered ok must not open again; one refused may run.
      if (opening && (!previous || !previous.reply.ok)) {
        const c = (decoded.command.args as { compartment: string }).compartment;
        allowedOpens.set(c, (allowedOpens.get(c) ?? 0) + 1);
      }
      const head = rt.ledger.headSeq;
      let reply: ReplyEnvelope | undefined;
      try {
        reply = await run(sent);
      } catch (e) {
        tally.find({ kind: "crash", input: i, detail: describeError(e), repro: repro() });
      }
      const fresh = rt.ledger.eventsFrom(head + 1, 100_000);
      if (reply) {
        const wrong = checkReply(sent, decoded, reply, opts.verifier);
        if (wrong) tally.find({ kind: "invariant", input: i, detail: wrong, repro: repro() });
        tally.count(reply.ok ? `ok.${sent.name}` : `refused.${reply.error.code}`);
        // later commands meet the parcels the server reserved
        if (reply.ok && decoded.ok && decoded.command.name === "reserve" && !parcels.includes(decoded.command.args.parcel)) parcels.push(decoded.command.args.parcel);
        if (previous && !sameAnswer(previous.reply, reply)) {
          tally.find({ kind: "invariant", input: i, detail: `a repeat answered ${JSON.stringify(reply).slice(0, 300)} after ${JSON.stringify(previous.reply).slice(0, 300)}`, repro: repro() });
        }
        if (!repeat) {
          history.push({ sent, reply });
          if (history.length > 200) history.shift();
        }
      }
      // What a command may write.
      const types = fresh.map((e) => e.type);
      if (!decoded.ok && fresh.length) tally.find({ kind: "invariant", input: i, detail: `an undecodable command wrote ${types.join(" ")}`, repro: repro() });
      if (decoded.ok && !sent.authentic && fresh.some((e) => e.type !== "alarm.unauthorized_command")) {
        tally.find({ kind: "invariant", input: i, detail: `a command without a valid signature wrote ${types.join(" ")}`, repro: repro() });
      }
      if (previous?.reply.ok && fresh.some((e) => e.type !== "alarm.unauthorized_command")) {
        tally.find({ kind: "invariant", input: i, detail: `a repeat wrote ${types.join(" ")}`, repro: repro() });
      }
      tally.count("events", fresh.length);
      const broken = chain.check();
      if (broken) tally.find({ kind: "invariant", input: i, detail: `custody chain broken at #${broken.seq} (${broken.reason}): ${show(broken.event).slice(0, 600)}`, repro: repro() });
      // People take what the opened doors offered and close them; now and then time passes.
      if (opening) {
        closeAllDoors(b);
        await clock.advance(200);
      }
      if (rng.chance(0.01)) await clock.advance(rng.pick([1000, 10_000, 61_000]));
    }
    current = opts.inputs;
    const whole = rt.ledger.verify();
    if (!whole.ok) tally.find({ kind: "invariant", input: -1, detail: `custody chain: ${JSON.stringify(whole)}`, repro: "" });
  } finally {
    await b.close();
  }
  return tally.report(opts.inputs);
}

/**
 * Whether a repeat's reply is the one the first got: the same reply after an ok (it is on record);
 * the same error code after a refusal, unless time or a transient fault may have changed it
 * (expired / issued in the future, busy, hardware). Refusals before execution are decided again
 * and their messages name the bank clock.
 */
function sameAnswer(first: ReplyEnvelope, again: ReplyEnvelope): boolean {
  if (first.ok) return JSON.stringify(first) === JSON.stringify(again);
  const open = [ErrorCode.Expired, ErrorCode.Busy, ErrorCode.HardwareTimeout, ErrorCode.HardwareUnavailable, ErrorCode.ShuttingDown] as string[];
  return open.includes(first.error.code) || (!again.ok && again.error.code === first.error.code);
}

/** What is wrong with a reply, or null. */
function checkReply(sent: Sent, decoded: ReturnType<typeof decodeCommand>, reply: ReplyEnvelope, verifier: boolean): string | null {
  const schema = (COMMAND_NAMES as readonly string[]).includes(sent.name) ? REPLIES[sent.name as CommandName] : UNKNOWN_REPLY;
  const parsed = schema.safeParse(reply);
  if (!parsed.success) return `reply ${JSON.stringify(reply).slice(0, 400)} breaks the contract: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
  const id = decoded.ok ? decoded.command.id : decoded.id;
  if (reply.id !== id) return `reply id ${JSON.stringify(reply.id)}, the command's ${JSON.stringify(id)}`;
  if (!decoded.ok && reply.ok) return "an undecodable command was answered ok";
  if (reply.ok && verifier && !sent.authentic && requiresSignature(sent.name as CommandName)) return `${sent.name} without a valid signature was executed (${sent.how})`;
  if (!reply.ok && reply.error.code === ErrorCode.Internal) return `internal error: ${reply.error.message}`;
  return null;
}
