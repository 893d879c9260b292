// A pickup whose pulse fired but whose outcome was never recorded (a crash, a full disk between the
// commits) is never undone into a second open: after a restart it is settled from what can be known
// (the item sensor), else held for inspection; the one-time code is never valid twice.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

/** A stored parcel, its code typed, the lock pulsed, and the daemon gone before any door edge was recorded. */
async function interruptedPickup(item?: boolean) {
  let b = await open();
  const d = await keypadDeposit(b, advance);
  await advance(31_000);
  const unlocked: number[] = [];
  b.hw.on("unlock", (ch) => unlocked.push(ch));
  b.hw.keypad.keys(`${d.code}#`);
  expect(unlocked).toEqual([b.rt.bank.layoutOf(d.compartment).lock]); // the coil was energized
  await b.rt.stop(); // before the door's spring was seen: no edge on record
  // Meanwhile the recipient opened the door, took the parcel (or not) and shut it. An item sensor,
  // where fitted, says which.
  const lock = b.rt.bank.layoutOf(d.compartment).lock;
  b = await open(undefined, b.dir, (hw) => {
    if (item !== undefined) hw.items.set(lock, item);
  });
  return { b, d };
}

describe("an unlock whose outcome was not recorded", () => {
  it("without an item sensor: held for inspection, the used code does not open again", async () => {
    const { b, d } = await interruptedPickup();
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "fault" });
    expect(b.rt.ledger.compartment(d.compartment)?.faultReason).toMatch(/outcome unknown/);
    expect(b.rt.ledger.parcel(d.parcel)?.status).toBe("stored");
    const unlocked: number[] = [];
    b.hw.on("unlock", (ch) => unlocked.push(ch));
    b.hw.keypad.keys(`${d.code}#`);
    await advance(2000);
    expect(unlocked).toEqual([]);
    expect(b.screen()).toContain("Code not valid");
    expect(b.events("pickup.aborted").at(-1)?.data).toMatchObject({ reason: "interrupted", outcome: "unknown" });
  });

  it("with an item sensor that sees the compartment empty: the pickup is settled as done", async () => {
    const { b, d } = await interruptedPickup(false);
    expect(b.rt.ledger.parcel(d.parcel)?.status).toBe("picked_up");
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "free", parcelId: null });
    expect(b.events("parcel.picked_up").at(-1)?.data).toMatchObject({ settled: "item sensor" });
  });

  it("with an item sensor that still sees the parcel: rolled back, the code works again", async () => {
    const { b, d } = await interruptedPickup(true);
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("occupied");
    b.hw.keypad.keys(`${d.code}#`);
    await advance(200);
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "unloading", door: "open" });
  });

  it("a pulse still queued when the daemon stops cleanly never fired: rolled back at the stop, the code works after the restart", async () => {
    let b = await open();
    const d = await keypadDeposit(b, advance);
    await advance(31_000);
    const other = b.rt.layout.find((l) => l.id !== d.compartment)!.id;
    void b.rt.technician.open(other, { user: "tech", reason: "test" }).catch(() => undefined); // holds the one-coil budget
    b.hw.keypad.keys(`${d.code}#`); // its pulse waits
    await b.rt.stop();
    b = await open(undefined, b.dir);
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("occupied");
    b.hw.keypad.keys(`${d.code}#`);
    await advance(200);
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "unloading", door: "open" });
  });
});

describe("a full disk under a pulse's outcome", () => {
  it("a skipped pulse whose note cannot be written leaves no unhandled rejection (the daemon would stop)", async () => {
    const b = await open();
    const d = await keypadDeposit(b, advance);
    await advance(31_000);
    const other = b.rt.layout.find((l) => l.id !== d.compartment)!.id;
    void b.rt.technician.open(other, { user: "tech", reason: "test" }).catch(() => undefined); // holds the one-coil budget
    b.hw.keypad.keys(`${d.code}#`); // its pulse waits
    const ticketDone = new Promise<string>((resolve) => {
      process.once("unhandledRejection", (e) => resolve(`unhandled: ${String(e)}`));
      setTimeout(() => resolve("settled"), 3000);
    });
    b.hw.doors.set(b.rt.bank.layoutOf(d.compartment).lock, "open"); // pulled by hand before its turn
    const db = b.rt.ledger.db;
    db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
    for (let i = 0; i < 200 && !b.rt.ledger.storageProblem; i++) {
      try {
        b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: { filler: "x".repeat(2000) } }));
      } catch {
        /* full now */
      }
    }
    // Every page full: even a small note no longer fits.
    for (let i = 0, ok = true; i < 10_000 && ok; i++) {
      try {
        b.rt.ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "B12", data: {} }));
      } catch {
        ok = false;
      }
    }
    await advance(3000); // the queued pulse's turn: skipped, and its note refused by the disk
    expect(await ticketDone).toBe("settled");
    db.pragma("max_page_count = 1073741823");
  });
});
