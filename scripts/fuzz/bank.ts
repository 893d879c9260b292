// The bank the fuzzers attack: the daemon's own Runtime on simulated hardware (config.example.json,
// its seeded people and PINs), in a temporary data directory removed at close. The same build as
// test/helpers/bank.ts, without vitest, so the long form runs under plain node.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import type { SimHardware } from "../../src/drivers/sim/hardware.js";
import { GENESIS_HASH, verifyChain, type LedgerEvent } from "../../src/domain/events.js";
import type { Ledger } from "../../src/ledger/ledger.js";
import { silentLogger } from "../../src/log.js";
import { Runtime } from "../../src/runtime.js";

/** The checkout: the nearest directory up from here with config.example.json (scripts/ or dist/scripts/). */
export function repoRoot(): string {
  for (let dir = dirname(new URL(import.meta.url).pathname); dir !== "/"; dir = dirname(dir)) {
    if (existsSync(join(dir, "config.example.json")) && existsSync(join(dir, "package.json"))) return dir;
  }
  throw new Error("config.example.json not found above scripts/fuzz");
}

/** config.example.json as parsed JSON, to patch section by section before parseConfig. */
export type RawConfig = Record<string, Record<string, unknown>>;

export function exampleConfig(): RawConfig {
  return JSON.parse(readFileSync(join(repoRoot(), "config.example.json"), "utf8")) as RawConfig;
}

/** The seeded credentials of config.example.json (README): never typed by a fuzzer. */
export const SEEDED_PINS = ["2468", "8642"];
/** Badges of active people; 04DEAD00 (inactive) is left to the fuzzers on purpose. */
export const SEEDED_BADGES = ["C0FFEE01", "5A5A0001", "04A1B2C3", "04A1B2C4"];

export interface FuzzBank {
  rt: Runtime;
  config: Config;
  hw: SimHardware;
  dir: string;
  dataDir: string;
  /** Pickup codes the bank issued (codeIssued), in order. */
  codes: { code: string; parcel: string; compartment: string }[];
  close(): Promise<void>;
}

export interface FuzzBankOptions {
  patch?: (cfg: RawConfig) => void;
  adminSocket?: boolean;
  /** Default NORMAL: the fuzzers test logic, not durability, and FULL's fsync per commit would dominate. */
  synchronous?: "FULL" | "NORMAL" | "OFF";
}

export async function fuzzBank(opts: FuzzBankOptions = {}): Promise<FuzzBank> {
  const raw = exampleConfig();
  raw.locks = { ...raw.locks, pulseMs: 100, openVerifyMs: 500 };
  opts.patch?.(raw);
  const dir = mkdtempSync(join(tmpdir(), "lockerd-fuzz-"));
  const dataDir = join(dir, "data");
  const config = parseConfig(raw);
  const rt = new Runtime({
    config,
    dataDir,
    log: silentLogger(),
    version: "fuzz",
    simSocket: false,
    adminSocket: opts.adminSocket ?? false,
    synchronous: opts.synchronous ?? "NORMAL",
  });
  await rt.start();
  const codes: FuzzBank["codes"] = [];
  rt.bank.on("codeIssued", (n) => codes.push({ code: n.code, parcel: n.parcel, compartment: n.compartment }));
  return {
    rt,
    config,
    hw: rt.hardware as SimHardware,
    dir,
    dataDir,
    codes,
    close: async () => {
      try {
        await rt.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A courier's deposit through the keypad (the harness's own, not the fuzzer's): PIN, size, the
 * door springs open, the harness closes it, recipient number. Returns the code issued.
 */
export async function depositThroughKeypad(b: FuzzBank, advance: (ms: number) => Promise<void>, size: "1" | "2" | "3", recipient: string): Promise<string> {
  const before = b.codes.length;
  b.hw.keypad.keys("*2468#");
  b.hw.keypad.keys(size);
  const loading = b.rt.ledger.compartments().find((c) => c.state === "loading");
  if (!loading) throw new Error(`harness deposit: no compartment opened (${b.hw.display.lines.join(" | ")})`);
  await advance(700);
  b.hw.doors.set(b.rt.bank.layoutOf(loading.id).lock, "closed");
  b.hw.keypad.keys(`${recipient}#`);
  b.hw.keypad.keys("*");
  const issued = b.codes[before];
  if (!issued) throw new Error(`harness deposit: no code issued (${b.hw.display.lines.join(" | ")})`);
  return issued.code;
}

/** Closes every door standing open (what people do after taking their parcel). */
export function closeAllDoors(b: FuzzBank): void {
  for (const l of b.rt.layout) if (b.hw.doors.read(l.lock) === "open") b.hw.doors.set(l.lock, "closed");
}

/**
 * The custody chain, verified as it grows: check() re-hashes the events written since the last
 * check, as they read back from the ledger, so a break is caught at the input that made it.
 */
export class ChainWatch {
  private next: number;
  private prevHash: string;

  constructor(private readonly ledger: Ledger) {
    const head = ledger.headSeq;
    const last = head ? ledger.eventsFrom(head, 1)[0] : undefined;
    this.next = head + 1;
    this.prevHash = last?.hash ?? GENESIS_HASH;
  }

  /** Null when the new events verify; else the first bad event and why. */
  check(): { seq: number; reason: string; event: LedgerEvent } | null {
    const events = this.ledger.eventsFrom(this.next, 1_000_000);
    if (!events.length) return null;
    const r = verifyChain(events, this.prevHash, this.next);
    if (!r.ok) {
      const bad = events.find((e) => e.seq === r.brokenAt)!;
      this.next = events[events.length - 1]!.seq + 1;
      this.prevHash = events[events.length - 1]!.hash;
      return { seq: r.brokenAt!, reason: r.reason ?? "?", event: bad };
    }
    this.next = events[events.length - 1]!.seq + 1;
    this.prevHash = events[events.length - 1]!.hash;
    return null;
  }
}
