// The fingerprint module driver against the emulated module over a real socat pseudo-terminal
// pair (no serialport mock): identification once per touch and the threshold, enrolment with two
// and three touches, deletion, the index table, and the ways a module misbehaves (wrong password,
// silence, garbled answers, another address, a port that is not there, a module restarted). Small
// timeouts and polls; waits poll for what must happen, so each test takes well under a second or two.
import type { SerialPort } from "serialport";
import { beforeAll, describe, expect, it } from "vitest";
import { applyCommand, parseCli } from "../../../scripts/fingerprint-emulator.js";
import { ErrorCode } from "../../../src/errors.js";
import { FingerprintEmulator, type FingerprintEmulatorOptions } from "../../../src/drivers/readers/fingerprint/emulator.js";
import {
  EnrollError,
  FingerprintModule,
  FingerprintReaderConfig,
  type EnrollStep,
  type FingerprintEvents,
} from "../../../src/drivers/readers/fingerprint/module.js";
import { silentLogger } from "../../../src/log.js";
import { closeSerial, makePtyPair, openSerial, type PtyPair } from "../../helpers/socat.js";
import { requireTools } from "../../helpers/tools.js";
import { cleanups, until } from "../../helpers/wait.js";

// socat makes the pseudo-terminal pairs; scripts/test-deps.sh installs it. Missing, the tests fail saying so.
beforeAll(() => requireTools("socat"));

const log = silentLogger();
const cleanup = cleanups();


interface Rig {
  pair: PtyPair;
  emu: FingerprintEmulator;
  fp: FingerprintModule;
  fingers: FingerprintEvents["finger"][0][];
  rejected: FingerprintEvents["rejected"][0][];
  faults: string[];
  recovered: number;
  /** Serve the emulator on the pair's device end (again, after a replug). */
  serve(): Promise<void>;
  /** GenImg commands the module has served: the identify loop's polls. */
  polls(): number;
}

// A module answers within microseconds here; 400 ms leaves room for a loaded (or emulated arm64) machine.
const fast = { pollMs: 20, timeoutMs: 400, retryMaxMs: 100 };

async function rig(opts: { emu?: FingerprintEmulatorOptions; config?: Record<string, unknown>; unplugged?: boolean } = {}): Promise<Rig> {
  const pair = await makePtyPair();
  cleanup.push(() => pair.close());
  const emu = new FingerprintEmulator(opts.emu);
  let device: SerialPort | undefined;
  let detach = () => {};
  const serve = async () => {
    device = await openSerial(pair.device, 57600);
    detach = emu.attach(device);
  };
  cleanup.push(async () => {
    detach();
    if (device) await closeSerial(device);
  });
  if (opts.unplugged) await pair.unplug();
  else await serve();
  const config = FingerprintReaderConfig.parse({ type: "fingerprint", port: pair.host, ...fast, ...opts.config });
  const fp = new FingerprintModule(config, { log, random: () => 0 });
  const r: Rig = { pair, emu, fp, fingers: [], rejected: [], faults: [], recovered: 0, serve, polls: () => emu.served.get("GenImg") ?? 0 };
  fp.on("finger", (f) => r.fingers.push(f));
  fp.on("rejected", (x) => r.rejected.push(x));
  fp.availability.on("fault", (d) => r.faults.push(d));
  fp.availability.on("recovered", () => r.recovered++);
  await fp.start();
  cleanup.push(() => fp.stop());
  return r;
}

const ready = (r: Rig) => until("module ready", () => r.fp.health().health === "ok");
/** Let the identify loop poll `n` more times. */
async function polls(r: Rig, n: number): Promise<void> {
  const at = r.polls();
  await until(`${n} polls`, () => r.polls() >= at + n);
}

/** An onStep that plays the person: places `fingers[n-1]` when asked for touch n, lifts when asked. */
function person(emu: FingerprintEmulator, fingers: string[], steps: string[] = []): (s: EnrollStep) => void {
  return (s) => {
    steps.push(s.step === "lift" ? "lift" : `${s.step} ${s.n}/${s.of}`);
    if (s.step === "place") emu.place(fingers[s.n - 1]!);
    if (s.step === "lift") emu.lift();
  };
}

