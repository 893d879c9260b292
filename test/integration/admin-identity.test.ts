// The audit trail names the real person: the compiled daemon and the compiled lockerctl, run as two
// real OS users (lkt-alice, lkt-bob, created with useradd when missing; never removed, nobody else
// touched). What the kernel says about a proof file's owner is what the ledger records; the name a
// client claims (SUDO_USER, `user`) is kept beside it and changes nothing. Needs root (CI runs as
// root): to create the users and to switch to them.
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, constants, existsSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { HelloResult, LedgerEventView } from "../../src/admin/protocol.js";
import { removeDir, ROOT, SimClient, startDaemon, stopDaemon, tempDir, type Daemon } from "../helpers/daemon.js";

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");
const isRoot = process.getuid?.() === 0;
const GROUP = "lkt-admin";
const ALICE = "lkt-alice";
const BOB = "lkt-bob";

interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

function sh(cmd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { code: r.status, out: r.stdout ?? "", err: `${r.stderr ?? ""}${r.error ? String(r.error) : ""}` };
}

/** The group and the two users: made when missing, joined to the group when not in it yet. */
function ensureUser(name: string): OsUser {
  if (sh("getent", ["group", GROUP]).code !== 0) {
    const r = sh("groupadd", [GROUP]);
    if (r.code !== 0 && sh("getent", ["group", GROUP]).code !== 0) throw new Error(`groupadd ${GROUP}: ${r.err}`);
  }
  if (sh("getent", ["passwd", name]).code !== 0) {
    const r = sh("useradd", ["--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", GROUP, name]);
    if (r.code !== 0 && sh("getent", ["passwd", name]).code !== 0) throw new Error(`useradd ${name}: ${r.err}`);
  }
  if (!sh("id", ["-nG", name]).out.split(/\s+/).includes(GROUP)) {
    const r = sh("usermod", ["-aG", GROUP, name]);
    if (r.code !== 0) throw new Error(`usermod -aG ${GROUP} ${name}: ${r.err}`);
  }
  return { name, uid: Number(sh("id", ["-u", name]).out.trim()), gid: Number(sh("id", ["-g", name]).out.trim()) };
}

let d: Daemon;
let sim: SimClient;
let dir: string;
let sock: string;
let proofDir: string;
let alice: OsUser;
let bob: OsUser;
/** A file of bob's that alice can name but not read: what she would like to pass off as her proof. */
let bobsFile: string;
let probe: string;

/** A process as `who` (setpriv drops root: real and effective ids, that user's groups, no capabilities left). */
function as(who: OsUser, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync("setpriv", [`--reuid=${who.uid}`, `--regid=${who.gid}`, "--init-groups", process.execPath, ...args], {
    encoding: "utf8",
    timeout: 15_000,
    cwd: "/",
    // Nothing of this process's environment (a SUDO_USER of the CI's own would be a claim too).
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/", NO_COLOR: "1", ...env },
  });
  return { code: r.status, out: r.stdout, err: `${r.stderr}${r.error ? String(r.error) : ""}` };
}

const ctl = (who: OsUser, args: string[], env: Record<string, string> = {}) => as(who, [userCtl, "--socket", sock, ...args], env);

/** The compiled lockerctl as the test users run it (reachableCtl). */
let userCtl = CTL;

/**
 * The compiled lockerctl where the test's users can reach it: the checkout itself, or, when a
 * directory above it is closed to them (a clone in a 0700 `mktemp -d`, as CI makes), a copy of
 * dist/ and node_modules/ (hard links where the file system allows) in `base`.
 */
function reachableCtl(base: string): string {
  let open = true;
  for (let d = ROOT; d !== dirname(d); d = dirname(d)) if ((statSync(d).mode & 0o001) === 0) open = false;
  if (open) return CTL;
  const copy = join(base, "lockerd");
  mkdirSync(copy, { mode: 0o755 });
  for (const part of ["dist", "node_modules", "package.json"]) {
    if (spawnSync("cp", ["-al", join(ROOT, part), copy]).status === 0) continue;
    const r = spawnSync("cp", ["-a", join(ROOT, part), copy], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`cannot copy ${part} where the test users can read it: ${r.stderr}`);
  }
  return join(copy, "dist/lockerd/lockerctl.js");
}

/** lockerctl as root: the ledger's events of a type. */
function events(type: string): z.infer<typeof LedgerEventView>[] {
  const r = spawnSync(process.execPath, [CTL, "--socket", sock, "events", "--type", type, "--limit", "100", "--json"], { encoding: "utf8", timeout: 15_000 });
  expect(r.stderr).toBe("");
  return z.object({ events: z.array(LedgerEventView) }).parse(JSON.parse(r.stdout)).events;
}

