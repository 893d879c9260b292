// The layout plan (bank/layout.ts): every category, the three-way rule, all or nothing; and its
// application to a real ledger file (state and events in one transaction, meta recorded).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  applyLayout,
  describePlan,
  LAYOUT_META,
  liveLayout,
  planLayout,
  readLayoutState,
  refusalMessage,
  type LayoutSpec,
  type LedgerCompartment,
  type UnderWay,
} from "../../../src/bank/layout.js";
import { compartmentIds } from "../../../src/config/schema.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";
import { Ledger, type Compartment } from "../../../src/ledger/ledger.js";
import { MIGRATIONS } from "../../../src/ledger/migrations.js";
import { stateMessage } from "../../../src/sync/commands.js";

const spec = (id: string, lock: number, size: LayoutSpec["size"] = "S", more: Partial<LayoutSpec> = {}): LayoutSpec => ({ id, size, refrigerated: false, accessible: false, lock, ...more });
const row = (s: LayoutSpec, more: Partial<LedgerCompartment> = {}): LedgerCompartment => ({ ...s, state: "free", parcelId: null, retiredAt: null, ...more });
const bank = (...specs: LayoutSpec[]) => specs;
/** A01..A04, all S, locks 0..3. */
const FOUR = bank(spec("A01", 0), spec("A02", 1), spec("A03", 2), spec("A04", 3));
const ledgerOf = (rows: LedgerCompartment[], parcels: UnderWay[] = []) => ({ compartments: rows, parcels });

