// The central server's side of the MQTT contract, for tests and benchmarks: subscribes to one bank's
// topics, sends commands and waits for their replies, collects events.
import { randomUUID } from "node:crypto";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import type { LedgerEvent } from "../../src/domain/events.js";
import { topics, type Topics } from "../../src/sync/contract.js";
import type { ReplyEnvelope } from "../../src/sync/commands.js";
import type { Engine } from "../../scripts/broker.js";
import { slow } from "./slow.js";

export interface Received {
  topic: string;
  text: string;
  packet: IPublishPacket;
}

export class TestServer {
  readonly t: Topics;
  readonly received: Received[] = [];
  /** Events by seq (duplicates from at-least-once delivery collapse). */
  readonly events = new Map<number, LedgerEvent>();
  duplicates = 0;
  client!: MqttClient;
  private waiters: { pred: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];

  /** On any engine (mosquitto, a cluster of scripts/brokers.ts), in the MQTT version it speaks. */
  constructor(private readonly broker: Pick<Engine, "client">, site = "hq", device = "bank-01") {
    this.t = topics("lockers", site, device);
  }

  /** Connect to the broker (its node `node` for a cluster) and subscribe to the bank's topics. */
  async connect(opts: IClientOptions = {}, node = 0): Promise<this> {
    // The handler goes on before CONNACK: a resumed session's queued messages come right after it.
    this.client = await this.broker.client(opts, (c) => c.on("message", this.onMessage), node);
    await this.client.subscribeAsync(`${this.t.root}/#`, { qos: 1 });
    return this;
  }

  private readonly onMessage = (topic: string, payload: Buffer, packet: IPublishPacket): void => {
    const m = { topic, text: payload.toString("utf8"), packet };
    this.received.push(m);
    if (topic === this.t.events) {
      const e = JSON.parse(m.text) as LedgerEvent;
      if (this.events.has(e.seq)) this.duplicates++;
      this.events.set(e.seq, e);
    }
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(m)) return true;
      w.resolve(m);
      return false;
    });
  };

  /** The next (or an already received) message matching `pred`. */
  waitFor(pred: (m: Received) => boolean, timeoutMs = 5000, what = "message"): Promise<Received> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${slow(timeoutMs)} ms`)), slow(timeoutMs));
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Wait until events 1..seq (or from..seq) have all arrived. */
  async waitForEvents(seq: number, timeoutMs = 10_000, from = 1): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      let missing = 0;
      for (let s = from; s <= seq; s++) if (!this.events.has(s)) missing++;
      if (!missing) return;
      if (Date.now() > until) throw new Error(`${missing} events of ${from}..${seq} missing`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Publish a command and wait for its reply (matched by id). A command id sent again is the same
   * message again (as a server re-sends it): the bank refuses an id reused for another command.
   */
  async command(name: string, args: unknown, extra: Record<string, unknown> = {}, timeoutMs = 5000): Promise<ReplyEnvelope> {
    const id = (extra.id as string | undefined) ?? `c-${randomUUID()}`;
    const payload = this.sent.get(id) ?? JSON.stringify({ id, args, issuedAt: Date.now(), ...extra });
    this.sent.set(id, payload);
    return this.raw(name, payload, id, timeoutMs);
  }
  private readonly sent = new Map<string, string>();

  /** Publish any bytes on cmd/<name>; resolves with the reply whose id is `id` (null: unreadable). */
  async raw(name: string, payload: string, id: string | null, timeoutMs = 5000): Promise<ReplyEnvelope> {
    const replyTopic = `${this.t.root}/reply/${name}`;
    const before = this.received.length;
    const waiting = this.waitFor(
      (m) => m.topic === replyTopic && this.received.indexOf(m) >= before && (JSON.parse(m.text) as ReplyEnvelope).id === id,
      timeoutMs,
      `reply to ${name} ${id}`,
    );
    await this.client.publishAsync(`${this.t.root}/cmd/${name}`, payload, { qos: 1 });
    return JSON.parse((await waiting).text) as ReplyEnvelope;
  }

  async close(): Promise<void> {
    await this.client?.endAsync();
  }
}
