// RS485 lock-control boards as lockerd parts: one part per board (its locks, the lock feedback as
// door state, its infrared item sensors), all boards of one config entry sharing one bus.
//
//   Rs485Board ─ poll every pollMs ─▶ Protocol.readStatus ─▶ Rs485Bus ─▶ boards
//        ▲                                                        │
//        └──── snapshot (lock / item bits) ◀── replies, unsolicited ┘
//
// A status read whose answer is lost or corrupt (a timeout) is asked again at once: one bad reply on
// a noisy line is not an outage. Only a retried read that fails again is a miss, and a board that
// misses `missesToFault` polls in a row is faulted ("fault" on `availability`, health, log): read()
// says "unknown", itemPresent() null, pulses reject at once, and it is polled with backoff until it
// answers ("recovered"). An unlock whose answer is lost is resent once. Door `change` fires only
// when a known state changes.
// Protocol notes: hardware/boards/kerong-kr-cu16.md, hardware/boards/board-8a.md.
import { EventEmitter } from "node:events";
import { Backoff } from "../../backoff.js";
import { ErrorCode, LockerError, isLockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { DoorPart, ItemPart, LockPart } from "../parts.js";
import type { DeviceHealth, DoorEvents, DoorState } from "../types.js";
import { Rs485Bus, type Exchange } from "./bus.js";
import { characterMs, type Cu8aConfig, type KerongConfig, type Rs485Config } from "./config.js";
import { cu8aProtocol, kerongProtocol, type Protocol, type Snapshot } from "./protocols.js";

/** A board's availability, on `board.availability` (the part itself carries the door events). */
export interface AvailabilityEvents {
  /** The board stopped answering (or its port vanished). */
  fault: [detail: string];
  /** It answers again. */
  recovered: [];
}

export interface Rs485Deps {
  log: Logger;
  /** Backoff jitter source (tests pass a fixed one). */
  random?: () => number;
  /** Where sysfs is, for the adapter's latency timer (tests fake it); "/sys" when absent. */
  sysfsRoot?: string;
}

interface BoardSpec {
  address: number;
  firstChannel: number;
  channels: number;
  itemSensors: boolean;
}

interface BoardOptions {
  pollMs: number;
  pulseMs: number;
  missesToFault: number;
  retryMaxMs: number;
  lockBitOpen: 0 | 1;
  irBitPresent: 0 | 1;
}

/** What a board part needs from its bus, whatever the protocol on it. */
interface BoardLink {
  readonly family: Protocol<unknown>["family"];
  readonly bus: Rs485BusView;
  acquire(): Promise<void>;
  release(): Promise<void>;
  readStatus(address: number): Promise<Snapshot | null>;
  unlock(address: number, lock: number): Promise<Snapshot | null>;
  /** Where in the poll cycle this board's polls go (0 ≤ phase < 1): the bus's boards spread evenly. */
  phase(address: number): number;
  /** Runs `fn` at `at` (performance.now()) from the bus's one timer (Rs485Bus.wakeAt); returns a cancel. */
  wakeAt(at: number, fn: () => void): () => void;
}

/** The bus, shared: opened by the first board's start(), closed by the last one's stop(). */
class SharedBus<F> implements BoardLink {
  private users = 0;
  readonly boards = new Map<number, Rs485Board>();
  constructor(
    readonly bus: Rs485Bus<F>,
    private readonly protocol: Protocol<F>,
  ) {
    bus.on("unsolicited", (frame) => {
      const snap = protocol.snapshot(frame);
      if (snap) this.boards.get(snap.address)?.apply(snap);
    });
    // The adapter is back: boards waiting out a backoff ask now.
    bus.on("open", () => {
      for (const b of this.boards.values()) b.pollSoon();
    });
  }
  get family(): Protocol<F>["family"] {
    return this.protocol.family;
  }
  async acquire(): Promise<void> {
    if (this.users++ === 0) await this.bus.start();
  }
  phase(address: number): number {
    const addresses = [...this.boards.keys()];
    return Math.max(0, addresses.indexOf(address)) / Math.max(1, addresses.length);
  }
  async release(): Promise<void> {
    if (this.users > 0 && --this.users === 0) await this.bus.stop();
  }
  wakeAt(at: number, fn: () => void): () => void {
    return this.bus.wakeAt(at, fn);
  }
  readStatus(address: number): Promise<Snapshot | null> {
    return this.exchange(this.protocol.readStatus(address));
  }
  unlock(address: number, lock: number): Promise<Snapshot | null> {
    return this.exchange(this.protocol.unlock(address, lock));
  }
  private async exchange(x: Exchange<F>): Promise<Snapshot | null> {
    const reply = await this.bus.request(x);
    return reply === null ? null : this.protocol.snapshot(reply);
  }
}

const range = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i);

