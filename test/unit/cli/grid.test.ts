import { describe, expect, it } from "vitest";
import type { CompartmentRow } from "../../../src/admin/protocol.js";
import { clean, fit, fitLine, layoutGrid, legend, textWidth, type GridCompartment, type Seg } from "../../../src/cli/grid.js";
import type { CompartmentView } from "../../../src/sim/protocol.js";

const comp = (id: string, over: Partial<GridCompartment> = {}): GridCompartment => ({ id, size: "S", state: "free", door: "closed", ...over });
const column = (col: string, n: number) => Array.from({ length: n }, (_, i) => comp(`${col}${String(i + 1).padStart(2, "0")}`));
const plain = (rows: Seg[][], width: number) => rows.map((r) => fitLine(r, width, false));

describe("layoutGrid", () => {
  it("takes the sim's CompartmentView and the admin CompartmentRow as they are", () => {
    const view: CompartmentView = { id: "A01", size: "S", state: "free", enabled: true, door: "closed", parcel: null, since: 0 };
    const row: CompartmentRow = { ...view, keypad: "101", parcelAgeMs: null, pulses: 0, failedOpens: 0, faultReason: null, held: null, heldSince: null };
    expect(plain(layoutGrid([view], 80).rows, 21)).toEqual(plain(layoutGrid([row], 80).rows, 21));
  });

  it("draws columns by first letter, rows sorted, full cells when they fit", () => {
    const list = [comp("B01"), comp("A02", { size: "M", state: "occupied", door: "open" }), comp("A01")];
    const g = layoutGrid(list, 80);
    expect(plain(g.rows, 44)).toEqual(["B01 S  free      ▯     A01 S  free      ▯   ", "                       A02 M  occupied  OPEN"]);
    expect(g).toMatchObject({ width: 44, hiddenColumns: 0 });
  });

  it("marks fault (!) and disabled (×) compartments, keeping the state visible", () => {
    const rows = plain(layoutGrid([comp("A01", { state: "fault" }), comp("A02", { enabled: false, state: "occupied" }), comp("A03", { door: "unknown" })], 80).rows, 21);
    expect(rows).toEqual(["A01 S !fault     ▯   ", "A02 S ×occupied  ▯   ", "A03 S  free      ?   "]);
  });

  it("switches to compact cells, then hides the columns that still do not fit", () => {
    const list = ["A", "B", "C", "D", "E", "F"].flatMap((c) => column(c, 2));
    const g = layoutGrid(list, 50);
    expect(g.hiddenColumns).toBe(3);
    expect(g.width).toBe(43);
    expect(plain(g.rows, 43)[0]).toBe("A01 S  free ▯  B01 S  free ▯  C01 S  free ▯");
    expect(fitLine(layoutGrid([comp("A01", { state: "fault", door: "open" })], 10).rows[0]!, 13, false)).toBe("A01 S !FLT  O");
  });

  it("keeps every cell its width whatever the daemon sends", () => {
    const odd = comp("A1\x1b[2J", { size: "XXL", state: "maintenance-mode" });
    const [row] = plain(layoutGrid([odd], 80).rows, 30);
    expect(row).toBe("A1? XX maintenan ▯   ".padEnd(30));
  });

  it("colours by state only when asked", () => {
    const g = layoutGrid([comp("A01", { state: "fault" })], 80);
    expect(fitLine(g.rows[0]!, 21, true)).toContain("\x1b[1;31mfault");
    expect(fitLine(g.rows[0]!, 21, false)).not.toContain("\x1b");
  });
});

describe("text", () => {
  it("cleans control, bidi and line-separator characters", () => {
    expect(clean("a\x1b[2J\x07\u009b\u202e\u2028b")).toBe("a?[2J????b");
  });

  it("counts wide and combining characters", () => {
    expect(textWidth("東京")).toBe(4);
    expect(textWidth("e\u0301")).toBe(1);
    expect(fit("東京x", 3)).toBe("東 "); // a wide character that does not fit is not split
    expect(fitLine([["ab", "1"], ["cd"]], 3, true)).toBe("\x1b[1mab\x1b[0mc");
    expect(fitLine([], 2, true)).toBe("  ");
  });

  it("packs the legend into lines of the given width", () => {
    const wide = legend(80).map((l) => fitLine(l, 80, false).trimEnd());
    expect(wide).toEqual(["free reserved loading unloading occupied !fault ×disabled ▯ shut OPEN"]);
    const narrow = legend(28).map((l) => fitLine(l, 28, false).trimEnd());
    expect(narrow).toEqual(["free reserved loading", "unloading occupied !fault", "×disabled ▯ shut OPEN"]);
  });
});
