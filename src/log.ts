// pino, with a child logger per module. Secrets are redacted by configuration, not by care.
//
// Where the lines go decides their form (detectLogFormat):
//   journal  stdout is systemd's journal stream (JOURNAL_STREAM names its dev:ino, systemd.exec(5)):
//            `<N>` + the JSON line, N the syslog priority of the level (fatal 2, error 3, warn 4,
//            info 6, debug/trace 7), which journald's stream reader takes off and keeps as PRIORITY
//            (SyslogLevelPrefix=yes, the default): `journalctl -u lockerd -p err` works. No `time`:
//            journald stamps every line itself, with the monotonic time beside the wall clock.
//   pretty   a terminal: `09:41:02.120 WARN  commands: command refused  command=open code=expired`,
//            from this file (pino-pretty costs ~15 ms and 28 packages at start: not worth it).
//   json     anything else (a pipe, a file, the tests): one JSON object per line, as pino writes it.
// The JSON stays the payload under journald: it is lossless (nested data, error stacks), and what a
// log shipper reading the journal (vector, promtail) parses into fields; the priority prefix already
// gives `journalctl -p` and journalctl's colours, and `journalctl -o cat -u lockerd | jq` reads it.
import { fstatSync } from "node:fs";
import { isatty } from "node:tty";
import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;
export type LogFormat = "json" | "journal" | "pretty";

/** pino's numeric levels → syslog priorities (sd-daemon(3): `<N>` prefixes). */
export const SYSLOG_PRIORITY: Readonly<Record<number, number>> = { 60: 2, 50: 3, 40: 4, 30: 6, 20: 7, 10: 7 };

/**
 * Keys whose value is a secret wherever they appear (any depth, any case): PINs, pickup codes,
 * badge ids, keypad input, keys, passwords, tokens. `code`/`codes` only when the value holds a digit:
 * an error code (`expired`, `EIO`, `SQLITE_FULL`) stays readable, a pickup code does not; `pin` but
 * a number (a GPIO line).
 */
const SECRET_KEYS = new Set(
  [
    "pin", "pins", "newPin", "badge", "badges", "badgeId", "badgeIds", "pickupCode", "pickupCodes", "secret", "secrets",
    "password", "passwords", "passwd", "passphrase", "token", "tokens", "key", "keys", "deviceKey", "privateKey", "digits", "typed",
    "credentialValue", "authorization",
  ].map((k) => k.toLowerCase()),
);
const CODE_KEYS = new Set(["code", "codes"]);
export const CENSOR = "[redacted]";
const MAX_DEPTH = 8;

/** A copy of `value` with every secret replaced by CENSOR (see SECRET_KEYS); Errors are left to pino's serializer. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Error) return value;
  // Raw bytes never reach a log line (a device key, a frame buffer): hex strings are logged on purpose.
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) return `${CENSOR} (${value.byteLength} bytes)`;
  if (depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = secretKey(k, v) ? CENSOR : redactSecrets(v, depth + 1);
  return out;
}

function secretKey(key: string, value: unknown): boolean {
  const k = key.toLowerCase();
  // A number under `pin` is a GPIO line (drivers log `pin: 17`); a keypad PIN is always a string.
  if (k === "pin" && typeof value === "number") return false;
  if (SECRET_KEYS.has(k)) return value !== undefined && value !== null;
  if (CODE_KEYS.has(k)) return typeof value === "number" || (typeof value === "string" && /[0-9]/.test(value)) || Array.isArray(value);
  return false;
}

/** Credentials in a URL (`mqtt://user:pass@host`) and PEM private keys, wherever they are in a line (messages, error text). */
export function scrubLine(line: string): string {
  return line
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"'\\]+@/gi, `$1${CENSOR}@`)
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, CENSOR);
}

/** stdout (fd 1) or stderr (2) is the journal stream systemd gave this process (JOURNAL_STREAM = "dev:ino"). */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "");
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

/** journal under systemd (the stream still being the journal: not merely inherited), pretty on a terminal, else json. */
export function detectLogFormat(env: NodeJS.ProcessEnv = process.env, fd = 1): LogFormat {
  if (isJournalStream(fd, env)) return "journal";
  if (isatty(fd)) return "pretty";
  return "json";
}

