// The config schemas of the GPIO parts (relays, door switches, buzzer/LED) and the fields they
// share, apart from the drivers: config/schema.ts validates a bank's config with these alone, so a
// bank that does not use GPIO (the simulated one) never loads the GPIO drivers. The drivers
// (relays.ts, doors.ts, buzzer.ts, sysfs.ts) re-export what is theirs.
import { z } from "zod";

/** A lock channel: the config's compartment `lock` number (same range as the bank schema). */
export const LockChannel = z.int().min(0).max(1023);


export const GpioBackend = z
  .enum(["auto", "sysfs", "chardev"])
  .default("auto")
  .describe(
    "how GPIO is reached: sysfs (/sys/class/gpio, onoff), chardev (/dev/gpiochipN through Debian's gpiod tools), " +
      "auto: sysfs where /sys/class/gpio exists, else chardev",
  );
export type GpioBackend = z.infer<typeof GpioBackend>;

/** Where the GPIO lines are found; every GPIO device's config carries these fields. */
export const gpioChipFields = {
  backend: GpioBackend,
  sysfsRoot: z.string().min(1).default("/sys").describe("sysfs mount point (tests point it at a fake tree)"),
  chipLabel: z.string().min(1).optional().describe("GPIO chip label; default: the Pi's pin controller"),
};

/** A BCM GPIO number (the Pi 5's RP1 has 54 lines; the header carries 2-27). */
export const BcmPin = z.int().min(0).max(53);

/** Adds an issue for each value of `key` seen twice (shared by the GPIO schemas). */
export function uniqueBy<T>(items: readonly T[], key: (t: T) => unknown, what: string, ctx: z.RefinementCtx): void {
  const seen = new Set<unknown>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: "custom", message: `${what} ${String(k)} is used twice` });
    seen.add(k);
  }
}

export const GpioRelaysConfig = z
  .strictObject({
    type: z.literal("gpio-relays"),
    ...gpioChipFields,
    activeLow: z.boolean().default(false).describe("relays energize when their pin is low (most opto-isolated boards)"),
    relays: z
      .array(
        z.strictObject({
          channel: LockChannel,
          pin: BcmPin.describe("BCM GPIO number"),
          activeLow: z.boolean().optional().describe("overrides the board's activeLow for this relay"),
        }),
      )
      .min(1)
      .max(28),
  })
  .superRefine((c, ctx) => {
    uniqueBy(c.relays, (r) => r.channel, "channel", ctx);
    uniqueBy(c.relays, (r) => r.pin, "pin", ctx);
  });
export type GpioRelaysConfig = z.infer<typeof GpioRelaysConfig>;

export const DEFAULT_DEBOUNCE_MS = 30;

export const debounceMsField = z.int().min(0).max(1000).default(DEFAULT_DEBOUNCE_MS).describe("a level must hold this long to count");
export const doorsActiveLowField = z
  .boolean()
  .default(true)
  .describe("the input reads low when the door is closed (switch to GND with a pull-up, the usual wiring)");

export const GpioDoorsConfig = z
  .strictObject({
    type: z.literal("gpio-doors"),
    ...gpioChipFields,
    debounceMs: debounceMsField,
    reconcileMs: z.int().min(50).max(60_000).default(1000).describe("every input is re-read this often (a missed edge)"),
    activeLow: doorsActiveLowField,
    doors: z
      .array(
        z.strictObject({
          channel: LockChannel,
          pin: BcmPin.describe("BCM GPIO number"),
          activeLow: z.boolean().optional().describe("overrides the bank's activeLow for this door"),
        }),
      )
      .min(1)
      .max(28),
  })
  .superRefine((c, ctx) => {
    uniqueBy(c.doors, (d) => d.channel, "channel", ctx);
    uniqueBy(c.doors, (d) => d.pin, "pin", ctx);
  });
export type GpioDoorsConfig = z.infer<typeof GpioDoorsConfig>;

const Output = z.strictObject({
  pin: BcmPin.describe("BCM GPIO number"),
  activeLow: z.boolean().default(false).describe("on when the pin is low"),
});

export const GpioBuzzerConfig = z
  .strictObject({
    type: z.literal("gpio-buzzer"),
    ...gpioChipFields,
    buzzer: Output.optional(),
    led: Output.optional(),
  })
  .refine((c) => c.buzzer || c.led, { message: "needs a buzzer, a led or both" })
  .refine((c) => !c.buzzer || !c.led || c.buzzer.pin !== c.led.pin, { message: "buzzer and led share a pin" });
export type GpioBuzzerConfig = z.infer<typeof GpioBuzzerConfig>;

