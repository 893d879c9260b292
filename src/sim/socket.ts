// The simulator's unix socket: people and tests drive the simulated bank with JSON lines, and every
// client hears what the bank shows (display, unlock, buzzer, door, state, notify).
//
//   client ──line──▶ parse + zod ──▶ SimHardware (keys, badge, door…) ──▶ the bank, as from real devices
//   client ◀─line── broadcast ◀── SimHardware / bank events
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { CompartmentLayout } from "../config/schema.js";
import type { SimHardware } from "../drivers/sim/hardware.js";
import { formatIssues } from "../config/load.js";
import { ErrorCode, isLockerError, LockerError } from "../errors.js";
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
  private server: Server | undefined;
  private readonly clients = new Set<Socket>();
  private readonly byId = new Map<string, CompartmentLayout>();
  private readonly byChannel = new Map<number, string>();
  private stateQueued = false;
  private readonly log: Logger;

  constructor(private readonly deps: SimSocketDeps) {
    this.log = deps.log.child({ module: "sim-socket" });
    for (const l of deps.layout) {
      this.byId.set(l.id, l);
      this.byChannel.set(l.lock, l.id);
    }
  }

  async start(): Promise<void> {
    const { path, hardware } = this.deps;
    if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path); // left by a crash; the pid lock says we own it
    hardware.on("display", (lines) => this.broadcast({ ev: "display", lines: [...lines] }));
    hardware.on("buzzer", (pattern) => this.broadcast({ ev: "buzzer", pattern }));
    hardware.on("unlock", (channel, pulseMs) => this.broadcast({ ev: "unlock", compartment: this.byChannel.get(channel) ?? String(channel), pulseMs }));
    hardware.doors.on("change", (channel, state) => this.broadcast({ ev: "door", compartment: this.byChannel.get(channel) ?? String(channel), state }));
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  broadcast(event: SimEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    for (const c of this.clients) this.send(c, line);
  }

  /** Coalesced: many changes in one tick send one state. */
  stateChanged(): void {
    if (this.stateQueued || !this.clients.size) return;
    this.stateQueued = true;
    setImmediate(() => {
      this.stateQueued = false;
      this.broadcast({ ev: "state", compartments: this.deps.snapshot() });
    });
  }

  private accept(socket: Socket): void {
    this.clients.add(socket);
    socket.setEncoding("utf8");
    let buf = "";
    let discarding = false;
    socket.on("data", (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (discarding) discarding = false;
        else this.handle(socket, line);
      }
      if (buf.length > MAX_LINE_BYTES) {
        if (!discarding) this.reply(socket, `line longer than ${MAX_LINE_BYTES} bytes: discarded`);
        discarding = true;
        buf = "";
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.clients.delete(socket));
    this.send(socket, `${JSON.stringify({ ev: "hello", device: this.deps.device, terminal: this.deps.terminal } satisfies SimEvent)}\n`);
    // What the keypad shows now, so a new client is not blank until the next change.
    this.send(socket, `${JSON.stringify({ ev: "display", lines: [...this.deps.hardware.display.lines] } satisfies SimEvent)}\n`);
  }

  private handle(socket: Socket, line: string): void {
    if (!line.trim()) return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return this.reply(socket, "not JSON: expected one JSON object per line");
    }
    const parsed = SimRequest.safeParse(raw);
    if (!parsed.success) return this.reply(socket, formatIssues(parsed.error).join("; "));
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
        case "door":
          return hardware.doors.set(this.channel(req.compartment), req.state);
        case "jam": {
          const ch = this.channel(req.compartment);
          if (req.jammed) hardware.locks.jammed.add(ch);
          else hardware.locks.jammed.delete(ch);
          return;
        }
        case "state":
          return this.send(socket, `${JSON.stringify({ ev: "state", compartments: this.deps.snapshot() } satisfies SimEvent)}\n`);
      }
    } catch (e) {
      if (!isLockerError(e)) this.log.error({ err: e, op: req.op }, "sim request failed");
      this.reply(socket, isLockerError(e) ? e.message : "internal error");
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

  private reply(socket: Socket, message: string): void {
    this.log.warn({ message }, "bad sim request");
    this.send(socket, `${JSON.stringify({ ev: "error", message } satisfies SimEvent)}\n`);
  }

  private send(socket: Socket, line: string): void {
    if (socket.destroyed) return;
    if (socket.writableLength > MAX_BACKLOG) {
      this.log.warn("sim client not reading: dropped");
      socket.destroy();
      return;
    }
    socket.write(line);
  }
}

