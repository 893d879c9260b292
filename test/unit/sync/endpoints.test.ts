// Which MQTT version the link asks each endpoint for, what "auto" learns, and how a close is told
// (src/sync/endpoints.ts). The transport itself: test/integration/sync-protocol.test.ts, test/brokers/.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/load.js";
import { describeClose, parseRemembered, ProtocolChooser, REPROBE_MS, shouldFallBack, syncEndpoints, type ClosedConnection } from "../../../src/sync/endpoints.js";
import { clientOptions } from "../../../src/sync/link.js";
import { exampleConfig } from "../../helpers/daemon.js";

const URL_A = "mqtt://n1:1883";
const URL_B = "mqtt://n2:1883";

function sync(patch: Record<string, unknown>) {
  const raw = exampleConfig() as Record<string, any>;
  raw.sync = { ...raw.sync, enabled: true, ...patch };
  return parseConfig(raw).sync;
}

describe("sync.url and sync.protocol in the config", () => {
  it("takes one endpoint or a list of them, and 5, 4 or auto", () => {
    expect(syncEndpoints(sync({ url: URL_A }).url)).toEqual([URL_A]);
    expect(syncEndpoints(sync({ url: [URL_A, URL_B] }).url)).toEqual([URL_A, URL_B]);
    for (const protocol of [5, 4, "auto"]) expect(sync({ protocol }).protocol).toBe(protocol);
    expect(sync({}).protocol).toBeUndefined(); // 5
  });

  it("refuses an empty list, a repeated endpoint, a bad URL in a list, and other versions", () => {
    for (const bad of [{ url: [] }, { url: [URL_A, URL_A] }, { url: [URL_A, "http://x"] }, { protocol: 3 }, { protocol: "5" }, { protocol: "3.1.1" }]) {
      expect(() => sync(bad), JSON.stringify(bad)).toThrow();
    }
  });

  it("asks for a session expiry and sends properties in MQTT 5 only", () => {
    const will = { topic: "lockers/hq/bank-01/status", payload: "{}" };
    const v5 = clientOptions(sync({}), "id", will, 5);
    const v4 = clientOptions(sync({}), "id", will, 4);
    expect(v5).toMatchObject({ protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 604_800 }, will: { properties: { contentType: "application/json" } } });
    expect(v4).toMatchObject({ protocolVersion: 4, clean: false });
    expect(v4.properties).toBeUndefined();
    expect(v4.will!.properties).toBeUndefined();
  });
});

describe('the version asked for ("auto" per endpoint)', () => {
  it("5 or 4 as set, whatever was learnt", () => {
    const learnt = { [URL_A]: { version: 4 as const, at: 0 } };
    expect(new ProtocolChooser(5, learnt, () => 1).version(URL_A)).toBe(5);
    expect(new ProtocolChooser(4, {}, () => 1).version(URL_A)).toBe(4);
    expect(new ProtocolChooser(4, {}, () => 1).connected(URL_A, 4, false)).toBeUndefined(); // nothing to remember
  });

  it("auto: 5 first; 3.1.1 learnt from a fallback and kept, per endpoint, until it is time to ask for 5 again", () => {
    let now = 1_000;
    const c = new ProtocolChooser("auto", {}, () => now);
    expect(c.version(URL_A)).toBe(5);
    expect(c.connected(URL_A, 4, true)).toEqual({ [URL_A]: { version: 4, at: 1_000 } });
    expect(c.version(URL_A)).toBe(4);
    expect(c.version(URL_B)).toBe(5);
    now += REPROBE_MS - 1;
    expect(c.version(URL_A)).toBe(4);
    now += 1;
    expect(c.version(URL_A)).toBe(5); // a broker upgraded since is found within a day
    expect(c.connected(URL_A, 4, true)).toEqual({ [URL_A]: { version: 4, at: now } }); // still 3.1.1 only: learnt again
    expect(c.connected(URL_A, 4, false)).toBeUndefined(); // an ordinary connect in 3.1.1 says nothing new
    expect(c.connected(URL_B, 5, false)).toMatchObject({ [URL_B]: { version: 5 } });
    expect(c.connected(URL_B, 5, false)).toBeUndefined();
  });

  it("reads only a well-formed record from the ledger", () => {
    const good = { [URL_A]: { version: 4, at: 5 } };
    expect(parseRemembered(JSON.stringify(good))).toEqual(good);
    expect(parseRemembered(JSON.stringify({ ...good, [URL_B]: { version: 3, at: 5 }, x: { version: 4, at: "1" } }))).toEqual(good);
    for (const bad of [undefined, "", "{", "null", "[]", "7"]) expect(parseRemembered(bad), String(bad)).toEqual({});
  });

  it("falls back to 3.1.1 when auto's MQTT 5 CONNECT is refused for its version or closed without a word, and only then", () => {
    const base = { setting: "auto" as const, version: 5 as const, phase: "connack" as const };
    expect(shouldFallBack(base)).toBe(true); // RabbitMQ 3.10
    expect(shouldFallBack({ ...base, error: { message: "Connection refused: Unacceptable protocol version", code: 1 } })).toBe(true); // NATS
    expect(shouldFallBack({ ...base, error: { message: "Unsupported Protocol Version", code: 0x84 } })).toBe(true);
    expect(shouldFallBack({ ...base, error: { message: "Connection refused: Not authorized", code: 5 } })).toBe(false);
    expect(shouldFallBack({ ...base, error: { message: "connack timeout" } })).toBe(false);
    expect(shouldFallBack({ ...base, phase: "connecting", error: { message: "connect ECONNREFUSED", code: "ECONNREFUSED" } })).toBe(false);
    expect(shouldFallBack({ ...base, phase: "suback" })).toBe(false);
    expect(shouldFallBack({ ...base, version: 4 })).toBe(false);
    expect(shouldFallBack({ ...base, setting: 5 })).toBe(false);
  });
});

