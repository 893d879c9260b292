// One error type with stable codes. MQTT replies, sim-socket errors and lockerctl exit codes are
// built from `code`; never match on `message`.

export const ErrorCode = {
  // input
  BadInput: "bad_input",
  UnknownCompartment: "unknown_compartment",
  UnknownPerson: "unknown_person",
  UnknownParcel: "unknown_parcel",
  InvalidCredential: "invalid_credential",
  LockedOut: "locked_out",
  Unauthorized: "unauthorized",
  /** Allowed to someone else: e.g. a directory change on a bank whose people lockerctl manages. */
  Forbidden: "forbidden",
  UnknownCommand: "unknown_command",
  PayloadTooLarge: "payload_too_large",
  Expired: "expired",
  // state
  IllegalTransition: "illegal_transition",
  NoFit: "no_fit",
  ParcelExpired: "parcel_expired",
  Busy: "busy",
  CompartmentDisabled: "compartment_disabled",
  // hardware
  LockFault: "lock_fault",
  HardwareTimeout: "hardware_timeout",
  HardwareUnavailable: "hardware_unavailable",
  // system
  Config: "config",
  Storage: "storage",
  ChainBroken: "chain_broken",
  ShuttingDown: "shutting_down",
  Internal: "internal",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.Busy,
  ErrorCode.HardwareTimeout,
  ErrorCode.HardwareUnavailable,
]);

export class LockerError extends Error {
  override readonly name = "LockerError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isLockerError(e: unknown, code?: ErrorCode): e is LockerError {
  return e instanceof LockerError && (code === undefined || e.code === code);
}

/** A fault worth retrying with backoff (a board that did not answer, a busy bus). */
export function isTransient(e: unknown): boolean {
  return e instanceof LockerError && TRANSIENT.has(e.code);
}

/** Any thrown value as {code, message}, for replies that must never leak a stack. */
export function toErrorBody(e: unknown): { code: ErrorCode; message: string } {
  if (e instanceof LockerError) return e.toJSON();
  return { code: ErrorCode.Internal, message: "internal error" };
}