/** A raw client of the admin socket, as the test process (root): one request, its reply. */
class Raw {
  private buf = "";
  private waiting: ((v: Record<string, any>) => void)[] = [];
  private id = 0;
  private constructor(private readonly s: Socket) {
    s.setEncoding("utf8").on("data", (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(JSON.parse(line) as Record<string, any>);
      }
    });
  }
  static async open(): Promise<Raw> {
    const s = connect(sock);
    await new Promise<void>((res, rej) => s.once("connect", () => res()).once("error", rej));
    return new Raw(s);
  }
  ask(cmd: string, args: Record<string, unknown> = {}, user?: string): Promise<Record<string, any>> {
    return new Promise((res) => {
      this.waiting.push(res);
      this.s.write(`${JSON.stringify({ id: ++this.id, cmd, args, ...(user ? { user } : {}) })}\n`);
    });
  }
  async hello(): Promise<{ nonce: string; dir: string; file: string }> {
    const r = await this.ask("hello");
    const h = HelloResult.parse(r.result);
    return { ...h, file: join(h.dir, h.nonce) };
  }
  close(): void {
    this.s.destroy();
  }
}

const create = (file: string) => closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));

// The same handshake as a raw client run as alice: what she can try against bob's identity.
const PROBE = `
import { closeSync, constants, linkSync, openSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
const [sock, scenario, target, claimUid] = process.argv.slice(2);
const s = connect(sock);
let buf = "";
const waiting = [];
s.setEncoding("utf8").on("data", (d) => {
  buf += d;
  for (let nl = buf.indexOf("\\n"); nl >= 0; nl = buf.indexOf("\\n")) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    waiting.shift()(JSON.parse(line));
  }
});
await new Promise((r) => s.once("connect", r));
let id = 0;
const ask = (cmd, args = {}) => new Promise((r) => { waiting.push(r); s.write(JSON.stringify({ id: ++id, cmd, args, user: "${BOB}" }) + "\\n"); });
const out = {};
const hello = (await ask("hello")).result;
const file = join(hello.dir, hello.nonce);
const attempt = (fn) => { try { fn(); return "ok"; } catch (e) { return e.code; } };
if (scenario === "own-file") out.plant = attempt(() => closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)));
if (scenario === "symlink") out.plant = attempt(() => symlinkSync(target, file));
if (scenario === "hardlink") out.plant = attempt(() => linkSync(target, file));
out.prove = await ask("prove", { nonce: hello.nonce, uid: Number(claimUid) });
out.open = await ask("open", { compartment: "A06", reason: "passing as bob" });
out.status = (await ask("status")).ok;
console.log(JSON.stringify(out));
s.destroy();
`;

function probeAs(who: OsUser, scenario: "own-file" | "symlink" | "hardlink", claimUid: number) {
  const r = as(who, [probe, sock, scenario, bobsFile, String(claimUid)]);
  expect(r.err).toBe("");
  return JSON.parse(r.out) as { plant: string; prove: Record<string, any>; open: Record<string, any>; status: boolean };
}

const NOT_ROOT = "SKIPPED, not running as root: creating OS users (useradd) and running lockerctl as each of them needs root (CI runs as root)";
if (!isRoot) process.stderr.write(`admin-identity.test.ts: ${NOT_ROOT}\n`);

