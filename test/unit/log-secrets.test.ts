// Secrets through the daemon's own log calls, in process, at trace level: a bank (terminal, bank,
// people) and its command router take PINs, pickup codes and badge ids, good and bad, and the log
// they write holds none of them. (The compiled daemon, with its broker password and sim socket:
// test/integration/log-output.test.ts.)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { SimHardware } from "../../src/drivers/sim/hardware.js";
import { createLogger } from "../../src/log.js";
import { Runtime } from "../../src/runtime.js";
import { CommandRouter } from "../../src/sync/commands.js";
import { publicKeyB64, SignatureVerifier } from "../../src/sync/seal.js";
import { exampleConfig, removeDir, tempDir } from "../helpers/daemon.js";
import { DEVICE, SITE, serverKeys, signed } from "../helpers/router.js";

const PIN = "739184";
const STAFF_PIN = "615243";
const BADGE = "C0FFEE9A7B";
const SERVER_CODE = "48213905";
const BAD_CODE = "55667788";
const DIRECTORY_BADGE = "ABCDEF987654";

let dir: string;
let rt: Runtime | undefined;
beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2026-11-25T09:00:00Z") });
  dir = tempDir();
});
afterEach(async () => {
  await rt?.stop();
  vi.useRealTimers();
  removeDir(dir);
});

it("no PIN, code, badge id or key in what the bank and the router log, at trace level", async () => {
  const lines: string[] = [];
  const log = createLogger("trace", { write: (s: string) => void lines.push(s) }, { format: "json" });
  const raw = exampleConfig() as Record<string, any>;
  raw.locks = { ...raw.locks, pulseMs: 100, openVerifyMs: 500 };
  raw.seed.people = [
    { id: "courier-1", name: "Casey Courier", roles: ["courier"], pin: PIN, badge: BADGE },
    { id: "staff-1", name: "Sam Staff", roles: ["staff"], pin: STAFF_PIN },
    { id: "p-1001", name: "Ada Lovelace", roles: ["recipient"], number: "1001" },
  ];
  const config = parseConfig(raw);
  rt = new Runtime({ config, dataDir: join(dir, "data"), log, version: "test", simSocket: false, adminSocket: false, timesyncDir: join(dir, "none") });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

  // The keypad: a courier's PIN (the helper types *2468#: this bank's courier has another PIN).
  hw.keypad.keys(`*${PIN}#`);
  hw.keypad.keys("*");
  hw.keypad.keys(`*${STAFF_PIN}#`);
  hw.keypad.keys("*");
  hw.keypad.badge(BADGE);
  await advance(1000);
  hw.keypad.keys("*");
  hw.keypad.keys(`${BAD_CODE}#`);
  hw.keypad.keys(`*99${PIN}#`);
  await advance(5000);

  // The server: a reservation, a code it chose, a directory with badges, a reused id with another code.
  const router = new CommandRouter({
    ledger: rt.ledger,
    bank: rt.bank,
    remote: rt.remote,
    site: SITE,
    device: DEVICE,
    verifier: new SignatureVerifier(publicKeyB64(serverKeys.publicKey)),
    clockSkewMs: 120_000,
    now: () => Date.now(),
    clock: rt.clock,
    log,
    replay: () => 0,
    publishState: () => undefined,
  });
  const send = (name: string, id: string, args: unknown) => router.handle(name, JSON.stringify(signed(name, { id, args, issuedAt: Date.now() })));
  expect(await send("reserve", "c-1", { parcel: "P-1", recipient: "p-1001", size: "S" })).toMatchObject({ ok: true });
  await send("issue-code", "c-2", { parcel: "P-1", code: SERVER_CODE }); // refused or not: the code went through
  expect(await send("issue-code", "c-2", { parcel: "P-1", code: BAD_CODE })).toMatchObject({ ok: false });
  expect(await send("issue-code", "c-3", { parcel: "P-1", code: `${BAD_CODE}x` })).toMatchObject({ ok: false });
  await send("directory", "c-4", { upserts: [{ id: "p-2002", name: "Bo", roles: ["recipient"], badges: [DIRECTORY_BADGE], active: true }] }); // refused here (the config owns the directory): the badge went through all the same

  // A deposit at the keypad and the pickup with the code the bank drew.
  let code = "";
  rt.bank.on("codeIssued", (n) => (code = n.code));
  hw.keypad.keys(`*${PIN}#`);
  hw.keypad.keys("1");
  const loading = rt.ledger.compartments().find((c) => c.state === "loading")!;
  await advance(200);
  hw.doors.set(rt.bank.layoutOf(loading.id).lock, "closed");
  hw.keypad.keys("1001#");
  hw.keypad.keys("*");
  expect(code).toMatch(/^[0-9]{6}$/);
  await advance(5000);
  hw.keypad.keys(`${code}#`);
  await advance(200);
  hw.doors.set(rt.bank.layoutOf(loading.id).lock, "closed");
  await advance(100);
  expect(rt.ledger.compartment(loading.id)?.state).toBe("free");
  await rt.stop();
  rt = undefined;

  const out = lines.join("");
  expect(out).toMatch(/session started/);
  expect(out).toMatch(/command executed/);
  expect(out).toMatch(/command refused/);
  const key = readFileSync(join(dir, "data", "device.key"));
  for (const s of [PIN, STAFF_PIN, BADGE, SERVER_CODE, BAD_CODE, code, DIRECTORY_BADGE, key.toString("hex"), key.toString("base64")]) {
    const re = new RegExp(`(?<![0-9A-Za-z])${s.replace(/[+/=]/g, (c) => `\\${c}`)}(?![0-9A-Za-z])`, "i");
    expect(lines.find((l) => re.test(l)), s).toBeUndefined();
  }
});
