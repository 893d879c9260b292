// A fingerprint module of the R30x / R503 / AS608 family on a serial line (codec.ts has the
// protocol). The module does the biometrics itself: it takes the image, extracts the features,
// searches its own flash library of templates and answers with a page number ("slot") and a match
// score. lockerd keeps only slot numbers; what a slot means (whose finger) is the bank's business.
//
//   open port ─▶ VfyPwd ─▶ ReadSysPara ─▶ ready ─▶ identify loop: GenImg ─┬─ no finger: wait pollMs
//       ▲            │ wrong password / silent                           └─ image: Img2Tz(1), Search
//       └── backoff ◀┘ (fault; recovered once ready again)                  ─▶ finger / rejected
//
// One command is on the wire at a time (a queue); each waits for its ack up to `timeoutMs`. A
// garbled answer (bad checksum, or the module saying it got our packet garbled) is asked again at
// once; a silent module is asked once more, then it is faulted and the handshake retried with
// backoff, over the same port. A port that vanishes is reopened with backoff. Enrolment pauses the
// identify loop, which resumes afterwards whatever happened.
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { SerialPort } from "serialport";
import { Backoff } from "../../../backoff.js";
import { ErrorCode, LockerError, isLockerError } from "../../../errors.js";
import type { Logger } from "../../../log.js";
import type { AvailabilityEvents, Part } from "../../parts.js";
import type { DeviceHealth } from "../../types.js";
import { FingerprintReaderConfig } from "./config.js";
import {
  Confirm,
  FingerprintParser,
  ackFits,
  commands,
  confirmText,
  encodeCommand,
  hex,
  parseIndexTable,
  parseSearch,
  parseSysPara,
  toAck,
  type Ack,
  type Command,
  type InstructionName,
} from "./codec.js";

export { FingerprintReaderConfig };

export type FingerprintRejectReason = "no_match" | "low_score" | "bad_image";

export interface FingerprintEvents {
  /** A finger on the sensor matched the template in `slot` with at least the threshold score. Once per touch. */
  finger: [match: { slot: number; score: number }];
  /** A touch that identified nobody: no template matched, the best one scored under the threshold, or no usable image. Once per touch. */
  rejected: [rejection: { reason: FingerprintRejectReason; slot?: number; score?: number }];
}

/** What enrol asks of the person: put the finger on (capture n of `of`), take it off, or do a capture again. */
export type EnrollStep = { step: "place"; n: number; of: number } | { step: "lift" } | { step: "again"; n: number; of: number; why: string };

export interface EnrollOptions {
  /** Touches per enrolment: 2, or 3 (the third verified against the template made of the first two). */
  captures?: 2 | 3;
  /** Longest wait for each step (a finger placed, a finger lifted), ms. */
  timeoutMs?: number;
  /** Aborted: the enrolment ends at the next look at the sensor (EnrollError "cancelled"). */
  signal?: AbortSignal;
}

export type EnrollFailure = "bad_input" | "no_free_slot" | "bad_slot" | "timeout" | "combine_failed" | "bad_image" | "module_fault" | "busy" | "stopped" | "cancelled";

const ENROLL_CODES: Record<EnrollFailure, ErrorCode> = {
  bad_input: ErrorCode.BadInput,
  no_free_slot: ErrorCode.NoFit,
  bad_slot: ErrorCode.BadInput,
  timeout: ErrorCode.Expired,
  combine_failed: ErrorCode.InvalidCredential,
  bad_image: ErrorCode.InvalidCredential,
  module_fault: ErrorCode.HardwareUnavailable,
  busy: ErrorCode.Busy,
  stopped: ErrorCode.ShuttingDown,
  cancelled: ErrorCode.BadInput,
};

/** Why an enrolment failed: `reason` says exactly, `code` is the usual LockerError code for it. */
export class EnrollError extends LockerError {
  constructor(
    readonly reason: EnrollFailure,
    message: string,
    context: Record<string, unknown> = {},
  ) {
    super(ENROLL_CODES[reason], message, { ...context, reason });
  }
}

export interface FingerprintDeps {
  log: Logger;
  /** Backoff jitter (tests). */
  random?: () => number;
}

