// A real pino logger (lockerd's createLogger at debug) whose lines are kept, parsed, for a test to read.
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/log.js";

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export function captureLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  return { log: createLogger("debug", dest), lines };
}
