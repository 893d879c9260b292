// A minimal central server built from docs/asyncapi.yaml alone, against the compiled daemon over
// mosquitto: topics, the example keys, payload examples, signatures, the event hash chain and the
// sealed code all come from the document (test/helpers/asyncapi.ts; nothing from src/). Flow:
//
//   reserve (signed) ─▶ reply ─▶ courier scans the parcel at the bank ─▶ parcel.deposited + sealedCode
//     ─▶ unsealed here ─▶ the recipient types it ─▶ parcel.picked_up
//
// When this needs something the document does not say, the document is incomplete.
import { randomUUID } from "node:crypto";
import { connect, type IPublishPacket, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  eventHash,
  exampleOf,
  exampleSealKey,
  exampleSigningKey,
  loadContract,
  openSealedCode,
  signCommand,
  topicOf,
  type SealedCode,
} from "../helpers/asyncapi.js";
import { displayHas, removeDir, SimClient, startDaemon, stopDaemon, tempDir, type Daemon } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { slow } from "../helpers/slow.js";

const doc = loadContract();
const param = (name: string) => doc.components.parameters[name]!;
const bank = { prefix: param("prefix").default!, site: param("site").examples[0]!, device: param("device").examples[0]! };
const topic = (channel: string) => topicOf(doc, channel, bank);
const fleet = (channel: string) => topicOf(doc, channel, { prefix: bank.prefix, site: "+", device: "+" });

interface Message {
  topic: string;
  json: Record<string, any>;
  packet: IPublishPacket;
}

const broker = new Mosquitto();
beforeAll(() => broker.start());
afterAll(() => broker.close());

/** The server's MQTT side: everything it hears, and a wait for what it expects. */
class Server {
  readonly heard: Message[] = [];
  private constructor(readonly client: MqttClient) {
    client.on("message", (t, payload, packet) => this.heard.push({ topic: t, json: JSON.parse(payload.toString("utf8")) as Record<string, any>, packet }));
  }

  static async connect(url: string): Promise<Server> {
    const client = connect(url, { protocolVersion: 5, clientId: `server-${randomUUID()}`, reconnectPeriod: 0 });
    await new Promise<void>((resolve, reject) => client.once("connect", () => resolve()).once("error", reject));
    const server = new Server(client);
    await client.subscribeAsync([fleet("status"), fleet("events"), fleet("reply-reserve")], { qos: 1 });
    return server;
  }

