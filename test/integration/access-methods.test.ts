// The enterprise tier's access methods end to end, with the compiled daemon on the "real" profile:
// Kerong lock boards (their emulator process) on one pseudo-terminal, a fingerprint module (its
// byte-exact emulator) on a second, a serial keypad/scanner on a third. A technician enrols a
// recipient's finger with lockerctl, touching the emulated sensor as each step asks; a courier
// deposits at the keypad; the finger opens the parcel's door. An app pass the server tool made
// opens another parcel once, offline; the same QR code scanned again opens nothing. A leaver's
// finger is deleted from the module.
import { execFile, spawn, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import type { SerialPort } from "serialport";
import { describe, expect, it } from "vitest";
import { FingerprintEmulator } from "../../src/drivers/readers/fingerprint/emulator.js";
import { encodePass } from "../../src/domain/pass.js";
import { publicKeyB64 } from "../../src/sync/seal.js";
import { ROOT, removeDir, startDaemon, stopDaemon, tempDir, type Daemon } from "../helpers/daemon.js";
import { kerongLockOf, startEmulator, twoKerongBoards, type Emulator } from "../helpers/kerong.js";
import { closeSerial, makePtyPair, openSerial } from "../helpers/socat.js";
import { cleanups, until } from "../helpers/wait.js";
import { slow } from "../helpers/slow.js";

const LOCKERCTL = join(ROOT, "dist/lockerd/lockerctl.js");
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const server = generateKeyPairSync("ed25519");
const cleanup = cleanups();
/** Polls `f` (lockerctl runs asynchronously: the emulated module lives in this process and must keep answering). */
const within = <T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000) => until(what, f, ms, 20);

interface Rig {
  d: Daemon;
  kerong: Emulator;
  finger: FingerprintEmulator;
  keypad: SerialPort;
  scanner: SerialPort;
  ctl: (args: string[], input?: string) => { code: number | null; out: string; err: string };
  events: (type: string) => Promise<{ seq: number; type: string; compartment: string | null; parcel: string | null; data: Record<string, unknown> }[]>;
}

async function rig(): Promise<Rig> {
  const dir = tempDir();
  cleanup.push(async () => removeDir(dir));
  const [bus, fp, kp, qr] = [await makePtyPair(), await makePtyPair(), await makePtyPair(), await makePtyPair()];
  cleanup.push(() => bus.close(), () => fp.close(), () => kp.close(), () => qr.close());
  const kerong = await startEmulator(bus.device, join(dir, "emu.sock"));
  cleanup.push(async () => kerong.child.kill("SIGTERM"));
  const finger = new FingerprintEmulator();
  const fpPort = await openSerial(fp.device, 57600);
  const detach = finger.attach(fpPort);
  cleanup.push(async () => {
    detach();
    await closeSerial(fpPort);
  });
  const keypad = await openSerial(kp.device, 9600);
  cleanup.push(() => closeSerial(keypad));
  const scanner = await openSerial(qr.device, 9600);
  cleanup.push(() => closeSerial(scanner));
  const d = await startDaemon({
    dir,
    patch: (cfg) => {
      cfg.hardware = {
        profile: "real",
        boards: [twoKerongBoards(bus.host)],
        readers: [
          { type: "serial-keypad", port: kp.host },
          { type: "serial-scanner", port: qr.host },
          { type: "fingerprint", port: fp.host, pollMs: 50, threshold: 60 },
        ],
      };
      delete cfg.seed;
      cfg.people = { owner: "lockerctl" };
      cfg.sync = { ...cfg.sync, serverPublicKey: publicKeyB64(server.publicKey) };
    },
  });
  cleanup.push(() => stopDaemon(d));
  const ctl = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), ...args], { encoding: "utf8", input, timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const events = async (type: string) => {
    const { stdout } = await run(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "--json", "events", "--type", type, "--limit", "1000"]);
    return (JSON.parse(stdout) as { events: Awaited<ReturnType<Rig["events"]>> }).events;
  };
  for (const args of [
    ["add", "courier-1", "--name", "Casey Courier", "--roles", "courier"],
    ["add", "p-1001", "--name", "Ada Lovelace", "--roles", "recipient", "--number", "1001"],
  ]) {
    const r = ctl(["people", ...args]);
    if (r.code !== 0) throw new Error(`lockerctl people ${args.join(" ")}: ${r.err}`);
  }
  expect(ctl(["people", "set-pin", "courier-1"], "2468\n2468\n").code).toBe(0);
  await within("the module's handshake", () => (finger.served.get("VfyPwd") ?? 0) > 0 && (finger.served.get("GenImg") ?? 0) > 0);
  return { d, kerong, finger, keypad, scanner, ctl, events };
}

/** Keys typed on the serial keypad (a line each, as the device sends them). */
async function type(r: Rig, line: string): Promise<void> {
  r.keypad.write(`${line}\r`);
  await sleep(300);
}

/** A courier's deposit of a size-S parcel for recipient 1001; the compartment it went into. */
async function deposit(r: Rig): Promise<{ compartment: string; parcel: string }> {
  await type(r, "*2468#");
  await type(r, "1");
  const started = await within("deposit.started", async () => (await r.events("deposit.started")).at(-1));
  // The emulated board's door springs open on the unlock; the courier shuts it.
  await within("door.opened", async () => (await r.events("door.opened")).find((e) => e.compartment === started.compartment));
  await shut(r, started.compartment!, started.seq);
  await type(r, "1001#");
  await type(r, "*");
  await within("parcel.deposited", async () => (await r.events("parcel.deposited")).find((e) => e.parcel === started.parcel));
  return { compartment: started.compartment!, parcel: started.parcel! };
}

