// The bank's clock as the server sees it in `status` and `telemetry`: the time, whether NTP has set
// it, and the tolerances commands are judged by (sync.clockSkewS, sync.maxCommandLifetimeS). A
// bank whose clock is off refuses good commands as expired; this lets a server see why.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { maxCommandLifetimeMs, type Config } from "../config/schema.js";
import type { ClockInfo } from "./contract.js";

/**
 * systemd-timesyncd creates `synchronized` here once it has set the clock since boot
 * (systemd-timesyncd.service(8)). Two stat calls, no `timedatectl` process per sample.
 */
export const TIMESYNC_DIR = "/run/systemd/timesync";

export function clockInfo(now: number, sync: Pick<Config["sync"], "clockSkewS" | "maxCommandLifetimeS">, timesyncDir = TIMESYNC_DIR): ClockInfo {
  return { now, synchronized: synchronized(timesyncDir), skewToleranceMs: sync.clockSkewS * 1000, maxCommandLifetimeMs: maxCommandLifetimeMs(sync) };
}

/** yes: timesyncd set the clock; no: timesyncd runs and has not (yet); unknown: no timesyncd (chrony, not Linux). */
function synchronized(dir: string): ClockInfo["synchronized"] {
  if (existsSync(join(dir, "synchronized"))) return "yes";
  return existsSync(dir) ? "no" : "unknown";
}
