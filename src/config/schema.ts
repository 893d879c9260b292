// The single source of lockerd's configuration: types, defaults, ranges and descriptions.
// Every object is strict: an unknown key (a typo) is an error, never silently ignored.
import { z } from "zod";
import type * as RealProfileModule from "../drivers/real/profile.js";
import { HYSTERESIS_C } from "../domain/temperature.js";

export const CONFIG_VERSION = 1;

export const SIZES = ["S", "M", "L", "XL"] as const;
export const Size = z.enum(SIZES);
export type Size = z.infer<typeof Size>;

export const ROLES = ["recipient", "courier", "staff", "technician"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

/** Hard cap on a solenoid pulse: longer than this and a coil overheats (typical 12 V locks). */
export const MAX_PULSE_MS = 2000;

const digits = (min: number, max: number) =>
  z.string().regex(new RegExp(`^[0-9]{${min},${max}}$`), `expected ${min}-${max} digits`);

const CompartmentSpec = z.strictObject({
  size: Size.describe("door size class"),
  refrigerated: z.boolean().default(false),
  accessible: z.boolean().default(false).describe("low, reachable from a wheelchair"),
  lock: z.int().min(0).max(1023).optional().describe("lock channel; default: position in the bank"),
  temperature: z
    .strictObject({ minC: z.number().min(-40).max(40), maxC: z.number().min(-40).max(40) })
    .optional()
    .describe("a refrigerated compartment's sensor and its alarm bounds"),
});

const Column = z.strictObject({
  id: z.string().regex(/^[A-Z]$/, "expected one capital letter"),
  compartments: z.array(CompartmentSpec).min(1).max(99),
});

const SimHardware = z.strictObject({
  profile: z.literal("sim"),
  springOpen: z.boolean().default(true).describe("a door springs open when its lock is pulsed"),
  openDelayMs: z.int().min(0).max(5000).default(40).describe("simulated time from pulse to door open"),
  socket: z.string().min(1).optional().describe("sim socket path; default <dataDir>/sim.sock"),
  timeScale: z.number().min(0).max(1).default(1).describe("simulated coil time / real time (benchmarks: 0)"),
});

// The real profile's schema is every driver's config schema (~18 ms of zod at start, several times
// that on a Pi): loaded only for a config that names it (loadRealProfile, before the parse), so a
// simulated bank never builds them. The profile is read at start; a reload cannot change it.
let realProfile: typeof RealProfileModule | undefined;

/** Loads the real profile's schemas, once: what a config with hardware.profile "real" needs before parseConfig. */
export async function loadRealProfile(): Promise<void> {
  realProfile ??= await import("../drivers/real/profile.js");
}

// A loose object with the profile (the union's discriminator), then the real profile's own schema
// at parse time: a z.lazy would be asked for its output's optionality by the object around it, and
// so built at every parse, even a simulated bank's. Not loaded (a running simulated bank reloading
// a real config): an issue like any other, naming the restart.
const RealHardware = z
  .object({ profile: z.literal("real") })
  .loose()
  .transform((v, ctx): z.output<typeof RealProfileModule.RealProfile> => {
    if (!realProfile) {
      ctx.issues.push({ code: "custom", path: ["profile"], input: v.profile, message: 'hardware.profile "real" is read at start: restart lockerd to change to it' });
      return z.NEVER;
    }
    const r = realProfile.RealProfile.safeParse(v, { jitless: true });
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.issues.push(issue as (typeof ctx.issues)[number]);
    return z.NEVER;
  });

const Hardware = z.discriminatedUnion("profile", [SimHardware, RealHardware]);

const Locks = z.strictObject({
  pulseMs: z.int().min(50).max(MAX_PULSE_MS).default(300),
  maxConcurrent: z.int().min(1).max(8).default(1).describe("power budget: locks energized at once"),
  openVerifyMs: z.int().min(100).max(30_000).default(2000).describe("door must be seen open within"),
  retries: z.int().min(0).max(3).default(1).describe("pulses repeated when the door stays shut"),
});

const Terminal = z.strictObject({
  id: z.string().min(1).max(64).default("keypad-1"),
  idleTimeoutMs: z.int().min(5_000).max(600_000).default(30_000).describe("a session with no key this long ends"),
  offerMs: z
    .int()
    .min(2_000)
    .max(60_000)
    .default(10_000)
    .describe("a continuation screen ('Another parcel?', 'No parcels: 1 = drop one off') with no key this long ends the session"),
  displayWidth: z.int().min(16).max(40).default(20),
  displayLines: z.int().min(2).max(4).default(4),
  messageMs: z.int().min(500).max(60_000).default(4000).describe("how long a result stays shown"),
});

const Codes = z.strictObject({
  length: z.int().min(4).max(12).default(6),
});

const Lockout = z.strictObject({
  threshold: z.int().min(1).max(100).default(5).describe("bad codes before the terminal locks"),
  baseDelayMs: z.int().min(1000).max(3_600_000).default(30_000),
  maxDelayMs: z.int().min(1000).max(86_400_000).default(900_000),
  alarmThreshold: z.int().min(1).max(10_000).default(20).describe("bad codes per window that raise an alarm"),
  alarmWindowMs: z.int().min(60_000).max(86_400_000).default(3_600_000),
  decayMs: z.int().min(10_000).max(86_400_000).default(300_000).describe("one failure is forgiven per this long without one; a valid credential resets nothing"),
});

const Policies = z.strictObject({
  reminderHours: z.array(z.number().positive()).max(8).default([24, 48]).describe("notices after deposit; the last before expiry escalates"),
  expiryHours: z.number().positive().default(72).describe("after this a parcel stays locked for staff to remove"),
  expiryHoursBySize: z.partialRecord(Size, z.number().positive()).optional(),
  refrigeratedExpiryHours: z.number().positive().optional(),
  temperatureReadS: z.int().min(5).max(3600).default(60).describe("how often temperature sensors are read"),
  doorLeftOpenS: z.int().min(10).max(3600).default(60).describe("a door open longer than this raises an alarm"),
  offerLarger: z.boolean().default(true).describe("give a larger free compartment when the asked size is full"),
});

/** MQTT topic levels without wildcards, not starting with `$` (reserved for the broker). */
export const TopicPrefix = z.string().regex(/^(?!\$)[^/+#\0]+(\/[^/+#\0]+)*$/, "expected topic levels without + # or a leading $");
const base64Key = (what: string) =>
  z.string().regex(/^[A-Za-z0-9+/]{43}=$/, `expected ${what}: 32 bytes, base64 (44 characters)`);
const filePath = z.string().min(1).max(4096);

/** sync.maxCommandLifetimeS when the config leaves it out: minutes, so a captured command is soon worthless. */
export const DEFAULT_COMMAND_LIFETIME_S = 600;

const BrokerUrl = z.string().regex(/^mqtts?:\/\/[^\s/@]+(:[0-9]{1,5})?\/?$/, "expected mqtt://host[:port] or mqtts://host[:port] (credentials go in username / passwordFile)");
const Sync = z.strictObject({
  enabled: z.boolean().default(false),
  url: z
    .union([
      BrokerUrl,
      z
        .array(BrokerUrl)
        .min(1)
        .max(16)
        .refine((a) => new Set(a).size === a.length, "each endpoint once"),
    ])
    .default("mqtt://127.0.0.1:1883")
    .describe("the broker, or the nodes of one broker cluster (sessions and retained messages shared): the link tries them in turn"),
  protocol: z
    .union([z.literal(5), z.literal(4), z.literal("auto")])
    .optional()
    .describe('MQTT version: 5 (default), 4 (MQTT 3.1.1: NATS, RabbitMQ, many managed brokers), or "auto": 5, falling back to 3.1.1 per endpoint when the broker refuses it (remembered in the ledger)'),
  topicPrefix: TopicPrefix.default("lockers"),
  clientId: z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/).optional().describe("default lockerd-<site>-<device>"),
  username: z.string().min(1).max(256).optional(),
  passwordFile: filePath.optional().describe("file holding the broker password (never in the config)"),
  tls: z
    .strictObject({
      ca: filePath.optional().describe("PEM CA bundle that signed the broker's certificate"),
      cert: filePath.optional().describe("PEM client certificate (mutual TLS)"),
      key: filePath.optional().describe("PEM client private key (mutual TLS)"),
      servername: z.string().min(1).optional().describe("SNI / name to verify, when it differs from the URL's host"),
    })
    .refine((t) => (t.cert === undefined) === (t.key === undefined), "give both cert and key, or neither")
    .optional(),
  serverPublicKey: base64Key("the server's Ed25519 public key").optional().describe("when set, every command with a side effect must be signed, and any sig must verify"),
  sealKey: base64Key("the server's X25519 public key").optional().describe("pickup codes reach the server sealed for this key"),
  clockSkewS: z.int().min(0).max(3600).default(120).describe("tolerance when checking a command's issuedAt and expiresAt against the bank clock"),
  maxCommandLifetimeS: z
    .int()
    .min(30)
    .max(86_400)
    .default(DEFAULT_COMMAND_LIFETIME_S)
    .describe("longest a command stays valid: expiresAt - issuedAt at most this; no expiresAt means issuedAt + this"),
  keepaliveS: z.int().min(5).max(1200).default(30),
  sessionExpiryS: z.int().min(0).max(4_294_967_295).default(604_800).describe("the broker keeps commands for an offline bank this long (MQTT 5; under 3.1.1 the broker's own setting rules)"),
  window: z.int().min(1).max(65535).default(256).describe("events in flight before the first is acknowledged"),
  retentionDays: z
    .number()
    .positive()
    .max(3650)
    .default(30)
    .describe("events older than this are pruned, with or without a server (once published when sync is on); the whole history of a parcel still in the bank is kept"),
  telemetryS: z.int().min(5).max(86400).default(60),
  stateCoalesceMs: z.int().min(0).max(60000).default(250).describe("a burst of changes makes one retained state message"),
  reconnectBaseMs: z.int().min(50).max(60000).default(500),
  reconnectCapMs: z.int().min(100).max(3600000).default(60000),
});

const Admin = z.strictObject({
  socket: z.string().min(1).optional().describe("lockerctl's socket; default $RUNTIME_DIRECTORY/admin.sock under systemd, else <dataDir>/admin.sock"),
  group: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a group name").default("lockerd-admin"),
});

const Storage = z.strictObject({
  minFreeMb: z.int().min(1).max(100_000).default(50).describe("free space on the data directory's disk below this raises alarm.disk_low, long before it is full"),
  checkS: z.int().min(1).max(3600).default(10).describe("how often free space is measured (and a full ledger tried again)"),
});

const SeedPerson = z.strictObject({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(120),
  roles: z.array(Role).min(1),
  number: digits(2, 12).optional().describe("recipient number typed by a courier"),
  pin: digits(4, 12).optional().describe("courier / staff PIN; stored hashed"),
  badge: z.string().regex(/^[0-9A-Fa-f]{4,32}$/, "expected hex badge id").optional(),
  active: z.boolean().default(true),
});

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    $comment: z.string().max(2000).optional().describe("free text: what this config is for"),
    version: z.literal(CONFIG_VERSION),
    device: z.strictObject({
      site: z.string().regex(/^[a-z0-9-]{1,40}$/, "expected lowercase letters, digits, dashes"),
      id: z.string().regex(/^[a-z0-9-]{1,40}$/, "expected lowercase letters, digits, dashes"),
    }),
    bank: z.strictObject({ columns: z.array(Column).min(1).max(26) }),
    hardware: Hardware,
    locks: Locks.prefault({}),
    terminal: Terminal.prefault({}),
    codes: Codes.prefault({}),
    lockout: Lockout.prefault({}),
    policies: Policies.prefault({}),
    sync: Sync.prefault({}),
    admin: Admin.prefault({}),
    storage: Storage.prefault({}),
    people: z
      .strictObject({
        owner: z
          .enum(["server", "lockerctl"])
          .optional()
          .describe('who changes the people directory: the server\'s directory command, or `lockerctl people`; default "server" when sync is enabled, else "lockerctl"'),
      })
      .prefault({}),
    seed: z
      .strictObject({ people: z.array(SeedPerson).max(1000).default([]) })
      .prefault({})
      .describe("demo people for the simulated bank only (refused with hardware.profile real)"),
    log: z.strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info") }).prefault({}),
  })
  // Cross-field rules. `when: () => true` runs them even when a field elsewhere has the wrong type,
  // so one pass names every bad field; the value may then be partly malformed, hence the guards.
  .superRefine(
    (cfg, ctx) => {
      if (typeof cfg !== "object" || cfg === null) return;
      const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);
      const columns = list<{ id?: unknown; compartments?: unknown }>(cfg.bank?.columns);
      const cols = new Set<unknown>();
      columns.forEach((c, i) => {
        if (cols.has(c?.id)) ctx.addIssue({ code: "custom", path: ["bank", "columns", i, "id"], message: `duplicate column ${String(c.id)}` });
        cols.add(c?.id);
      });
      columns.forEach((col, ci) =>
        list<{ refrigerated?: unknown; temperature?: { minC?: unknown; maxC?: unknown } }>(col?.compartments).forEach((c, ri) => {
          const t = c?.temperature;
          if (!t) return;
          const path = ["bank", "columns", ci, "compartments", ri, "temperature"];
          if (c.refrigerated !== true) ctx.addIssue({ code: "custom", path, message: "only a refrigerated compartment has a temperature sensor" });
          // The alarm clears 0.5 °C inside the bounds (hysteresis): a narrower band could never clear.
          if (typeof t.minC === "number" && typeof t.maxC === "number" && t.maxC - t.minC <= 2 * HYSTERESIS_C)
            ctx.addIssue({ code: "custom", path, message: `maxC must exceed minC by more than ${2 * HYSTERESIS_C} °C` });
        }),
      );
      const locks = new Map<number, string>();
      let position = 0;
      columns.forEach((col) =>
        list<{ lock?: unknown }>(col?.compartments).forEach((c, ri) => {
          const lock = typeof c?.lock === "number" ? c.lock : position;
          const id = `${String(col.id)}${String(ri + 1).padStart(2, "0")}`;
          const other = locks.get(lock);
          if (other) ctx.addIssue({ code: "custom", path: ["bank"], message: `${id} and ${other} share lock channel ${lock}` });
          locks.set(lock, id);
          position++;
        }),
      );
      // A real bank: every compartment's lock driven by one board and its door sensed by one.
      const real = realProfile?.RealProfile.safeParse(cfg.hardware);
      if (realProfile && real?.success) {
        const channels = [...locks].map(([lock, id]) => ({ id, lock }));
        for (const issue of realProfile.coverageIssues(real.data, channels)) ctx.addIssue({ code: "custom", path: ["hardware", ...issue.path], message: issue.message });
        // Sensors and the compartments they watch agree: neither is silently left unread.
        const cold = new Map<string, { refrigerated: boolean; bounds: boolean }>();
        columns.forEach((col) =>
          list<{ refrigerated?: unknown; temperature?: unknown }>(col?.compartments).forEach((c, ri) =>
            cold.set(`${String(col.id)}${String(ri + 1).padStart(2, "0")}`, { refrigerated: c?.refrigerated === true, bounds: !!c?.temperature }),
          ),
        );
        // (A refrigerated compartment without a sensor is a warning: config/checks.ts sensorWarnings.)
        real.data.thermometers.forEach((t, i) => {
          const path = ["hardware", "thermometers", i, "compartment"];
          const c = cold.get(t.compartment);
          if (!c) ctx.addIssue({ code: "custom", path, message: `no compartment ${t.compartment} in bank.columns: remove the sensor, or name the compartment it sits in` });
          else if (!c.refrigerated) ctx.addIssue({ code: "custom", path, message: `${t.compartment} is not refrigerated: a temperature sensor belongs in a refrigerated compartment` });
          else if (!c.bounds) ctx.addIssue({ code: "custom", path, message: `${t.compartment} has no temperature bounds (temperature.minC / maxC): its readings would never be checked` });
        });
      }
      const lockout = cfg.lockout as Partial<Config["lockout"]> | undefined;
      if (typeof lockout?.maxDelayMs === "number" && typeof lockout.baseDelayMs === "number" && lockout.maxDelayMs < lockout.baseDelayMs)
        ctx.addIssue({ code: "custom", path: ["lockout", "maxDelayMs"], message: "must be >= baseDelayMs" });
      // Demo people on a real bank would stay valid for good (a staff PIN opens any door).
      if ((cfg.hardware as { profile?: unknown } | undefined)?.profile === "real" && list(cfg.seed?.people).length)
        ctx.addIssue({
          code: "custom",
          path: ["seed", "people"],
          message: "seed.people is for the simulated bank only: remove it, and add people with `lockerctl people add` or the server's directory command",
        });
      const seen = { id: new Set<string>(), number: new Set<string>(), pin: new Set<string>(), badge: new Set<string>() };
      list<Record<string, unknown>>(cfg.seed?.people).forEach((p, i) => {
        for (const key of ["id", "number", "pin", "badge"] as const) {
          const raw = p?.[key];
          if (typeof raw !== "string") continue;
          const v = key === "badge" ? raw.toUpperCase() : raw;
          if (seen[key].has(v)) ctx.addIssue({ code: "custom", path: ["seed", "people", i, key], message: `duplicate ${key}` });
          seen[key].add(v);
        }
      });
    },
    { when: () => true },
  );

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** sync.maxCommandLifetimeS in ms, its default applied. */
export function maxCommandLifetimeMs(sync: { maxCommandLifetimeS?: number | undefined }): number {
  return (sync.maxCommandLifetimeS ?? DEFAULT_COMMAND_LIFETIME_S) * 1000;
}

export interface CompartmentLayout {
  id: string;
  column: string;
  row: number;
  size: Size;
  refrigerated: boolean;
  accessible: boolean;
  lock: number;
  /** What a person types on a keypad to name this door: column number then row, A07 = 107. */
  keypadNumber: string;
  temperature?: { minC: number; maxC: number };
}

/** The compartments a config describes, in bank order. */
export function compartmentIds(columns: Config["bank"]["columns"]): CompartmentLayout[] {
  const out: CompartmentLayout[] = [];
  let position = 0;
  columns.forEach((col, ci) => {
    col.compartments.forEach((c, ri) => {
      const row = ri + 1;
      out.push({
        id: `${col.id}${String(row).padStart(2, "0")}`,
        column: col.id,
        row,
        size: c.size,
        refrigerated: c.refrigerated,
        accessible: c.accessible,
        lock: c.lock ?? position,
        keypadNumber: `${ci + 1}${String(row).padStart(2, "0")}`,
        ...(c.temperature ? { temperature: c.temperature } : {}),
      });
      position++;
    });
  });
  return out;
}