export class Rs485Board extends EventEmitter<DoorEvents> implements LockPart, DoorPart, ItemPart {
  readonly name: string;
  /** `fault` / `recovered`, on the change only. */
  readonly availability = new EventEmitter<AvailabilityEvents>();
  readonly channels: readonly number[];
  readonly itemChannels: readonly number[];
  private readonly lockBits = new Map<number, boolean>();
  private readonly itemBits = new Map<number, boolean>();
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private running = false;
  /** Cancels the next poll's wake-up; null while a poll is under way or stopped. */
  private timer: (() => void) | null = null;
  private faulted = false;
  private answered = false;
  private misses = 0;
  private lastProblem = "";
  /** When the next poll is due (performance.now). */
  private due = 0;

  constructor(
    private readonly link: BoardLink,
    private readonly spec: BoardSpec,
    private readonly opts: BoardOptions,
    deps: Rs485Deps,
  ) {
    super();
    this.name = `${link.family} ${link.bus.path} #${spec.address}`;
    this.channels = range(spec.firstChannel, spec.channels);
    this.itemChannels = spec.itemSensors ? this.channels : [];
    const baseMs = Math.min(opts.pollMs, opts.retryMaxMs);
    this.backoff = new Backoff({ baseMs, capMs: opts.retryMaxMs, random: deps.random });
    this.log = deps.log.child({ module: "rs485", board: this.name });
  }

  get address(): number {
    return this.spec.address;
  }

  get isFaulted(): boolean {
    return this.faulted;
  }

  health(): DeviceHealth {
    const { channels } = this;
    const span = `channels ${channels[0]}..${channels[channels.length - 1]}`;
    const discarded = this.link.bus.stats.discardedBytes;
    const noise = discarded ? `, ${discarded} bytes discarded on the bus` : "";
    // A slow adapter works, only late: worth a technician's look, not a degraded board.
    const latency = this.link.bus.latencyTimerMs;
    const slow = latency !== null && latency > 1 ? `, USB adapter latency timer ${latency} ms (should be 1)` : "";
    if (this.faulted) return { name: this.name, kind: "locks", health: "faulted", detail: `not answering: ${this.lastProblem}` };
    if (!this.answered) {
      const why = this.lastProblem ? `: ${this.lastProblem}` : "";
      return { name: this.name, kind: "locks", health: "degraded", detail: `no answer yet${why}` };
    }
    return { name: this.name, kind: "locks", health: "ok", detail: `${span}${noise}${slow}` };
  }

