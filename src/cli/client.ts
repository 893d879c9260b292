// lockerctl's side of the admin socket: one connection, requests by id, stream lines to a callback.
import { connect, type Socket } from "node:net";
import { AdminReply, type AdminRequest, type StreamItem } from "../admin/protocol.js";

export type ConnectFailure = "not_running" | "permission" | "other";

export class ConnectError extends Error {
  constructor(
    readonly kind: ConnectFailure,
    readonly path: string,
    readonly errno: string,
  ) {
    super(`${path}: ${errno}`);
  }
}

export class ReplyError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

type Pending = { resolve: (r: unknown) => void; reject: (e: Error) => void; onStream?: (s: StreamItem) => void };

export class AdminClient {
  private nextId = 1;
  private buf = "";
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.data(chunk));
    socket.on("close", () => {
      this.closedError ??= new Error("the daemon closed the connection");
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
    });
    socket.on("error", (e) => (this.closedError = e));
  }

  static connect(path: string): Promise<AdminClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once("connect", () => resolve(new AdminClient(socket)));
      socket.once("error", (e: NodeJS.ErrnoException) => {
        const code = e.code ?? "error";
        const kind: ConnectFailure = code === "ENOENT" || code === "ECONNREFUSED" ? "not_running" : code === "EACCES" || code === "EPERM" ? "permission" : "other";
        reject(new ConnectError(kind, path, code));
      });
    });
  }

  /** Send one command; resolves with its result, rejects with ReplyError on {ok:false}. */
  request(cmd: AdminRequest["cmd"], args: Record<string, unknown>, user: string, onStream?: (s: StreamItem) => void): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onStream });
      this.socket.write(`${JSON.stringify({ id, cmd, args, user })}\n`);
    });
  }

  /** Called once when the daemon closes the connection (it stopped, or restarted). */
  onClose(fn: () => void): void {
    this.socket.once("close", fn);
  }

  /** Keep the connection for streams until `close`. */
  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private data(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const parsed = AdminReply.safeParse(JSON.parse(line));
      if (!parsed.success) continue;
      const reply = parsed.data;
      if ("stream" in reply) {
        this.pending.get(reply.id)?.onStream?.(reply.stream);
        continue;
      }
      const p = reply.id === null ? [...this.pending.values()][0] : this.pending.get(reply.id);
      if (!p) continue;
      if (!p.onStream || !reply.ok) this.pending.delete(reply.id ?? -1);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new ReplyError(reply.error.code, reply.error.message, reply.error.context));
    }
  }
}
