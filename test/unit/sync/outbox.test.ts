// The outbox publisher against a real ledger file and a publish function that stands in for the
// broker's PUBACKs (the transport itself is tested against mosquitto).
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { LedgerEvent } from "../../../src/domain/events.js";
import { Ledger } from "../../../src/ledger/ledger.js";
import { silentLogger } from "../../../src/log.js";
import { Outbox } from "../../../src/sync/outbox.js";
import { removeDir, tempDir } from "../../helpers/daemon.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

function ledgerWith(events: number, dir = tempDir()): Ledger {
  dirs.push(dir);
  const ledger = new Ledger(join(dir, "ledger.db"), { now: () => 1_764_057_600_000, synchronous: "NORMAL" });
  ledger.transact((tx) => {
    for (let i = 0; i < events; i++) tx.event({ type: "door.opened", compartment: "A01", data: { i } });
  });
  return ledger;
}

/** A broker stand-in: holds each publish's callback until the test acknowledges it. */
function fakeBroker() {
  const sent: LedgerEvent[] = [];
  const pending: ((err?: Error) => void)[] = [];
  return {
    sent,
    pending,
    publish: (e: LedgerEvent, done: (err?: Error) => void) => {
      sent.push(e);
      pending.push(done);
    },
    ackAll: () => {
      for (const done of pending.splice(0)) done();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("outbox", () => {
  it("sends in seq order with at most `window` unacknowledged, and drains as acks arrive", async () => {
    const ledger = ledgerWith(1000);
    const outbox = new Outbox({ ledger, log: silentLogger(), window: 64 });
    outbox.start();
    const broker = fakeBroker();
    outbox.connected(broker.publish);
    await tick();
    expect(broker.sent).toHaveLength(64);
    while (broker.pending.length) {
      expect(broker.pending.length).toBeLessThanOrEqual(64);
      broker.ackAll();
      await tick();
    }
    expect(broker.sent.map((e) => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    await outbox.drained();
    expect(outbox.backlog).toBe(0);
    expect(ledger.ackedSeq()).toBe(1000);
    outbox.stop();
    ledger.close();
  });

  it("after a dropped connection resends from the last acknowledged seq; late acks of the old connection are ignored", async () => {
    const ledger = ledgerWith(10);
    const outbox = new Outbox({ ledger, log: silentLogger(), window: 100 });
    outbox.start();
    const first = fakeBroker();
    outbox.connected(first.publish);
    await tick();
    // Acks for 1..4 arrive, then the link drops with 5..10 in flight.
    for (const done of first.pending.splice(0, 4)) done();
    outbox.disconnected();
    for (const done of first.pending.splice(0)) done(); // too late: that connection is gone
    expect(outbox.ackedSeq).toBe(4);
    const second = fakeBroker();
    outbox.connected(second.publish);
    await tick();
    expect(second.sent.map((e) => e.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    second.ackAll();
    await outbox.drained();
    outbox.stop();
    expect(ledger.ackedSeq()).toBe(10);
    ledger.close();
  });

  it("publishes a new commit without being asked, and never on the committer's call stack", async () => {
    const ledger = ledgerWith(0);
    const outbox = new Outbox({ ledger, log: silentLogger(), window: 8 });
    outbox.start();
    const broker = fakeBroker();
    outbox.connected(broker.publish);
    ledger.transact((tx) => tx.event({ type: "door.closed", compartment: "A01" }));
    expect(broker.sent).toHaveLength(0);
    await tick();
    expect(broker.sent.map((e) => e.type)).toEqual(["door.closed"]);
    broker.ackAll();
    await outbox.drained();
    outbox.stop();
    ledger.close();
  });

  it("prune keeps every unacknowledged event, deletes old acknowledged ones, and the chain still verifies", async () => {
    const dir = tempDir();
    let t = 1_000;
    dirs.push(dir);
    const ledger = new Ledger(join(dir, "ledger.db"), { now: () => t, synchronous: "NORMAL" });
    for (let i = 0; i < 20; i++) {
      t += 1000;
      ledger.transact((tx) => tx.event({ type: "door.opened", compartment: "A01", data: { i } }));
    }
    ledger.transact((tx) => tx.setMeta("outbox.acked", "10"));
    // Everything is older than the cut-off, but only 1..10 are acknowledged.
    expect(ledger.prune(1_000_000).events).toBe(10);
    expect(ledger.eventsFrom(1, 100).map((e) => e.seq)[0]).toBe(11);
    expect(ledger.verify()).toMatchObject({ ok: true, checked: 10 });
    expect(ledger.counts()).toEqual({ events: 10, unpublished: 10 });
    ledger.close();
  });
});
