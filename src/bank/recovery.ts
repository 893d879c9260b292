// Undoing a flow whose door never opened (a lock unavailable, a stop before the pulse, an
// interrupted flow settled at start: Bank.recoverInterrupted), and holding one whose outcome is
// unknown. Each runs inside the caller's transaction, with the event that says why.
import type { Compartment, LedgerTx, Parcel } from "../ledger/ledger.js";

/**
 * A flow whose door never opened, undone: a collection puts the parcel back (its code works again),
 * a reserved parcel's deposit goes back to its reservation, any other deposit is cancelled.
 */
export function rollBack(tx: LedgerTx, c: Compartment, parcel: Parcel | undefined, now: number, reason: string): void {
  if (c.state === "unloading") {
    if (parcel) undoCollect(tx, parcel);
    tx.updateCompartment(c.id, { state: parcel ? "occupied" : "free", doorOpened: false, since: now, parcelId: parcel ? parcel.id : null });
    tx.event({ type: "pickup.aborted", compartment: c.id, parcel: parcel?.id ?? null, data: { reason } });
  } else if (parcel && parcel.recipientId !== null && parcel.direction === "inbound") {
    // An app pass that allowed this deposit works again (the door never opened).
    if (parcel.collectCredential !== null) tx.reliveCredential(parcel.collectCredential);
    tx.updateParcel(parcel.id, { status: "reserved", depositorId: null, collectCredential: null });
    tx.updateCompartment(c.id, { state: "reserved", doorOpened: false, since: now });
    tx.event({ type: "deposit.aborted", compartment: c.id, parcel: parcel.id, data: { reason, reserved: true } });
  } else {
    if (parcel) undoDeposit(tx, parcel, now);
    tx.updateCompartment(c.id, { state: "free", parcelId: null, doorOpened: false, since: now });
    tx.event({ type: "deposit.aborted", compartment: c.id, parcel: parcel?.id ?? null, data: { reason } });
  }
}

/**
 * A collection whose outcome is unknown: the parcel is back in its compartment's record (stored, or
 * awaiting its recipient), but the credential that started it stays used: it may have opened once.
 */
export function holdCollect(tx: LedgerTx, parcel: Parcel): void {
  tx.updateParcel(parcel.id, {
    status: parcel.collectVia === "return" ? "awaiting_recipient" : "stored",
    collectorId: null,
    collectVia: null,
    collectCredential: null,
    collectTerminal: null,
  });
}

/** A collection whose door never opened: the parcel is back where it was and its code works again. */
export function undoCollect(tx: LedgerTx, parcel: Parcel): void {
  if (parcel.collectCredential !== null) tx.reliveCredential(parcel.collectCredential);
  holdCollect(tx, parcel);
}

/** A deposit whose parcel never went in: cancelled, and a drop-off code that allowed it works again. */
export function undoDeposit(tx: LedgerTx, parcel: Parcel, now: number): void {
  if (parcel.collectCredential !== null) tx.reliveCredential(parcel.collectCredential);
  tx.updateParcel(parcel.id, { status: "cancelled", compartmentId: null, closedAt: now, collectCredential: null });
}
