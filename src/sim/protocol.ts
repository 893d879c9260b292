// The simulator socket's JSON-lines contract (design §4), shared by the daemon, `npm run sim` and
// the tests. One JSON object per line, both ways.
import { z } from "zod";
import { SIM_BOARD_STATES } from "../drivers/sim/hardware.js";

export const MAX_LINE_BYTES = 64 * 1024;
export const MAX_KEYS_PER_LINE = 64;

const compartment = z.string().regex(/^[A-Z][0-9]{2}$/, "expected a compartment id such as A07");

export const SimRequest = z.discriminatedUnion("op", [
  z.strictObject({
    op: z.literal("keys"),
    keys: z
      .string()
      .min(1)
      .max(MAX_KEYS_PER_LINE, `at most ${MAX_KEYS_PER_LINE} keys per line`)
      .regex(/^[0-9*#]+$/, "keys are 0-9, * and #"),
  }),
  z.strictObject({ op: z.literal("badge"), id: z.string().regex(/^[0-9A-Fa-f]{4,32}$/, "expected 4-32 hex digits") }),
  z.strictObject({ op: z.literal("scan"), text: z.string().min(1).max(512) }),
  /** A finger on the simulated fingerprint module (and lifted): names like "7"; enrolment takes its touches from these. */
  z.strictObject({ op: z.literal("finger"), finger: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, "a finger is 1-16 letters or digits") }),
  z.strictObject({ op: z.literal("door"), compartment, state: z.enum(["open", "closed"]) }),
  z.strictObject({ op: z.literal("jam"), compartment, jammed: z.boolean() }),
  z.strictObject({ op: z.literal("state") }),
  z.strictObject({ op: z.literal("temperature"), compartment, celsius: z.number().min(-40).max(125) }),
  z.strictObject({ op: z.literal("sensor"), compartment, failing: z.boolean() }),
  z.strictObject({ op: z.literal("board"), state: z.enum(SIM_BOARD_STATES) }),
]);
export type SimRequest = z.infer<typeof SimRequest>;

export const CompartmentView = z.object({
  id: z.string(),
  size: z.string(),
  state: z.string(),
  enabled: z.boolean(),
  door: z.string(),
  parcel: z.string().nullable(),
  since: z.number(),
});
export type CompartmentView = z.infer<typeof CompartmentView>;

export const SimEvent = z.discriminatedUnion("ev", [
  z.object({ ev: z.literal("hello"), device: z.string(), terminal: z.string() }),
  z.object({ ev: z.literal("display"), lines: z.array(z.string()) }),
  z.object({ ev: z.literal("unlock"), compartment: z.string(), pulseMs: z.number() }),
  z.object({ ev: z.literal("buzzer"), pattern: z.string() }),
  z.object({ ev: z.literal("door"), compartment: z.string(), state: z.string() }),
  z.object({ ev: z.literal("state"), compartments: z.array(CompartmentView) }),
  z.object({ ev: z.literal("notify"), person: z.string(), name: z.string().optional(), parcel: z.string(), compartment: z.string(), code: z.string() }),
  z.object({ ev: z.literal("alarm"), type: z.string(), compartment: z.string().nullable(), data: z.record(z.string(), z.unknown()) }),
  z.object({ ev: z.literal("error"), message: z.string() }),
]);
export type SimEvent = z.infer<typeof SimEvent>;