export interface FingerprintStats {
  /** Commands answered. */
  exchanges: number;
  /** Commands sent again after a garbled answer or none. */
  resent: number;
  timeouts: number;
  /** Answers whose checksum did not add up. */
  badChecksums: number;
  /** Acks no command was waiting for, or that did not fit it (a late answer). */
  strays: number;
  /** Acks from another module address. */
  wrongAddress: number;
  /** Noise bytes between packets. */
  discardedBytes: number;
}

/** Images a touch may yield unusable before it counts as rejected (the finger settling on the glass). */
const IMAGE_TRIES = 3;
/** Unusable images in one enrolment capture before the enrolment fails. */
const ENROLL_BAD_IMAGES = 3;
/** Garbled answers to one command before the module counts as faulted. */
const MAX_RESENDS = 3;
const DEFAULT_STEP_MS = 20_000;
const BAD_IMAGE_CODES: ReadonlySet<number> = new Set([Confirm.ImageFail, Confirm.ImageMessy, Confirm.FeatureFail, Confirm.InvalidImage]);

type Outcome = { kind: "ack"; ack: Ack } | { kind: "timeout" } | { kind: "garbled"; why: "checksum" | "packet error" };

interface Waiter {
  name: InstructionName;
  done(o: Outcome): void;
  fail(e: unknown): void;
}

interface Job {
  c: Command;
  resolve(ack: Ack): void;
  reject(e: unknown): void;
}

type ProblemKind = "port" | "silent" | "password" | "module";

export class FingerprintModule extends EventEmitter<FingerprintEvents> implements Part {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  /** The keypad dialogue this reader belongs to (config `terminal`), if it names one. */
  readonly terminal: string | undefined;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly parser = new FingerprintParser();
  private port: SerialPort | undefined;
  private running = false;
  private state: "stopped" | "opening" | "handshake" | "ready" = "stopped";
  private problem = "not started";
  private problemKind: ProblemKind = "port";
  private faulted = false;
  private everReady = false;
  private retry: NodeJS.Timeout | undefined;
  private librarySize = 0;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private waiter: Waiter | undefined;
  private loop: Promise<void> | undefined;
  private pauses = 0;
  private enrolling = false;
  /** A finger has been on the sensor since the last touch was handled: no new event until it is lifted. */
  private fingerDown = false;
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private foreignAddress: number | undefined;
  private readonly counters = { exchanges: 0, resent: 0, timeouts: 0, strays: 0, wrongAddress: 0 };

  constructor(
    private readonly config: FingerprintReaderConfig,
    deps: FingerprintDeps,
  ) {
    super();
    this.name = `fingerprint ${config.port}`;
    this.terminal = config.terminal;
    this.log = deps.log.child({ module: "reader", reader: this.name });
    this.backoff = new Backoff({ baseMs: Math.min(500, config.retryMaxMs), capMs: config.retryMaxMs, random: deps.random });
  }

  get stats(): FingerprintStats {
    const p = this.parser.stats;
    return { ...this.counters, badChecksums: p.badChecksums, discardedBytes: p.discardedBytes };
  }

  /** The library size in use: slots 0..capacity-1 (0 until the module has answered ReadSysPara). */
  get capacity(): number {
    return this.librarySize;
  }

  get ready(): boolean {
    return this.state === "ready";
  }

  health(): DeviceHealth {
    const health =
      this.state === "ready" ? "ok" : this.problemKind === "password" || this.problemKind === "module" ? "faulted" : this.everReady ? "degraded" : "absent";
    const what = this.state === "ready" ? `ready, library ${this.librarySize}${this.enrolling ? ", enrolling" : ""}` : this.problem;
    return { name: this.name, kind: "reader", health, detail: `${what}; ${this.summary()}` };
  }

  /** Opens the port and starts the handshake; never throws. A module absent or refusing is faulted and retried. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.state = "opening";
    this.problem = "opening the port";
    await this.open();
  }

  /** Closes the port, cancels timers; whatever waits (an enrolment, a command) fails. Never throws. */
  async stop(): Promise<void> {
    this.running = false;
    this.state = "stopped";
    this.problem = "stopped";
    clearTimeout(this.retry);
    this.retry = undefined;
    this.wake();
    this.failAll(new LockerError(ErrorCode.HardwareUnavailable, `${this.name} stopped`, { port: this.config.port }));
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    await this.loop?.catch(() => undefined);
  }

