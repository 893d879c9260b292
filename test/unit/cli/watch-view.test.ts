import { describe, expect, it } from "vitest";
import type { Alarm, CompartmentRow } from "../../../src/admin/protocol.js";
import { textWidth } from "../../../src/cli/grid.js";
import { applyStream, emptyWatch, formatAge, RECENT_EVENTS, renderWatch, type LedgerEvent, type WatchModel } from "../../../src/cli/watch-view.js";

const NOW = Date.UTC(2026, 10, 25, 9, 30, 0);

const row = (id: string, over: Partial<CompartmentRow> = {}): CompartmentRow => ({
  id,
  keypad: `1${id.slice(1)}`,
  size: "S",
  state: "free",
  door: "closed",
  enabled: true,
  parcel: null,
  parcelAgeMs: null,
  since: 0,
  pulses: 0,
  failedOpens: 0,
  faultReason: null,
  held: null,
  heldSince: null,
  ...over,
});

/** Two columns of 12, like config.example.json: A03 in fault, A05 disabled, A07 occupied, B02 open. */
const bank = (): CompartmentRow[] =>
  ["A", "B"].flatMap((col) =>
    Array.from({ length: 12 }, (_, i) => {
      const id = `${col}${String(i + 1).padStart(2, "0")}`;
      const size = i < 6 ? "S" : i < 10 ? "M" : "L";
      const over: Partial<CompartmentRow> =
        id === "A03" ? { state: "fault", faultReason: "lock did not open" } : id === "A05" ? { enabled: false } : id === "A07" ? { state: "occupied" } : id === "B02" ? { state: "loading", door: "open" } : {};
      return row(id, { size, ...over });
    }),
  );

const alarms = (): Alarm[] => [
  { kind: "forced_open", compartment: "B09", since: NOW - 7_500_000, detail: "door opened while occupied" },
  { kind: "compartment_fault", compartment: "A03", since: NOW - 192_000, detail: "lock did not open after 2 pulses" },
];

const event = (seq: number, type: string, over: Partial<LedgerEvent> = {}): LedgerEvent => ({
  seq,
  id: `ev-${seq}`,
  ts: NOW - (1207 - seq) * 60_000,
  type,
  compartment: "A03",
  parcel: null,
  actor: "casey",
  data: {},
  ...over,
});

const TYPES = ["parcel.deposited", "door.opened", "door.closed", "compartment.fault", "alarm.forced_open", "parcel.picked_up", "admin.disable"];

const model = (over: Partial<WatchModel> = {}): WatchModel => ({
  ...emptyWatch("hq/bank-01", NOW),
  utcOffsetMin: 0,
  connection: { state: "live" },
  compartments: bank(),
  alarms: alarms(),
  events: TYPES.map((t, i) => event(1200 + i, t, t === "admin.disable" ? { compartment: "A05", actor: "alice" } : {})),
  ...over,
});

const screen = (m: WatchModel, width = 80, height = 24, color = false) => renderWatch(m, { width, height, color }).split("\n");

