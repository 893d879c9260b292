// A bank without RTC (issue 14 point 7): its clock at boot may be years off until NTP sets it. With a
// controlled clock (fake timers: Date and performance.now, which vi.setSystemTime does not move, as
// a real NTP step does not move CLOCK_MONOTONIC) and timesyncd's flag in a temporary directory:
// doors open for valid codes; events written unsynchronized are marked and the step recorded; no
// deadline is early because of the clock; fresh signed commands are not refused as "future"; old
// ones are still refused; retention waits; lockerctl status says so.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatStatus } from "../../../src/cli/format.js";
import { parseConfig } from "../../../src/config/load.js";
import { verifyChain } from "../../../src/domain/events.js";
import type { SimHardware } from "../../../src/drivers/sim/hardware.js";
import { silentLogger } from "../../../src/log.js";
import { Runtime } from "../../../src/runtime.js";
import { META_LAST_SYNCED } from "../../../src/sync/clock.js";
import { CommandRouter } from "../../../src/sync/commands.js";
import { publicKeyB64, SignatureVerifier } from "../../../src/sync/seal.js";
import { keypadDeposit, type TestBank } from "../../helpers/bank.js";
import { exampleConfig, removeDir, tempDir } from "../../helpers/daemon.js";
import { DEVICE, SITE, serverKeys, signed } from "../../helpers/router.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** The real time in these tests. */
const REAL = Date.parse("2026-11-25T09:00:00Z");
/** A Pi's clock at boot without RTC: years behind (systemd's build date, an old fake-hwclock file) ... */
const BEHIND = Date.parse("2019-03-01T00:00:00Z");
/** ... or ahead (an RTC set wrong, a bad fake-hwclock file). */
const AHEAD = Date.parse("2031-06-01T00:00:00Z");

const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
const notices = (b: TestBank) => b.events().filter((e) => ["parcel.reminder", "parcel.escalated", "parcel.expired"].includes(e.type));

let dir: string;
let timesync: string;
let current: TestBank | undefined;

/** timesyncd runs; `synced`: it has set the clock since boot. */
function ntp(synced: boolean): void {
  mkdirSync(timesync, { recursive: true });
  if (synced) writeFileSync(join(timesync, "synchronized"), "");
  else rmSync(join(timesync, "synchronized"), { force: true });
}

/** NTP reaches its server: the clock steps to the real time and timesyncd raises its flag. */
function ntpSets(time: number): void {
  vi.setSystemTime(time);
  ntp(true);
}

async function open(opts: { adminSocket?: boolean } = {}): Promise<TestBank> {
  await current?.rt.stop();
  const raw = exampleConfig() as Record<string, any>;
  raw.locks = { ...raw.locks, pulseMs: 100, openVerifyMs: 500 };
  const config = parseConfig(raw);
  const rt = new Runtime({ config, dataDir: join(dir, "data"), log: silentLogger(), version: "test", simSocket: false, adminSocket: opts.adminSocket ?? false, timesyncDir: timesync });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  current = {
    rt,
    config,
    hw,
    dir,
    screen: () => hw.display.lines.join(" | "),
    events: (type) => rt.ledger.eventsFrom(1, 1_000_000).filter((e) => !type || e.type === type),
    close: async () => rt.stop(),
  };
  return current;
}

beforeEach(() => {
  dir = tempDir();
  timesync = join(dir, "timesync");
});
afterEach(async () => {
  await current?.rt.stop();
  current = undefined;
  vi.useRealTimers();
  removeDir(dir);
});

/** Pick up by code at the keypad; true when the door opened and the parcel was taken. */
async function pickUp(b: TestBank, code: string, compartment: string): Promise<boolean> {
  b.hw.keypad.keys(`${code}#`);
  await advance(200);
  b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
  await advance(100);
  return b.events("parcel.picked_up").some((e) => e.compartment === compartment);
}

