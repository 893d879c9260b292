// lockerctl stats from real histories: an in-process bank on simulated hardware, driven at chosen
// wall-clock times with fake timers, then the figures checked against the timeline worked by hand.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { computeStats, formatStats, StatsResult } from "../../../src/admin/stats.js";
import { Ledger } from "../../../src/ledger/ledger.js";
import { keypadDeposit, testBank, type TestBank } from "../../helpers/bank.js";
import { removeDir, tempDir } from "../../helpers/daemon.js";

const MIN = 60_000;
const H = 60 * MIN;
const DAY = 24 * H;
/** November 2026, UTC: t("03T09:00"). Every event sits in the first minutes of an hour, so local hours differ only by the zone's offset. */
const t = (dayTime: string) => Date.parse(`2026-11-${dayTime}:00Z`);
const FROM = t("03T00:00");
const END = FROM + 7 * DAY;
const localHour = (ms: number) => new Date(ms).getHours();
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
const ANSI = /\x1b\[[0-9;]*m/g;

type Deposit = Awaited<ReturnType<typeof keypadDeposit>>;

/** Move the wall clock forward (never back: the bank is live). */
function at(when: number): void {
  expect(when).toBeGreaterThanOrEqual(Date.now());
  vi.setSystemTime(when);
}

const lockOf = (b: TestBank, compartment: string) => b.rt.bank.layoutOf(compartment).lock;

async function deposit(b: TestBank, when: number, opts: { size?: string; recipient?: string } = {}): Promise<Deposit> {
  at(when);
  return keypadDeposit(b, advance, { recipient: "1003", ...opts });
}

/** The door sprang open (40 ms); 200 ms later the person closes it. */
async function close(b: TestBank, compartment: string): Promise<void> {
  await advance(200);
  b.hw.doors.set(lockOf(b, compartment), "closed");
}

async function pickupByCode(b: TestBank, when: number, d: Deposit): Promise<void> {
  at(when);
  b.hw.keypad.keys(`${d.code}#`);
  await close(b, d.compartment);
  expect(b.rt.ledger.parcel(d.parcel)?.status).toBe("picked_up");
}

/**
 * The week under test (UTC), window [Nov 3 00:00, Nov 10 00:00). Parcels to S unless named L;
 * dwell = pickup - deposit exactly (both doors close 200 ms after their key press).
 *
 *   Nov 2 14:00 p0 deposited (before the window)     Nov 3 02:00 p0 picked up   12h
 *   Nov 3 09:00 p1, 09:01 p2, 09:02 p3 (Alan)        10:00 p1 1h, 11:01 p2 2h
 *   Nov 3 13:00-13:03 L1-L4 fill every L; 13:04 two L refusals
 *   Nov 3 17:00 inactive badge, wrong PIN, 4 wrong codes: lockout at the 5th failure + brute-force alarm (threshold 5)
 *   Nov 4 09:02 p3 by Alan's badge 24h · 13:00 L1 24h · 15:00 p6, picked up 15:04 (4m)
 *   Nov 5 08:00 p7, 11:00 picked up 3h · 12:00 deposit into jammed A02: fault
 *   Nov 5 13:01 L2 removed by staff · 13:02 L3 picked up 48h · 14:00 p4
 *   Nov 5 15:00 a deposit taken back by the courier after 20 s · 15:05 p5
 *   Nov 8 02:00 p4 picked up 60h · 23:05 p5 picked up 80h · Nov 9 10:00 p8 (still there, with L4)
 */
async function buildWeek(b: TestBank): Promise<void> {
  const p0 = await deposit(b, t("02T14:00"));
  await pickupByCode(b, t("03T02:00"), p0);
  const p1 = await deposit(b, t("03T09:00"));
  const p2 = await deposit(b, t("03T09:01"));
  const p3 = await deposit(b, t("03T09:02"), { recipient: "1002" });
  await pickupByCode(b, t("03T10:00"), p1);
  await pickupByCode(b, t("03T11:01"), p2);
  const large: Deposit[] = [];
  for (let i = 0; i < 4; i++) large.push(await deposit(b, t(`03T13:0${i}`), { size: "3" }));
  const [l1, l2, l3] = large as [Deposit, Deposit, Deposit, Deposit];

  at(t("03T13:04"));
  b.hw.keypad.keys("*2468#3");
  expect(b.screen()).toContain("No L free");
  b.hw.keypad.keys("3#"); // after a refusal a size is confirmed with # (the courier may have walked away)
  b.hw.keypad.keys("*");

  at(t("03T17:00"));
  b.hw.keypad.badge("04DEAD00");
  b.hw.keypad.keys("*9999#");
  const live = new Set([p3, ...large].map((d) => d.code));
  const wrong = ["111111", "222222", "333333", "444444", "555555", "666666"].filter((c) => !live.has(c)).slice(0, 4);
  for (const code of wrong) b.hw.keypad.keys(`${code}#`);
  expect(b.screen()).toContain("Too many tries");

  at(t("04T09:02"));
  b.hw.keypad.badge("04A1B2C4");
  await close(b, p3.compartment);
  expect(b.rt.ledger.parcel(p3.parcel)).toMatchObject({ status: "picked_up", collectVia: "badge" });
  await pickupByCode(b, t("04T13:00"), l1);
  const p6 = await deposit(b, t("04T15:00"));
  await pickupByCode(b, t("04T15:04"), p6);
  const p7 = await deposit(b, t("05T08:00"));
  await pickupByCode(b, t("05T11:00"), p7);

  at(t("05T12:00"));
  const next = b.rt.ledger.compartments().find((c) => c.size === "S" && !c.accessible && c.state === "free")!;
  expect(next.id).toBe("A02");
  b.hw.locks.jammed.add(lockOf(b, next.id));
  b.hw.keypad.keys("*2468#1");
  await advance(2000);
  expect(b.rt.ledger.compartment(next.id)?.state).toBe("fault");
  b.hw.keypad.keys("*");

  at(t("05T13:01"));
  b.hw.keypad.keys("*8642#");
  b.hw.keypad.keys(`2${b.rt.bank.layoutOf(l2.compartment).keypadNumber}#`);
  await close(b, l2.compartment);
  b.hw.keypad.keys("#"); // no shelf number: the staff session ends
  expect(b.rt.ledger.parcel(l2.parcel)?.status).toBe("removed");
  await pickupByCode(b, t("05T13:02"), l3);
  const p4 = await deposit(b, t("05T14:00"));

  at(t("05T15:00"));
  b.hw.keypad.keys("*2468#1");
  const returned = b.rt.ledger.compartments().find((c) => c.state === "loading")!;
  await close(b, returned.id);
  await advance(20_000);
  b.hw.keypad.keys("*"); // take it back
  await close(b, returned.id);
  b.hw.keypad.keys("*");
  expect(b.rt.ledger.parcel(returned.parcelId!)).toMatchObject({ status: "cancelled", compartmentId: returned.id });

  const p5 = await deposit(b, t("05T15:05"));
  await pickupByCode(b, t("08T02:00"), p4);
  await pickupByCode(b, t("08T23:05"), p5);
  await deposit(b, t("09T10:00"));
}

describe("stats over a week of a real bank", () => {
  let b: TestBank;
  let s: StatsResult;

  beforeAll(async () => {
    vi.useFakeTimers({ now: t("01T00:00") });
    b = await testBank((cfg) => (cfg.lockout.alarmThreshold = 5));
    await buildWeek(b);
    s = computeStats(b.rt.ledger, { now: END, days: 7 });
  });
  afterAll(async () => {
    await b?.close();
    vi.useRealTimers();
  });

  it("keeps to its own schema", () => {
    expect(StatsResult.parse(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(s.window).toEqual({ from: FROM, to: END, days: 7, observedFrom: FROM });
  });

  it("measures occupancy by compartment size over the window, clipping parcels that straddle it", () => {
    // S: p0 clipped to 2h + 200 ms, 1h + 2h + 24h + 4m + 3h + 60h + 80h, the take-back 20.2 s, p8 14h - 200 ms.
    const sMs = 186 * H + 4 * MIN + 20_200;
    // L: L1 24h, L2 48h, L3 48h, L4 from Nov 3 13:03:00.2 to the end.
    const lMs = 24 * H + 48 * H + 48 * H + (154 * H + 57 * MIN - 200);
    const bySize = Object.fromEntries(s.utilization.map((u) => [u.size, u]));
    expect(Object.keys(bySize)).toEqual(["S", "M", "L"]);
    expect(bySize.S).toMatchObject({ compartments: 12, occupied: 1, outOfService: 1 });
    expect(bySize.S!.occupancy).toBeCloseTo(sMs / (12 * 7 * DAY), 12);
    expect(bySize.M).toEqual({ size: "M", compartments: 8, occupied: 0, outOfService: 0, occupancy: 0 });
    expect(bySize.L).toMatchObject({ compartments: 4, occupied: 1, outOfService: 0 });
    expect(bySize.L!.occupancy).toBeCloseTo(lMs / (4 * 7 * DAY), 12);
  });

  it("gives dwell count, average and p90 (nearest rank) per size and overall, for pickups in the window", () => {
    // S sorted: 4m 1h 2h 3h 12h 24h 60h 80h; L: 24h 48h; all ten: p90 is the 9th, 60h.
    expect(s.dwell.overall).toEqual({ count: 10, avgMs: (4 * MIN + 254 * H) / 10, p90Ms: 60 * H });
    expect(s.dwell.bySize).toEqual([
      { size: "S", count: 8, avgMs: (4 * MIN + 182 * H) / 8, p90Ms: 80 * H },
      { size: "M", count: 0, avgMs: null, p90Ms: null },
      { size: "L", count: 2, avgMs: 36 * H, p90Ms: 48 * H },
    ]);
  });

  it("gives the share of the window's parcels picked up within 24/48/72 h (bounds inclusive)", () => {
    // 12 deposited in the window (the take-back and the jammed attempt are not parcels):
    // within 24h p1 p2 p3(24h) L1(24h) p6 p7; +L3 by 48h; +p4 by 72h; p5 later; L2 removed; L4 p8 waiting.
    expect(s.retrieval).toEqual({
      parcels: 12,
      within: [
        { hours: 24, pickedUp: 6, share: 6 / 12 },
        { hours: 48, pickedUp: 7, share: 7 / 12 },
        { hours: 72, pickedUp: 8, share: 8 / 12 },
      ],
      pickedUpLater: 1,
      removed: 1,
      waiting: 2,
    });
  });

  it("counts deposits and pickups per local hour and names the three busiest", () => {
    const hour = (dayTime: string) => s.hours.byHour[localHour(t(dayTime))];
    expect(hour("03T13:00")).toMatchObject({ deposits: 4, pickups: 2 });
    expect(hour("03T09:00")).toMatchObject({ deposits: 3, pickups: 1 });
    expect(hour("03T15:00")).toMatchObject({ deposits: 2, pickups: 1 });
    expect(hour("03T02:00")).toMatchObject({ deposits: 0, pickups: 2 });
    expect(hour("03T14:00")).toMatchObject({ deposits: 1, pickups: 0 });
    expect(s.hours.byHour.reduce((a, h) => a + h.deposits, 0)).toBe(12);
    expect(s.hours.byHour.reduce((a, h) => a + h.pickups, 0)).toBe(10);
    expect(s.hours.top).toEqual(["13", "09", "15"].map((h) => localHour(t(`03T${h}:00`))));
    expect(s.hours).toMatchObject({ clock: "local", timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone });
    expect(s.hours.utcOffsetMinutes).toBe(0 - new Date(END).getTimezoneOffset());
  });

  it("counts failed attempts by kind, lockouts and brute-force alarms", () => {
    // The badge and the PIN count toward the lockout like codes: the 3rd wrong code locks the
    // keypad (threshold 5) and the 4th is refused unchecked, without a row of its own.
    expect(s.security).toEqual({ rejected: { code: 3, pin: 1, badge: 1, total: 5 }, lockouts: 1, bruteForceAlarms: 1, forcedOpenAlarms: 0 });
  });

  it("adds refusals to deposits by asked size and suggests a mix of the same 24 compartments", () => {
    // Demand S 8, L 4 + 2 refused = 6 of 14: quotas 13.71 and 10.29 of 24, largest remainder to S.
    expect(s.demand).toEqual({
      refused: 2,
      bySize: [
        { size: "S", deposits: 8, refused: 0, share: 8 / 14, compartments: 12, suggested: 14 },
        { size: "M", deposits: 0, refused: 0, share: 0, compartments: 8, suggested: 0 },
        { size: "L", deposits: 4, refused: 2, share: 6 / 14, compartments: 4, suggested: 10 },
      ],
    });
  });

  it("lists wear for every lock, the jammed one first, then by pulses", () => {
    expect(s.wear).toHaveLength(24);
    expect(s.wear[0]).toEqual({ compartment: "A02", size: "S", state: "fault", pulses: 10, failedOpens: 1, retries: 1, faults: 1 });
    // A04: p3, the take-back and p5 in and out; A03: p2, p4 in and out, p8 in; one parcel each through A11 A12 B11; L4 into B12.
    expect(s.wear.slice(1, 7).map((w) => [w.compartment, w.pulses])).toEqual([
      ["A04", 6],
      ["A03", 5],
      ["A11", 2],
      ["A12", 2],
      ["B11", 2],
      ["B12", 1],
    ]);
    expect(s.wear.slice(7).every((w) => w.pulses === 0 && w.faults === 0)).toBe(true);
    for (const w of s.wear) expect(w.pulses).toBe(b.rt.ledger.compartment(w.compartment)!.pulses);
  });

  it("prints for an 80-column terminal, colour only when asked", () => {
    const plain = formatStats(s, { width: 80, color: false });
    expect(plain).not.toMatch(/\x1b/);
    for (const line of plain.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    expect(plain).toContain("22h 46m"); // S average dwell, 1365.5 minutes
    expect(plain).toContain("3d 8h"); // S p90, 80h
    expect(plain).toContain("2d 12h"); // overall p90, 60h
    expect(plain).toContain("within 24h 50% (6)");
    expect(plain).toMatch(/^ {2}L +4 +2 +43% +4 +10$/m);
    expect(plain).toMatch(/^ {2}A02 +S +fault +10 +1 +1 +1$/m);
    const colored = formatStats(s, { width: 80, color: true });
    expect(colored).toMatch(ANSI);
    expect(colored.replace(ANSI, "")).toBe(plain);
    for (const line of formatStats(s, { width: 50, color: true }).split("\n")) expect(line.replace(ANSI, "").length).toBeLessThanOrEqual(50);
  });
});

describe("stats of a young bank", () => {
  let b: TestBank | undefined;
  afterAll(async () => {
    await b?.close();
    vi.useRealTimers();
  });

  it("measures occupancy only over the time the ledger exists, and copes with no pickups", async () => {
    const start = t("20T08:00");
    vi.useFakeTimers({ now: start });
    b = await testBank();
    const d = await deposit(b, start + H);
    const s = computeStats(b.rt.ledger, { now: start + 3 * H, days: 30 });
    expect(s.window.observedFrom).toBe(start);
    expect(s.utilization.find((u) => u.size === "S")!.occupancy).toBeCloseTo((2 * H - 200) / (12 * 3 * H), 12);
    expect(s.dwell.overall).toEqual({ count: 0, avgMs: null, p90Ms: null });
    expect(s.retrieval).toMatchObject({ parcels: 1, waiting: 1, pickedUpLater: 0 });
    expect(s.retrieval.within.map((w) => w.share)).toEqual([0, 0, 0]);
    expect(s.hours.top).toEqual([localHour(start + H)]);
    expect(s.demand.bySize.map((x) => x.suggested)).toEqual([24, 0, 0]);
    expect(s.wear[0]).toMatchObject({ compartment: d.compartment, pulses: 1 });
    const text = formatStats(s, { width: 80, color: false });
    expect(text).toContain("occupancy measured from then");
    expect(text).toMatch(/^ {2}all +24 +1 +0 +[0-9.]+% +0 +– +–$/m);
  });
});

/** A bare ledger with 24 compartments (12 S, 8 M, 4 L) for histories written straight into its tables. */
function syntheticLedger(now: number): { ledger: Ledger; dispose: () => void } {
  const dir = tempDir();
  const ledger = new Ledger(join(dir, "ledger.db"), { now: () => now, synchronous: "NORMAL" });
  const sizes = ["S", "S", "S", "M", "M", "L"] as const;
  ledger.transact((tx) => {
    for (let i = 0; i < 24; i++) tx.insertCompartment({ id: `C${i}`, position: i, size: sizes[i % 6]!, refrigerated: false, accessible: false, since: 0 });
  });
  return {
    ledger,
    dispose: () => {
      ledger.close();
      removeDir(dir);
    },
  };
}

const insertParcel = (ledger: Ledger) =>
  ledger.db.prepare("INSERT INTO parcels (id, status, size, compartment_id, created_at, deposited_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?)");

describe("suggested size mix", () => {
  it("keeps one compartment for a size in demand and still adds up to the bank", () => {
    const now = t("25T12:00");
    const { ledger, dispose } = syntheticLedger(now);
    try {
      const parcel = insertParcel(ledger);
      const asked = [...Array<string>(100).fill("S"), "M", "L"];
      asked.forEach((size, i) => parcel.run(`L-${i}`, "stored", size, null, now - H, now - H, null));
      // Quotas of 24: S 23.53, M 0.24, L 0.24; the minimum of 1 makes 25, so S gives one back.
      expect(computeStats(ledger, { now, days: 1 }).demand.bySize.map((x) => [x.size, x.share, x.suggested])).toEqual([
        ["S", 100 / 102, 22],
        ["M", 1 / 102, 1],
        ["L", 1 / 102, 1],
      ]);
    } finally {
      dispose();
    }
  });
});

describe("stats on 100,000 events", () => {
  it("stays fast (< 2 s; about 0.1 s on a laptop) and agrees with a plain recount", () => {
    const now = t("25T12:00");
    const { ledger, dispose } = syntheticLedger(now);
    try {
      const parcel = insertParcel(ledger);
      const event = ledger.db.prepare("INSERT INTO events (seq, id, ts, type, compartment, parcel, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, '', '')");
      const flow = ["deposit.started", "door.opened", "door.closed", "parcel.awaiting_recipient", "parcel.deposited", "pickup.started", "door.opened", "door.closed"];
      const from = now - 30 * DAY;
      const dwells: number[] = [];
      let rejected = 0;
      let seq = 0;
      ledger.db.transaction(() => {
        for (let i = 0; i < 11_000; i++) {
          const dep = now - 60 * DAY + i * 7 * MIN;
          const closed = dep + ((i * 7919) % 97) * H + 5 * MIN;
          const c = `C${i % 24}`;
          parcel.run(`L-${i}`, "picked_up", "S", c, dep - MIN, dep, closed);
          for (const type of flow) event.run(++seq, `e${seq}`, dep, type, c, `L-${i}`, "{}");
          event.run(++seq, `e${seq}`, closed, "parcel.picked_up", c, `L-${i}`, "{}");
          if (closed >= from && closed <= now) dwells.push(closed - dep);
          if (i % 11 === 0) {
            event.run(++seq, `e${seq}`, dep, "code.rejected", null, null, JSON.stringify({ kind: "code", terminal: "keypad-1" }));
            if (dep >= from) rejected++;
          }
        }
      })();
      expect(seq).toBe(100_000);

      const t0 = performance.now();
      const s = computeStats(ledger, { now, days: 30 });
      expect(performance.now() - t0).toBeLessThan(2000);

      dwells.sort((a, b) => a - b);
      expect(s.dwell.overall.count).toBe(dwells.length);
      expect(s.dwell.overall.p90Ms).toBe(dwells[Math.ceil(0.9 * dwells.length) - 1]);
      expect(s.dwell.overall.avgMs).toBe(Math.round(dwells.reduce((a, b) => a + b, 0) / dwells.length));
      expect(s.security.rejected.code).toBe(rejected);
      expect(s.hours.byHour.reduce((a, h) => a + h.pickups, 0)).toBe(dwells.length);
    } finally {
      dispose();
    }
  });
});
