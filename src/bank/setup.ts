// What the ledger needs before the bank serves anyone: the compartments of the config, and the
// seed people (their PINs and badges stored only as HMACs, on first start).
import type { CompartmentLayout, Config } from "../config/schema.js";
import { secretHash } from "../domain/credentials.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";

export function syncLayout(ledger: Ledger, layout: readonly CompartmentLayout[], now: number, log: Logger): void {
  const known = new Map(ledger.compartments().map((c) => [c.id, c]));
  const added = layout.filter((l) => !known.has(l.id));
  if (added.length) {
    ledger.transact((tx) => {
      for (const l of added) {
        tx.insertCompartment({ id: l.id, position: l.lock, size: l.size, refrigerated: l.refrigerated, accessible: l.accessible, since: now });
        tx.event({ type: "compartment.enabled", compartment: l.id, data: { size: l.size, added: true } });
      }
    });
  }
  const configured = new Set(layout.map((l) => l.id));
  for (const id of known.keys()) {
    if (!configured.has(id)) log.warn({ compartment: id }, "compartment in the ledger but not in the config: ignored");
  }
}

export function seedPeople(ledger: Ledger, people: Config["seed"]["people"], key: Buffer, now: number): void {
  if (!people.length || ledger.meta("seeded") === "1") return;
  ledger.transact((tx) => {
    for (const p of people) {
      tx.upsertPerson({ id: p.id, name: p.name, roles: p.roles, number: p.number ?? null, active: p.active }, now);
      if (p.pin) tx.insertCredential("pin", secretHash(key, "pin", p.pin), { personId: p.id }, now);
      if (p.badge) tx.insertCredential("badge", secretHash(key, "badge", p.badge), { personId: p.id }, now);
      tx.event({ type: "person.seeded", actor: p.id, data: { roles: p.roles, pin: !!p.pin, badge: !!p.badge } });
    }
    tx.setMeta("seeded", "1");
  });
}
