// The compiled daemon as a child process, driven through the sim socket as a person would.
import Database from "better-sqlite3";
import { connect } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { courierDeposit, displayHas, removeDir, SimClient, startDaemon, stopDaemon, waitForOutput, type Daemon } from "../helpers/daemon.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function daemon(opts: Parameters<typeof startDaemon>[0] = {}): Promise<{ d: Daemon; sim: SimClient }> {
  const d = await startDaemon(opts);
  const sim = await SimClient.connect(d.socket);
  cleanups.push(async () => {
    sim.close();
    await stopDaemon(d, "SIGKILL");
    if (!opts.dir) removeDir(d.dir);
  });
  return { d, sim };
}

function readEvents(dataDir: string): { seq: number; type: string; compartment: string | null; parcel: string | null; actor: string | null }[] {
  const db = new Database(join(dataDir, "ledger.db"), { readonly: true });
  try {
    return db.prepare("SELECT seq, type, compartment, parcel, actor FROM events ORDER BY seq").all() as never;
  } finally {
    db.close();
  }
}

describe("lockerd on the simulated bank", () => {
  it("carries a parcel from courier deposit to pickup by code, with custody events in order", async () => {
    const { d, sim } = await daemon();
    const { compartment, code, parcel } = await courierDeposit(sim);
    expect(code).toMatch(/^[0-9]{6}$/);
    expect((await sim.state()).find((c) => c.id === compartment)).toMatchObject({ state: "occupied", parcel });

    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    expect(unlock.compartment).toBe(compartment);
    await sim.waitFor(displayHas(`Door ${compartment} open`), { from: m });
    await sim.waitFor((e) => e.ev === "door" && e.state === "open", { from: m });
    sim.send({ op: "door", compartment, state: "closed" });
    await sim.waitFor((e) => e.ev === "state" && e.compartments.some((c) => c.id === compartment && c.state === "free"), { from: m });

    const custody = readEvents(d.dataDir).filter((e) => e.parcel === parcel).map((e) => e.type);
    expect(custody).toEqual(["deposit.started", "parcel.awaiting_recipient", "parcel.deposited", "pickup.started", "parcel.picked_up"]);
    const pickedUp = readEvents(d.dataDir).find((e) => e.type === "parcel.picked_up");
    expect(pickedUp).toMatchObject({ compartment, actor: "p-1001" });

    expect(await stopDaemon(d)).toBe(0);
    const ledger = new Ledger(join(d.dataDir, "ledger.db"), { now: Date.now });
    try {
      expect(ledger.verify().ok).toBe(true);
      expect(ledger.parcel(parcel)).toMatchObject({ status: "picked_up", compartmentId: compartment, recipientId: "p-1001" });
      expect(readEvents(d.dataDir).at(-1)?.type).toBe("system.stopped");
    } finally {
      ledger.close();
    }
  });

  it("never unlocks for a wrong code, and locks the keypad after five", async () => {
    const { sim } = await daemon();
    const { code } = await courierDeposit(sim);
    const wrong = code === "482915" ? "482916" : "482915";
    const m = sim.mark();
    for (let i = 1; i <= 5; i++) {
      const before = sim.mark();
      sim.send({ op: "keys", keys: `${wrong}#` });
      await sim.waitFor(displayHas("Code not valid"), { from: before });
    }
    await sim.waitFor(displayHas("wait 30 s"), { from: m });
    const locked = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` }); // even the right code waits out the lockout
    await sim.waitFor(displayHas("Too many tries"), { from: locked });
    expect(sim.since(m).filter((e) => e.ev === "unlock")).toEqual([]);
  });

  it("accepts a code once", async () => {
    const { sim } = await daemon();
    const { compartment, code } = await courierDeposit(sim);
    let m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor((e) => e.ev === "door" && e.state === "open", { from: m });
    sim.send({ op: "door", compartment, state: "closed" });
    await sim.waitFor((e) => e.ev === "state" && e.compartments.some((c) => c.id === compartment && c.state === "free"), { from: m });
    m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor(displayHas("Code not valid"), { from: m });
    expect(sim.since(m).filter((e) => e.ev === "unlock")).toEqual([]);
  });

  it("puts a jammed compartment in fault after one retry, and the code stays valid", async () => {
    const { d, sim } = await daemon();
    const { compartment, code, parcel } = await courierDeposit(sim);
    sim.send({ op: "jam", compartment, jammed: true });
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor(displayHas(`Door ${compartment} jammed`), { from: m, timeoutMs: 5000 });
    expect(sim.since(m).filter((e) => e.ev === "unlock").map((e) => e.ev === "unlock" && e.compartment)).toEqual([compartment, compartment]);
    expect((await sim.state()).find((c) => c.id === compartment)).toMatchObject({ state: "fault", parcel });
    const types = readEvents(d.dataDir).filter((e) => e.compartment === compartment).map((e) => e.type);
    expect(types.slice(-4)).toEqual(["pickup.started", "lock.retried", "pickup.aborted", "compartment.fault"]);
    // The recipient is sent to the mailroom, not locked out.
    const again = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor(displayHas("faulty"), { from: again });
    expect(sim.since(again).filter((e) => e.ev === "unlock")).toEqual([]);
  });

  it("shows a new client the keypad's current display and broadcasts alarms", async () => {
    const { d, sim } = await daemon();
    expect(await sim.waitFor((e) => e.ev === "display")).toEqual({ ev: "display", lines: ["Enter code", "or tap badge", "then press #"] });
    expect(sim.events[1]?.ev).toBe("display"); // right after hello
    const late = await SimClient.connect(d.socket);
    cleanups.push(() => late.close());
    sim.send({ op: "keys", keys: "42" });
    await late.waitFor(displayHas("Code: **"));
    const other = await SimClient.connect(d.socket);
    cleanups.push(() => other.close());
    expect(await other.waitFor((e) => e.ev === "display")).toMatchObject({ lines: expect.arrayContaining(["Code: **"]) });
    expect(other.events[1]?.ev).toBe("display");
    sim.send({ op: "door", compartment: "B05", state: "open" }); // nobody unlocked it
    await other.waitFor((e) => e.ev === "alarm" && e.type === "alarm.forced_open" && e.compartment === "B05");
    await other.waitFor((e) => e.ev === "buzzer" && e.pattern === "alarm");
    await waitForOutput(d, /"alarm":"alarm.forced_open"/);
  });

  it("refuses bad input with a clear error and changes nothing", async () => {
    const { d, sim } = await daemon();
    const before = await sim.state();
    const seqBefore = readEvents(d.dataDir).length;
    const m = sim.mark();
    sim.send("this is not json");
    sim.send({ op: "launch" });
    sim.send({ op: "door", compartment: "Z99", state: "open" });
    sim.send({ op: "keys", keys: "1".repeat(10_000) });
    sim.send({ op: "badge", id: "not-hex" });
    sim.send("x".repeat(200_000));
    await sim.waitFor((e) => e.ev === "error" && e.message.includes("longer than"), { from: m });
    const errors = sim.since(m).flatMap((e) => (e.ev === "error" ? [e.message] : []));
    expect(errors).toHaveLength(6);
    expect(errors[0]).toMatch(/not JSON/);
    expect(errors[1]).toMatch(/^op: /);
    expect(errors[2]).toMatch(/no compartment Z99 \(valid: A01\.\.B12\)/);
    expect(errors[3]).toMatch(/keys: at most 64 keys per line/);
    expect(errors[4]).toMatch(/^id: expected 4-32 hex digits/);
    // A 10,000-key burst in allowed line sizes: the keypad refuses the overlong entry, nothing opens.
    for (let i = 0; i < 10_000 / 50; i++) sim.send({ op: "keys", keys: "7".repeat(50) });
    sim.send({ op: "keys", keys: "#" });
    await sim.waitFor(displayHas("Too many digits"), { from: m });
    expect(await sim.state()).toEqual(before);
    expect(sim.since(m).filter((e) => e.ev === "unlock")).toEqual([]);
    expect(readEvents(d.dataDir).length).toBe(seqBefore);
    expect(d.child.exitCode).toBeNull();
  });

  it("an 87 KB burst on the sim socket drops only the client that sent it; the admin socket refuses a 60 KB request sent whole", async () => {
    const { d, sim } = await daemon();
    const flooder = connect(d.socket);
    await new Promise<void>((resolve) => flooder.once("connect", () => resolve()));
    let answer = "";
    flooder.setEncoding("utf8").on("data", (s: string) => (answer += s));
    flooder.write('{"op":"keys","keys":"*"}\n'.repeat(3500));
    await new Promise<void>((resolve) => flooder.once("close", () => resolve()));
    expect(answer).toContain("lines a second: disconnected");
    // The reader beside it is still served.
    const m = sim.mark();
    sim.send({ op: "keys", keys: "*" });
    await sim.waitFor((e) => e.ev === "display", { from: m }); // (idle or PIN prompt: the flood toggled it)
    expect(d.child.exitCode).toBeNull();

    const admin = connect(join(d.dataDir, "admin.sock"));
    await new Promise<void>((resolve) => admin.once("connect", () => resolve()));
    let reply = "";
    admin.setEncoding("utf8").on("data", (s: string) => (reply += s));
    admin.write(`${JSON.stringify({ id: 1, user: "root", cmd: "status", args: {}, pad: "x".repeat(60_000) })}\n`);
    for (let i = 0; i < 100 && !reply.includes("\n"); i++) await new Promise((r) => setTimeout(r, 20));
    admin.destroy();
    expect(reply).toContain("longer than 16384 bytes");
    expect(reply).not.toContain('"devices"'); // not processed
  });

  it("stops cleanly on SIGTERM mid-deposit and finishes the flow consistently on restart", async () => {
    const { d, sim } = await daemon({});
    sim.send({ op: "keys", keys: "*2468#" });
    await sim.waitFor(displayHas("Parcel size?"));
    const m = sim.mark();
    sim.send({ op: "keys", keys: "2" });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
    await sim.waitFor((e) => e.ev === "door" && e.state === "open", { from: m });
    sim.close();
    expect(await stopDaemon(d, "SIGTERM")).toBe(0);

    // The courier shut the door while the daemon was down: the simulated doors start closed.
    const again = await startDaemon({ dir: d.dir });
    cleanups.push(() => stopDaemon(again, "SIGKILL").then(() => undefined));
    const sim2 = await SimClient.connect(again.socket);
    cleanups.push(() => sim2.close());
    const state = await sim2.state();
    expect(state.find((c) => c.id === unlock.compartment)).toMatchObject({ state: "occupied", door: "closed" });
    expect(state.filter((c) => c.parcel !== null)).toHaveLength(1);
    expect(await stopDaemon(again)).toBe(0);
    const ledger = new Ledger(join(d.dataDir, "ledger.db"), { now: Date.now });
    try {
      expect(ledger.verify()).toMatchObject({ ok: true });
      const parcelId = state.find((c) => c.id === unlock.compartment)!.parcel!;
      expect(ledger.parcel(parcelId)).toMatchObject({ status: "awaiting_recipient", compartmentId: unlock.compartment });
    } finally {
      ledger.close();
    }
  });

  it("holds a pickup interrupted after its pulse on restart: the used code does not open the door a second time", async () => {
    const { d, sim } = await daemon({ patch: (cfg) => (cfg.locks = { ...cfg.locks, openVerifyMs: 5000 }) });
    const { compartment, code } = await courierDeposit(sim);
    sim.send({ op: "jam", compartment, jammed: true });
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor((e) => e.ev === "unlock", { from: m });
    sim.close();
    expect(await stopDaemon(d, "SIGTERM")).toBe(0); // while the lock is still waiting for the door

    const again = await startDaemon({ dir: d.dir });
    cleanups.push(() => stopDaemon(again, "SIGKILL").then(() => undefined));
    const sim2 = await SimClient.connect(again.socket);
    cleanups.push(() => sim2.close());
    // The pulse fired; whether the door opened while the daemon was down nobody knows (no item
    // sensor here): held for inspection, the parcel still on record, the code used up.
    expect((await sim2.state()).find((c) => c.id === compartment)).toMatchObject({ state: "fault" });
    const m2 = sim2.mark();
    sim2.send({ op: "keys", keys: `${code}#` });
    await sim2.waitFor(displayHas("Code not valid"), { from: m2 });
    expect(sim2.since(m2).filter((e) => e.ev === "unlock")).toEqual([]);
    expect(readEvents(d.dataDir).some((e) => e.type === "pickup.aborted" && e.compartment === compartment)).toBe(true);
  });
});
