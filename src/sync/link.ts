// The bank's link to the central server over MQTT (DESIGN.md §4, docs/asyncapi.yaml).
//
//   connect (Last Will: status offline) ─▶ subscribe cmd/+, status ─▶ status online (retained) ─▶ held replies
//        │                                   outbox: events in seq order, QoS 1, window in flight
//        │                                   state: coalesced after changes · telemetry: on an interval
//        └── close ─▶ backoff with jitter ─▶ a new connection
//              └── taken over (or another instance online), 3 times in a minute ─▶ duplicate identity:
//                  minutes between tries until a connection outlasts the other's longest wait
//
// Commands: retained ones are refused (alarm), empty ones ignored; replies go to the response
// topic only inside <root>/reply/, and wait for the link while it is down.
//
// The bank never waits on this: a commit only schedules work here. With the network gone for a
// week everything still works locally; the outbox holds the events until the broker acknowledges.
// Nothing here may throw into the process: every publish goes through send(), which publishes on
// the live connection only (mqtt.js throws from the closed store of an ended client).
import { randomUUID } from "node:crypto";
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
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import { stateMessage, type CommandRouter, type ReplyEnvelope } from "./commands.js";
import { decodeCommand, DELIVERY, parseTopic, topics, type StatusMessage, type TelemetryMessage, type Topics } from "./contract.js";
import { Outbox } from "./outbox.js";

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
}

/** A link exists only when sync is enabled; without one lockerctl says "disabled in config". */
export type LinkState = "connecting" | "online" | "offline";

const PRUNE_EVERY_MS = 3_600_000;
const CPU_TEMP = "/sys/class/thermal/thermal_zone0/temp";
/** Replies made while the link is down wait for it; beyond this many the oldest is dropped (its command id is answered from the ledger when the server sends it again). */
const HELD_REPLIES = 100;
/** The ledger meta key of this bank's instance id (status.instance). */
const INSTANCE_KEY = "sync.instance";
/** MQTT 5 DISCONNECT reason code 0x8E: another connection took this client id's session (§3.14.2.1). */
const SESSION_TAKEN_OVER = 0x8e;
/** Takeovers within `windowMs` that mean a second process has this identity. */
const TAKEOVERS = { threshold: 3, windowMs: 60_000 };
/** A duplicate identity never waits longer than this between tries, whatever reconnectCapMs says. */
const IDENTITY_WAIT_MAX_MS = 15 * 60_000;

/** The bank's retained status: the contract's, plus the id of this bank instance (see DuplicateIdentity). */
export type BankStatus = StatusMessage & { instance: string };

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

