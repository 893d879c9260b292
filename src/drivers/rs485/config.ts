// Config fragments for RS485 lock-control boards: one bus (one USB-RS485 adapter) per entry, with
// the boards on it. A board owns the lock channels firstChannel .. firstChannel + channels - 1 (the
// bank config's `lock` numbers); its lock 1 is firstChannel.
import { z } from "zod";

/** The bank config's lock channels are 0..1023. */
const MAX_CHANNEL = 1023;
/** Same cap as locks.pulseMs: the boards time the pulse, lockerd waits this long for it. */
const MAX_PULSE_MS = 2000;

const bit = z.union([z.literal(0), z.literal(1)]);
const baudRate = z.union([z.literal(9600), z.literal(19200), z.literal(38400), z.literal(57600), z.literal(115200)]);

/**
 * Polls missed in a row before a board is faulted; each poll is already retried once at once.
 * Sized for a noisy line, p = 6% corrupted replies, at the default 4 polls/s (pollMs 250):
 * - a miss takes 2 bad replies: p² ≈ 0.0036; a fault takes k misses in a row: p^(2k).
 * - k = 2: 1.3e-5 per poll, a false fault every 1/(4 × 1.3e-5) s ≈ 5.4 h per board.
 * - k = 3: 4.7e-8 per poll, one every ≈ 5.4e6 s ≈ 62 days per board (31 with two boards on it).
 *   (Before the retry, 2 single misses: p² = 0.0036, one every ≈ 69 s, as seen on site.)
 * - a board gone silent is faulted after k × (2 × timeoutMs) + (k − 1) × pollMs
 *   = 3 × 200 + 2 × 250 = 1100 ms (≈ 1.2 s with wire times and gaps), against 1.55 s for k = 4;
 *   up to one more timeoutMs a miss where a poll's wait rides the bus's next poll (bus.ts replyDeadline).
 */
const MISSES_TO_FAULT = 3;

/** Timing and fault handling shared by both board families. */
const timing = {
  pollMs: z.int().min(20).max(10_000).default(250).describe("status read of each board every this often"),
  timeoutMs: z.int().min(10).max(2000).default(100).describe("a board that has not answered within this missed (a poll's wait may run on to the bus's next poll, up to this much longer)"),
  pulseMs: z.int().min(50).max(MAX_PULSE_MS).default(500).describe("the board's own unlock time; a pulse resolves this long after the frame is written"),
  missesToFault: z.int().min(1).max(10).default(MISSES_TO_FAULT).describe("polls missed in a row (each retried once at once) before a board is faulted"),
  retryMaxMs: z.int().min(50).max(60_000).default(5000).describe("longest wait between retries of a faulted board or a vanished port"),
  gapMs: z.int().min(0).max(200).default(10).describe("quiet time on the bus after each exchange"),
  turnaroundMs: z
    .number()
    .min(0)
    .max(200)
    .optional()
    .describe(
      "quiet time before an unlock after an answered exchange (the board that answered has released the line); at most gapMs. Default: one character time at baudRate (10 bits: 0.52 ms at 19200), ten times the bit an auto-direction transceiver holds the line after its last stop bit",
    ),
};

/** One character on the wire (8N1: 10 bits) at `baudRate`, in ms: the default turnaround. */
export const characterMs = (baudRate: number) => 10_000 / baudRate;

const port = z.string().min(1).max(4096).describe("serial device; prefer /dev/serial/by-id/... so it survives replugging");

interface BoardRange {
  address: number;
  firstChannel: number;
  channels: number;
}

/** Addresses unique, channel ranges inside 0..1023 and not overlapping. */
function checkBoards(boards: readonly BoardRange[], ctx: z.RefinementCtx): void {
  const seen = new Set<number>();
  boards.forEach((b, i) => {
    if (seen.has(b.address)) ctx.addIssue({ code: "custom", path: ["boards", i, "address"], message: `address ${b.address} used twice` });
    seen.add(b.address);
    const last = b.firstChannel + b.channels - 1;
    if (last > MAX_CHANNEL) ctx.addIssue({ code: "custom", path: ["boards", i, "channels"], message: `channels end at ${last}, past ${MAX_CHANNEL}` });
    boards.forEach((o, j) => {
      if (j >= i) return;
      const oLast = o.firstChannel + o.channels - 1;
      if (b.firstChannel <= oLast && o.firstChannel <= last) {
        ctx.addIssue({ code: "custom", path: ["boards", i, "firstChannel"], message: `channels ${b.firstChannel}..${last} overlap board ${o.address} (${o.firstChannel}..${oLast})` });
      }
    });
  });
}

const KerongBoard = z.strictObject({
  address: z.int().min(0).max(15).describe("DIP-switch address: the high nibble of ADDR"),
  firstChannel: z.int().min(0).max(MAX_CHANNEL).describe("lock channel of the board's lock 1"),
  channels: z.int().min(1).max(16).default(16).describe("locks wired, from lock 1"),
  itemSensors: z.boolean().default(true).describe("infrared item sensors fitted"),
});

export const KerongConfig = z
  .strictObject({
    type: z.literal("kerong"),
    port,
    baudRate: baudRate.default(19200),
    boards: z.array(KerongBoard).min(1).max(16),
    lockBitOpen: bit.default(0).describe("lock feedback bit value meaning 'open' (sources disagree; check on the board)"),
    irBitPresent: bit.default(1).describe("infrared bit value meaning 'item present'"),
    ...timing,
  })
  .superRefine((c, ctx) => checkBoards(c.boards, ctx));
export type KerongConfig = z.infer<typeof KerongConfig>;

const Cu8aBoard = z.strictObject({
  address: z.int().min(0).max(255).describe("DIP-switch address (typically 1..32)"),
  firstChannel: z.int().min(0).max(MAX_CHANNEL).describe("lock channel of the board's lock 1"),
  channels: z.int().min(1).max(64).default(24).describe("locks wired, from lock 1"),
});

export const Cu8aConfig = z
  .strictObject({
    type: z.literal("cu8a"),
    port,
    baudRate: baudRate.default(9600),
    boards: z.array(Cu8aBoard).min(1).max(32),
    lockBitOpen: bit.default(0).describe("status bit value meaning 'open' (a reply's 0x11 counts as bit 1)"),
    statusBytes: z.int().min(1).max(8).default(3).describe("status bytes in a read-all reply (3 on 24-channel boards)"),
    statusOrder: z.enum(["high-first", "low-first"]).default("high-first").describe("high-first: the first status byte holds the highest locks"),
    awaitUnlockReply: z.boolean().default(true).describe("the board answers an unlock with 8A BB LL VV"),
    unlockTimeoutMs: z.int().min(10).max(5000).default(1000).describe("how long to wait for that answer"),
    ...timing,
  })
  .superRefine((c, ctx) => {
    checkBoards(c.boards, ctx);
    c.boards.forEach((b, i) => {
      if (b.channels > c.statusBytes * 8) {
        ctx.addIssue({ code: "custom", path: ["boards", i, "channels"], message: `${b.channels} channels but ${c.statusBytes} status bytes carry ${c.statusBytes * 8}` });
      }
    });
  });
export type Cu8aConfig = z.infer<typeof Cu8aConfig>;

/** One RS485 bus of either family. */
export const Rs485Config = z.discriminatedUnion("type", [KerongConfig, Cu8aConfig]);
export type Rs485Config = z.infer<typeof Rs485Config>;