describe("identification", () => {
  it("a finger over the threshold is one finger event per touch", async () => {
    const r = await rig({ emu: { scores: { ada: 120 } } });
    r.emu.store(3, "ada");
    await ready(r);
    expect(r.fp.capacity).toBe(200);
    expect(r.faults).toEqual([]);
    r.emu.place("ada");
    await until("finger", () => r.fingers.length === 1);
    expect(r.fingers).toEqual([{ slot: 3, score: 120 }]);
    await polls(r, 5); // held on the sensor: still the same touch
    expect(r.fingers).toHaveLength(1);
    r.emu.lift();
    await polls(r, 2);
    r.emu.place("ada");
    await until("second touch", () => r.fingers.length === 2);
    expect(r.rejected).toEqual([]);
  });

  it("under the threshold, unknown, or no usable image: rejected, once per touch", async () => {
    const r = await rig({ emu: { scores: { bob: 30 } }, config: { threshold: 50 } });
    r.emu.store(4, "bob");
    await ready(r);
    r.emu.place("bob");
    await until("low score", () => r.rejected.length === 1);
    expect(r.rejected[0]).toEqual({ reason: "low_score", slot: 4, score: 30 });
    r.emu.place("eve"); // a finger nobody enrolled (swapped without a lift in between: still one touch)
    await polls(r, 3);
    expect(r.rejected).toHaveLength(1);
    r.emu.lift();
    await polls(r, 2);
    r.emu.place("eve");
    await until("no match", () => r.rejected.length === 2);
    expect(r.rejected[1]).toEqual({ reason: "no_match" });
    r.emu.lift();
    await polls(r, 2);
    r.emu.place("bob", "messy");
    await until("bad image", () => r.rejected.length === 3);
    expect(r.rejected[2]).toEqual({ reason: "bad_image" });
    await polls(r, 5);
    expect(r.rejected).toHaveLength(3);
    expect(r.fingers).toEqual([]);
  });
});

describe("enrolment", () => {
  it("two touches into the lowest free slot; identification resumes after it", async () => {
    const r = await rig();
    r.emu.store(0, "x");
    r.emu.store(1, "y");
    await ready(r);
    const steps: string[] = [];
    const { slot } = await r.fp.enroll("free", person(r.emu, ["carol", "carol"], steps));
    expect(slot).toBe(2);
    expect(steps).toEqual(["place 1/2", "lift", "place 2/2", "lift"]);
    expect(r.emu.templates().get(2)).toBe("carol");
    expect(await r.fp.usedSlots()).toEqual([0, 1, 2]);
    r.emu.place("carol");
    await until("carol identified", () => r.fingers.length === 1);
    expect(r.fingers[0]).toEqual({ slot: 2, score: 100 });
  });

  it("three touches into a given slot: the third checked against the template", async () => {
    const r = await rig();
    await ready(r);
    const steps: string[] = [];
    await expect(r.fp.enroll(7, person(r.emu, ["dan", "dan", "dan"], steps), { captures: 3 })).resolves.toEqual({ slot: 7 });
    expect(steps).toEqual(["place 1/3", "lift", "place 2/3", "lift", "place 3/3", "lift"]);
    expect(r.emu.served.get("Match")).toBe(1);
    expect(r.emu.templates()).toEqual(new Map([[7, "dan"]]));
  });

  it("different fingers fail to combine (RegModel 0A, Match 08), nothing is stored, the loop resumes", async () => {
    const r = await rig();
    r.emu.store(0, "ada");
    await ready(r);
    const two = r.fp.enroll("free", person(r.emu, ["dan", "eve"]));
    await expect(two).rejects.toBeInstanceOf(EnrollError);
    await expect(two).rejects.toMatchObject({ reason: "combine_failed", code: ErrorCode.InvalidCredential });
    await expect(r.fp.enroll("free", person(r.emu, ["dan", "dan", "eve"]), { captures: 3 })).rejects.toMatchObject({ reason: "combine_failed" });
    expect(r.emu.templates()).toEqual(new Map([[0, "ada"]]));
    r.emu.place("ada");
    await until("identified after the failures", () => r.fingers.length === 1);
  });

  it("a finger left on the sensor is lifted first; a bad image is asked again", async () => {
    const r = await rig();
    await ready(r);
    r.emu.place("fay");
    await until("touch handled", () => r.rejected.length === 1);
    const steps: string[] = [];
    let bad = true;
    const { slot } = await r.fp.enroll("free", (s) => {
      steps.push(s.step === "lift" ? "lift" : `${s.step} ${s.n}/${s.of}`);
      if (s.step === "place") r.emu.place("fay", s.n === 2 && bad ? "messy" : "good");
      if (s.step === "again") bad = false;
      if (s.step === "lift") r.emu.lift();
    });
    expect(slot).toBe(0);
    expect(steps).toEqual(["lift", "place 1/2", "lift", "place 2/2", "again 2/2", "lift", "place 2/2", "lift"]);
  });

  it("no free slot, a slot out of range, nobody touching, one at a time", async () => {
    const r = await rig({ emu: { librarySize: 2 } });
    r.emu.store(0, "a");
    r.emu.store(1, "b");
    await ready(r);
    expect(r.fp.capacity).toBe(2);
    await expect(r.fp.enroll("free", person(r.emu, ["c", "c"]))).rejects.toMatchObject({ reason: "no_free_slot", code: ErrorCode.NoFit });
    await expect(r.fp.enroll(2, () => {})).rejects.toMatchObject({ reason: "bad_slot" });
    const t0 = Date.now();
    const slow = r.fp.enroll(1, () => {}, { timeoutMs: 150 });
    await expect(r.fp.enroll(0, () => {})).rejects.toMatchObject({ reason: "busy" });
    await expect(slow).rejects.toMatchObject({ reason: "timeout" });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.emu.templates()).toEqual(new Map([[0, "a"], [1, "b"]]));
    expect(r.fp.health().health).toBe("ok");
  });

  it("stop during an enrolment fails it at once", async () => {
    const r = await rig();
    await ready(r);
    const e = r.fp.enroll("free", () => {});
    const failed = expect(e).rejects.toMatchObject({ reason: "stopped" });
    await until("waiting for a finger", () => r.polls() > 3);
    await r.fp.stop();
    await failed;
  });
});

