// sd_notify for a Node daemon: READY=1, STOPPING=1, STATUS=, WATCHDOG=1 (and RELOADING=1,
// EXTEND_TIMEOUT_USEC=) to the socket systemd names in $NOTIFY_SOCKET (Type=notify).
//
// Why a helper process: the protocol is one AF_UNIX SOCK_DGRAM datagram per message, and Node has
// no unix datagram sockets (dgram is UDP only). A `systemd-notify` child per message is racy:
// systemd attributes a message to a unit by the sender's PID and cgroup, and a child that has
// already exited when systemd reads its datagram is attributed to nobody (READY=1 lost, the start
// times out). So lockerd keeps ONE helper for its whole life: `python3 -I -S -c HELPER`, in the
// service's cgroup, which reads stdin line by line and sends each line as one datagram. The unit
// says NotifyAccess=all so that systemd accepts a message from a process other than the main one.
//
// Why python3 and not socat: `socat -u STDIN UNIX-SENDTO:...` sends whatever one read() of the
// pipe returned, so two lines written back to back arrive as ONE datagram (measured: socat 1.7.4
// sent "READY=1\nSTATUS=a\nWATCHDOG=1\n" as one). systemd would still parse that, but the framing
// is not ours to decide. python3 is on every Raspberry Pi OS image, Lite included (rpi-eeprom,
// installed on all of them, depends on it), and scripts/install-pi.sh installs it regardless.
//
// The watchdog: startWatchdog() pings at half of $WATCHDOG_USEC from a setInterval on lockerd's own
// event loop, so a loop that hangs stops the pings and systemd restarts the service (the helper only
// relays; it never pings by itself). The timer and the helper are unref'd: neither keeps the
// process alive. The helper ignores SIGTERM/SIGINT and leaves when its stdin closes, i.e. when
// lockerd exits however it exits; a helper that dies is logged once and started again with backoff,
// and nothing here ever throws into the daemon.
import { spawn, type ChildProcess } from "node:child_process";
import { Backoff, type BackoffOptions } from "../backoff.js";

/** What the notifier logs with (a pino logger fits). */
export interface NotifyLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface Notifier {
  /** READY=1: the start is complete (ledger open, hardware up, sockets listening). */
  ready(): void;
  /** STOPPING=1: the stop has begun (relays off, ledger closing). */
  stopping(): void;
  /** RELOADING=1 with MONOTONIC_USEC (SIGHUP); send ready() when the reload is done. */
  reloading(): void;
  /** STATUS=text, shown by `systemctl status` (one line; newlines become spaces). */
  status(text: string): void;
  /** One WATCHDOG=1 ping. startWatchdog() sends them on a timer. */
  watchdog(): void;
  /** EXTEND_TIMEOUT_USEC: ask for `ms` more before the start (or stop) times out. */
  extendTimeout(ms: number): void;
  /** Pings every watchdogMs / 2 from this event loop; false (and nothing) when systemd set no watchdog. */
  startWatchdog(): boolean;
  stopWatchdog(): void;
  /** The watchdog timeout systemd set for this process ($WATCHDOG_USEC), in ms; undefined without one. */
  readonly watchdogMs: number | undefined;
  /** The notify socket ("/run/systemd/notify", or "@name" for an abstract one). */
  readonly socket: string;
  /** The helper's pid while it runs (diagnostics, tests). */
  readonly helperPid: number | undefined;
  /** Stops the watchdog, lets the helper send what it has and exit. Safe to call twice. */
  close(): Promise<void>;
}

export interface NotifierOptions {
  log?: NotifyLog;
  /** The python interpreter (default "python3", looked up on PATH). */
  python?: string;
  /** Waits between helper restarts (default 1 s doubling to 60 s). */
  retry?: BackoffOptions;
  /** The pid the watchdog is for (default process.pid); $WATCHDOG_PID must match it. */
  pid?: number;
}

/**
 * The helper, as few lines as possible. argv-free: the address comes in $NOTIFY_SOCKET. "@name" is
 * Linux's abstract namespace ("\0name"). A line is one datagram; \x1f inside a line stands for a
 * newline (a message of several assignments, e.g. RELOADING=1 with MONOTONIC_USEC, is one datagram).
 * A failed send is reported on stderr and the helper goes on (systemd may be re-executing).
 */
