// The fleet brokers beside mosquitto (scripts/broker.ts), for the suite and `npm run bench`:
// nats-server (JetStream and its MQTT gateway) and RabbitMQ (rabbitmq_mqtt), the Debian packages,
// run as plain processes on loopback, every node with its own ports and data directory, from the
// example configs in docs/brokers/ (the files the README points a fleet to). Both speak MQTT 3.1.1
// only. A cluster starts once per test file: a RabbitMQ node is an Erlang VM (~10 s, ~100 MB).
//
//   NatsCluster({nodes: 3, replicas: 3})  n0 ─ n1 ─ n2 (routes), JetStream R3 under MQTT
//   RabbitCluster({nodes: 3})             epmd of its own ─ r0 (first) ◀─ r1, r2 (classic_config)
//
// kill(i) is kill -9 of node i; restart(i) starts it again on its ports and data.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import { accepting, freePort, Mosquitto, type Engine } from "./broker.js";

export type { Engine } from "./broker.js";

/** docs/brokers, from scripts/ (the suite runs the sources) or dist/scripts/ (the benchmarks). */
const TEMPLATES = [new URL("../docs/brokers", import.meta.url), new URL("../../docs/brokers", import.meta.url)]
  .map((u) => u.pathname)
  .find((p) => existsSync(join(p, "nats.conf")))!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function executable(paths: string[]): string | undefined {
  return paths.find((p) => spawnSync("test", ["-x", p]).status === 0);
}
const NATS = executable(["/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]);
const RABBIT = executable(["/usr/lib/rabbitmq/bin/rabbitmq-server"]);
const EPMD = executable(["/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"]);

export function hasNats(): boolean {
  return NATS !== undefined;
}
export function hasRabbit(): boolean {
  return RABBIT !== undefined && EPMD !== undefined;
}

/** docs/brokers/<name> with every ${KEY} replaced. */
function template(name: string, values: Record<string, string | number>): string {
  const text = readFileSync(join(TEMPLATES, name), "utf8");
  return text.replace(/\$\{([A-Z_]+)\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`${name}: no value for \${${k}}`);
    return String(values[k]);
  });
}

/** A v4 (MQTT 3.1.1) client on `url`, Nagle off, `setup` before CONNECT. */
async function mqttClient(url: string, opts: IClientOptions, setup?: (c: MqttClient) => void): Promise<MqttClient> {
  const c = connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
  setup?.(c);
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
    c.once("close", () => reject(new Error(`${url}: closed before CONNACK`)));
  });
  (c.stream as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true);
  return c;
}

/**
 * Until a message published QoS 1 on the first live node reaches a subscriber on every other live
 * node: the cluster routes, and (NATS) JetStream has a leader for the MQTT streams.
 */
async function clusterReady(name: string, urls: string[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = "";
  for (let round = 0; ; round++) {
    const opened: MqttClient[] = [];
    try {
      const topic = `probe/${name}/${process.pid}/${round}`;
      const subs = await Promise.all(urls.slice(1).map((u) => mqttClient(u, { clean: true, clientId: `probe-${process.pid}-${round}-${u.slice(-5)}` })));
      opened.push(...subs);
      const heard = subs.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.on("message", (t) => t === topic && resolve());
          }),
      );
      for (const s of subs) await s.subscribeAsync(topic, { qos: 1 });
      const pub = await mqttClient(urls[0]!, { clean: true, clientId: `probe-${process.pid}-${round}-pub` });
      opened.push(pub);
      await pub.publishAsync(topic, "x", { qos: 1 });
      const timer = sleep(3000).then(() => Promise.reject(new Error("probe message not routed to every node")));
      await Promise.race([Promise.all(heard), timer]);
      return;
    } catch (e) {
      last = (e as Error).message;
      if (Date.now() > until) throw new Error(`${name}: cluster not ready within ${timeoutMs} ms: ${last}`);
      await sleep(500);
    } finally {
      for (const c of opened) c.end(true);
    }
  }
}

/** A child process that is a broker node, its output kept for failures. */
class Node {
  child: ChildProcess | undefined;
  log = "";
  constructor(readonly label: string) {}

  spawn(bin: string, args: string[], env?: NodeJS.ProcessEnv): void {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.log = (this.log + d).slice(-20_000)));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.log = (this.log + d).slice(-20_000)));
    this.child = child;
  }

  async stop(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await gone;
    clearTimeout(timer);
  }
}

/** What every multi-node engine below has: its nodes, their MQTT ports, their URLs and output. */
abstract class Cluster<P extends { mqtt: number }> {
  protected ports: P[] = [];
  protected readonly members: Node[];

