// The server's commands against a real bank (simulated hardware, real SQLite file), without a
// broker: what each command changes, what it answers, and what it refuses. The MQTT transport is
// tested against mosquitto in test/integration/sync.test.ts.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MAX_COMMAND_BYTES } from "../../../src/sync/contract.js";
import { openSealed, publicKeyB64, type SealedBox } from "../../../src/sync/seal.js";
import { fakeClockBanks, type TestBank } from "../../helpers/bank.js";
import { routerFor, signed } from "../../helpers/router.js";

const T0 = Date.parse("2026-11-25T09:00:00Z");
const sealKeys = generateKeyPairSync("x25519");

const withSealKey = (cfg: Record<string, any>) => {
  cfg.sync = { ...cfg.sync, sealKey: publicKeyB64(sealKeys.publicKey) };
};

describe("server commands", () => {
  const banks = fakeClockBanks();

  async function reserveAndDeposit(b: TestBank, send: ReturnType<typeof routerFor>["send"], parcel = "P-100") {
    const r = await send("reserve", { parcel, recipient: "p-1001", size: "M" });
    expect(r).toMatchObject({ ok: true, result: { parcel, size: "M" } });
    const compartment = (r as { result: { compartment: string } }).result.compartment;
    b.hw.keypad.keys("*2468#");
    b.hw.keypad.scan(parcel);
    expect(b.rt.ledger.compartment(compartment)?.state).toBe("loading");
    await banks.advance(200);
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    return compartment;
  }

  it("reserve holds a compartment; a courier scanning the parcel gets that door; the sealed code opens it", async () => {
    const b = await banks.open(withSealKey);
    const { send } = routerFor(b);
    const compartment = await reserveAndDeposit(b, send);
    expect(b.screen()).toContain(`Stored in ${compartment}`);
    const deposited = b.events("parcel.deposited").at(-1)!;
    expect(deposited.parcel).toBe("P-100");
    const box = deposited.data.sealedCode as SealedBox;
    const code = openSealed(box, sealKeys.privateKey, "P-100");
    expect(code).toMatch(/^[0-9]{6,}$/);
    // Nowhere in the ledger in clear.
    const dump = JSON.stringify(b.rt.ledger.eventsFrom(1, 100000));
    expect(dump).not.toContain(`"${code}"`);
    b.hw.keypad.keys("*");
    b.hw.keypad.keys(`${code}#`);
    expect(b.rt.ledger.compartment(compartment)?.state).toBe("unloading");
    await banks.advance(200);
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    const types = b.rt.ledger.eventsOfParcel("P-100").map((e) => e.type);
    expect(types).toEqual([
      "parcel.reserved",
      "compartment.reserved",
      "deposit.started",
      "door.opened",
      "door.closed",
      "parcel.deposited",
      "pickup.started",
      "door.opened",
      "door.closed",
      "parcel.picked_up",
    ].filter((t) => !t.startsWith("door.")));
  });

  it("executes a command id once: a repeat gets the first reply, also after a restart", async () => {
    let b = await banks.open();
    let { router } = routerFor(b);
    const payload = JSON.stringify({ id: "once-1", args: { parcel: "P-1", recipient: "p-1001", size: "S" }, issuedAt: Date.now() });
    const first = await router.handle("reserve", payload);
    expect(first.ok).toBe(true);
    expect(await router.handle("reserve", payload)).toEqual(first);
    const dir = b.dir;
    await b.rt.stop();
    b = await banks.open(undefined, dir);
    ({ router } = routerFor(b));
    expect(await router.handle("reserve", payload)).toEqual(first);
    expect(b.events("parcel.reserved")).toHaveLength(1);
    // The same id for another command is refused, not answered with the other's reply.
    expect(await router.handle("cancel", JSON.stringify({ id: "once-1", args: { parcel: "P-1" }, issuedAt: Date.now() }))).toMatchObject({
      ok: false,
      error: { code: "bad_input" },
    });
  });

  it("refuses bad payloads with a clear code and changes nothing", async () => {
    const b = await banks.open();
    const { router } = routerFor(b);
    const head = b.rt.ledger.headSeq;
    const cases: [string, string, string][] = [
      ["reserve", "{not json", "bad_input"],
      ["reserve", JSON.stringify({ id: "b1", args: { parcel: 5, recipient: "p-1001", size: "M" }, issuedAt: Date.now() }), "bad_input"],
      ["explode", JSON.stringify({ id: "b2", args: {}, issuedAt: Date.now() }), "unknown_command"],
      ["snapshot", JSON.stringify({ id: "b3", args: {}, issuedAt: Date.now(), pad: "x".repeat(MAX_COMMAND_BYTES) }), "payload_too_large"],
      ["reserve", JSON.stringify({ id: "b4", args: { parcel: "P-9", recipient: "p-1001", size: "M" }, issuedAt: T0 - 600_000, expiresAt: T0 - 300_000 }), "expired"],
    ];
    for (const [name, payload, code] of cases) {
      const r = await router.handle(name, payload);
      expect(r, payload.slice(0, 60)).toMatchObject({ ok: false, error: { code } });
    }
    expect(b.rt.ledger.headSeq).toBe(head);
    expect(b.rt.ledger.parcel("P-9")).toBeUndefined();
    // Within the clock-skew tolerance an expiry just passed is still honoured.
    const late = await router.handle("reserve", JSON.stringify({ id: "b5", args: { parcel: "P-9", recipient: "p-1001", size: "M" }, issuedAt: T0 - 60_000, expiresAt: T0 - 30_000 }));
    expect(late.ok).toBe(true);
  });

  it("with a server key: unsigned or badly signed commands are unauthorized and raise an alarm", async () => {
    const b = await banks.open();
    const { router } = routerFor(b, { signed: true });
    const base = { id: "s1", args: { parcel: "P-5", recipient: "p-1001", size: "S" }, issuedAt: Date.now(), expiresAt: Date.now() + 60_000 };
    expect(await router.handle("reserve", JSON.stringify(base))).toMatchObject({ ok: false, error: { code: "unauthorized" } });
    const tampered = { ...signed("reserve", base), args: { ...base.args, recipient: "p-1002" } };
    expect(await router.handle("reserve", JSON.stringify(tampered))).toMatchObject({ ok: false, error: { code: "unauthorized", message: "signature does not verify" } });
    // A signature made for another command name does not carry over.
    expect(await router.handle("cancel", JSON.stringify(signed("reserve", { ...base, args: { parcel: "P-5" } })))).toMatchObject({ ok: false });
    const stranger = generateKeyPairSync("ed25519");
    expect(await router.handle("reserve", JSON.stringify(signed("reserve", { ...base, id: "s3" }, stranger.privateKey)))).toMatchObject({ ok: false });
    expect(b.rt.ledger.parcel("P-5")).toBeUndefined();
    expect(b.events("alarm.unauthorized_command").map((e) => e.data)).toEqual([
      { name: "reserve", id: "s1", reason: "unsigned", message: "reserve must be signed" },
      { name: "reserve", id: "s1", reason: "signature", message: "signature does not verify" },
      { name: "cancel", id: "s1", reason: "signature", message: "signature does not verify" },
      { name: "reserve", id: "s3", reason: "signature", message: "signature does not verify" },
    ]);
    // The genuine one runs; without expiresAt a signed command is valid for the maximum lifetime; a snapshot needs no signature.
    expect(await router.handle("reserve", JSON.stringify(signed("reserve", { ...base, id: "s4" })))).toMatchObject({ ok: true });
    const noExpiry = signed("reserve", { id: "s2", args: { ...base.args, parcel: "P-4" }, issuedAt: Date.now() });
    expect(await router.handle("reserve", JSON.stringify(noExpiry))).toMatchObject({ ok: true });
    expect(await router.handle("snapshot", JSON.stringify({ id: "s5", args: {}, issuedAt: Date.now() }))).toMatchObject({ ok: true });
  });

  it("reserve answers no_fit when nothing of the size is free, and cancel frees a reservation", async () => {
    const b = await banks.open((cfg) => {
      cfg.policies = { ...cfg.policies, offerLarger: false };
    });
    const { send } = routerFor(b);
    const large = b.rt.ledger.compartments().filter((c) => c.size === "L").length;
    expect(large).toBeGreaterThan(0);
    for (let i = 0; i < large; i++) expect((await send("reserve", { parcel: `X-${i}`, recipient: "p-1002", size: "L" })).ok).toBe(true);
    expect(await send("reserve", { parcel: "X-full", recipient: "p-1002", size: "L" })).toMatchObject({ ok: false, error: { code: "no_fit" } });
    expect(b.events("assignment.failed").at(-1)?.parcel).toBe("X-full");
    const c = b.rt.ledger.parcel("X-0")!.compartmentId!;
    expect(await send("cancel", { parcel: "X-0" })).toEqual({ id: expect.any(String), ok: true, result: { parcel: "X-0", compartment: c } });
    expect(b.rt.ledger.compartment(c)).toMatchObject({ state: "free", parcelId: null });
    expect(await send("reserve", { parcel: "X-again", recipient: "p-1002", size: "L" })).toMatchObject({ ok: true, result: { compartment: c } });
    expect(await send("reserve", { parcel: "X-1", recipient: "nobody", size: "S" })).toMatchObject({ ok: false, error: { code: "illegal_transition" } });
    expect(await send("reserve", { parcel: "Y-1", recipient: "nobody", size: "S" })).toMatchObject({ ok: false, error: { code: "unknown_person" } });
  });

  it("issue-code replaces a parcel's code (drawn and sealed, or supplied); revoke-code stops it", async () => {
    const b = await banks.open(withSealKey);
    const { send } = routerFor(b);
    const compartment = await reserveAndDeposit(b, send, "P-200");
    b.hw.keypad.keys("*");
    const firstCode = openSealed(b.events("parcel.deposited").at(-1)!.data.sealedCode as SealedBox, sealKeys.privateKey, "P-200");
    const issued = await send("issue-code", { parcel: "P-200" });
    expect(issued).toMatchObject({ ok: true, result: { parcel: "P-200" } });
    const ev = b.rt.ledger.eventsFrom((issued as { result: { seq: number } }).result.seq, 1)[0]!;
    expect(ev.type).toBe("code.issued");
    const second = openSealed(ev.data.sealedCode as SealedBox, sealKeys.privateKey, "P-200");
    expect(second).not.toBe(firstCode);
    b.hw.keypad.keys(`${firstCode}#`);
    expect(b.screen()).toContain("not valid");
    await banks.advance(5000);
    expect(await send("issue-code", { parcel: "P-200", code: "123456" })).toMatchObject({ ok: false, error: { code: "bad_input" } });
    expect(await send("issue-code", { parcel: "P-200", code: "73918264" })).toMatchObject({ ok: true });
    expect(await send("revoke-code", { parcel: "P-200" })).toMatchObject({ ok: true, result: { revoked: 1 } });
    b.hw.keypad.keys("73918264#");
    expect(b.rt.ledger.compartment(compartment)?.state).toBe("occupied");
    expect(await send("issue-code", { parcel: "P-200", code: "73918264" })).toMatchObject({ ok: true });
    await banks.advance(60_000);
    b.hw.keypad.keys("73918264#");
    expect(b.rt.ledger.compartment(compartment)?.state).toBe("unloading");
  });

  it("open with a parcel is the forgotten-code pickup; without one it is an audited override", async () => {
    const b = await banks.open();
    const { send } = routerFor(b);
    const compartment = await reserveAndDeposit(b, send, "P-300");
    b.hw.keypad.keys("*");
    const pending = send("open", { compartment, parcel: "P-300", reason: "recipient called: forgot code" });
    await banks.advance(300);
    expect(await pending).toMatchObject({ ok: true, result: { compartment, parcel: "P-300" } });
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    expect(b.rt.ledger.parcel("P-300")).toMatchObject({ status: "picked_up", collectVia: "remote" });
    expect(await send("open", { compartment, parcel: "P-300", reason: "again please" })).toMatchObject({ ok: false, error: { code: "illegal_transition" } });
    const override = send("open", { compartment: "A02", reason: "technician check" });
    await banks.advance(300);
    expect(await override).toMatchObject({ ok: true, result: { compartment: "A02", parcel: null } });
    expect(b.events("admin.open").at(-1)).toMatchObject({ compartment: "A02", actor: "server" });
    // A jammed lock answers lock_fault.
    b.hw.locks.jammed.add(b.rt.bank.layoutOf("A03").lock);
    const jammed = send("open", { compartment: "A03", reason: "check" });
    await banks.advance(3000);
    expect(await jammed).toMatchObject({ ok: false, error: { code: "lock_fault" } });
  });

  it("directory upserts give badges at once and a removal stops them at once", async () => {
    const b = await banks.open((cfg) => (cfg.people = { owner: "server" }));
    const { send } = routerFor(b);
    const r = await send("directory", {
      upserts: [{ id: "p-9", name: "Kim", roles: ["recipient", "courier"], number: "1009", badges: ["0badcafe"], active: true }],
    });
    expect(r).toMatchObject({ ok: true, result: { upserted: 1, removed: 0 } });
    expect(b.rt.bank.personByBadge("T1", "0BADCAFE").id).toBe("p-9");
    expect(await send("directory", { removals: ["p-9", "nobody"] })).toMatchObject({ ok: true, result: { upserted: 0, removed: 1 } });
    expect(() => b.rt.bank.personByBadge("T1", "0BADCAFE")).toThrow(/not valid/);
    // A badge live for someone else fails the whole batch.
    expect(
      await send("directory", {
        upserts: [
          { id: "p-10", name: "Lee", roles: ["recipient"], active: true },
          { id: "p-11", name: "Max", roles: ["recipient"], badges: ["04A1B2C3"], active: true },
        ],
      }),
    ).toMatchObject({ ok: false, error: { code: "bad_input" } });
    expect(b.rt.ledger.person("p-10")).toBeUndefined();
  });

  it("set-compartment disables and resizes; policy changes persist across a restart", async () => {
    let b = await banks.open();
    let { send } = routerFor(b);
    expect(await send("set-compartment", { compartment: "A02", enabled: false, reason: "hinge loose" })).toMatchObject({
      ok: true,
      result: { id: "A02", enabled: false },
    });
    expect(await send("set-compartment", { compartment: "A03", size: "M" })).toMatchObject({ ok: true, result: { id: "A03", size: "M" } });
    expect(await send("policy", { policies: { expiryHours: 96 }, lockout: { threshold: 3 } })).toMatchObject({
      ok: true,
      result: { policies: { expiryHours: 96 }, lockout: { threshold: 3 } },
    });
    expect(await send("policy", { policies: { temperatureReadS: 1 } })).toMatchObject({ ok: false, error: { code: "bad_input" } });
    const dir = b.dir;
    await b.rt.stop();
    b = await banks.open(undefined, dir);
    ({ send } = routerFor(b));
    expect(b.rt.ledger.compartment("A02")?.enabled).toBe(false);
    expect(b.rt.ledger.compartment("A03")?.size).toBe("M");
    const snap = await send("snapshot", {});
    expect(snap.ok && (snap.result as { compartments: unknown[] }).compartments.length).toBe(b.rt.layout.length);
    expect(await send("policy", {})).toMatchObject({ ok: true, result: { policies: { expiryHours: 96 }, lockout: { threshold: 3 } } });
  });

  it("replay counts the events it will publish from a seq", async () => {
    const b = await banks.open();
    const { send, replayed } = routerFor(b);
    const head = b.rt.ledger.headSeq;
    expect(await send("replay", { fromSeq: head - 2, limit: 10 })).toMatchObject({ ok: true, result: { fromSeq: head - 2, count: 3, headSeq: head } });
    expect(replayed).toEqual([head - 2, 10]);
  });
});
