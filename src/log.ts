// pino, with a child logger per module. Secrets are redacted by configuration, not by care.
import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;

const SECRET_KEYS = ["pickupCode", "pin", "badge", "secret", "password", "keys"];
/** Pickup codes, PINs, badge ids and raw keypad input never reach a log line. */
export const REDACT = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`)];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { name: "lockerd" }, redact: { paths: REDACT, censor: "[redacted]" } }, destination);
}

/** A logger that drops everything (benchmarks, tools). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