export interface DuplicateIdentity {
  /** When the takeovers crossed the threshold. */
  since: number;
  /** Takeovers counted since then (those that crossed the threshold included). */
  takeovers: number;
  lastAt: number;
  /** The sign that crossed the threshold (see takeoverEvidence; "another instance online": SyncLink.onStatus). */
  evidence: "session taken over" | "closed right after connect" | "another instance online";
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
  takenOver(evidence: DuplicateIdentity["evidence"]): DuplicateIdentity | null {
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

  /** A connection outlasted the other's longest wait: the conflict (returned) is over. */
  stable(): DuplicateIdentity | null {
    const ended = this.conflict;
    this.conflict = null;
    this.recent = [];
    return ended;
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
}

/**
 * Whether a connection that closed at `now` was taken over: the broker said so (MQTT 5 DISCONNECT
 * 0x8E), or it closed the socket without a word within `earlyMs` of CONNACK, which is what a
 * takeover looks like under MQTT 3.1.1 and on brokers that send no DISCONNECT (mosquitto 2.0.11).
 * Only repeated ones count (TakeoverGuard).
 */
export function takeoverEvidence(session: Session, now: number, earlyMs: number): "session taken over" | "closed right after connect" | undefined {
  if (session.brokerReason === SESSION_TAKEN_OVER) return "session taken over";
  if (session.brokerReason === undefined && session.connectedAt !== null && now - session.connectedAt < earlyMs) return "closed right after connect";
  return undefined;
}

interface HeldReply {
  name: string;
  id: string | null;
  topic: string;
  payload: string;
  opts: IClientPublishOptions;
}

/** Where mqtt.js is told what to connect with. Secrets are read from files here and never logged. */
export function clientOptions(sync: Config["sync"], clientId: string, will: { topic: string; payload: string }): IClientOptions {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new LockerError(ErrorCode.Config, `sync.${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const opts: IClientOptions = {
    clientId,
    protocolVersion: 5,
    // A persistent session: commands the server sends while the bank is offline wait at the
    // broker (they carry expiresAt; a repeat is answered from the ledger, never run twice).
    clean: false,
    properties: { sessionExpiryInterval: sync.sessionExpiryS },
    keepalive: sync.keepaliveS,
    reconnectPeriod: 0, // reconnects are ours: exponential backoff with jitter
    connectTimeout: 10_000,
    will: { topic: will.topic, payload: Buffer.from(will.payload), qos: DELIVERY.status.qos, retain: DELIVERY.status.retain },
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
  /** Connected, subscribed to commands, status online published. */
  online: [];
  offline: [];
}

export class SyncLink extends EventEmitter<LinkEvents> {
  readonly topics: Topics;
  readonly outbox: Outbox;
  private client: MqttClient | undefined;
  private session: Session = { connectedAt: null, brokerReason: undefined };
  private readonly backoff: Backoff;
  private readonly takeovers: TakeoverGuard;
  private readonly log: Logger;
  private readonly clientId: string;
  private readonly options: IClientOptions;
  private instance = "";
  private state: LinkState = "connecting";
  private stopped = false;
  private held: HeldReply[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastConnectedAt: number | null = null;
  private lastError: string | null = null;
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
    this.options = clientOptions(config.sync, this.clientId, { topic: this.topics.status, payload: "" });
  }

  start(): void {
    this.instance = this.loadInstance();
    this.outbox.start();
    this.unsubscribe = this.deps.ledger.onCommit((events) => this.onCommit(events));
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    this.telemetryTimer = setInterval(() => this.publishTelemetry(), this.deps.config.sync.telemetryS * 1000);
    this.telemetryTimer.unref();
    this.connect();
  }

  /** Say offline (retained) when the broker is reachable, then close. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    clearInterval(this.telemetryTimer);
    clearInterval(this.pruneTimer);
    clearTimeout(this.stateTimer);
    this.unsubscribe?.();
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
          client.publish(this.topics.status, JSON.stringify(this.status("offline")), DELIVERY.status, () => {
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

  /** For lockerctl sync and status. */
  info(): {
    state: LinkState;
    broker: string;
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
      broker: this.deps.config.sync.url,
      backlog: this.outbox.backlog,
      ackedSeq: this.outbox.ackedSeq,
      lastConnectedAt: this.lastConnectedAt,
      lastError: this.lastError,
      connects: this.connects,
    };
  }

  /** Publish events [fromSeq, fromSeq + limit) again (replay command). Returns how many. */
  replay(fromSeq: number, limit: number): number {
    if (!this.sendable()) return 0;
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
    if (!this.sendable()) return;
    this.send(this.topics.state, JSON.stringify(stateMessage(this.deps.ledger, this.deps.now())), DELIVERY.state);
  }

  publishTelemetry(): void {
    if (!this.sendable()) return;
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
    return {
      ts: now(),
      uptimeMs: Math.max(0, now() - bootedAt),
      queueDepth: this.outbox.backlog,
      cpuTempC: cpuTemperature(),
      diskFreeBytes,
      devices: this.deps.devices(),
      temperatures: this.deps.temperatures().map((t) => ({ compartment: t.compartment, celsius: t.celsius, ok: t.ok, at: t.at })),
    };
  }

  private status(state: "online" | "offline"): BankStatus {
    return { state, version: this.deps.version, bootedAt: this.deps.bootedAt, instance: this.instance };
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
      client.publish(topic, payload, opts, (err) => {
        if (done) done(err ?? undefined);
        else if (err) this.log.warn({ err: { message: err.message }, topic }, "publish not accepted");
      });
      return true;
    } catch (e) {
      this.log.error({ err: e, topic }, "publish failed in the MQTT client");
      return false;
    }
  }

  private connect(): void {
    if (this.stopped) return;
    this.state = this.connects ? "offline" : "connecting";
    const will = { ...this.options.will!, payload: Buffer.from(JSON.stringify(this.status("offline"))) };
    const client = connect(this.deps.config.sync.url, { ...this.options, will });
    this.client = client;
    this.session = { connectedAt: null, brokerReason: undefined };
    client.on("connect", () => this.onConnect(client));
    client.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet));
    client.on("disconnect", (packet) => {
      if (client !== this.client) return;
      this.session.brokerReason = packet.reasonCode ?? 0;
      this.log.warn({ reasonCode: packet.reasonCode, reason: packet.properties?.reasonString }, "the broker closed the connection");
    });
    client.on("error", (e) => {
      this.lastError = e.message;
      this.log.warn({ err: { message: e.message, code: (e as NodeJS.ErrnoException).code } }, "broker connection error");
    });
    client.on("close", () => this.onClose(client));
  }

  private onConnect(client: MqttClient): void {
    if (client !== this.client) return;
    // Nagle off: a QoS 1 round trip on loopback drops from ~88 ms to ~1 ms.
    (client.stream as Partial<Socket> | undefined)?.setNoDelay?.(true);
    this.connects++;
    this.lastConnectedAt = this.deps.now();
    this.session.connectedAt = this.lastConnectedAt;
    if (!this.takeovers.duplicate) this.lastError = null;
    this.backoff.reset();
    this.watchStable();
    this.log.info({ broker: this.deps.config.sync.url, backlog: this.outbox.backlog }, "connected to the broker");
    // rap false: the retain flag on a command then means "stored at the broker", never "published
    // with retain" (MQTT 5 §3.8.3.1), and such a command is refused. rh 1: what is retained comes
    // once per new subscription, not at every reconnect of a resumed session.
    client.subscribe(this.topics.cmdFilter, { qos: DELIVERY.cmd.qos, rap: false, rh: 1 }, (err) => {
      if (err) this.log.error({ err }, "subscribe to commands failed");
      if (client !== this.client) return;
      this.watchStatus(client);
      // "online" once commands are heard and the broker holds the retained status: whoever looks then sees "online".
      this.send(this.topics.status, JSON.stringify(this.status("online")), DELIVERY.status, () => {
        if (client !== this.client || !client.connected) return;
        this.state = "online";
        this.emit("online");
        this.sendHeld();
      });
    });
    this.publishState();
    this.publishTelemetry();
    // Not sent now: sent again from the watermark after the next connect (the outbox's generation).
    this.outbox.connected((event, done) => void this.send(this.topics.events, JSON.stringify(event), DELIVERY.events, done));
  }

  /**
   * Our own status topic, retained message included (rh 0): right after a connect it holds the last
   * word of whoever had this identity before. Another instance saying "online" there is a second
   * bank, also on brokers that take a session over without a DISCONNECT (see onStatus).
   */
  private watchStatus(client: MqttClient): void {
    client.subscribe(this.topics.status, { qos: DELIVERY.status.qos, rh: 0 }, (err) => {
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
    }, stableMs);
    this.stableTimer.unref();
  }

  private onClose(client: MqttClient): void {
    if (client !== this.client) return;
    clearTimeout(this.stableTimer);
    this.outbox.disconnected();
    if (this.stopped) return;
    if (this.state === "online") this.log.warn({ backlog: this.outbox.backlog }, "broker connection lost; events are kept until it returns");
    this.state = "offline";
    this.emit("offline");
    client.removeAllListeners();
    client.on("error", () => undefined);
    client.end(true);
    this.client = undefined;
    this.reconnectTimer = setTimeout(() => this.connect(), this.nextWait(this.takeoverOf(this.session)));
  }

  /** Whether the connection that just closed was taken by another client with our client id. */
  private takeoverOf(session: Session): DuplicateIdentity["evidence"] | undefined {
    // While a duplicate is known, "right after" is anything shorter than the other's longest wait.
    const { reconnectBaseMs, reconnectCapMs } = this.deps.config.sync;
    const earlyMs = this.takeovers.duplicate ? identityTiming(reconnectCapMs).stableMs : Math.max(2_000, 2 * reconnectBaseMs);
    return takeoverEvidence(session, this.deps.now(), earlyMs);
  }

  private nextWait(takeover: DuplicateIdentity["evidence"] | undefined): number {
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
  private noteDuplicate(evidence: DuplicateIdentity["evidence"]): boolean {
    const before = this.takeovers.duplicate;
    const duplicate = this.takeovers.takenOver(evidence);
    this.lastError = `${evidence}: another bank uses ${this.topics.root} (client id ${this.clientId})`;
    if (duplicate && !before) {
      // The event type alarm.duplicate_identity is not in the ledger's list yet: log and info() carry it.
      this.log.error(
        { alarm: "duplicate_identity", clientId: this.clientId, root: this.topics.root, instance: this.instance, ...duplicate },
        "duplicate identity: another bank connects with this site/device; reconnecting only every few minutes until it is gone",
      );
    }
    return duplicate !== null;
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic === this.topics.status) return this.onStatus(payload);
    const ref = parseTopic(this.topics.root, topic);
    if (ref?.kind !== "cmd") return;
    const props = packet.properties;
    // Zero bytes: a server clearing a retained command. The broker passes that on to subscribers
    // too (MQTT 5 §3.3.1.3), without the retain flag (rap false). Not a command: no reply.
    if (payload.length === 0) {
      this.log.info({ command: ref.name.slice(0, 64), retained: packet.retain }, "empty command message ignored (a retained command cleared)");
      return;
    }
    if (packet.retain) return this.refuseRetained(ref.name, payload, props?.responseTopic, props?.correlationData);
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
    const decoded = decodeCommand(name, payload);
    const id = decoded.ok ? decoded.command.id : decoded.id;
    const command = name.slice(0, 64);
    const message = `a retained command is never executed: publish commands with retain=false, and clear this one with an empty retained message on ${this.topics.root}/cmd/${command}`;
    this.log.warn({ command, id }, "retained command refused: commands are never executed from a retained message");
    try {
      // The data of the router's alarm.unauthorized_command (docs/asyncapi.yaml), reason "retained".
      this.deps.ledger.transact((tx) => tx.event({ type: "alarm.unauthorized_command", actor: "server", data: { name: command, id, reason: "retained", message } }));
    } catch (e) {
      this.log.error({ err: e }, "retained command alarm not recorded");
    }
    this.reply(name, { id, ok: false, error: { code: ErrorCode.Unauthorized, message } }, responseTopic, correlationData);
  }

  /** Send a reply now, or hold it until the link is back (see HELD_REPLIES). */
  private reply(name: string, reply: ReplyEnvelope, responseTopic?: string, correlationData?: Buffer): void {
    const command = name.slice(0, 64);
    if (this.stopped) {
      this.log.warn({ command, id: reply.id }, "reply dropped: the link is stopping; the command is answered from the ledger when sent again");
      return;
    }
    let topic = `${this.topics.root}/reply/${name}`;
    if (responseTopic !== undefined) {
      const problem = responseTopicProblem(this.topics.root, responseTopic);
      if (problem) this.log.warn({ command, id: reply.id, responseTopic: responseTopic.slice(0, 200), problem }, `response topic refused (${problem}); replying on ${topic}`);
      else topic = responseTopic;
    }
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

  private prune(): void {
    const before = this.deps.now() - this.deps.config.sync.retentionDays * 86_400_000;
    try {
      const n = this.deps.ledger.prune(before);
      if (n.events || n.commands) this.log.info(n, "pruned published events and answered commands past retention");
    } catch (e) {
      this.log.warn({ err: e }, "prune failed");
    }
  }
}

function cpuTemperature(): number | null {
  try {
    return Math.round(Number(readFileSync(CPU_TEMP, "utf8")) / 100) / 10;
  } catch {
    return null;
  }
}
