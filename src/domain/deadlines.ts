// When a stored parcel's notices fall due: reminders, escalation, expiry. Pure: times are passed in.
//
//   deposit ──24 h──▶ reminder ──48 h──▶ escalation ──72 h──▶ expiry (code stops opening; staff remove it)
//
// Due times are computed once, at deposit, and persisted; a policy change applies to new parcels.
import type { Config, Size } from "../config/schema.js";

export type NoticeKind = "reminder" | "escalation" | "expiry";

export interface Notice {
  kind: NoticeKind;
  /** 1-based stage, in order of due time; expiry is last. */
  stage: number;
  dueAt: number;
}

const HOUR = 3_600_000;

export function expiryHours(policy: Config["policies"], size: Size, refrigerated: boolean): number {
  if (refrigerated && policy.refrigeratedExpiryHours !== undefined) return policy.refrigeratedExpiryHours;
  return policy.expiryHoursBySize?.[size] ?? policy.expiryHours;
}

/** Every notice of a parcel deposited at `depositedAt`; the last reminder before expiry is the escalation. */
export function noticesFor(policy: Config["policies"], depositedAt: number, size: Size, refrigerated: boolean): Notice[] {
  const expiry = expiryHours(policy, size, refrigerated);
  const reminders = [...new Set(policy.reminderHours)].filter((h) => h < expiry).sort((a, b) => a - b);
  const out: Notice[] = reminders.map((h, i) => ({
    kind: reminders.length > 1 && i === reminders.length - 1 ? "escalation" : "reminder",
    stage: i + 1,
    dueAt: depositedAt + h * HOUR,
  }));
  out.push({ kind: "expiry", stage: out.length + 1, dueAt: depositedAt + expiry * HOUR });
  return out;
}

/**
 * Of a parcel's unsent notices, which to send now. When a clock jump (a Pi without RTC getting its
 * time from NTP) makes several due at once, only the most advanced goes out: the others are
 * superseded, so the recipient gets one message, not a storm, and never a reminder after expiry.
 */
export function dueNow<N extends Notice>(unsent: readonly N[], now: number): { send: N | undefined; superseded: N[] } {
  const due = unsent.filter((n) => n.dueAt <= now).sort((a, b) => a.stage - b.stage);
  const send = due.at(-1);
  return { send, superseded: due.slice(0, -1) };
}
