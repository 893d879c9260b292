// GPIO lines on the character device (/dev/gpiochipN) through the gpiod tools (gpiod.ts), for hosts
// without /sys/class/gpio. Each set of lines a part opens is held by long-lived helper processes:
//
//   outputs, v2 with -i   ONE `gpioset -i` for the set; a write is `set 17=1` + `get` on its stdin, done
//                         when the `get` answer comes back (~1 ms): no process per write
//   outputs, otherwise    one holder per line (v1 `gpioset --mode=wait`, v2 `gpioset`); a write ends
//                         that holder and starts one at the new level (~10-40 ms on a Pi; the line is
//                         released between the two: docs in hardware/gpio-i2c.md)
//   inputs                `gpioget` for the levels, then ONE `gpiomon` for the set; each event line
//                         sets the line's level (rising 1, falling 0) and calls its watchers. read()
//                         returns that level: the kernel queues every edge, and a held line cannot be
//                         read by another process (EBUSY)
//
// Outputs start at their safe level (the relay's off) and are driven back to it before the helper
// ends. A helper that dies is a fault (`fault` event, writes and reads refused at once with ENODEV)
// and is started again with backoff, every output at its safe level again; `recovered` when all are
// back. With util-linux's setpriv each helper gets SIGTERM when lockerd dies (PR_SET_PDEATHSIG), and
// the kernel releases what it held.
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { Backoff } from "../../backoff.js";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents } from "../parts.js";
import { describeError } from "./common.js";
import {
  GpiodError,
  errnoOf,
  gpiodArgs,
  lineStartError,
  parseEventLine,
  parseGpioget,
  parseValuesLine,
  tail,
  type CdevChip,
  type GpiodDialect,
  type GpiodTool,
  type GpiodTools,
} from "./gpiod.js";
import type { GpioLine, Level, LineCallback, LineEdge, LineSpec } from "./line.js";

/** An errno-style error of a line (line.ts says what ENODEV and ETIMEDOUT mean here). */
export function lineError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** What gpioset prints before reading each command when stdout is not a terminal (v2 -i). */
const PROMPT = "gpioset> ";

/** One running tool: stdout as lines, the tail of stderr, its end. */
class Helper {
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = "";
  ended = false;
  /** How it ended, once it has. */
  status: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private out = "";
  private spawned: Promise<void>;
  private lineHandler: (line: string) => void = () => undefined;
  private stderrHandler: (line: string) => void = () => undefined;
  private readyWaiter: { pred: (line: string) => boolean; resolve: () => void } | null = null;

