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
import { makePtyPair, type PtyPair } from "../helpers/socat.js";

const EMULATOR = join(ROOT, "dist/scripts/kerong-emulator.js");
const LOCKERCTL = join(ROOT, "dist/src/cli/lockerctl.js");
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

describe("Kerong boards over a pseudo-terminal, compiled daemon", () => {
  it("an open sends the exact unlock frame for that compartment; polls bring the door back; selftest lists the boards", { timeout: 40_000 }, async () => {
    const pty: PtyPair = await makePtyPair();
    cleanup.push(() => pty.close());
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    const emu = await startEmulator(pty.device, join(dir, "emu.sock"));
    cleanup.push(async () => emu.child.kill("SIGTERM"));
    const d: Daemon = await startDaemon({
      dir,
      patch: (cfg) => {
        cfg.hardware = {
          profile: "real",
          boards: [{ type: "kerong", port: pty.host, boards: [{ address: 0, firstChannel: 0 }, { address: 1, firstChannel: 16 }], pollMs: 100 }],
        };
      },
    });
    cleanup.push(() => stopDaemon(d));
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
    expect(boards.every((c) => c.ok)).toBe(true);
    // A board that stops answering is faulted, on record, and comes back.
    await emu.control({ cmd: "fault", board: 1, mode: "silent" });
    await waitForOutput(d, /device fault/, 5000);
    await emu.control({ cmd: "fault", board: 1, mode: "none" });
    await waitForOutput(d, /device recovered/, 10_000);
    const { events } = (await ctl("events", "--type", "device.")) as { events: { type: string }[] };
    expect(events.map((e) => e.type)).toEqual(["device.fault", "device.recovered"]);
  });
});
