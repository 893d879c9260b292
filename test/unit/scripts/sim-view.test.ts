import { describe as group, expect, it } from "vitest";
import type { CompartmentView } from "../../../src/sim/protocol.js";
import { describe, diffState, mapInput, parseCommand, parseLine, pushLog, render, type LogEntry, type ViewModel } from "../../../scripts/sim-view.js";

const comp = (id: string, over: Partial<CompartmentView> = {}): CompartmentView => ({
  id,
  size: "S",
  state: "free",
  enabled: true,
  door: "closed",
  parcel: null,
  since: 0,
  ...over,
});

const bank = (): CompartmentView[] =>
  ["A", "B"].flatMap((col) => Array.from({ length: 12 }, (_, i) => comp(`${col}${String(i + 1).padStart(2, "0")}`)));

const model = (over: Partial<ViewModel> = {}): ViewModel => ({
  device: "hq/bank-01",
  terminal: "keypad-1",
  info: "lockerd pid 1",
  compartments: bank(),
  display: ["Enter code", "or tap badge"],
  log: [],
  lastCode: undefined,
  mode: { kind: "normal" },
  status: undefined,
  ...over,
});

group("mapInput", () => {
  it("batches keypad keys and ignores other letters", () => {
    expect(mapInput({ kind: "normal" }, "*24x68#")).toEqual({ mode: { kind: "normal" }, actions: [{ t: "keys", keys: "*2468#" }] });
  });

  it("opens a command line with ':' and runs it on Enter", () => {
    let r = mapInput({ kind: "normal" }, "1:close A0");
    expect(r.actions).toEqual([{ t: "keys", keys: "1" }]);
    expect(r.mode).toEqual({ kind: "command", buf: "close A0" });
    r = mapInput(r.mode, "22\x7f\r");
    expect(r.actions).toEqual([{ t: "run", line: "close A02" }]);
    expect(r.mode).toEqual({ kind: "normal" });
  });

  it("Esc cancels a command, arrow keys are ignored, q only quits outside a command", () => {
    expect(mapInput({ kind: "command", buf: "open" }, "\x1b").mode).toEqual({ kind: "normal" });
    expect(mapInput({ kind: "command", buf: "a" }, "\x1b[Aq")).toEqual({ mode: { kind: "command", buf: "aq" }, actions: [] });
    expect(mapInput({ kind: "normal" }, "\x1b[B1q2").actions).toEqual([{ t: "keys", keys: "1" }, { t: "quit" }]);
  });

  it("Ctrl-C quits from any mode", () => {
    expect(mapInput({ kind: "command", buf: "x" }, "\x03").actions).toEqual([{ t: "quit" }]);
  });
});

group("parseCommand / parseLine", () => {
  it("maps commands to socket requests, ids case-insensitive", () => {
    expect(parseCommand("open a07")).toEqual({ t: "send", reqs: [{ op: "door", compartment: "A07", state: "open" }] });
    expect(parseCommand(":close B12")).toEqual({ t: "send", reqs: [{ op: "door", compartment: "B12", state: "closed" }] });
    expect(parseCommand("jam A01")).toEqual({ t: "send", reqs: [{ op: "jam", compartment: "A01", jammed: true }] });
    expect(parseCommand("unjam A01")).toEqual({ t: "send", reqs: [{ op: "jam", compartment: "A01", jammed: false }] });
    expect(parseCommand("badge 04A1B2C3")).toEqual({ t: "send", reqs: [{ op: "badge", id: "04A1B2C3" }] });
    expect(parseCommand("finger 7")).toEqual({ t: "send", reqs: [{ op: "finger", finger: "7" }] });
    expect(parseCommand("finger")).toMatchObject({ t: "error", message: "usage: finger 7" });
    expect(parseCommand("finger a b")).toMatchObject({ t: "error" });
    expect(parseCommand("scan L:123456 x")).toEqual({ t: "send", reqs: [{ op: "scan", text: "L:123456 x" }] });
    expect(parseCommand("state")).toEqual({ t: "send", reqs: [{ op: "state" }] });
    expect(parseCommand("wait 500")).toEqual({ t: "wait", ms: 500 });
    expect(parseCommand("q")).toEqual({ t: "quit" });
  });

  it("explains bad commands", () => {
    expect(parseCommand("frob")).toMatchObject({ t: "error", message: expect.stringContaining('unknown command "frob"') });
    expect(parseCommand("open")).toEqual({ t: "error", message: "usage: open A07" });
    expect(parseCommand("open A7")).toEqual({ t: "error", message: "expected a compartment id such as A07" });
    expect(parseCommand("badge xyz")).toMatchObject({ t: "error", message: "expected 4-32 hex digits" });
  });

  it("scripted lines: bare keys (split at 64) or commands; blank lines skipped", () => {
    expect(parseLine("  *2468# ")).toEqual({ t: "send", reqs: [{ op: "keys", keys: "*2468#" }] });
    const long = parseLine("1".repeat(70));
    expect(long).toEqual({ t: "send", reqs: [{ op: "keys", keys: "1".repeat(64) }, { op: "keys", keys: "111111" }] });
    expect(parseLine("close A02")).toEqual({ t: "send", reqs: [{ op: "door", compartment: "A02", state: "closed" }] });
    expect(parseLine("   ")).toBeUndefined();
  });
});

