// The selftest's door polarity check: most doors reading open while no flow let anyone in is the
// door sense read the wrong way round, not a crowd of open doors.
import { describe, expect, it } from "vitest";
import { doorPolarityCheck } from "../../../src/admin/server.js";
import type { CompartmentState } from "../../../src/domain/compartment.js";
import type { DoorState } from "../../../src/drivers/types.js";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `A${String(i + 1).padStart(2, "0")}`);
const doors = (states: DoorState[]) => states.map((door, i) => ({ compartment: ids(states.length)[i]!, door }));
const all = (n: number, door: DoorState): DoorState[] => new Array<DoorState>(n).fill(door);
const inState = (n: number, state: CompartmentState, except: Record<string, CompartmentState> = {}) =>
  new Map(ids(n).map((id) => [id, except[id] ?? state]));

describe("door polarity check", () => {
  it("fails when every door reads open at idle, naming the polarity settings", () => {
    const r = doorPolarityCheck(doors(all(12, "open")), inState(12, "free"));
    expect(r).toEqual({
      name: "door polarity",
      ok: false,
      detail: expect.stringMatching(/^12 of 12 doors read open at idle: the door\/lock-bit polarity is likely inverted \(lockBitOpen .*activeLow/),
    });
  });

  it("fails when more than half of the idle doors read open, whatever their parcels", () => {
    const states = inState(12, "occupied", { A01: "free", A02: "reserved", A03: "fault" });
    expect(doorPolarityCheck(doors([...all(7, "open"), ...all(5, "closed")]), states)).toMatchObject({ ok: false, detail: expect.stringMatching(/^7 of 12 doors/) });
  });

  it("passes a normal bank: doors shut, a few open, those in a loading / unloading flow not counted", () => {
    expect(doorPolarityCheck(doors(all(12, "closed")), inState(12, "free"))).toEqual({ name: "door polarity", ok: true, detail: "0 of 12 doors read open at idle" });
    expect(doorPolarityCheck(doors([...all(6, "open"), ...all(6, "closed")]), inState(12, "free"))).toMatchObject({ ok: true, detail: "6 of 12 doors read open at idle" });
    // Three couriers loading and one pickup: their doors are meant to be open.
    const flows = inState(6, "free", { A01: "loading", A02: "loading", A03: "loading", A04: "unloading" });
    expect(doorPolarityCheck(doors([...all(4, "open"), "open", "closed"]), flows)).toMatchObject({ ok: true, detail: "1 of 2 doors read open at idle" });
  });

  it("needs at least two open doors, and leaves doors without a reading to the sensors check", () => {
    expect(doorPolarityCheck(doors(["open"]), inState(1, "free"))).toMatchObject({ ok: true, detail: "1 of 1 doors read open at idle" });
    expect(doorPolarityCheck(doors(["open", "unknown", "unknown"]), inState(3, "free"))).toMatchObject({ ok: true });
    expect(doorPolarityCheck(doors(["open", "open", "unknown", "unknown", "unknown"]), inState(5, "free"))).toMatchObject({ ok: false, detail: expect.stringMatching(/^2 of 2 doors/) });
  });
});
