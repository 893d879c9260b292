// lockerctl's side of the admin socket: one connection, requests by id, stream lines to a callback.
// `connect` first proves which OS user this process is (hello, create <dir>/<nonce>, prove: the
// handshake in src/admin/protocol.ts), so that the daemon records changes under the user the kernel
// vouches for. A connection that could not prove still serves the read-only commands; a change is
// then refused by the daemon, and the refusal says what kept this client from proving.
import { closeSync, constants, openSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { AdminErrorCode, AdminReply, HelloResult, ProveResult, type AdminCommand, type StreamItem } from "../admin/protocol.js";

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

type Pending = { resolve: (r: unknown) => void; reject: (e: Error) => void; onStream?: ((s: StreamItem) => void) | undefined };

export interface ConnectOptions {
  /** Prove this process's OS user (default true). false: a read-only connection, as a script may want. */
  prove?: boolean;
}

export class AdminClient {
  private nextId = 1;
  private buf = "";
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;
  private proven: ProveResult | undefined;
  private proofProblem: string | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.data(chunk));
    socket.on("close", () => {
      this.closedError ??= new Error("the daemon closed the connection");
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
    });
    socket.on("error", (e) => (this.closedError = e));
  }

  /** Connect, then prove who this process is (never fails for the proof: see `identity` / `identityProblem`). */
  static async connect(path: string, opts: ConnectOptions = {}): Promise<AdminClient> {
    const client = await new Promise<AdminClient>((resolve, reject) => {
      const socket = connect(path);
      socket.once("connect", () => resolve(new AdminClient(socket, path)));
      socket.once("error", (e: NodeJS.ErrnoException) => {
        const code = e.code ?? "error";
        const kind: ConnectFailure = code === "ENOENT" || code === "ECONNREFUSED" ? "not_running" : code === "EACCES" || code === "EPERM" ? "permission" : "other";
        reject(new ConnectError(kind, path, code));
      });
    });
    if (opts.prove !== false) await client.prove();
    return client;
  }

  /** The OS user the daemon verified for this connection, if it did. */
  get identity(): ProveResult | undefined {
    return this.proven;
  }

  /** Why this connection is not proven (undefined once it is, or when it was not asked to). */
  get identityProblem(): string | undefined {
    return this.proofProblem;
  }

  /** Send one command; resolves with its result, rejects with ReplyError on {ok:false}. `user`: who the caller says it is (a claim). */
  request(cmd: AdminCommand, args: Record<string, unknown>, user?: string, onStream?: (s: StreamItem) => void): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onStream });
      this.socket.write(`${JSON.stringify({ id, cmd, args, ...(user === undefined ? {} : { user }) })}\n`);
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

  /** hello, create the proof file, prove. Never throws: what went wrong is kept for the daemon's refusal of a change. */
  private async prove(): Promise<void> {
    let hello: HelloResult;
    try {
      hello = HelloResult.parse(await this.request("hello", {}));
    } catch (e) {
      if (e instanceof ReplyError && e.code === "bad_input") this.proofProblem = "this lockerd does not offer identity proofs (an older version?)";
      else this.proofProblem = `lockerd refused the identity handshake: ${(e as Error).message}`;
      return;
    }
    const file = join(hello.dir, hello.nonce);
    try {
      // O_EXCL: a file this call made, never one found there; O_NOFOLLOW: never a link someone planted.
      closeSync(openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    } catch (e) {
      this.proofProblem = this.cannotCreate(hello.dir, (e as NodeJS.ErrnoException).code ?? String(e));
      return;
    }
    try {
      this.proven = ProveResult.parse(await this.request("prove", { nonce: hello.nonce, uid: process.geteuid?.() ?? -1 }));
      this.proofProblem = undefined;
    } catch (e) {
      this.proofProblem = `lockerd refused this client's proof of its user: ${(e as Error).message}`;
      try {
        unlinkSync(file); // lockerd removes it too; this is in case it never looked
      } catch {
        // gone already
      }
    }
  }

  /** What to do when the proof file cannot be made: which directory, which group. */
  private cannotCreate(dir: string, code: string): string {
    if (code === "ENOENT") return `cannot prove your OS user: lockerd's proof directory ${dir} does not exist (lockerd makes it at start beside its socket: restart lockerd)`;
    if (code === "EACCES" || code === "EPERM") {
      const group = groupOf(this.path);
      let who = "you";
      try {
        who = userInfo().username;
      } catch {
        // no passwd entry
      }
      return `cannot prove your OS user: no permission to create a file in ${dir} (${code}; it must be lockerd's, mode 1733, inside a directory you can reach): join the group ${group} (sudo usermod -aG ${group} ${who}, then log in again)`;
    }
    if (code === "ELOOP") return `cannot prove your OS user: ${dir} holds a symbolic link named by this client's nonce (refused)`;
    return `cannot prove your OS user: cannot create a file in ${dir}: ${code}`;
  }

  private data(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      const parsed = AdminReply.safeParse(value);
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
      else {
        const { code, context } = reply.error;
        // The daemon knows only that this connection is unproven; this side knows why.
        const message = code === AdminErrorCode.IdentityRequired && this.proofProblem ? `${reply.error.message}: ${this.proofProblem}` : reply.error.message;
        p.reject(new ReplyError(code, message, context));
      }
    }
  }
}

/** The group that may use the socket (its group), by name. */
function groupOf(path: string): string {
  try {
    const gid = statSync(path).gid;
    const line = readFileSync("/etc/group", "utf8").split("\n").find((l) => l.split(":")[2] === String(gid));
    return line?.split(":")[0] ?? `gid ${gid}`;
  } catch {
    return "lockerd-admin";
  }
}
