// The compartment grid, drawn the same way by `npm run sim` and `lockerctl watch`, and the few screen
// primitives both need. Pure: text in, styled text out; colour only when asked.
//
//   A01 S  free      ▯     B01 S !fault     ▯      a cell: id, size, mark, state, door
//   A02 M ×occupied  OPEN  B02 S  loading   ?       mark: ! fault, × disabled; door ? unknown
//
// Columns are the first letter of the id, in bank order; rows are sorted within a column. When the
// full cells do not fit, compact ones (`A01 S  free ▯`) do; columns that still do not fit are left out
// and counted, so the caller can say so.

/** What a cell shows. The sim's CompartmentView and the admin CompartmentRow both fit. */
export interface GridCompartment {
  id: string;
  size: string;
  state: string;
  door: string;
  enabled?: boolean;
}

/** A run of text with an optional SGR style ("32", "1;35"). */
export type Seg = [text: string, style?: string];

export interface GridLayout {
  /** One list of segments per grid row, cells separated by GAP spaces. */
  rows: Seg[][];
  /** Visible columns the rows take. */
  width: number;
  /** Bank columns left out for lack of width. */
  hiddenColumns: number;
}

const STATE_STYLE: Readonly<Record<string, string>> = {
  free: "32",
  reserved: "36",
  loading: "33",
  unloading: "33",
  occupied: "34",
  fault: "1;31",
};
const UNKNOWN_STYLE = "1;31";
const DISABLED_STYLE = "2";
const OPEN_STYLE = "1;7";
const SHORT: Readonly<Record<string, string>> = { free: "free", reserved: "resv", loading: "load", unloading: "unld", occupied: "occ", fault: "FLT" };
export const FAULT_MARK = "!";
export const DISABLED_MARK = "×";

const ID_W = 3;
const SIZE_W = 2;
const FULL_STATE_W = 9; // "unloading"
const SHORT_STATE_W = 4;
const FULL_CELL = ID_W + 1 + SIZE_W + 1 + FULL_STATE_W + 1 + 4; // 21: "A01 S  unloading OPEN"
const SHORT_CELL = ID_W + 1 + SIZE_W + 1 + SHORT_STATE_W + 1 + 1; // 13: "A01 S  unld O"
const GAP = 2;

// ── text ────────────────────────────────────────────────────────────────────

/**
 * Text from the daemon is shown raw: control, format (bidi overrides, zero-width) and separator
 * characters become "?" so it cannot drive or reorder the terminal.
 */
export function clean(s: string): string {
  return s.replace(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu, "?");
}

// East Asian wide and fullwidth blocks, and the common emoji planes: two terminal columns.
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
const ZERO = /[\p{Mn}\p{Me}]/u;

/** Terminal columns one code point takes (an approximation of wcwidth, good for names and details). */
export function charWidth(ch: string): number {
  return ZERO.test(ch) ? 0 : WIDE.test(ch) ? 2 : 1;
}

/** Terminal columns a cleaned string takes. */
export function textWidth(s: string): number {
  let w = 0;
  for (const ch of clean(s)) w += charWidth(ch);
  return w;
}

/** Segments → exactly `width` visible columns (cleaned, truncated or padded), styled if `color`. */
export function fitLine(segs: readonly Seg[], width: number, color: boolean): string {
  let out = "";
  let left = Math.max(0, Math.floor(width));
  let full = false;
  for (const [raw, style] of segs) {
    if (full) break;
    let text = "";
    for (const ch of clean(raw)) {
      const w = charWidth(ch);
      if (w > left) {
        full = true; // a wide character that does not fit ends the line
        break;
      }
      text += ch;
      left -= w;
    }
    out += color && style && text ? `\x1b[${style}m${text}\x1b[0m` : text;
  }
  return out + " ".repeat(left);
}

/** A plain string clipped or padded to `width` columns. */
export function fit(text: string, width: number): string {
  return fitLine([[text]], width, false);
}

// ── cells ───────────────────────────────────────────────────────────────────

function cell(c: GridCompartment | undefined, full: boolean): Seg[] {
  const w = full ? FULL_CELL : SHORT_CELL;
  if (!c) return [[" ".repeat(w)]];
  const disabled = c.enabled === false;
  const fault = c.state === "fault";
  const mark: Seg = disabled ? [DISABLED_MARK, "1"] : fault ? [FAULT_MARK, STATE_STYLE.fault] : [" "];
  const style = disabled && !fault ? DISABLED_STYLE : (STATE_STYLE[c.state] ?? UNKNOWN_STYLE);
  const name = full ? fit(c.state, FULL_STATE_W) : fit(SHORT[c.state] ?? c.state, SHORT_STATE_W);
  const door: Seg = c.door === "closed" ? ["▯"] : c.door === "open" ? [full ? "OPEN" : "O", OPEN_STYLE] : ["?", UNKNOWN_STYLE];
  const used = ID_W + 1 + SIZE_W + 1 + (full ? FULL_STATE_W : SHORT_STATE_W) + 1 + textWidth(door[0]);
  return [[`${fit(c.id, ID_W)} ${fit(c.size, SIZE_W)}`], mark, [name, style], [" "], door, [" ".repeat(Math.max(0, w - used))]];
}

/** The compartments as columns (A, B, …) of rows (01…), in at most `width` columns of text. */
export function layoutGrid(list: readonly GridCompartment[], width: number): GridLayout {
  const byColumn = new Map<string, GridCompartment[]>();
  for (const c of list) {
    const key = c.id.slice(0, 1);
    byColumn.set(key, [...(byColumn.get(key) ?? []), c]);
  }
  const columns = [...byColumn.values()].map((col) => [...col].sort((a, b) => a.id.localeCompare(b.id)));
  const fits = (w: number) => Math.floor((width + GAP) / (w + GAP));
  const full = fits(FULL_CELL) >= columns.length;
  const cw = full ? FULL_CELL : SHORT_CELL;
  const shown = columns.slice(0, Math.max(1, fits(cw))); // one column even if clipped
  const height = Math.max(0, ...shown.map((col) => col.length));
  const rows: Seg[][] = [];
  for (let r = 0; r < height; r++) rows.push(shown.flatMap((col, i) => [...(i ? [[" ".repeat(GAP)] as Seg] : []), ...cell(col[r], full)]));
  return { rows, width: Math.max(0, shown.length * (cw + GAP) - GAP), hiddenColumns: columns.length - shown.length };
}

/** What the colours and marks mean, packed into lines of at most `width` columns. */
export function legend(width: number): Seg[][] {
  const items: Seg[][] = [
    ...["free", "reserved", "loading", "unloading", "occupied"].map((s): Seg[] => [[s, STATE_STYLE[s]]]),
    [[`${FAULT_MARK}fault`, STATE_STYLE.fault]],
    [[DISABLED_MARK, "1"], ["disabled", DISABLED_STYLE]],
    [["▯ shut"]],
    [["OPEN", OPEN_STYLE]],
  ];
  const lines: Seg[][] = [];
  let current: Seg[] = [];
  let used = 0;
  for (const item of items) {
    const w = item.reduce((n, [t]) => n + textWidth(t), 0);
    if (used && used + 1 + w > width) {
      lines.push(current);
      current = [];
      used = 0;
    }
    if (used) current.push([" "]);
    current.push(...item);
    used += (used ? 1 : 0) + w;
  }
  if (current.length) lines.push(current);
  return lines;
}