describe("planLayout", () => {
  it("adds every compartment of a new bank, and records the layout", () => {
    const plan = planLayout(FOUR, undefined, ledgerOf([]));
    expect(plan.added.map((a) => a.id)).toEqual(["A01", "A02", "A03", "A04"]);
    expect(plan).toMatchObject({ retired: [], changed: [], reactivated: [], refused: [], recordChanged: true, record: FOUR });
  });

  it("changes nothing when the ledger has the config's layout, and writes no record that is already there", () => {
    const plan = planLayout(FOUR, FOUR, ledgerOf(FOUR.map((s) => row(s))));
    expect(plan).toMatchObject({ added: [], retired: [], changed: [], reactivated: [], kept: [], refused: [], recordChanged: false });
    expect(describePlan(plan)).toEqual([]);
  });

  it("retires compartments removed from the config that hold nothing", () => {
    const plan = planLayout(FOUR.slice(0, 2), FOUR, ledgerOf(FOUR.map((s) => row(s))));
    expect(plan.retired.map((r) => r.id)).toEqual(["A03", "A04"]);
    expect(plan.refused).toEqual([]);
  });

  it("refuses to retire one holding a parcel, naming it and the parcel", () => {
    const rows = FOUR.map((s) => row(s, s.id === "A04" ? { state: "occupied", parcelId: "P-9" } : {}));
    const plan = planLayout(FOUR.slice(0, 2), FOUR, ledgerOf(rows, [{ id: "P-9", status: "stored", compartmentId: "A04" }]));
    expect(plan.refused).toEqual([expect.objectContaining({ id: "A04", change: "retire", parcel: "P-9", state: "occupied" })]);
    expect(plan.refused[0]!.detail).toMatch(/A04 holds parcel P-9 \(stored\)/);
    expect(refusalMessage(plan)).toMatch(/nothing applied.*A04 holds parcel P-9/);
  });

  it("refuses a compartment reserved for a parcel, mid-flow, or whose door is being opened", () => {
    const rows = [
      row(FOUR[0]!, { state: "reserved", parcelId: "R-1" }),
      row(FOUR[1]!, { state: "loading", parcelId: "L-2" }),
      row(FOUR[2]!),
      row(FOUR[3]!),
    ];
    const parcels: UnderWay[] = [
      { id: "R-1", status: "reserved", compartmentId: "A01" },
      { id: "L-2", status: "depositing", compartmentId: "A02" },
    ];
    const plan = planLayout([], FOUR, ledgerOf(rows, parcels), new Set(["A03"]));
    expect(plan.refused.map((r) => [r.id, r.parcel])).toEqual([
      ["A01", "R-1"],
      ["A02", "L-2"],
      ["A03", null],
    ]);
    expect(plan.refused[0]!.detail).toMatch(/reserved for parcel R-1/);
    expect(plan.refused[2]!.detail).toMatch(/door being opened/);
    expect(plan.retired.map((r) => r.id)).toEqual(["A04"]);
  });

  it("names a parcel the parcels table puts in a compartment even when the row does not say so", () => {
    const plan = planLayout(FOUR.slice(0, 3), FOUR, ledgerOf(FOUR.map((s) => row(s)), [{ id: "P-7", status: "stored", compartmentId: "A04" }]));
    expect(plan.refused).toEqual([expect.objectContaining({ id: "A04", parcel: "P-7" })]);
  });

  it("changes the size and attributes of a free compartment", () => {
    const config = bank(spec("A01", 0), spec("A02", 1, "M"), spec("A03", 7, "S", { refrigerated: true, accessible: true }), spec("A04", 3));
    const plan = planLayout(config, FOUR, ledgerOf(FOUR.map((s) => row(s))));
    expect(plan.changed).toEqual([
      { id: "A02", from: { size: "S" }, to: { size: "M" } },
      { id: "A03", from: { refrigerated: false, accessible: false, lock: 2 }, to: { refrigerated: true, accessible: true, lock: 7 } },
    ]);
    expect(plan.refused).toEqual([]);
  });

  it("refuses to resize one holding a parcel; a fault without a parcel may change", () => {
    const config = bank(spec("A01", 0, "M"), spec("A02", 1, "M"), spec("A03", 2), spec("A04", 3));
    const rows = [row(FOUR[0]!, { state: "occupied", parcelId: "P-1" }), row(FOUR[1]!, { state: "fault" }), row(FOUR[2]!), row(FOUR[3]!)];
    const plan = planLayout(config, FOUR, ledgerOf(rows, [{ id: "P-1", status: "stored", compartmentId: "A01" }]));
    expect(plan.refused).toEqual([expect.objectContaining({ id: "A01", change: "change", parcel: "P-1" })]);
    expect(plan.refused[0]!.detail).toMatch(/size S → M cannot be applied/);
    expect(plan.changed.map((c) => c.id)).toEqual(["A02"]);
  });

  describe("three-way: only what the config changed since last applied", () => {
    const resized = () => FOUR.map((s) => row(s.id === "A02" ? { ...s, size: "L" } : s)); // the server made A02 an L

    it("keeps a server's resize while the config still says what it said", () => {
      const plan = planLayout(FOUR, FOUR, ledgerOf(resized()));
      expect(plan.changed).toEqual([]);
      expect(plan.kept).toEqual([{ id: "A02", attribute: "size", ledger: "L", config: "S" }]);
      expect(plan.recordChanged).toBe(false);
    });

    it("applies the config's new value once the config changes it", () => {
      const config = FOUR.map((s) => (s.id === "A02" ? { ...s, size: "M" as const } : s));
      const plan = planLayout(config, FOUR, ledgerOf(resized()));
      expect(plan.changed).toEqual([{ id: "A02", from: { size: "L" }, to: { size: "M" } }]);
    });

    it("changes nothing when the config now says what the server did, but records it", () => {
      const config = FOUR.map((s) => (s.id === "A02" ? { ...s, size: "L" as const } : s));
      const plan = planLayout(config, FOUR, ledgerOf(resized()));
      expect(plan).toMatchObject({ changed: [], kept: [], recordChanged: true });
    });

    it("with no record of the last applied layout, counts the ledger as it: the config wins", () => {
      const plan = planLayout(FOUR, undefined, ledgerOf(resized()));
      expect(plan.changed).toEqual([{ id: "A02", from: { size: "L" }, to: { size: "S" } }]);
      expect(plan.kept).toEqual([]);
    });

    it("refuses a kept lock channel the config now gives another compartment", () => {
      const rows = FOUR.map((s) => row(s.id === "A01" ? { ...s, lock: 9 } : s)); // A01 on 9 in the ledger, 0 in both configs
      const config = FOUR.map((s) => (s.id === "A02" ? { ...s, lock: 9 } : s));
      const plan = planLayout(config, FOUR, ledgerOf(rows));
      expect(plan.refused).toEqual([expect.objectContaining({ id: "A01, A02", change: "change" })]);
      expect(plan.refused[0]!.detail).toMatch(/share lock channel 9/);
    });
  });

  it("reactivates a retired compartment the config names again, with the config's attributes", () => {
    const rows = FOUR.map((s) => row(s.id === "A04" ? { ...s, size: "XL" } : s, s.id === "A04" ? { retiredAt: 5 } : {}));
    const plan = planLayout(FOUR, FOUR.slice(0, 3), ledgerOf(rows));
    expect(plan.reactivated).toEqual([{ id: "A04", from: { size: "XL" }, to: { size: "S", refrigerated: false, accessible: false, lock: 3 } }]);
    expect(plan.added).toEqual([]);
  });

  it("leaves retired compartments the config does not name alone", () => {
    const rows = FOUR.map((s) => row(s, s.id === "A04" ? { retiredAt: 5 } : {}));
    const plan = planLayout(FOUR.slice(0, 3), FOUR.slice(0, 3), ledgerOf(rows));
    expect(describePlan(plan)).toEqual([]);
  });
});