describe("the library", () => {
  it("deletes slots (runs as one DeletChar) and reads the index table past 256", async () => {
    const r = await rig({ emu: { librarySize: 300 } });
    for (const s of [1, 2, 3, 5, 280]) r.emu.store(s, `f${s}`);
    await ready(r);
    expect(await r.fp.usedSlots()).toEqual([1, 2, 3, 5, 280]);
    await r.fp.deleteSlots([3, 1, 2, 280]);
    expect(r.emu.served.get("DeletChar")).toBe(2);
    expect(await r.fp.usedSlots()).toEqual([5]);
    await expect(r.fp.deleteSlots([300])).rejects.toMatchObject({ code: ErrorCode.BadInput });
    await r.fp.deleteSlots([]);
  });

  it("a configured librarySize limits the slots used", async () => {
    const r = await rig({ config: { librarySize: 10 } });
    r.emu.store(50, "far");
    await ready(r);
    expect(r.fp.capacity).toBe(10);
    expect(await r.fp.usedSlots()).toEqual([]);
    r.emu.place("far"); // outside the searched range
    await until("rejected", () => r.rejected.length === 1);
    expect(r.rejected[0]).toEqual({ reason: "no_match" });
  });
});

describe("a module that misbehaves", () => {
  it("wrong password: faulted, retried, recovered once the password agrees", async () => {
    const r = await rig({ emu: { password: 0x1234 } });
    await until("fault", () => r.faults.length === 1);
    expect(r.faults[0]).toMatch(/wrong password/);
    expect(r.fp.health()).toMatchObject({ health: "faulted" });
    expect(r.fp.health().detail).not.toMatch(/1234|4660/);
    await expect(r.fp.usedSlots()).rejects.toMatchObject({ code: ErrorCode.HardwareUnavailable });
    await expect(r.fp.enroll("free", () => {})).rejects.toMatchObject({ reason: "module_fault" });
    r.emu.setPassword(0); // the factory default, as the config says
    await ready(r);
    expect(r.recovered).toBe(1);
    expect(r.faults).toHaveLength(1);
  });

  it("the right password from the start: no fault; a module restarted asks again and gets it", async () => {
    const r = await rig({ emu: { password: 0x1234 }, config: { password: 0x1234 } });
    r.emu.store(0, "ada");
    await ready(r);
    r.emu.powerCycle(); // the next GenImg is answered 21: verify the password first
    await until("re-verified", () => (r.emu.served.get("VfyPwd") ?? 0) >= 2 && r.fp.ready);
    r.emu.place("ada");
    await until("finger", () => r.fingers.length === 1);
    expect(r.faults).toHaveLength(1);
    expect(r.faults[0]).toMatch(/password again/);
    expect(r.recovered).toBe(1);
  });

  it("silent: faulted after a second unanswered command, recovered when it answers again", async () => {
    const r = await rig({ config: { timeoutMs: 200 } });
    r.emu.store(0, "ada");
    await ready(r);
    r.emu.setFault("silent");
    await until("fault", () => r.faults.length === 1);
    expect(r.faults[0]).toMatch(/not answering/);
    expect(r.fp.health().health).toBe("degraded");
    r.emu.setFault("none");
    await ready(r);
    expect(r.recovered).toBe(1);
    expect(r.fp.stats.timeouts).toBeGreaterThanOrEqual(2);
    r.emu.place("ada");
    await until("finger after recovery", () => r.fingers.length === 1);
  });

  it("a garbled answer is asked again, never a fault; noise before answers is skipped", async () => {
    const r = await rig();
    r.emu.store(0, "ada");
    await ready(r);
    r.emu.setFault("checksum", 2);
    await polls(r, 3);
    expect(r.fp.stats.badChecksums).toBe(2);
    expect(r.fp.stats.resent).toBeGreaterThanOrEqual(2);
    r.emu.setFault("garbage");
    r.emu.place("ada");
    await until("finger through the noise", () => r.fingers.length === 1);
    expect(r.fp.stats.discardedBytes).toBeGreaterThan(0);
    expect(r.faults).toEqual([]);
    expect(r.fp.health().detail).toMatch(/2 bad checksums/);
  });

  it("answers from another address: faulted, naming the address", async () => {
    const r = await rig({ config: { timeoutMs: 200 } });
    await ready(r);
    r.emu.setFault("wrong-address");
    await until("fault", () => r.faults.length === 1);
    await until("detail", () => /0xFFFFFFFE/.test(r.fp.health().detail));
    expect(r.fp.health().health).toBe("faulted");
    r.emu.setFault("none");
    await ready(r);
  });

  it("a port that is not there at start: faulted (absent), recovered when it appears", async () => {
    const r = await rig({ unplugged: true });
    await until("fault", () => r.faults.length === 1);
    expect(r.faults[0]).toMatch(/cannot open/);
    expect(r.fp.health().health).toBe("absent");
    await r.pair.replug();
    await r.serve();
    await ready(r);
    expect(r.recovered).toBe(1);
  });

  it("a port that vanishes: degraded, reopened when it is back", async () => {
    const r = await rig();
    await ready(r);
    await r.pair.unplug();
    await until("fault", () => r.faults.length === 1);
    expect(r.fp.health().health).toBe("degraded");
    await r.pair.replug();
    await r.serve();
    await ready(r);
    expect(r.recovered).toBe(1);
  });
});

