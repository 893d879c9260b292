// End to end on a real serial stack: the compiled daemon with the "real" hardware profile opens one
// end of a socat pseudo-terminal pair with the real serialport binding; a Kerong-board emulator
// process (scripts/kerong-emulator.ts) serves two boards on the other end. What the daemon puts on
// the wire is checked byte for byte; door states come back through its status polls.
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { ROOT, removeDir, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { closeSerial, makePtyPair, openSerial, type PtyPair } from "../helpers/socat.js";
import { generateKeyPairSync } from "node:crypto";
import { openSealed, publicKeyB64, type SealedBox } from "../../src/sync/seal.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer } from "../helpers/server.js";

const EMULATOR = join(ROOT, "dist/scripts/kerong-emulator.js");
const LOCKERCTL = join(ROOT, "dist/src/cli/lockerctl.js");
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
}

interface Emulator {
  child: ChildProcess;
  frames: { rx: string; command?: string; board?: number; lock?: number }[];
  control: (cmd: Record<string, unknown>) => Promise<unknown>;
}

async function startEmulator(port: string, control: string): Promise<Emulator> {
  const child = spawn(process.execPath, [EMULATOR, "--port", port, "--boards", "0,1", "--control", control], { stdio: ["ignore", "pipe", "pipe"] });
  const frames: Emulator["frames"] = [];
  let buf = "";
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`emulator not ready: ${err}`)), 10_000);
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as { ready?: boolean; rx?: string };
        buf = buf.slice(nl + 1);
        if (line.ready) {
          clearTimeout(t);
          resolve();
        }
        if (line.rx) frames.push(line as Emulator["frames"][number]);
      }
    });
  });
  await ready;
  const controlFn = (cmd: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) => {
      const sock = connect(control);
      let out = "";
      sock.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("\n")) {
          sock.end();
          resolve(JSON.parse(out.slice(0, out.indexOf("\n"))));
        }
      });
      sock.on("error", reject);
      sock.write(`${JSON.stringify(cmd)}\n`);
    });
  return { child, frames, control: controlFn };
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
        boards: [{ type: "kerong", port: bus.host, boards: [{ address: 0, firstChannel: 0 }, { address: 1, firstChannel: 16 }], pollMs: 100 }],
      };
      extra(cfg);
    },
  });
  cleanup.push(() => stopDaemon(d));
  return { d, emu };
}

describe("Kerong boards over a pseudo-terminal, compiled daemon", () => {
  it("an open sends the exact unlock frame for that compartment; polls bring the door back; selftest lists the boards", { timeout: 40_000 }, async () => {
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

  it("a courier deposit and a pickup by code at a serial keypad: the code reaches the server sealed, and the pickup sends that compartment's exact unlock frame", { timeout: 40_000 }, async () => {
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
    });
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
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" }); // parcel in, door shut
    await sleep(400);
    await press("1001#"); // for Ada
    const deposited = await srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.deposited"'), 10_000);
    const event = JSON.parse(deposited.text) as { parcel: string; compartment: string; data: { sealedCode: SealedBox } };
    expect(event.compartment).toBe("A02");
    const code = openSealed(event.data.sealedCode, seal.privateKey, event.parcel);
    expect(d.output()).not.toContain(code);
    await press("*"); // courier done

    // Ada types the code she got from the server: A02's lock again, byte for byte.
    await press(`${code}#`);
    await waitFor(() => unlocks().length === 2);
    expect(unlocks()[1]!.rx).toBe("0201310337");
    await emu.control({ cmd: "door", board: 0, lock: 2, state: "closed" });
    const picked = await srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.picked_up"'), 10_000);
    expect(JSON.parse(picked.text)).toMatchObject({ compartment: "A02", parcel: event.parcel, data: { via: "code" } });
    // A wrong code sends nothing to the boards.
    await press("99999999#");
    await sleep(300);
    expect(unlocks()).toHaveLength(2);
  });
});