  async waitFor(what: string, pred: (m: Message) => boolean, timeoutMs = 10_000): Promise<Message> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = this.heard.find(pred);
      if (m) return m;
      if (Date.now() > until) throw new Error(`no ${what} within ${timeoutMs} ms; heard ${this.heard.map((h) => h.topic).join(", ")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  event(type: string, parcel: string): Promise<Message> {
    return this.waitFor(type, (m) => m.topic === topic("events") && m.json.type === type && m.json.parcel === parcel);
  }
}

/** A command as the document shapes it: an example's payload, fresh id and times, signed when the operation says so. */
function command(name: string, args: unknown): { payload: Record<string, unknown>; qos: 0 | 1 | 2; retain: boolean } {
  const op = doc.operations[name]!;
  const example = exampleOf(doc, `cmd-${name}`) as { issuedAt: number; expiresAt: number };
  const issuedAt = Date.now();
  const payload: Record<string, unknown> = { id: randomUUID(), args, issuedAt, expiresAt: issuedAt + (example.expiresAt - example.issuedAt) };
  if (op["x-lockerd-signed"]) {
    payload.sig = signCommand(exampleSigningKey(doc), { site: bank.site, device: bank.device, name }, payload as { id: string; args: unknown; issuedAt: number; expiresAt: number });
  }
  const { qos, retain } = doc.components.operationBindings[op.bindings.$ref.split("/").pop()!]!.mqtt;
  return { payload, qos, retain };
}

describe("a server built from docs/asyncapi.yaml alone", () => {
  it("signs as the document's examples do", () => {
    const example = exampleOf(doc, "cmd-reserve") as { id: string; args: unknown; issuedAt: number; expiresAt: number; sig: string };
    expect(signCommand(exampleSigningKey(doc), { site: bank.site, device: bank.device, name: "reserve" }, example)).toBe(example.sig);
  });

  it("reserve → courier deposit → unseal the code → recipient pickup, against the daemon", { timeout: slow(40_000) }, async () => {
    const server = await Server.connect(broker.url);
    const dir = tempDir();
    let d: Daemon | undefined;
    let sim: SimClient | undefined;
    try {
      d = await startDaemon({
        dir,
        patch: (cfg) => {
          cfg.device = { ...cfg.device, site: bank.site, id: bank.device };
          cfg.sync = {
            enabled: true,
            url: broker.url,
            topicPrefix: bank.prefix,
            serverPublicKey: doc.info["x-lockerd-example-key"].serverPublicKey,
            sealKey: doc.components.schemas.SealedCode["x-lockerd-worked-example"].serverKey.sealKey,
          };
        },
      });
      sim = await SimClient.connect(d.socket);
      await server.waitFor("online", (m) => m.topic === topic("status") && m.json.state === "online");

      // The parcel of the reserve example, for a recipient the bank knows.
      const { args } = exampleOf(doc, "cmd-reserve") as { args: { parcel: string; recipient: string; size: string } };
      const reserve = command("reserve", args);
      await server.client.publishAsync(topic("cmd-reserve"), JSON.stringify(reserve.payload), {
        qos: reserve.qos,
        retain: reserve.retain,
        properties: { contentType: "application/json", payloadFormatIndicator: true },
      });
      const reply = await server.waitFor("reserve reply", (m) => m.topic === topic("reply-reserve") && m.json.id === reserve.payload.id);
      expect(reply.json).toMatchObject({ ok: true, result: { parcel: args.parcel, size: args.size } });
      const compartment = reply.json.result.compartment as string;

      // The courier identifies at the keypad and scans the parcel: its reserved door opens; they shut it.
      sim.send({ op: "keys", keys: "*2468#" });
      await sim.waitFor(displayHas("Parcel size?"));
      let mark = sim.mark();
      sim.send({ op: "scan", text: args.parcel });
      await sim.waitFor((e) => e.ev === "door" && e.compartment === compartment && e.state === "open", { from: mark });
      sim.send({ op: "door", compartment, state: "closed" });

      const deposited = await server.event("parcel.deposited", args.parcel);
      expect(deposited.json.compartment).toBe(compartment);
      expect(deposited.packet.properties).toMatchObject({ contentType: "application/json", payloadFormatIndicator: true });
      const code = openSealedCode(doc, deposited.json.data.sealedCode as SealedCode, exampleSealKey(doc), args.parcel);
      expect(code).toMatch(/^[0-9]{4,12}$/);
      expect(JSON.stringify(deposited.json)).not.toContain(`"${code}"`);

      // The courier is done; the recipient types the code the server sent them, takes the parcel, shuts the door.
      sim.send({ op: "keys", keys: "*" });
      await sim.waitFor(displayHas("Enter code"), { from: mark });
      mark = sim.mark();
      sim.send({ op: "keys", keys: `${code}#` });
      await sim.waitFor((e) => e.ev === "door" && e.compartment === compartment && e.state === "open", { from: mark });
      sim.send({ op: "door", compartment, state: "closed" });
      const picked = await server.event("parcel.picked_up", args.parcel);

      // Every event so far forms the documented hash chain, from 64 zeros.
      const events = new Map(server.heard.filter((m) => m.topic === topic("events")).map((m) => [m.json.seq as number, m.json]));
      let prev = "0".repeat(64);
      for (let seq = 1; seq <= (picked.json.seq as number); seq++) {
        const e = events.get(seq);
        expect(e, `event ${seq}`).toBeDefined();
        expect(e!.prevHash, `prevHash of ${seq}`).toBe(prev);
        expect(eventHash(e!), `hash of ${seq}`).toBe(e!.hash);
        prev = e!.hash as string;
      }
    } finally {
      sim?.close();
      if (d) await stopDaemon(d);
      await server.client.endAsync();
      removeDir(dir);
    }
  });
});
