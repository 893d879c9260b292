// The compiled daemon's log as an operator meets it (issue 14 point 6): under systemd every line
// carries its syslog priority; idle, the log does not grow with each poll (sim, and Kerong boards
// over a pseudo-terminal with their emulator); PINs, codes, badge ids, passwords and the device key
// never reach it, whatever the daemon's modules log at trace level.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MAIN, ROOT, SimClient, displayHas, exampleConfig, removeDir, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { hasSocat, makePtyPair } from "../helpers/socat.js";
import { startEmulator } from "../helpers/kerong.js";
import { slow } from "../helpers/slow.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LOCKERCTL = join(ROOT, "dist/lockerd/lockerctl.js");

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

/** The daemon's lines written during `ms`, after `settleMs` for the start to finish. */
async function linesWhileIdle(d: Daemon, settleMs: number, ms: number): Promise<string[]> {
  await sleep(settleMs);
  const before = d.output().length;
  await sleep(ms);
  return d
    .output()
    .slice(before)
    .split("\n")
    .filter((l) => l.trim());
}

describe("nothing per poll", () => {
  it("a broker that is not there: one warning, not one per attempt (the same failure again is debug)", { timeout: slow(30_000) }, async () => {
    const free = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const d = await startDaemon({
      patch: (cfg) => {
        cfg.sync = { enabled: true, url: `mqtt://127.0.0.1:${free}`, reconnectBaseMs: 100, reconnectCapMs: 200 };
      },
    });
    cleanup.push(async () => removeDir(d.dir));
    cleanup.push(() => stopDaemon(d));
    await waitForOutput(d, /no connection/, 10_000);
    const lines = await linesWhileIdle(d, 500, 3000); // some 15 more attempts
    expect(lines.filter((l) => l.includes("no connection"))).toEqual([]);
    expect(d.output().match(/no connection/g)).toHaveLength(1);
  });

  it("sim bank: idle for 6 s with a temperature read every 5 s and a disk check every second, the log does not grow", { timeout: slow(30_000) }, async () => {
    const d = await startDaemon({
      patch: (cfg) => {
        cfg.policies = { ...cfg.policies, temperatureReadS: 5 };
        cfg.storage = { checkS: 1 };
      },
    });
    cleanup.push(async () => removeDir(d.dir));
    cleanup.push(() => stopDaemon(d));
    expect(await linesWhileIdle(d, 1000, 6000)).toEqual([]);
  });

  it("a temperature sensor that stops answering: warned once (then the alarm), not at every read", { timeout: slow(40_000) }, async () => {
    const d = await startDaemon({ patch: (cfg) => (cfg.policies = { ...cfg.policies, temperatureReadS: 5 }) });
    cleanup.push(async () => removeDir(d.dir));
    cleanup.push(() => stopDaemon(d));
    const sim = await SimClient.connect(d.socket);
    cleanup.push(async () => sim.close());
    await sleep(500);
    const before = d.output().length;
    sim.send({ op: "sensor", compartment: "B01", failing: true });
    await sleep(21_000); // four reads
    const lines = d.output().slice(before).split("\n").filter((l) => l.trim());
    const failed = lines.filter((l) => l.includes("temperature read failed"));
    expect(failed, lines.join("\n")).toHaveLength(1);
    expect(lines.filter((l) => l.includes('"alarm":"alarm.sensor_fault"'))).toHaveLength(1);
    expect(lines.length, lines.join("\n")).toBeLessThanOrEqual(2);
  });

  it.runIf(hasSocat())("Kerong boards polled every 50 ms over RS485: idle for 4 s (160 polls), the log does not grow", { timeout: 40_000 }, async () => {
    const bus = await makePtyPair();
    cleanup.push(() => bus.close());
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    const emu = await startEmulator(bus.device, join(dir, "emu.sock"));
    cleanup.push(async () => void emu.child.kill("SIGTERM"));
    const d = await startDaemon({
      dir,
      patch: (cfg) => {
        cfg.hardware = { profile: "real", boards: [{ type: "kerong", port: bus.host, boards: [{ address: 0, firstChannel: 0 }, { address: 1, firstChannel: 16 }], pollMs: 50 }] };
        delete cfg.seed;
        cfg.people = { owner: "lockerctl" };
        cfg.storage = { checkS: 1 };
      },
    });
    cleanup.push(() => stopDaemon(d));
    expect(d.output()).toMatch(/rs485 port open/);
    expect(await linesWhileIdle(d, 1500, 4000)).toEqual([]);
  });
});

