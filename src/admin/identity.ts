// Who is on the other end of the admin socket: an OS user the kernel vouches for, not the name the
// client writes into its requests. The client proves its uid by creating a file; only the kernel
// sets a file's owner.
//
//   client                                   lockerd (owns <socket>.proof/, mode 1733)
//   hello ─────────────────────────────────▶ nonce (128 random bits, pending ≤ 10 s, ≤ 4 a connection)
//   open("<dir>/<nonce>", O_CREAT|O_EXCL|O_NOFOLLOW, 0600)
//   prove {nonce, uid} ────────────────────▶ lstat: a regular file, not a link, nlink 1, owned by
//                                            that uid, changed after the nonce; st_uid → name;
//                                            unlink; the connection is that user from now on
//
// Why it holds: a non-root user cannot chown a file to someone else, so st_uid is the creator's
// (effective) uid. Linking another user's file in is stopped twice: fs.protected_hardlinks refuses
// the link, and nlink 1 refuses one that got through (a link is a second name). A symlink is seen by
// lstat and refused. The directory is sticky (nobody renames or deletes another user's entry into or
// out of their own nonce) and not listable (nobody learns another connection's nonce), and the
// nonce is 128 random bits. Root can forge all of this, and root can also read the ledger's key:
// the mechanism names every unprivileged person, and names root as root.
//
// Why not the alternatives:
//   - SO_PEERCRED (the kernel's answer to exactly this question) is not reachable from Node without
//     a native addon: one more compiled dependency on the Pi for one getsockopt.
//   - Matching the peer in /proc/net/unix to a process through /proc/<pid>/fd needs to read other
//     users' fd tables: lockerd runs as its own unprivileged user and cannot (and should not).
//   - A shared secret file readable by the admin group proves group membership, not the person:
//     every technician would be the same "someone in lockerd-admin".
import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, type Stats } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "../log.js";

/** Sticky; the owner (lockerd) may list; everyone else may create and reach their entry by name, never list. */
export const PROOF_DIR_MODE = 0o1733;
export const NONCE_TTL_MS = 10_000;
export const MAX_PENDING_NONCES = 4;
/** How far a proof file's ctime may lie before its nonce's issue (coarse file timestamps, a clock nudged by NTP). */
export const CTIME_SLACK_MS = 5_000;
/** Files nobody proved with (a client that died, a stranger's) are removed at most this often. */
const SWEEP_EVERY_MS = 60_000;

/** The proof directory beside a socket: /run/lockerd/admin.sock → /run/lockerd/admin.proof. */
export function proofDirFor(socketPath: string): string {
  return `${resolve(socketPath).replace(/\.sock$/, "")}.proof`;
}

export type ProofFailure =
  | "unavailable"
  | "already_proven"
  | "too_many_pending"
  | "unknown_nonce"
  | "expired"
  | "missing"
  | "symlink"
  | "not_a_file"
  | "hardlink"
  | "uid_mismatch"
  | "stale";

export class ProofError extends Error {
  constructor(
    readonly reason: ProofFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface VerifiedIdentity {
  uid: number;
  /** From /etc/passwd; `uid:N` when the uid has no entry there. */
  user: string;
}

/** What the checks need of an lstat. */
export type ProofStat = Pick<Stats, "uid" | "nlink" | "ctimeMs" | "isFile" | "isSymbolicLink">;

/**
 * The checks on the lstat of <dir>/<nonce>, in order; the first that fails is the answer.
 * `claimedUid` is the uid the client says it runs as; `notBeforeMs` the nonce's issue, less the slack.
 */
export function checkProofStat(st: ProofStat, expect: { claimedUid: number; notBeforeMs: number }): { ok: true; uid: number } | { ok: false; reason: ProofFailure; message: string } {
  if (st.isSymbolicLink()) return { ok: false, reason: "symlink", message: "the proof file is a symbolic link: create the file itself" };
  if (!st.isFile()) return { ok: false, reason: "not_a_file", message: "the proof is not a regular file" };
  if (st.nlink !== 1) return { ok: false, reason: "hardlink", message: `the proof file has ${st.nlink} links: it is a link to another file, not a file this client created` };
  if (st.uid !== expect.claimedUid) {
    return { ok: false, reason: "uid_mismatch", message: `the proof file belongs to uid ${st.uid}, not to uid ${expect.claimedUid} this client says it runs as` };
  }
  if (st.ctimeMs < expect.notBeforeMs) return { ok: false, reason: "stale", message: "the proof file is older than its nonce" };
  return { ok: true, uid: st.uid };
}

/** A uid's name in passwd(5) text; `uid:N` when there is none. */
export function userNameOf(uid: number, passwd: string): string {
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && f[2] === String(uid) && f[0]) return f[0];
  }
  return `uid:${uid}`;
}