describe("renderWatch layout", () => {
  it("fills 80×24 exactly: header, grid, legend, alarms with age, events, footer", () => {
    const lines = screen(model());
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(textWidth(l)).toBe(80);
    expect(lines[0]).toBe(` lockerctl watch  hq/bank-01${" ".repeat(25)} 2026-11-25 09:30:00  live `);
    expect(lines[1]).toBe(`A01 S  free      ▯     B01 S  free      ▯${" ".repeat(39)}`);
    expect(lines[2]).toContain("B02 S  loading   OPEN");
    expect(lines[3]).toMatch(/^A03 S !fault     ▯/); // the fault row is marked
    expect(lines[5]).toMatch(/^A05 S ×free      ▯/); // so is the disabled one
    expect(lines[7]).toMatch(/^A07 M  occupied  ▯/);
    expect(lines[12]).toMatch(/^A12 L  free      ▯     B12 L  free      ▯ +$/);
    expect(lines[13]!.trimEnd()).toBe("free reserved loading unloading occupied !fault ×disabled ▯ shut OPEN");
    expect(lines[14]).toMatch(/^── 2 open alarms ─+$/);
    // Newest first, each with its age.
    expect(lines[15]!.trimEnd()).toBe(" 3m12s  compartment_fault  A03  lock did not open after 2 pulses");
    expect(lines[16]!.trimEnd()).toBe(" 2h05m  forced_open        B09  door opened while occupied");
    expect(lines[17]).toMatch(/^── recent events ─+$/);
    // The last five events, oldest first.
    expect(lines.slice(18, 23).map((l) => l.trimEnd())).toEqual([
      " 1202 09:25:00 door.closed       A03 casey",
      " 1203 09:26:00 compartment.fault A03 casey",
      " 1204 09:27:00 alarm.forced_open A03 casey",
      " 1205 09:28:00 parcel.picked_up  A03 casey",
      " 1206 09:29:00 admin.disable     A05 alice",
    ]);
    expect(lines[23]!.trimEnd()).toBe(" q quit");
  });

  it("respects any size: exactly `height` lines of exactly `width` columns", () => {
    const many = model({ alarms: Array.from({ length: 9 }, (_, i) => ({ ...alarms()[0]!, since: NOW - i * 1000 })) });
    for (const m of [model(), many, model({ compartments: [] })]) {
      for (const [w, h] of [[120, 40], [80, 24], [80, 16], [60, 12], [40, 10], [30, 5], [20, 3], [10, 2], [5, 1], [1, 1]] as const) {
        const lines = screen(m, w, h);
        expect(lines, `${w}×${h}`).toHaveLength(h);
        for (const l of lines) expect(textWidth(l), `${w}×${h}: ${l}`).toBe(w);
      }
    }
    expect(renderWatch(model(), { width: 80, height: 0, color: false })).toBe("");
  });

  it("drops the events pane first, then the legend, then alarms, then grid rows", () => {
    // 18 rows hold everything but the events: header, 12 grid rows, legend, 3 alarm rows, footer.
    const at18 = screen(model(), 80, 18);
    expect(at18.join("\n")).not.toContain("recent events");
    expect(at18[13]).toContain("!fault ×disabled");
    expect(at18[16]).toContain("forced_open");
    expect(at18[17]!.trimEnd()).toBe(" q quit   hidden: events; enlarge the terminal");
    const at20 = screen(model(), 80, 20);
    expect(at20[17]).toMatch(/^── recent events/);
    expect(at20[18]).toContain("1206 09:29:00 admin.disable");
    const at16 = screen(model(), 80, 16);
    expect(at16.join("\n")).not.toContain("disabled ▯ shut");
    expect(at16[13]).toMatch(/^── 2 open alarms/);
    expect(at16[14]).toContain("compartment_fault");
    expect(at16[15]!.trimEnd()).toBe(" q quit   hidden: 1 alarm, events; enlarge the terminal");
    const at8 = screen(model(), 80, 8);
    expect(at8.slice(1, 5).map((l) => l.slice(0, 3))).toEqual(["A01", "A02", "A03", "A04"]);
    expect(at8[5]).toMatch(/^── 2 open alarms/);
    expect(at8[6]).toContain("compartment_fault");
    expect(at8[7]!.trimEnd()).toBe(" q quit   hidden: 8 rows, 1 alarm, events; enlarge the terminal");
  });

  it("says how many alarms did not fit", () => {
    const many = Array.from({ length: 6 }, (_, i): Alarm => ({ kind: "forced_open", compartment: `B0${i + 1}`, since: NOW - i * 60_000, detail: "" }));
    const lines = screen(model({ alarms: many, events: [] }), 80, 18);
    expect(lines[13]).toMatch(/^── 6 open alarms/); // the legend gave way to the alarms
    expect(lines.slice(14, 17).map((l) => l.trimEnd())).toEqual(["    0s  forced_open  B01", " 1m00s  forced_open  B02", " … and 4 more"]);
    expect(lines[17]!.trimEnd()).toBe(" q quit");
  });

  it("keeps the connection state and the device on a narrow header", () => {
    expect(screen(model(), 40, 3)[0]).toBe(" hq/bank-01   2026-11-25 09:30:00  live ");
    expect(screen(model(), 30, 3)[0]).toBe(" hq/bank-01    09:30:00  live ");
    const lost = model({ connection: { state: "lost", since: NOW - 42_000, reason: "socket closed" } });
    expect(screen(lost)[0]).toMatch(/ LOST 42s: socket closed $/);
    expect(screen(model({ connection: { state: "connecting" } }))[0]).toMatch(/ connecting… $/);
  });

  it("waits for the first snapshot, and says when there is nothing to show", () => {
    const lines = screen(model({ compartments: [], alarms: [], events: [] }));
    expect(lines[1]!.trimEnd()).toBe("waiting for the first compartment snapshot…");
    expect(lines[2]).toMatch(/^── no open alarms ─+$/);
    expect(lines[3]).toMatch(/^── no events yet ─+$/);
  });

  it("dates an event from another day", () => {
    const lines = screen(model({ events: [event(7, "parcel.deposited", { ts: Date.UTC(2026, 10, 24, 23, 59, 0) })] }));
    expect(lines[18]!.trimEnd()).toBe(" 7 11-24 23:59 parcel.deposited A03 casey");
  });
});