export const HELPER_SCRIPT = [
  "import os, signal, socket, sys",
  "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
  "signal.signal(signal.SIGINT, signal.SIG_IGN)",
  "a = os.environ['NOTIFY_SOCKET']",
  "a = '\\0' + a[1:] if a[0] == '@' else a",
  "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
  "r = sys.stdin.buffer",
  "while True:",
  "    line = r.readline()",
  "    if not line:",
  "        break",
  "    m = line.rstrip(b'\\n').replace(b'\\x1f', b'\\n')",
  "    if not m:",
  "        continue",
  "    try:",
  "        s.sendto(m, a)",
  "    except OSError as e:",
  "        sys.stderr.write('sendto %s: %s\\n' % (os.environ['NOTIFY_SOCKET'], e))",
  "        sys.stderr.flush()",
].join("\n");

/** Messages waiting for a helper; the newest are kept. */
const MAX_PENDING = 32;
/** Bytes queued on the helper's stdin past which messages are dropped (a stuck helper). */
const MAX_BUFFERED = 64 * 1024;
/** A helper that lived this long counts as a success: the next failure is logged again. */
const HEALTHY_MS = 10_000;
/** Helper stderr lines logged at most (a broken socket would otherwise log every ping). */
const MAX_HELPER_LINES = 10;

/** The watchdog timeout for this process in ms, as sd_watchdog_enabled() decides it. */
export function watchdogMsFrom(env: NodeJS.ProcessEnv, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && env.WATCHDOG_PID !== String(pid)) return undefined;
  return Math.max(1, Math.floor(usec / 1000));
}

/** A notify socket we can send to: an absolute path or "@abstract". Not vsock: addresses. */
export function isSupportedSocket(address: string): boolean {
  return (address.startsWith("/") || (address.startsWith("@") && address.length > 1)) && !address.includes("\0");
}

/** One line of the helper's input: no newlines of its own; several assignments joined by \x1f. */
function frame(assignments: string[]): string {
  return `${assignments.map((a) => a.replace(/[\r\n\x1f]/g, " ")).join("\x1f")}\n`;
}

