import { describe, expect, it } from "vitest";
import { assignCompartment, type Candidate } from "../../../src/domain/assignment.js";

type C = Candidate;

/** A free, enabled, ordinary compartment unless told otherwise. */
const c = (id: string, size: C["size"], extra: Partial<C> = {}): C => ({
  id,
  size,
  state: "free",
  enabled: true,
  refrigerated: false,
  accessible: false,
  ...extra,
});

const ids = (found: C | undefined) => found?.id;

describe("assignCompartment", () => {
  it("takes a compartment of exactly the asked size over larger ones, wherever it is in the bank", () => {
    const bank = [c("A01", "L"), c("A02", "M"), c("A03", "XL"), c("A04", "S")];
    expect(ids(assignCompartment(bank, { size: "S", allowLarger: true }))).toBe("A04");
    expect(ids(assignCompartment(bank, { size: "M", allowLarger: true }))).toBe("A02");
    expect(ids(assignCompartment(bank, { size: "XL", allowLarger: true }))).toBe("A03");
  });

  it("never gives a compartment smaller than the parcel", () => {
    const bank = [c("A01", "S"), c("A02", "M")];
    expect(assignCompartment(bank, { size: "L", allowLarger: true })).toBeUndefined();
  });

  it("returns the very object from the list (callers keep their own fields)", () => {
    const bank = [{ ...c("A01", "S"), position: 7 }];
    const got = assignCompartment(bank, { size: "S", allowLarger: false });
    expect(got).toBe(bank[0]);
    expect(got?.position).toBe(7);
  });

  it.each(["reserved", "loading", "occupied", "unloading", "fault"] as const)("skips a %s compartment", (state) => {
    const bank = [c("A01", "S", { state }), c("A02", "S")];
    expect(ids(assignCompartment(bank, { size: "S", allowLarger: false }))).toBe("A02");
  });

  it("skips a disabled compartment", () => {
    const bank = [c("A01", "S", { enabled: false }), c("A02", "S")];
    expect(ids(assignCompartment(bank, { size: "S", allowLarger: false }))).toBe("A02");
    expect(assignCompartment([bank[0]!], { size: "S", allowLarger: true })).toBeUndefined();
  });

  describe("larger sizes", () => {
    const bank = [c("A01", "S", { state: "occupied" }), c("A02", "XL"), c("A03", "L"), c("A04", "M")];

    it("with allowLarger, the smallest larger size that is free", () => {
      expect(ids(assignCompartment(bank, { size: "S", allowLarger: true }))).toBe("A04");
      expect(ids(assignCompartment(bank.slice(0, 3), { size: "S", allowLarger: true }))).toBe("A03");
      expect(ids(assignCompartment(bank.slice(0, 2), { size: "S", allowLarger: true }))).toBe("A02");
    });

    it("without allowLarger, nothing when the asked size is full", () => {
      expect(assignCompartment(bank, { size: "S", allowLarger: false })).toBeUndefined();
    });

    it("without allowLarger, still the asked size when one is free", () => {
      expect(ids(assignCompartment([...bank, c("B01", "S")], { size: "S", allowLarger: false }))).toBe("B01");
    });
  });

  describe("refrigerated and accessible compartments", () => {
    const bank = [
      c("A01", "S", { refrigerated: true }),
      c("A02", "S", { accessible: true }),
      c("A03", "S", { refrigerated: true, accessible: true }),
      c("A04", "M"),
      c("A05", "M", { refrigerated: true }),
      c("A06", "L", { accessible: true }),
    ];

    it("are kept back from an ordinary parcel, which gets a larger ordinary one instead", () => {
      expect(ids(assignCompartment(bank, { size: "S", allowLarger: true }))).toBe("A04");
      expect(assignCompartment(bank, { size: "S", allowLarger: false })).toBeUndefined();
    });

    it("a parcel that asks for cold gets only a refrigerated (non-accessible) one", () => {
      expect(ids(assignCompartment(bank, { size: "S", refrigerated: true, allowLarger: false }))).toBe("A01");
      expect(ids(assignCompartment(bank, { size: "M", refrigerated: true, allowLarger: false }))).toBe("A05");
      // No refrigerated L: nothing, even though an ordinary and an accessible L-or-larger exists.
      expect(assignCompartment(bank, { size: "L", refrigerated: true, allowLarger: true })).toBeUndefined();
    });

    it("a parcel that asks for an accessible door gets only an accessible (non-refrigerated) one", () => {
      expect(ids(assignCompartment(bank, { size: "S", accessible: true, allowLarger: false }))).toBe("A02");
      expect(ids(assignCompartment(bank, { size: "M", accessible: true, allowLarger: true }))).toBe("A06");
      expect(assignCompartment(bank, { size: "M", accessible: true, allowLarger: false })).toBeUndefined();
    });

    it("a parcel asking for both gets only a compartment that is both", () => {
      expect(ids(assignCompartment(bank, { size: "S", refrigerated: true, accessible: true, allowLarger: false }))).toBe("A03");
      const withoutBoth = bank.filter((x) => x.id !== "A03");
      expect(assignCompartment(withoutBoth, { size: "S", refrigerated: true, accessible: true, allowLarger: true })).toBeUndefined();
    });

    it("an explicit false is the same as not asking", () => {
      expect(ids(assignCompartment(bank, { size: "S", refrigerated: false, accessible: false, allowLarger: true }))).toBe("A04");
    });
  });

  it("breaks ties by bank order, deterministically", () => {
    const bank = [c("A01", "L"), c("A02", "M"), c("A03", "M"), c("B01", "M"), c("B02", "L")];
    for (let i = 0; i < 3; i++) {
      expect(ids(assignCompartment(bank, { size: "M", allowLarger: false }))).toBe("A02");
      expect(ids(assignCompartment(bank, { size: "S", allowLarger: true }))).toBe("A02");
    }
    expect(ids(assignCompartment([...bank].reverse(), { size: "M", allowLarger: false }))).toBe("B01");
    // Among larger sizes too: the first L in bank order.
    expect(ids(assignCompartment([c("A01", "L"), c("A02", "L")], { size: "M", allowLarger: true }))).toBe("A01");
  });

  it("returns undefined for an empty bank or a fully occupied one", () => {
    expect(assignCompartment([], { size: "S", allowLarger: true })).toBeUndefined();
    const full = [c("A01", "S", { state: "occupied" }), c("A02", "XL", { state: "reserved" }), c("A03", "L", { enabled: false })];
    expect(assignCompartment(full, { size: "S", allowLarger: true })).toBeUndefined();
  });
});