  /** Opens the shared bus (if first) and starts polling. Never throws: a missing port is a fault. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.link.acquire();
    // The boards of a bus poll at evenly spread points of the cycle, never back to back: a door
    // request waits for at most one exchange in flight, not a second one queued behind it.
    this.due = performance.now() + this.link.phase(this.spec.address) * this.opts.pollMs;
    this.schedule(this.due - performance.now());
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.timer?.();
    this.timer = null;
    await this.link.release();
  }

  /**
   * Sends the unlock frame. These boards time the pulse themselves, so `ms` is not sent: the pulse
   * resolves `pulseMs` (config: the board's own unlock time) after the frame went out. Rejects with
   * HardwareUnavailable when nothing was sent (no such lock, board stopped or faulted, bus not open)
   * and HardwareTimeout when the frame went out but no valid answer came, resend included (LockPart).
   */
  async pulse(channel: number, _ms: number): Promise<void> {
    const lock = this.lockOf(channel);
    if (lock === null) throw new LockerError(ErrorCode.HardwareUnavailable, `no lock on channel ${channel} on ${this.name}`, { channel });
    if (!this.running) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not started`, { channel, board: this.name });
    if (this.faulted) {
      throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not answering (${this.lastProblem})`, { channel, board: this.name });
    }
    // Queued first, logged after: the log line's write is not on the way to the wire.
    const sending = this.unlock(lock);
    this.log.info({ channel, lock }, "unlock");
    let snap: Snapshot | null;
    try {
      snap = await sending;
    } catch (e) {
      if (this.running) this.miss(e);
      throw e;
    }
    if (snap) {
      this.apply(snap);
      if (snap.locks.get(lock) === (this.opts.lockBitOpen === 0)) this.log.warn({ channel, lock }, "board reports the lock still closed after unlock");
    }
    await new Promise<void>((resolve) => setTimeout(resolve, this.opts.pulseMs));
  }

  /** Nothing to release: the boards end each pulse themselves and hold no relay on. */
  async allOff(): Promise<void> {}

  read(channel: number): DoorState {
    const lock = this.lockOf(channel);
    const bit = lock === null || this.faulted ? undefined : this.lockBits.get(lock);
    if (bit === undefined) return "unknown";
    return bit === (this.opts.lockBitOpen === 1) ? "open" : "closed";
  }

  itemPresent(channel: number): boolean | null {
    if (!this.itemChannels.includes(channel) || this.faulted) return null;
    const bit = this.itemBits.get(channel - this.spec.firstChannel + 1);
    return bit === undefined ? null : bit === (this.opts.irBitPresent === 1);
  }

  /**
   * New bits from the board: it is alive; a door whose known state changed emits `change`. The
   * sampling every pollMs is the debounce: a latch switch settles well within it.
   */
  apply(snap: Snapshot): void {
    if (!this.running) return;
    // The bits first, then "recovered": whoever acts on the recovery (the bank settling flows it
    // held) reads the doors as they are now, not as they were before the outage.
    const changed: number[] = [];
    for (const [lock, bit] of snap.locks) {
      const before = this.lockBits.get(lock);
      this.lockBits.set(lock, bit);
      if (before === undefined || before === bit || lock > this.spec.channels) continue;
      changed.push(this.spec.firstChannel + lock - 1);
    }
    for (const [lock, bit] of snap.items ?? []) this.itemBits.set(lock, bit);
    this.alive();
    for (const channel of changed) this.emit("change", channel, this.read(channel));
  }

  /** Poll now instead of at the next scheduled time (unless a poll is already under way). */
  pollSoon(): void {
    if (!this.running || this.timer === null) return;
    this.timer();
    this.due = performance.now();
    this.schedule(0);
  }

  /**
   * The unlock exchange, sent once more when it timed out: the frame went out but no valid answer
   * came back, most likely a reply corrupted on the line. Either the board took the first frame and
   * only its answer was lost, or it never saw it; in both cases a second pulse is harmless: the board
   * bounds it (its own unlock time), on a latch that already sprang or on a door that did not move.
   */
  private async unlock(lock: number): Promise<Snapshot | null> {
    try {
      return await this.link.unlock(this.spec.address, lock);
    } catch (first) {
      if (!this.running || this.faulted || !isLockerError(first, ErrorCode.HardwareTimeout)) throw first;
      this.log.debug({ lock, problem: first.message }, "no answer to the unlock; sending it again");
      try {
        return await this.link.unlock(this.spec.address, lock);
      } catch (second) {
        // The first frame went out: a resend that could not be sent still leaves a timeout.
        throw isLockerError(second, ErrorCode.HardwareUnavailable) ? first : second;
      }
    }
  }

  /**
   * One status read, asked again at once (through the same queue, not ahead of it) when it timed
   * out. Not while faulted: there the backoff polls are the retries, and a dead board should not
   * hold the bus twice as long.
   */
  private async readStatus(): Promise<Snapshot | null> {
    try {
      return await this.link.readStatus(this.spec.address);
    } catch (e) {
      if (!this.running || this.faulted || !isLockerError(e, ErrorCode.HardwareTimeout)) throw e;
      this.log.debug({ problem: e.message }, "no answer to a status read; asking again");
      return await this.link.readStatus(this.spec.address);
    }
  }

  private lockOf(channel: number): number | null {
    const lock = channel - this.spec.firstChannel + 1;
    return Number.isInteger(lock) && lock >= 1 && lock <= this.spec.channels ? lock : null;
  }

  /** The next poll in `ms`, on the bus's timer (its reply deadlines share the wake-ups). */
  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = this.link.wakeAt(performance.now() + Math.max(0, ms), () => void this.poll());
  }

  private async poll(): Promise<void> {
    this.timer = null;
    try {
      const snap = await this.readStatus();
      if (snap) this.apply(snap);
    } catch (e) {
      if (this.running) this.miss(e);
    }
    const now = performance.now();
    if (this.faulted) {
      const wait = this.backoff.next();
      this.due = now + wait;
      return this.schedule(wait);
    }
    // At a fixed rate from when the poll was due, not pollMs after it ended: the boards keep their
    // places in the cycle, however long an exchange or an unlock before it took.
    this.due += this.opts.pollMs;
    if (this.due < now) this.due = now;
    this.schedule(this.due - now);
  }

  private alive(): void {
    this.misses = 0;
    this.answered = true;
    this.lastProblem = "";
    if (!this.faulted) return;
    this.faulted = false;
    this.backoff.reset();
    this.log.info("board answers again");
    this.availability.emit("recovered");
  }

  /** A poll (or unlock) that failed after its retry. */
  private miss(e: unknown): void {
    this.misses++;
    this.lastProblem = e instanceof Error ? e.message : String(e);
    if (this.faulted || this.misses < this.opts.missesToFault) {
      this.log.debug({ problem: this.lastProblem, misses: this.misses }, "no answer");
      return;
    }
    this.faulted = true;
    this.log.warn({ problem: this.lastProblem, misses: this.misses }, "board not answering; retrying with backoff");
    this.availability.emit("fault", this.lastProblem);
  }
}