describe("events and steps", () => {
  it("marks what was written before NTP, records the step and the synchronization, and the chain still verifies", async () => {
    vi.useFakeTimers({ now: BEHIND });
    ntp(false);
    const b = await open();
    expect(b.rt.clock.synchronized()).toBe("no");
    const { parcel } = await keypadDeposit(b, advance);
    const before = b.events();
    expect(before.length).toBeGreaterThan(3);
    expect(before.every((e) => e.data.clockUnsynced === true)).toBe(true);

    await advance(10 * MIN);
    ntpSets(REAL);
    await advance(6_000); // the clock is looked at every 5 s
    const stepped = b.events("clock.stepped");
    expect(stepped).toHaveLength(1);
    const s = stepped[0]!.data as { from: number; to: number; deltaMs: number; synchronized: string; rebased: string[] };
    expect(s.synchronized).toBe("yes");
    expect(s.to - s.from).toBe(s.deltaMs);
    expect(Math.abs(s.deltaMs - (REAL - BEHIND - 10 * MIN))).toBeLessThan(10_000);
    expect(s.rebased).toEqual([parcel]);
    expect(b.events("clock.synchronized")).toHaveLength(1);
    const after = b.events().filter((e) => e.seq > stepped[0]!.seq);
    b.rt.ledger.transact((tx) => tx.event({ type: "system.recovered", data: {} }));
    expect(b.events("system.recovered")[0]!.data.clockUnsynced).toBeUndefined();
    expect(after.every((e) => e.data.clockUnsynced === undefined)).toBe(true);
    expect(verifyChain(b.events())).toMatchObject({ ok: true });
    // The last synchronized time is kept for the next start, unsynchronized again.
    const stoppedAt = Date.now();
    await b.rt.stop();
    ntp(false);
    vi.setSystemTime(BEHIND);
    const again = await open();
    expect(again.rt.clock.state()).toMatchObject({ synchronized: "no", lastSyncedAt: stoppedAt, lowerBound: stoppedAt });
  });

  it("sees a step without timesyncd: the wall clock against the monotonic one, beyond 2 minutes", async () => {
    vi.useFakeTimers({ now: REAL });
    const b = await open(); // no timesyncd: "unknown", trusted as it is
    expect(b.rt.clock.synchronized()).toBe("unknown");
    vi.setSystemTime(Date.now() + 90_000);
    await advance(6_000);
    expect(b.events("clock.stepped")).toHaveLength(0);
    vi.setSystemTime(Date.now() - 3 * HOUR);
    await advance(6_000);
    expect(b.events("clock.stepped").map((e) => e.data)).toEqual([expect.objectContaining({ synchronized: "unknown", deltaMs: expect.closeTo(-3 * HOUR, -4) })]);
    expect(b.events().some((e) => e.data.clockUnsynced)).toBe(false);
    expect(b.rt.clock.state().lastStep).toMatchObject({ deltaMs: expect.closeTo(-3 * HOUR, -4) });
  });
});