export interface LoggerOptions {
  /** Default: detectLogFormat() for stdout; "json" when a destination is given. */
  format?: LogFormat;
  /** pretty: ANSI colours (default: unless NO_COLOR is set). */
  color?: boolean;
}

export function createLogger(level: string, destination?: DestinationStream, opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? (destination ? "json" : detectLogFormat());
  destination ??= stdoutDestination();
  const color = opts.color ?? !process.env.NO_COLOR;
  const redact = (o: Record<string, unknown>) => redactSecrets(o) as Record<string, unknown>;
  const streamWrite =
    format === "journal" ? (s: string) => `<${SYSLOG_PRIORITY[levelOf(s)] ?? 6}>${scrubLine(s)}` : format === "pretty" ? (s: string) => prettyLine(scrubLine(s), color) : scrubLine;
  const logger = pino(
    {
      level,
      base: format === "journal" ? null : { name: "lockerd" },
      ...(format === "journal" ? { timestamp: false } : {}),
      formatters: { log: redact },
      hooks: { streamWrite },
    },
    destination,
  );
  // pino applies formatters.bindings to the base only: a child's bindings are redacted here (every
  // child of a child inherits this `child`).
  const child = logger.child;
  logger.child = function (this: Logger, bindings: Record<string, unknown>, options?: Parameters<Logger["child"]>[1]) {
    return child.call(this, redact(bindings), options);
  } as Logger["child"];
  return logger;
}

/**
 * stdout for the log, written synchronously, that survives its reader going away (a closed pipe:
 * journald restarted, the terminal closed, a supervisor gone). Without this the write error is an
 * uncaught exception whose own log line fails again, and a SIGTERM then never ends the process.
 * Once the line is gone, lines are dropped: the bank goes on, and stops when told to.
 */
function stdoutDestination(): DestinationStream {
  const sonic = pino.destination({ dest: 1, sync: true });
  let gone = false;
  sonic.on("error", () => {
    gone = true;
  });
  return {
    write(line: string) {
      if (gone) return;
      try {
        sonic.write(line);
      } catch {
        gone = true;
      }
    },
  };
}

/** pino writes the level first: `{"level":30,...`. */
function levelOf(line: string): number {
  const m = /^\{"level":(\d+)/.exec(line);
  return m ? Number(m[1]) : 30;
}

/** Text for stderr outside pino (usage, a bad config at start): each line with priority `<3>` under journald. */
export function stderrText(text: string, env: NodeJS.ProcessEnv = process.env): string {
  const out = scrubLine(text);
  if (!isJournalStream(2, env)) return out;
  return out.replace(/^(?=.)/gm, "<3>");
}

/** A logger that drops everything (benchmarks, tools). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

// ── pretty: for a person at a terminal ───────────────────────────────────

const LABEL: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLOR: Record<number, string> = { 10: "2", 20: "2", 30: "32", 40: "33", 50: "31", 60: "1;31" };
const HIDDEN = new Set(["level", "time", "msg", "module", "name", "pid", "hostname", "err"]);

/** One pino JSON line as `time LEVEL module: message  key=value ...` (an error's stack below it). */
export function prettyLine(line: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof o.level === "number" ? o.level : 30;
  const paint = (code: string | undefined, s: string) => (color && code ? `\x1b[${code}m${s}\x1b[0m` : s);
  const time = typeof o.time === "number" ? clockTime(o.time) : "";
  const module = typeof o.module === "string" ? `${paint("36", o.module)}: ` : "";
  const fields = Object.entries(o)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${paint("2", `${k}=`)}${value(v)}`);
  const err = o.err as { message?: unknown; stack?: unknown } | undefined;
  if (err && typeof err === "object") fields.push(`${paint("2", "err=")}${value(err.message ?? err)}`);
  const stack = level >= 50 && err && typeof err.stack === "string" ? `\n${err.stack.split("\n").slice(1).map((l) => `    ${l.trim()}`).join("\n")}` : "";
  const head = `${paint("2", time)} ${paint(LEVEL_COLOR[level], (LABEL[level] ?? String(level)).padEnd(5))} ${module}${String(o.msg ?? "")}`;
  return `${head}${fields.length ? `  ${fields.join(" ")}` : ""}${stack}\n`;
}

function value(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

function clockTime(t: number): string {
  const d = new Date(t);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
