// Year two, as a technician does it, with the compiled daemon and lockerctl: a new courier added
// and given a PIN typed on a real terminal (no echo: the PIN never appears in what the terminal
// shows), the PIN opening the courier's menu at the keypad at once; a backup taken while the bank
// serves, restored onto a "new SD card" where the stored parcel's code and the courier's PIN still
// work; and a real-bank config that still carries demo people refused.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { courierDeposit, displayHas, MAIN, removeDir, ROOT, SimClient, startDaemon, stopDaemon, tempDir, type Daemon } from "../helpers/daemon.js";

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");
const ctl = (dataDir: string, args: string[], input?: string) => {
  const r = spawnSync(process.execPath, [CTL, "--data", dataDir, ...args], { encoding: "utf8", input, timeout: 20_000, env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

/** lockerctl on a real pseudo-terminal (util-linux `script`): what the terminal shows, and the exit code. */
function onTerminal(args: string[], keystrokes: string[]): Promise<{ screen: string; code: number | null }> {
  const cmd = [process.execPath, CTL, ...args].map((a) => `'${a}'`).join(" ");
  const child = spawn("script", ["-qefc", cmd, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
  let screen = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (screen += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (screen += d));
  // Type each answer once its prompt is on the screen, as a person would.
  const prompts = [/New PIN/, /again/];
  void (async () => {
    for (let i = 0; i < keystrokes.length; i++) {
      const until = Date.now() + 10_000;
      while (!prompts[i]!.test(screen) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      child.stdin.write(keystrokes[i]!);
    }
  })();
  return new Promise((resolve) => child.on("exit", (code) => resolve({ screen, code })));
}

const daemons: Daemon[] = [];
let sim: SimClient | undefined;
afterEach(async () => {
  sim?.close();
  sim = undefined;
  for (const d of daemons.splice(0)) {
    await stopDaemon(d);
    removeDir(d.dir);
  }
});

async function start(dir?: string): Promise<Daemon> {
  const d = await startDaemon(dir ? { dir } : {});
  daemons.push(d);
  return d;
}

describe("people, backup and restore with the compiled daemon", () => {
  it("a courier added by lockerctl, PIN typed twice without echo, works at the keypad at once", async () => {
    const d = await start();
    sim = await SimClient.connect(d.socket);
    expect(ctl(d.dataDir, ["people", "add", "courier-2", "--name", "Dana Driver", "--roles", "courier"]).out).toMatch(/courier-2 \(Dana Driver\): active/);
    const t = await onTerminal(["--data", d.dataDir, "people", "set-pin", "courier-2"], ["5173\r", "5173\r"]);
    expect(t.code, t.screen).toBe(0);
    expect(t.screen).toMatch(/New PIN.*\n?.*again/s);
    expect(t.screen).not.toContain("5173");
    expect(t.screen).toMatch(/PIN set/);

    const m = sim.mark();
    sim.send({ op: "keys", keys: "*5173#" });
    await sim.waitFor(displayHas("Parcel size?"), { from: m });
    sim.send({ op: "keys", keys: "*" });

    // Mismatched entries on the terminal change nothing.
    const bad = await onTerminal(["--data", d.dataDir, "people", "set-pin", "courier-2"], ["6284\r", "6285\r"]);
    expect(bad.code).toBe(2);
    expect(bad.screen).toMatch(/differ: nothing changed/);
    expect(bad.screen).not.toMatch(/6284|6285/);

    // A leaver: disabled, the PIN stops at once.
    expect(ctl(d.dataDir, ["people", "disable", "courier-2", "--reason", "left the company"]).code).toBe(0);
    const m2 = sim.mark();
    sim.send({ op: "keys", keys: "*5173#" });
    await sim.waitFor(displayHas("Code not valid"), { from: m2 });
    expect(sim.since(m2).some(displayHas("Parcel size?"))).toBe(false);

    const events = JSON.parse(ctl(d.dataDir, ["events", "--type", "person.", "--json"]).out) as { events: { type: string; actor: string; data: Record<string, unknown> }[] };
    const mine = events.events.filter((e) => e.data.person === "courier-2");
    expect(mine.map((e) => e.type)).toEqual(["person.added", "person.pin_set", "person.disabled"]);
    // Recorded as the OS user the daemon verified (this test runs as one user).
    const me = spawnSync("id", ["-un"], { encoding: "utf8" }).stdout.trim();
    for (const e of mine) expect(e.actor).toBe(me);
    expect(JSON.stringify(events.events.map((e) => e.data))).not.toContain("5173");
  });

  it("a backup taken while the bank serves restores on a new card: the parcel's code opens, the chain holds", async () => {
    const d = await start();
    sim = await SimClient.connect(d.socket);
    const parcel = await courierDeposit(sim);
    // The keypad keeps being used while the backup is made.
    let typing = true;
    const noise = (async () => {
      while (typing) {
        sim!.send({ op: "keys", keys: "*" });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const file = join(d.dir, "bank.backup");
    const b = ctl(d.dataDir, ["backup", file]);
    typing = false;
    await noise;
    expect(b.code, b.err).toBe(0);
    expect(b.out).toMatch(/backup written: .*bank\.backup/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(ctl(d.dataDir, ["backup", file]).err).toMatch(/exists/);

    // Restore is refused while lockerd runs on the directory.
    const busy = spawnSync(process.execPath, [MAIN, "restore", file, "--data", d.dataDir], { encoding: "utf8" });
    expect(busy.status).toBe(75);

    // The old card dies; a new one gets the backup.
    sim.close();
    sim = undefined;
    await stopDaemon(daemons.shift()!);
    const fresh = tempDir();
    const r = spawnSync(process.execPath, [MAIN, "restore", file, "--data", join(fresh, "data")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/custody chain verified/);
    expect(r.stdout).toMatch(/1 parcel\(s\)/);
    removeDir(d.dir);

    const d2 = await start(fresh);
    sim = await SimClient.connect(d2.socket);
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${parcel.code}#` });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    expect(unlock.compartment).toBe(parcel.compartment);
    const self = ctl(d2.dataDir, ["selftest"]);
    expect(self.code, self.out).toBe(0);
    const ev = JSON.parse(ctl(d2.dataDir, ["events", "--type", "system.restored", "--json"]).out) as { events: { data: { fromSeq: number } }[] };
    expect(ev.events).toHaveLength(1);
  });

  it("a backup's copy never outlives its request: a client gone mid-stream, a crash's leftover at the next start", async () => {
    const d = await start();
    const { AdminClient } = await import("../../src/cli/client.js");
    const client = await AdminClient.connect(join(d.dataDir, "admin.sock"));
    let chunks = 0;
    const pending = client.request("backup" as never, {}, "tech", () => {
      chunks++;
      client.close(); // walks away after the first piece
    });
    await pending.catch(() => {});
    expect(chunks).toBeGreaterThan(0);
    const leftovers = () => readdirSync(d.dataDir).filter((f) => f.startsWith("backup-"));
    for (let i = 0; i < 100 && leftovers().length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(leftovers()).toEqual([]);
    // A copy left by a crash (it holds the device key) is removed when lockerd starts again.
    await stopDaemon(daemons.shift()!);
    writeFileSync(join(d.dataDir, "backup-0123456789ab.tmp"), "a copy with a key in it");
    const again = await start(d.dir);
    expect(readdirSync(again.dataDir).filter((f) => f.startsWith("backup-"))).toEqual([]);
  });

  it("a real bank's config with demo people is refused at start and by --check-config (exit 78)", () => {
    const dir = tempDir();
    try {
      const profile = JSON.parse(readFileSync(join(ROOT, "hardware/profiles/c-kerong-rs485.json"), "utf8")) as Record<string, unknown>;
      profile.seed = (JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as Record<string, unknown>).seed;
      const file = join(dir, "config.json");
      writeFileSync(file, JSON.stringify(profile));
      for (const args of [["--check-config"], ["--data", join(dir, "data")]]) {
        const r = spawnSync(process.execPath, [MAIN, "--config", file, ...args], { encoding: "utf8", timeout: 15_000 });
        expect(r.status).toBe(78);
        expect(r.stderr).toMatch(/seed\.people: seed\.people is for the simulated bank only/);
      }
    } finally {
      removeDir(dir);
    }
  });
});
