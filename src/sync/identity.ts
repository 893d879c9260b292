// Two banks with one identity (site/device, hence one MQTT client id): how the link tells it from
// ordinary disconnects, when it starts and ends, and how long it waits between tries. Pure; the
// link (link.ts) records the alarm (alarm.duplicate_identity … alarm.cleared) in the ledger.
//
//   takeover / closed right after connect / another instance online ─▶ 3 within a minute ─▶ duplicate
//   duplicate ─▶ a try every 2..5 × reconnectCapMs ─▶ a connection outlasting that (stableMs) ─▶ over

/** MQTT 5 DISCONNECT reason code 0x8E: another connection took this client id's session (§3.14.2.1). */
const SESSION_TAKEN_OVER = 0x8e;
/** Takeovers within `windowMs` that mean a second process has this identity. */
export const TAKEOVERS = { threshold: 3, windowMs: 60_000 };
/** A duplicate identity never waits longer than this between tries, whatever reconnectCapMs says. */
const IDENTITY_WAIT_MAX_MS = 15 * 60_000;

export type DuplicateEvidence = "session taken over" | "closed right after connect" | "another instance online";

export interface DuplicateIdentity {
  /** When the takeovers crossed the threshold. */
  since: number;
  /** Takeovers counted since then (those that crossed the threshold included). */
  takeovers: number;
  lastAt: number;
  /** The sign that crossed the threshold (see takeoverEvidence; "another instance online": SyncLink.onStatus). */
  evidence: DuplicateEvidence;
}

/**
 * Two processes with one client id take each other's session at the broker, back and forth, each
 * publishing its own seq stream. This counts takeovers (and other signs of the other process):
 * `threshold` within `windowMs` is a duplicate identity, which lasts until a connection stays up
 * long enough that the other would have come back.
 */
export class TakeoverGuard {
  private recent: number[] = [];
  private conflict: DuplicateIdentity | null = null;

  constructor(private readonly opts: { threshold: number; windowMs: number; now: () => number }) {}

  get duplicate(): DuplicateIdentity | null {
    return this.conflict && { ...this.conflict };
  }

  /** A takeover, or another sign of a second process. Returns the duplicate identity it makes or continues, if any. */
  takenOver(evidence: DuplicateEvidence): DuplicateIdentity | null {
    const t = this.opts.now();
    this.recent = this.recent.filter((at) => t - at < this.opts.windowMs);
    this.recent.push(t);
    if (this.conflict) {
      this.conflict.takeovers++;
      this.conflict.lastAt = t;
    } else if (this.recent.length >= this.opts.threshold) {
      this.conflict = { since: t, takeovers: this.recent.length, lastAt: t, evidence };
    }
    return this.duplicate;
  }

  /** A conflict still open when the process stopped (its alarm not cleared): it lasts until stable(). */
  restore(conflict: DuplicateIdentity): void {
    this.conflict = { ...conflict };
  }

  /** A connection outlasted the other's longest wait: the conflict (returned) is over. */
  stable(): DuplicateIdentity | null {
    const ended = this.conflict;
    this.conflict = null;
    this.recent = [];
    return ended;
  }
}

/** A DuplicateIdentity kept as JSON (ledger meta), or undefined when the text is not one. */
export function parseDuplicate(text: string | undefined): DuplicateIdentity | undefined {
  if (!text) return undefined;
  try {
    const d = JSON.parse(text) as Partial<DuplicateIdentity>;
    const evidences: DuplicateEvidence[] = ["session taken over", "closed right after connect", "another instance online"];
    const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
    if (!num(d.since) || !num(d.takeovers) || !num(d.lastAt) || !evidences.includes(d.evidence as DuplicateEvidence)) return undefined;
    return { since: d.since, takeovers: d.takeovers, lastAt: d.lastAt, evidence: d.evidence as DuplicateEvidence };
  } catch {
    return undefined;
  }
}

/**
 * How long a bank with a duplicate identity waits before it tries again, and how long a connection
 * must last for the conflict to be over. The wait is 2..5 × reconnectCapMs (2-5 minutes at the
 * default cap), jittered so the two drift apart; stable means longer than the other's longest wait
 * plus one ordinary reconnect: had it still been there, it would have taken the session by then.
 */
export function identityTiming(capMs: number, random: () => number = Math.random): { waitMs: number; stableMs: number } {
  const longest = Math.min(IDENTITY_WAIT_MAX_MS, 5 * capMs);
  const shortest = Math.min(longest, 2 * capMs);
  return { waitMs: Math.round(shortest + random() * (longest - shortest)), stableMs: longest + capMs };
}

/** One MQTT connection's story, for telling a takeover from other closes. */
export interface Session {
  /** When CONNACK came; null if it never did. */
  connectedAt: number | null;
  /** Reason code of a DISCONNECT the broker sent (MQTT 5), if it sent one. */
  brokerReason: number | undefined;
  /** Another instance's "online" was seen on our status topic (counted once per connection). */
  sawOther?: boolean;
  /**
   * CONNACK came but the link is not online yet (the command subscription or status online not yet
   * acknowledged): a close now is a broker that could not set the link up (NATS closes every
   * connection at status online while JetStream has no leader for its retained messages) or
   * refused a subscription or publish (a 3.1.1 broker can only close the connection to say so), not
   * a takeover. A second bank still shows: it takes connections that got further.
   */
  settingUp?: boolean;
}

/**
 * Whether a connection that closed at `now` was taken over: the broker said so (MQTT 5 DISCONNECT
 * 0x8E), or it closed the socket without a word within `earlyMs` of CONNACK (once online),
 * which is what a takeover looks like under MQTT 3.1.1 (sync.protocol 4: no DISCONNECT packet
 * exists there) and on brokers that send no DISCONNECT (mosquitto 2.0.11). Only repeated ones
 * count (TakeoverGuard).
 */
export function takeoverEvidence(session: Session, now: number, earlyMs: number): Exclude<DuplicateEvidence, "another instance online"> | undefined {
  if (session.brokerReason === SESSION_TAKEN_OVER) return "session taken over";
  if (session.brokerReason === undefined && session.connectedAt !== null && !session.settingUp && now - session.connectedAt < earlyMs) return "closed right after connect";
  return undefined;
}