  constructor(
    readonly tool: GpiodTool,
    readonly child: ChildProcess,
  ) {
    this.spawned = new Promise((resolve) => child.once("spawn", () => resolve()));
    this.closed = new Promise((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        this.ended = true;
        this.status = { code, signal };
        resolve({ code, signal });
      };
      child.once("error", (e) => {
        this.stderr += `${describeError(e)}\n`;
        // a spawn that failed emits no close when no stream was ever opened
        setImmediate(() => finish(null, null));
      });
      child.once("close", finish);
    });
    child.stdin?.on("error", () => undefined); // EPIPE: it died; the close says so
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      this.out = (this.out + d).replaceAll(PROMPT, "");
      let i: number;
      while ((i = this.out.indexOf("\n")) >= 0) {
        const line = this.out.slice(0, i);
        this.out = this.out.slice(i + 1);
        if (this.readyWaiter?.pred(line)) {
          const w = this.readyWaiter;
          this.readyWaiter = null;
          w.resolve();
          continue;
        }
        this.lineHandler(line);
      }
    });
    let errBuf = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      this.stderr = (this.stderr + d).slice(-4096);
      errBuf += d;
      let i: number;
      while ((i = errBuf.indexOf("\n")) >= 0) {
        const line = errBuf.slice(0, i);
        errBuf = errBuf.slice(i + 1);
        if (line.trim()) this.stderrHandler(line);
      }
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  onLine(handler: (line: string) => void): void {
    this.lineHandler = handler;
  }

  onStderr(handler: (line: string) => void): void {
    this.stderrHandler = handler;
  }

  send(text: string): boolean {
    const stdin = this.child.stdin;
    if (this.ended || !stdin || stdin.destroyed || !stdin.writable) return false;
    stdin.write(text);
    return true;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.ended) this.child.kill(signal);
  }

  /** Resolves when a stdout line passes `pred`; rejects when the tool ends first or after `ms`. */
  waitLine(pred: (line: string) => boolean, ms: number): Promise<void> {
    return this.readyOr(new Promise<void>((resolve) => (this.readyWaiter = { pred, resolve })), ms);
  }

  /** Resolves when the tool has run `settleMs` without ending (v1 tools never say they are ready). */
  settle(settleMs: number, ms: number): Promise<void> {
    return this.readyOr(
      this.spawned.then(() => new Promise<void>((resolve) => setTimeout(resolve, settleMs))),
      ms,
    );
  }

  private readyOr(ready: Promise<void>, ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiter = null;
        this.kill("SIGKILL");
        reject(new GpiodError(this.tool, `${this.tool} did not take its lines within ${ms} ms`, "ETIMEDOUT", this.stderr));
      }, ms);
      void ready.then(() => {
        clearTimeout(timer);
        if (this.ended) reject(this.exitError());
        else resolve();
      });
      void this.closed.then(() => {
        clearTimeout(timer);
        this.readyWaiter = null;
        reject(this.exitError());
      });
    });
  }

  /** "exit 1", "killed by SIGKILL". */
  howEnded(): string {
    const s = this.status;
    return !s ? "running" : s.signal ? `killed by ${s.signal}` : s.code === null ? "did not start" : `exit ${s.code}`;
  }

  exitError(): GpiodError {
    const why = tail(this.stderr);
    return new GpiodError(this.tool, `${this.tool} ended (${this.howEnded()}${why ? `: ${why}` : ""})`, errnoOf(this.stderr), this.stderr);
  }

  /** Ends the tool: `graceful()` first, then SIGTERM, then SIGKILL, `ms` apart. */
  async end(graceful: (() => void) | null, ms: number): Promise<void> {
    if (this.ended) return;
    const wait = (t: number) => Promise.race([this.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), t))]);
    if (graceful) {
      graceful();
      if (await wait(ms)) return;
    }
    this.kill("SIGTERM");
    if (await wait(ms)) return;
    this.kill("SIGKILL");
    await this.closed;
  }
}

type UnitState = "idle" | "up" | "down" | "stopped";

