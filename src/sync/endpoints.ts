// Where the link connects and in which MQTT version, and how it tells why a connection went down.
// Pure; the link (link.ts) keeps the state, the ledger keeps what "auto" learnt.
//
//   sync.url: one endpoint or the nodes of one cluster ─▶ tried in turn, one per attempt
//   sync.protocol 5 | 4 | "auto" ─▶ auto: 5; refused (CONNACK "unacceptable protocol version") or
//     closed before CONNACK ─▶ 3.1.1 at once on the same endpoint ─▶ CONNACK ─▶ remembered for that
//     endpoint (ledger meta sync.protocols), 5 tried again after REPROBE_MS
//   a close ─▶ describeClose: the endpoint, the version, what was happening, the broker's words

/** The MQTT protocol level of CONNECT: 5, or 4 (MQTT 3.1.1). */
export type MqttVersion = 4 | 5;
export type ProtocolSetting = MqttVersion | "auto";

/** Ledger meta: what "auto" learnt per endpoint (JSON: {url: {version, at}}). */
export const PROTOCOLS_KEY = "sync.protocols";
/** An endpoint remembered as 3.1.1 is asked for MQTT 5 again after this long (a broker upgrade). */
export const REPROBE_MS = 24 * 3_600_000;

export function versionLabel(v: MqttVersion): "5" | "3.1.1" {
  return v === 5 ? "5" : "3.1.1";
}

/** sync.url as a list of endpoints. */
export function syncEndpoints(url: string | readonly string[]): string[] {
  return typeof url === "string" ? [url] : [...url];
}

export interface Remembered {
  version: MqttVersion;
  /** When it was learnt (wall clock ms). */
  at: number;
}

