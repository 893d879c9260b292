// App passes at the simulated bank's scanner (bank/passes.ts): a pass the server signed opens its
// parcel's compartment once, offline; a screenshot replayed, an expired pass, one for another
// bank, a tampered one, or one for a parcel already picked up is refused with its own message and
// a code.rejected, and counts toward the keypad's lockout like a wrong code.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodePass, type PassFields } from "../../../src/domain/pass.js";
import { publicKeyB64 } from "../../../src/sync/seal.js";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";

const { open: testBank, advance } = fakeClockBanks();
const keys = generateKeyPairSync("ed25519");

async function passBank(patch?: (cfg: Record<string, any>) => void): Promise<TestBank> {
  return (await testBank((cfg) => {
    cfg.sync = { ...cfg.sync, serverPublicKey: publicKeyB64(keys.publicKey) };
    patch?.(cfg);
  }));
}

/** Whole seconds, as on the wire. */
const secs = (ms: number) => Math.floor(ms / 1000) * 1000;

function pass(b: TestBank, f: Partial<PassFields> & { parcelId: string }, key = keys.privateKey): string {
  const now = secs(Date.now());
  return encodePass({ kind: "pickup", site: b.config.device.site, device: b.config.device.id, notBefore: now - 60_000, expiresAt: now + 86_400_000, ...f }, key);
}

const lockOf = (b: TestBank, id: string) => b.rt.bank.layoutOf(id).lock;