/** The bus as its users see it: where, whether open, its counters and its adapter's latency timer. */
export type Rs485BusView = Pick<Rs485Bus<unknown>, "path" | "isOpen" | "problem" | "stats" | "latencyTimerMs" | "turnaroundMs">;

export interface Rs485Boards {
  /** The shared bus; opened by the first part's start(), closed by the last part's stop(). */
  readonly bus: Rs485BusView;
  /** One part per board, in config order. */
  readonly parts: readonly Rs485Board[];
}

type CommonConfig = Pick<KerongConfig, "port" | "baudRate" | "pollMs" | "timeoutMs" | "pulseMs" | "missesToFault" | "retryMaxMs" | "gapMs" | "turnaroundMs" | "lockBitOpen">;

function assemble<F>(
  config: CommonConfig,
  boards: readonly BoardSpec[],
  protocol: Protocol<F>,
  irBitPresent: 0 | 1,
  deps: Rs485Deps,
): Rs485Boards {
  const bus = new Rs485Bus<F>({
    path: config.port,
    baudRate: config.baudRate,
    parser: protocol.parser,
    describe: (f) => protocol.describe(f),
    gapMs: config.gapMs,
    turnaroundMs: config.turnaroundMs ?? characterMs(config.baudRate),
    reopen: { baseMs: Math.min(config.pollMs, config.retryMaxMs), capMs: config.retryMaxMs, random: deps.random },
    log: deps.log,
    sysfsRoot: deps.sysfsRoot,
  });
  const shared = new SharedBus(bus, protocol);
  const opts: BoardOptions = { ...config, irBitPresent };
  const parts = boards.map((b) => new Rs485Board(shared, b, opts, deps));
  for (const p of parts) shared.boards.set(p.address, p);
  return { bus, parts };
}

/** The parts for one Kerong KR-CU16 bus. */
export function createKerongBoards(config: KerongConfig, deps: Rs485Deps): Rs485Boards {
  return assemble(config, config.boards, kerongProtocol(config), config.irBitPresent, deps);
}

/** The parts for one bus of 0x8A boards (no item sensors). */
export function createCu8aBoards(config: Cu8aConfig, deps: Rs485Deps): Rs485Boards {
  const boards = config.boards.map((b) => ({ ...b, itemSensors: false }));
  return assemble(config, boards, cu8aProtocol(config), 1, deps);
}

/** Either family, by `type`. */
export function createRs485Boards(config: Rs485Config, deps: Rs485Deps): Rs485Boards {
  return config.type === "kerong" ? createKerongBoards(config, deps) : createCu8aBoards(config, deps);
}
