// A unix-socket server speaking JSON lines, shared by the simulator socket and the admin socket.
// It frames lines, parses JSON, and bounds each client on its own: an overlong line is discarded
// and answered (however it arrives: in pieces or whole in one chunk), a client sending more lines a
// second than allowed is answered once and dropped, and a client that stops reading is dropped.
// Only the offender goes: a flood from one client must not fill every other client's queue. A stale
// socket file left by a crash is removed (the data directory's lock says the directory is ours).
import { chmodSync, existsSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "../log.js";

export interface LineClient {
  send(value: unknown): void;
  /** Run when the client goes (stream subscriptions). */
  onClose(fn: () => void): void;
  /** Resolves once what is queued to the client is under a quarter of the backlog bound (or it is gone): send big streams in steps. */
  drained(): Promise<void>;
}

export interface LineServerOptions {
  path: string;
  mode: number;
  maxLineBytes: number;
  /** Bytes queued to a client that does not read before it is dropped. */
  maxBacklogBytes: number;
  /** Lines one client may send a second (twice that in a burst) before it is dropped. Default 200. */
  maxLinesPerSecond?: number;
  log: Logger;
  /** A parsed line, or `undefined` with the reason when the line was not JSON / too long. */
  onMessage: (client: LineClient, value: unknown) => void;
  onBadLine: (client: LineClient, reason: string) => void;
  onConnect?: (client: LineClient) => void;
}

export class LineServer {
  private server: Server | undefined;
  private readonly sockets = new Map<Socket, LineClient>();

  constructor(private readonly opts: LineServerOptions) {}

  get clientCount(): number {
    return this.sockets.size;
  }

  async start(): Promise<void> {
    const { path, mode } = this.opts;
    if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    this.server = server;
    chmodSync(path, mode);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets.keys()) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  broadcast(value: unknown): void {
    const line = `${JSON.stringify(value)}\n`;
    for (const s of this.sockets.keys()) this.write(s, line);
  }

  private accept(socket: Socket): void {
    const cleanups: (() => void)[] = [];
    const client: LineClient = {
      send: (value) => this.write(socket, `${JSON.stringify(value)}\n`),
      onClose: (fn) => cleanups.push(fn),
      drained: () =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (socket.destroyed || socket.writableLength <= this.opts.maxBacklogBytes / 4) {
              socket.off("drain", check);
              socket.off("close", check);
              resolve();
            }
          };
          socket.on("drain", check);
          socket.on("close", check);
          check();
        }),
    };
    this.sockets.set(socket, client);
    socket.setEncoding("utf8");
    let buf = "";
    let discarding = false;
    const { maxLineBytes } = this.opts;
    const rate = this.opts.maxLinesPerSecond ?? 200;
    let tokens = 2 * rate;
    let refilled = performance.now();
    const tooLong = () => this.opts.onBadLine(client, `line longer than ${maxLineBytes} bytes: discarded`);
    let dropped = false;
    socket.on("data", (chunk: string) => {
      if (dropped) return;
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (discarding) {
          discarding = false;
          continue;
        }
        if (Buffer.byteLength(line) > maxLineBytes) {
          tooLong();
          continue;
        }
        if (!line.trim()) continue;
        const now = performance.now();
        tokens = Math.min(2 * rate, tokens + ((now - refilled) / 1000) * rate);
        refilled = now;
        if (tokens < 1) {
          this.opts.log.warn({ path: this.opts.path }, "client sending too fast: dropped");
          this.opts.onBadLine(client, `more than ${rate} lines a second: disconnected`);
          dropped = true;
          socket.end();
          socket.destroySoon();
          buf = "";
          return;
        }
        tokens--;
        this.line(client, line);
      }
      if (Buffer.byteLength(buf) > maxLineBytes) {
        if (!discarding) tooLong();
        discarding = true;
        buf = "";
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      this.sockets.delete(socket);
      for (const fn of cleanups.splice(0)) fn();
    });
    this.opts.onConnect?.(client);
  }

  private line(client: LineClient, line: string): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return this.opts.onBadLine(client, "not JSON: expected one JSON object per line");
    }
    this.opts.onMessage(client, value);
  }

  private write(socket: Socket, line: string): void {
    if (socket.destroyed) return;
    if (socket.writableLength > this.opts.maxBacklogBytes) {
      this.opts.log.warn({ path: this.opts.path }, "client not reading: dropped");
      socket.destroy();
      return;
    }
    socket.write(line);
  }
}