/**
 * A compartment's door shut on the emulated boards, once it was seen open after event `since` (the
 * flow's start): shut before the unlock reached the board, the door would spring open after, and a
 * door.closed of an earlier flow must not count.
 */
async function shut(r: Rig, compartment: string, since: number): Promise<void> {
  const opened = await within(`${compartment} open`, async () => (await r.events("door.opened")).find((e) => e.compartment === compartment && e.seq > since));
  await r.kerong.control({ cmd: "door", ...kerongLockOf(compartment), state: "closed" });
  await within(`${compartment} closed`, async () => (await r.events("door.closed")).some((e) => e.compartment === compartment && e.seq > opened.seq && e.data.origin !== "start"));
}

describe("fingerprints and app passes, compiled daemon, emulated module and boards", () => {
  it("enrol with lockerctl, deposit at the keypad, the finger opens the parcel; a leaver's finger is deleted from the module", { timeout: slow(90_000) }, async () => {
    const r = await rig();
    // An enrolment the technician interrupts (Ctrl-C) ends at once: the next one is not "busy".
    const first = spawn(process.execPath, [LOCKERCTL, "--socket", join(r.d.dataDir, "admin.sock"), "people", "enroll-finger", "p-1001"], { stdio: ["ignore", "pipe", "pipe"] });
    let firstOut = "";
    first.stdout.setEncoding("utf8").on("data", (s: string) => (firstOut += s));
    await within("touch 1/2", () => firstOut.includes("touch 1/2"));
    first.kill("SIGINT");
    await new Promise((resolve) => first.on("close", resolve));
    await within("cancelled", () => r.d.output().includes("enrolment cancelled"));
    // The technician starts the enrolment again; Ada touches the sensor as each step asks.
    const child = spawn(process.execPath, [LOCKERCTL, "--socket", join(r.d.dataDir, "admin.sock"), "people", "enroll-finger", "p-1001"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await within("touch 1/2", () => out.includes("touch 1/2"));
    r.finger.place("ada-right-index");
    await within("lift", () => out.includes("lift the finger"));
    r.finger.lift();
    await within("touch 2/2", () => out.includes("touch 2/2"));
    r.finger.place("ada-right-index");
    await within("lift again", () => out.split("lift the finger").length === 3);
    r.finger.lift();
    expect(await exited, out).toBe(0);
    expect(out).toMatch(/p-1001: finger enrolled in slot 0 of fingerprint \S+ \(1 finger\(s\) now\)/);
    expect(r.finger.templates().get(0)).toBe("ada-right-index");
    expect((await r.events("person.finger_enrolled")).map((e) => e.data)).toEqual([expect.objectContaining({ person: "p-1001", slot: 0 })]);
    expect(r.ctl(["people", "list"]).out).toMatch(/p-1001 .* 1 +active/);

    const d = await deposit(r);
    await sleep(500); // idle: nobody at the keypad
    r.finger.place("ada-right-index");
    const started = await within("pickup by finger", async () => (await r.events("pickup.started")).find((e) => e.parcel === d.parcel));
    expect(started.data.via).toBe("finger");
    r.finger.lift();
    await shut(r, d.compartment, started.seq);
    await within("picked up", async () => (await r.events("parcel.picked_up")).find((e) => e.parcel === d.parcel));

    // A stranger's finger opens nothing, and is on record.
    r.finger.place("mallory");
    await within("refused", async () => (await r.events("code.rejected")).find((e) => e.data.kind === "finger" && e.data.reason === "no_match"));
    r.finger.lift();

    // Ada leaves: disabled, her template goes from the module.
    expect(r.ctl(["people", "disable", "p-1001", "--reason", "moved away"]).code).toBe(0);
    await within("deleted", async () => (await r.events("person.finger_deleted")).length === 1);
    expect(r.finger.templates().size).toBe(0);
  });

  it("an app pass opens its parcel once, offline; the screenshot scanned again opens nothing", { timeout: slow(90_000) }, async () => {
    const r = await rig();
    const d = await deposit(r);
    const now = Math.floor(Date.now() / 1000) * 1000;
    const token = encodePass({ kind: "pickup", parcelId: d.parcel, site: "hq", device: "bank-01", notBefore: now - 60_000, expiresAt: now + 3_600_000 }, server.privateKey);
    await sleep(500);
    r.scanner.write(`${token}\r`); // the scanner sends the QR code's text as a line
    const started = await within("pickup by pass", async () => (await r.events("pickup.started")).find((e) => e.parcel === d.parcel));
    expect(started.data.via).toBe("app");
    await shut(r, d.compartment, started.seq);
    await within("picked up", async () => (await r.events("parcel.picked_up")).find((e) => e.parcel === d.parcel));
    await sleep(2000); // later (a reader passes the same code on once within its repeat window, 1.5 s)
    r.scanner.write(`${token}\r`);
    await within("refused", async () => (await r.events("code.rejected")).find((e) => e.data.kind === "pass" && e.data.reason === "already_used"));
    expect((await r.events("pickup.started")).filter((e) => e.parcel === d.parcel)).toHaveLength(1);
  });
});