/** A helper that holds some lines, watched: a death is a fault, and it is started again with backoff. */
abstract class Unit {
  state: UnitState = "idle";
  protected helper: Helper | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  private readonly backoff: Backoff;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    protected readonly pins: ChardevPins,
    /** BCM pins, for messages. */
    readonly gpios: readonly number[],
    readonly tool: GpiodTool,
  ) {
    this.backoff = new Backoff(pins.tools.retry);
  }

  describe(): string {
    return `${this.tool} for GPIO ${this.gpios.join(",")} on ${this.pins.chip.name}`;
  }

  /** The helper holding every line at its starting level, once it holds them. */
  protected abstract launch(): Promise<Helper>;
  /** Every line back at its starting level, then the helper ended. Never throws. */
  protected abstract shutdown(h: Helper): Promise<void>;
  /** Forget what was written: a restart holds every line at its starting (safe) level again. */
  protected abstract reset(): void;
  /** The helper ended or was found broken: whatever waits on it fails. */
  protected abstract failPending(err: Error): void;

  async start(): Promise<void> {
    this.reset();
    this.adopt(await this.launch());
    this.state = "up";
  }

  /** Tasks one at a time: a write, the shutdown. */
  protected enqueue<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  protected adopt(h: Helper): void {
    this.helper = h;
    void h.closed.then(() => {
      if (this.helper !== h || this.state === "stopped") return; // replaced or ended on purpose
      this.helper = null;
      const why = tail(h.stderr);
      this.down(`${this.describe()} ended (${h.howEnded()}${why ? `: ${why}` : ""})`);
    });
  }

  protected down(detail: string): void {
    if (this.state === "stopped") return;
    this.failPending(lineError("ENODEV", detail));
    if (this.state !== "down") {
      this.state = "down";
      this.pins.unitDown(this, detail);
    }
    this.scheduleRestart();
  }

  protected ensureUp(): Helper {
    if (this.state !== "up" || !this.helper) throw lineError("ENODEV", `${this.describe()} is not running (restarting with backoff)`);
    return this.helper;
  }

  private scheduleRestart(): void {
    if (this.restartTimer || this.restarting || this.state === "stopped") return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarting = this.restart().then((ok) => {
        this.restarting = null;
        if (!ok) this.scheduleRestart();
      });
    }, this.backoff.next());
  }

  /** One attempt; false: try again after the next backoff. */
  private async restart(): Promise<boolean> {
    let h: Helper;
    try {
      await this.pins.refreshChip();
      this.reset();
      h = await this.launch();
    } catch (e) {
      if (this.state === "stopped") return true;
      this.pins.log?.warn({ helper: this.describe(), attempt: this.backoff.failures, err: describeError(e) }, "gpio helper restart failed, retrying");
      return false;
    }
    if (this.state === "stopped") {
      await this.shutdown(h);
      return true;
    }
    this.adopt(h);
    this.state = "up";
    this.backoff.reset();
    this.pins.unitUp(this);
    return true;
  }

  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    await this.restarting;
    // after the write in progress, if any: the helper then is the one to end (a write may replace it)
    await this.enqueue(async () => {
      const h = this.helper;
      this.helper = null;
      if (h) await this.shutdown(h);
    });
    this.failPending(lineError("ENODEV", `${this.describe()} stopped`));
  }

  /** The helper's pid (diagnostics, tests). */
  get pid(): number | undefined {
    return this.helper?.pid;
  }
}

/** v2 `gpioset -i`: one process holds all the outputs of a set; writes are commands on its stdin. */
class InteractiveOutputs extends Unit {
  private readonly values = new Map<number, Level>();
  /** The one command waiting for its `get` answer, and the helper it was sent to. */
  private waiter: { h: Helper; resolve: (v: Map<number, Level>) => void; reject: (e: Error) => void } | null = null;

  constructor(
    pins: ChardevPins,
    private readonly lines: readonly { offset: number; pin: number; initial: Level }[],
  ) {
    super(
      pins,
      lines.map((l) => l.pin),
      "gpioset",
    );
  }

  protected reset(): void {
    for (const l of this.lines) this.values.set(l.offset, l.initial);
  }

  level(offset: number): Level {
    return this.values.get(offset) ?? 0;
  }

  protected async launch(): Promise<Helper> {
    const p = this.pins;
    const h = p.spawn(
      "gpioset",
      gpiodArgs.gpioset(p.dialect, p.chip.name, [...this.values], { interactive: true, consumer: p.tools.consumer }),
    );
    h.onLine((line) => this.onStdout(line));
    h.onStderr((line) => this.onStderr(h, line));
    void h.closed.then(() => {
      if (this.waiter?.h === h) this.failPending(h.exitError());
    });
    // gpioset reads stdin only once it holds the lines: the answer to this `get` says it does
    h.send("get\n");
    try {
      const got = await this.ack(h);
      this.check(got, [...this.values]);
    } catch (e) {
      await h.end(null, 200);
      throw e instanceof GpiodError ? e : h.ended ? h.exitError() : e;
    }
    return h;
  }

  private onStdout(line: string): void {
    if (!line.trim()) return;
    const w = this.waiter;
    if (!w) return; // nothing asked: a stray line
    this.waiter = null;
    const values = parseValuesLine(line);
    if (values) w.resolve(values);
    else w.reject(lineError("EIO", `gpioset said: ${line.trim()}`));
  }

  /** gpioset reports a failed set on stderr and carries on: it no longer drives what we think. */
  private onStderr(h: Helper, line: string): void {
    if (this.helper !== h) return;
    this.failPending(new GpiodError("gpioset", line, errnoOf(line), line));
    h.kill("SIGKILL"); // the close makes it a fault, and the restart drives every line safe again
  }

