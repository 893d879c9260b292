// The compiled daemon killed with SIGKILL in the middle of draining a backlog to mosquitto, then
// restarted: no event lost (every seq reaches the server, the chain verifies), the Last Will says
// offline, and a command executed before the kill is answered from its first reply, not run again.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyChain, type LedgerEvent } from "../../src/domain/events.js";
import { ensureDataDir, loadDeviceKey } from "../../src/ledger/datadir.js";
import { Ledger } from "../../src/ledger/ledger.js";
import { removeDir, startDaemon, stopDaemon, tempDir } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer } from "../helpers/server.js";
import { slow } from "../helpers/slow.js";

const BACKLOG = 20_000;
const broker = new Mosquitto();
beforeAll(() => broker.start());
afterAll(() => broker.close());

describe("SIGKILL during a backlog drain", () => {
  it("loses no event and executes no command twice", { timeout: slow(60_000) }, async () => {
    const dir = tempDir();
    const dataDir = join(dir, "data");
    // A week offline: a backlog in the ledger before the daemon ever reaches the broker.
    ensureDataDir(dataDir);
    loadDeviceKey(dataDir); // a bank's ledger comes with its key (a ledger alone is refused: restore or --init)
    const ledger = new Ledger(join(dataDir, "ledger.db"), { now: () => Date.now() - 86_400_000, synchronous: "NORMAL" });
    ledger.transact((tx) => {
      for (let i = 0; i < BACKLOG; i++) tx.event({ type: "door.opened", compartment: "A01", data: { i } });
    });
    ledger.close();

    const srv = await new TestServer(broker).connect();
    const patch = (cfg: Record<string, any>) => {
      cfg.sync = { enabled: true, url: broker.url, window: 64, reconnectBaseMs: 100, reconnectCapMs: 500 };
    };
    let d = await startDaemon({ dir, patch });
    const online = () => srv.waitFor((m) => m.topic === srv.t.status && m.text.includes('"online"') && srv.received.indexOf(m) >= mark, 10_000, "online");
    let mark = srv.received.length;
    try {
      await online();
      const first = await srv.command("reserve", { parcel: "P-K", recipient: "p-1001", size: "S" }, { id: "before-kill" }, 15_000);
      expect(first).toMatchObject({ ok: true });
      const until = Date.now() + 20_000;
      while (srv.events.size < 2000 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      expect(srv.events.size).toBeGreaterThanOrEqual(2000);
      await stopDaemon(d, "SIGKILL");
      const seenAtKill = srv.events.size;
      const will = await srv.waitFor((m) => m.topic === srv.t.status && m.text.includes('"offline"'), 10_000, "Last Will");
      expect(JSON.parse(will.text)).toMatchObject({ state: "offline" });

      mark = srv.received.length;
      d = await startDaemon({ dir, patch });
      await online();
      const again = await srv.command("reserve", { parcel: "P-K", recipient: "p-1001", size: "S" }, { id: "before-kill" }, 15_000);
      expect(again).toEqual(first);
      const snap = await srv.command("snapshot", {}, {}, 15_000);
      const head = (snap as { result: { seq: number } }).result.seq;
      expect(head).toBeGreaterThan(BACKLOG);
      await srv.waitForEvents(head, 30_000);
      const chain = Array.from({ length: head }, (_, i) => srv.events.get(i + 1)!);
      expect(verifyChain(chain)).toMatchObject({ ok: true, checked: head });
      const reserved = chain.filter((e: LedgerEvent) => e.type === "parcel.reserved" && e.parcel === "P-K");
      expect(reserved).toHaveLength(1);
      // At least once: what was in flight at the kill may arrive twice, never missing.
      expect(srv.events.size).toBeGreaterThanOrEqual(head);
      expect(seenAtKill).toBeLessThan(head);
    } finally {
      await stopDaemon(d);
      await srv.close();
      removeDir(dir);
    }
  });
});