export interface ProofDirOptions {
  socketPath: string;
  log: Logger;
  ttlMs?: number;
  maxPending?: number;
  /** Monotonic ms (nonce expiry). Default performance.now(). */
  mono?: () => number;
  /**
   * Wall-clock ms the file system's ctime is compared with. Default: the earlier of Date.now() and
   * the process clock (performance.timeOrigin + now()), so that neither a clock stepped after start
   * nor faked timers (the fuzzers') refuse a good proof. The check is loose on purpose: that the
   * file is new is already certain (the name was unguessable, and cleared when the nonce was issued).
   */
  wall?: () => number;
  /** passwd(5) text. Default /etc/passwd. */
  passwd?: () => string;
  /** 16 random bytes (a test makes them predictable). */
  random?: () => Buffer;
  /** The daemon's effective uid: the proof directory must be its own. */
  euid?: number;
}

interface Pending {
  issuedMono: number;
  notBeforeMs: number;
}

/** The proof directory and the nonces issued on it. One per admin socket. */
export class ProofDir {
  readonly path: string;
  private problem: string | null = "not prepared";
  private readonly pending = new Map<string, Pending>();
  private lastSweep = -Infinity;
  private readonly ttl: number;
  private readonly maxPending: number;
  private readonly mono: () => number;
  private readonly wall: () => number;
  private readonly passwd: () => string;
  private readonly random: () => Buffer;
  private readonly euid: number;

  constructor(private readonly opts: ProofDirOptions) {
    this.path = proofDirFor(opts.socketPath);
    this.ttl = opts.ttlMs ?? NONCE_TTL_MS;
    this.maxPending = opts.maxPending ?? MAX_PENDING_NONCES;
    this.mono = opts.mono ?? (() => performance.now());
    this.wall = opts.wall ?? (() => Math.min(Date.now(), performance.timeOrigin + performance.now()));
    this.passwd = opts.passwd ?? (() => readFileSync("/etc/passwd", "utf8"));
    this.random = opts.random ?? (() => randomBytes(16));
    this.euid = opts.euid ?? process.geteuid?.() ?? -1;
  }

  /** Why proofs cannot be made, or null when they can. */
  get unavailable(): string | null {
    return this.problem;
  }