  protected failPending(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private ack(h: Helper): Promise<Map<number, Level>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter !== waiter) return;
        this.waiter = null;
        reject(lineError("ETIMEDOUT", `${this.describe()} did not answer within ${this.pins.tools.ackMs} ms`));
        h.kill("SIGKILL");
      }, this.pins.tools.ackMs);
      const waiter = {
        h,
        resolve: (v: Map<number, Level>) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiter = waiter;
      if (h.ended) this.failPending(h.exitError());
    });
  }

  private check(got: Map<number, Level>, want: readonly (readonly [number, Level])[]): void {
    for (const [offset, level] of want) {
      if (got.get(offset) !== level) throw lineError("EIO", `${this.describe()}: line ${offset} reads back ${got.get(offset) ?? "nothing"}, not ${level}`);
    }
  }

  write(offset: number, level: Level): Promise<void> {
    return this.enqueue(async () => {
      const h = this.ensureUp();
      this.values.set(offset, level);
      if (!h.send(`set ${offset}=${level}\nget\n`)) throw lineError("ENODEV", `${this.describe()} is gone`);
      this.check(await this.ack(h), [[offset, level]]);
    });
  }

  protected async shutdown(h: Helper): Promise<void> {
    const safe = this.lines.map((l) => [l.offset, l.initial] as const);
    if (!h.ended) {
      try {
        h.send(`set ${safe.map(([o, v]) => `${o}=${v}`).join(" ")}\nget\n`);
        this.check(await this.ack(h), safe);
        for (const [o, v] of safe) this.values.set(o, v);
      } catch (e) {
        this.pins.log?.warn({ helper: this.describe(), err: describeError(e) }, "outputs not confirmed at their safe level before release");
      }
    }
    await h.end(() => h.send("exit\n"), this.pins.tools.ackMs);
  }
}

/** One output held by its own gpioset (v1, or v2 built without -i): a write starts a new holder. */
class HeldOutput extends Unit {
  private value: Level;

  constructor(
    pins: ChardevPins,
    private readonly offset: number,
    pin: number,
    private readonly initial: Level,
  ) {
    super(pins, [pin], "gpioset");
    this.value = initial;
  }

  protected reset(): void {
    this.value = this.initial;
  }

  protected failPending(): void {
    // writes wait on the holder they start, which fails by itself
  }

  level(_offset?: number): Level {
    return this.value;
  }

  protected launch(): Promise<Helper> {
    return this.hold(this.value);
  }

  private async hold(level: Level): Promise<Helper> {
    const p = this.pins;
    const h = p.spawn("gpioset", gpiodArgs.gpioset(p.dialect, p.chip.name, [[this.offset, level]], { interactive: false, consumer: p.tools.consumer }));
    if (p.dialect.major === 2 && p.dialect.banner) await h.waitLine((l) => l.startsWith("Setting line"), p.tools.ackMs);
    else await h.settle(p.tools.settleMs, p.tools.ackMs);
    return h;
  }

  /** v1 --mode=wait leaves on a newline (or EOF) on stdin; v2 on SIGTERM. */
  private release(h: Helper): Promise<void> {
    const v1 = this.pins.dialect.major === 1;
    return h.end(v1 ? () => h.send("\n") : () => h.kill("SIGTERM"), this.pins.tools.ackMs);
  }

  write(_offset: number, level: Level): Promise<void> {
    return this.enqueue(async () => {
      const old = this.ensureUp();
      if (level === this.value) return;
      this.helper = null; // its end is on purpose
      this.value = level;
      await this.release(old);
      try {
        this.adopt(await this.hold(level));
      } catch (e) {
        const detail = `${this.describe()} could not take the line again: ${describeError(e)}`;
        this.down(detail);
        throw lineError(e instanceof GpiodError && e.code === "ETIMEDOUT" ? "ETIMEDOUT" : "ENODEV", detail);
      }
    });
  }

