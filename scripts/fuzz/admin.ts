// Admin requests: random lines, random JSON and mutated valid requests over the real admin socket
// of a Runtime (adminSocket on, its own data directory), one line at a time, on fake time.
//
//   line ─▶ unix socket ─▶ LineServer ─▶ AdminServer (zod AdminRequest ─▶ run) ─▶ reply line
//   - the daemon never crashes; every line that is not blank gets exactly one reply, a valid
//     AdminReply, echoing the request's numeric id (null when there is none); no "internal" error
//   - a request the schema refuses is answered bad_input; the custody chain verifies after each
//   - a door pulses only for `open` / `relay-test` requests the schema accepted, naming that
//     door (relay-test without doors: any door once), at most twice per request (one retry)
//
//   - three connections in four prove their OS user first (hello, file, prove); on the fourth a
//     command that changes something is never answered ok (identity_required, or bad_input)
//
// The socket's own limit (200 lines a second per client) would drop a fast fuzzer: it reconnects
// every 300 lines.
import { closeSync, constants, openSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { AdminReply, adminRequest, HelloResult, needsIdentity } from "../../src/admin/protocol.js";
import { ChainWatch, closeAllDoors, depositThroughKeypad, fuzzBank, type FuzzBank } from "./bank.js";
import { turn, type FuzzClock } from "./clock.js";
import { mutateObject } from "./mutate.js";
import { describeError, show, Tally, type FuzzReport } from "./report.js";
import { Rng } from "./rng.js";

export interface AdminFuzzOptions {
  inputs: number;
  seed: number;
  clock: FuzzClock;
}

const CMDS = ["status", "compartments", "open", "disable", "enable", "relay-test", "sensors", "selftest", "events", "sync", "stats", "watch", "hello", "prove"] as const;
const DOORS = ["A01", "A07", "B12", "a03", "101", "107", "212", "B05", "A10", "A1", "Z99", "999", "1001", "A13", "", "A07 "];
const LINES_PER_CONNECTION = 300;

function validRequest(rng: Rng, id: number): Record<string, unknown> {
  // (selftest and stats read the whole ledger: rarer, or a long run spends its time re-hashing the chain)
  const cmd = rng.weighted<(typeof CMDS)[number]>(CMDS.map((c) => [c === "selftest" || c === "stats" ? 0.1 : c === "relay-test" || c === "hello" || c === "prove" ? 0.3 : 1, c] as const));
  const door = () => rng.pick(DOORS);
  const reason = () => rng.weighted([[6, () => rng.pick(["stuck door", "inspection after a jam"])], [1, () => rng.pick(["ok", "  ab  ", "x".repeat(201), ""])]])();
  const args: Record<string, unknown> = {};
  switch (cmd) {
    case "open":
    case "disable":
      args.compartment = door();
      if (rng.chance(0.9)) args.reason = reason();
      break;
    case "enable":
      args.compartment = door();
      if (rng.chance(0.5)) args.reason = reason();
      break;
    case "relay-test":
      if (rng.chance(0.8)) args.compartments = Array.from({ length: rng.int(0, 3) }, door);
      if (rng.chance(0.5)) args.reason = reason();
      break;
    case "sensors":
      if (rng.chance(0.5)) args.watch = rng.chance(0.3);
      break;
    case "events":
      if (rng.chance(0.5)) args.sinceSeq = rng.int(-1, 200);
      if (rng.chance(0.3)) args.sinceTs = rng.pick([0, Date.now() - 60_000, -5]);
      if (rng.chance(0.4)) args.type = rng.pick(["alarm.", "parcel.deposited", "", "x".repeat(70), "door."]);
      if (rng.chance(0.5)) args.limit = rng.weighted([[6, 50], [2, 1], [1, 0], [1, 10_001], [0.2, 10_000]]); // 10,000: megabytes of reply
      if (rng.chance(0.2)) args.follow = rng.chance(0.5);
      break;
    case "stats":
      if (rng.chance(0.5)) args.days = rng.pick([1, 30, 3650, 0, 4000]);
      break;
    case "prove":
      // nonces never issued (or malformed), and uids: nothing proves without its hello's file
      if (rng.chance(0.9)) args.nonce = rng.pick(["0".repeat(32), rng.bytes(16).toString("hex"), "../../etc/passwd", "ABC", ""]);
      if (rng.chance(0.9)) args.uid = rng.pick([0, 1000, process.geteuid?.() ?? 0, -1, 2 ** 32]);
      break;
  }
  const req: Record<string, unknown> = { id: rng.chance(0.95) ? id : rng.pick([1.5, -1, 2 ** 53, "7", null]), user: rng.weighted([[8, () => rng.pick(["alice", "tech.1", "root"])], [1, () => rng.pick(["bad user", "", "x".repeat(65), "ä"])]])(), cmd };
  if (Object.keys(args).length || rng.chance(0.5)) req.args = args;
  return req;
}

/** One line to send (no newline in it). */
function adminLine(rng: Rng, id: number): string {
  return rng.weighted<() => string>([
    [6, () => {
      const req = validRequest(rng, id);
      if (rng.chance(0.4)) mutateObject(rng, req);
      return JSON.stringify(req);
    }],
    [1, () => JSON.stringify(rng.json(4)) ?? "null"],
    [1, () => rng.bytes(rng.int(0, 120)).toString("latin1").replaceAll("\n", " ")],
    [1, () => rng.junk(rng.int(0, 80)).replaceAll("\n", " ")],
    [0.5, () => {
      const t = JSON.stringify(validRequest(rng, id));
      return rng.pick([t.slice(0, rng.int(0, t.length - 1)), `${t}${t}`, `${t} x`, `\ufeff${t}`, `${t}\r`, t.replace("{", "[")]);
    }],
    [0.1, () => rng.pick(["", " ", "\t", "\r"])],
    [0.01, () => `{"id":1,"user":"a","cmd":"status","pad":"${"x".repeat(17_000)}"}`],
  ])();
}

class Client {
  private buf = "";
  readonly replies: unknown[] = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.replies.push(JSON.parse(line));
      }
    });
    socket.on("close", () => (this.closed = true));
    socket.on("error", () => undefined);
  }

  static async open(path: string, prove: boolean): Promise<Client> {
    const c = await new Promise<Client>((resolve, reject) => {
      const s = connect(path, () => resolve(new Client(s)));
      s.once("error", reject);
    });
    if (!prove) return c;
    // The identity handshake (src/admin/protocol.ts) as lockerctl does it, then a clean slate of replies.
    const ask = async (req: Record<string, unknown>) => {
      const before = c.replies.length;
      c.socket.write(`${JSON.stringify(req)}\n`);
      for (let spins = 0; c.replies.length === before && spins < 4000; spins++) await turn();
      return c.replies[before] as { ok?: boolean; result?: unknown } | undefined;
    };
    const hello = HelloResult.parse((await ask({ id: 0, cmd: "hello", args: {} }))?.result);
    closeSync(openSync(join(hello.dir, hello.nonce), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    const proved = await ask({ id: 0, cmd: "prove", args: { nonce: hello.nonce, uid: process.geteuid?.() ?? 0 } });
    if (!proved?.ok) throw new Error(`the fuzzer could not prove its user: ${JSON.stringify(proved)}`);
    c.replies.length = 0;
    return c;
  }

  /** Replies (not stream lines) received so far. */
  answers(): Record<string, unknown>[] {
    return this.replies.filter((r) => !(r && typeof r === "object" && "stream" in r)) as Record<string, unknown>[];
  }
}

export async function fuzzAdmin(opts: AdminFuzzOptions): Promise<FuzzReport> {
  const tally = new Tally("admin", opts.seed);
  const rng = new Rng(opts.seed);
  const b: FuzzBank = await fuzzBank({ adminSocket: true });
  const { rt, hw } = b;
  const clock = opts.clock;
  let client: Client | undefined;
  try {
    for (const [size, who] of [["1", "1001"], ["2", "1002"]] as const) await depositThroughKeypad(b, (ms) => clock.advance(ms), size, who);
    await clock.advance(1000);
    closeAllDoors(b);
    const path = rt.adminPath;
    if (!path) throw new Error("the runtime opened no admin socket");

    let current = -1;
    let line = "";
    const repro = () => show({ seed: opts.seed, input: current, line: line.slice(0, 2000) });
    const allowed = new Map<string, number>();
    let anyDoor = 0;
    const pulses = new Map<string, number>();
    const byChannel = new Map(rt.layout.map((l) => [l.lock, l.id]));
    hw.on("unlock", (channel) => {
      const id = byChannel.get(channel) ?? `channel ${channel}`;
      pulses.set(id, (pulses.get(id) ?? 0) + 1);
      tally.count("pulses");
      if (pulses.get(id)! > 2 * ((allowed.get(id) ?? 0) + anyDoor)) {
        tally.find({ kind: "unlock", input: current, detail: `${id} pulsed ${pulses.get(id)} times for ${allowed.get(id) ?? 0} accepted open/relay-test request(s) naming it`, repro: repro() });
      }
    });
    const door = (entry: string) => {
      try {
        return rt.bank.compartmentByKeypad(entry).id;
      } catch {
        return undefined;
      }
    };

    const chain = new ChainWatch(rt.ledger);
    let connections = 0;
    let proven = true;
    for (let i = 0; i < opts.inputs; i++) {
      current = i;
      if (!client || client.closed || i % LINES_PER_CONNECTION === 0) {
        client?.socket.destroy();
        proven = connections++ % 4 !== 3;
        client = await Client.open(path, proven);
      }
      line = adminLine(rng, i + 1);
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        raw = undefined;
      }
      const parsed = adminRequest().safeParse(raw);
      if (parsed.success && parsed.data.cmd === "open" && proven) {
        const id = door(parsed.data.args.compartment);
        if (id) allowed.set(id, (allowed.get(id) ?? 0) + 1);
      }
      if (parsed.success && parsed.data.cmd === "relay-test" && proven) {
        if (parsed.data.args.compartments.length === 0) anyDoor++;
        for (const e of new Set(parsed.data.args.compartments.map(door))) if (e) allowed.set(e, (allowed.get(e) ?? 0) + 1);
      }
      tally.count(parsed.success ? `valid.${parsed.data.cmd}` : "invalid");
      const blank = line.trim() === "";
      const before = client.answers().length;
      const t0 = performance.now();
      try {
        client.socket.write(`${line}\n`);
        // Wait for the reply: real turns for the socket, fake time for doors and locks.
        let spins = 0;
        while (!blank && client.answers().length === before && !client.closed && spins < 4000) {
          await turn();
          if (++spins % 3 === 0) await clock.advance(100);
        }
        if (blank) await turn();
      } catch (e) {
        tally.find({ kind: "crash", input: i, detail: describeError(e), repro: repro() });
      }
      tally.count(`ms.${parsed.success ? parsed.data.cmd : "invalid"}`, performance.now() - t0);
      const got = client.answers().slice(before);
      if (blank) {
        if (got.length) tally.find({ kind: "invariant", input: i, detail: `a blank line was answered ${JSON.stringify(got[0])}`, repro: repro() });
      } else if (got.length !== 1) {
        tally.find({ kind: "invariant", input: i, detail: `${got.length} replies${client.closed ? " (connection closed)" : ""}`, repro: repro() });
      } else {
        const reply = got[0]!;
        const wrong = checkReply(reply, raw, parsed.success, line) ?? (parsed.success && !proven && needsIdentity(parsed.data.cmd) && reply.ok ? `${parsed.data.cmd} ran on a connection that never proved its user` : null);
        if (wrong) tally.find({ kind: "invariant", input: i, detail: wrong, repro: repro() });
        tally.count(reply.ok ? "ok" : `refused.${(reply.error as { code?: string }).code}`);
      }
      if (parsed.success && (parsed.data.cmd === "open" || parsed.data.cmd === "relay-test")) {
        closeAllDoors(b);
        await clock.advance(200);
      }
      const broken = chain.check();
      if (broken) tally.find({ kind: "invariant", input: i, detail: `custody chain broken at #${broken.seq} (${broken.reason}): ${show(broken.event).slice(0, 600)}`, repro: repro() });
    }
    current = opts.inputs;
    // The daemon still answers, and its ledger is whole.
    client?.socket.destroy();
    client = await Client.open(path, false);
    client.socket.write(`${JSON.stringify({ id: 1, user: "fuzz", cmd: "selftest" })}\n`);
    for (let spins = 0; client.answers().length === 0 && spins < 4000; spins++) await turn();
    const last = client.answers()[0] as { ok?: boolean; result?: { checks?: { name: string; ok: boolean; detail: string }[] } } | undefined;
    const failed = last?.result?.checks?.filter((c) => !c.ok && (c.name.startsWith("ledger") || c.name === "custody chain")) ?? [];
    if (!last || failed.length) tally.find({ kind: "invariant", input: -1, detail: `selftest after the run: ${JSON.stringify(last ? failed : "no reply")}`, repro: "" });
  } finally {
    client?.socket.destroy();
    await b.close();
  }
  return tally.report(opts.inputs);
}

/** What is wrong with the one reply to a line, or null. */
function checkReply(reply: Record<string, unknown>, raw: unknown, valid: boolean, line: string): string | null {
  const shape = AdminReply.safeParse(reply);
  if (!shape.success || "stream" in reply) return `reply ${JSON.stringify(reply).slice(0, 300)} is no AdminReply`;
  const rawId = raw && typeof raw === "object" ? (raw as { id?: unknown }).id : undefined;
  const overlong = Buffer.byteLength(line) > 16 * 1024;
  const id = !overlong && typeof rawId === "number" ? rawId : null;
  if (reply.id !== id) return `reply id ${JSON.stringify(reply.id)}, the request's ${JSON.stringify(id)}`;
  const error = reply.error as { code: string; message: string } | undefined;
  if (!valid && reply.ok) return "a request the schema refuses was answered ok";
  if (!valid && error?.code !== "bad_input") return `a request the schema refuses was answered ${error?.code}`;
  if (error?.code === "internal") return `internal error: ${error.message}`;
  return null;
}