  /**
   * Enrol a finger into `target` (a slot number, or "free": the lowest slot the module's index
   * table shows empty). Pauses identification; `onStep` tells what the person should do. Resolves
   * with the slot the template was stored in; rejects with an EnrollError. Identification resumes
   * either way; a finger still on the sensor then is not identified until it has been lifted.
   *
   * Three captures on modules with two character buffers (R30x, AS608; the R503 has more, but
   * the same sequence works there): captures 1 and 2 → buffers 1 and 2 → RegModel (the template
   * goes back into both buffers); capture 3 → buffer 2 → Match against the template in buffer 1,
   * so a third touch that is not the same finger fails the enrolment (combine_failed). Store
   * then writes buffer 1.
   */
  async enroll(target: number | "free", onStep: (s: EnrollStep) => void, opts: EnrollOptions = {}): Promise<{ slot: number }> {
    const captures = opts.captures ?? 2;
    const stepMs = opts.timeoutMs ?? DEFAULT_STEP_MS;
    if (captures !== 2 && captures !== 3) throw new EnrollError("bad_input", `captures must be 2 or 3, not ${String(captures)}`);
    if (this.enrolling) throw new EnrollError("busy", `${this.name} is already enrolling`);
    if (this.state !== "ready") throw new EnrollError("module_fault", `${this.name} is not ready (${this.problem})`);
    if (target !== "free") this.checkSlot(target, (m) => new EnrollError("bad_slot", m, { slot: target }));
    this.enrolling = true;
    this.pauses++;
    this.wake();
    const step = (s: EnrollStep) => {
      try {
        onStep(s);
      } catch (e) {
        this.log.error({ err: e }, "enrol step listener threw");
      }
    };
    try {
      // The identify loop may be in the middle of a touch (its Img2Tz writes buffer 1): let it finish.
      await this.loop?.catch(() => undefined);
      const slot = target === "free" ? await this.lowestFree() : target;
      const deadline = () => performance.now() + stepMs;
      // A finger left on the sensor is not a capture: each one starts with a fresh touch.
      const first = await this.call(commands.genImg());
      this.fingerDown = first.code !== Confirm.NoFinger;
      if (this.fingerDown) {
        step({ step: "lift" });
        await this.waitFor("lifted", deadline(), opts.signal);
      }
      for (let n = 1; n <= captures; n++) {
        await this.capture(n, captures, n === 1 ? 1 : 2, step, stepMs, opts.signal);
        if (n === 2) {
          const r = await this.call(commands.regModel());
          if (r.code === Confirm.CombineFail) throw new EnrollError("combine_failed", "the two touches are not the same finger (RegModel 0A)");
          if (r.code !== Confirm.Ok) throw this.enrollModuleError("RegModel", r);
        }
        if (n === 3) {
          const r = await this.call(commands.match());
          if (r.code === Confirm.NoMatch) throw new EnrollError("combine_failed", "the third touch does not match the first two (Match 08)");
          if (r.code !== Confirm.Ok) throw this.enrollModuleError("Match", r);
        }
      }
      const r = await this.call(commands.store(1, slot));
      if (r.code === Confirm.BadLocation) throw new EnrollError("bad_slot", `slot ${slot} is beyond the module's library (Store 0B)`, { slot });
      if (r.code !== Confirm.Ok) throw this.enrollModuleError("Store", r);
      this.log.info({ slot, captures }, "fingerprint enrolled");
      return { slot };
    } catch (e) {
      if (e instanceof EnrollError) throw e;
      if (!this.running) throw new EnrollError("stopped", `${this.name} stopped during the enrolment`);
      this.exchangeFailed(e, "enrol");
      throw new EnrollError("module_fault", `${this.name}: ${(e as Error).message}`);
    } finally {
      this.enrolling = false;
      this.pauses--;
      this.startLoop();
    }
  }

