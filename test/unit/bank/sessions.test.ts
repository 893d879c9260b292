// Keypad sessions: a session belongs to the person whose credential started it and ends when their
// business ends. The next person's keys are never applied to it (issue: "Nobody acts in somebody
// else's name"). In-process bank on the simulated hardware, fake timers.
import { describe, expect, it } from "vitest";
import type { SessionChange } from "../../../src/bank/terminal.js";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

const lockOf = (b: TestBank, id: string) => b.rt.bank.layoutOf(id).lock;

/** A parcel for Ada (recipient 1001) whose code is `code`, set the way the server sets one. */
async function parcelWithCode(b: TestBank, code: string): Promise<{ compartment: string; parcel: string }> {
  const d = await keypadDeposit(b, advance);
  b.rt.ledger.transact((tx) => b.rt.remote.issueCode(tx, d.parcel, code));
  await advance(31_000); // the courier's session is long gone
  return d;
}

/** Events written in someone's name at the keypad since `from`. */
const actions = (b: TestBank, from: number) =>
  b.rt.ledger
    .eventsFrom(from + 1, 10_000)
    .filter((e) => ["deposit.started", "parcel.dropped_off", "parcel.deposited", "admin.open", "compartment.disabled"].includes(e.type) || (e.type === "pickup.started" && e.data.via !== "code" && e.data.via !== "badge"));

