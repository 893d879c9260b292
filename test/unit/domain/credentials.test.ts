import { describe, expect, it } from "vitest";
import { generateCode, isTrivialCode, secretHash } from "../../../src/domain/credentials.js";

const KEY = Buffer.alloc(32, 0x11);
const OTHER_KEY = Buffer.alloc(32, 0x22);

/** A `random(max)` that replays fixed digits and records what it was asked for. */
function scripted(digits: number[]): { random: (max: number) => number; maxes: number[] } {
  const maxes: number[] = [];
  let i = 0;
  return {
    maxes,
    random: (max: number) => {
      maxes.push(max);
      const d = digits[i++];
      if (d === undefined) throw new Error("scripted random exhausted");
      return d;
    },
  };
}

describe("isTrivialCode", () => {
  it.each([
    ["000000", "one repeated digit"],
    ["777777", "one repeated digit"],
    ["123456", "run up"],
    ["987654", "run down"],
    ["890123", "run up wrapping 9 → 0"],
    ["210987", "run down wrapping 0 → 9"],
    ["121212", "a pair repeated"],
    ["123123", "a triple repeated"],
    ["73917391", "four digits repeated"],
  ])("%s is trivial (%s)", (code) => {
    expect(isTrivialCode(code)).toBe(true);
  });

  it.each(["305918", "482917", "730264", "914053", "3917", "60193847"])("%s is not trivial", (code) => {
    expect(isTrivialCode(code)).toBe(false);
  });

  it("a run broken by a single digit is no longer trivial", () => {
    expect(isTrivialCode("123457")).toBe(false);
    expect(isTrivialCode("121213")).toBe(false);
  });
});

describe("generateCode", () => {
  it("skips a trivial draw and returns the next good one, asking only for digits 0-9", () => {
    const { random, maxes } = scripted([1, 2, 3, 4, 5, 6, 3, 0, 5, 9, 1, 8]);
    expect(generateCode(6, random)).toBe("305918");
    expect(maxes).toHaveLength(12);
    expect(maxes.every((m) => m === 10)).toBe(true);
  });

  it("keeps drawing through several trivial codes", () => {
    const { random } = scripted([0, 0, 0, 0, 9, 8, 7, 6, 1, 2, 1, 2, 4, 8, 1, 5]);
    expect(generateCode(4, random)).toBe("4815");
  });

  it.each([4, 6, 8, 12])("with the CSPRNG: %i digits, digits only, never trivial", (length) => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const code = generateCode(length);
      expect(code).toMatch(new RegExp(`^[0-9]{${length}}$`));
      expect(isTrivialCode(code)).toBe(false);
      seen.add(code);
    }
    // Random, not a constant: 300 draws of ≥ 4 digits are nearly all distinct.
    expect(seen.size).toBeGreaterThan(250);
  });
});

describe("secretHash", () => {
  it("is deterministic and 32 bytes (HMAC-SHA256)", () => {
    const a = secretHash(KEY, "code", "305918");
    const b = secretHash(KEY, "code", "305918");
    expect(a).toBeInstanceOf(Buffer);
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(true);
  });

  it("differs for different values", () => {
    expect(secretHash(KEY, "code", "305918").equals(secretHash(KEY, "code", "305919"))).toBe(false);
  });

  it("separates domains: the same value as code, pin and badge hashes differently", () => {
    const code = secretHash(KEY, "code", "2468");
    const pin = secretHash(KEY, "pin", "2468");
    const badge = secretHash(KEY, "badge", "2468");
    expect(code.equals(pin)).toBe(false);
    expect(code.equals(badge)).toBe(false);
    expect(pin.equals(badge)).toBe(false);
  });

  it("treats badge ids case-insensitively", () => {
    expect(secretHash(KEY, "badge", "c0ffee01").equals(secretHash(KEY, "badge", "C0FFEE01"))).toBe(true);
    expect(secretHash(KEY, "badge", "c0FfEe01").equals(secretHash(KEY, "badge", "C0FFEE01"))).toBe(true);
  });

  it("depends on the device key", () => {
    expect(secretHash(KEY, "pin", "2468").equals(secretHash(OTHER_KEY, "pin", "2468"))).toBe(false);
  });
});