describe("a log reader that goes away", () => {
  // The daemon's parent here is a plain node process (as a supervisor or a shell pipeline is): it
  // reads the log until ready, closes its end of the pipes, and sends SIGTERM. (Spawned from this
  // vitest worker directly, the old daemon happened to exit; from a plain parent it never did.)
  const PARENT = `
    const { spawn } = require("node:child_process");
    const [main, cfg, data] = process.argv.slice(1);
    const child = spawn(process.execPath, [main, "--config", cfg, "--data", data], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", done = false;
    child.stdout.setEncoding("utf8").on("data", (d) => {
      out += d;
      if (done || !out.includes('"msg":"ready')) return;
      done = true;
      child.stdout.destroy();
      child.stderr.destroy();
      setTimeout(() => child.kill("SIGTERM"), 1500);
    });
    child.on("exit", (code) => { console.log(JSON.stringify({ exit: code })); process.exit(0); });
    setTimeout(() => { console.log(JSON.stringify({ exit: "still running 10 s after SIGTERM" })); child.kill("SIGKILL"); process.exit(0); }, 20000);
  `;

  it("a SIGTERM still stops the bank (exit 0): it never did, stuck writing its log to the closed pipe", { timeout: slow(30_000) }, () => {
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...exampleConfig(), log: { level: "info" } }));
    const r = spawnSync(process.execPath, ["-e", PARENT, MAIN, join(dir, "config.json"), join(dir, "data")], { encoding: "utf8", timeout: slow(25_000) });
    expect(JSON.parse(r.stdout.trim() || "{}"), r.stderr).toEqual({ exit: 0 });
  });
});

describe("under systemd (JOURNAL_STREAM)", () => {
  /** The daemon with stdout and stderr on one file that JOURNAL_STREAM names, as systemd's journal socket would be. */
  function spawnJournaled(file: string, args: string[]): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
    const fd = openSync(file, "a");
    const st = fstatSync(fd);
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", fd, fd], env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` } });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, out: () => readFileSync(file, "utf8"), exited };
  }

  it("every line starts with its priority: info <6>, an alarm <4> with its next step; a bad config on stderr <3>", { timeout: slow(30_000) }, async () => {
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    const cfg = exampleConfig() as Record<string, any>;
    cfg.log = { level: "info" };
    writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
    const d = spawnJournaled(join(dir, "journal"), ["--config", join(dir, "config.json"), "--data", join(dir, "data")]);
    cleanup.push(async () => {
      d.child.kill("SIGTERM");
      await d.exited;
    });
    for (let i = 0; i < 150 && !d.out().includes('"msg":"ready'); i++) await sleep(100);
    const sim = await SimClient.connect(join(dir, "data", "sim.sock"));
    cleanup.push(async () => sim.close());
    sim.send({ op: "door", compartment: "A07", state: "open" }); // nobody let in: forced open
    for (let i = 0; i < 50 && !d.out().includes("alarm.forced_open"); i++) await sleep(100);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    const lines = d.out().split("\n").filter((l) => l);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(l, l).toMatch(/^<[2-7]>\{"level":\d+,/);
    const parsed = lines.map((l) => ({ prio: Number(l.slice(1, 2)), ...(JSON.parse(l.slice(3)) as { level: number; msg: string; time?: number; alarm?: string }) }));
    expect(parsed.find((p) => p.msg.startsWith("ready"))).toMatchObject({ prio: 6, level: 30 });
    expect(parsed.find((p) => p.alarm === "alarm.forced_open")).toMatchObject({ prio: 4, level: 40, msg: expect.stringContaining("then `lockerctl enable A07`") });
    expect(parsed.every((p) => p.time === undefined)).toBe(true);

    writeFileSync(join(dir, "bad.json"), JSON.stringify({ ...cfg, locks: { pulseMs: -1 } }));
    const bad = spawnJournaled(join(dir, "journal-bad"), ["--config", join(dir, "bad.json"), "--data", join(dir, "data2")]);
    expect(await bad.exited).toBe(78);
    const badLines = bad.out().split("\n").filter((l) => l);
    expect(badLines[0]).toMatch(/^<3>lockerd: bad config /);
    expect(badLines.length).toBeGreaterThan(1);
    for (const l of badLines) expect(l).toMatch(/^<3>/);
  });
});

