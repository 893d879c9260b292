// Between kills, what a technician and the server would do so the bank does not silt up with what
// the kills left behind (24 compartments, 50 kills):
//
//   fault (a pickup whose outcome was unknown at the restart)  set-compartment enabled (signed)
//   stored parcel nobody holds a live code for                 open with parcel (remote pickup)
//   parcel still waiting for its recipient number              staff removal at the keypad
//   reservations, when few compartments are free               cancel
//
// Each step is itself checked: its reply, its unlock (the monitor), the door, the status it leaves.
import { join } from "node:path";
import Database from "better-sqlite3";
import { CompartmentRow } from "../src/admin/protocol.js";
import { AdminClient } from "../src/cli/client.js";
import { display, STEP_MS, within, type ServerLink, type SimLink } from "./kill-clients.js";
import { signIn } from "./kill-load.js";
import type { Model } from "./kill-model.js";

export interface Technician {
  sim: SimLink;
  server: ServerLink;
  model: Model;
  adminPath: string;
  dataDir: string;
  staffPin: string;
}

export async function tidyUp(t: Technician): Promise<void> {
  const { model } = t;
  model.phase = "technician";
  for (const row of await compartments(t)) {
    if (row.state !== "fault") continue;
    const reply = await within(t.server.send("set-compartment", { compartment: row.id, enabled: true, reason: "kill harness: inspected after a restart" }).reply, STEP_MS);
    if (!reply?.ok) model.violation("a held compartment can be put back", `${row.id} (${row.faultReason ?? "fault"}): ${JSON.stringify(reply ?? "no reply")}`);
    else model.counters.faultsCleared++;
  }
  const rows = await compartments(t);
  for (const p of waitingParcels(t.dataDir)) {
    const row = rows.find((r) => r.id === p.compartment);
    if (!row || row.state !== "occupied") continue;
    const code = model.codeOfParcel.get(p.id);
    const live = code !== undefined && model.codes.get(code)?.state === "live";
    if (p.status === "stored" && !live) await remotePickup(t, p.id, row.id);
    if (p.status === "awaiting_recipient") await staffRemoval(t, p.id, row.id, row.keypad);
  }
  const free = (await compartments(t)).filter((r) => r.state === "free" && r.enabled).length;
  if (free < 8) {
    for (const res of model.unclaimed()) {
      res.state = "cancelling";
      await within(t.server.send("cancel", { parcel: res.parcel }).reply, STEP_MS);
    }
  }
  model.phase = "idle";
}

async function compartments(t: Technician): Promise<CompartmentRow[]> {
  const admin = await AdminClient.connect(t.adminPath);
  try {
    const r = (await admin.request("compartments", {}, "kill-harness")) as { compartments: unknown[] };
    return r.compartments.map((c) => CompartmentRow.parse(c));
  } finally {
    admin.close();
  }
}

function waitingParcels(dataDir: string): { id: string; status: string; compartment: string }[] {
  const db = new Database(join(dataDir, "ledger.db"), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare("SELECT id, status, compartment_id AS compartment FROM parcels WHERE status IN ('stored', 'awaiting_recipient') AND compartment_id IS NOT NULL")
      .all() as { id: string; status: string; compartment: string }[];
  } finally {
    db.close();
  }
}

/** The server opens for the recipient (a forgotten code); closing the door records the pickup, and any code of the parcel dies. */
async function remotePickup(t: Technician, parcel: string, compartment: string): Promise<void> {
  const { sim, model } = t;
  model.expect(compartment);
  const m = sim.mark();
  const reply = await within(t.server.send("open", { compartment, parcel, reason: "kill harness: recipient without a code" }).reply, STEP_MS);
  if (!reply?.ok) {
    model.unexpect(compartment);
    return model.violation("the server can hand a parcel over", `${parcel} in ${compartment}: ${JSON.stringify(reply ?? "no reply")}`);
  }
  await sim.waitFor((e) => e.ev === "door" && e.compartment === compartment && e.state === "open", { from: m, what: `door ${compartment} open` });
  const m2 = sim.mark();
  sim.send({ op: "door", compartment, state: "closed" });
  await sim.waitFor((e) => e.ev === "state" && e.compartments.some((c) => c.id === compartment && c.state === "free"), { from: m2, what: `${compartment} free` });
  model.unexpect(compartment);
  model.takenOut.set(parcel, "picked_up");
  const code = model.codeOfParcel.get(parcel);
  const rec = code === undefined ? undefined : model.codes.get(code);
  if (rec) model.markUsed(rec); // revoked with the pickup: must never open again either
  model.counters.remotePickups++;
}

/** Staff at the keypad: menu 2, door number, door opens, close it, no shelf. */
async function staffRemoval(t: Technician, parcel: string, compartment: string, keypad: string): Promise<void> {
  const { sim, model } = t;
  await signIn(sim, t.staffPin, "1 Deposit 2 Remove");
  let m = sim.mark();
  sim.send({ op: "keys", keys: "2" });
  await sim.waitFor(display("Remove: door no.?"), { from: m, what: "door prompt" });
  model.expect(compartment);
  m = sim.mark();
  sim.send({ op: "keys", keys: `${keypad}#` });
  await sim.waitFor((e) => e.ev === "door" && e.compartment === compartment && e.state === "open", { from: m, what: `door ${compartment} open` });
  m = sim.mark();
  sim.send({ op: "door", compartment, state: "closed" });
  await sim.waitFor(display(`Removed from ${compartment}`), { from: m, what: "shelf prompt" });
  model.unexpect(compartment);
  m = sim.mark();
  sim.send({ op: "keys", keys: "#" });
  await sim.waitFor(display("Enter code"), { from: m, what: "idle screen" });
  model.takenOut.set(parcel, "removed");
  model.counters.staffRemovals++;
}
