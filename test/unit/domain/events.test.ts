import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  eventHash,
  GENESIS_HASH,
  verifyChain,
  type EventType,
  type LedgerEvent,
} from "../../../src/domain/events.js";

/** A well-formed chain of n events built with eventHash, starting after `prev` at `firstSeq`. */
function chain(n: number, prev = GENESIS_HASH, firstSeq = 1): LedgerEvent[] {
  const out: LedgerEvent[] = [];
  for (let i = 0; i < n; i++) {
    const base = {
      seq: firstSeq + i,
      id: `00000000-0000-4000-8000-${String(firstSeq + i).padStart(12, "0")}`,
      ts: 1_735_732_800_000 + i * 1000,
      type: (i % 2 ? "door.opened" : "door.closed") as EventType,
      compartment: "A01",
      parcel: i % 3 ? `P-${i}` : null,
      actor: null,
      data: { n: i, nested: { list: [i, "x"], flag: i % 2 === 0 } },
      prevHash: prev,
    };
    const ev = { ...base, hash: eventHash(base) };
    out.push(ev);
    prev = ev.hash;
  }
  return out;
}

/** Recompute an event's own hash after an edit (a careful forger). */
const rehash = (e: LedgerEvent): LedgerEvent => {
  const { hash: _old, ...base } = e;
  return { ...base, hash: eventHash(base) };
};

describe("canonicalJson", () => {
  it("does not depend on key order", () => {
    expect(canonicalJson({ b: 1, a: 2, c: 3 })).toBe(canonicalJson({ c: 3, a: 2, b: 1 }));
    expect(canonicalJson({ b: 1, a: 2 })).toBe('{"a":2,"b":1}');
  });

  it("sorts keys at every depth, including objects inside arrays", () => {
    const a = { z: { y: 1, x: [{ q: 1, p: 2 }, 3] }, a: null };
    const b = { a: null, z: { x: [{ p: 2, q: 1 }, 3], y: 1 } };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":null,"z":{"x":[{"p":2,"q":1},3],"y":1}}');
  });

  it("keeps array order (order in an array is meaning)", () => {
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });

  it("is valid JSON that parses back to the same value", () => {
    const v = { s: 'quote " and \\ and ünï', n: -1.5, t: true, f: false, nil: null, arr: [[], {}, "a"] };
    const text = canonicalJson(v);
    expect(JSON.parse(text)).toEqual(v);
  });

  it("drops undefined properties, as JSON.stringify does", () => {
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it("distinguishes values that only look alike", () => {
    expect(canonicalJson({ a: "1" })).not.toBe(canonicalJson({ a: 1 }));
    expect(canonicalJson({ a: null })).not.toBe(canonicalJson({}));
  });

  // canonicalJson follows JSON's rules for values JSON does not represent directly.
  it("agrees with its own JSON round-trip for a Date and an undefined array element", () => {
    for (const v of [{ at: new Date(0) }, { xs: [1, undefined] }]) {
      expect(canonicalJson(v)).toBe(canonicalJson(JSON.parse(JSON.stringify(v))));
    }
  });
});

describe("eventHash", () => {
  const [ev] = chain(1);
  const { hash: _h, ...base } = ev!;

  it("is sha256(prevHash + canonical event without its hash), hex", () => {
    const expected = createHash("sha256").update(base.prevHash).update(canonicalJson(base)).digest("hex");
    expect(eventHash(base)).toBe(expected);
    expect(eventHash(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is the same for the same event whatever the key order of data", () => {
    const reordered = { ...base, data: { nested: { flag: true, list: [0, "x"] }, n: 0 } };
    expect(eventHash(reordered)).toBe(eventHash(base));
  });

  it.each([
    ["seq", { seq: 2 }],
    ["id", { id: "other" }],
    ["ts", { ts: base.ts + 1 }],
    ["type", { type: "door.opened" as EventType }],
    ["compartment", { compartment: "A02" }],
    ["parcel", { parcel: "P-9" }],
    ["actor", { actor: "courier-1" }],
    ["data", { data: { n: 1, nested: { list: [0, "x"], flag: true } } }],
    ["prevHash", { prevHash: "f".repeat(64) }],
  ])("changes when %s changes", (_field, patch) => {
    expect(eventHash({ ...base, ...patch })).not.toBe(eventHash(base));
  });
});

describe("verifyChain", () => {
  it("accepts a good chain and counts it", () => {
    expect(verifyChain(chain(5))).toEqual({ ok: true, checked: 5 });
  });

  it("accepts an empty chain", () => {
    expect(verifyChain([])).toEqual({ ok: true, checked: 0 });
  });

  it("verifies a continuation from a given hash and seq", () => {
    const all = chain(6);
    const tail = all.slice(3);
    expect(verifyChain(tail, all[2]!.hash, 4)).toEqual({ ok: true, checked: 3 });
    // ...but not from genesis / seq 1.
    expect(verifyChain(tail).ok).toBe(false);
  });

  it("detects a gap in seq", () => {
    const events = chain(5);
    events.splice(2, 1); // drop seq 3
    const r = verifyChain(events);
    expect(r.ok).toBe(false);
    expect(r.brokenAt).toBe(4);
    expect(r.checked).toBe(2);
    expect(r.reason).toMatch(/gap/);
  });

  it("detects a modified data field", () => {
    const events = chain(5);
    events[2] = { ...events[2]!, data: { ...events[2]!.data, n: 99 } };
    const r = verifyChain(events);
    expect(r).toMatchObject({ ok: false, brokenAt: 3, checked: 2 });
    expect(r.reason).toMatch(/hash/);
  });

  it("detects a modified data field even when the forger recomputes that event's hash", () => {
    const events = chain(5);
    events[1] = rehash({ ...events[1]!, data: { n: 1, forged: true } });
    // Event 2 now self-consistent; the break shows up at event 3, whose prevHash no longer matches.
    const r = verifyChain(events);
    expect(r).toMatchObject({ ok: false, brokenAt: 3, checked: 2, reason: "prevHash mismatch" });
  });

  it("detects a wrong prevHash", () => {
    const events = chain(4);
    events[1] = rehash({ ...events[1]!, prevHash: "a".repeat(64) });
    const r = verifyChain(events);
    expect(r).toMatchObject({ ok: false, brokenAt: 2, checked: 1 });
    expect(r.reason).toMatch(/prevHash/);
  });

  it("detects a tampered first event (prevHash must be genesis)", () => {
    const events = chain(2);
    events[0] = rehash({ ...events[0]!, prevHash: "1".repeat(64) });
    expect(verifyChain(events)).toMatchObject({ ok: false, brokenAt: 1, checked: 0 });
  });

  it("reports the first break when there are several", () => {
    const events = chain(6);
    events[4] = { ...events[4]!, actor: "mallory" };
    events[1] = { ...events[1]!, ts: 0 };
    expect(verifyChain(events)).toMatchObject({ ok: false, brokenAt: 2 });
  });

  it("accepts a generator (the ledger streams rows)", () => {
    const events = chain(3);
    function* stream() {
      yield* events;
    }
    expect(verifyChain(stream())).toEqual({ ok: true, checked: 3 });
  });
});
