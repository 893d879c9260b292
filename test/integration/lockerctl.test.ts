// lockerctl as a process against the compiled daemon on the simulated bank: every command, its
// --json shape checked with the schemas the daemon uses, and the errors a technician meets.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompartmentRow, LedgerEventView, RelayTestResult, SelftestResult, SensorsResult, StatusResult, SyncStatus } from "../../src/admin/protocol.js";
import { StatsResult } from "../../src/admin/stats.js";
import { courierDeposit, removeDir, ROOT, SimClient, startDaemon, stopDaemon, type Daemon } from "../helpers/daemon.js";

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");
let d: Daemon;
let sim: SimClient;

function ctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CTL, "--data", d.dataDir, ...args], {
    encoding: "utf8",
    timeout: 15_000,
    env: { ...process.env, NO_COLOR: "", ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ctlJson<T>(schema: z.ZodType<T>, args: string[]): T {
  const r = ctl([...args, "--json"]);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  return schema.parse(JSON.parse(r.out));
}

const deposit = () => courierDeposit(sim);

beforeAll(async () => {
  d = await startDaemon();
  sim = await SimClient.connect(d.socket);
});
afterAll(async () => {
  sim?.close();
  if (d) {
    await stopDaemon(d);
    removeDir(d.dir);
  }
});

describe("lockerctl", () => {
  it("status: device, version, devices with health, sync, alarms", () => {
    const s = ctlJson(StatusResult, ["status"]);
    expect(s.device).toBe("hq/bank-01");
    expect(s.pid).toBe(d.child.pid);
    expect(s.devices.map((x) => x.kind)).toEqual(expect.arrayContaining(["locks", "doors", "reader", "display"]));
    expect(s.sync).toMatchObject({ enabled: false, connected: false });
    expect(s.counts.free).toBe(24);
    expect(statSync(join(d.dataDir, "admin.sock")).mode & 0o777).toBe(0o660); // group lockerd-admin may connect
    expect(s.temperatures).toEqual([expect.objectContaining({ compartment: "B01", celsius: 5, ok: true })]);
    const human = ctl(["status"]);
    expect(human.code).toBe(0);
    expect(human.out).toMatch(/hq\/bank-01 {2}lockerd 0\.1\.0 {2}pid \d+ {2}up/);
    expect(human.out).toContain("no open alarms");
    expect(human.out).not.toMatch(/\x1b\[/); // not a TTY: no colour
    expect(Math.max(...human.out.split("\n").map((l) => l.length))).toBeLessThanOrEqual(80);
  });

  it("compartments: every compartment with size, state, door, enabled and parcel age", async () => {
    const { compartment } = await deposit();
    const { compartments } = ctlJson(z.object({ compartments: z.array(CompartmentRow) }), ["compartments"]);
    expect(compartments).toHaveLength(24);
    const row = compartments.find((c) => c.id === compartment)!;
    expect(row).toMatchObject({ state: "occupied", door: "closed", enabled: true, size: "S" });
    expect(row.parcelAgeMs).toBeGreaterThanOrEqual(0);
    const human = ctl(["compartments"]).out.split("\n");
    expect(human[0]).toMatch(/^ID\s+KEY\s+SIZE\s+STATE\s+DOOR\s+ENABLED\s+HELD\s+PARCEL AGE/);
    expect(human.find((l) => l.startsWith(compartment))).toMatch(/occupied\s+closed\s+yes\s+\d+s/);
  });

  it("open needs a reason, opens the door, and records who and why", async () => {
    const refused = ctl(["open", "B03"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/needs --reason/);
    const m = sim.mark();
    const r = ctlJson(RelayTestResult.shape.results.element, ["open", "203", "--reason", "customer left keys inside"]);
    expect(r).toMatchObject({ compartment: "B03", opened: true, attempts: 1 });
    await sim.waitFor((e) => e.ev === "unlock" && e.compartment === "B03", { from: m });
    const { events } = ctlJson(z.object({ events: z.array(LedgerEventView) }), ["events", "--type", "admin.", "--limit", "1"]);
    expect(events[0]).toMatchObject({ type: "admin.open", compartment: "B03", actor: expect.any(String), data: { reason: "customer left keys inside" } });
    const alarms = ctlJson(z.object({ events: z.array(LedgerEventView) }), ["events", "--type", "alarm."]).events;
    expect(alarms.filter((e) => e.compartment === "B03")).toEqual([]); // an opened door is not a forced one
    sim.send({ op: "door", compartment: "B03", state: "closed" });
  });

  it("disable and enable a compartment, audited; a disabled one is not assigned", async () => {
    const rows = () => ctlJson(z.object({ compartments: z.array(CompartmentRow) }), ["compartments"]).compartments;
    const nextS = rows().find((c) => c.size === "S" && c.state === "free" && c.id !== "A01")!.id; // A01 is the accessible one
    expect(ctl(["disable", nextS, "--reason", "hinge broken"]).code).toBe(0);
    expect(rows().find((c) => c.id === nextS)?.enabled).toBe(false);
    const { compartment } = await deposit();
    expect(compartment).not.toBe(nextS);
    const enable = ctl(["enable", nextS, "--reason", "hinge replaced"]);
    expect(enable.code).toBe(0);
    expect(enable.out).toContain(`${nextS} enabled: back in service`);
    const { events } = ctlJson(z.object({ events: z.array(LedgerEventView) }), ["events", "--type", "compartment.", "--limit", "2"]);
    expect(events.map((e) => [e.type, e.compartment, e.data.reason])).toEqual([
      ["compartment.disabled", nextS, "hinge broken"],
      ["compartment.enabled", nextS, "hinge replaced"],
    ]);
  });

  it("relay-test pulses each lock within the power budget and reports the jammed one (exit 5)", async () => {
    sim.send({ op: "jam", compartment: "B12", jammed: true });
    await sim.state(); // the jam op has been handled
    const m = sim.mark();
    const r = ctl(["relay-test", "B10", "B11", "B12", "--json"]);
    expect(r.code).toBe(5);
    const res = RelayTestResult.parse(JSON.parse(r.out));
    expect(res.results.map((x) => [x.compartment, x.opened])).toEqual([["B10", true], ["B11", true], ["B12", false]]);
    expect(res.results[2]!.attempts).toBe(2);
    const unlocks = () => sim.since(m).flatMap((e) => (e.ev === "unlock" ? [e.compartment] : []));
    for (let i = 0; i < 100 && unlocks().length < 4; i++) await new Promise((res) => setTimeout(res, 20)); // spawnSync held our socket
    expect(unlocks()).toEqual(["B10", "B11", "B12", "B12"]);
    const status = ctlJson(StatusResult, ["status"]);
    expect(status.alarms).toEqual(expect.arrayContaining([expect.objectContaining({ kind: "fault", compartment: "B12" })]));
    sim.send({ op: "jam", compartment: "B12", jammed: false });
    for (const c of ["B10", "B11"]) sim.send({ op: "door", compartment: c, state: "closed" });
    expect(ctl(["enable", "B12", "--reason", "solenoid replaced"]).code).toBe(0);
  });

  it("relay-test does not pass a door that already reads open, and reports a board that is down as unavailable, faulting nothing (exit 5)", async () => {
    sim.send({ op: "door", compartment: "B09", state: "open" });
    await sim.state();
    const open = ctl(["relay-test", "B09"]);
    expect(open.code).toBe(5);
    expect(open.out).toContain("NOT TESTED");
    expect(open.out).toContain("already reads open");
    sim.send({ op: "door", compartment: "B09", state: "closed" });
    sim.send({ op: "board", state: "down" });
    await sim.state();
    const down = ctl(["relay-test", "B08", "--json"]);
    expect(down.code).toBe(5);
    expect(RelayTestResult.parse(JSON.parse(down.out)).results).toEqual([expect.objectContaining({ compartment: "B08", opened: false, unavailable: true })]);
    sim.send({ op: "board", state: "ok" });
    await sim.state();
    const status = ctlJson(StatusResult, ["status"]);
    expect(status.alarms.filter((a) => a.kind === "fault" && a.compartment === "B08")).toEqual([]);
  });

  it("sensors shows every door; --watch streams changes", async () => {
    const r = ctlJson(SensorsResult, ["sensors"]);
    expect(r.doors).toHaveLength(24);
    expect(r.doors.every((x) => x.door === "open" || x.door === "closed")).toBe(true);
    const child = spawn(process.execPath, [CTL, "--data", d.dataDir, "sensors", "--watch"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    await new Promise<void>((res) => child.stdout.once("data", () => res()));
    sim.send({ op: "door", compartment: "A09", state: "open" });
    for (let i = 0; i < 100 && !/A09 {2}OPEN/.test(out); i++) await new Promise((res) => setTimeout(res, 20));
    sim.send({ op: "door", compartment: "A09", state: "closed" });
    child.kill("SIGINT");
    expect(await new Promise((res) => child.on("exit", res))).toBe(0);
    expect(out).toMatch(/A09 {2}OPEN/);
  });

  it("selftest passes on a healthy bank and fails (exit 5) naming what is wrong", () => {
    const r = ctlJson(SelftestResult, ["selftest"]);
    expect(r.ok).toBe(true);
    expect(r.checks.map((c) => c.name)).toEqual(expect.arrayContaining(["ledger integrity", "custody chain", "data directory", "door sensors read", "door polarity"]));
    chmodSync(d.dataDir, 0o755); // someone loosened the data directory
    try {
      const bad = ctl(["selftest"]);
      expect(bad.code).toBe(5);
      expect(bad.out).toMatch(/FAIL {2}data directory: dir 755, device\.key 600/);
      expect(bad.out).toMatch(/selftest FAILED \(1 check\(s\)\)/);
    } finally {
      chmodSync(d.dataDir, 0o700);
    }
  });

  it("answers a bad request with an error and carries on", async () => {
    const { connect } = await import("node:net");
    const sock = connect(join(d.dataDir, "admin.sock"));
    let got = "";
    sock.setEncoding("utf8").on("data", (s: string) => (got += s));
    await new Promise((res) => sock.once("connect", res));
    sock.write("not json\n");
    sock.write(`${JSON.stringify({ id: 7, cmd: "reboot", args: {}, user: "eve" })}\n`);
    sock.write(`${JSON.stringify({ id: 8, cmd: "open", args: { compartment: "A01" }, user: "eve" })}\n`);
    sock.write(`${JSON.stringify({ id: 9, cmd: "disable", args: { compartment: "A01", reason: "x", extra: 1 }, user: "eve; rm -rf /" })}\n`);
    for (let i = 0; i < 100 && got.split("\n").length < 5; i++) await new Promise((res) => setTimeout(res, 20));
    sock.destroy();
    const replies = got.trim().split("\n").map((l) => JSON.parse(l) as { id: number | null; ok: boolean; error: { code: string; message: string } });
    expect(replies.map((r) => [r.id, r.ok, r.error.code])).toEqual([
      [null, false, "bad_input"],
      [7, false, "bad_input"],
      [8, false, "bad_input"],
      [9, false, "bad_input"],
    ]);
    expect(replies[2]!.error.message).toMatch(/args\.reason/);
    expect(replies[3]!.error.message).toMatch(/unknown key "extra"/);
    expect(replies[3]!.error.message).toMatch(/user: expected an OS user name/);
    expect(ctlJson(z.object({ compartments: z.array(CompartmentRow) }), ["compartments"]).compartments.find((c) => c.id === "A01")?.enabled).toBe(true);
  });

  it("events filters by type and time, and --follow streams new ones", async () => {
    const all = ctlJson(z.object({ events: z.array(LedgerEventView) }), ["events", "--since", "1", "--limit", "10000"]);
    expect(all.events[0]!.seq).toBe(1);
    const recent = ctlJson(z.object({ events: z.array(LedgerEventView) }), ["events", "--since", "10m", "--type", "parcel.deposited"]);
    expect(recent.events.length).toBeGreaterThan(0);
    expect(recent.events.every((e) => e.type === "parcel.deposited")).toBe(true);
    const child = spawn(process.execPath, [CTL, "--data", d.dataDir, "events", "--follow", "--limit", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    await new Promise<void>((res) => child.stdout.once("data", () => res()));
    sim.send({ op: "door", compartment: "A10", state: "open" });
    for (let i = 0; i < 100 && !out.includes("alarm.forced_open"); i++) await new Promise((res) => setTimeout(res, 20));
    sim.send({ op: "door", compartment: "A10", state: "closed" });
    child.kill("SIGINT");
    await new Promise((res) => child.on("exit", res));
    expect(out).toMatch(/door\.opened\s+A10/);
    expect(out).toMatch(/alarm\.forced_open\s+A10/);
  });

  it("sync tells an offline bank from a connected one", () => {
    const s = ctlJson(SyncStatus, ["sync"]);
    expect(s).toMatchObject({ enabled: false, connected: false });
    expect(s.backlog).toBe(s.headSeq);
    expect(ctl(["sync"]).out).toMatch(/sync disabled in config/);
  });

  it("stats answers with the analytics schema", async () => {
    const { code } = await deposit();
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    await sim.waitFor((e) => e.ev === "door" && e.state === "open", { from: m });
    sim.send({ op: "door", compartment: unlock.compartment, state: "closed" });
    await sim.waitFor((e) => e.ev === "state" && e.compartments.some((c) => c.id === unlock.compartment && c.state === "free"), { from: m });
    ctlJson(StatsResult, ["stats", "--days", "7"]);
    const human = ctl(["stats"]);
    expect(human.code).toBe(0);
    expect(Math.max(...human.out.split("\n").map((l) => l.length))).toBeLessThanOrEqual(100);
  });

  it("watch draws the bank (one frame when not on a terminal)", () => {
    const r = ctl(["watch"]);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines).toHaveLength(24);
    expect(lines[0]).toMatch(/lockerctl watch\s+hq\/bank-01/);
    expect(lines.some((l) => /^A01 S /.test(l) && /B01 S /.test(l))).toBe(true);
    expect(lines.every((l) => l.length <= 80)).toBe(true);
  });

  it("tells the technician what to do when something is wrong", () => {
    const unknown = ctl(["open", "Z99", "--reason", "testing"]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/no compartment Z99 \(valid: A01\.\.B12\)/);
    const notRunning = spawnSync(process.execPath, [CTL, "--socket", join(d.dir, "nope.sock"), "status"], { encoding: "utf8" });
    expect(notRunning.status).toBe(3);
    expect(notRunning.stderr).toMatch(/lockerd is not running/);
    expect(notRunning.stderr).toMatch(/systemctl status lockerd/);
    const usage = ctl(["frobnicate"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/unknown command "frobnicate"/);
  });

  it("says which group to join on permission denied", () => {
    const sock = join(d.dataDir, "admin.sock");
    chmodSync(sock, 0o000); // nobody may connect
    let r;
    try {
      // root ignores file modes: drop the capabilities that let it (it still reads its own checkout)
      const asRoot = process.getuid?.() === 0;
      const cmd = asRoot ? "setpriv" : process.execPath;
      const args = [CTL, "--socket", sock, "status"];
      r = spawnSync(cmd, asRoot ? ["--bounding-set", "-dac_override,-dac_read_search", process.execPath, ...args] : args, { encoding: "utf8" });
      expect(r.error).toBeUndefined();
    } finally {
      chmodSync(sock, 0o660);
    }
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/permission denied on .*admin\.sock/);
    expect(r.stderr).toMatch(/Join the group \S+: sudo usermod -aG \S+ \S+/);
  });
});