describe("renderWatch colour and hostile text", () => {
  it("uses colour escape codes only when asked", () => {
    const colored = renderWatch(model(), { width: 80, height: 24, color: true });
    expect(colored).toContain("\x1b[1;31m!\x1b[0m\x1b[1;31mfault"); // fault row
    expect(colored).toContain("\x1b[1m×\x1b[0m\x1b[2mfree"); // disabled row
    expect(colored).toContain("\x1b[1;31mcompartment.fault\x1b[0m"); // highlighted events
    expect(colored).toContain("\x1b[1;31malarm.forced_open\x1b[0m");
    expect(colored).not.toContain("\x1b[1;31mparcel.picked_up");
    expect(colored).toContain("\x1b[1;7;32m live \x1b[0m");
    expect(renderWatch(model(), { width: 80, height: 24, color: false })).not.toContain("\x1b");
  });

  it("strips control characters from everything the daemon sends", () => {
    const evil = "\x1b]0;owned\x07\x1b[2J\r\u009b\u202e";
    const m = model({
      device: `bank${evil}`,
      compartments: [row(`A0${evil}`, { size: evil, state: evil, door: evil })],
      alarms: [{ kind: `k${evil}`, compartment: evil, since: NOW, detail: `d${evil}\nline` }],
      events: [event(1, `alarm.x${evil}`, { compartment: evil, actor: evil })],
    });
    for (const color of [false, true]) {
      const text = renderWatch(m, { width: 80, height: 24, color });
      // Only our own SGR sequences and line breaks remain.
      const rest = text.replace(/\x1b\[[0-9;]*m/g, "").replace(/\n/g, "");
      expect(rest).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
      expect(text.split("\n")).toHaveLength(24);
    }
    expect(renderWatch(m, { width: 80, height: 24, color: false })).toContain("bank?]0;owned??[2J???");
  });

  it("keeps the width with wide characters in names", () => {
    for (const l of screen(model({ device: "東京駅-ロッカー-01".repeat(4) }), 50, 10)) expect(textWidth(l)).toBe(50);
  });
});

describe("applyStream", () => {
  it("replaces compartments and alarms from a snapshot, without touching the old model", () => {
    const before = model();
    const after = applyStream(before, { kind: "compartments", compartments: [row("C01")], alarms: [] });
    expect(after.compartments.map((c) => c.id)).toEqual(["C01"]);
    expect(after.alarms).toEqual([]);
    expect(after.events).toBe(before.events);
    expect(before.compartments).toHaveLength(24);
  });

  it("appends events, bounded to the most recent, and skips one delivered twice", () => {
    let m = model({ events: [] });
    for (let seq = 1; seq <= RECENT_EVENTS + 10; seq++) m = applyStream(m, { kind: "event", event: event(seq, "door.opened") });
    expect(m.events).toHaveLength(RECENT_EVENTS);
    expect(m.events[0]!.seq).toBe(11);
    expect(m.events.at(-1)!.seq).toBe(RECENT_EVENTS + 10);
    expect(applyStream(m, { kind: "event", event: event(RECENT_EVENTS + 10, "door.opened") })).toBe(m);
  });

  it("updates one row's door; an unknown compartment changes nothing", () => {
    const m = model();
    const after = applyStream(m, { kind: "door", compartment: "A07", door: "open", ts: NOW });
    expect(after.compartments.find((c) => c.id === "A07")!.door).toBe("open");
    expect(after.compartments.filter((c) => c.door === "open").map((c) => c.id)).toEqual(["A07", "B02"]);
    expect(m.compartments.find((c) => c.id === "A07")!.door).toBe("closed");
    expect(applyStream(m, { kind: "door", compartment: "Z99", door: "open", ts: NOW })).toBe(m);
    expect(screen(after)[7]).toContain("A07 M  occupied  OPEN");
  });
});

describe("formatAge", () => {
  it("is compact at every scale and never negative", () => {
    expect([0, 45_000, 192_000, 7_500_000, 273_600_000, -5_000, Number.NaN].map(formatAge)).toEqual(["0s", "45s", "3m12s", "2h05m", "3d04h", "0s", "0s"]);
  });
});