describe("why a connection went down (lastError)", () => {
  const c = (patch: Partial<ClosedConnection>): string =>
    describeClose({ endpoint: URL_A, version: 5, setting: 5, phase: "connack", cmdFilter: "lockers/hq/bank-01/cmd/+", statusTopic: "lockers/hq/bank-01/status", ...patch });

  it("names the endpoint, the version, the broker's words and what was happening", () => {
    expect(c({ phase: "connecting", error: { message: "connect ECONNREFUSED 10.0.0.1:1883", code: "ECONNREFUSED" } })).toBe("mqtt://n1:1883 (MQTT 5): connect ECONNREFUSED 10.0.0.1:1883");
    expect(c({ error: { message: "Connection refused: Unacceptable protocol version", code: 1 } })).toBe(
      'mqtt://n1:1883 (MQTT 5): the broker refuses MQTT 5 (Connection refused: Unacceptable protocol version): it speaks 3.1.1 only; set sync.protocol to "auto" or 4',
    );
    expect(c({})).toMatch(/^mqtt:\/\/n1:1883 \(MQTT 5\): the broker closed the connection after CONNECT, before CONNACK, without an MQTT error: .*RabbitMQ.*sync\.protocol/);
    expect(c({ version: 4 })).toMatch(/\(MQTT 3\.1\.1\): the broker closed the connection after CONNECT, before CONNACK, without an MQTT error: it did not take the client/);
    expect(c({ version: 4, afterConnectMs: 4003 })).toMatch(/the broker closed the connection 4\.0 s after CONNECT, before CONNACK, .*JetStream has no quorum/);
    expect(c({ error: { message: "Connection refused: Not authorized", code: 5 } })).toBe("mqtt://n1:1883 (MQTT 5): Connection refused: Not authorized (answer to CONNECT)");
    expect(c({ error: { message: "connack timeout" } })).toBe("mqtt://n1:1883 (MQTT 5): connack timeout (answer to CONNECT)");
    expect(c({ phase: "suback" })).toMatch(/after CONNACK, before SUBACK of lockers\/hq\/bank-01\/cmd\/\+: .*subscribe ACL/);
    expect(c({ phase: "puback" })).toMatch(/before it acknowledged status online on lockers\/hq\/bank-01\/status \(a publish ACL .*JetStream/);
    expect(c({ phase: "online", onlineMs: 95_000 })).toBe("mqtt://n1:1883 (MQTT 5): connection lost after 95 s online: closed by the broker or the network without an MQTT error");
    expect(c({ phase: "online", onlineMs: 3 * 3_600_000, error: { message: "Keepalive timeout" } })).toBe("mqtt://n1:1883 (MQTT 5): connection lost after 3 h online: Keepalive timeout");
    expect(c({ phase: "online", disconnect: { reasonCode: 0x8b, reasonString: "node stopping" } })).toBe("mqtt://n1:1883 (MQTT 5): the broker disconnected the bank: server shutting down (node stopping)");
  });
});
