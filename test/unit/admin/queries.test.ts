import { describe, expect, it } from "vitest";
import { eventMatcher, keypadNumbers } from "../../../src/admin/queries.js";
import type { LedgerEvent } from "../../../src/domain/events.js";
import { suggest } from "../../../src/cli/help.js";

const ev = (type: string) => ({ type }) as LedgerEvent;
const pick = (filter: string | undefined, types: string[]) => types.filter((t) => eventMatcher(filter)(ev(t)));
const TYPES = ["alarm.forced_open", "alarm.cleared", "alarmist.x", "parcel.picked_up", "parcel.picked_up_late", "door.opened"];

describe("eventMatcher (events --type)", () => {
  it("a family without a dot, a prefix with one, an exact type, or everything", () => {
    expect(pick("alarm", TYPES)).toEqual(["alarm.forced_open", "alarm.cleared"]);
    expect(pick("alarm.", TYPES)).toEqual(["alarm.forced_open", "alarm.cleared"]);
    expect(pick("parcel.picked_up", TYPES)).toEqual(["parcel.picked_up"]);
    expect(pick("alarm.cleared", TYPES)).toEqual(["alarm.cleared"]);
    expect(pick(undefined, TYPES)).toEqual(TYPES);
    expect(pick("door.open", TYPES)).toEqual([]);
  });
});

describe("keypadNumbers (compartments without the config)", () => {
  it("column number in bank order, then the row", () => {
    const key = keypadNumbers([
      { id: "B01", position: 12 },
      { id: "A01", position: 0 },
      { id: "A12", position: 11 },
      { id: "C03", position: 30 },
    ]);
    expect(["A01", "A12", "B01", "C03"].map(key)).toEqual(["101", "112", "201", "303"]);
  });
});

describe("suggest (did you mean)", () => {
  const names = ["status", "compartments", "events", "stats", "selftest", "sync", "relay-test"];
  it("the closest name a few edits away, a swap of neighbours being one", () => {
    expect(suggest("compartment", names)).toBe("compartments");
    expect(suggest("evnets", names)).toBe("events");
    expect(suggest("stat", names)).toBe("stats");
    expect(suggest("relay", names)).toBe("relay-test");
    expect(suggest("Status", names)).toBe("status");
    expect(suggest("frobnicate", names)).toBeUndefined();
    expect(suggest("x", names)).toBeUndefined();
  });
});
