// The link's pure rules: where a reply may go (link.ts), what counts as a takeover, when a duplicate
// identity starts and ends, and how long it waits (identity.ts). The transport itself is tested
// against mosquitto (test/integration/sync-attack.test.ts, sync-order.test.ts).
import { describe, expect, it } from "vitest";
import { identityTiming, parseDuplicate, TakeoverGuard, takeoverEvidence } from "../../../src/sync/identity.js";
import { responseTopicProblem } from "../../../src/sync/link.js";

const ROOT = "lockers/hq/bank-01";

describe("response topics", () => {
  it("accepts a plain topic inside the bank's reply space", () => {
    for (const t of [`${ROOT}/reply/snapshot`, `${ROOT}/reply/inbox/7`, `${ROOT}/reply/a b/ü`]) expect(responseTopicProblem(ROOT, t), t).toBeUndefined();
  });

  it.each([
    ["empty", "", /empty/],
    ["a wildcard elsewhere", "evil/#", /wildcard/],
    ["a single-level wildcard in the reply space", `${ROOT}/reply/+`, /wildcard/],
    ["a multi-level wildcard in the reply space", `${ROOT}/reply/#`, /wildcard/],
    ["a NUL", `${ROOT}/reply/a\u0000b`, /NUL/],
    ["a broker topic", "$SYS/broker/x", /\$/],
    ["65,534 characters but more than 65,535 bytes of UTF-8", `${ROOT}/reply/${"é".repeat(32_767)}`, /65535 bytes/],
    ["the bank's status", `${ROOT}/status`, /outside/],
    ["the bank's own command topic", `${ROOT}/cmd/open`, /outside/],
    ["the reply space itself, no level below", `${ROOT}/reply/`, /outside/],
    ["the reply level without a slash", `${ROOT}/reply`, /outside/],
    ["another bank's command topic", "lockers/hq/bank-02/cmd/reserve", /outside/],
    ["a bank whose id starts the same", "lockers/hq/bank-01x/reply/open", /outside/],
    ["a server inbox outside the bank", "srv/inbox/7", /outside/],
  ])("refuses %s", (_what, topic, why) => {
    expect(responseTopicProblem(ROOT, topic)).toMatch(why);
  });
});

describe("takeovers", () => {
  const at = (connectedAt: number | null, brokerReason?: number) => ({ connectedAt, brokerReason });

  it("tells a takeover from other closes", () => {
    expect(takeoverEvidence(at(0, 0x8e), 600_000, 2000)).toBe("session taken over"); // MQTT 5 says so, however long it lasted
    expect(takeoverEvidence(at(0), 500, 2000)).toBe("closed right after connect"); // no DISCONNECT, soon after CONNACK
    expect(takeoverEvidence(at(0), 2000, 2000)).toBeUndefined(); // a connection that lasted
    expect(takeoverEvidence(at(0, 0x8b), 500, 2000)).toBeUndefined(); // the broker is shutting down
    expect(takeoverEvidence(at(null), 500, 2000)).toBeUndefined(); // never connected
    // Closed after CONNACK, before the subscription and status online were acknowledged: a broker
    // that cannot set the link up (NATS without JetStream quorum, an ACL close under 3.1.1).
    expect(takeoverEvidence({ ...at(0), settingUp: true }, 500, 2000)).toBeUndefined();
    expect(takeoverEvidence({ ...at(0), settingUp: false }, 500, 2000)).toBe("closed right after connect");
  });

  it("makes a duplicate identity of 3 takeovers within the window, counts on while it lasts, ends when stable", () => {
    let now = 0;
    const guard = new TakeoverGuard({ threshold: 3, windowMs: 60_000, now: () => now });
    expect(guard.takenOver("session taken over")).toBeNull();
    now = 40_000;
    expect(guard.takenOver("session taken over")).toBeNull();
    now = 70_000; // the first has left the window
    expect(guard.takenOver("session taken over")).toBeNull();
    now = 80_000;
    expect(guard.takenOver("session taken over")).toEqual({ since: 80_000, takeovers: 3, lastAt: 80_000, evidence: "session taken over" });
    now = 400_000; // minutes later, still going on
    expect(guard.takenOver("closed right after connect")).toMatchObject({ since: 80_000, takeovers: 4, lastAt: 400_000 });
    expect(guard.stable()).toMatchObject({ takeovers: 4 });
    expect(guard.duplicate).toBeNull();
    // Counting starts afresh.
    expect(guard.takenOver("session taken over")).toBeNull();
  });

  it("resumes a duplicate identity kept across a restart (its alarm still open), and reads only a well-formed one", () => {
    const kept = { since: 80_000, takeovers: 4, lastAt: 90_000, evidence: "session taken over" as const };
    expect(parseDuplicate(JSON.stringify(kept))).toEqual(kept);
    for (const bad of [undefined, "", "{", "null", JSON.stringify({ ...kept, evidence: "x" }), JSON.stringify({ ...kept, since: "1" })]) {
      expect(parseDuplicate(bad), String(bad)).toBeUndefined();
    }
    const guard = new TakeoverGuard({ threshold: 3, windowMs: 60_000, now: () => 100_000 });
    guard.restore(kept);
    expect(guard.takenOver("closed right after connect")).toMatchObject({ since: 80_000, takeovers: 5, lastAt: 100_000 });
    expect(guard.stable()).toMatchObject({ since: 80_000, takeovers: 5 });
  });

  it("hands out copies: info() cannot change the guard", () => {
    const guard = new TakeoverGuard({ threshold: 1, windowMs: 60_000, now: () => 5 });
    guard.takenOver("session taken over")!.takeovers = 99;
    expect(guard.duplicate?.takeovers).toBe(1);
  });

  it("waits minutes at the default cap, with jitter, and calls a connection stable past the longest wait", () => {
    expect(identityTiming(60_000, () => 0)).toEqual({ waitMs: 120_000, stableMs: 360_000 });
    expect(identityTiming(60_000, () => 1)).toEqual({ waitMs: 300_000, stableMs: 360_000 });
    // A huge cap is bounded: a quarter of an hour at most between tries.
    expect(identityTiming(3_600_000, () => 1).waitMs).toBe(900_000);
    expect(identityTiming(3_600_000, () => 0).waitMs).toBe(900_000);
    for (const cap of [100, 400, 60_000, 3_600_000]) {
      const { waitMs, stableMs } = identityTiming(cap, () => 1);
      expect(stableMs).toBeGreaterThan(waitMs);
    }
  });
});