describe("the config", () => {
  it("has the modules' factory defaults; a baud rate is 9600 × N", () => {
    expect(FingerprintReaderConfig.parse({ type: "fingerprint", port: "/dev/serial0" })).toEqual({
      type: "fingerprint",
      port: "/dev/serial0",
      baudRate: 57600,
      address: 0xffffffff,
      password: 0,
      threshold: 50,
      pollMs: 150,
      timeoutMs: 2000,
      retryMaxMs: 10_000,
    });
    expect(FingerprintReaderConfig.safeParse({ type: "fingerprint", port: "/dev/serial0", baudRate: 19200 }).success).toBe(true);
    expect(FingerprintReaderConfig.safeParse({ type: "fingerprint", port: "/dev/serial0", baudRate: 20000 }).success).toBe(false);
    expect(FingerprintReaderConfig.safeParse({ type: "fingerprint", port: "/dev/serial0", password: 2 ** 32 }).success).toBe(false);
    expect(FingerprintReaderConfig.safeParse({ type: "fingerprint", port: "/dev/serial0", librarySize: 2000 }).success).toBe(false);
  });
});

describe("scripts/fingerprint-emulator", () => {
  it("parses its command line and applies stdin commands", () => {
    expect(parseCli([])).toMatchObject({ port: undefined, baudRate: 57600, librarySize: 200, password: 0, address: 0xffffffff });
    expect(() => parseCli(["--baud", "1000"])).toThrow(/9600/);
    const emu = new FingerprintEmulator();
    expect(applyCommand(emu, "place ada")).toBe("finger ada on the sensor");
    expect(applyCommand(emu, "store 4 ada")).toBe("slot 4: ada");
    expect(applyCommand(emu, "list")).toBe("4: ada");
    expect(applyCommand(emu, "fault silent")).toBe("fault: silent");
    expect(applyCommand(emu, "fault sometimes")).toMatch(/^fault none\|silent/);
    expect(applyCommand(emu, "store 999 x")).toMatch(/not within/);
    expect(JSON.parse(applyCommand(emu, "state"))).toMatchObject({ finger: "ada", fault: "silent", library: { 4: "ada" } });
  });
});
