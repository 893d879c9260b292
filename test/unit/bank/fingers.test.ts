// Fingerprints on the simulated bank (bank/fingers.ts, the simulator's module): enrolment by a
// technician with each step on the display, a finger as a credential like a badge, an unknown
// finger refused like an unknown badge (lockout included), a leaver's fingers withdrawn in the
// transaction that disables them and deleted from the module, retried while it does not answer.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";

const { open: testBank, advance } = fakeClockBanks();
const tech = { actor: "tech", data: { via: "lockerctl" } };

/** Enrol `finger` for `person`, touching the simulated sensor whenever the module asks. */
async function enroll(b: TestBank, person: string, finger: string, touches: string[] = [finger, finger]) {
  const screens: string[] = [];
  const steps: string[] = [];
  const queue = [...touches];
  const done = b.rt.fingers.enroll(person, tech, (s) => {
    steps.push(s.step);
    screens.push(b.screen());
    if (s.step === "place") setTimeout(() => b.hw.finger.place(queue.shift() ?? finger), 100);
  });
  const settled = done.then((r) => ({ r }), (e: unknown) => ({ e }));
  await advance(1000);
  const out = await settled;
  if ("e" in out) throw out.e;
  return { result: out.r, screens, steps };
}

describe("fingerprints", () => {
  it("a technician enrols a finger (two touches, each step on the display); it opens the person's parcels like a badge", async () => {
    const b = (await testBank());
    const d = await keypadDeposit(b, advance); // for Ada (p-1001)
    const { result, steps } = await enroll(b, "p-1001", "ada-index");
    expect(steps).toEqual(["place", "lift", "place", "stored"]);
    expect(result).toMatchObject({ person: "p-1001", status: "live", reader: "fingerprint sim" });
    expect(b.events("person.finger_enrolled").at(-1)!.data).toMatchObject({ person: "p-1001", reader: "fingerprint sim", slot: result.slot });
    expect(b.hw.finger.slots.get(result.slot)).toBe("ada-index");
    expect(b.rt.people.list().find((p) => p.id === "p-1001")!.fingers).toBe(1);

    const unlocked: number[] = [];
    b.hw.on("unlock", (ch) => unlocked.push(ch));
    b.hw.finger.place("ada-index");
    await advance(300);
    expect(unlocked).toEqual([b.rt.bank.layoutOf(d.compartment).lock]);
    expect(b.events("pickup.started").at(-1)).toMatchObject({ parcel: d.parcel, actor: "p-1001", data: { via: "finger" } });
    b.hw.doors.set(b.rt.bank.layoutOf(d.compartment).lock, "closed");
    expect(b.rt.ledger.parcel(d.parcel)!.status).toBe("picked_up");
  });

  it("shows the enrolment on the bank's display and ignores the keypad meanwhile", async () => {
    const b = (await testBank());
    const screens: string[] = [];
    const done = b.rt.fingers.enroll("courier-1", tech, () => screens.push(b.screen()));
    // The admin server puts each step on the display (runtime wiring): as it does.
    b.rt.terminal.enrollment(["Enrolling Casey", "Place finger (1/2)"]);
    b.hw.keypad.keys("*2468#");
    expect(b.screen()).toContain("Place finger (1/2)");
    b.hw.finger.place("casey");
    await advance(10);
    b.hw.finger.place("casey");
    await done;
    b.rt.terminal.enrollment(null, { lines: ["Finger enrolled", "Casey"], ok: true });
    expect(b.screen()).toContain("Finger enrolled");
    // A courier's finger opens the courier's menu.
    await advance(10_000);
    b.hw.finger.place("casey");
    expect(b.screen()).toContain("Parcel size?");
  });

  it("an enrolment the technician abandons (lockerctl interrupted) ends at once and enrols nothing", async () => {
    const b = await testBank();
    const cancel = new AbortController();
    const done = b.rt.fingers.enroll("p-1001", tech, () => undefined, { signal: cancel.signal });
    const settled = done.then(() => "enrolled", (e: { context?: { reason?: string } }) => e.context?.reason);
    await advance(100);
    cancel.abort();
    expect(await settled).toBe("cancelled");
    expect(b.hw.finger.slots.size).toBe(0);
    expect(b.events("person.finger_enrolled")).toHaveLength(0);
    // Not busy: the next enrolment starts.
    const next = b.rt.fingers.enroll("p-1001", tech, (s) => {
      if (s.step === "place") queueMicrotask(() => b.hw.finger.place("ada"));
    });
    await expect(next).resolves.toMatchObject({ person: "p-1001" });
  });

  it("two touches of different fingers enrol nothing", async () => {
    const b = (await testBank());
    await expect(enroll(b, "p-1001", "a", ["a", "b"])).rejects.toMatchObject({ context: { reason: "combine_failed" } });
    expect(b.hw.finger.slots.size).toBe(0);
    expect(b.events("person.finger_enrolled")).toHaveLength(0);
  });

  it("an unknown finger is refused like an unknown badge, and counts toward the lockout", async () => {
    const b = (await testBank((cfg) => (cfg.lockout = { ...cfg.lockout, threshold: 3 })));
    b.hw.finger.place("stranger");
    expect(b.screen()).toContain("Finger not known");
    expect(b.events("code.rejected").at(-1)!.data).toMatchObject({ kind: "finger", reason: "no_match" });
    b.hw.finger.place("stranger");
    b.hw.finger.place("stranger");
    expect(b.events("terminal.locked_out")).toHaveLength(1);
    expect(b.hw.locks.pulses).toBe(0);
  });

  it("a leaver disabled by lockerctl: fingers withdrawn in the same transaction, deleted from the module, open nothing", async () => {
    const b = (await testBank((cfg) => (cfg.people = { owner: "lockerctl" })));
    const { result } = await enroll(b, "courier-1", "casey");
    b.rt.people.setActive("courier-1", false, tech, "left");
    const disabled = b.events("person.disabled").at(-1)!;
    const withdrawn = b.events("person.finger_removed").at(-1)!;
    expect(withdrawn.seq).toBe(disabled.seq + 1); // one transaction
    expect(withdrawn.data).toMatchObject({ person: "courier-1", slot: result.slot, reason: "person disabled" });
    await advance(100);
    expect(b.hw.finger.slots.has(result.slot)).toBe(false);
    expect(b.events("person.finger_deleted").at(-1)!.data).toMatchObject({ person: "courier-1", slot: result.slot });
    expect(b.rt.fingers.slotsOf("courier-1")).toEqual([]);
    b.hw.finger.place("casey");
    expect(b.screen()).toContain("Finger not known");
  });

  it("a module that does not answer keeps the withdrawn slot on record, opening nothing, and deletes it once it answers", async () => {
    const b = (await testBank());
    const { result } = await enroll(b, "p-1002", "bo");
    const realDelete = b.hw.finger.deleteSlots.bind(b.hw.finger);
    let down = true;
    b.hw.finger.deleteSlots = async (slots) => {
      if (down) throw new Error("module not answering (simulated)");
      return realDelete(slots);
    };
    const removed = await b.rt.fingers.remove("p-1002", tech);
    expect(removed).toEqual({ withdrawn: 1, deleted: 0 });
    expect(b.rt.fingers.slotsOf("p-1002")).toEqual([expect.objectContaining({ slot: result.slot, status: "deleting" })]);
    b.hw.finger.place("bo"); // still on the module, withdrawn in the ledger: opens nothing
    expect(b.screen()).toContain("Finger not known");
    expect(b.events("code.rejected").at(-1)!.data).toMatchObject({ kind: "finger", reason: "finger withdrawn" });
    down = false;
    await advance(31_000); // the retry
    expect(b.rt.fingers.slotsOf("p-1002")).toEqual([]);
    expect(b.hw.finger.slots.size).toBe(0);
  });
});
