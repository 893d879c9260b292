// The kill harness's two outside views of a bank, each as a person or a server would have it:
//
//   SimLink     the sim socket (keypad, doors, display, unlock, notify); every wait ends the moment
//               the daemon dies (Killed), so a flow cut by SIGKILL stops where it was
//   ServerLink  the central server over a real mosquitto: signed commands, replies by id (late ones
//               too, after a restart), events by seq, pickup codes unsealed from parcel.deposited
import { randomUUID, sign, type KeyObject } from "node:crypto";
import { connect, type Socket } from "node:net";
import type { IPublishPacket, MqttClient } from "mqtt";
import type { LedgerEvent } from "../src/domain/events.js";
import { SimEvent } from "../src/sim/protocol.js";
import type { ReplyEnvelope } from "../src/sync/commands.js";
import { canonicalCommand, topics, type Topics } from "../src/sync/contract.js";
import { openSealed, type SealedBox } from "../src/sync/seal.js";
import type { Mosquitto } from "./broker.js";

/** The daemon went away while a step waited on it: not a failure of the step. */
export class Killed extends Error {
  constructor() {
    super("the daemon's socket closed");
  }
}

/** A step that waited this long on a live daemon: a stall. */
export class Stalled extends Error {}

/** How long a keypad step or a command may wait for its answer (generous: CI runs test files side by side). */
export const STEP_MS = 6000;

type Waiter = { pred: (e: SimEvent) => boolean; resolve: (e: SimEvent) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class SimLink {
  readonly events: SimEvent[] = [];
  /** Lines that are not a SimEvent of src/sim/protocol.ts. */
  readonly unreadable: string[] = [];
  private buf = "";
  private waiters: Waiter[] = [];
  private readonly listeners: ((e: SimEvent) => void)[] = [];
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const parsed = SimEvent.safeParse(safeJson(line));
        if (!parsed.success) {
          this.unreadable.push(line);
          continue;
        }
        const ev = parsed.data;
        this.events.push(ev);
        for (const l of this.listeners) l(ev);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(ev)) return true;
          clearTimeout(w.timer);
          w.resolve(ev);
          return false;
        });
      }
    });
    const gone = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Killed());
      }
    };
    socket.on("close", gone);
    socket.on("error", gone);
  }

  static async connect(path: string): Promise<SimLink> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const link = new SimLink(socket);
    await link.waitFor((e) => e.ev === "hello");
    return link;
  }

  /** Every event as it arrives (the unlock monitor). */
  onEvent(fn: (e: SimEvent) => void): void {
    this.listeners.push(fn);
  }

  send(op: Record<string, unknown>): void {
    if (this.closed) throw new Killed();
    this.socket.write(`${JSON.stringify(op)}\n`);
  }

  mark(): number {
    return this.events.length;
  }

  /** The first event from `from` on matching pred; Killed when the daemon dies first, Stalled after timeoutMs. */
  waitFor<T extends SimEvent["ev"] = SimEvent["ev"]>(pred: (e: SimEvent) => boolean, opts: { from?: number; timeoutMs?: number; what?: string } = {}): Promise<Extract<SimEvent, { ev: T }>> {
    const seen = this.events.slice(opts.from ?? 0).find(pred);
    if (seen) return Promise.resolve(seen as Extract<SimEvent, { ev: T }>);
    if (this.closed) return Promise.reject(new Killed());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        const last = this.events.slice(-4).map((e) => JSON.stringify(e)).join(" ");
        reject(new Stalled(`no ${opts.what ?? "event"} within ${opts.timeoutMs ?? STEP_MS} ms; last: ${last}`));
      }, opts.timeoutMs ?? STEP_MS);
      this.waiters.push({ pred, resolve: (e) => resolve(e as Extract<SimEvent, { ev: T }>), reject, timer });
    });
  }

  async state(): Promise<Extract<SimEvent, { ev: "state" }>["compartments"]> {
    const m = this.mark();
    this.send({ op: "state" });
    return (await this.waitFor<"state">((e) => e.ev === "state", { from: m, what: "state" })).compartments;
  }

  /** The newest compartment view the daemon broadcast (or answered). */
  lastState(): Extract<SimEvent, { ev: "state" }>["compartments"] | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (e.ev === "state") return e.compartments;
    }
    return undefined;
  }

  close(): void {
    this.socket.destroy();
  }
}

export const display = (text: string) => (e: SimEvent) => e.ev === "display" && e.lines.some((l) => l.includes(text));

export interface SentCommand {
  id: string;
  name: string;
  args: Record<string, unknown>;
  payload: string;
  /** Every reply received for this id, in order (a re-send may be answered again). */
  replies: ReplyEnvelope[];
}