  protected async shutdown(h: Helper): Promise<void> {
    let holder = h;
    if (this.value !== this.initial && !h.ended) {
      try {
        await this.release(h);
        holder = await this.hold(this.initial);
        this.value = this.initial;
      } catch (e) {
        this.pins.log?.warn({ helper: this.describe(), err: describeError(e) }, "output not driven to its safe level before release");
        return;
      }
    }
    await this.release(holder);
  }
}

/** Inputs of one edge setting: levels from gpioget, then one gpiomon for the set. */
class Monitor extends Unit {
  private readonly levels = new Map<number, Level>();
  private readonly watchers = new Map<number, LineCallback[]>();

  constructor(
    pins: ChardevPins,
    private readonly lines: readonly { offset: number; pin: number }[],
    private readonly edge: LineEdge,
  ) {
    super(
      pins,
      lines.map((l) => l.pin),
      "gpiomon",
    );
  }

  protected reset(): void {
    // levels are read again at every launch
  }

  protected failPending(): void {
    // nothing waits on a monitor
  }

  protected async launch(): Promise<Helper> {
    const p = this.pins;
    const offsets = this.lines.map((l) => l.offset);
    // Levels first, then the monitor: an edge in the few ms between the two shows at the next one.
    const got = await p.tools.run("gpioget", gpiodArgs.gpioget(p.dialect, p.chip.name, offsets, p.tools.consumer));
    if (got.code !== 0) throw new GpiodError("gpioget", `gpioget failed: ${tail(got.stderr) || `exit ${got.code}`}`, errnoOf(got.stderr), got.stderr);
    let levels: Level[];
    try {
      levels = parseGpioget(got.stdout, offsets);
    } catch (e) {
      throw new GpiodError("gpioget", describeError(e), "EIO", got.stderr);
    }
    offsets.forEach((o, i) => this.levels.set(o, levels[i]!));
    const edges = this.edge === "rising" || this.edge === "falling" ? this.edge : "both";
    const h = p.spawn("gpiomon", gpiodArgs.gpiomon(p.dialect, p.chip.name, offsets, edges, p.tools.consumer));
    h.onLine((line) => {
      const ev = parseEventLine(line);
      if (!ev || !this.levels.has(ev.offset)) return;
      this.levels.set(ev.offset, ev.level);
      if (this.edge === "none") return;
      for (const w of [...(this.watchers.get(ev.offset) ?? [])]) w(null, ev.level);
    });
    if (p.dialect.major === 2 && p.dialect.banner) await h.waitLine((l) => l.startsWith("Monitoring line"), p.tools.ackMs);
    else await h.settle(p.tools.settleMs, p.tools.ackMs);
    return h;
  }

  read(offset: number): Level {
    this.ensureUp();
    return this.levels.get(offset) ?? 0;
  }

  watch(offset: number, cb: LineCallback): void {
    this.watchers.set(offset, [...(this.watchers.get(offset) ?? []), cb]);
  }

  unwatch(offset: number): void {
    this.watchers.delete(offset);
  }

  protected shutdown(h: Helper): Promise<void> {
    return h.end(null, this.pins.tools.ackMs);
  }
}

/** The lines one part holds on one chip through the gpiod tools. */
export class ChardevPins extends EventEmitter<AvailabilityEvents> {
  private readonly units = new Set<Unit>();
  private readonly downUnits = new Set<Unit>();

  private constructor(
    readonly tools: GpiodTools,
    readonly dialect: GpiodDialect,
    public chip: CdevChip,
    private readonly chipLabel: string | undefined,
    readonly log: Logger | undefined,
  ) {
    super();
  }

  /** Finds the tools and the chip (by label: the Pi's pin controller unless `chipLabel`). */
  static async attach(tools: GpiodTools, chipLabel: string | undefined, log?: Logger): Promise<ChardevPins> {
    const dialect = await tools.dialect();
    const chip = await tools.findChip(chipLabel);
    return new ChardevPins(tools, dialect, chip, chipLabel, log);
  }

  /** The chip again by its label (a restart after the chip went away may find it renumbered). */
  async refreshChip(): Promise<void> {
    this.chip = await this.tools.findChip(this.chipLabel);
  }

  spawn(tool: GpiodTool, args: readonly string[]): Helper {
    return new Helper(tool, this.tools.spawnHelper(this.dialect, tool, args));
  }

