// The people directory lives in the ledger with one owner: lockerctl's changes (add, PIN, badges,
// disable) take effect at the keypad at once, each an event naming who made it and carrying no
// secret; the server's directory command is refused while lockerctl owns it, and the reverse. The
// simulator's seed follows its config block at every start.
import { describe, expect, it } from "vitest";
import { fakeClockBanks } from "../../helpers/bank.js";
import { routerFor } from "../../helpers/router.js";

const tech = { actor: "alice", data: { via: "lockerctl" } };

describe("people directory", () => {
  const banks = fakeClockBanks();

  it("lockerctl owns it without sync: a new courier's PIN works at once, a disabled one at once stops", async () => {
    const b = await banks.open();
    const people = b.rt.people;
    expect(people.owner).toBe("lockerctl");
    people.add({ id: "courier-2", name: "Dana Driver", roles: ["courier"] }, tech);
    expect(() => b.rt.bank.personByPin("T1", "5173")).toThrow();
    const view = people.setPin("courier-2", "5173", tech);
    expect(view).toMatchObject({ id: "courier-2", active: true, pin: true, badges: 0 });
    expect(b.rt.bank.personByPin("T1", "5173").id).toBe("courier-2");
    // At the keypad: the courier's menu.
    b.hw.keypad.keys("*5173#");
    expect(b.screen()).toMatch(/size|S\b/i);
    b.hw.keypad.keys("*");

    people.setBadges("courier-2", ["0badf00d"], tech);
    expect(b.rt.bank.personByBadge("T1", "0BADF00D").id).toBe("courier-2");

    // A new PIN replaces the old one.
    people.setPin("courier-2", "7391", tech);
    expect(() => b.rt.bank.personByPin("T1", "5173")).toThrow();
    expect(b.rt.bank.personByPin("T1", "7391").id).toBe("courier-2");

    people.setActive("courier-2", false, tech, "left the company");
    expect(() => b.rt.bank.personByPin("T1", "7391")).toThrow();
    expect(() => b.rt.bank.personByBadge("T1", "0BADF00D")).toThrow();
    expect(people.list().find((p) => p.id === "courier-2")).toMatchObject({ active: false, pin: false, badges: 0 });

    const events = b.events().filter((e) => e.type.startsWith("person.") && e.data.person === "courier-2");
    expect(events.map((e) => e.type)).toEqual(["person.added", "person.pin_set", "person.badge_set", "person.pin_set", "person.disabled"]);
    for (const e of events) expect(e).toMatchObject({ actor: "alice", data: { via: "lockerctl" } });
    expect(events.at(-1)!.data).toMatchObject({ pins: 1, badges: 1, reason: "left the company" });
    // No secret in any event.
    expect(JSON.stringify(events.map((e) => e.data))).not.toMatch(/5173|7391|0BADF00D/i);
  });

  it("a PIN that is easy to guess, malformed, or another person's is refused without saying whose", async () => {
    const b = await banks.open();
    const people = b.rt.people;
    people.add({ id: "courier-2", name: "Dana Driver", roles: ["courier"] }, tech);
    for (const bad of ["1234", "0000", "2020", "12a4", "123", "1234567890123"]) {
      expect(() => people.setPin("courier-2", bad, tech), bad).toThrow(expect.objectContaining({ code: "bad_input" }));
    }
    // 2468 is Casey Courier's (seeded): refused, and the message does not name Casey.
    let message = "";
    try {
      people.setPin("courier-2", "2468", tech);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/in use/);
    expect(message).not.toMatch(/courier-1|Casey/);
    expect(b.rt.bank.personByPin("T1", "2468").id).toBe("courier-1");
    // Numbers are unique; a person id is added once.
    expect(() => people.add({ id: "p-2000", name: "X", roles: ["recipient"], number: "1001" }, tech)).toThrow(/belongs to p-1001/);
    expect(() => people.add({ id: "courier-2", name: "X", roles: ["recipient"] }, tech)).toThrow(/exists/);
    // A disabled person gets no new PIN until enabled.
    people.setActive("courier-2", false, tech);
    expect(() => people.setPin("courier-2", "5173", tech)).toThrow(/disabled/);
    people.setActive("courier-2", true, tech);
    people.setPin("courier-2", "5173", tech);
    expect(b.rt.bank.personByPin("T1", "5173").id).toBe("courier-2");
  });

  it("one owner at a time: the server's directory command is refused while lockerctl owns the directory, and the reverse", async () => {
    let b = await banks.open();
    let { send } = routerFor(b);
    const upsert = { upserts: [{ id: "p-9", name: "Kim", roles: ["recipient"], badges: ["0badcafe"], active: true }] };
    expect(await send("directory", upsert)).toMatchObject({ ok: false, error: { code: "forbidden", message: expect.stringMatching(/lockerctl people/) } });
    expect(b.rt.ledger.person("p-9")).toBeUndefined();

    b = await banks.open((cfg) => (cfg.people = { owner: "server" }));
    ({ send } = routerFor(b));
    expect(() => b.rt.people.add({ id: "courier-2", name: "Dana", roles: ["courier"] }, tech)).toThrow(expect.objectContaining({ code: "forbidden" }));
    expect(() => b.rt.people.setPin("courier-1", "5173", tech)).toThrow(expect.objectContaining({ code: "forbidden" }));
    expect(await send("directory", upsert)).toMatchObject({ ok: true, result: { upserted: 1 } });
    const e = b.events("person.updated").at(-1)!;
    expect(e).toMatchObject({ actor: "server", data: { person: "p-9" } });
  });

  it("the simulator's seed follows its config block: a courier added later works, a removed person is disabled", async () => {
    let b = await banks.open();
    const dir = b.dir;
    expect(b.rt.bank.personByPin("T1", "2468").id).toBe("courier-1");
    const seeded = b.events("person.seeded").length;
    await b.rt.stop();
    const patch = (cfg: Record<string, any>) => {
      cfg.seed.people = cfg.seed.people.filter((p: { id: string }) => p.id !== "courier-1");
      cfg.seed.people.push({ id: "courier-2", name: "Dana Driver", roles: ["courier"], pin: "5173" });
    };
    b = await banks.open(patch, dir);
    expect(b.rt.bank.personByPin("T1", "5173").id).toBe("courier-2");
    expect(() => b.rt.bank.personByPin("T1", "2468")).toThrow();
    expect(b.events("person.disabled").at(-1)).toMatchObject({ actor: "config", data: { person: "courier-1", reason: "no longer in seed.people" } });
    // The same seed again: nothing written.
    const personEvents = () => b.events().filter((e) => e.type.startsWith("person.")).length;
    const before = personEvents();
    expect(before).toBeGreaterThan(seeded);
    await b.rt.stop();
    b = await banks.open(patch, dir);
    expect(personEvents()).toBe(before);
  });
});