  /** Delete the templates in `slots` (runs of consecutive slots go as one DeletChar). */
  async deleteSlots(slots: readonly number[]): Promise<void> {
    this.mustBeReady();
    const bad = (m: string) => new LockerError(ErrorCode.BadInput, m, { slots });
    for (const s of slots) this.checkSlot(s, bad);
    const sorted = [...new Set(slots)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; ) {
      let j = i;
      while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
      const r = await this.guarded(commands.deletChar(sorted[i]!, j - i + 1));
      if (r.code !== Confirm.Ok) {
        throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: deleting slots ${sorted[i]}..${sorted[j]}: ${confirmText(r.code)}`, { code: r.code });
      }
      i = j + 1;
    }
    this.log.info({ count: sorted.length }, "fingerprint templates deleted");
  }

  /** The slots holding a template, from the module's index table. */
  async usedSlots(): Promise<number[]> {
    this.mustBeReady();
    const used: number[] = [];
    for (let index = 0; index * 256 < this.librarySize; index++) {
      const r = await this.guarded(commands.readIndexTable(index));
      const pages = parseIndexTable(r, index);
      if (!pages) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: ReadIndexTable ${index}: ${confirmText(r.code)}`, { code: r.code });
      used.push(...pages.filter((p) => p < this.librarySize));
    }
    return used;
  }

  // ---- enrolment steps ----

  private async capture(n: number, of: number, buffer: number, step: (s: EnrollStep) => void, stepMs: number, signal?: AbortSignal): Promise<void> {
    for (let bad = 0; ; ) {
      step({ step: "place", n, of });
      let code = await this.waitFor("finger", performance.now() + stepMs, signal);
      if (code === Confirm.Ok) code = (await this.call(commands.img2Tz(buffer))).code;
      if (code !== Confirm.Ok && !BAD_IMAGE_CODES.has(code)) throw this.enrollModuleError("GenImg/Img2Tz", { code, data: Buffer.alloc(0) });
      if (code !== Confirm.Ok) {
        if (++bad >= ENROLL_BAD_IMAGES) throw new EnrollError("bad_image", `no usable image of touch ${n} in ${bad} tries (${confirmText(code)})`);
        step({ step: "again", n, of, why: confirmText(code) });
      }
      step({ step: "lift" });
      await this.waitFor("lifted", performance.now() + stepMs, signal);
      if (code === Confirm.Ok) return;
    }
  }