  constructor(prefix: string, nodes: number) {
    this.members = Array.from({ length: nodes }, (_, i) => new Node(`${prefix}${i}`));
  }

  get nodes(): number {
    return this.members.length;
  }

  get urls(): string[] {
    return this.ports.map((p) => `mqtt://127.0.0.1:${p.mqtt}`);
  }

  get url(): string {
    return this.urls[0]!;
  }

  /** The nodes' output (for a failing test's message). */
  get log(): string {
    return this.logged().map((n) => `── ${n.label}\n${n.log.slice(-3000)}`).join("\n");
  }

  protected logged(): Node[] {
    return this.members;
  }
}

/**
 * nats-server nodes with JetStream and MQTT. One node has no cluster block (JetStream clustering
 * needs routes); three form a cluster whose MQTT streams have `replicas` replicas.
 */
export class NatsCluster extends Cluster<{ client: number; cluster: number; mqtt: number }> implements Engine {
  readonly name = "nats";
  readonly protocol = 4 as const;
  private readonly dir = mkdtempSync(join(tmpdir(), "nats-"));

  constructor(private readonly opts: { nodes?: number; replicas?: number } = {}) {
    super("n", opts.nodes ?? 3);
  }

  /** Node i's config, as written (docs/brokers/nats.conf filled in). */
  config(i: number): string {
    const p = this.ports[i]!;
    const clustered = this.members.length > 1;
    const text = template("nats.conf", {
      NAME: `n${i}`,
      CLIENT_PORT: p.client,
      DATA: join(this.dir, `n${i}`),
      CLUSTER_PORT: p.cluster,
      ROUTES: this.ports.map((q) => `"nats-route://127.0.0.1:${q.cluster}"`).join(", "),
      MQTT_PORT: p.mqtt,
      REPLICAS: this.opts.replicas ?? (clustered ? 3 : 1),
    });
    return clustered ? text : text.replace(/^# Left out for a single node.*\n^cluster \{[\s\S]*?^\}\n/m, "");
  }

  async start(): Promise<void> {
    if (!NATS) throw new Error("nats-server is not installed (apt-get install nats-server; scripts/test-deps.sh)");
    if (!this.ports.length) {
      for (let i = 0; i < this.members.length; i++) this.ports.push({ client: await freePort(), cluster: await freePort(), mqtt: await freePort() });
    }
    for (let i = 0; i < this.members.length; i++) this.launch(i);
    await Promise.all(this.ports.map((p) => accepting(p.mqtt, 15_000, "nats-server")));
    await clusterReady(this.name, this.urls, 30_000).catch((e: Error) => Promise.reject(new Error(`${e.message}\n${this.log}`)));
  }

  private launch(i: number): void {
    const conf = join(this.dir, `n${i}.conf`);
    writeFileSync(conf, this.config(i));
    this.members[i]!.spawn(NATS!, ["-c", conf]);
  }

  async kill(i: number): Promise<void> {
    await this.members[i]!.stop("SIGKILL");
  }

  async restart(i: number): Promise<void> {
    this.launch(i);
    await accepting(this.ports[i]!.mqtt, 15_000, "nats-server");
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((n) => n.stop("SIGTERM", 10_000)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  client(opts: IClientOptions = {}, setup?: (c: MqttClient) => void, node = 0): Promise<MqttClient> {
    return mqttClient(this.urls[node]!, opts, setup);
  }
}

/**
 * RabbitMQ nodes with rabbitmq_mqtt, quorum session queues, clustered by classic_config: node 0
 * first, the others join it. Their own epmd (Erlang's port mapper) on a port of their own, their
 * own cookie: nothing of them is shared with another cluster on the machine.
 */
export class RabbitCluster extends Cluster<{ amqp: number; dist: number; mqtt: number }> implements Engine {
  readonly name = "rabbitmq";
  readonly protocol = 4 as const;
  private readonly dir = mkdtempSync(join(tmpdir(), "rabbitmq-"));
  private readonly tag = `lk${process.pid}x${Math.floor(Math.random() * 1e6)}`;
  private epmdPort = 0;
  private readonly epmd = new Node("epmd");

  constructor(opts: { nodes?: number } = {}) {
    super("r", opts.nodes ?? 3);
  }

  protected override logged(): Node[] {
    return [this.epmd, ...this.members];
  }

  private nodeName(i: number): string {
    return `${this.tag}r${i}@localhost`;
  }

  /** Node i's rabbitmq.conf, as written (docs/brokers/rabbitmq.conf filled in). */
  config(i: number): string {
    const p = this.ports[i]!;
    return template("rabbitmq.conf", {
      AMQP_PORT: p.amqp,
      MQTT_PORT: p.mqtt,
      CLUSTER_NODES: this.members.map((_, j) => `cluster_formation.classic_config.nodes.${j + 1} = ${this.nodeName(j)}`).join("\n"),
    });
  }

  async start(): Promise<void> {
    if (!RABBIT || !EPMD) throw new Error("rabbitmq-server is not installed (apt-get install rabbitmq-server; scripts/test-deps.sh)");
    if (!this.ports.length) {
      this.epmdPort = await freePort();
      for (let i = 0; i < this.members.length; i++) this.ports.push({ amqp: await freePort(), dist: await freePort(), mqtt: await freePort() });
      mkdirSync(join(this.dir, "home"));
      writeFileSync(join(this.dir, "home", ".erlang.cookie"), `${this.tag}COOKIE`, { mode: 0o400 });
    }
    this.epmd.spawn(EPMD, ["-port", String(this.epmdPort), "-address", "127.0.0.1"]);
    await accepting(this.epmdPort, 10_000, "epmd");
    try {
      // Node 0 alone, then the others join it (all at once, two could each found a cluster).
      this.launch(0);
      await accepting(this.ports[0]!.mqtt, 90_000, "rabbitmq node 0");
      for (let i = 1; i < this.members.length; i++) this.launch(i);
      await Promise.all(this.ports.slice(1).map((p, i) => accepting(p.mqtt, 90_000, `rabbitmq node ${i + 1}`)));
      await clusterReady(this.name, this.urls, 60_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.log}`);
    }
  }

  private launch(i: number): void {
    const base = join(this.dir, `r${i}`);
    mkdirSync(base, { recursive: true });
    writeFileSync(join(base, "rabbitmq.conf"), this.config(i));
    writeFileSync(join(base, "enabled_plugins"), "[rabbitmq_mqtt].\n");
    this.members[i]!.spawn(RABBIT!, [], {
      ...process.env,
      HOME: join(this.dir, "home"),
      ERL_EPMD_PORT: String(this.epmdPort),
      // exec the VM itself (no shell in between): kill -9 of the child is kill -9 of the node.
      RUNNING_UNDER_SYSTEMD: "1",
      RABBITMQ_NODENAME: this.nodeName(i),
      RABBITMQ_DIST_PORT: String(this.ports[i]!.dist),
      RABBITMQ_NODE_PORT: String(this.ports[i]!.amqp),
      RABBITMQ_MNESIA_BASE: join(base, "mnesia"),
      RABBITMQ_LOG_BASE: join(base, "log"),
      RABBITMQ_CONFIG_FILE: join(base, "rabbitmq.conf"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(base, "enabled_plugins"),
      RABBITMQ_CONF_ENV_FILE: "/dev/null",
      RABBITMQ_ADVANCED_CONFIG_FILE: join(base, "advanced.config"),
      RABBITMQ_PID_FILE: join(base, "pid"),
      // Two cores shared with other work: no scheduler busy-waiting, which Erlang does by default.
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "+sbwt none +sbwtdcpu none +sbwtdio none",
    });
  }

  async kill(i: number): Promise<void> {
    await this.members[i]!.stop("SIGKILL");
  }

  async restart(i: number): Promise<void> {
    this.launch(i);
    await accepting(this.ports[i]!.mqtt, 90_000, `rabbitmq node ${i}`);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((n) => n.stop("SIGTERM", 20_000)));
    await this.epmd.stop("SIGTERM", 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }

  client(opts: IClientOptions = {}, setup?: (c: MqttClient) => void, node = 0): Promise<MqttClient> {
    return mqttClient(this.urls[node]!, opts, setup);
  }
}

/** The engines by name, as BENCH_BROKERS and the broker matrix name them. */
export const ENGINES = ["mosquitto", "mosquitto-3.1.1", "nats", "rabbitmq"] as const;
export type EngineName = (typeof ENGINES)[number];

export function makeEngine(name: EngineName): Engine {
  switch (name) {
    case "mosquitto":
      return new Mosquitto({ persistence: true });
    case "mosquitto-3.1.1":
      return new Mosquitto({ persistence: true, protocol: 4 });
    case "nats":
      return new NatsCluster({ nodes: 3 });
    case "rabbitmq":
      return new RabbitCluster({ nodes: 3 });
  }
}