/** The central server's side of one bank: what a real server would see and send. */
export class ServerLink {
  readonly t: Topics;
  /** Events by seq (at least once: a duplicate overwrites with the same content, or is a violation). */
  readonly events = new Map<number, LedgerEvent>();
  /** The same seq received with a different hash: the bank rewrote a published event. */
  readonly rewritten: { seq: number; first: string; again: string }[] = [];
  duplicates = 0;
  readonly commands = new Map<string, SentCommand>();
  /** Pickup codes opened from sealedCode, by parcel. */
  readonly sealedCodes = new Map<string, string>();
  /** Status messages (online / offline), in order. */
  readonly statuses: { state: string; at: number }[] = [];
  /** Messages that could not be read (JSON, or a sealed code that does not open). */
  readonly unreadable: string[] = [];
  private client!: MqttClient;
  private readonly replyListeners: ((cmd: SentCommand, reply: ReplyEnvelope) => void)[] = [];
  private readonly eventListeners: ((e: LedgerEvent) => void)[] = [];

  constructor(
    private readonly broker: Mosquitto,
    private readonly bank: { site: string; device: string },
    private readonly keys: { sign: KeyObject; seal: KeyObject },
  ) {
    this.t = topics("lockers", bank.site, bank.device);
  }

  async connect(): Promise<void> {
    this.client = await this.broker.client({ clean: true }, (c) => c.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet)));
    await this.client.subscribeAsync(`${this.t.root}/#`, { qos: 1 });
  }

  onReply(fn: (cmd: SentCommand, reply: ReplyEnvelope) => void): void {
    this.replyListeners.push(fn);
  }

  onEvent(fn: (e: LedgerEvent) => void): void {
    this.eventListeners.push(fn);
  }

  /** Publish a signed command; the returned promise settles with its first reply (it may come after a restart). */
  send(name: string, args: Record<string, unknown>, id = `kh-${randomUUID()}`): { cmd: SentCommand; reply: Promise<ReplyEnvelope> } {
    const issuedAt = Date.now();
    const expiresAt = issuedAt + 300_000;
    const sig = sign(null, canonicalCommand({ ...this.bank, name, id, args, issuedAt, expiresAt }), this.keys.sign).toString("base64");
    const cmd: SentCommand = { id, name, args, payload: JSON.stringify({ id, args, issuedAt, expiresAt, sig }), replies: [] };
    this.commands.set(id, cmd);
    return { cmd, reply: this.publish(cmd) };
  }

  /** The same message again (same id, same signature): what a server does when a reply never came. */
  resend(cmd: SentCommand): Promise<ReplyEnvelope> {
    return this.publish(cmd, cmd.replies.length);
  }

  private publish(cmd: SentCommand, after = 0): Promise<ReplyEnvelope> {
    const reply = new Promise<ReplyEnvelope>((resolve) => {
      const on = (c: SentCommand, r: ReplyEnvelope) => {
        if (c !== cmd || c.replies.length <= after) return;
        this.replyListeners.splice(this.replyListeners.indexOf(on), 1);
        resolve(r);
      };
      this.replyListeners.push(on);
    });
    this.client.publish(`${this.t.root}/cmd/${cmd.name}`, cmd.payload, { qos: 1 });
    return reply;
  }

  /** Resolves with the next status message saying `state` (received after this call). */
  nextStatus(state: "online" | "offline", timeoutMs: number): Promise<void> {
    const from = this.statuses.length;
    return new Promise((resolve, reject) => {
      const until = Date.now() + timeoutMs;
      const poll = () => {
        if (this.statuses.slice(from).some((s) => s.state === state)) return resolve();
        if (Date.now() > until) return reject(new Stalled(`no status ${state} within ${timeoutMs} ms`));
        setTimeout(poll, 10);
      };
      poll();
    });
  }

  private onMessage(topic: string, payload: Buffer, _packet: IPublishPacket): void {
    try {
      this.read(topic, payload.toString("utf8"));
    } catch (e) {
      this.unreadable.push(`${topic}: ${(e as Error).message}`);
    }
  }

  private read(topic: string, text: string): void {
    if (topic === this.t.status) {
      if (!text) return;
      const s = JSON.parse(text) as { state: string };
      this.statuses.push({ state: s.state, at: Date.now() });
      return;
    }
    if (topic === this.t.events) {
      const e = JSON.parse(text) as LedgerEvent;
      const before = this.events.get(e.seq);
      if (before) {
        this.duplicates++;
        if (before.hash !== e.hash) this.rewritten.push({ seq: e.seq, first: before.hash, again: e.hash });
        return;
      }
      this.events.set(e.seq, e);
      const box = e.data.sealedCode as SealedBox | undefined;
      if (e.parcel && box && (e.type === "parcel.deposited" || e.type === "code.issued")) this.sealedCodes.set(e.parcel, openSealed(box, this.keys.seal, e.parcel));
      for (const l of this.eventListeners) l(e);
      return;
    }
    const name = topic.startsWith(`${this.t.root}/reply/`) ? topic.slice(`${this.t.root}/reply/`.length) : undefined;
    if (!name) return;
    const reply = JSON.parse(text) as ReplyEnvelope;
    const cmd = reply.id === null ? undefined : this.commands.get(reply.id);
    if (!cmd) return;
    cmd.replies.push(reply);
    for (const l of [...this.replyListeners]) l(cmd, reply);
  }

  async close(): Promise<void> {
    await this.client?.endAsync();
  }
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

/** Settles with the promise, or undefined after ms. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}