describe("applyLayout on a ledger file", () => {
  let dir: string;
  let ledger: Ledger;
  let clock = 1_000;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-layout-"));
    ledger = new Ledger(join(dir, "ledger.db"), { now: () => clock });
  });
  afterEach(() => {
    ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (config: LayoutSpec[], busy?: Set<string>) => {
    const state = readLayoutState(ledger.db);
    return planLayout(config, state.applied, state, busy);
  };
  const store = (compartment: string, parcel: string) =>
    ledger.transact((tx) => {
      tx.insertParcel({ id: parcel, status: "stored", size: "S", compartmentId: compartment, recipientId: null, depositorId: null, createdAt: clock });
      tx.updateCompartment(compartment, { state: "occupied", parcelId: parcel });
    });
  const types = () => ledger.eventsFrom(1, 10_000).map((e) => `${e.type} ${e.compartment}`);

  it("writes each change with its event in one transaction, and records the config's layout", () => {
    expect(applyLayout(ledger, plan(FOUR), clock)).toBe(true);
    expect(types()).toEqual(["compartment.added A01", "compartment.added A02", "compartment.added A03", "compartment.added A04"]);
    expect(ledger.eventsFrom(1, 1)[0]).toMatchObject({ actor: "config", data: { size: "S", refrigerated: false, accessible: false, lock: 0 } });
    expect(JSON.parse(ledger.meta(LAYOUT_META)!)).toEqual({ compartments: FOUR });

    clock = 2_000;
    const next = bank(spec("A01", 0), spec("A02", 1, "M"), spec("A05", 4, "L"));
    expect(applyLayout(ledger, plan(next), clock)).toBe(true);
    expect(types().slice(4)).toEqual(["compartment.retired A03", "compartment.retired A04", "compartment.changed A02", "compartment.added A05"]);
    expect(ledger.eventsFrom(1, 10_000).find((e) => e.type === "compartment.changed")!.data).toEqual({ from: { size: "S" }, to: { size: "M" } });
    expect(ledger.compartments().map((c) => `${c.id} ${c.size}`)).toEqual(["A01 S", "A02 M", "A05 L"]);
    expect(ledger.compartment("A03")).toMatchObject({ retiredAt: 2_000, state: "free" });
    // The server's state and snapshot list live compartments only.
    expect(stateMessage(ledger, clock).compartments.map((c) => c.id)).toEqual(["A01", "A02", "A05"]);

    clock = 3_000;
    expect(applyLayout(ledger, plan(FOUR), clock)).toBe(true);
    expect(types().slice(8)).toEqual(["compartment.retired A05", "compartment.changed A02", "compartment.reactivated A03", "compartment.reactivated A04"]);
    expect(ledger.compartments().map((c) => c.id)).toEqual(["A01", "A02", "A03", "A04"]);
    expect(ledger.invariants().filter((i) => i.rows.length)).toEqual([]);
    // Nothing left to do: no write at all.
    expect(applyLayout(ledger, plan(FOUR), clock)).toBe(false);
    expect(ledger.headSeq).toBe(12);
  });

  it("applies nothing of a plan with a refusal: the empty compartment stays too", () => {
    applyLayout(ledger, plan(FOUR), clock);
    store("A04", "P-1");
    const before = { rows: ledger.compartments(), head: ledger.headSeq, meta: ledger.meta(LAYOUT_META) };
    const p = plan(FOUR.slice(0, 2)); // A03 empty, A04 holds P-1
    expect(p.retired.map((r) => r.id)).toEqual(["A03"]);
    expect(p.refused.map((r) => [r.id, r.parcel])).toEqual([["A04", "P-1"]]);
    let error: unknown;
    try {
      applyLayout(ledger, p, clock);
    } catch (e) {
      error = e;
    }
    expect(isLockerError(error, ErrorCode.Busy)).toBe(true);
    expect({ rows: ledger.compartments(), head: ledger.headSeq, meta: ledger.meta(LAYOUT_META) }).toEqual(before);
  });

  it("rolls the whole plan back when a compartment filled up after it was planned", () => {
    applyLayout(ledger, plan(FOUR), clock);
    const p = plan([...FOUR.slice(0, 3), spec("A05", 4)]); // retire A04, add A05
    store("A04", "P-2");
    const head = ledger.headSeq;
    expect(() => applyLayout(ledger, p, clock)).toThrow(/A04 holds parcel P-2/);
    expect(ledger.headSeq).toBe(head);
    expect(ledger.compartment("A05")).toBeUndefined();
    expect(ledger.compartment("A04")).toMatchObject({ retiredAt: null, parcelId: "P-2" });
  });

  it("reads a ledger from before retirement existed (schema 6) as all live", () => {
    const old = new Database(join(dir, "old.db"));
    for (const m of MIGRATIONS.slice(0, 6)) old.exec(m);
    old.prepare("INSERT INTO compartments (id, position, size, since) VALUES ('A01', 0, 'S', 0)").run();
    try {
      expect(readLayoutState(old)).toEqual({ compartments: [row(spec("A01", 0))], parcels: [], applied: undefined });
    } finally {
      old.close();
    }
  });

  it("treats a damaged layout record as absent", () => {
    ledger.transact((tx) => tx.setMeta(LAYOUT_META, "{not json"));
    expect(readLayoutState(ledger.db)).toMatchObject({ applied: undefined, appliedProblem: expect.stringMatching(/not a layout/) });
  });
});

describe("liveLayout", () => {
  it("serves the ledger's live compartments in config order with the ledger's attributes; one the config lacks by its id", () => {
    const configured = compartmentIds([{ id: "A", compartments: [{ size: "S", refrigerated: false, accessible: false }, { size: "S", refrigerated: false, accessible: false }] }]);
    const compartment = (id: string, position: number, size: Compartment["size"]): Compartment => ({
      id,
      position,
      size,
      refrigerated: false,
      accessible: false,
      state: "free",
      enabled: true,
      door: "closed",
      parcelId: null,
      since: 0,
      doorOpened: false,
      pulses: 0,
      failedOpens: 0,
      faultReason: null,
      inspectSince: null,
      retiredAt: null,
    });
    const live = [compartment("B07", 30, "L"), compartment("A02", 1, "M") /* resized by the server, kept */, compartment("A01", 0, "S")];
    const layout = liveLayout(configured, live);
    expect(layout.map((l) => [l.id, l.size, l.lock, l.keypadNumber])).toEqual([
      ["A01", "S", 0, "101"],
      ["A02", "M", 1, "102"],
      ["B07", "L", 30, "B07"],
    ]);
  });
});