describe("secrets never reach the log", () => {
  it("PINs, codes, badge ids, the broker password and the device key: not even at trace level", { timeout: slow(40_000) }, async () => {
    const PIN = "739184";
    const NEW_PIN = "902817";
    const STAFF_PIN = "615243";
    const BADGE = "C0FFEE9A7B";
    const RECIPIENT_BADGE = "04F00DBA11";
    const PASSWORD = "hunter2-broker-SECRET";
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    writeFileSync(join(dir, "broker.password"), `${PASSWORD}\n`);
    const d = await startDaemon({
      dir,
      patch: (cfg) => {
        cfg.log = { level: "trace" };
        cfg.seed.people = [
          { id: "courier-1", name: "Casey Courier", roles: ["courier"], pin: PIN, badge: BADGE },
          { id: "staff-1", name: "Sam Staff", roles: ["staff"], pin: STAFF_PIN },
          { id: "p-1001", name: "Ada Lovelace", roles: ["recipient"], number: "1001", badge: RECIPIENT_BADGE },
        ];
        // A broker that is not there: the link tries, with its password, and logs why it cannot.
        cfg.sync = { ...cfg.sync, enabled: true, url: "mqtt://127.0.0.1:9", username: "bank-01", passwordFile: join(dir, "broker.password") };
      },
    });
    cleanup.push(() => stopDaemon(d));
    const sim = await SimClient.connect(d.socket);
    cleanup.push(async () => sim.close());

    // A courier deposits with the PIN; the recipient's code comes back on the sim socket.
    sim.send({ op: "keys", keys: `*${PIN}#` });
    await sim.waitFor(displayHas("Parcel size?"));
    let m = sim.mark();
    sim.send({ op: "keys", keys: "1" });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    await sim.waitFor((e) => e.ev === "door" && e.compartment === unlock.compartment && e.state === "open", { from: m });
    sim.send({ op: "door", compartment: unlock.compartment, state: "closed" });
    await sim.waitFor(displayHas("Recipient number?"), { from: m });
    sim.send({ op: "keys", keys: "1001#" });
    const { code } = await sim.waitFor<"notify">((e) => e.ev === "notify", { from: m });
    sim.send({ op: "keys", keys: "*" });
    await sim.waitFor(displayHas("Enter code"), { from: m });
    // Wrong codes and PINs (near misses are secrets too), an unknown badge, the badges, a bad sim request.
    const WRONG = `${code.slice(0, -1)}${(Number(code.at(-1)) + 1) % 10}`;
    for (const keys of [`${WRONG}#`, "*000000#"]) {
      m = sim.mark();
      sim.send({ op: "keys", keys });
      await sim.waitFor((e) => e.ev === "display", { from: m });
      await sleep(100);
    }
    sim.send({ op: "badge", id: "ABCDEF0123" });
    await sleep(200);
    sim.send({ op: "keys", keys: 739184 } as unknown as Record<string, unknown>);
    await sleep(100);
    // The recipient picks up with the code.
    m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    const pickup = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    await sim.waitFor((e) => e.ev === "door" && e.compartment === pickup.compartment && e.state === "open", { from: m });
    sim.send({ op: "door", compartment: pickup.compartment, state: "closed" });
    await sleep(300);
    sim.send({ op: "badge", id: RECIPIENT_BADGE });
    await sleep(300);
    sim.send({ op: "badge", id: BADGE });
    await sleep(300);
    // A technician sets a PIN through lockerctl (refused or not, the PIN travels in the request).
    const setPin = spawnSync(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "people", "set-pin", "courier-1"], { input: `${NEW_PIN}\n${NEW_PIN}\n`, encoding: "utf8", timeout: 15_000 });
    expect(setPin.error).toBeUndefined();
    await sleep(300);
    await stopDaemon(d);

    const out = d.output();
    expect(out).toMatch(/session started/);
    expect(out).toMatch(/broker connection error|not connected|ECONNREFUSED/);
    const key = readFileSync(join(d.dataDir, "device.key"));
    const secrets = [PIN, NEW_PIN, STAFF_PIN, code, WRONG, BADGE, RECIPIENT_BADGE, "ABCDEF0123", PASSWORD, key.toString("hex"), key.toString("base64")];
    for (const s of secrets) {
      const re = new RegExp(`(?<![0-9A-Za-z])${s.replace(/[+/=]/g, (c) => `\\${c}`)}(?![0-9A-Za-z])`, "i");
      const hit = out.split("\n").find((l) => re.test(l));
      expect(hit, `${s} in the log`).toBeUndefined();
    }
  });
});
