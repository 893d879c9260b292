// A real mosquitto broker for a test file or a benchmark: its own port and config (Nagle off,
// anonymous), started and stopped by its user (a broker outage is `stop()` then `start()` on the
// same port). .ci/run installs the Debian package.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { connect, type IClientOptions, type MqttClient } from "mqtt";

const BIN = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => spawnSync("test", ["-x", p]).status === 0);

export function hasMosquitto(): boolean {
  return BIN !== undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function accepting(port: number, timeoutMs: number, what = "mosquitto"): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = tcpConnect(port, "127.0.0.1");
      sock.once("connect", () => (sock.destroy(), resolve(true)));
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} not listening on ${port}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * What the suite and the benchmarks need of a broker, whatever its engine (scripts/brokers.ts for
 * the clusters): its nodes' URLs, the MQTT version clients speak to it, a server-side client on a
 * node, and a node's sudden death.
 */
export interface Engine {
  readonly name: string;
  /** How many nodes (known before start). */
  readonly nodes: number;
  /** The MQTT version a bank (sync.protocol) and a server speak to it: 5, or 4 (3.1.1). */
  readonly protocol: 4 | 5;
  /** One URL per node, in node order. */
  readonly urls: string[];
  /** Node 0's. */
  readonly url: string;
  start(): Promise<void>;
  /** Stop every node for good and remove their files. */
  close(): Promise<void>;
  /** A server-side client on `node` (default 0), Nagle off; `setup` runs before CONNECT. */
  client(opts?: IClientOptions, setup?: (c: MqttClient) => void, node?: number): Promise<MqttClient>;
  /** kill -9 of one node: no DISCONNECT, no Last Will from it, no clean shutdown. */
  kill(node: number): Promise<void>;
  /** Start a killed node again, same ports and data. */
  restart(node: number): Promise<void>;
}

export class Mosquitto implements Engine {
  readonly nodes = 1;
  port = 0;
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), "mosquitto-"));
  log = "";
  /** Keep sessions and retained messages across stop()/start() (a broker restart, not a new broker). */
  constructor(
    private readonly opts: {
      persistence?: boolean;
      sysInterval?: number;
      /** Listener settings instead of anonymous plain TCP (TLS files, password_file...). */
      listener?: string[];
      /** The MQTT version of client(): 5 (default) or 4, MQTT 3.1.1. mosquitto speaks both. */
      protocol?: 4 | 5;
    } = {},
  ) {}

  get name(): string {
    return this.protocol === 5 ? "mosquitto" : "mosquitto-3.1.1";
  }

  get protocol(): 4 | 5 {
    return this.opts.protocol ?? 5;
  }

  get urls(): string[] {
    return [this.url];
  }

  get url(): string {
    return `${this.opts.listener?.some((l) => l.startsWith("certfile")) ? "mqtts" : "mqtt"}://127.0.0.1:${this.port}`;
  }

  /** The broker's own directory (for certificates, password files). */
  get directory(): string {
    return this.dir;
  }

  async start(): Promise<void> {
    if (!BIN) throw new Error("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)");
    if (!this.port) this.port = await freePort();
    const conf = join(this.dir, "mosquitto.conf");
    writeFileSync(
      conf,
      [
        // Run as root (CI), mosquitto would switch to user mosquitto and lose its 0700 temp directory.
        ...(process.getuid?.() === 0 ? ["user root"] : []),
        `listener ${this.port} 127.0.0.1`,
        ...(this.opts.listener ?? ["allow_anonymous true"]), "set_tcp_nodelay true", ...(this.opts.persistence ? ["persistence true", `persistence_location ${this.dir}/`] : ["persistence false"]), "max_inflight_messages 0", "max_queued_messages 0", ...(this.opts.sysInterval ? [`sys_interval ${this.opts.sysInterval}`] : []), "log_dest stderr", "log_type error", "log_type warning"].join("\n") + "\n",
    );
    const child = spawn(BIN, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.log += d));
    this.child = child;
    await accepting(this.port, 5000);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await gone;
  }

  async kill(_node = 0): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }

  restart(_node = 0): Promise<void> {
    return this.start();
  }

  /** Stop for good and remove its files. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * A server-side client (MQTT 5 unless the broker was made for 3.1.1, Nagle off). `setup` runs
   * before the connection is made: a resumed session's queued messages arrive right after CONNACK,
   * and a handler attached later would miss them.
   */
  async client(opts: IClientOptions = {}, setup?: (c: MqttClient) => void, _node = 0): Promise<MqttClient> {
    const c = connect(this.url, { protocolVersion: this.protocol, reconnectPeriod: 0, ...opts });
    setup?.(c);
    await new Promise<void>((resolve, reject) => {
      c.once("connect", () => resolve());
      c.once("error", reject);
    });
    (c.stream as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true);
    return c;
  }
}
