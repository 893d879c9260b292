import { describe, expect, it } from "vitest";
import {
  assertTransition,
  canTransition,
  COMPARTMENT_STATES,
  isOpening,
  type CompartmentState,
} from "../../../src/domain/compartment.js";
import { ErrorCode, isLockerError, LockerError } from "../../../src/errors.js";

// The moves of the diagram at the top of compartment.ts, written out independently.
const ALLOWED: ReadonlyArray<[CompartmentState, CompartmentState]> = [
  ["free", "reserved"], // reserve
  ["free", "loading"], // open for a walk-up deposit
  ["reserved", "free"], // cancel
  ["reserved", "loading"], // open for deposit
  ["loading", "occupied"], // door closed on a parcel
  ["loading", "free"], // deposit aborted
  ["loading", "reserved"], // deposit aborted, reservation kept
  ["occupied", "unloading"], // open for pickup / removal
  ["unloading", "free"], // door closed, parcel taken
  ["unloading", "occupied"], // pickup aborted
  ["free", "fault"],
  ["reserved", "fault"],
  ["loading", "fault"],
  ["occupied", "fault"],
  ["unloading", "fault"],
  ["fault", "free"], // technician clears, empty
  ["fault", "occupied"], // technician clears, parcel inside
];
const allowed = new Set(ALLOWED.map(([a, b]) => `${a}>${b}`));
const ALL_PAIRS = COMPARTMENT_STATES.flatMap((from) => COMPARTMENT_STATES.map((to) => [from, to] as const));
const FORBIDDEN = ALL_PAIRS.filter(([a, b]) => !allowed.has(`${a}>${b}`));

describe("compartment state machine", () => {
  it("knows exactly the six states", () => {
    expect([...COMPARTMENT_STATES].sort()).toEqual(["fault", "free", "loading", "occupied", "reserved", "unloading"]);
  });

  it.each(ALLOWED)("allows %s → %s", (from, to) => {
    expect(canTransition(from, to)).toBe(true);
    expect(() => assertTransition("A01", from, to)).not.toThrow();
  });

  it.each(FORBIDDEN)("forbids %s → %s", (from, to) => {
    expect(canTransition(from, to)).toBe(false);
    expect(() => assertTransition("A01", from, to)).toThrow(LockerError);
  });

  it("forbids the dangerous shortcuts in particular", () => {
    expect(FORBIDDEN).toEqual(
      expect.arrayContaining([
        ["free", "occupied"], // a parcel appearing without a deposit
        ["occupied", "free"], // a parcel vanishing without a pickup
        ["reserved", "occupied"],
        ["occupied", "loading"], // a second parcel into an occupied compartment
        ["fault", "loading"],
        ["fault", "unloading"],
      ]),
    );
    // No state may "move" to itself.
    for (const s of COMPARTMENT_STATES) expect(canTransition(s, s)).toBe(false);
  });

  it("an illegal move throws LockerError(illegal_transition) naming the compartment and the move", () => {
    let caught: unknown;
    try {
      assertTransition("B07", "occupied", "free");
    } catch (e) {
      caught = e;
    }
    expect(isLockerError(caught, ErrorCode.IllegalTransition)).toBe(true);
    const err = caught as LockerError;
    expect(err.code).toBe("illegal_transition");
    expect(err.message).toContain("B07");
    expect(err.message).toContain("occupied");
    expect(err.message).toContain("free");
    expect(err.context).toEqual({ compartment: "B07", from: "occupied", to: "free" });
  });

  it("isOpening is true only while a door is being opened for someone", () => {
    const opening = COMPARTMENT_STATES.filter(isOpening);
    expect(opening.sort()).toEqual(["loading", "unloading"]);
  });
});
