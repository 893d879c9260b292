// The broker matrix on a three-node nats-server 2.9 cluster: JetStream, its MQTT gateway (3.1.1),
// stream_replicas 3 (docs/brokers/nats.conf). test/helpers/matrix.ts says what is checked. Then,
// with two nodes gone, JetStream has no quorum: the bank says so.
import { describe, expect, it } from "vitest";
import { NatsCluster } from "../../scripts/brokers.js";
import { testBank } from "../helpers/bank.js";
import { brokerMatrix } from "../helpers/matrix.js";
import { slow } from "../helpers/slow.js";

const nats = new NatsCluster({ nodes: 3, replicas: 3 });
// NATS takes ~1,600 QoS 1 messages a second here: 3,000 events are plenty to kill it under.
brokerMatrix(nats, { retainedAcrossNodes: true, auto: "3.1.1", backlog: 3000 });

describe("nats without JetStream quorum", () => {
  // After the matrix (its last test killed node 0): node 1 goes too, node 2 is alone.
  it("the node left closes every connection 4 s after CONNECT: lastError says what was happening", { timeout: slow(30_000) }, async () => {
    await nats.kill(1);
    const b = await testBank((cfg) => {
      cfg.device = { ...cfg.device, id: "nats-no-quorum" };
      cfg.sync = { enabled: true, url: nats.urls[2], protocol: 4, reconnectBaseMs: 100, reconnectCapMs: 400 };
    });
    try {
      const end = Date.now() + 15_000;
      while (!b.rt.link!.info().lastError && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(b.rt.link!.info().lastError).toMatch(
        new RegExp(`^${nats.urls[2]} \\(MQTT 3\\.1\\.1\\): the broker closed the connection \\d+\\.\\d s after CONNECT, before CONNACK, without an MQTT error: .*JetStream has no quorum`),
      );
      expect(b.rt.link!.info().duplicateIdentity).toBeNull();
    } finally {
      await b.close();
    }
  });
});