/** The ledger's record of what "auto" learnt; anything unreadable counts as nothing learnt. */
export function parseRemembered(text: string | undefined): Record<string, Remembered> {
  if (!text) return {};
  try {
    const raw = JSON.parse(text) as Record<string, Partial<Remembered>>;
    const out: Record<string, Remembered> = {};
    for (const [url, r] of Object.entries(raw ?? {})) {
      if ((r?.version === 4 || r?.version === 5) && typeof r.at === "number" && Number.isFinite(r.at)) out[url] = { version: r.version, at: r.at };
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * Which version each endpoint is asked for. sync.protocol 5 or 4: that one, always. "auto": 5,
 * unless the endpoint was learnt to speak only 3.1.1 less than REPROBE_MS ago.
 */
export class ProtocolChooser {
  private readonly learnt: Record<string, Remembered>;

  constructor(
    readonly setting: ProtocolSetting,
    remembered: Record<string, Remembered>,
    private readonly now: () => number,
  ) {
    this.learnt = { ...remembered };
  }

  version(endpoint: string): MqttVersion {
    if (this.setting !== "auto") return this.setting;
    const r = this.learnt[endpoint];
    return r?.version === 4 && this.now() - r.at < REPROBE_MS ? 4 : 5;
  }

  /**
   * A connection in `version` got its CONNACK. Under "auto", the record to keep when it says
   * something new (an endpoint learnt, or 3.1.1 confirmed by a fallback); undefined otherwise.
   */
  connected(endpoint: string, version: MqttVersion, fellBack: boolean): Record<string, Remembered> | undefined {
    if (this.setting !== "auto") return undefined;
    const before = this.learnt[endpoint];
    if (before?.version === version && !fellBack) return undefined;
    this.learnt[endpoint] = { version, at: this.now() };
    return { ...this.learnt };
  }

  /** What was learnt, for lockerctl. */
  remembered(endpoint: string): Remembered | undefined {
    return this.learnt[endpoint];
  }
}

/** How far a connection got before it closed. */
export type Phase =
  /** TCP (and TLS) not up yet. */
  | "connecting"
  /** CONNECT sent, no CONNACK yet. */
  | "connack"
  /** CONNACK, the command subscription not yet acknowledged. */
  | "suback"
  /** Subscribed, status online not yet acknowledged. */
  | "puback"
  | "online";

/** CONNACK return codes that mean "not this protocol version": 3.1.1's 1, MQTT 5's 0x84. */
export function refusesVersion(code: number | undefined): boolean {
  return code === 1 || code === 0x84;
}

/**
 * Whether "auto" should try MQTT 3.1.1 at once after a version 5 attempt: the broker refused the
 * version, or closed the connection after CONNECT without a CONNACK or any error (RabbitMQ 3.10).
 */
export function shouldFallBack(c: { setting: ProtocolSetting; version: MqttVersion; phase: Phase; error?: { message: string; code?: number | string } | undefined }): boolean {
  if (c.setting !== "auto" || c.version !== 5 || c.phase !== "connack") return false;
  if (!c.error) return true;
  return typeof c.error.code === "number" && refusesVersion(c.error.code);
}

const SET_PROTOCOL = 'set sync.protocol to "auto" or 4';

/** MQTT 5 DISCONNECT reason codes a broker may send, in words (§3.14.2.1). */
const DISCONNECT_REASONS: Record<number, string> = {
  0x00: "normal disconnection",
  0x80: "unspecified error",
  0x81: "malformed packet",
  0x82: "protocol error",
  0x83: "implementation specific error",
  0x87: "not authorized",
  0x89: "server busy",
  0x8b: "server shutting down",
  0x8d: "keep alive timeout",
  0x8e: "session taken over",
  0x90: "topic name invalid",
  0x93: "receive maximum exceeded",
  0x95: "packet too large",
  0x97: "quota exceeded",
  0x98: "administrative action",
  0x99: "payload format invalid",
  0x9c: "use another server",
  0x9d: "server moved",
};

export interface ClosedConnection {
  endpoint: string;
  version: MqttVersion;
  setting: ProtocolSetting;
  phase: Phase;
  /** The client's error on this connection (a CONNACK refusal, a socket error, a timeout), if any. */
  error?: { message: string; code?: number | string } | undefined;
  /** An MQTT 5 DISCONNECT the broker sent, if any. */
  disconnect?: { reasonCode: number; reasonString?: string | undefined } | undefined;
  /** How long the connection had been online, when it was. */
  onlineMs?: number;
  /** How long after CONNECT the broker closed it, when it did so before CONNACK. */
  afterConnectMs?: number;
  /** The command filter (named when the subscription is what failed). */
  cmdFilter: string;
  statusTopic: string;
}

/**
 * Why a connection went down, in one line for the log and lockerctl (lastError): the endpoint and
 * version, then the broker's or the client's words if there were any, and what was happening.
 */
export function describeClose(c: ClosedConnection): string {
  const at = `${c.endpoint} (MQTT ${versionLabel(c.version)})`;
  const err = c.error?.message;
  if (c.disconnect) {
    const reason = DISCONNECT_REASONS[c.disconnect.reasonCode] ?? `reason 0x${c.disconnect.reasonCode.toString(16)}`;
    return `${at}: the broker disconnected the bank: ${reason}${c.disconnect.reasonString ? ` (${c.disconnect.reasonString})` : ""}`;
  }
  switch (c.phase) {
    case "connecting":
      return `${at}: ${err ?? "the connection closed before it was up"}`;
    case "connack":
      if (c.version === 5 && typeof c.error?.code === "number" && refusesVersion(c.error.code)) {
        return `${at}: the broker refuses MQTT 5 (${err}): it speaks 3.1.1 only; ${SET_PROTOCOL}`;
      }
      if (err) return `${at}: ${err} (answer to CONNECT)`;
      {
        const waited = (c.afterConnectMs ?? 0) >= 1000 ? ` ${(c.afterConnectMs! / 1000).toFixed(1)} s` : "";
        const closed = `${at}: the broker closed the connection${waited} after CONNECT, before CONNACK, without an MQTT error`;
        return c.version === 5
          ? `${closed}: a broker that speaks only MQTT 3.1.1 does this (RabbitMQ 3.x); ${SET_PROTOCOL}`
          : `${closed}: it did not take the client (its log says why: credentials, client id; NATS does this, after 4 s, while JetStream has no quorum)`;
      }
    case "suback":
      return `${at}: ${err ? `${err}; ` : ""}the broker closed the connection after CONNACK, before SUBACK of ${c.cmdFilter}: it would not or could not set up the command subscription (a subscribe ACL? its log says why)`;
    case "puback":
      return `${at}: ${err ? `${err}; ` : ""}the broker closed the connection before it acknowledged status online on ${c.statusTopic} (a publish ACL on the status topic, or its storage: NATS does this while JetStream has no leader for its retained messages)`;
    case "online":
      return `${at}: connection lost after ${duration(c.onlineMs ?? 0)} online: ${err ?? "closed by the broker or the network without an MQTT error"}`;
  }
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}
