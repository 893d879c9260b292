// What a server built from docs/asyncapi.yaml alone could do to a bank, and no longer can: replay a
// captured command, change things unsigned, flood the events topic; and what it must be able to
// learn: which events its command caused, and how a command cut short by a restart ended.
import { cpSync, rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { stateMessage } from "../../../src/sync/commands.js";
import { COMMAND_NAMES, MAX_REPLAY_LIMIT, REPLAY_INTERVAL_MS, SIGNED_COMMANDS } from "../../../src/sync/contract.js";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";
import { tempDir } from "../../helpers/daemon.js";
import { flipBit, routerFor, signed } from "../../helpers/router.js";

const MIN = 60_000;
const reasons = (b: TestBank) => b.events("alarm.unauthorized_command").map((e) => e.data.reason);

/** A copy of the bank's data directory as a kill -9 now would leave it (the ledger is WAL: every commit is in it). */
function crashImage(b: TestBank): string {
  const dir = tempDir();
  cpSync(b.dir, dir, { recursive: true, filter: (src) => !src.endsWith("-shm") });
  rmSync(`${dir}/data/lockerd.pid`, { force: true });
  return dir;
}

describe("no replay, ever (point 2)", () => {
  const banks = fakeClockBanks();

  it("refuses a signed lifetime longer than the maximum, and keeps an id until its command can no longer be accepted", async () => {
    const b = await banks.open();
    const { handle } = routerFor(b, { signed: true });
    const now = Date.now();
    const decade = signed("open", { id: "life-1", args: { compartment: "A02", reason: "captured" }, issuedAt: now, expiresAt: now + 10 * 365 * 86_400_000 });
    expect(await handle("open", decade)).toMatchObject({ ok: false, error: { code: "bad_input", message: expect.stringContaining("600 s") } });
    expect(reasons(b)).toEqual(["lifetime"]);

    const open = signed("open", { id: "life-2", args: { compartment: "A02", reason: "helpdesk check" }, issuedAt: now, expiresAt: now + 10 * MIN });
    const pending = handle("open", open);
    await banks.advance(300);
    const first = await pending;
    expect(first).toMatchObject({ ok: true });
    b.hw.doors.set(b.rt.bank.layoutOf("A02").lock, "closed");

    // Pruning (whatever the retention) keeps the id while the command could still be accepted ...
    await banks.advance(9 * MIN);
    b.rt.ledger.prune(Date.now() + 1);
    expect(await handle("open", open)).toEqual(first);
    // ... and forgets it once expiresAt + the skew tolerance have passed: then it is refused as expired.
    await banks.advance(3 * MIN);
    b.rt.ledger.prune(Date.now() + 1);
    expect(b.rt.ledger.command("life-2")).toBeUndefined();
    expect(await handle("open", open)).toMatchObject({ ok: false, error: { code: "expired" } });
    expect(b.events("admin.open")).toHaveLength(1);
    expect(reasons(b)).toEqual(["lifetime", "expired"]);
  });

  it("takes a missing expiresAt as issuedAt + the maximum, and refuses an issuedAt ahead of the bank clock", async () => {
    const b = await banks.open();
    const { send } = routerFor(b);
    // 600 s lifetime + 120 s skew tolerance.
    expect(await send("reserve", { parcel: "P-old", recipient: "p-1001", size: "S" }, { issuedAt: Date.now() - 13 * MIN })).toMatchObject({
      ok: false,
      error: { code: "expired" },
    });
    expect(await send("reserve", { parcel: "P-late", recipient: "p-1001", size: "S" }, { issuedAt: Date.now() - 11 * MIN })).toMatchObject({ ok: true });
    const ahead = await send("reserve", { parcel: "P-ahead", recipient: "p-1001", size: "S" }, { issuedAt: Date.now() + 3 * MIN });
    expect(ahead).toMatchObject({ ok: false, error: { code: "expired", message: expect.stringContaining(new Date(Date.now()).toISOString()) } });
    expect(await send("reserve", { parcel: "P-skewed", recipient: "p-1001", size: "S" }, { issuedAt: Date.now() + MIN })).toMatchObject({ ok: true });
    expect(b.rt.ledger.parcel("P-old")).toBeUndefined();
    expect(b.rt.ledger.parcel("P-ahead")).toBeUndefined();
  });

  it("answers a repeat from the record, and refuses the same id with another payload or signature (alarm: replayed)", async () => {
    const b = await banks.open();
    const { handle } = routerFor(b, { signed: true });
    const base = { id: "dup-1", args: { parcel: "P-1", recipient: "p-1001", size: "S" }, issuedAt: Date.now(), expiresAt: Date.now() + 5 * MIN };
    const first = await handle("reserve", signed("reserve", base));
    expect(first).toMatchObject({ ok: true });
    expect(await handle("reserve", signed("reserve", base))).toEqual(first);
    expect(reasons(b)).toEqual([]);
    const other = signed("reserve", { ...base, args: { ...base.args, parcel: "P-2" } });
    expect(await handle("reserve", other)).toMatchObject({ ok: false, error: { code: "bad_input", message: expect.stringContaining("dup-1") } });
    expect(reasons(b)).toEqual(["replayed"]);
    const tampered = signed("reserve", base);
    expect(await handle("reserve", { ...tampered, sig: flipBit(tampered.sig as string) })).toMatchObject({ ok: false, error: { code: "unauthorized" } });
    expect(reasons(b)).toEqual(["replayed", "signature"]);
    expect(b.rt.ledger.parcel("P-2")).toBeUndefined();
  });
});

describe("every side effect is authorized (point 6)", () => {
  const banks = fakeClockBanks();

  it("signs every command that changes something; snapshot alone may go unsigned", () => {
    expect([...SIGNED_COMMANDS].sort()).toEqual(COMMAND_NAMES.filter((n) => n !== "snapshot").sort());
  });

  it("with a server key: unsigned cancel, set-compartment and replay are unauthorized; a sig on a snapshot must verify", async () => {
    const b = await banks.open();
    const { handle, replayed } = routerFor(b, { signed: true });
    const envelope = (id: string) => ({ id, issuedAt: Date.now(), expiresAt: Date.now() + 5 * MIN });
    const reserved = await handle("reserve", signed("reserve", { ...envelope("u-1"), args: { parcel: "P-6", recipient: "p-1001", size: "S" } }));
    expect(reserved).toMatchObject({ ok: true });
    const sizeBefore = b.rt.ledger.compartment("A01")!.size;

    for (const [name, args] of [
      ["cancel", { parcel: "P-6" }],
      ["set-compartment", { compartment: "A01", size: "XL" }],
      ["replay", { fromSeq: 1 }],
    ] as const) {
      expect(await handle(name, { ...envelope(`u-${name}`), args }), name).toMatchObject({ ok: false, error: { code: "unauthorized" } });
    }
    expect(b.rt.ledger.parcel("P-6")?.status).toBe("reserved");
    expect(b.rt.ledger.compartment("A01")!.size).toBe(sizeBefore);
    expect(replayed).toEqual([]);

    expect(await handle("snapshot", { ...envelope("u-snap"), args: {} })).toMatchObject({ ok: true });
    const snap = signed("snapshot", { ...envelope("u-snap-2"), args: {} });
    expect(await handle("snapshot", { ...snap, sig: flipBit(snap.sig as string) })).toMatchObject({ ok: false, error: { code: "unauthorized" } });
    expect(reasons(b)).toEqual(["unsigned", "unsigned", "unsigned", "signature"]);
    expect(await handle("cancel", signed("cancel", { ...envelope("u-cancel-2"), args: { parcel: "P-6" } }))).toMatchObject({ ok: true });
  });

  it("rate-limits replay: one per interval, answered busy with retryAfterMs, and a cap on events per request", async () => {
    const b = await banks.open();
    const { send, handle, replayed } = routerFor(b);
    expect(await send("replay", { fromSeq: 1, limit: 5 })).toMatchObject({ ok: true });
    const second = { id: "again-1", args: { fromSeq: 1 }, issuedAt: Date.now() };
    const busy = await handle("replay", second);
    expect(busy).toMatchObject({ ok: false, error: { code: "busy", retryAfterMs: REPLAY_INTERVAL_MS } });
    expect(replayed).toEqual([1, 5]);
    // Not remembered: the same id goes through once the interval has passed.
    await banks.advance(REPLAY_INTERVAL_MS);
    expect(await handle("replay", second)).toMatchObject({ ok: true });
    expect(MAX_REPLAY_LIMIT).toBeLessThanOrEqual(1000);
    expect(await send("replay", { fromSeq: 1, limit: MAX_REPLAY_LIMIT + 1 })).toMatchObject({ ok: false, error: { code: "bad_input" } });
  });
});

describe("the server can tell what happened (point 7)", () => {
  const banks = fakeClockBanks();

  it("names the command in every event it caused", async () => {
    const b = await banks.open((cfg) => (cfg.people = { owner: "server" }));
    const { send } = routerFor(b);
    const causedBy = async (name: string, args: unknown, types: string[]) => {
      const head = b.rt.ledger.headSeq;
      const reply = send(name, args);
      await banks.advance(300);
      const r = await reply;
      expect(r, name).toMatchObject({ ok: true });
      const fresh = b.rt.ledger.eventsFrom(head + 1, 1000);
      for (const type of types) expect(fresh.find((e) => e.type === type)?.data.command, `${name}: ${type}`).toBe(r.id);
    };
    await causedBy("reserve", { parcel: "P-1", recipient: "p-1001", size: "S" }, ["parcel.reserved", "compartment.reserved"]);
    await causedBy("cancel", { parcel: "P-1" }, ["parcel.cancelled", "compartment.released"]);
    await causedBy("directory", { upserts: [{ id: "p-9", name: "Kim", roles: ["recipient"], active: true }] }, ["person.updated"]);
    await causedBy("set-compartment", { compartment: "A05", enabled: false, size: "L" }, ["compartment.resized", "compartment.disabled"]);
    await causedBy("policy", { lockout: { threshold: 4 } }, ["policy.changed"]);
    const { compartment, parcel } = await keypadDeposit(b, banks.advance);
    await causedBy("issue-code", { parcel }, ["code.issued"]);
    await causedBy("revoke-code", { parcel }, ["code.revoked"]);
    await causedBy("open", { compartment, parcel, reason: "forgot my code" }, ["pickup.started"]);
    await causedBy("open", { compartment: "A06", reason: "helpdesk check" }, ["admin.open"]);
    // Events the bank makes by itself name no command.
    expect(b.events("door.opened").every((e) => e.data.command === undefined)).toBe(true);
  });

  it("answers an open cut short by a kill with what happened: the door opened before the kill", async () => {
    const b = await banks.open();
    const { handle } = routerFor(b);
    const payload = { id: "kill-1", args: { compartment: "A02", reason: "helpdesk check" }, issuedAt: Date.now() };
    let image: string | undefined;
    b.rt.ledger.onCommit((events) => {
      if (!image && events.some((e) => e.type === "door.opened" && e.compartment === "A02")) image = crashImage(b);
    });
    const pending = handle("open", payload);
    await banks.advance(300);
    const first = await pending;
    expect(first).toEqual({ id: "kill-1", ok: true, result: { compartment: "A02", parcel: null } });
    await b.close();

    const after = await banks.open(undefined, image);
    expect(after.rt.ledger.command("kill-1")).toMatchObject({ reply: null });
    expect(after.events("admin.open").at(-1)?.data.command).toBe("kill-1");
    const { handle: again } = routerFor(after);
    expect(await again("open", payload)).toEqual(first);
    expect(after.rt.ledger.command("kill-1")?.reply).toEqual(first);
  });

  it("answers an open cut short by a kill with what happened: killed before the door was seen open", async () => {
    const b = await banks.open();
    const { handle } = routerFor(b);
    const payload = { id: "kill-2", args: { compartment: "A02", reason: "helpdesk check" }, issuedAt: Date.now() };
    let image: string | undefined;
    b.rt.ledger.onCommit((events) => {
      if (!image && events.some((e) => e.type === "admin.open")) image = crashImage(b);
    });
    const pending = handle("open", payload);
    await banks.advance(300);
    expect(await pending).toMatchObject({ ok: true });
    await b.close();

    const after = await banks.open(undefined, image);
    const { handle: again } = routerFor(after);
    const reply = await again("open", payload);
    expect(reply).toMatchObject({ id: "kill-2", ok: false, error: { code: "shutting_down", message: expect.stringContaining("not open at the restart") } });
    expect(await again("open", payload)).toEqual(reply);
    expect(after.rt.ledger.command("kill-2")?.reply).toEqual(reply);
  });

  it("answers a remote pickup cut short by a kill as the restart settled it", async () => {
    const b = await banks.open();
    const { handle } = routerFor(b);
    const { compartment, parcel } = await keypadDeposit(b, banks.advance);
    const payload = { id: "kill-3", args: { compartment, parcel, reason: "forgot my code" }, issuedAt: Date.now() };
    let image: string | undefined;
    b.rt.ledger.onCommit((events) => {
      if (!image && events.some((e) => e.type === "pickup.started")) image = crashImage(b);
    });
    const pending = handle("open", payload);
    await banks.advance(300);
    expect(await pending).toMatchObject({ ok: true });
    await b.close();

    const after = await banks.open(undefined, image);
    expect(after.rt.ledger.parcel(parcel)?.status).toBe("stored");
    const aborted = after.events("pickup.aborted").at(-1);
    const { handle: again } = routerFor(after);
    const reply = await again("open", payload);
    // Rolled back, or held for inspection when the bank cannot tell whether the door opened.
    const says = aborted?.data.outcome === "unknown" ? "whether it opened is unknown" : "the pickup was rolled back";
    expect(reply).toMatchObject({ id: "kill-3", ok: false, error: { code: "shutting_down", message: expect.stringContaining(says) } });
    expect(await again("open", payload)).toEqual(reply);
  });

  it("set-compartment enabled clears a fault and a forced-open inspection; state and snapshot say what holds a compartment", async () => {
    const b = await banks.open();
    const { send } = routerFor(b);
    const lock = (id: string) => b.rt.bank.layoutOf(id).lock;
    const held = (id: string) => stateMessage(b.rt.ledger, Date.now()).compartments.find((c) => c.id === id)?.held;

    b.hw.locks.jammed.add(lock("A03"));
    const jammed = send("open", { compartment: "A03", reason: "helpdesk check" });
    await banks.advance(3000);
    expect(await jammed).toMatchObject({ ok: false, error: { code: "lock_fault" } });
    b.hw.locks.jammed.delete(lock("A03"));
    b.hw.doors.set(lock("A04"), "open"); // forced
    b.hw.doors.set(lock("A04"), "closed");
    const snap = await send("snapshot", {});
    const byId = (id: string) => (snap.ok ? (snap.result as { compartments: { id: string; held: unknown }[] }).compartments.find((c) => c.id === id) : undefined);
    expect(byId("A03")).toMatchObject({ state: "fault", enabled: true, held: "fault" });
    expect(byId("A04")).toMatchObject({ state: "free", held: "inspection" });
    expect(byId("A05")).toMatchObject({ held: null });
    expect(held("A03")).toBe("fault");

    const cleared = await send("set-compartment", { compartment: "A03", enabled: true, reason: "lock replaced" });
    expect(cleared).toMatchObject({ ok: true, result: { id: "A03", state: "free", enabled: true, held: null } });
    expect(b.events("compartment.fault_cleared").at(-1)?.data.command).toBe(cleared.id);
    expect(await send("set-compartment", { compartment: "A04", enabled: true, reason: "inspected" })).toMatchObject({ ok: true, result: { held: null } });
    expect(b.events("alarm.cleared").at(-1)).toMatchObject({ compartment: "A04", data: { alarm: "forced_open" } });
  });
});