describe.skipIf(!isRoot)(`the admin socket records the OS user the kernel vouches for (two real users)${isRoot ? "" : `: ${NOT_ROOT}`}`, () => {
  beforeAll(async () => {
    alice = ensureUser(ALICE);
    bob = ensureUser(BOB);
    dir = tempDir("lockerd-identity-");
    chmodSync(dir, 0o711); // the users reach run/ and the probe by name, nothing more
    mkdirSync(join(dir, "run"), { mode: 0o755 });
    sock = join(dir, "run", "admin.sock");
    proofDir = join(dir, "run", "admin.proof");
    bobsFile = join(dir, "bobs-file");
    writeFileSync(bobsFile, "bob's", { mode: 0o600 });
    chownSync(bobsFile, bob.uid, bob.gid);
    userCtl = reachableCtl(dir);
    probe = join(dir, "probe.mjs");
    writeFileSync(probe, PROBE, { mode: 0o644 });
    d = await startDaemon({ dir, patch: (cfg) => (cfg.admin = { socket: sock, group: GROUP }) });
    sim = await SimClient.connect(d.socket);
  });
  afterAll(async () => {
    sim?.close();
    if (d) await stopDaemon(d);
    if (dir) removeDir(dir);
  });

  it("the daemon made its proof directory beside the socket: its own, sticky, 1733", () => {
    const st = lstatSync(proofDir);
    expect(st.isDirectory()).toBe(true);
    expect(st.uid).toBe(0);
    expect(st.mode & 0o7777).toBe(0o1733);
    expect(lstatSync(sock).mode & 0o777).toBe(0o660);
  });

  it("lockerctl open run by lkt-alice with SUDO_USER=lkt-bob is recorded as lkt-alice, lkt-bob only as the claim", async () => {
    const m = sim.mark();
    const r = ctl(alice, ["open", "A05", "--reason", "test"], { SUDO_USER: BOB });
    expect(r.code, `${r.err}\n${d.output().slice(-2000)}`).toBe(0);
    await sim.waitFor((e) => e.ev === "unlock" && e.compartment === "A05", { from: m });
    sim.send({ op: "door", compartment: "A05", state: "closed" });
    const opened = events("admin.open").filter((e) => e.compartment === "A05");
    expect(opened).toHaveLength(1);
    expect(opened[0]).toMatchObject({ actor: ALICE, data: { reason: "test", claimedUser: BOB } });
    expect(readFileSync(join(dir, "bobs-file"), "utf8")).toBe("bob's");
  });

  it("without a claim there is nothing beside the actor; each user is recorded as who they are", async () => {
    expect(ctl(bob, ["disable", "A04", "--reason", "hinge broken"]).code).toBe(0);
    expect(ctl(alice, ["enable", "A04", "--reason", "hinge fixed"]).code).toBe(0);
    const changes = events("compartment.").filter((e) => e.compartment === "A04" && (e.actor === ALICE || e.actor === BOB)); // (not the layout's own)
    expect(changes.map((e) => [e.type, e.actor, e.data])).toEqual([
      ["compartment.disabled", BOB, { reason: "hinge broken" }],
      ["compartment.enabled", ALICE, { reason: "hinge fixed" }],
    ]);
  });

  it("alice cannot pass as bob: claiming his uid for her own file, a symlink to his file, a hard link to it", () => {
    const before = events("admin.open").length;
    const claimed = probeAs(alice, "own-file", bob.uid);
    expect(claimed.plant).toBe("ok");
    expect(claimed.prove).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "uid_mismatch" } } });
    expect(claimed.prove.error.message).toBe(`the proof file belongs to uid ${alice.uid}, not to uid ${bob.uid} this client says it runs as`);

    const symlinked = probeAs(alice, "symlink", bob.uid);
    expect(symlinked.plant).toBe("ok");
    expect(symlinked.prove).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "symlink" } } });

    const linked = probeAs(alice, "hardlink", bob.uid);
    if (readFileSync("/proc/sys/fs/protected_hardlinks", "utf8").trim() === "1") {
      expect(linked.plant).toBe("EPERM"); // the kernel refuses the link itself
      expect(linked.prove).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "missing" } } });
    } else {
      expect(linked.prove).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "hardlink" } } });
    }

    for (const r of [claimed, symlinked, linked]) {
      // the connection stays unproven: reads still work, the change is refused
      expect(r.status).toBe(true);
      expect(r.open).toMatchObject({ ok: false, error: { code: "identity_required" } });
    }
    expect(events("admin.open")).toHaveLength(before);
    expect(lstatSync(bobsFile).nlink).toBe(1);
    expect(readFileSync(bobsFile, "utf8")).toBe("bob's");
  });

  it("a hard link or a symlink to bob's file planted where a proof belongs (by root, past the kernel's own checks) is refused", async () => {
    for (const [plant, reason] of [
      [(file: string) => linkSync(bobsFile, file), "hardlink"],
      [(file: string) => symlinkSync(bobsFile, file), "symlink"],
    ] as const) {
      const c = await Raw.open();
      const h = await c.hello();
      plant(h.file);
      expect(await c.ask("prove", { nonce: h.nonce, uid: bob.uid })).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason } } });
      expect(existsSync(h.file)).toBe(false); // the planted name is gone, bob's file is not
      expect(await c.ask("disable", { compartment: "A06", reason: "as bob" }, BOB)).toMatchObject({ ok: false, error: { code: "identity_required" } });
      c.close();
    }
    expect(lstatSync(bobsFile).nlink).toBe(1);
  });

  it("a connection that never proves reads, and is refused every change", async () => {
    const c = await Raw.open();
    expect(await c.ask("status", {}, BOB)).toMatchObject({ ok: true });
    for (const [cmd, args] of [
      ["open", { compartment: "A06", reason: "no proof" }],
      ["disable", { compartment: "A06", reason: "no proof" }],
      ["enable", { compartment: "A06" }],
      ["relay-test", { compartments: ["A06"] }],
    ] as const) {
      const r = await c.ask(cmd, args, BOB);
      expect(r, cmd).toMatchObject({ ok: false, error: { code: "identity_required", context: { proofDir } } });
      expect(r.error.message).toMatch(new RegExp(`^${cmd} changes the bank and is recorded in your name, but this connection has not proven which OS user it is`));
    }
    // a hello alone proves nothing
    await c.hello();
    expect(await c.ask("open", { compartment: "A06", reason: "no proof" }, BOB)).toMatchObject({ ok: false, error: { code: "identity_required" } });
    c.close();
  });

  it("a nonce proves once and only on its own connection; hellos are bounded", async () => {
    const a = await Raw.open();
    const h = await a.hello();
    create(h.file);
    expect(await a.ask("prove", { nonce: h.nonce, uid: 0 })).toEqual({ id: 2, ok: true, result: { user: "root", uid: 0 } });
    expect(await a.ask("prove", { nonce: h.nonce, uid: 0 })).toMatchObject({ ok: false, error: { context: { reason: "already_proven" } } });
    const b = await Raw.open();
    create(h.file); // replayed: the same name again, on another connection
    expect(await b.ask("prove", { nonce: h.nonce, uid: 0 })).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "unknown_nonce" } } });
    expect(await b.ask("open", { compartment: "A06", reason: "replayed" }, "root")).toMatchObject({ ok: false, error: { code: "identity_required" } });
    for (let i = 0; i < 4; i++) await b.hello();
    expect(await b.ask("hello")).toMatchObject({ ok: false, error: { code: "proof_refused", context: { reason: "too_many_pending" } } });
    a.close();
    b.close();
  });

  it("a missing proof directory: reads still work, a change exits 4 naming the directory", () => {
    renameSync(proofDir, `${proofDir}.away`);
    try {
      expect(ctl(alice, ["status"]).code).toBe(0);
      const r = ctl(alice, ["disable", "A06", "--reason", "no proof dir"]);
      expect(r.code).toBe(4);
      expect(r.err).toContain(`the proof directory ${proofDir} is gone (ENOENT): restart lockerd`);
    } finally {
      renameSync(`${proofDir}.away`, proofDir);
    }
  });

  it("a proof directory the user may not write to: exit 4, naming the directory and the group to join", () => {
    chmodSync(proofDir, 0o1700);
    try {
      const r = ctl(alice, ["open", "A06", "--reason", "no write"]);
      expect(r.code).toBe(4);
      expect(r.err).toMatch(/^lockerctl: open changes the bank and is recorded in your name, but this connection has not proven which OS user it is/);
      expect(r.err).toContain(`no permission to create a file in ${proofDir} (EACCES`);
      expect(r.err).toContain(`join the group ${GROUP} (sudo usermod -aG ${GROUP} ${ALICE}`);
    } finally {
      chmodSync(proofDir, 0o1733);
    }
    expect(ctl(alice, ["open", "A06", "--reason", "writable again"]).code).toBe(0);
    sim.send({ op: "door", compartment: "A06", state: "closed" });
  });

  it("the daemon's log names the proven user, the claim beside it, and marks unproven requests (read once it stopped: flushed)", async () => {
    await sim.state();
    expect(await stopDaemon(d)).toBe(0);
    const log = d.output();
    expect(log).toMatch(new RegExp(`"user":"${ALICE}","uid":${alice.uid}[^\n]*"msg":"admin connection proved its user"`));
    expect(log).toMatch(new RegExp(`"cmd":"open","user":"${ALICE}","verified":true,"claimedUser":"${BOB}"[^\n]*"msg":"admin request"`));
    expect(log).toMatch(/"cmd":"status","user":"lkt-bob","verified":false[^\n]*"msg":"admin request \(unverified connection: user is only claimed\)"/);
    expect(log).toMatch(/"reason":"uid_mismatch"[^\n]*admin identity proof refused/);
    expect(log).toMatch(/"cmd":"open","claimedUser":"lkt-bob"[^\n]*"msg":"admin change refused: connection has not proven its user"/);
  });
});
