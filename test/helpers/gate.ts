// A TCP proxy in front of a real broker that closes the connection, without a word, when the client
// sends a given MQTT packet: what RabbitMQ 3.10 does with an MQTT 5 CONNECT, or a broker that
// cannot set up a subscription (NATS without JetStream) does with a SUBSCRIBE. Everything else is
// passed through byte for byte. With no upstream it is a "broker" that accepts and says nothing.
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";

/** MQTT control packet types (first byte's high nibble). */
export const PACKET = { CONNECT: 1, PUBLISH: 3, SUBSCRIBE: 8 } as const;

export interface GateRule {
  /** Close the client's connection (and the upstream one) when it sends this packet. */
  close: (packet: { type: number; protocolLevel?: number }) => boolean;
}

export class Gate {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;
  /** Connections the gate closed, by the packet that closed them. */
  readonly closed: { type: number; protocolLevel?: number }[] = [];
  /** CONNECT packets seen, by protocol level (4: MQTT 3.1.1, 5: MQTT 5). */
  readonly connects: number[] = [];

  constructor(
    private readonly upstreamPort: number | undefined,
    public rule: GateRule,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((client) => this.onClient(client));
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private onClient(client: Socket): void {
    client.setNoDelay(true);
    this.sockets.add(client);
    const upstream = this.upstreamPort === undefined ? undefined : tcpConnect(this.upstreamPort, "127.0.0.1");
    if (upstream) {
      upstream.setNoDelay(true);
      this.sockets.add(upstream);
      upstream.on("data", (d) => client.write(d));
      upstream.on("close", () => client.destroy());
      upstream.on("error", () => client.destroy());
    }
    let buf = Buffer.alloc(0);
    client.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      // Read whole packets; each is judged, then passed on.
      for (;;) {
        const packet = readPacket(buf);
        if (!packet) return;
        const bytes = buf.subarray(0, packet.length);
        buf = buf.subarray(packet.length);
        if (packet.type === PACKET.CONNECT && packet.protocolLevel !== undefined) this.connects.push(packet.protocolLevel);
        if (this.rule.close(packet)) {
          this.closed.push({ type: packet.type, ...(packet.protocolLevel !== undefined ? { protocolLevel: packet.protocolLevel } : {}) });
          client.end();
          client.destroy();
          upstream?.destroy();
          return;
        }
        upstream?.write(bytes);
      }
    });
    client.on("close", () => {
      this.sockets.delete(client);
      upstream?.destroy();
    });
    client.on("error", () => upstream?.destroy());
  }
}

/** One whole MQTT packet at the start of `buf`: its type, its length in bytes, and a CONNECT's protocol level. */
function readPacket(buf: Buffer): { type: number; length: number; protocolLevel?: number } | undefined {
  if (buf.length < 2) return undefined;
  let remaining = 0;
  let mul = 1;
  let i = 1;
  for (; ; i++) {
    if (i >= buf.length) return undefined;
    const b = buf[i]!;
    remaining += (b & 0x7f) * mul;
    mul *= 128;
    if (!(b & 0x80)) break;
  }
  const length = i + 1 + remaining;
  if (buf.length < length) return undefined;
  const type = buf[0]! >> 4;
  if (type !== PACKET.CONNECT) return { type, length };
  // Variable header: protocol name (2-byte length + "MQTT"), then the level.
  const nameLen = buf.readUInt16BE(i + 1);
  return { type, length, protocolLevel: buf[i + 3 + nameLen]! };
}
