// The bank's link to the central server over MQTT (docs/asyncapi.yaml, docs/design.md).
//
//   endpoint i of sync.url, MQTT 5 or 3.1.1 (sync.protocol; "auto" learns it per endpoint: endpoints.ts)
//   connect (Last Will: status offline) ─▶ subscribe cmd/+, status ─▶ status online (retained)
//        │      └─ PUBACK ─▶ held replies, state, telemetry, then the outbox: events in seq order,
//        │                   QoS 1, window in flight (so a server sees "online" before the backlog)
//        │      state: coalesced after changes · telemetry: on an interval
//        └── close (why: lastError) ─▶ backoff with jitter ─▶ a new connection, to the next endpoint
//              └── taken over (or another instance online), 3 times in a minute ─▶ duplicate identity
//                  (identity.ts; alarm in the ledger): minutes between tries until a connection
//                  outlasts the other's longest wait (alarm.cleared)
//   quiesce: no more commands · stop: the backlog committed so far drains (bounded) ─▶ status
//   offline ─▶ DISCONNECT
//
// Commands: retained ones are refused (alarm, once per command: 3.1.1 delivers it again at every
// subscribe), empty ones ignored; replies go to the response topic only inside <root>/reply/ (MQTT
// 5; under 3.1.1 there is none: reply/<name>), and wait for the link while it is down.
//
// The bank never waits on this: a commit only schedules work here. With the network gone for a
// week everything still works locally; the outbox holds the events until the broker acknowledges.
// Nothing here may throw into the process: every publish goes through send(), which publishes on
// the live connection only (mqtt.js throws from the closed store of an ended client).
import { createHash, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { readFileSync, statfsSync } from "node:fs";
import type { Socket } from "node:net";
import { connect, type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from "mqtt";
import { Backoff } from "../backoff.js";
import type { TemperatureStatus } from "../bank/temperature.js";
import type { Config } from "../config/schema.js";
import type { LedgerEvent } from "../domain/events.js";
import type { DeviceHealth } from "../drivers/types.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Ledger, LedgerTx } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import { clockInfo } from "./clock.js";
import { stateMessage, type CommandRouter, type ReplyEnvelope } from "./commands.js";
import { decodeCommand, DELIVERY, parseTopic, topics, type ClockInfo, type StatusMessage, type TelemetryMessage, type Topics } from "./contract.js";
import { describeClose, parseRemembered, ProtocolChooser, PROTOCOLS_KEY, shouldFallBack, syncEndpoints, versionLabel, type MqttVersion, type Phase } from "./endpoints.js";
import { identityTiming, parseDuplicate, TakeoverGuard, takeoverEvidence, TAKEOVERS, type DuplicateEvidence, type DuplicateIdentity, type Session } from "./identity.js";
import { Outbox } from "./outbox.js";

export type { DuplicateIdentity } from "./identity.js";

export interface SyncLinkDeps {
  config: Config;
  ledger: Ledger;
  router: CommandRouter;
  version: string;
  bootedAt: number;
  dataDir: string;
  now: () => number;
  log: Logger;
  devices: () => DeviceHealth[];
  temperatures: () => TemperatureStatus[];
  /** The data directory's disk (StorageMonitor). */
  storage?: () => { state: "ok" | "low" | "full"; since: number | null; minFreeBytes: number } | undefined;
  /** The bank's clock as status and telemetry state it (BankClock.info); default: read here. */
  clockInfo?: (now: number) => ClockInfo;
}

/** A link exists only when sync is enabled; without one lockerctl says "disabled in config". */
export type LinkState = "connecting" | "online" | "offline";

const CPU_TEMP = "/sys/class/thermal/thermal_zone0/temp";
/** Replies made while the link is down wait for it; beyond this many the oldest is dropped (its command id is answered from the ledger when the server sends it again). */
const HELD_REPLIES = 100;
/** The same connection failure again is logged at warn at most this often (noConnection). */
const QUIET_REPEAT_MS = 600_000;
/** The ledger meta key of this bank's instance id (status.instance). */
const INSTANCE_KEY = "sync.instance";
/** The ledger meta key of a duplicate identity whose alarm is open (JSON; empty once cleared). */
const DUPLICATE_KEY = "sync.duplicateIdentity";
/** The ledger meta key of the retained commands refused so far (JSON list of name + payload hash). */
const REFUSED_RETAINED_KEY = "sync.refusedRetained";
/** Refused retained commands remembered; an older one delivered again is refused (and recorded) again. */
const REFUSED_RETAINED_MAX = 64;
/** How long a clean stop waits for the broker to acknowledge the events committed before it. */
const DRAIN_AT_STOP_MS = 1500;
/**
 * MQTT 5 properties of every message the bank publishes (the Last Will too): all are JSON
 * (§3.3.2.3.9 content type; §3.3.2.3.2 payload format indicator 1 = UTF-8). MQTT 3.1.1 has no
 * properties: nothing is sent there.
 */
export const JSON_PROPERTIES = { contentType: "application/json", payloadFormatIndicator: true } as const;

/**
 * Why `topic` may not carry a reply of the bank at `root`, or undefined when it may. A response
 * topic is a topic name (MQTT 5 §4.7: no wildcard, no NUL, 1..65535 bytes of UTF-8; `$` topics are
 * the broker's) inside the bank's own reply space `<root>/reply/…`: a reply must never land on
 * another bank's commands, on this bank's status, or make the broker drop the connection.
 */
export function responseTopicProblem(root: string, topic: string): string | undefined {
  if (topic === "") return "empty";
  if (Buffer.byteLength(topic, "utf8") > 65_535) return "longer than 65535 bytes";
  if (topic.includes("+") || topic.includes("#")) return "has a wildcard (+ or #)";
  if (topic.includes("\u0000")) return "has a NUL character";
  if (topic.startsWith("$")) return "starts with $ (the broker's topics)";
  const space = `${root}/reply/`;
  if (!topic.startsWith(space) || topic.length === space.length) return `is outside this bank's reply space ${space}…`;
  return undefined;
}

/** One connection attempt: where, in which version, how far it got, and what the broker said. */
interface Attempt {
  endpoint: string;
  version: MqttVersion;
  /** 3.1.1 right after this endpoint refused MQTT 5 ("auto"). */
  fellBack: boolean;
  phase: Phase;
  /** The first error the client reported on this connection. */
  error?: { message: string; code?: number | string };
  /** An MQTT 5 DISCONNECT from the broker. */
  disconnect?: { reasonCode: number; reasonString?: string | undefined };
  /** When status online was acknowledged. */
  onlineAt?: number;
  /** When TCP was up and CONNECT on its way. */
  connectSentAt?: number;
}

interface HeldReply {
  name: string;
  id: string | null;
  topic: string;
  payload: string;
  opts: IClientPublishOptions;
}

/** Where mqtt.js is told what to connect with. Secrets are read from files here and never logged. */
/** What the link does with a message on cmd/<name>, before any parsing. */
export type Admission = "execute" | "ignore: empty" | "ignore: stopping" | "refuse: retained";

/**
 * Zero bytes: a server clearing a retained command (the broker passes that on to subscribers too,
 * MQTT 5 §3.3.1.3): not a command, no reply. Stopping: not executed, so the server's repeat (same
 * id) runs it after the restart. Retained (subscribed with rap 0: "stored at the broker"): whoever
 * published it is not around and it would act at every new subscription: refused, never executed.
 */
export function admitCommand(m: { bytes: number; retain: boolean; accepting: boolean }): Admission {
  if (m.bytes === 0) return "ignore: empty";
  if (!m.accepting) return "ignore: stopping";
  if (m.retain) return "refuse: retained";
  return "execute";
}

/** Where a command's reply goes: its response topic if it is in this bank's reply space, else reply/<name>. */
export function replyTopic(root: string, name: string, responseTopic?: string): { topic: string; refused?: string } {
  const fallback = `${root}/reply/${name}`;
  if (responseTopic === undefined) return { topic: fallback };
  const problem = responseTopicProblem(root, responseTopic);
  return problem ? { topic: fallback, refused: problem } : { topic: responseTopic };
}

/** The reply to a retained command and the data of its alarm.unauthorized_command (reason "retained"). */
export function retainedRefusal(root: string, name: string, payload: Buffer): { reply: ReplyEnvelope; alarm: Record<string, unknown> & { name: string } } {
  const decoded = decodeCommand(name, payload);
  const id = decoded.ok ? decoded.command.id : decoded.id;
  const command = name.slice(0, 64);
  const message = `a retained command is never executed: publish commands with retain=false, and clear this one with an empty retained message on ${root}/cmd/${command}`;
  return { reply: { id, ok: false, error: { code: ErrorCode.Unauthorized, message } }, alarm: { name: command, id, reason: "retained", message } };
}

/**
 * The options of a connection in `version`. MQTT 5: Clean Start 0 with a Session Expiry Interval.
 * MQTT 3.1.1: Clean Session 0, and the broker's own session lifetime rules (none can be sent).
 */
export function clientOptions(sync: Config["sync"], clientId: string, will: { topic: string; payload: string }, version: MqttVersion = 5): IClientOptions {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new LockerError(ErrorCode.Config, `sync.${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const opts: IClientOptions = {
    clientId,
    protocolVersion: version,
    // A persistent session: commands the server sends while the bank is offline wait at the
    // broker (they carry expiresAt; a repeat is answered from the ledger, never run twice).
    clean: false,
    ...(version === 5 ? { properties: { sessionExpiryInterval: sync.sessionExpiryS } } : {}),
    keepalive: sync.keepaliveS,
    reconnectPeriod: 0, // reconnects are ours: exponential backoff with jitter
    connectTimeout: 10_000,
    will: { topic: will.topic, payload: Buffer.from(will.payload), qos: DELIVERY.status.qos, retain: DELIVERY.status.retain, ...(version === 5 ? { properties: { ...JSON_PROPERTIES } } : {}) },
    // Events are re-sent from the ledger after a reconnect; mqtt.js must not queue them offline too.
    queueQoSZero: false,
  };
  if (sync.username) opts.username = sync.username;
  if (sync.passwordFile) opts.password = read("passwordFile", sync.passwordFile).toString("utf8").replace(/\r?\n$/, "");
  if (sync.tls) {
    if (sync.tls.ca) opts.ca = read("tls.ca", sync.tls.ca);
    if (sync.tls.cert) opts.cert = read("tls.cert", sync.tls.cert);
    if (sync.tls.key) opts.key = read("tls.key", sync.tls.key);
    if (sync.tls.servername) opts.servername = sync.tls.servername;
    opts.rejectUnauthorized = true;
  }
  return opts;
}

export interface LinkEvents {
  /** Connected, subscribed to commands, status online acknowledged by the broker. */
  online: [];
  offline: [];
}

export class SyncLink extends EventEmitter<LinkEvents> {
  readonly topics: Topics;
  readonly outbox: Outbox;
  private client: MqttClient | undefined;
  private session: Session & Attempt = { connectedAt: null, brokerReason: undefined, endpoint: "", version: 5, fellBack: false, phase: "connecting" };
  private readonly backoff: Backoff;
  private readonly takeovers: TakeoverGuard;
  private readonly log: Logger;
  private readonly clientId: string;
  private readonly options: Record<MqttVersion, IClientOptions>;
  /** sync.url as a list: the nodes of one broker (cluster), tried in turn. */
  private readonly endpoints: string[];
  /** The endpoint of the current (or next) attempt. */
  private endpointIndex = 0;
  private protocols: ProtocolChooser;
  /** Retained commands refused so far (name + payload hash), oldest first: refused once each. */
  private refusedRetained: string[] = [];
  private instance = "";
  private state: LinkState = "connecting";
  private stopped = false;
  /** Commands are executed; false from quiesce() or stop() on. */
  private accepting = true;
  private held: HeldReply[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastConnectedAt: number | null = null;
  private lastError: string | null = null;
  /** Per endpoint, the failure last logged at warn: the same one again is logged at debug (and at warn every QUIET_REPEAT_MS). */
  private readonly quiet = new Map<string, { why: string; attempts: number; since: number; loggedAt: number }>();
  private connects = 0;

  constructor(private readonly deps: SyncLinkDeps) {
    super();
    const { config } = deps;
    this.log = deps.log.child({ module: "sync" });
    this.topics = topics(config.sync.topicPrefix, config.device.site, config.device.id);
    this.outbox = new Outbox({ ledger: deps.ledger, log: this.log, window: config.sync.window });
    this.backoff = new Backoff({ baseMs: config.sync.reconnectBaseMs, capMs: config.sync.reconnectCapMs });
    this.takeovers = new TakeoverGuard({ ...TAKEOVERS, now: deps.now });
    this.clientId = config.sync.clientId ?? `lockerd-${config.device.site}-${config.device.id}`;
    // The Last Will's payload is set at each connect, once the instance id is known.
    const will = { topic: this.topics.status, payload: "" };
    this.options = { 5: clientOptions(config.sync, this.clientId, will, 5), 4: clientOptions(config.sync, this.clientId, will, 4) };
    this.endpoints = syncEndpoints(config.sync.url);
    this.protocols = new ProtocolChooser(config.sync.protocol ?? 5, {}, deps.now);
  }

  start(): void {
    this.instance = this.loadInstance();
    this.resumeDuplicate();
    this.loadLearnt();
    this.outbox.start();
    this.unsubscribe = this.deps.ledger.onCommit((events) => this.onCommit(events));
    this.telemetryTimer = setInterval(() => this.publishTelemetry(), this.deps.config.sync.telemetryS * 1000);
    this.telemetryTimer.unref();
    this.connect();
  }

  /**
   * When the broker is reachable: let it acknowledge every event committed so far (at most
   * DRAIN_AT_STOP_MS), say offline (retained), then close. So whatever the bank wrote before it
   * stopped the link reaches a server before its "offline".
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.accepting = false;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    clearInterval(this.telemetryTimer);
    clearTimeout(this.stateTimer);
    this.unsubscribe?.();
    await this.drain();
    this.outbox.stop();
    const client = this.client;
    this.client = undefined;
    if (this.held.length) this.log.warn({ replies: this.held.length }, "replies held for the broker dropped at stop; their commands are answered from the ledger when sent again");
    this.held = [];
    if (!client) return;
    if (client.connected && !client.disconnecting) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        try {
          client.publish(this.topics.status, JSON.stringify(this.status("offline", true)), { ...DELIVERY.status, ...this.properties() }, () => {
            clearTimeout(t);
            resolve();
          });
        } catch (e) {
          this.log.warn({ err: e }, "offline status not published");
          clearTimeout(t);
          resolve();
        }
      });
    }
    // A graceful end waits for every PUBACK; a connection that died meanwhile never gives them.
    const ended = new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    const timeout = new Promise<"timeout">((resolve) => setTimeout(resolve, 2000, "timeout").unref());
    if ((await Promise.race([ended, timeout])) === "timeout") client.end(true);
  }

  /**
   * The first half of a clean stop: execute no more commands (they are ignored, unanswered, so the
   * server sends them again after the restart), while events still go out until stop(). A runtime
   * quiesces the link before it stops the bank and stops the link after its last event.
   */
  quiesce(): void {
    this.accepting = false;
  }

  /** Wait (bounded) until the broker has acknowledged the backlog; the connection closing ends the wait. */
  private async drain(): Promise<void> {
    const client = this.client;
    if (!client || !this.online() || this.outbox.backlog === 0) return;
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    const drained = await Promise.race([
      this.outbox.drained().then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(resolve, DRAIN_AT_STOP_MS, false);
        onClose = () => resolve(false);
        client.once("close", onClose);
      }),
    ]);
    clearTimeout(timer);
    if (onClose) client.off("close", onClose);
    if (!drained) this.log.warn({ backlog: this.outbox.backlog }, "stopping with events the broker has not acknowledged; they go out after the next start");
  }

  /** For lockerctl sync and status. */
  info(): {
    state: LinkState;
    /** The endpoint the link is on, or tries next. */
    broker: string;
    /** sync.url: every endpoint, in the order they are tried. */
    endpoints: string[];
    /** The MQTT version of the current (or last) connection. */
    protocol: "5" | "3.1.1";
    backlog: number;
    ackedSeq: number;
    lastAckAt: number | null;
    lastConnectedAt: number | null;
    lastError: string | null;
    connects: number;
    /** This bank instance's id, as published in status. */
    instance: string;
    /** Another process connects with this identity (client id): set while takeovers go on. */
    duplicateIdentity: DuplicateIdentity | null;
    /** Replies waiting for the link. */
    heldReplies: number;
  } {
    return {
      instance: this.instance,
      duplicateIdentity: this.takeovers.duplicate,
      heldReplies: this.held.length,
      lastAckAt: this.outbox.lastAckAt,
      state: this.state,
      broker: this.session.endpoint || this.endpoints[this.endpointIndex]!,
      endpoints: [...this.endpoints],
      protocol: versionLabel(this.session.endpoint ? this.session.version : this.protocols.version(this.endpoints[this.endpointIndex]!)),
      backlog: this.outbox.backlog,
      ackedSeq: this.outbox.ackedSeq,
      lastConnectedAt: this.lastConnectedAt,
      lastError: this.lastError,
      connects: this.connects,
    };
  }

  /** Publish events [fromSeq, fromSeq + limit) again (replay command). Returns how many. */
  replay(fromSeq: number, limit: number): number {
    if (!this.online()) return 0;
    let sent = 0;
    let seq = fromSeq;
    while (sent < limit) {
      const batch = this.deps.ledger.eventsFrom(seq, Math.min(500, limit - sent));
      if (!batch.length) break;
      for (const e of batch) {
        if (!this.send(this.topics.events, JSON.stringify(e), DELIVERY.events)) return sent;
        sent++;
      }
      seq = batch[batch.length - 1]!.seq + 1;
    }
    return sent;
  }

  publishState(): void {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    if (!this.online()) return;
    this.send(this.topics.state, JSON.stringify(stateMessage(this.deps.ledger, this.deps.now())), DELIVERY.state);
  }

  publishTelemetry(): void {
    if (!this.online()) return;
    this.send(this.topics.telemetry, JSON.stringify(this.telemetry()), DELIVERY.telemetry);
  }

  telemetry(): TelemetryMessage {
    const { now, bootedAt, dataDir } = this.deps;
    let diskFreeBytes = 0;
    try {
      const s = statfsSync(dataDir);
      diskFreeBytes = s.bavail * s.bsize;
    } catch {
      /* reported as 0 */
    }
    const t = now();
    return {
      ts: t,
      uptimeMs: Math.max(0, t - bootedAt),
      queueDepth: this.outbox.backlog,
      cpuTempC: cpuTemperature(),
      diskFreeBytes,
      devices: this.deps.devices(),
      temperatures: this.deps.temperatures().map((t) => ({ compartment: t.compartment, celsius: t.celsius, ok: t.ok, at: t.at })),
      clock: this.deps.clockInfo?.(t) ?? clockInfo(t, this.deps.config.sync),
      ...this.storage(),
    };
  }

  private storage(): { storage?: TelemetryMessage["storage"] } {
    const s = this.deps.storage?.();
    return s ? { storage: { state: s.state, since: s.since, minFreeBytes: s.minFreeBytes } } : {};
  }

  /** The retained status; `clock` in what the bank publishes itself, never in the Last Will (made at connect, it would be stale). */
  private status(state: "online" | "offline", withClock = false): StatusMessage {
    const { version, bootedAt, now, config } = this.deps;
    return { state, version, bootedAt, instance: this.instance, ...(withClock ? { clock: this.deps.clockInfo?.(now()) ?? clockInfo(now(), config.sync) } : {}) };
  }

  /** A random id kept in the ledger: a server that sees two on one bank's status sees two banks. */
  private loadInstance(): string {
    try {
      const kept = this.deps.ledger.meta(INSTANCE_KEY);
      if (kept) return kept;
      const id = randomUUID();
      this.deps.ledger.transact((tx) => tx.setMeta(INSTANCE_KEY, id));
      return id;
    } catch (e) {
      this.log.error({ err: e }, "instance id not kept in the ledger; using one for this run");
      return randomUUID();
    }
  }

  /** A duplicate identity whose alarm was open when the bank stopped goes on until a connection is stable. */
  private resumeDuplicate(): void {
    let kept: DuplicateIdentity | undefined;
    try {
      kept = parseDuplicate(this.deps.ledger.meta(DUPLICATE_KEY));
    } catch (e) {
      this.log.warn({ err: e }, "duplicate identity state not read");
    }
    if (!kept) return;
    this.takeovers.restore(kept);
    this.lastError = `${kept.evidence}: another bank uses ${this.topics.root} (client id ${this.clientId}), before the restart`;
    this.log.warn({ alarm: "duplicate_identity", ...kept }, "duplicate identity alarm still open from before the restart: it clears once a connection stays up");
  }

  /** Online (status acknowledged) and sendable: state, telemetry and replays never go out before "online". */
  private online(): boolean {
    return this.state === "online" && this.sendable();
  }

  /** Whether a publish now would reach the broker: a connected client that is not ending. */
  private sendable(): boolean {
    const client = this.client;
    return !!client && client.connected && !client.disconnecting;
  }

  /**
   * Publish on the live connection, or not at all (returns false). Never throws; an error the
   * client reports later goes to `done`, or to the log when there is none.
   */
  private send(topic: string, payload: string, opts: IClientPublishOptions, done?: (err?: Error) => void): boolean {
    const client = this.client;
    if (!client || !this.sendable()) return false;
    try {
      const props = this.session.version === 5 ? { properties: { ...JSON_PROPERTIES, ...opts.properties } } : {};
      client.publish(topic, payload, { ...opts, ...props }, (err) => {
        if (done) done(err ?? undefined);
        else if (err) this.log.warn({ err: { message: err.message }, topic }, "publish not accepted");
      });
      return true;
    } catch (e) {
      this.log.error({ err: e, topic }, "publish failed in the MQTT client");
      return false;
    }
  }

  /**
   * One attempt on the current endpoint, in the version sync.protocol (or what "auto" learnt) asks
   * for; `fellBack`: the same endpoint again in 3.1.1, right after it refused MQTT 5.
   */
  private connect(fellBack = false): void {
    if (this.stopped) return;
    this.state = this.connects ? "offline" : "connecting";
    const endpoint = this.endpoints[this.endpointIndex]!;
    const version: MqttVersion = fellBack ? 4 : this.protocols.version(endpoint);
    const options = this.options[version];
    const will = { ...options.will!, payload: Buffer.from(JSON.stringify(this.status("offline"))) };
    const client = connect(endpoint, { ...options, will });
    this.client = client;
    const session: Session & Attempt = { connectedAt: null, brokerReason: undefined, endpoint, version, fellBack, phase: "connecting" };
    this.session = session;
    // TCP up: CONNECT is on its way. (Nagle off from the first byte; a TLS socket says "connect" too.)
    const stream = client.stream as Partial<Socket> | undefined;
    stream?.once?.("connect", () => {
      stream.setNoDelay?.(true);
      if (session.phase !== "connecting") return;
      session.phase = "connack";
      session.connectSentAt = this.deps.now();
    });
    client.on("connect", (connack) => this.onConnect(client, connack.sessionPresent));
    client.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet));
    client.on("disconnect", (packet) => {
      if (client !== this.client) return;
      this.session.brokerReason = packet.reasonCode ?? 0;
      this.session.disconnect = { reasonCode: packet.reasonCode ?? 0, reasonString: packet.properties?.reasonString };
    });
    client.on("error", (e) => {
      if (client !== this.client) return;
      // The first error says why (a later one is the same connection dying); the close logs it.
      session.error ??= { message: e.message, ...((e as { code?: number | string }).code !== undefined ? { code: (e as { code?: number | string }).code } : {}) };
      this.log.debug({ err: { message: e.message, code: (e as NodeJS.ErrnoException).code }, broker: endpoint }, "broker connection error");
    });
    client.on("close", () => this.onClose(client));
  }

  /** CONNACK. `sessionPresent` is logged: false after the broker lost the bank's session, and the commands queued in it. */
  private onConnect(client: MqttClient, sessionPresent: boolean): void {
    if (client !== this.client) return;
    const session = this.session;
    // Nagle off: a QoS 1 round trip on loopback drops from ~88 ms to ~1 ms.
    (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
    this.connects++;
    this.lastConnectedAt = this.deps.now();
    session.connectedAt = this.lastConnectedAt;
    session.phase = "suback";
    session.settingUp = true;
    this.backoff.reset();
    this.watchStable();
    this.learn(session);
    this.log.info(
      { broker: session.endpoint, protocol: versionLabel(session.version), endpoint: `${this.endpointIndex + 1}/${this.endpoints.length}`, sessionPresent, backlog: this.outbox.backlog },
      "connected to the broker",
    );
    // MQTT 5: rap false: the retain flag on a command then means "stored at the broker", never
    // "published with retain" (MQTT 5 §3.8.3.1), and such a command is refused. rh 1: what is
    // retained comes once per new subscription, not at every reconnect of a resumed session.
    // MQTT 3.1.1 has neither: its retain flag always means "stored" (§3.3.1.3), and a retained
    // command comes again at every subscribe: refused once (refuseRetained), then ignored.
    const cmdOpts = session.version === 5 ? { qos: DELIVERY.cmd.qos, rap: false, rh: 1 as const } : { qos: DELIVERY.cmd.qos };
    client.subscribe(this.topics.cmdFilter, cmdOpts, (err, granted) => {
      if (err) this.log.error({ err }, "subscribe to commands failed");
      else if (granted?.some((g) => g.qos >= 0x80)) this.log.error({ filter: this.topics.cmdFilter }, "the broker refused the command subscription (ACL?): no command will arrive");
      if (client !== this.client) return;
      session.phase = "puback";
      this.watchStatus(client);
      // "online" once commands are heard. Everything else waits for its PUBACK: the broker has then
      // taken "online" before any event of the backlog, so a server sees the bank online first.
      this.send(this.topics.status, JSON.stringify(this.status("online", true)), DELIVERY.status, (err) => {
        if (err) this.log.warn({ err: { message: err.message } }, "status online not accepted by the broker (ACL?)");
        if (client !== this.client || !client.connected) return;
        session.phase = "online";
        session.settingUp = false;
        session.onlineAt = this.deps.now();
        if (!this.takeovers.duplicate) this.lastError = null;
        this.state = "online";
        this.quiet.clear();
        this.emit("online");
        this.sendHeld();
        this.publishState();
        this.publishTelemetry();
        // Not sent now: sent again from the watermark after the next connect (the outbox's generation).
        this.outbox.connected((event, done) => void this.send(this.topics.events, JSON.stringify(event), DELIVERY.events, done));
      });
    });
  }

  /**
   * Our own status topic, retained message included (rh 0): right after a connect it holds the last
   * word of whoever had this identity before. Another instance saying "online" there is a second
   * bank, also on brokers that take a session over without a DISCONNECT (see onStatus).
   */
  private watchStatus(client: MqttClient): void {
    client.subscribe(this.topics.status, this.session.version === 5 ? { qos: DELIVERY.status.qos, rh: 0 } : { qos: DELIVERY.status.qos }, (err) => {
      if (err) this.log.warn({ err: { message: err.message } }, "cannot watch this bank's status topic (broker ACL?): a duplicate identity is seen from takeovers only");
    });
  }

  /** A status on our topic: an "online" of another instance (status.instance) is a sign of a duplicate identity. */
  private onStatus(payload: Buffer): void {
    let status: { state?: unknown; instance?: unknown };
    try {
      status = JSON.parse(payload.toString("utf8")) as typeof status;
    } catch {
      return;
    }
    if (status?.state !== "online" || typeof status.instance !== "string" || status.instance === this.instance) return;
    if (this.session.sawOther) return;
    this.session.sawOther = true;
    this.log.warn({ other: status.instance.slice(0, 64), instance: this.instance }, "another bank instance said online on this bank's status topic");
    this.noteDuplicate("another instance online");
  }

  /** A connection that outlasts the other's longest wait ends a duplicate identity. */
  private watchStable(): void {
    clearTimeout(this.stableTimer);
    const { stableMs } = identityTiming(this.deps.config.sync.reconnectCapMs);
    this.stableTimer = setTimeout(() => {
      const ended = this.takeovers.stable();
      if (!ended) return;
      this.lastError = null;
      this.log.warn({ ...ended, stableMs }, "identity conflict over: connected without a takeover for the longest wait of the other");
      this.record("duplicate identity alarm cleared", (tx) => {
        tx.event({ type: "alarm.cleared", data: { alarm: "duplicate_identity", since: ended.since, takeovers: ended.takeovers } });
        tx.setMeta(DUPLICATE_KEY, "");
      });
    }, stableMs);
    this.stableTimer.unref();
  }

  /**
   * A connection ended: say why (log, lastError), then MQTT 3.1.1 at once on the same endpoint when
   * "auto" met a broker that refuses 5, else the next endpoint after the backoff (or the duplicate
   * identity's wait).
   */
  private onClose(client: MqttClient): void {
    if (client !== this.client) return;
    clearTimeout(this.stableTimer);
    this.outbox.disconnected();
    if (this.stopped) return;
    const session = this.session;
    const wasOnline = this.state === "online";
    this.state = "offline";
    this.emit("offline");
    client.removeAllListeners();
    client.on("error", () => undefined);
    client.end(true);
    this.client = undefined;
    const why = describeClose({
      endpoint: session.endpoint,
      version: session.version,
      setting: this.protocols.setting,
      phase: session.phase,
      error: session.error,
      disconnect: session.disconnect,
      ...(session.onlineAt !== undefined ? { onlineMs: this.deps.now() - session.onlineAt } : {}),
      ...(session.phase === "connack" && session.connectSentAt !== undefined ? { afterConnectMs: this.deps.now() - session.connectSentAt } : {}),
      cmdFilter: this.topics.cmdFilter,
      statusTopic: this.topics.status,
    });
    this.lastError = why;
    const fields = { broker: session.endpoint, protocol: versionLabel(session.version), phase: session.phase, backlog: this.outbox.backlog };
    if (shouldFallBack({ setting: this.protocols.setting, version: session.version, phase: session.phase, error: session.error })) {
      this.log.warn(fields, `${why}; trying MQTT 3.1.1 (sync.protocol "auto")`);
      this.connect(true);
      return;
    }
    if (wasOnline) this.log.warn(fields, `broker connection lost; events are kept until it returns: ${why}`);
    else this.noConnection(session.endpoint, why, fields);
    const wait = this.nextWait(this.takeoverOf(session));
    // Every new attempt goes to the next endpoint: a dead node costs one attempt, not a backoff series.
    this.endpointIndex = (this.endpointIndex + 1) % this.endpoints.length;
    if (this.endpoints.length > 1) this.log.debug({ broker: this.endpoints[this.endpointIndex], waitMs: wait }, "next attempt on the next endpoint");
    this.reconnectTimer = setTimeout(() => this.connect(), wait);
  }

  /**
   * A connection attempt that failed. Said at warn when the reason is new for that endpoint (or
   * every QUIET_REPEAT_MS while it lasts, with the attempts since); the same failure again at debug:
   * a broker down for a night is not 10,000 warnings.
   */
  private noConnection(endpoint: string, why: string, fields: Record<string, unknown>): void {
    const now = this.deps.now();
    const q = this.quiet.get(endpoint);
    if (q?.why !== why) {
      this.quiet.set(endpoint, { why, attempts: 1, since: now, loggedAt: now });
      this.log.warn(fields, `no connection: ${why}`);
      return;
    }
    q.attempts++;
    if (now - q.loggedAt < QUIET_REPEAT_MS) return this.log.debug({ ...fields, attempts: q.attempts }, `no connection: ${why}`);
    q.loggedAt = now;
    this.log.warn({ ...fields, attempts: q.attempts, sinceMs: now - q.since }, `still no connection after ${q.attempts} attempts: ${why}`);
  }

  /** What "auto" learnt at this CONNACK, kept in the ledger when it is news. */
  private learn(session: Attempt): void {
    const changed = this.protocols.connected(session.endpoint, session.version, session.fellBack);
    if (!changed) return;
    this.log.info({ broker: session.endpoint, protocol: versionLabel(session.version) }, `sync.protocol "auto": ${session.endpoint} speaks MQTT ${versionLabel(session.version)} (remembered)`);
    this.record("protocol learnt", (tx) => tx.setMeta(PROTOCOLS_KEY, JSON.stringify(changed)));
  }

  /** What "auto" learnt before this start, and the retained commands refused already. */
  private loadLearnt(): void {
    try {
      this.protocols = new ProtocolChooser(this.deps.config.sync.protocol ?? 5, parseRemembered(this.deps.ledger.meta(PROTOCOLS_KEY)), this.deps.now);
      const refused = JSON.parse(this.deps.ledger.meta(REFUSED_RETAINED_KEY) || "[]") as unknown;
      this.refusedRetained = Array.isArray(refused) ? refused.filter((k): k is string => typeof k === "string").slice(-REFUSED_RETAINED_MAX) : [];
    } catch (e) {
      this.log.warn({ err: e }, "learnt protocols or refused retained commands not read; starting afresh");
    }
  }

  /** Publish options of the current connection's version: MQTT 5 says every payload is JSON. */
  private properties(): { properties?: { contentType: string; payloadFormatIndicator: boolean } } {
    return this.session.version === 5 ? { properties: { ...JSON_PROPERTIES } } : {};
  }

  /** Whether the connection that just closed was taken by another client with our client id. */
  private takeoverOf(session: Session): DuplicateEvidence | undefined {
    // While a duplicate is known, "right after" is anything shorter than the other's longest wait.
    const { reconnectBaseMs, reconnectCapMs } = this.deps.config.sync;
    const earlyMs = this.takeovers.duplicate ? identityTiming(reconnectCapMs).stableMs : Math.max(2_000, 2 * reconnectBaseMs);
    return takeoverEvidence(session, this.deps.now(), earlyMs);
  }

  private nextWait(takeover: DuplicateEvidence | undefined): number {
    if (!takeover) return this.backoff.next();
    if (!this.noteDuplicate(takeover)) {
      this.log.warn({ clientId: this.clientId, evidence: takeover }, "session taken over by another connection with this client id");
      return this.backoff.next();
    }
    const { waitMs } = identityTiming(this.deps.config.sync.reconnectCapMs);
    this.log.warn({ clientId: this.clientId, evidence: takeover, waitMs }, "duplicate identity: waiting before the next try");
    return waitMs;
  }

  /** Count one sign of a second process with this identity; true while that makes a duplicate identity. */
  private noteDuplicate(evidence: DuplicateEvidence): boolean {
    const before = this.takeovers.duplicate;
    const duplicate = this.takeovers.takenOver(evidence);
    // One sign alone is no proof (a node of a cluster dying looks like "closed right after connect"
    // under MQTT 3.1.1): the close's own description stays until the signs make a duplicate identity.
    if (duplicate) this.lastError = `${evidence}: another bank uses ${this.topics.root} (client id ${this.clientId})`;
    if (duplicate && !before) {
      this.log.error(
        { alarm: "duplicate_identity", clientId: this.clientId, root: this.topics.root, instance: this.instance, ...duplicate },
        "duplicate identity: another bank connects with this site/device; reconnecting only every few minutes until it is gone",
      );
      const { since, takeovers } = duplicate;
      this.record("duplicate identity alarm", (tx) => {
        tx.event({ type: "alarm.duplicate_identity", data: { clientId: this.clientId, evidence, takeovers, since, instance: this.instance } });
        // Open across a restart: the next start resumes it, and clears it once a connection is stable.
        tx.setMeta(DUPLICATE_KEY, JSON.stringify(duplicate));
      });
    }
    return duplicate !== null;
  }

  /** Write to the ledger; a failure (a closing ledger) is logged, never thrown into the link. */
  private record(what: string, write: (tx: LedgerTx) => void): void {
    try {
      this.deps.ledger.transact(write);
    } catch (e) {
      this.log.error({ err: e }, `${what} not recorded`);
    }
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic === this.topics.status) return this.onStatus(payload);
    const ref = parseTopic(this.topics.root, topic);
    if (ref?.kind !== "cmd") return;
    const props = packet.properties;
    switch (admitCommand({ bytes: payload.length, retain: packet.retain, accepting: this.accepting })) {
      case "ignore: empty":
        this.log.info({ command: ref.name.slice(0, 64), retained: packet.retain }, "empty command message ignored (a retained command cleared)");
        return;
      case "ignore: stopping":
        this.log.warn({ command: ref.name.slice(0, 64) }, "command ignored: the bank is stopping");
        return;
      case "refuse: retained":
        return this.refuseRetained(ref.name, payload, props?.responseTopic, props?.correlationData);
      case "execute":
        break;
    }
    this.deps.router
      .handle(ref.name, payload)
      .then((reply) => this.reply(ref.name, reply, props?.responseTopic, props?.correlationData))
      .catch((e: unknown) => this.log.error({ err: e, command: ref.name.slice(0, 64) }, "command not answered"));
  }

  /**
   * A command the broker kept (retained) and hands to every new subscription: whoever published it
   * is not around, and it would act again after each new session. Refused, never executed; the
   * alarm is the one of an unauthorized command.
   */
  private refuseRetained(name: string, payload: Buffer, responseTopic?: string, correlationData?: Buffer): void {
    const { reply, alarm } = retainedRefusal(this.topics.root, name, payload);
    // The same retained command again: MQTT 3.1.1 (no Retain Handling) hands it out at every
    // subscribe, so at every reconnect. Refused once, with its reply and alarm; then only logged.
    const key = `${alarm.name} ${createHash("sha256").update(payload).digest("hex").slice(0, 32)}`;
    if (this.refusedRetained.includes(key)) {
      this.log.info({ command: alarm.name, id: reply.id }, "retained command delivered again (a new subscription): refused before, ignored");
      return;
    }
    this.refusedRetained = [...this.refusedRetained, key].slice(-REFUSED_RETAINED_MAX);
    this.log.warn({ command: alarm.name, id: reply.id }, "retained command refused: commands are never executed from a retained message");
    this.record("retained command alarm", (tx) => {
      tx.event({ type: "alarm.unauthorized_command", actor: "server", data: alarm });
      tx.setMeta(REFUSED_RETAINED_KEY, JSON.stringify(this.refusedRetained));
    });
    this.reply(name, reply, responseTopic, correlationData);
  }

  /** Send a reply now, or hold it until the link is back (see HELD_REPLIES). */
  private reply(name: string, reply: ReplyEnvelope, responseTopic?: string, correlationData?: Buffer): void {
    const command = name.slice(0, 64);
    if (this.stopped) {
      this.log.warn({ command, id: reply.id }, "reply dropped: the link is stopping; the command is answered from the ledger when sent again");
      return;
    }
    const { topic, refused } = replyTopic(this.topics.root, name, responseTopic);
    if (refused) this.log.warn({ command, id: reply.id, responseTopic: responseTopic?.slice(0, 200), problem: refused }, `response topic refused (${refused}); replying on ${topic}`);
    const held: HeldReply = { name: command, id: reply.id, topic, payload: JSON.stringify(reply), opts: { ...DELIVERY.reply, ...(correlationData ? { properties: { correlationData } } : {}) } };
    if (this.state === "online" && this.publishReply(held)) return;
    this.held.push(held);
    this.log.info({ command, id: reply.id, held: this.held.length }, "reply held until the broker is back");
    if (this.held.length > HELD_REPLIES) {
      const dropped = this.held.shift()!;
      this.log.warn({ command: dropped.name, id: dropped.id }, "reply dropped: too many held; the command is answered from the ledger when sent again");
    }
  }

  private publishReply(r: HeldReply): boolean {
    return this.send(r.topic, r.payload, r.opts, (err) => {
      if (err) this.log.warn({ err: { message: err.message }, command: r.name, id: r.id }, "reply not accepted by the broker");
    });
  }

  /** Online again: the replies that waited, oldest first. */
  private sendHeld(): void {
    while (this.held.length && this.publishReply(this.held[0]!)) this.held.shift();
  }

  private onCommit(events: readonly LedgerEvent[]): void {
    if (!events.some((e) => e.compartment !== null)) return;
    if (this.stateTimer || !this.client?.connected) return;
    this.stateTimer = setTimeout(() => this.publishState(), this.deps.config.sync.stateCoalesceMs);
  }
}

function cpuTemperature(): number | null {
  try {
    return Math.round(Number(readFileSync(CPU_TEMP, "utf8")) / 100) / 10;
  } catch {
    return null;
  }
}
