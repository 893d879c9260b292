// What each board family says on the wire, behind one small interface the board part uses: the
// status read, the unlock, and the lock / item bits a frame carries.
import type { Exchange } from "./bus.js";
import type { Cu8aConfig, KerongConfig } from "./config.js";
import { CU8A_CLOSED, CU8A_OPEN, createCu8aParser, cu8aReadAll, cu8aUnlock, describeCu8a, type Cu8aFrame } from "./cu8a-codec.js";
import { createKerongParser, describeKerong, kerongReadStatus, kerongUnlock, type KerongFrame } from "./kerong-codec.js";
import type { FrameParser } from "./parser.js";

/** Lock and item bits a frame carries, by lock number (1-based), as raw bits (true = 1). */
export interface Snapshot {
  address: number;
  locks: ReadonlyMap<number, boolean>;
  items?: ReadonlyMap<number, boolean>;
}

/** What a board family says on the wire; the board part is the same for every family. */
export interface Protocol<F> {
  readonly family: "kerong" | "cu8a";
  readonly parser: FrameParser<F>;
  describe(frame: F): string;
  readStatus(address: number): Exchange<F>;
  unlock(address: number, lock: number): Exchange<F>;
  /** The bits a frame reports (replies and a board's own reports), or null. */
  snapshot(frame: F): Snapshot | null;
}

function allLocks(bits: readonly boolean[]): Map<number, boolean> {
  const locks = new Map<number, boolean>();
  for (let i = 0; i < bits.length; i++) locks.set(i + 1, bits[i]!);
  return locks;
}

export function kerongProtocol(config: Pick<KerongConfig, "timeoutMs">): Protocol<KerongFrame> {
  return {
    family: "kerong",
    parser: createKerongParser(),
    describe: describeKerong,
    readStatus: (address) => ({
      frame: kerongReadStatus(address),
      what: `kerong #${address} read status`,
      reply: (f) => f.kind === "status" && f.board === address,
      timeoutMs: config.timeoutMs,
    }),
    // Not answered: the bus holds for the frame's wire time plus the gap.
    unlock: (address, lock) => ({ frame: kerongUnlock(address, lock), what: `kerong #${address} unlock ${lock}`, timeoutMs: 0, urgent: true }),
    snapshot: (f) => (f.kind === "status" ? { address: f.board, locks: allLocks(f.locks), items: allLocks(f.items) } : null),
  };
}

export function cu8aProtocol(config: Pick<Cu8aConfig, "timeoutMs" | "statusBytes" | "statusOrder" | "awaitUnlockReply" | "unlockTimeoutMs">): Protocol<Cu8aFrame> {
  const opts = { statusBytes: config.statusBytes, order: config.statusOrder };
  return {
    family: "cu8a",
    parser: createCu8aParser(opts),
    describe: describeCu8a,
    readStatus: (address) => ({
      frame: cu8aReadAll(address),
      what: `cu8a #${address} read all`,
      reply: (f) => f.kind === "status" && f.board === address,
      timeoutMs: config.timeoutMs,
    }),
    unlock: (address, lock) => ({
      frame: cu8aUnlock(address, lock),
      what: `cu8a #${address} unlock ${lock}`,
      reply: config.awaitUnlockReply ? (f) => f.kind === "unlock" && f.board === address && f.lock === lock : undefined,
      timeoutMs: config.unlockTimeoutMs,
      urgent: true,
    }),
    snapshot: (f) => {
      if (f.kind === "status") return { address: f.board, locks: allLocks(f.locks) };
      // A one-lock value: 0x11 closed (bit 1), 0x00 open (bit 0); anything else carries no state.
      if (f.lock === 0 || (f.value !== CU8A_CLOSED && f.value !== CU8A_OPEN)) return null;
      return { address: f.board, locks: new Map([[f.lock, f.value === CU8A_CLOSED]]) };
    },
  };
}