describe("doors and deadlines are never wrong because of the clock", () => {
  it("a clock years behind at boot: the code opens, nothing expires; and parcels deposited then do not all expire when NTP steps it", async () => {
    // Deposited on a synchronized clock; the bank restarts without RTC, its clock in 2019.
    vi.useFakeTimers({ now: REAL });
    ntp(true);
    let b = await open();
    const first = await keypadDeposit(b, advance);
    await b.rt.stop();
    vi.setSystemTime(BEHIND);
    ntp(false);
    b = await open();
    await advance(MIN);
    expect(notices(b)).toEqual([]);
    expect(await pickUp(b, first.code, first.compartment)).toBe(true);

    // Two parcels deposited on the 2019 clock: NTP steps it seven years forward an hour later.
    const late = await keypadDeposit(b, advance);
    await advance(HOUR);
    ntpSets(REAL + DAY);
    await advance(MIN);
    expect(notices(b)).toEqual([]);
    expect(b.rt.ledger.parcel(late.parcel)?.expiredAt).toBeNull();
    // Their deadlines moved with the step: 72 h after the deposit, not at once.
    await advance(70 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated"]);
    await advance(2 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated", "parcel.expired"]);
  });

  it("a clock years ahead at boot: parcels from before count from the start, so nothing expires early; the code still opens", async () => {
    vi.useFakeTimers({ now: REAL });
    ntp(true);
    let b = await open();
    const a = await keypadDeposit(b, advance);
    const c = await keypadDeposit(b, advance);
    await advance(HOUR);
    await b.rt.stop();
    vi.setSystemTime(AHEAD); // the wall clock says every deadline passed years ago
    ntp(false);
    b = await open();
    await advance(MIN);
    expect(notices(b)).toEqual([]);
    expect(await pickUp(b, a.code, a.compartment)).toBe(true);
    // 24 h after this start: a reminder (the least time it has waited), not an expiry.
    await advance(24 * HOUR);
    expect(notices(b).map((e) => [e.type, e.parcel])).toEqual([["parcel.reminder", c.parcel]]);
    await advance(48 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated", "parcel.expired"]);
  });

  it("at the first synchronization, parcels deposited unsynchronized before a restart count from that start", async () => {
    vi.useFakeTimers({ now: BEHIND });
    ntp(false);
    let b = await open();
    const { parcel } = await keypadDeposit(b, advance);
    await advance(2 * HOUR);
    await b.rt.stop(); // power cut before NTP: the next boot's clock is off by another amount
    vi.setSystemTime(BEHIND + 30 * MIN);
    b = await open();
    await advance(HOUR);
    ntpSets(REAL);
    await advance(6_000);
    const synced = b.events("clock.synchronized");
    expect(synced.map((e) => e.data)).toEqual([expect.objectContaining({ restarted: [parcel] })]);
    // 72 h from this start (an hour before the synchronization), never from the 2019 deposit time.
    await advance(70 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated"]);
    await advance(2 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated", "parcel.expired"]);
    // Once: a later restart and synchronization leave it alone.
    await b.rt.stop();
    ntp(false);
    b = await open();
    ntp(true);
    await advance(6_000);
    expect(b.events("clock.synchronized").at(-1)?.data.restarted).toBeUndefined();
  });
});

describe("signed commands on an unsynchronized clock", () => {
  function router(b: TestBank) {
    const r = new CommandRouter({
      ledger: b.rt.ledger,
      bank: b.rt.bank,
      remote: b.rt.remote,
      site: SITE,
      device: DEVICE,
      verifier: new SignatureVerifier(publicKeyB64(serverKeys.publicKey)),
      clockSkewMs: 120_000,
      now: () => Date.now(),
      clock: b.rt.clock,
      log: silentLogger(),
      replay: () => 0,
      publishState: () => undefined,
    });
    return (name: string, payload: Record<string, unknown>) => r.handle(name, JSON.stringify(signed(name, payload)));
  }
  const reserve = (id: string, issuedAt: number, expiresAt = issuedAt + 5 * MIN) => ({ id, args: { parcel: `P-${id}`, recipient: "p-1001", size: "S" }, issuedAt, expiresAt });
  const reasons = (b: TestBank) => b.events("alarm.unauthorized_command").map((e) => e.data.reason);

  it("accepts a fresh command years ahead of the bank clock; refuses one that closed before the last synchronized time, a replay, a long lifetime", async () => {
    vi.useFakeTimers({ now: REAL });
    ntp(true);
    let b = await open();
    await b.rt.stop(); // the last synchronized time is kept: REAL
    vi.setSystemTime(BEHIND);
    ntp(false);
    b = await open();
    await advance(5 * MIN); // real time now: REAL + 5 min (and more: the bank was off for a while)
    const send = router(b);

    const fresh = await send("reserve", reserve("fresh", REAL + 30 * MIN));
    expect(fresh).toMatchObject({ ok: true });
    expect(await send("reserve", reserve("fresh", REAL + 30 * MIN))).toEqual(fresh); // a repeat: its first reply
    expect(await send("reserve", { ...reserve("fresh", REAL + 30 * MIN), args: { parcel: "P-other", recipient: "p-1001", size: "S" } })).toMatchObject({
      ok: false,
      error: { code: "bad_input" },
    });
    // A captured command whose window closed before the bank last knew the time: refused as expired.
    const old = await send("reserve", reserve("old", REAL - HOUR));
    expect(old).toMatchObject({ ok: false, error: { code: "expired", message: expect.stringContaining("not synchronized") } });
    // The window's length is still bounded.
    expect(await send("reserve", reserve("long", REAL + HOUR, REAL + 2 * DAY))).toMatchObject({ ok: false, error: { code: "bad_input" } });
    expect(reasons(b)).toEqual(["replayed", "expired", "lifetime"]);
    expect(b.rt.ledger.parcel("P-fresh")?.status).toBe("reserved");
    expect(b.rt.ledger.parcel("P-old")).toBeUndefined();

    // The floor moves on with the uptime: a window still open 5 minutes ago may have closed since.
    const closing = reserve("closing", REAL - 5 * MIN, REAL + 8 * MIN);
    vi.setSystemTime(BEHIND + 2 * HOUR); // the unsynchronized wall clock says nothing either way ...
    await advance(10 * MIN); // ... the monotonic clock does: REAL + 15 min at least
    expect(await send("reserve", closing)).toMatchObject({ ok: false, error: { code: "expired" } });

    // Synchronized again: the bank clock judges, and a command from the future is refused again.
    ntpSets(REAL + 20 * MIN);
    await advance(6_000);
    expect(await send("reserve", reserve("ahead", Date.now() + HOUR))).toMatchObject({ ok: false, error: { code: "expired", message: expect.stringContaining("ahead of the bank") } });
  });

  it("without an unsynchronized flag, a clock years behind refuses a fresh command as future (as before): the flag is what tells", async () => {
    vi.useFakeTimers({ now: BEHIND });
    ntp(true);
    const b = await open();
    expect(await router(b)("reserve", reserve("x", REAL))).toMatchObject({ ok: false, error: { code: "expired" } });
    expect(reasons(b)).toEqual(["future"]);
  });
});

describe("retention and status", () => {
  it("prunes nothing while the clock is not synchronized", async () => {
    vi.useFakeTimers({ now: AHEAD });
    ntp(false);
    const b = await open();
    const retention = (b.rt as unknown as { retention: { prune(): unknown } }).retention;
    expect(retention.prune()).toBeUndefined();
    ntp(true);
    await advance(6_000);
    expect(retention.prune()).toMatchObject({ events: expect.any(Number), commands: expect.any(Number) });
    expect(Number(b.rt.ledger.meta(META_LAST_SYNCED))).toBe(Date.now());
  });

  it("lockerctl status says NOT SYNCHRONIZED first, with the last synchronized time", async () => {
    vi.useFakeTimers({ now: REAL });
    ntp(true);
    let b = await open();
    await b.rt.stop();
    vi.setSystemTime(BEHIND);
    ntp(false);
    b = await open({ adminSocket: true });
    const status = (b.rt.admin as unknown as { status(): Parameters<typeof formatStatus>[0] }).status();
    expect(status.clock).toMatchObject({ synchronized: "no", lastSyncedAt: REAL, now: BEHIND, lowerBound: REAL });
    const text = formatStatus(status, { color: false });
    const lines = text.split("\n");
    expect(lines[1]).toMatch(/^CLOCK NOT SYNCHRONIZED \(no NTP since boot\): reads 2019-0[23]-/);
    expect(text).toMatch(/last synchronized 2026-11-25/);
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
    ntpSets(REAL + HOUR);
    await advance(6_000);
    const synced = (b.rt.admin as unknown as { status(): Parameters<typeof formatStatus>[0] }).status();
    expect(formatStatus(synced, { color: false }).split("\n")[1]).toMatch(/^clock: synchronized; stepped \+\d+d \d+h at 2026-11-25/);
  });
});
