// End to end on a real serial stack: the compiled daemon with the "real" hardware profile opens one
// end of a socat pseudo-terminal pair with the real serialport binding; a Kerong-board emulator
// process (scripts/kerong-emulator.ts) serves two boards on the other end. What the daemon puts on
// the wire is checked byte for byte; door states come back through its status polls.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { ROOT, removeDir, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { closeSerial, makePtyPair, openSerial, type PtyPair } from "../helpers/socat.js";
import { startEmulator, twoKerongBoards, type Emulator } from "../helpers/kerong.js";
import { generateKeyPairSync } from "node:crypto";
import { openSealed, publicKeyB64, type SealedBox } from "../../src/sync/seal.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer } from "../helpers/server.js";
import { slow } from "../helpers/slow.js";

const LOCKERCTL = join(ROOT, "dist/lockerd/lockerctl.js");
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

/** A wait that fails says what the daemon was doing (these tests once failed in CI with no trace). */
function explain<T>(d: Daemon, p: Promise<T>, srv?: TestServer): Promise<T> {
  return p.catch((e: unknown) => {
    const events = srv ? srv.received.filter((m) => m.topic === srv.t.events).slice(-15).map((m) => m.text.slice(0, 200)) : [];
    throw new Error(
      `${e instanceof Error ? e.message : String(e)}\n--- the daemon's last log lines ---\n${d.output().split("\n").slice(-40).join("\n")}\n--- the last events the server got ---\n${events.join("\n")}`,
    );
  });
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

/** Two Kerong boards (channels 0-15, 16-31) on a pty, their emulator, and the daemon using them. */
async function kerongBank(extra: (cfg: Record<string, any>) => void = () => {}): Promise<{ d: Daemon; emu: Emulator }> {
  const bus: PtyPair = await makePtyPair();
  cleanup.push(() => bus.close());
  const dir = tempDir();
  cleanup.push(async () => removeDir(dir));
  const emu = await startEmulator(bus.device, join(dir, "emu.sock"));
  cleanup.push(async () => emu.child.kill("SIGTERM"));
  const d = await startDaemon({
    dir,
    patch: (cfg) => {
      cfg.hardware = {
        profile: "real",
        boards: [twoKerongBoards(bus.host)],
      };
      delete cfg.seed; // a real bank has no demo people: its technician adds them, as below
      cfg.people = { owner: "lockerctl" };
      extra(cfg);
    },
  });
  cleanup.push(() => stopDaemon(d));
  // The courier and the recipient the tests use, added as a technician does on a real bank.
  const people = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "people", ...args], { encoding: "utf8", input, timeout: 15_000 });
    if (r.status !== 0) throw new Error(`lockerctl people ${args.join(" ")}: ${r.stderr}`);
  };
  people(["add", "courier-1", "--name", "Casey Courier", "--roles", "courier"]);
  people(["set-pin", "courier-1"], "2468\n2468\n");
  people(["add", "p-1001", "--name", "Ada Lovelace", "--roles", "recipient", "--number", "1001"]);
  return { d, emu };
}

