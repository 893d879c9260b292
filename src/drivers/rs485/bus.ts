// One RS485 bus: a serial port (USB-RS485 adapter), the boards on it share it half-duplex, so one
// frame is on the wire at a time. Exchanges queue up; each writes its frame and either waits for
// the matching reply (with a timeout) or, for commands the board does not answer, holds the bus for
// the frame's wire time plus a gap. When the port disappears (adapter unplugged) every waiting
// exchange fails fast and the port is reopened with backoff.
//
// An urgent exchange (an unlock: someone stands at the door) goes ahead of every queued status
// poll, and after an exchange it waits only the line's turnaround (turnaroundMs), not the quiet gap
// polls keep between them (gapMs): the board that answered has let go of the line. A frame on the
// wire, or a poll waiting for its answer, is never interrupted. So an unlock waits at most one
// poll exchange and the turnaround (bench: key_to_unlock_frame). The turnaround is kept to a
// fraction of a millisecond (runAt): a Node timer alone would stretch 1 ms to as much as 2.
//
//   request() ─▶ queue ─▶ write ─▶ serial ─▶ boards
//                  ▲                  │
//   reply ◀─ matcher ◀─ FrameParser ◀─┘──▶ unsolicited / discarded events
import { EventEmitter } from "node:events";
import type { SerialPort } from "serialport";
import { Backoff, type BackoffOptions } from "../../backoff.js";
import { ErrorCode, LockerError, isLockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { Alarm } from "../alarm.js";
import { runAt } from "../run-at.js";
import { latencyTimerMs } from "../usb-latency.js";
import { ReplyMatcher, Unsent } from "./matcher.js";
import { hex, type FrameParser, type ParserStats } from "./parser.js";

export interface Exchange<F> {
  /** The bytes to send. */
  frame: Buffer;
  /** For logs and errors, e.g. "kerong #1 read status". */
  what: string;
  /** The reply's predicate (address + command); absent for a command the board does not answer. */
  reply?: (frame: F) => boolean;
  /** How long to wait for the reply after the frame has been written. */
  timeoutMs: number;
  /** Goes ahead of queued non-urgent exchanges (unlocks before status polls). */
  urgent?: boolean;
}

export interface BusOptions<F> {
  path: string;
  baudRate: number;
  parser: FrameParser<F>;
  describe: (frame: F) => string;
  /** Quiet time after every exchange, and after the wire time of an unanswered command. */
  gapMs: number;
  /**
   * Quiet time before an urgent exchange after an answered one (the answering board has released
   * the line); at most gapMs. After an unanswered command the full gap holds for every exchange.
   */
  turnaroundMs?: number;
  /** Reopening the port after it vanished or failed to open. */
  reopen: BackoffOptions;
  log: Logger;
  /** Where sysfs is, for the adapter's latency timer (usb-latency.ts); "/sys" unless a test fakes it. */
  sysfsRoot?: string;
}

export interface BusEvents<F> {
  /** A valid frame no exchange was waiting for (a late reply, a board's own report). */
  unsolicited: [frame: F];
  /** Bytes that were no valid frame (noise, bad checksum, truncated). */
  discarded: [bytes: Buffer, reason: string];
  open: [];
  /** The port closed or could not be opened; emitted on the change, not on every retry. */
  down: [reason: string];
}

export interface BusStats extends ParserStats {
  written: number;
  timeouts: number;
  unsolicited: number;
  opens: number;
  /** Wake-ups of the bus's timer (polls, deadlines), and those that found nothing to do. */
  wakeups: number;
  idleWakeups: number;
}

interface Job<F> {
  x: Exchange<F>;
  /** Its frame was handed to the port: from then on a failure means "sent, not answered". */
  sent?: boolean;
  resolve: (frame: F | null) => void;
  reject: (e: unknown) => void;
}

/** The reply deadline of the exchange on the bus. */
interface Deadline {
  /** When the exchange started, and when its own deadline (timeoutMs and wire time) falls. */
  start: number;
  precise: number;
  /** When it is armed for: `precise`, or a poll's wait run on to the bus's next wake-up. */
  at: number;
  /** The matcher's timeout for the exchange's waiter; also who the deadline belongs to. */
  fire: (waitedMs?: number) => void;
  cancel: () => void;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The last stretch of an urgent exchange's wait spent in event-loop turns rather than a timer (runAt). */
const URGENT_FINE_MS = 1;

/** A write the port has not taken this long after its wire time means the port is stuck. */
const WRITE_STALL_MS = 1000;

export class Rs485Bus<F> extends EventEmitter<BusEvents<F>> {
  private port: SerialPort | null = null;
  private readonly matcher = new ReplyMatcher<F>();
  private readonly queue: Job<F>[] = [];
  private readonly reopenBackoff: Backoff;
  private reopenTimer: NodeJS.Timeout | null = null;
  /** The exchange on the bus now. */
  private current: Job<F> | null = null;
  /** When the quiet gap after the last exchange ends (performance.now), and when its turnaround does. */
  private quietAt = 0;
  private turnaroundAt = 0;
  /** Wakes the queue when the gap (or the turnaround, for an urgent job) is over; cancels that wake-up. */
  private gapTimer: (() => void) | null = null;
  private running = false;
  private up = false;
  private lastProblem = "not started";
  private latency: number | null = null;
  private readonly counters = { written: 0, timeouts: 0, unsolicited: 0, opens: 0 };
  private readonly log: Logger;
  /** The bus's one timer: its users' wake-ups (the boards' polls) and its reply deadlines. */
  private readonly alarm = new Alarm();
  /** The reply deadline of the exchange on the bus: when it was due, and when it is armed for. */
  private deadline: Deadline | null = null;

  constructor(private readonly opts: BusOptions<F>) {
    super();
    this.reopenBackoff = new Backoff(opts.reopen);
    this.log = opts.log.child({ module: "rs485", port: opts.path });
  }

  get path(): string {
    return this.opts.path;
  }

  get isOpen(): boolean {
    return this.port !== null;
  }

  /** Null while open; otherwise why not ("cannot open: ...", "closed: ...", "stopped"). */
  get problem(): string | null {
    return this.port ? null : this.lastProblem;
  }

  /** The quiet time before an unlock after an answered exchange, in ms (turnaroundMs, at most gapMs). */
  get turnaroundMs(): number {
    return Math.min(this.opts.turnaroundMs ?? this.opts.gapMs, this.opts.gapMs);
  }

  /** The USB adapter's latency timer in ms as read at the last open; null when it has none (not FTDI). */
  get latencyTimerMs(): number | null {
    return this.latency;
  }

  get stats(): BusStats {
    return { ...this.opts.parser.stats, ...this.counters, wakeups: this.alarm.counts.wakeups, idleWakeups: this.alarm.counts.idle };
  }

  /**
   * Run `fn` at `at` (performance.now()) from the bus's one timer, up to a millisecond early; returns
   * a cancel function. The boards' polls go here, so that a poll's reply deadline can fall due in
   * the wake-up of the next poll instead of a wake-up of its own.
   */
  wakeAt(at: number, fn: () => void): () => void {
    return this.alarm.at(at, fn);
  }

  /** Time on the wire for `bytes` at 8N1 (10 bits a byte). */
  wireMs(bytes: number): number {
    return (bytes * 10 * 1000) / this.opts.baudRate;
  }

  /** Opens the port; never throws. When it cannot be opened it keeps retrying with backoff. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.open();
  }

  /** Fails whatever waits, closes the port. Never throws. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    this.clearGapTimer();
    const e = new LockerError(ErrorCode.HardwareUnavailable, `rs485 ${this.opts.path} stopped`, { port: this.opts.path });
    this.failAll(e);
    const port = this.port;
    this.port = null;
    this.up = false;
    this.lastProblem = "stopped";
    if (port) {
      port.removeAllListeners();
      port.on("error", () => {});
      await new Promise<void>((resolve) => port.close(() => resolve()));
    }
  }

  /**
   * Queue one exchange. Resolves with the reply (null for an unanswered command once its bus time
   * has passed). Rejects with HardwareTimeout (sent, no reply) or HardwareUnavailable (not sent:
   * port not open, closed or stopped before the frame's turn, write refused).
   */
  request(x: Exchange<F>): Promise<F | null> {
    if (!this.port) {
      return Promise.reject(
        new LockerError(ErrorCode.HardwareUnavailable, `rs485 ${this.opts.path} not open (${this.lastProblem}): ${x.what}`, {
          port: this.opts.path,
          what: x.what,
        }),
      );
    }
    return new Promise<F | null>((resolve, reject) => {
      const job: Job<F> = { x, resolve, reject };
      const at = x.urgent ? this.queue.findIndex((j) => !j.x.urgent) : -1;
      if (at < 0) this.queue.push(job);
      else this.queue.splice(at, 0, job);
      // Someone waits at a door: a poll's wait that runs on to the next poll is cut back to its own
      // deadline, so a silent board holds the unlock no longer than timeoutMs.
      if (x.urgent && this.deadline && this.deadline.at > this.deadline.precise) this.armDeadline(this.deadline.start, this.deadline.precise, this.deadline.fire);
      this.pump();
    });
  }

  private pump(): void {
    if (this.current || !this.port) return;
    const head = this.queue[0];
    if (!head) return;
    // The quiet time after the last exchange: the whole gap before a poll, the turnaround before an
    // unlock. An unlock queued while a poll waits out the gap goes as soon as the turnaround is over.
    const now = performance.now();
    const at = head.x.urgent ? this.turnaroundAt : this.quietAt;
    if (at > now) {
      this.clearGapTimer();
      // An unlock's turnaround to the fraction of a millisecond (a timer alone is late by up to 2 ms,
      // as long again as the turnaround itself); a poll's gap needs no such care.
      this.gapTimer = runAt(at, () => {
        this.gapTimer = null;
        this.pump();
      }, head.x.urgent ? URGENT_FINE_MS : 0);
      return;
    }
    this.clearGapTimer();
    const job = this.queue.shift()!;
    this.current = job;
    void this.run(job, this.port).then((answered) => {
      // When the port closed meanwhile, onClose already failed this job and freed the bus.
      if (this.current !== job) return;
      this.current = null;
      const end = performance.now();
      this.quietAt = end + this.opts.gapMs;
      this.turnaroundAt = answered ? end + this.turnaroundMs : this.quietAt;
      this.pump();
    });
  }

  /**
   * Arms the reply deadline of the exchange on the bus. A deadline cancelled by its answer (the
   * usual case) still wakes the process when it was the earliest timer (alarm.ts). So when nothing
   * else on the bus is due before it, a poll's wait runs on to the bus's next wake-up (the next
   * board's poll) if that comes within another timeoutMs and no unlock waits: a silence is then
   * noticed in a wake-up the daemon makes anyway, and an answer costs none. An answer that comes in
   * that extra time is taken. Returns the cancel function.
   */
  private replyDeadline(x: Exchange<F>, start: number, precise: number, fire: (waitedMs?: number) => void): () => void {
    let at = precise;
    // Only when the deadline would be the bus's first wake-up: cancelling a later one costs nothing.
    const next = this.alarm.nextAt(performance.now());
    if (!x.urgent && !this.queue.some((j) => j.x.urgent) && next !== undefined && next >= precise && next - precise <= x.timeoutMs) at = next;
    this.armDeadline(start, precise, fire, at);
    // Cancels whichever deadline the exchange has now (an unlock queued meanwhile re-arms it).
    return () => {
      if (this.deadline?.fire !== fire) return;
      this.deadline.cancel();
      this.deadline = null;
    };
  }

  private armDeadline(start: number, precise: number, fire: (waitedMs?: number) => void, at = precise): void {
    this.deadline?.cancel();
    const d: Deadline = {
      precise,
      at,
      start,
      fire,
      cancel: this.alarm.at(at, () => {
        if (this.deadline === d) this.deadline = null;
        fire(at === precise ? undefined : Math.round(at - start));
      }),
    };
    this.deadline = d;
  }

  private clearGapTimer(): void {
    this.gapTimer?.();
    this.gapTimer = null;
  }

  /** One exchange; true when its board answered it (the line is free after a turnaround). Never rejects. */
  private async run(job: Job<F>, port: SerialPort): Promise<boolean> {
    const { x } = job;
    const wire = this.wireMs(x.frame.length);
    const unsent = new Unsent();
    // The waiter exists before the first byte leaves, so a quick reply cannot slip past it.
    const timeoutMs = x.timeoutMs + Math.ceil(wire);
    const start = performance.now();
    const reply = x.reply ? this.matcher.wait(x.reply, timeoutMs, x.what, unsent, (fire) => this.replyDeadline(x, start, start + timeoutMs, fire)) : null;
    reply?.catch(() => {});
    try {
      try {
        job.sent = true;
        await this.write(port, x.frame, wire);
      } catch (e) {
        unsent.abort(e);
        throw e;
      }
      this.counters.written++;
      if (this.log.isLevelEnabled("trace")) this.log.trace({ tx: hex(x.frame), what: x.what }, "tx");
      if (!reply) {
        // The board takes it without a word: it may still be reading it, hold the line.
        await delay(wire + this.opts.gapMs);
        job.resolve(null);
        return false;
      }
      job.resolve(await reply);
      return true;
    } catch (e) {
      if (isLockerError(e, ErrorCode.HardwareTimeout)) {
        this.counters.timeouts++;
        // A reply cut short stays in the parser: count it as discarded now, not with the next reply.
        for (const p of this.opts.parser.flush()) if (p.kind === "discarded") this.discarded(p.bytes, p.reason);
      }
      job.reject(e);
    }
    return false;
  }

  /**
   * Write; a write the port has not taken within a second (the kernel's buffer full and not
   * emptying) is a stalled port. Nothing is drained: tcdrain runs on libuv's thread pool, which the
   * bus does not wait for (serial-binding.ts), and it cost a quarter of the bus's idle CPU when polls
   * used it. The bus writes one frame at a time, so the adapter's buffer is empty and a frame leaves
   * as the kernel takes it: an answered exchange's answer proves it left (its timeout counts the wire
   * time; a frame stuck in the adapter is a timeout, "sent, not answered"), and a command the board
   * does not answer holds the line for its wire time and the gap from then.
   */
  private write(port: SerialPort, frame: Buffer, wireMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      // A stalled write may still leave the port later: "sent, not answered", not "not sent".
      // On the bus's timer: a Node timer set and cleared at every write costs more than the write.
      const stall = this.alarm.at(performance.now() + WRITE_STALL_MS + wireMs, () =>
        reject(new LockerError(ErrorCode.HardwareTimeout, `rs485 ${this.opts.path}: write stalled`, { port: this.opts.path })),
      );
      port.write(frame, (err) => {
        stall();
        if (err) reject(this.unavailable(`write failed: ${err.message}`));
        else resolve();
      });
    });
  }

  private unavailable(why: string): LockerError {
    return new LockerError(ErrorCode.HardwareUnavailable, `rs485 ${this.opts.path}: ${why}`, { port: this.opts.path });
  }

  private onData(chunk: Buffer): void {
    for (const p of this.opts.parser.push(chunk)) {
      if (p.kind === "discarded") {
        this.discarded(p.bytes, p.reason);
        continue;
      }
      // Only at trace: the hex and the description are made for the log line alone (8 a second at idle).
      if (this.log.isLevelEnabled("trace")) this.log.trace({ rx: hex(p.raw), frame: this.opts.describe(p.frame) }, "rx");
      if (this.matcher.offer(p.frame)) continue;
      this.counters.unsolicited++;
      this.emit("unsolicited", p.frame);
    }
  }

  private discarded(bytes: Buffer, reason: string): void {
    this.log.debug({ discarded: hex(bytes), reason, total: this.opts.parser.stats.discardedBytes }, "discarded bytes");
    this.emit("discarded", bytes, reason);
  }

  private async open(): Promise<void> {
    const { path, baudRate } = this.opts;
    // Loaded on first use: a bank without RS485 boards never pays serialport's start-up.
    const { newSerialPort } = await import("../serial-binding.js");
    const port = newSerialPort({ path, baudRate, dataBits: 8, stopBits: 1, parity: "none", autoOpen: false });
    return new Promise<void>((resolve) => {
      port.open((err) => {
        if (!this.running) {
          if (!err) port.close();
          return resolve();
        }
        if (err) {
          this.down(`cannot open: ${err.message}`);
          return resolve();
        }
        this.port = port;
        this.up = true;
        this.counters.opens++;
        this.reopenBackoff.reset();
        port.on("data", (chunk: Buffer) => this.onData(chunk));
        port.on("error", (e) => this.log.warn({ err: e.message }, "serial port error"));
        port.on("close", (e?: Error | null) => this.onClose(port, e?.message ?? "closed"));
        this.log.info({ baudRate }, "rs485 port open");
        // Read at every open: the adapter may have been swapped while the port was down.
        this.latency = latencyTimerMs(path, this.opts.sysfsRoot);
        if (this.latency !== null && this.latency > 1) {
          this.log.warn(
            { latencyTimerMs: this.latency },
            `USB adapter's latency timer is ${this.latency} ms: board answers arrive up to ${this.latency} ms late and an unlock waits for them; set it to 1 ms (hardware/udev/99-lockerd-rs485.rules)`,
          );
        }
        this.emit("open");
        this.pump();
        resolve();
      });
    });
  }

  private onClose(port: SerialPort, reason: string): void {
    if (this.port !== port) return;
    port.removeAllListeners();
    port.on("error", () => {});
    this.port = null;
    for (const p of this.opts.parser.flush("port closed")) if (p.kind === "discarded") this.discarded(p.bytes, p.reason);
    this.failAll(this.unavailable(`port closed (${reason})`));
    this.down(`closed: ${reason}`);
  }

  private failAll(e: LockerError): void {
    // The exchange on the wire may have reached its board (an unlock may have fired): it failed
    // as "not answered", never as "not sent" (the bank rolls back only what was never sent).
    this.clearGapTimer();
    const current = this.current;
    if (current?.sent) current.reject(new LockerError(ErrorCode.HardwareTimeout, `${e.message}: ${current.x.what} sent, no answer`, { ...e.context, what: current.x.what }));
    this.matcher.cancelAll(e);
    current?.reject(e);
    this.current = null;
    for (const job of this.queue.splice(0)) job.reject(e);
  }

  private down(problem: string): void {
    this.lastProblem = problem;
    if (this.up || this.reopenBackoff.failures === 0) {
      this.log.warn({ problem }, "rs485 port down; reopening with backoff");
      this.emit("down", problem);
    } else {
      this.log.debug({ problem, attempt: this.reopenBackoff.failures }, "rs485 port still down");
    }
    this.up = false;
    if (!this.running) return;
    const wait = this.reopenBackoff.next();
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      if (this.running) void this.open();
    }, wait);
  }
}