/**
 * The notifier for this process, or undefined when systemd did not ask for notifications
 * ($NOTIFY_SOCKET unset or empty) or names a socket this cannot reach (logged).
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, opts: NotifierOptions = {}): Notifier | undefined {
  const address = env.NOTIFY_SOCKET;
  if (!address) return undefined;
  if (!isSupportedSocket(address)) {
    opts.log?.warn({ notifySocket: address }, "NOTIFY_SOCKET is not a unix socket path: systemd will not hear from lockerd");
    return undefined;
  }
  return new HelperNotifier(address, watchdogMsFrom(env, opts.pid ?? process.pid), env.PATH ?? process.env.PATH, opts);
}

class HelperNotifier implements Notifier {
  private child: ChildProcess | undefined;
  /** True between the helper's 'spawn' event and its exit. */
  private up = false;
  private pending: string[] = [];
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthyTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  /** A failure was logged and the helper has not been healthy since. */
  private failing = false;
  private helperLines = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly socket: string,
    readonly watchdogMs: number | undefined,
    private readonly path: string | undefined,
    private readonly opts: NotifierOptions,
  ) {
    this.backoff = new Backoff(opts.retry ?? { baseMs: 1000, capMs: 60_000 });
    this.startHelper();
  }

  get helperPid(): number | undefined {
    return this.up ? this.child?.pid : undefined;
  }

  ready(): void {
    this.send(["READY=1"]);
  }
  stopping(): void {
    this.send(["STOPPING=1"]);
  }
  reloading(): void {
    this.send(["RELOADING=1", `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`]);
  }
  status(text: string): void {
    this.send([`STATUS=${text}`]);
  }
  watchdog(): void {
    this.send(["WATCHDOG=1"]);
  }
  extendTimeout(ms: number): void {
    if (Number.isFinite(ms) && ms > 0) this.send([`EXTEND_TIMEOUT_USEC=${Math.ceil(ms * 1000)}`]);
  }

  startWatchdog(): boolean {
    if (this.watchdogMs === undefined || this.closed) return false;
    if (this.watchdogTimer) return true;
    this.watchdog();
    this.watchdogTimer = setInterval(() => this.watchdog(), Math.max(1, Math.floor(this.watchdogMs / 2)));
    this.watchdogTimer.unref();
    return true;
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return this.exited;
    this.closed = true;
    this.stopWatchdog();
    clearTimeout(this.retryTimer);
    clearTimeout(this.healthyTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // EOF: the helper sends what it has read and leaves. Killed if it has not within a second.
    child.stdin?.end();
    const kill = setTimeout(() => child.kill("SIGKILL"), 1000);
    kill.unref();
    await this.exited;
    clearTimeout(kill);
  }

  private send(assignments: string[]): void {
    if (this.closed) return;
    const line = frame(assignments);
    const stdin = this.child?.stdin;
    if (!this.up || !stdin || stdin.destroyed || !stdin.writable) {
      // Waiting for a helper: keep the newest; one watchdog ping in the queue is as good as ten.
      if (line === "WATCHDOG=1\n" && this.pending.includes(line)) return;
      this.pending.push(line);
      if (this.pending.length > MAX_PENDING) this.pending.shift();
      return;
    }
    if (stdin.writableLength > MAX_BUFFERED) return; // the helper is stuck; the watchdog will tell
    stdin.write(line);
  }

  private startHelper(): void {
    if (this.closed) return;
    let child: ChildProcess;
    try {
      child = spawn(this.opts.python ?? "python3", ["-I", "-S", "-c", HELPER_SCRIPT], {
        stdio: ["pipe", "ignore", "pipe"],
        env: { NOTIFY_SOCKET: this.socket, ...(this.path ? { PATH: this.path } : {}) },
      });
    } catch (e) {
      this.failed("cannot start the notify helper", e);
      return;
    }
    this.child = child;
    // Neither the helper nor its pipes keep lockerd's event loop alive.
    child.unref();
    child.stdin?.on("error", () => undefined); // EPIPE when it died: seen by 'exit'
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    const stderr = child.stderr;
    if (stderr) {
      (stderr as unknown as { unref?: () => void }).unref?.();
      stderr.setEncoding("utf8");
      let partial = "";
      stderr.on("data", (chunk: string) => {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop() ?? "";
        for (const l of lines) this.helperSaid(l);
      });
    }
    let spawned = false;
    this.exited = new Promise<void>((resolve) => {
      child.once("close", () => resolve());
      child.once("error", (e) => {
        if (!spawned) {
          resolve();
          this.down(child, "cannot start the notify helper", e);
        }
      });
    });
    child.once("spawn", () => {
      spawned = true;
      this.up = true;
      const queued = this.pending.splice(0);
      for (const line of queued) child.stdin?.write(line);
      this.healthyTimer = setTimeout(() => {
        this.backoff.reset();
        if (this.failing) this.opts.log?.info({ pid: child.pid }, "notify helper running again");
        this.failing = false;
      }, HEALTHY_MS);
      this.healthyTimer.unref();
    });
    child.once("exit", (code, signal) => {
      if (spawned) this.down(child, "notify helper exited", undefined, { code, signal });
    });
  }

  private helperSaid(line: string): void {
    if (!line.trim() || this.helperLines >= MAX_HELPER_LINES) return;
    this.helperLines++;
    const last = this.helperLines === MAX_HELPER_LINES ? " (further helper messages are not logged)" : "";
    this.opts.log?.warn({ notifySocket: this.socket, helper: line.trim() }, `notify helper: cannot reach systemd${last}`);
  }

  private down(child: ChildProcess, what: string, err?: unknown, exit?: { code: number | null; signal: NodeJS.Signals | null }): void {
    if (this.child !== child) return;
    this.up = false;
    this.child = undefined;
    clearTimeout(this.healthyTimer);
    if (this.closed) return;
    this.failed(what, err, exit);
  }

  private failed(what: string, err?: unknown, exit?: object): void {
    const delayMs = this.backoff.next();
    if (!this.failing) {
      this.failing = true;
      this.opts.log?.warn(
        { notifySocket: this.socket, python: this.opts.python ?? "python3", err, ...exit, retryMs: delayMs },
        `${what}: systemd may not hear READY/WATCHDOG until it is back (retrying with backoff; logged once)`,
      );
    }
    this.retryTimer = setTimeout(() => this.startHelper(), delayMs);
    this.retryTimer.unref();
  }
}