describe("Kerong boards over a pseudo-terminal, compiled daemon", () => {
  it("an open sends the exact unlock frame for that compartment; polls bring the door back; selftest lists the boards", { timeout: slow(40_000) }, async () => {
    const { d, emu } = await kerongBank();
    const ctl = async (...args: string[]) => JSON.parse((await run(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "--json", ...args])).stdout) as unknown;
    // A07 is lock channel 6: board 0, lock 7, ADDR 0x06; SUM = 02 + 06 + 31 + 03 = 3C.
    const before = emu.frames.length;
    expect(await ctl("open", "A07", "--reason", "e2e test")).toMatchObject({ compartment: "A07", opened: true });
    const unlocks = emu.frames.slice(before).filter((f) => f.command === "unlock");
    expect(unlocks.map((f) => f.rx)).toEqual(["020631033c"]);
    // Board 1's lock 3 is channel 18 = B07: ADDR 0x12, SUM = 02 + 12 + 31 + 03 = 48.
    expect(await ctl("open", "B07", "--reason", "e2e test")).toMatchObject({ compartment: "B07", opened: true });
    expect(emu.frames.filter((f) => f.command === "unlock").map((f) => f.rx)).toEqual(["020631033c", "0212310348"]);
    // The emulator's lock 7 reads open since the unlock; the person shuts the door: the poll sees it.
    await emu.control({ cmd: "door", board: 0, lock: 7, state: "closed" });
    await sleep(500);
    const { doors: sensors } = (await ctl("sensors")) as { doors: { compartment: string; door: string }[] };
    expect(sensors.find((s) => s.compartment === "A07")?.door).toBe("closed");
    expect(sensors.find((s) => s.compartment === "B07")?.door).toBe("open");
    const selftest = (await ctl("selftest").catch((e: { stdout?: string }) => JSON.parse(e.stdout ?? "null") as unknown)) as { checks: { name: string; ok: boolean; detail: string }[] };
    const boards = selftest.checks.filter((c) => c.name.includes("kerong"));
    expect(boards).toHaveLength(2);
    expect(boards.every((c) => c.ok && c.detail.startsWith("found, answering"))).toBe(true);
    expect(selftest.checks.find((c) => c.name === "door polarity")).toMatchObject({ ok: true, detail: expect.stringMatching(/^1 of \d+ doors read open at idle$/) });
    // A board that stops answering is faulted, on record, and comes back.
    await emu.control({ cmd: "fault", board: 1, mode: "silent" });
    await waitForOutput(d, /device fault/, 5000);
    const faulted = (await ctl("selftest").catch((e: { stdout?: string }) => JSON.parse(e.stdout ?? "null") as unknown)) as typeof selftest;
    expect(faulted.checks.filter((c) => c.name.includes("kerong") && !c.ok).map((c) => c.detail)).toEqual([expect.stringMatching(/^found, not answering/)]);
    await emu.control({ cmd: "fault", board: 1, mode: "none" });
    await waitForOutput(d, /device recovered/, 10_000);
    const { events } = (await ctl("events", "--type", "device.")) as { events: { type: string }[] };
    expect(events.map((e) => e.type)).toEqual(["device.fault", "device.recovered"]);
  });

  it("a lock bit set the wrong way round reads every shut door open: selftest fails naming the polarity", { timeout: slow(40_000) }, async () => {
    // The emulated boards say 1 for a closed latch (their default lockBitOpen 0); the daemon is told 1 means open.
    const { d } = await kerongBank((cfg) => (cfg.hardware.boards[0].lockBitOpen = 1));
    const ctl = async (...args: string[]) => {
      const cmd = [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "--json", ...args];
      return JSON.parse(await run(process.execPath, cmd).then((r) => r.stdout, (e: { stdout?: string }) => e.stdout ?? "null")) as unknown;
    };
    let doors: { door: string }[] = [];
    for (let i = 0; i < 50 && (doors.length === 0 || doors.some((s) => s.door === "unknown")); i++) {
      doors = ((await ctl("sensors")) as { doors: { door: string }[] }).doors;
      await sleep(100);
    }
    expect(doors.length).toBeGreaterThan(0);
    expect(doors.every((s) => s.door === "open")).toBe(true);
    const selftest = (await ctl("selftest")) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] };
    expect(selftest.ok).toBe(false);
    expect(selftest.checks.find((c) => c.name === "door polarity")).toEqual({
      name: "door polarity",
      ok: false,
      detail: expect.stringMatching(new RegExp(`^${doors.length} of ${doors.length} doors read open at idle: the door/lock-bit polarity is likely inverted \\(lockBitOpen`)),
    });
  });

  it("a courier deposit and a pickup by code at a serial keypad: the code reaches the server sealed, and the pickup sends that compartment's exact unlock frame", { timeout: slow(40_000) }, async () => {
    const broker = new Mosquitto();
    await broker.start();
    cleanup.push(() => broker.close());
    const srv = await new TestServer(broker).connect();
    cleanup.push(() => srv.close());
    const seal = generateKeyPairSync("x25519");
    const keypadLine: PtyPair = await makePtyPair();
    cleanup.push(() => keypadLine.close());
    const { d, emu } = await kerongBank((cfg) => {
      cfg.hardware.readers = [{ type: "serial-keypad", port: keypadLine.host }];
      cfg.sync = { enabled: true, url: broker.url, sealKey: publicKeyB64(seal.publicKey) };
      cfg.log = { level: "debug" }; // the keypad dialogue's steps, for a failure's message below
    });
    const explained = <T,>(p: Promise<T>) => explain(d, p, srv);
    const keypad = await openSerial(keypadLine.device, 9600);
    cleanup.push(() => closeSerial(keypad));
    const unlocks = () => emu.frames.filter((f) => f.command === "unlock");
    const press = async (keys: string) => {
      keypad.write(keys);
      await sleep(150);
    };
    await waitForOutput(d, /connected to the broker/, 10_000);

    // Courier: PIN, size S. The smallest free S that is not the accessible A01 is A02: channel 1,
    // board 0 lock 2: 02 01 31 03, SUM = 02 + 01 + 31 + 03 = 37.
    await press("*2468#");
    await press("1");
    await waitFor(() => unlocks().length === 1);
    expect(unlocks()[0]!.rx).toBe("0201310337");
    // A poll has seen the door spring open before it is shut: shut first, the bank never saw it move.
    const a02 = (state: "opened" | "closed", after: Set<unknown>) =>
      explained(srv.waitFor((m) => !after.has(m) && m.topic === srv.t.events && m.text.includes(`"door.${state}"`) && m.text.includes('"A02"') && !m.text.includes('"origin":"start"'), 10_000, `A02 door.${state}`));
    await a02("opened", new Set());
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" }); // parcel in, door shut
    // The keypad asks for the recipient once a poll has seen the door shut (on record: door.closed).
    await explained(srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"door.closed"') && m.text.includes('"A02"') && !m.text.includes('"origin":"start"'), 10_000, "A02 door.closed"));
    await press("1001#"); // for Ada
    const deposited = await explained(srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.deposited"'), 10_000));
    const event = JSON.parse(deposited.text) as { parcel: string; compartment: string; data: { sealedCode: SealedBox } };
    expect(event.compartment).toBe("A02");
    const code = openSealed(event.data.sealedCode, seal.privateKey, event.parcel);
    expect(d.output()).not.toContain(code);
    await press("*"); // courier done

    // Ada types the code she got from the server: A02's lock again, byte for byte.
    const beforePickup = new Set(srv.received);
    await press(`${code}#`);
    await waitFor(() => unlocks().length === 2);
    expect(unlocks()[1]!.rx).toBe("0201310337");
    await a02("opened", beforePickup);
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" });
    const picked = await explained(srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.picked_up"'), 10_000));
    expect(JSON.parse(picked.text)).toMatchObject({ compartment: "A02", parcel: event.parcel, data: { via: "code" } });
    // A wrong code sends nothing to the boards.
    await press("99999999#");
    await sleep(300);
    expect(unlocks()).toHaveLength(2);
  });
});

describe("a Kerong board that goes silent and comes back, compiled daemon", () => {
  it("a code at a board declared down sends nothing and faults nothing, and opens once it answers; an unlock lost in an outage is settled from the door, never opened twice", { timeout: slow(90_000) }, async () => {
    const broker = new Mosquitto();
    await broker.start();
    cleanup.push(() => broker.close());
    const srv = await new TestServer(broker).connect();
    cleanup.push(() => srv.close());
    const seal = generateKeyPairSync("x25519");
    const keypadLine: PtyPair = await makePtyPair();
    cleanup.push(() => keypadLine.close());
    const { d, emu } = await kerongBank((cfg) => {
      cfg.hardware.readers = [{ type: "serial-keypad", port: keypadLine.host }];
      cfg.sync = { enabled: true, url: broker.url, sealKey: publicKeyB64(seal.publicKey) };
      cfg.log = { level: "debug" }; // the keypad dialogue's steps, for a failure's message below
    });
    const explained = <T,>(p: Promise<T>) => explain(d, p, srv);
    const ctl = async (...args: string[]) => JSON.parse((await run(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "--json", ...args])).stdout) as unknown;
    const events = async (type: string) => ((await ctl("events", "--type", type)) as { events: { compartment: string | null; parcel: string | null; data: Record<string, unknown> }[] }).events;
    const keypad = await openSerial(keypadLine.device, 9600);
    cleanup.push(() => closeSerial(keypad));
    const unlocks = () => emu.frames.filter((f) => f.command === "unlock");
    const press = async (keys: string) => {
      keypad.write(keys);
      await sleep(150);
    };
    const seen = (re: RegExp) => (d.output().match(new RegExp(re, "g")) ?? []).length;
    await waitForOutput(d, /connected to the broker/, 10_000);

    /** A courier deposit for Ada into the next S compartment (board 0); returns its code from the sealed event. */
    const deposit = async (lock: number): Promise<{ code: string; parcel: string }> => {
      const n = unlocks().length;
      const since = new Set(srv.received);
      await press("*2468#");
      await press("1");
      const door = (state: "opened" | "closed") =>
        // Not a reading taken at the start (origin "start"): the backlog published at connect may come in late.
        explained(
          srv.waitFor(
            (x) => !since.has(x) && x.topic === srv.t.events && x.text.includes(`"door.${state}"`) && x.text.includes(`"A0${lock}"`) && !x.text.includes('"origin":"start"'),
            10_000,
            `A0${lock} door.${state}`,
          ),
        );
      await explained(waitFor(() => unlocks().length === n + 1));
      await door("opened"); // a poll has seen the door spring open
      await emu.control({ cmd: "door", board: 0, lock, state: "closed" });
      await door("closed");
      const old = new Set(srv.received);
      await press("1001#");
      const ev = await explained(srv.waitFor((x) => !old.has(x) && x.topic === srv.t.events && x.text.includes('"parcel.deposited"'), 10_000, "parcel.deposited"));
      await press("*");
      const e = JSON.parse(ev.text) as { parcel: string; data: { sealedCode: SealedBox } };
      return { code: openSealed(e.data.sealedCode, seal.privateKey, e.parcel), parcel: e.parcel };
    };

    // 1. A02 (board 0, lock 2). Board 0 stops answering and is declared faulted; then Ada types her code.
    const first = await deposit(2);
    await emu.control({ cmd: "fault", board: 0, mode: "silent" });
    await waitForOutput(d, /device fault/, 10_000);
    const before = unlocks().length;
    await press(`${first.code}#`);
    await sleep(2500);
    expect(unlocks()).toHaveLength(before); // nothing was sent
    expect(await events("compartment.fault")).toEqual([]);
    expect(await events("pickup.started")).toEqual([]); // the code was not used up
    const { compartments } = (await ctl("compartments")) as { compartments: { id: string; state: string }[] };
    expect(compartments.find((c) => c.id === "A02")?.state).toBe("occupied");
    // It answers again: usable by itself, and the same code opens A02, byte for byte.
    await emu.control({ cmd: "fault", board: 0, mode: "none" });
    await waitForOutput(d, /device recovered/, 10_000);
    expect((await events("device.recovered")).at(-1)?.data.compartments).toContain("A02");
    await press(`${first.code}#`);
    await waitFor(() => unlocks().length === before + 1);
    expect(unlocks().at(-1)!.rx).toBe("0201310337");
    await sleep(300);
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" });
    await explained(srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.picked_up"') && m.text.includes(first.parcel), 10_000, "first pickup"));

    // 2. A02 again. Board 0 goes silent while Ada types: her unlock leaves (Kerong unlocks are not
    //    answered), the board takes it and springs the door, but says nothing until it is back.
    const second = await deposit(2);
    const faultsBefore = seen(/device fault/);
    await emu.control({ cmd: "fault", board: 0, mode: "silent" });
    await press(`${second.code}#`);
    await waitFor(() => seen(/device fault/) > faultsBefore, 10_000);
    await sleep(1000);
    expect((await events("lock.uncertain")).map((e) => e.parcel)).toEqual([second.parcel]);
    expect(await events("compartment.fault")).toEqual([]);
    const recoveredBefore = seen(/device recovered/);
    await emu.control({ cmd: "fault", board: 0, mode: "none" });
    await waitFor(() => seen(/device recovered/) > recoveredBefore, 10_000);
    // The door is read open now: the held pickup goes on; Ada shuts it and the parcel is picked up.
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" });
    await explained(srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.picked_up"') && m.text.includes(second.parcel), 10_000, "second pickup"));
    expect(await events("alarm.forced_open")).toEqual([]);
    // Her code was used once: typed again, it sends nothing.
    const n = unlocks().length;
    await press(`${second.code}#`);
    await sleep(500);
    expect(unlocks()).toHaveLength(n);
  });
});
