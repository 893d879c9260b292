// Compartment state machine. Pure: no I/O, no clock.
//
//            reserve            open for deposit        door closed
//   free ───────────▶ reserved ───────────────▶ loading ───────────▶ occupied
//    ▲  ◀─── cancel ───┘  └──────────▲  │ (aborted: back)                │ open for pickup/removal
//    │                               └──┘                                ▼
//    └──────────────────── door closed ─────────────────────────── unloading
//   any ──(lock did not open)──▶ fault ──(technician clears)──▶ free | occupied
import { ErrorCode, LockerError } from "../errors.js";

export const COMPARTMENT_STATES = ["free", "reserved", "loading", "occupied", "unloading", "fault"] as const;
export type CompartmentState = (typeof COMPARTMENT_STATES)[number];

const ALLOWED: Record<CompartmentState, readonly CompartmentState[]> = {
  free: ["reserved", "loading", "fault"],
  reserved: ["free", "loading", "fault"],
  loading: ["occupied", "free", "reserved", "fault"],
  occupied: ["unloading", "fault"],
  unloading: ["free", "occupied", "fault"],
  fault: ["free", "occupied"],
};

export function canTransition(from: CompartmentState, to: CompartmentState): boolean {
  return ALLOWED[from].includes(to);
}

/** Throws LockerError(illegal_transition) naming the compartment and the move. */
export function assertTransition(compartment: string, from: CompartmentState, to: CompartmentState): void {
  if (!canTransition(from, to)) {
    throw new LockerError(ErrorCode.IllegalTransition, `${compartment}: ${from} → ${to} is not allowed`, {
      compartment,
      from,
      to,
    });
  }
}

/** States in which the door is expected to be opened by someone we let in. */
export function isOpening(state: CompartmentState): boolean {
  return state === "loading" || state === "unloading";
}

/** Why a compartment is held out of assignment: forced open (until a technician has looked), or a fault. */
export type Hold = "inspection" | "fault";

/** The hold a compartment is under, and since when; inspection wins over a fault (it needs a visit either way). */
export function holdOf(c: { state: CompartmentState; since: number; inspectSince: number | null }): { held: Hold | null; heldSince: number | null } {
  if (c.inspectSince !== null) return { held: "inspection", heldSince: c.inspectSince };
  if (c.state === "fault") return { held: "fault", heldSince: c.since };
  return { held: null, heldSince: null };
}
