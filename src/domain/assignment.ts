// Which compartment a parcel goes into. Pure.
import { SIZES, type Size } from "../config/schema.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { CompartmentState } from "./compartment.js";

export interface Candidate {
  id: string;
  size: Size;
  state: CompartmentState;
  enabled: boolean;
  refrigerated: boolean;
  accessible: boolean;
  /** Set after a forced open: kept out until a technician has looked. */
  inspectSince?: number | null;
}

export interface AssignmentRequest {
  size: Size;
  refrigerated?: boolean;
  accessible?: boolean;
  /** Take the next larger size when none of the asked size is free. */
  allowLarger: boolean;
}

const rank = (s: Size): number => SIZES.indexOf(s);

/**
 * The free, enabled compartment of the smallest size that fits. Refrigerated and accessible
 * compartments are kept for parcels that ask for them (and are the only ones such parcels get).
 * Ties go to bank order, so the choice is deterministic. Returns undefined when nothing fits.
 */
export function assignCompartment<C extends Candidate>(compartments: readonly C[], req: AssignmentRequest): C | undefined {
  const want = rank(req.size);
  let best: C | undefined;
  for (const c of compartments) {
    if (c.state !== "free" || !c.enabled || c.inspectSince != null) continue;
    if (c.refrigerated !== (req.refrigerated ?? false)) continue;
    if (c.accessible !== (req.accessible ?? false)) continue;
    const r = rank(c.size);
    if (r < want || (r > want && !req.allowLarger)) continue;
    if (!best || r < rank(best.size)) best = c;
    if (r === want) break;
  }
  return best;
}

/** The refusal when nothing fits: "no refrigerated M compartment free", whoever asked (keypad, server). */
export function noFit(size: Size, special: { refrigerated?: boolean | undefined; accessible?: boolean | undefined }): LockerError {
  const kind = special.refrigerated ? "refrigerated" : special.accessible ? "accessible" : null;
  return new LockerError(ErrorCode.NoFit, `no ${kind ? `${kind} ` : ""}${size} compartment free`, { size, kind });
}
