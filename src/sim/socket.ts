// The simulator's unix socket: people and tests drive the simulated bank with JSON lines, and every
// client hears what the bank shows (display, unlock, buzzer, door, state, notify).
//
//   client ──line──▶ parse + zod ──▶ SimHardware (keys, badge, door…) ──▶ the bank, as from real devices
//   client ◀─line── broadcast ◀── SimHardware / bank events
import type { CompartmentLayout } from "../config/schema.js";
import type { SimHardware } from "../drivers/sim/hardware.js";
import { formatIssues } from "../config/load.js";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
import { LineServer, type LineClient } from "../lines/server.js";
import type { Logger } from "../log.js";
import { MAX_LINE_BYTES, SimRequest, type CompartmentView, type SimEvent } from "./protocol.js";

/** A client that stops reading gets this much buffered before it is dropped. */
const MAX_BACKLOG = 4 * 1024 * 1024;

export interface SimSocketDeps {
  path: string;
  hardware: SimHardware;
  layout: readonly CompartmentLayout[];
  snapshot: () => CompartmentView[];
  device: string;
  terminal: string;
  log: Logger;
}

export class SimSocket {
  private readonly lines: LineServer;
  private readonly byId = new Map<string, CompartmentLayout>();
  private readonly byChannel = new Map<number, string>();
  private stateQueued = false;
  private readonly log: Logger;

  constructor(private readonly deps: SimSocketDeps) {
    this.log = deps.log.child({ module: "sim-socket" });
    this.setLayout(deps.layout);
    this.lines = new LineServer({
      path: deps.path,
      mode: 0o600,
      maxLineBytes: MAX_LINE_BYTES,
      maxBacklogBytes: MAX_BACKLOG,
      log: this.log,
      onMessage: (client, value) => this.handle(client, value),
      onBadLine: (client, reason) => this.reply(client, reason),
      onConnect: (client) => {
        client.send({ ev: "hello", device: deps.device, terminal: deps.terminal } satisfies SimEvent);
        // What the keypad shows now, so a new client is not blank until the next change.
        client.send({ ev: "display", lines: [...deps.hardware.display.lines] } satisfies SimEvent);
      },
    });
  }

  async start(): Promise<void> {
    const { hardware } = this.deps;
    const name = (channel: number) => this.byChannel.get(channel) ?? String(channel);
    hardware.on("display", (lines) => this.broadcast({ ev: "display", lines: [...lines] }));
    hardware.on("buzzer", (pattern) => this.broadcast({ ev: "buzzer", pattern }));
    hardware.on("unlock", (channel, pulseMs) => this.broadcast({ ev: "unlock", compartment: name(channel), pulseMs }));
    hardware.doors.on("change", (channel, state) => this.broadcast({ ev: "door", compartment: name(channel), state }));
    await this.lines.start();
  }

  stop(): Promise<void> {
    return this.lines.stop();
  }

  /** The compartments clients may name (a live layout change: SIGHUP). */
  setLayout(layout: readonly CompartmentLayout[]): void {
    this.byId.clear();
    this.byChannel.clear();
    for (const l of layout) {
      this.byId.set(l.id, l);
      this.byChannel.set(l.lock, l.id);
    }
  }

  broadcast(event: SimEvent): void {
    this.lines.broadcast(event);
  }

  /** Coalesced: many changes in one tick send one state. */
  stateChanged(): void {
    if (this.stateQueued || !this.lines.clientCount) return;
    this.stateQueued = true;
    setImmediate(() => {
      this.stateQueued = false;
      this.broadcast({ ev: "state", compartments: this.deps.snapshot() });
    });
  }

  private handle(client: LineClient, raw: unknown): void {
    const parsed = SimRequest.safeParse(raw);
    if (!parsed.success) return this.reply(client, formatIssues(parsed.error).join("; "));
    const req = parsed.data;
    const { hardware } = this.deps;
    try {
      switch (req.op) {
        case "keys":
          return hardware.keypad.keys(req.keys);
        case "badge":
          return hardware.keypad.badge(req.id);
        case "scan":
          return hardware.keypad.scan(req.text);
        case "finger":
          return hardware.finger.place(req.finger);
        case "door":
          return hardware.doors.set(this.channel(req.compartment), req.state);
        case "jam": {
          const ch = this.channel(req.compartment);
          if (req.jammed) hardware.locks.jammed.add(ch);
          else hardware.locks.jammed.delete(ch);
          return;
        }
        case "state":
          return client.send({ ev: "state", compartments: this.deps.snapshot() } satisfies SimEvent);
        case "temperature":
          return this.thermometer(req.compartment).set(req.celsius);
        case "sensor":
          this.thermometer(req.compartment).failing = req.failing;
          return;
        case "board":
          return hardware.setBoard(req.state);
      }
    } catch (e) {
      if (!isLockerError(e)) this.log.error({ err: e, op: req.op }, "sim request failed");
      this.reply(client, isLockerError(e) ? e.message : "internal error");
    }
  }

  private channel(compartment: string): number {
    const l = this.byId.get(compartment);
    if (!l) {
      const ids = [...this.byId.keys()];
      throw new LockerError(ErrorCode.UnknownCompartment, `no compartment ${compartment} (valid: ${ids[0]}..${ids[ids.length - 1]})`);
    }
    return l.lock;
  }

  private thermometer(compartment: string) {
    const t = this.deps.hardware.thermometers.get(compartment);
    if (!t) throw new LockerError(ErrorCode.UnknownCompartment, `${compartment} has no temperature sensor`);
    return t;
  }

  private reply(client: LineClient, message: string): void {
    this.log.warn({ message }, "bad sim request");
    client.send({ ev: "error", message } satisfies SimEvent);
  }
}
