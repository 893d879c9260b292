// Retention with or without a server: the oldest events go as a prefix of the chain; the history of
// a parcel still in the bank, the unacknowledged backlog and the newest event always stay; the chain
// verifies after. Real SQLite file, controlled clock.
import { describe, expect, it, vi } from "vitest";
import { PRUNE_BATCH, Retention, type LedgerCheck } from "../../../src/bank/storage.js";
import { silentLogger } from "../../../src/log.js";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";

const DAY = 86_400_000;
const { open, advance } = fakeClockBanks("2026-01-01T09:00:00Z");


describe("retention", () => {
  it("with sync off, prunes events past retention but keeps the custody of parcels still in the bank", async () => {
    const b = await open(); // sync off, retentionDays 30
    const gone = await keypadDeposit(b, advance); // picked up below: its history may go
    const stays = await keypadDeposit(b, advance); // still in the bank after a year
    b.hw.keypad.keys(`${gone.code}#`);
    await advance(200);
    b.hw.doors.set(b.rt.bank.layoutOf(gone.compartment).lock, "closed");
    expect(b.rt.ledger.parcel(gone.parcel)?.status).toBe("picked_up");
    vi.setSystemTime(Date.now() + 400 * DAY);
    b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} })); // a year later
    const before = b.rt.ledger.counts().events;
    const n = new Retention({ ledger: b.rt.ledger, days: 30, published: false, now: Date.now, log: silentLogger() }).prune()!;
    expect(n.events).toBeGreaterThan(0);
    expect(b.rt.ledger.counts().events).toBe(before - n.events);
    // Everything about the parcel still in the bank is still there, from its deposit on.
    const history = b.rt.ledger.eventsOfParcel(stays.parcel).map((e) => e.type);
    expect(history[0]).toBe("deposit.started");
    expect(history).toContain("parcel.deposited");
    expect(b.rt.ledger.verify()).toMatchObject({ ok: true });
  });

  it("when nothing is under way, keeps at least the newest event (the chain's anchor and the next seq)", async () => {
    const b = await open();
    const head = b.rt.ledger.headSeq;
    vi.setSystemTime(Date.now() + 400 * DAY);
    new Retention({ ledger: b.rt.ledger, days: 30, published: false, now: Date.now, log: silentLogger() }).prune();
    expect(b.rt.ledger.counts().events).toBe(1);
    expect(b.rt.ledger.eventsFrom(1, 10).map((e) => e.seq)).toEqual([head]);
    b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} }));
    expect(b.rt.ledger.headSeq).toBe(head + 1);
    expect(b.rt.ledger.verify()).toMatchObject({ ok: true, checked: 2 });
  });

  it("with sync on, nothing the broker has not acknowledged goes", async () => {
    const b = await open();
    vi.setSystemTime(Date.now() + 400 * DAY);
    const before = b.rt.ledger.counts().events;
    const n = new Retention({ ledger: b.rt.ledger, days: 30, published: true, now: Date.now, log: silentLogger() }).prune()!;
    expect(n.events).toBe(0); // none acknowledged
    expect(b.rt.ledger.counts().events).toBe(before);
  });

  it("a first prune of a long history goes in batches, the event loop running between them, each reading its own range of the log", async () => {
    const b = await open();
    b.rt.ledger.transact((tx) => {
      for (let i = 0; i < 2 * PRUNE_BATCH + 1234; i++) tx.event({ type: "door.closed", compartment: "B12", data: {} });
    });
    vi.setSystemTime(Date.now() + 400 * DAY);
    b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} })); // the newest
    const before = b.rt.ledger.counts().events;
    const prune = vi.spyOn(b.rt.ledger, "prune");
    const retention = new Retention({ ledger: b.rt.ledger, days: 30, published: false, now: Date.now, log: silentLogger() });
    const pass = retention.pass();
    // The first batch went at once, and the pass waits for the loop: a keypress would be answered now.
    expect(prune).toHaveBeenCalledTimes(1);
    expect(b.rt.ledger.counts().events).toBe(before - PRUNE_BATCH);
    let ranBetween = false;
    setImmediate(() => (ranBetween = true));
    await advance(10);
    expect(ranBetween).toBe(true);
    await advance(1000);
    expect(await pass).toEqual({ events: before - 1, commands: 0 });
    expect(prune).toHaveBeenCalledTimes(3);
    expect(b.rt.ledger.counts().events).toBe(1);
    expect(b.rt.ledger.verify()).toMatchObject({ ok: true, checked: 1 });
  });

  it("a stop during a pass ends it before its next batch: nothing is asked of a ledger being closed", async () => {
    const b = await open();
    b.rt.ledger.transact((tx) => {
      for (let i = 0; i < 3 * PRUNE_BATCH; i++) tx.event({ type: "door.closed", compartment: "B12", data: {} });
    });
    vi.setSystemTime(Date.now() + 400 * DAY);
    b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} }));
    const prune = vi.spyOn(b.rt.ledger, "prune");
    const retention = new Retention({ ledger: b.rt.ledger, days: 30, published: false, now: Date.now, log: silentLogger() });
    const pass = retention.pass();
    expect(prune).toHaveBeenCalledTimes(1); // the first batch; the pass now waits for the loop
    retention.stop();
    await advance(1000);
    expect(await pass).toEqual({ events: PRUNE_BATCH, commands: 0 });
    expect(prune).toHaveBeenCalledTimes(1);
  });

  it("the bank's retention touches nothing once the background check found the ledger damaged", async () => {
    const b = await open(); // sync off, retentionDays 30
    vi.setSystemTime(Date.now() + 400 * DAY);
    b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} }));
    const rt = b.rt as unknown as { retention: Retention; ledgerCheck: LedgerCheck };
    rt.ledgerCheck.damaged = { since: Date.now(), detail: "Tree 5 page 7: btreeInitPage() returns error code 11" };
    const before = b.rt.ledger.counts().events;
    expect(rt.retention.prune()).toBeUndefined();
    expect(b.rt.ledger.counts().events).toBe(before);
    rt.ledgerCheck.damaged = null; // the same bank, sound: its old events go
    expect(rt.retention.prune()!.events).toBeGreaterThan(0);
  });
});