describe("app passes", () => {
  it("a pickup pass opens its parcel's door once, offline; the screenshot replayed later opens nothing", async () => {
    const b = await passBank();
    const d = await keypadDeposit(b, advance);
    const token = pass(b, { parcelId: d.parcel });
    const unlocked: number[] = [];
    b.hw.on("unlock", (ch) => unlocked.push(ch));
    b.hw.keypad.scan(token);
    await advance(300);
    expect(unlocked).toEqual([lockOf(b, d.compartment)]);
    expect(b.screen()).toContain(`Door ${d.compartment} open`);
    const started = b.events("pickup.started").at(-1)!;
    expect(started).toMatchObject({ parcel: d.parcel, actor: "p-1001", data: { via: "app" } });
    b.hw.doors.set(lockOf(b, d.compartment), "closed");
    expect(b.events("parcel.picked_up").at(-1)).toMatchObject({ parcel: d.parcel, actor: "p-1001" });
    expect(b.rt.ledger.parcel(d.parcel)!.status).toBe("picked_up");

    await advance(60_000);
    b.hw.keypad.scan(token); // the same QR code again (a screenshot)
    await advance(300);
    expect(unlocked).toHaveLength(1);
    expect(b.screen()).toContain("Pass already used");
    expect(b.events("code.rejected").at(-1)!.data).toMatchObject({ kind: "pass", reason: "already_used" });
  });

  it("a second pass for a parcel already picked up is refused: no parcel here", async () => {
    const b = await passBank();
    const d = await keypadDeposit(b, advance);
    b.hw.keypad.keys(`${d.code}#`);
    await advance(300);
    b.hw.doors.set(lockOf(b, d.compartment), "closed");
    b.hw.keypad.scan(pass(b, { parcelId: d.parcel }));
    await advance(300);
    expect(b.screen()).toContain("No parcel here");
    expect(b.events("code.rejected").at(-1)!.data).toMatchObject({ kind: "pass", reason: "parcel_not_stored" });
  });

  it("refuses expired, not yet valid, another bank's, another key's and tampered passes, each with its message", async () => {
    const b = await passBank();
    const d = await keypadDeposit(b, advance);
    const now = secs(Date.now());
    const other = generateKeyPairSync("ed25519");
    const good = pass(b, { parcelId: d.parcel });
    const tampered = good.slice(0, 20) + (good[20] === "A" ? "B" : "A") + good.slice(21);
    const cases: [string, string, string][] = [
      [pass(b, { parcelId: d.parcel, notBefore: now - 7_200_000, expiresAt: now - 3_600_000 }), "expired", "Pass expired"],
      [pass(b, { parcelId: d.parcel, notBefore: now + 3_600_000, expiresAt: now + 7_200_000 }), "not_yet_valid", "Pass not valid yet"],
      [pass(b, { parcelId: d.parcel, device: "bank-99" }), "wrong_device", "another locker"],
      [pass(b, { parcelId: d.parcel, site: "elsewhere" }), "wrong_site", "another locker"],
      [pass(b, { parcelId: d.parcel }, other.privateKey), "bad_signature", "Pass not valid"],
      [tampered, "", "Pass not valid"],
    ];
    for (const [token, reason, text] of cases) {
      b.hw.keypad.scan(token);
      await advance(300);
      expect(b.screen(), reason).toContain(text);
      const rejected = b.events("code.rejected").at(-1)!.data;
      expect(rejected.kind).toBe("pass");
      if (reason) expect(rejected.reason).toBe(reason);
      else expect(["bad_signature", "malformed"]).toContain(rejected.reason);
      await advance(31_000); // past the lockout of the one before
    }
    expect(b.hw.locks.pulses).toBe(1); // the deposit's only
    expect(b.rt.ledger.parcel(d.parcel)!.status).toBe("stored");
    // The genuine pass still works once the lockout the refusals earned is over: a refusal spends nothing.
    await advance(3_600_000);
    b.hw.keypad.scan(good);
    await advance(300);
    expect(b.hw.locks.pulses).toBe(2);
  });

  it("refused passes count toward the keypad's lockout like wrong codes", async () => {
    const b = await passBank((cfg) => (cfg.lockout = { ...cfg.lockout, threshold: 3 }));
    const d = await keypadDeposit(b, advance);
    const expiredPass = pass(b, { parcelId: d.parcel, notBefore: secs(Date.now()) - 7_200_000, expiresAt: secs(Date.now()) - 3_600_000 });
    for (let i = 0; i < 3; i++) b.hw.keypad.scan(expiredPass);
    expect(b.events("terminal.locked_out")).toHaveLength(1);
    b.hw.keypad.scan(pass(b, { parcelId: d.parcel })); // a good one while locked: checked not at all
    await advance(300);
    expect(b.screen()).toContain("Too many tries");
    expect(b.hw.locks.pulses).toBe(1);
  });

  it("a pass whose door never opened (its lock board down) works again; the parcel's code too", async () => {
    const b = await passBank();
    const d = await keypadDeposit(b, advance);
    const token = pass(b, { parcelId: d.parcel });
    const other = b.rt.layout.find((l) => l.id !== d.compartment)!.id;
    void b.rt.technician.open(other, { user: "tech", reason: "test" }); // holds the one-coil budget
    b.hw.keypad.scan(token); // accepted: the board still answered
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("unloading");
    b.hw.setBoard("down"); // before the pass's pulse's turn: it goes unsent
    await advance(2000);
    expect(b.events("pickup.aborted").at(-1)).toMatchObject({ parcel: d.parcel, data: { reason: "lock unavailable" } });
    b.hw.setBoard("ok");
    await advance(31_000);
    b.hw.keypad.scan(token);
    await advance(300);
    expect(b.events("pickup.started").filter((e) => e.data.via === "app")).toHaveLength(2);
    expect(b.rt.ledger.compartment(d.compartment)!.state).toBe("unloading");
  });

  it("a courier's deposit pass opens the compartment the server reserved, once", async () => {
    const b = await passBank();
    const reserved = b.rt.ledger.transact((tx) => b.rt.remote.reserve(tx, { parcel: "R-77", recipient: "p-1002", size: "S" }));
    expect(reserved).toMatchObject({ parcel: "R-77" });
    const compartment = (reserved as { compartment: string }).compartment;
    const token = pass(b, { parcelId: "R-77", kind: "deposit" });
    b.hw.keypad.scan(token);
    await advance(300);
    expect(b.screen()).toContain(`Door ${compartment} open`);
    expect(b.events("deposit.started").at(-1)).toMatchObject({ parcel: "R-77", actor: "app", data: { via: "app", reserved: true } });
    b.hw.doors.set(lockOf(b, compartment), "closed");
    expect(b.screen()).toContain(`Stored in ${compartment}`);
    expect(b.rt.ledger.parcel("R-77")!.status).toBe("stored");
    await advance(31_000);
    b.hw.keypad.scan(token);
    await advance(300);
    expect(b.screen()).toContain("Pass already used");
    // A pickup pass is not a deposit pass: a reservation not yet deposited is no parcel to take.
    b.rt.ledger.transact((tx) => b.rt.remote.reserve(tx, { parcel: "R-78", recipient: "p-1002", size: "S" }));
    await advance(31_000);
    b.hw.keypad.scan(pass(b, { parcelId: "R-78" }));
    expect(b.screen()).toContain("No parcel here");
  });

  it("a bank without the server's key refuses every pass and says to use the code", async () => {
    const b = (await testBank());
    const d = await keypadDeposit(b, advance);
    b.hw.keypad.scan(pass(b, { parcelId: d.parcel }));
    await advance(300);
    expect(b.screen()).toContain("Passes not accepted");
    expect(b.hw.locks.pulses).toBe(1);
  });
});