describe("keypad sessions", () => {
  it("a badge with nothing to pick up offers a drop-off; the next person's code is a pickup, not a menu choice", async () => {
    const b = await open();
    const ada = await parcelWithCode(b, "452198");
    const head = b.rt.ledger.headSeq;
    b.hw.keypad.badge("04A1B2C4"); // Alan: nothing for him
    expect(b.screen()).toContain("No parcels for you");
    expect(b.screen()).toContain("1 = drop one off");
    await advance(5000); // Alan walks away without a key; the message has gone
    expect(b.screen()).toContain("1 = drop one off"); // the offer waits for his choice, not a default
    b.hw.keypad.keys("452198#"); // Ada, right after him
    expect(actions(b, head)).toEqual([]);
    const started = b.rt.ledger.eventsFrom(head + 1, 100).filter((e) => e.type === "pickup.started");
    expect(started.map((e) => [e.compartment, e.actor, e.data.via])).toEqual([[ada.compartment, "p-1001", "code"]]);
    expect(b.screen()).toContain(`Door ${ada.compartment} open`);
  });

  it("a code that starts with the offer's own key is still a pickup", async () => {
    const b = await open();
    const ada = await parcelWithCode(b, "128574");
    const head = b.rt.ledger.headSeq;
    b.hw.keypad.badge("04A1B2C4");
    b.hw.keypad.keys("128574#");
    expect(actions(b, head)).toEqual([]);
    expect(b.rt.ledger.compartment(ada.compartment)?.state).toBe("unloading");
  });

  it("the drop-off after 'No parcels' is an explicit choice: 1, then the size", async () => {
    const b = await open();
    b.hw.keypad.badge("04A1B2C4");
    b.hw.keypad.keys("1");
    expect(b.screen()).toContain("Drop off: size?");
    b.hw.keypad.keys("2#");
    const started = b.events("deposit.started");
    expect(started.map((e) => [e.actor, e.data.outbound])).toEqual([["p-1002", true]]);
    await advance(200);
    b.hw.doors.set(lockOf(b, started[0]!.compartment!), "closed");
    expect(b.events("parcel.dropped_off").map((e) => e.actor)).toEqual(["p-1002"]);
    expect(b.rt.terminal.state).toBe("idle"); // his business is done
  });

  it("'* = done' at the offer ends the session", async () => {
    const b = await open();
    b.hw.keypad.badge("04A1B2C4");
    b.hw.keypad.keys("*");
    expect(b.rt.terminal.state).toBe("idle");
    expect(b.rt.terminal.sessionPerson).toBeNull();
    b.hw.keypad.keys("2#");
    expect(b.events("deposit.started")).toEqual([]);
  });

  it("after 'Stored in', the courier's session is over: the next person's code picks up and deposits nothing", async () => {
    const b = await open();
    const ada = await parcelWithCode(b, "281734");
    // The courier deposits one more parcel and walks away without pressing *.
    b.hw.keypad.keys("*2468#1");
    const loading = b.rt.ledger.compartments().find((c) => c.state === "loading")!;
    await advance(200);
    b.hw.doors.set(lockOf(b, loading.id), "closed");
    b.hw.keypad.keys("1002#");
    expect(b.screen()).toContain(`Stored in ${loading.id}`);
    expect(b.screen()).toContain("Another parcel?");
    const head = b.rt.ledger.headSeq;
    b.hw.keypad.keys("281734#"); // the next person, at once
    expect(actions(b, head)).toEqual([]);
    expect(b.rt.ledger.eventsFrom(head + 1, 100).filter((e) => e.type === "pickup.started").map((e) => [e.compartment, e.actor])).toEqual([
      [ada.compartment, "p-1001"],
    ]);
  });

  it("a courier deposits another parcel with one key, or by presenting the PIN again", async () => {
    const b = await open();
    await keypadDeposit(b, advance, { keepSession: true });
    expect(b.screen()).toContain("Another parcel?");
    b.hw.keypad.keys("1");
    expect(b.screen()).toContain("Parcel size?");
    b.hw.keypad.keys("1"); // S: chosen, not yet opened
    expect(b.screen()).toContain("Size S");
    expect(b.events("deposit.started")).toHaveLength(1);
    b.hw.keypad.keys("#");
    expect(b.events("deposit.started").map((e) => e.actor)).toEqual(["courier-1", "courier-1"]);
    const loading = b.rt.ledger.compartments().find((c) => c.state === "loading")!;
    await advance(200);
    b.hw.doors.set(lockOf(b, loading.id), "closed");
    b.hw.keypad.keys("1003#");
    expect(b.screen()).toContain("Another parcel?");
    b.hw.keypad.keys("*"); // done
    expect(b.rt.terminal.sessionPerson).toBeNull();
    b.hw.keypad.keys("*2468#"); // changed their mind: the PIN again
    expect(b.screen()).toContain("Parcel size?");
    expect(b.rt.terminal.sessionPerson).toBe("courier-1");
  });

  it("the 'Another parcel?' offer times out quickly, and so does an untouched menu", async () => {
    const b = await open();
    await keypadDeposit(b, advance, { keepSession: true });
    await advance(b.config.terminal.offerMs + 10);
    expect(b.rt.terminal.state).toBe("idle");
    b.hw.keypad.keys("*2468#");
    expect(b.rt.terminal.state).toBe("size");
    await advance(b.config.terminal.idleTimeoutMs + 10);
    expect(b.rt.terminal.state).toBe("idle");
  });

  it("staff: after a removal or an override the menu is not left open for the next person", async () => {
    const b = await open();
    const ada = await parcelWithCode(b, "391827");
    const other = await keypadDeposit(b, advance, { recipient: "1002" });
    await advance(31_000);
    b.hw.keypad.keys(`*8642#2${b.rt.bank.layoutOf(other.compartment).keypadNumber}#`);
    await advance(200);
    b.hw.doors.set(lockOf(b, other.compartment), "closed");
    b.hw.keypad.keys("#"); // no shelf: done
    expect(b.rt.terminal.state).toBe("idle");
    const head = b.rt.ledger.headSeq;
    b.hw.keypad.keys("391827#"); // the next person
    expect(actions(b, head)).toEqual([]);
    expect(b.rt.ledger.compartment(ada.compartment)?.state).toBe("unloading");
  });

  it("reports each session's start and end with the person, and keys never reach an ended session", async () => {
    const b = await open();
    const changes: SessionChange[] = [];
    b.rt.terminal.on("session", (s) => changes.push(s));
    b.hw.keypad.badge("04A1B2C4");
    b.hw.keypad.keys("*");
    b.hw.keypad.keys("*2468#");
    await advance(b.config.terminal.idleTimeoutMs + 10);
    expect(changes.map((c) => [c.kind, c.person, c.kind === "ended" ? c.reason : c.via])).toEqual([
      ["started", "p-1002", "badge"],
      ["ended", "p-1002", "done"],
      ["started", "courier-1", "pin"],
      ["ended", "courier-1", "timeout"],
    ]);
    expect(changes[0]!.session).toBe(changes[1]!.session);
    expect(changes[2]!.session).not.toBe(changes[0]!.session);
  });
});
