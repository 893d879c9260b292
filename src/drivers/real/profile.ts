// The "real" hardware profile: which boards, readers, display, buzzer and sensors a bank is built
// from (config `hardware`), and the parts they become. Each driver owns its own config schema; this
// module lists them and checks what spans them: every compartment's lock channel is driven by
// exactly one board and sensed by exactly one. (build.ts turns a profile into parts; the runtime
// loads it only for a real bank.)
import { z } from "zod";
import { GpioBuzzerConfig, GpioDoorsConfig, GpioRelaysConfig } from "../gpio/config.js";
import { LcdConfig } from "../display/config.js";
import { Mcp23017Config, Pca9534Config, Pcf8574Config, Sht3xConfig } from "../i2c/config.js";
import { Cu8aConfig, KerongConfig } from "../rs485/config.js";
import { ReaderConfig } from "../readers/config.js";
import { boardChannels } from "./channels.js";

export { boardChannels } from "./channels.js";

export const BoardConfig = z.discriminatedUnion("type", [GpioRelaysConfig, GpioDoorsConfig, Mcp23017Config, Pcf8574Config, Pca9534Config, KerongConfig, Cu8aConfig]);
export type BoardConfig = z.infer<typeof BoardConfig>;

export const RealProfile = z.strictObject({
  profile: z.literal("real"),
  boards: z.array(BoardConfig).min(1).max(64).describe("lock outputs and door inputs, on any mix of boards"),
  readers: z.array(ReaderConfig).max(16).default([]).describe("keypads, badge, QR and barcode readers"),
  display: LcdConfig.optional(),
  buzzer: GpioBuzzerConfig.optional(),
  thermometers: z.array(Sht3xConfig).max(64).default([]),
});
export type RealProfile = z.infer<typeof RealProfile>;

/** Issues for the bank's lock channels not covered exactly once (path under `hardware`). */
export function coverageIssues(profile: RealProfile, channels: readonly { id: string; lock: number }[]): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const drives = new Map<number, number[]>();
  const senses = new Map<number, number[]>();
  profile.boards.forEach((b, i) => {
    const { locks, doors } = boardChannels(b);
    for (const c of locks) drives.set(c, [...(drives.get(c) ?? []), i]);
    for (const c of doors) senses.set(c, [...(senses.get(c) ?? []), i]);
  });
  for (const { id, lock } of channels) {
    const d = drives.get(lock) ?? [];
    const s = senses.get(lock) ?? [];
    if (d.length === 0) issues.push({ path: ["boards"], message: `${id} (lock ${lock}): no board drives its lock` });
    if (d.length > 1) issues.push({ path: ["boards", d[1]!], message: `${id} (lock ${lock}) is driven by boards ${d.join(" and ")}` });
    if (s.length === 0) issues.push({ path: ["boards"], message: `${id} (lock ${lock}): no board senses its door` });
    if (s.length > 1) issues.push({ path: ["boards", s[1]!], message: `${id} (lock ${lock}) is sensed by boards ${s.join(" and ")}` });
  }
  return issues;
}