group("events", () => {
  it("describes a notify with its pickup code", () => {
    expect(describe({ ev: "notify", person: "p-1001", parcel: "L-1", compartment: "A02", code: "123456" })).toEqual({
      text: "NOTIFY p-1001: parcel L-1 in A02, pickup code 123456",
      kind: "notify",
    });
    expect(describe({ ev: "state", compartments: [] })).toBeUndefined();
  });

  it("folds repeats and strips control characters", () => {
    const log: LogEntry[] = [];
    pushLog(log, "t1", "buzzer key", "buzzer");
    pushLog(log, "t2", "buzzer key", "buzzer");
    pushLog(log, "t3", "error: \x1b[2Jboom", "error");
    expect(log).toEqual([
      { time: "t2", text: "buzzer key", kind: "buzzer", count: 2 },
      { time: "t3", text: "error: ?[2Jboom", kind: "error", count: 1 },
    ]);
  });

  it("diffs state snapshots", () => {
    const before = bank();
    const after = before.map((c) => (c.id === "A02" ? { ...c, state: "loading", door: "open" } : c));
    expect(diffState(before, after)).toEqual(["state A02 free/closed → loading/open"]);
  });
});

group("render", () => {
  it("fits 80×24 and shows the grid, the LCD and the log", () => {
    const compartments = bank().map((c) => (c.id === "A07" ? { ...c, size: "M", state: "occupied" } : c.id === "B02" ? { ...c, door: "open" } : c));
    const log: LogEntry[] = [{ time: "10:00:00", text: "NOTIFY p-1001: parcel L-1 in A07, pickup code 123456", kind: "notify", count: 1 }];
    const { lines, cursor } = render(model({ compartments, log, lastCode: { code: "123456", compartment: "A07", person: "p-1001" } }), 80, 24, false);
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(Array.from(l)).toHaveLength(80);
    expect(lines[7]).toContain("A07 M  occupied  ▯");
    expect(lines[2]).toContain("B02 S  free      OPEN");
    expect(lines[2]).toContain("│Enter code");
    expect(lines.join("\n")).toContain("last code 123456 → A07");
    expect(lines.join("\n")).toContain("pickup code 123456");
    expect(cursor).toBeUndefined();
  });

  it("colours by state only when asked", () => {
    const compartments = bank().map((c) => (c.id === "A03" ? { ...c, state: "fault" } : c));
    expect(render(model({ compartments }), 80, 24, true).lines[3]).toContain("\x1b[1;31mfault");
    expect(render(model({ compartments }), 80, 24, false).lines.join("")).not.toContain("\x1b");
  });

  it("shows the command line with the cursor after it", () => {
    const { lines, cursor } = render(model({ mode: { kind: "command", buf: "open A0" } }), 80, 24, false);
    expect(lines[23]?.trimEnd()).toBe(":open A0");
    expect(cursor).toEqual({ row: 24, col: 9 });
  });

  it("switches to compact cells when many columns", () => {
    const compartments = ["A", "B", "C"].flatMap((col) => Array.from({ length: 4 }, (_, i) => comp(`${col}0${i + 1}`)));
    const { lines } = render(model({ compartments }), 80, 24, false);
    expect(lines[1]).toMatch(/^A01 S  free ▯\s+B01 S  free ▯\s+C01 S  free ▯/);
  });

  it("parses the cold-compartment commands against the socket schema", () => {
    expect(parseCommand("temp b01 12.5")).toEqual({ t: "send", reqs: [{ op: "temperature", compartment: "B01", celsius: 12.5 }] });
    expect(parseCommand("unplug B01")).toEqual({ t: "send", reqs: [{ op: "sensor", compartment: "B01", failing: true }] });
    expect(parseCommand("temp B01 warm")).toEqual({ t: "error", message: "usage: temp B01 12.5" });
  });
});