  /** Opens the lines, outputs at their starting level; all or none. */
  async open(specs: readonly LineSpec[]): Promise<GpioLine[]> {
    for (const s of specs) {
      if (s.pin >= this.chip.ngpio) {
        throw new LockerError(ErrorCode.Config, `GPIO ${s.pin} is beyond ${this.chip.name} (${this.chip.ngpio} lines)`, { pin: s.pin });
      }
    }
    const outputs = specs.filter((s) => s.direction !== "in").map((s) => ({ offset: s.pin, pin: s.pin, initial: (s.direction === "high" ? 1 : 0) as Level }));
    const units: Unit[] = [];
    const lineOf = new Map<number, GpioLine>();
    if (outputs.length && this.dialect.major === 2 && this.dialect.interactive) {
      const u = new InteractiveOutputs(this, outputs);
      units.push(u);
      for (const o of outputs) lineOf.set(o.pin, outputLine(u, o.offset));
    } else {
      for (const o of outputs) {
        const u = new HeldOutput(this, o.offset, o.pin, o.initial);
        units.push(u);
        lineOf.set(o.pin, outputLine(u, o.offset));
      }
    }
    const byEdge = new Map<LineEdge, number[]>();
    for (const s of specs.filter((x) => x.direction === "in")) byEdge.set(s.edge ?? "none", [...(byEdge.get(s.edge ?? "none") ?? []), s.pin]);
    for (const [edge, pins] of byEdge) {
      const u = new Monitor(
        this,
        pins.map((pin) => ({ offset: pin, pin })),
        edge,
      );
      units.push(u);
      for (const pin of pins) lineOf.set(pin, inputLine(u, pin));
    }
    const started: Unit[] = [];
    try {
      for (const u of units) {
        await u.start();
        started.push(u);
        this.units.add(u);
      }
    } catch (e) {
      for (const u of started.reverse()) {
        await u.stop();
        this.units.delete(u);
      }
      if (e instanceof GpiodError) throw lineStartError(e, specs.map((s) => s.pin), this.chip);
      throw e;
    }
    return specs.map((s) => lineOf.get(s.pin)!);
  }

  unitDown(unit: Unit, detail: string): void {
    this.log?.error({ helper: unit.describe(), detail }, "gpio helper died: lines unavailable until it is back");
    const first = this.downUnits.size === 0;
    this.downUnits.add(unit);
    if (first) this.emit("fault", detail);
  }

  unitUp(unit: Unit): void {
    this.log?.info({ helper: unit.describe(), pid: unit.pid }, "gpio helper back, outputs at their safe level");
    this.downUnits.delete(unit);
    if (this.downUnits.size === 0) this.emit("recovered");
  }

  /** Every output to its safe level, every helper ended. Never throws. */
  async release(): Promise<void> {
    const units = [...this.units];
    this.units.clear();
    this.downUnits.clear();
    await Promise.all(units.map((u) => u.stop().catch(() => undefined)));
  }

  /** The pids of the helpers (diagnostics, tests). */
  helperPids(): number[] {
    return [...this.units].flatMap((u) => (u.pid === undefined ? [] : [u.pid]));
  }

  describe(): string {
    const d = this.dialect;
    return `${this.chip.name} (${this.chip.label}, ${this.chip.path}, gpiod ${d.version}${d.major === 2 ? (d.interactive ? " gpioset -i" : " gpioset per line") : ""})`;
  }
}

function outputLine(u: InteractiveOutputs | HeldOutput, offset: number): GpioLine {
  return {
    read: async () => u.level(offset),
    write: (value) => u.write(offset, value),
    watch: () => undefined,
    unwatchAll: () => undefined,
    unexport: () => undefined,
  };
}

function inputLine(u: Monitor, offset: number): GpioLine {
  return {
    read: async () => u.read(offset),
    write: async () => {
      throw lineError("EPERM", `GPIO ${offset} is an input`);
    },
    watch: (cb) => u.watch(offset, cb),
    unwatchAll: () => u.unwatch(offset),
    unexport: () => undefined,
  };
}