  /** GenImg until a finger is on ("finger": its GenImg code, 00 or an image failure) or off ("lifted"). */
  private async waitFor(what: "finger" | "lifted", deadline: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (signal?.aborted) throw new EnrollError("cancelled", "enrolment cancelled");
      const { code } = await this.call(commands.genImg());
      // What the identify loop will find when it resumes: a finger left on is not a new touch.
      this.fingerDown = code !== Confirm.NoFinger;
      if (code === Confirm.MustVerifyPassword) throw this.enrollModuleError("GenImg", { code, data: Buffer.alloc(0) });
      if (what === "finger" ? code !== Confirm.NoFinger : code === Confirm.NoFinger) return code;
      if (performance.now() >= deadline) {
        throw new EnrollError("timeout", what === "finger" ? "no finger was placed in time" : "the finger was not lifted in time");
      }
      await this.sleep(this.config.pollMs);
      if (!this.running) throw new EnrollError("stopped", `${this.name} stopped during the enrolment`);
    }
  }

  private async lowestFree(): Promise<number> {
    const used = new Set(await this.usedSlots());
    for (let s = 0; s < this.librarySize; s++) if (!used.has(s)) return s;
    throw new EnrollError("no_free_slot", `all ${this.librarySize} template slots are in use`);
  }

  private enrollModuleError(what: string, ack: Ack): EnrollError {
    if (ack.code === Confirm.MustVerifyPassword) this.fail("module asks for its password again (restarted?)", "module", "handshake");
    return new EnrollError("module_fault", `${this.name}: ${what}: ${confirmText(ack.code)}`, { code: ack.code });
  }

  // ---- identification ----

  private startLoop(): void {
    if (this.loop || !this.running || this.state !== "ready" || this.pauses > 0) return;
    this.loop = this.identify()
      .catch((e: unknown) => this.exchangeFailed(e, "identify"))
      .finally(() => {
        this.loop = undefined;
        this.startLoop();
      });
  }

  private async identify(): Promise<void> {
    let badImages = 0;
    while (this.running && this.state === "ready" && this.pauses === 0) {
      const img = await this.call(commands.genImg());
      if (img.code === Confirm.NoFinger) {
        this.fingerDown = false;
        badImages = 0;
        await this.sleep(this.config.pollMs);
        continue;
      }
      if (img.code === Confirm.MustVerifyPassword) return this.fail("module asks for its password again (restarted?)", "module", "handshake");
      if (this.fingerDown) {
        // Still the touch already answered for.
        await this.sleep(this.config.pollMs);
        continue;
      }
      const code = img.code === Confirm.Ok ? (await this.call(commands.img2Tz(1))).code : img.code;
      if (code !== Confirm.Ok) {
        if (code === Confirm.MustVerifyPassword) return this.fail("module asks for its password again (restarted?)", "module", "handshake");
        this.log.debug({ code, why: confirmText(code) }, "fingerprint image unusable");
        if (++badImages >= IMAGE_TRIES) {
          this.fingerDown = true;
          this.emitSafe("rejected", { reason: "bad_image" });
        }
        await this.sleep(this.config.pollMs);
        continue;
      }
      const s = await this.call(commands.search(1, 0, this.librarySize));
      this.fingerDown = true;
      const hit = parseSearch(s);
      if (hit && hit.score >= this.config.threshold) {
        this.log.debug({ slot: hit.page, score: hit.score }, "fingerprint matched");
        this.emitSafe("finger", { slot: hit.page, score: hit.score });
      } else if (hit) {
        this.log.debug({ slot: hit.page, score: hit.score, threshold: this.config.threshold }, "fingerprint match under the threshold");
        this.emitSafe("rejected", { reason: "low_score", slot: hit.page, score: hit.score });
      } else if (s.code === Confirm.NotFound) {
        this.emitSafe("rejected", { reason: "no_match" });
      } else if (s.code === Confirm.MustVerifyPassword) {
        return this.fail("module asks for its password again (restarted?)", "module", "handshake");
      } else {
        this.log.warn({ code: s.code, why: confirmText(s.code) }, "fingerprint search failed");
        this.emitSafe("rejected", { reason: "bad_image" });
      }
    }
  }

  private emitSafe<K extends keyof FingerprintEvents>(event: K, ...args: FingerprintEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: FingerprintEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      this.log.error({ err: e, event }, "fingerprint listener threw");
    }
  }

  // ---- connection ----

  private async open(): Promise<void> {
    if (!this.running) return;
    let newSerialPort: typeof import("../../serial-binding.js").newSerialPort;
    try {
      ({ newSerialPort } = await import("../../serial-binding.js"));
    } catch (e) {
      return this.fail(`serialport cannot load (${(e as Error).message}): reinstall lockerd on this machine (npm ci builds it)`, "port", "open");
    }
    if (!this.running) return;
    this.state = "opening";
    const { port: path, baudRate } = this.config;
    let port: SerialPort;
    try {
      port = newSerialPort({ path, baudRate, dataBits: 8, stopBits: 1, parity: "none", autoOpen: false });
    } catch (e) {
      return this.fail(`cannot open ${path}: ${(e as Error).message}`, "port", "open");
    }
    port.on("error", (e) => this.portLost(port, e.message));
    port.on("close", (e?: Error | null) => this.portLost(port, e?.message ?? "closed"));
    await new Promise<void>((resolve) => {
      port.open((err) => {
        resolve();
        if (!this.running) {
          if (!err) port.close();
          return;
        }
        if (err) return this.fail(`cannot open ${path}: ${err.message}`, "port", "open");
        this.port = port;
        this.parser.flush();
        port.on("data", (chunk: Buffer) => this.onData(chunk));
        this.log.debug({ baudRate }, "fingerprint port open");
        void this.handshake();
      });
    });
  }

  private portLost(port: SerialPort, why: string): void {
    if (this.port !== port) return;
    this.port = undefined;
    port.removeAllListeners();
    port.on("error", () => undefined);
    if (port.isOpen) port.close(() => undefined);
    this.parser.flush();
    this.failAll(new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: port lost (${why})`, { port: this.config.port }));
    this.fail(`port lost (${why}); reopening`, "port", "open");
  }

  /** VfyPwd, then ReadSysPara for the library size; ready, or faulted and retried with backoff. */
  private async handshake(): Promise<void> {
    if (!this.running || !this.port) return;
    this.state = "handshake";
    this.foreignAddress = undefined;
    try {
      const v = await this.call(commands.vfyPwd(this.config.password));
      if (v.code === Confirm.WrongPassword) {
        return this.fail("wrong password: the module refuses the configured `password` (VfyPwd 13)", "password", "handshake");
      }
      if (v.code !== Confirm.Ok) return this.fail(`VfyPwd answered: ${confirmText(v.code)}`, "module", "handshake");
      const s = await this.call(commands.readSysPara());
      const sys = parseSysPara(s);
      if (!sys) return this.fail(`ReadSysPara answered: ${confirmText(s.code)}`, "module", "handshake");
      const size = this.config.librarySize ?? sys.librarySize;
      if (this.config.librarySize && this.config.librarySize > sys.librarySize) {
        this.log.warn({ configured: this.config.librarySize, module: sys.librarySize }, "librarySize is larger than the module's library");
      }
      this.librarySize = Math.max(1, Math.min(1024, size));
      this.becomeReady(sys.securityLevel);
    } catch (e) {
      if (!this.running || !this.port) return; // stopped, or the port went (portLost reopens it)
      this.exchangeFailed(e, "handshake");
    }
  }

  private becomeReady(securityLevel: number): void {
    this.state = "ready";
    this.problem = "ready";
    this.backoff.reset();
    this.fingerDown = false;
    if (this.faulted) {
      this.faulted = false;
      this.log.info({ library: this.librarySize }, "fingerprint module recovered");
      this.availability.emit("recovered");
    } else {
      this.log.info({ library: this.librarySize, securityLevel }, "fingerprint module ready");
    }
    this.everReady = true;
    this.startLoop();
  }

  /** A command that got no usable answer: the module is faulted (unless it was the port, or a stop). */
  private exchangeFailed(e: unknown, during: string): void {
    if (!this.running || !this.port) return;
    if (isLockerError(e, ErrorCode.HardwareTimeout)) {
      const other = this.foreignAddress;
      const detail =
        other !== undefined
          ? `answers come from address 0x${other.toString(16).toUpperCase()}, not the configured 0x${this.config.address.toString(16).toUpperCase()}`
          : `module not answering (${(e as Error).message})`;
      return this.fail(detail, other !== undefined ? "module" : "silent", "handshake");
    }
    this.log.error({ err: e, during }, "fingerprint module: unexpected error");
    this.fail(`unexpected error during ${during}: ${(e as Error).message}`, "module", "handshake");
  }

  /** Faulted (one `fault` event per outage; the detail is kept up to date) and retried with backoff. */
  private fail(detail: string, kind: ProblemKind, retry: "open" | "handshake"): void {
    if (!this.running) return;
    this.state = retry === "open" ? "opening" : "handshake";
    if (detail !== this.problem) this.log.warn({ problem: detail }, "fingerprint module fault; retrying with backoff");
    this.problem = detail;
    this.problemKind = kind;
    if (!this.faulted) {
      this.faulted = true;
      this.availability.emit("fault", detail);
    }
    this.wake();
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (retry === "open") void this.open();
      else void this.handshake();
    }, this.backoff.next());
    this.retry.unref();
  }

  // ---- exchanges ----

  private mustBeReady(): void {
    if (this.state !== "ready") throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not ready (${this.problem})`, { port: this.config.port });
  }

  private checkSlot(slot: number, err: (m: string) => Error): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.librarySize) throw err(`slot ${slot} is not within 0..${this.librarySize - 1}`);
  }

  /** A command from the public API: a module that stops answering is faulted, the error rethrown. */
  private async guarded(c: Command): Promise<Ack> {
    try {
      return await this.call(c);
    } catch (e) {
      this.exchangeFailed(e, c.name);
      throw e;
    }
  }

  /** Queue one command; resolves with its ack. Rejects HardwareTimeout (no usable answer) or HardwareUnavailable (port gone, stopped). */
  private call(c: Command): Promise<Ack> {
    if (!this.port) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: port not open (${this.problem})`, { port: this.config.port }));
    return new Promise<Ack>((resolve, reject) => {
      this.queue.push({ c, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.current || !this.port) return;
    const job = this.queue.shift();
    if (!job) return;
    this.current = job;
    this.run(job.c)
      .then(job.resolve, job.reject)
      .finally(() => {
        if (this.current === job) this.current = undefined;
        this.pump();
      });
  }

  private async run(c: Command): Promise<Ack> {
    let timeouts = 0;
    let garbled = 0;
    for (;;) {
      const port = this.port;
      if (!port) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: port closed`, { port: this.config.port });
      const o = await this.attempt(port, c);
      if (o.kind === "ack") {
        this.counters.exchanges++;
        return o.ack;
      }
      if (o.kind === "timeout") {
        this.counters.timeouts++;
        for (const p of this.parser.flush()) this.log.debug({ discarded: hex(p.kind === "discarded" ? p.bytes : p.raw) }, "incomplete answer dropped");
        if (++timeouts > 1) throw new LockerError(ErrorCode.HardwareTimeout, `${c.name}: no answer in ${this.config.timeoutMs} ms, twice`, { command: c.name });
      } else if (++garbled > MAX_RESENDS) {
        throw new LockerError(ErrorCode.HardwareTimeout, `${c.name}: ${garbled} garbled answers (${o.why})`, { command: c.name });
      }
      this.counters.resent++;
      this.log.debug({ command: c.name, why: o.kind === "timeout" ? "timeout" : o.why }, "fingerprint command sent again");
    }
  }

  private attempt(port: SerialPort, c: Command): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const end = () => {
        clearTimeout(timer);
        if (this.waiter === waiter) this.waiter = undefined;
      };
      const waiter: Waiter = {
        name: c.name,
        done: (o) => {
          end();
          resolve(o);
        },
        fail: (e) => {
          end();
          reject(e);
        },
      };
      const timer = setTimeout(() => waiter.done({ kind: "timeout" }), this.config.timeoutMs);
      this.waiter = waiter;
      const bytes = encodeCommand(this.config.address, c);
      this.log.trace({ tx: hex(bytes), command: c.name }, "tx");
      port.write(bytes, (err) => {
        if (err) waiter.fail(new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: write failed: ${err.message}`, { port: this.config.port }));
      });
    });
  }

  private onData(chunk: Buffer): void {
    for (const p of this.parser.push(chunk)) {
      if (p.kind === "discarded") {
        this.log.debug({ discarded: hex(p.bytes), reason: p.reason }, "fingerprint bytes discarded");
        if (p.reason === "checksum") this.waiter?.done({ kind: "garbled", why: "checksum" });
        continue;
      }
      this.log.trace({ rx: hex(p.raw) }, "rx");
      const ack = toAck(p.packet);
      if (p.packet.address !== this.config.address) {
        this.counters.wrongAddress++;
        this.foreignAddress = p.packet.address;
        continue;
      }
      const w = this.waiter;
      if (!ack || !w || !ackFits(w.name, ack)) {
        this.counters.strays++;
        continue;
      }
      if (ack.code === Confirm.PacketError) w.done({ kind: "garbled", why: "packet error" });
      else w.done({ kind: "ack", ack });
    }
  }

  private failAll(e: LockerError): void {
    this.waiter?.fail(e);
    this.waiter = undefined;
    for (const job of this.queue.splice(0)) job.reject(e);
  }

  // ---- timers ----

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const s = {
        timer: setTimeout(() => {
          this.sleepers.delete(s);
          resolve();
        }, ms),
        resolve,
      };
      this.sleepers.add(s);
    });
  }

  /** Ends every sleep now (a pause, a fault, a stop), so the loop notices at once. */
  private wake(): void {
    for (const s of this.sleepers) {
      clearTimeout(s.timer);
      s.resolve();
    }
    this.sleepers.clear();
  }

  private summary(): string {
    const s = this.stats;
    const parts = [`${s.exchanges} exchanges`];
    if (s.resent) parts.push(`${s.resent} resent`);
    if (s.timeouts) parts.push(`${s.timeouts} timeouts`);
    if (s.badChecksums) parts.push(`${s.badChecksums} bad checksums`);
    if (s.strays) parts.push(`${s.strays} stray answers`);
    if (s.wrongAddress) parts.push(`${s.wrongAddress} from another address`);
    if (s.discardedBytes) parts.push(`${s.discardedBytes} noise bytes`);
    return parts.join(", ");
  }
}
