// `lockerctl sync` and the sync lines of `lockerctl status`: the link's instance, its last error and
// a duplicate identity, within 80 columns; nothing extra while all is well.
import { describe, expect, it } from "vitest";
import type { StatusResult, SyncStatus } from "../../../src/admin/protocol.js";
import { formatStatus, formatSync } from "../../../src/cli/format.js";

const plain = { color: false };
const link: SyncStatus = { enabled: true, connected: true, url: "mqtt://broker:1883", backlog: 0, lastAckAt: null, headSeq: 42, lastError: null, instance: "5b0c8e1a-2f4d-4c6b-9a7e-3d1f0b2c4e6a", duplicateIdentity: null };
const duplicate = { since: Date.UTC(2026, 10, 25, 9), takeovers: 4, lastAt: Date.UTC(2026, 10, 25, 9, 1), evidence: "closed right after connect" };

function status(sync: SyncStatus): StatusResult {
  return { device: "hq/bank-01", version: "0.1.0", pid: 1, startedAt: 0, uptimeMs: 1000, now: 1000, devices: [], sync, alarms: [], counts: { free: 1 }, temperatures: [] };
}

describe("sync display", () => {
  it("shows the instance, and no trouble line while all is well", () => {
    expect(formatSync(link, plain)).toBe(
      ["server link connected mqtt://broker:1883", "backlog 0 events, head seq 42, last ack never", `instance ${link.instance}`].join("\n"),
    );
    expect(formatStatus(status(link), plain)).not.toMatch(/last error|DUPLICATE/);
  });

  it("shows the last error, in sync and in status", () => {
    const down = { ...link, connected: false, lastError: "connect ECONNREFUSED 127.0.0.1:1883" };
    expect(formatSync(down, plain)).toMatch(/NOT connected[\s\S]*last error: connect ECONNREFUSED/);
    expect(formatStatus(status(down), plain)).toMatch(/\n {2}last error: connect ECONNREFUSED 127\.0\.0\.1:1883/);
  });

  it("shows a duplicate identity rather than its error, in lines that fit 80 columns", () => {
    const both = { ...link, lastError: "session taken over: another bank uses lockers/hq/bank-01", duplicateIdentity: duplicate };
    const text = formatSync(both, plain);
    expect(text).toMatch(/DUPLICATE IDENTITY since .*: another bank, same site\/device\n\(closed right after connect, 4 takeovers\)/);
    expect(text).not.toMatch(/last error/);
    for (const line of formatStatus(status(both), plain).split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it("names the endpoint of a cluster and MQTT 3.1.1, and keeps a long last error within 80 columns", () => {
    const cluster = { ...link, url: "mqtt://nats-2:1883", endpoints: ["mqtt://nats-1:1883", "mqtt://nats-2:1883", "mqtt://nats-3:1883"], protocol: "3.1.1" as const };
    expect(formatSync(cluster, plain).split("\n")[0]).toBe("server link connected mqtt://nats-2:1883 (MQTT 3.1.1, endpoint 2 of 3)");
    expect(formatStatus(status(cluster), plain)).toContain("  connected mqtt://nats-2:1883  backlog 0  last ack never\n  (MQTT 3.1.1, endpoint 2 of 3)\n");
    const down = {
      ...cluster,
      connected: false,
      lastError: "mqtt://nats-2:1883 (MQTT 3.1.1): the broker closed the connection 4.0 s after CONNECT, before CONNACK, without an MQTT error: it did not take the client",
    };
    for (const text of [formatSync(down, plain), formatStatus(status(down), plain)]) {
      expect(text.replace(/\n +/g, " ")).toContain(`last error: ${down.lastError}`);
      for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
    }
  });

  it("says nothing of a link that sync disabled leaves out", () => {
    const off: SyncStatus = { enabled: false, connected: false, url: null, backlog: 3, lastAckAt: null, headSeq: 42 };
    expect(formatSync(off, plain)).toBe("sync disabled in config: the bank runs offline; 3 events kept for the server (head seq 42)");
  });
});