  /**
   * Create (or take back) the directory, mode 1733, and empty it. Never throws: a directory that
   * cannot be made ours leaves proofs unavailable, and every change command refused.
   */
  prepare(): void {
    try {
      try {
        mkdirSync(this.path, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const st = lstatSync(this.path);
      if (!st.isDirectory() || st.uid !== this.euid) {
        this.problem = `${this.path} exists and is not lockerd's directory (${st.isSymbolicLink() ? "a symbolic link" : st.isDirectory() ? `owner uid ${st.uid}` : "not a directory"}): remove it and restart lockerd`;
        this.opts.log.error({ dir: this.path }, `identity proofs unavailable: ${this.problem}`);
        return;
      }
      chmodSync(this.path, PROOF_DIR_MODE);
      this.problem = null;
      this.sweep(true);
    } catch (e) {
      this.problem = `cannot prepare ${this.path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
      this.opts.log.error({ dir: this.path, err: e }, "identity proofs unavailable");
    }
  }

  /** Empty and remove the directory (the daemon stops). */
  close(): void {
    if (this.problem) return;
    this.pending.clear();
    this.sweep(true);
    try {
      rmdirSync(this.path);
    } catch {
      // a stranger's subdirectory: the next start sweeps again
    }
    this.problem = "lockerd is stopping";
  }

  /** The identity state of one connection. */
  connection(): ConnectionIdentity {
    return new ConnectionIdentity(this);
  }

  /** @internal A new nonce for a connection holding `held` unexpired ones. */
  issue(held: number): { nonce: string; dir: string; expiresInMs: number } {
    this.checkDir();
    if (held >= this.maxPending) {
      throw new ProofError("too_many_pending", `${held} proofs pending on this connection (at most ${this.maxPending}): prove or wait ${Math.ceil(this.ttl / 1000)} s`);
    }
    this.sweep(false);
    const nonce = this.random().toString("hex");
    // The name is unguessable; clearing it anyway makes "created after the nonce" a fact, not a clock reading.
    this.remove(nonce);
    this.pending.set(nonce, { issuedMono: this.mono(), notBeforeMs: this.wall() - CTIME_SLACK_MS });
    return { nonce, dir: this.path, expiresInMs: this.ttl };
  }

  /** @internal Check and consume one nonce's file. The nonce is used up whatever the outcome. */
  verify(nonce: string, claimedUid: number): VerifiedIdentity {
    const p = this.pending.get(nonce);
    if (!p) throw new ProofError("unknown_nonce", "unknown nonce, or already used: each hello's nonce proves once, on the connection it was issued to");
    this.pending.delete(nonce);
    const file = join(this.path, nonce);
    try {
      if (this.mono() - p.issuedMono > this.ttl) throw new ProofError("expired", `the nonce expired (${Math.ceil(this.ttl / 1000)} s): send hello again`);
      let st: Stats;
      try {
        st = lstatSync(file);
      } catch (e) {
        throw new ProofError("missing", `no proof file ${file} (${(e as NodeJS.ErrnoException).code ?? "error"}): create it before prove`);
      }
      const r = checkProofStat(st, { claimedUid, notBeforeMs: p.notBeforeMs });
      if (!r.ok) throw new ProofError(r.reason, r.message);
      return { uid: r.uid, user: this.userName(r.uid) };
    } finally {
      this.remove(nonce);
    }
  }

  /** @internal A connection went: its nonces die, and their files. */
  drop(nonces: Iterable<string>): void {
    for (const n of nonces) {
      if (this.pending.delete(n)) this.remove(n);
    }
  }

  /** @internal Is this nonce still issued and unexpired? */
  live(nonce: string): boolean {
    const p = this.pending.get(nonce);
    return !!p && this.mono() - p.issuedMono <= this.ttl;
  }

  private userName(uid: number): string {
    try {
      return userNameOf(uid, this.passwd());
    } catch {
      return `uid:${uid}`;
    }
  }

  /** The directory is still lockerd's: a directory of its own uid, sticky, not listable by others. */
  private checkDir(): void {
    if (this.problem) throw new ProofError("unavailable", `identity proofs unavailable: ${this.problem}`);
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (e) {
      throw new ProofError("unavailable", `the proof directory ${this.path} is gone (${(e as NodeJS.ErrnoException).code ?? "error"}): restart lockerd to create it`);
    }
    if (!st.isDirectory() || st.uid !== this.euid || !(st.mode & 0o1000) || st.mode & 0o044) {
      throw new ProofError(
        "unavailable",
        `the proof directory ${this.path} is not lockerd's sticky unlistable directory (mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}): restart lockerd to recreate it`,
      );
    }
  }

  /** Remove what nobody can still prove with: at start and stop everything, else at most once a minute. */
  private sweep(all: boolean): void {
    const t = this.mono();
    if (!all && t - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = t;
    for (const [n, p] of this.pending) if (t - p.issuedMono > this.ttl) this.drop([n]);
    let names: string[];
    try {
      names = readdirSync(this.path);
    } catch {
      return;
    }
    for (const name of names) if (!this.pending.has(name)) this.remove(name, true);
  }

  /** Unlink an entry (the directory's owner may, sticky or not); a link goes, never its target. */
  private remove(name: string, dirsToo = false): void {
    const file = join(this.path, name);
    try {
      unlinkSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (dirsToo && (code === "EISDIR" || code === "EPERM")) {
        try {
          rmdirSync(file);
        } catch {
          // not empty: a stranger's; left
        }
      }
    }
  }
}

/** One connection: its pending nonces, then (once proven) who it is. */
export class ConnectionIdentity {
  private readonly nonces = new Set<string>();
  private proven: VerifiedIdentity | undefined;

  constructor(private readonly dir: ProofDir) {}

  get identity(): VerifiedIdentity | undefined {
    return this.proven;
  }

  hello(): { nonce: string; dir: string; expiresInMs: number } {
    if (this.proven) throw new ProofError("already_proven", `this connection has already proven it is ${this.proven.user}`);
    for (const n of this.nonces) if (!this.dir.live(n)) this.forget(n);
    const r = this.dir.issue(this.nonces.size);
    this.nonces.add(r.nonce);
    return r;
  }

  prove(nonce: string, claimedUid: number): VerifiedIdentity {
    if (this.proven) {
      this.forget(nonce);
      throw new ProofError("already_proven", `this connection has already proven it is ${this.proven.user}`);
    }
    if (!this.nonces.delete(nonce)) throw new ProofError("unknown_nonce", "unknown nonce, or already used: each hello's nonce proves once, on the connection it was issued to");
    this.proven = this.dir.verify(nonce, claimedUid);
    this.forget(...this.nonces); // the other hellos' nonces are of no more use
    return this.proven;
  }

  /** The connection closed. */
  close(): void {
    this.forget(...this.nonces);
  }

  private forget(...nonces: string[]): void {
    for (const n of nonces) this.nonces.delete(n);
    this.dir.drop(nonces);
  }
}
