// What the ledger needs before the bank serves anyone: the seed people (their PINs and badges
// stored only as HMACs, on first start). The compartments of the config: bank/layout.ts.
import type { Config } from "../config/schema.js";
import { People } from "./people.js";
import type { Ledger } from "../ledger/ledger.js";

/** The simulator's demo people (seed.people), applied when the seed block changed: see People.seed. */
export function seedPeople(ledger: Ledger, people: Config["seed"]["people"], key: Buffer, now: number): void {
  new People({ ledger, deviceKey: key, owner: "lockerctl", now: () => now }).seed(people);
}
