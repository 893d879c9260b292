// The load the kill lands in: one person at a time at the keypad (a bank has one) and the server
// sending commands meanwhile. Every step waits for what a person would see before the next one, so
// the model only ever records what was acknowledged; a kill leaves the step in flight "in doubt".
//
//   keypad:  courier deposit (*2468# size, door, recipient#) │ pickup by a code it was sent │
//            wrong code │ deposit of a reservation (*2468#, scan) │ (pause)
//   server:  reserve │ cancel an unclaimed reservation │ snapshot     (signed, replies by id)
import { display, Killed, Stalled, STEP_MS, within, type ServerLink, type SimLink } from "./kill-clients.js";
import type { CodeRecord, Model, Reservation } from "./kill-model.js";

/** mulberry32: a seeded stream of [0, 1) for the choices and the kill times. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface LoadContext {
  sim: SimLink;
  server: ServerLink;
  model: Model;
  rng: () => number;
  /** Set just before the SIGKILL: what fails after it is the kill, not the bank. */
  killed: () => boolean;
  /** The courier's and recipients' keypad numbers (config seed). */
  courierPin: string;
  recipients: readonly string[];
  /** Wrong codes left for this cycle: failures only decay after decayMs without one, so they add up over a run. */
  wrongCodes: number;
}

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

/** One person after the other at the keypad until the daemon dies. */
export async function keypadLoad(ctx: LoadContext): Promise<void> {
  const { sim, model } = ctx;
  while (!sim.closed) {
    try {
      await oneAction(ctx);
    } catch (e) {
      if (e instanceof Killed || sim.closed || ctx.killed()) return;
      if (!(e instanceof Stalled)) throw e;
      model.violation("keypad answers", `${model.phase}: ${e.message}`);
      await recover(ctx);
    }
  }
}

async function oneAction(ctx: LoadContext): Promise<void> {
  const { sim, model, rng } = ctx;
  model.phase = "idle";
  const view = sim.lastState() ?? [];
  const free = view.filter((c) => c.state === "free" && c.enabled && c.id !== "A01" && c.id !== "B01").length;
  const live = model.liveCodes().filter((c) => view.find((v) => v.id === c.compartment)?.state === "occupied");
  const reserved = model.unclaimed();
  const r = rng();
  // More pickups as the bank fills, more deposits as it empties.
  const depositWeight = free >= 3 ? 0.4 : 0.05;
  if (r < 0.08 && ctx.wrongCodes > 0) {
    ctx.wrongCodes--;
    return wrongCode(ctx);
  }
  if (r < 0.2 && reserved.length) return reservedDeposit(ctx, reserved[0]!);
  if (r < 0.2 + depositWeight || !live.length) return free ? deposit(ctx) : sleep(100);
  return pickup(ctx, pick(rng, live));
}

/** The courier deposits by size and names the recipient; acknowledged by the recipient's notify. */
async function deposit(ctx: LoadContext): Promise<void> {
  const { sim, model, rng } = ctx;
  model.phase = "deposit:pin";
  await signIn(sim, ctx.courierPin, "Parcel size?");
  model.phase = "deposit:size";
  model.expect("*");
  let m = sim.mark();
  const x = rng();
  sim.send({ op: "keys", keys: x < 0.6 ? "1" : x < 0.9 ? "2" : "3" });
  const first = await sim.waitFor((e) => e.ev === "unlock" || display(" free")(e) || display("unavailable")(e), { from: m, what: "unlock after size" });
  if (first.ev !== "unlock") {
    model.unexpect("*");
    model.counters.noFit++;
    return toIdle(ctx);
  }
  const c = first.compartment;
  await sim.waitFor((e) => e.ev === "door" && e.compartment === c && e.state === "open", { from: m, what: `door ${c} open` });
  model.phase = "deposit:door-open";
  m = sim.mark();
  sim.send({ op: "door", compartment: c, state: "closed" });
  model.phase = "deposit:door-closed";
  await sim.waitFor(display("Recipient number?"), { from: m, what: "recipient prompt" });
  model.unexpect(c);
  model.phase = "deposit:recipient";
  m = sim.mark();
  sim.send({ op: "keys", keys: `${pick(rng, ctx.recipients)}#` });
  const n = await sim.waitFor<"notify">((e) => e.ev === "notify", { from: m, what: "notify" });
  if (n.compartment !== c) model.violation("notify names the door", `deposit into ${c}, notify says ${n.compartment}`);
  model.depositAcked(n.parcel, n.code, n.compartment, "keypad");
  model.phase = "deposit:stored";
  await sim.waitFor(display("Stored in"), { from: m, what: "Stored in" });
  return toIdle(ctx);
}

/** A courier scans a parcel the server reserved: its door opens, the recipient is notified at the close. */
async function reservedDeposit(ctx: LoadContext, res: Reservation): Promise<void> {
  const { sim, model } = ctx;
  res.state = "claimed";
  model.phase = "reserved:pin";
  await signIn(sim, ctx.courierPin, "Parcel size?");
  model.phase = "reserved:scan";
  const c = res.compartment!;
  model.expect(c);
  let m = sim.mark();
  sim.send({ op: "scan", text: res.parcel });
  const first = await sim.waitFor((e) => (e.ev === "unlock" && e.compartment === c) || display("reservation")(e) || display("faulty")(e) || display("unavailable")(e), {
    from: m,
    what: `unlock of reserved ${c}`,
  });
  if (first.ev !== "unlock") {
    model.unexpect(c);
    model.violation("an acknowledged reservation takes its parcel", `${res.parcel} in ${c}: ${first.ev === "display" ? first.lines.join(" | ") : ""}`);
    res.state = "refused";
    return toIdle(ctx);
  }
  await sim.waitFor((e) => e.ev === "door" && e.compartment === c && e.state === "open", { from: m, what: `door ${c} open` });
  model.phase = "reserved:door-open";
  m = sim.mark();
  sim.send({ op: "door", compartment: c, state: "closed" });
  model.phase = "reserved:door-closed";
  const n = await sim.waitFor<"notify">((e) => e.ev === "notify" && e.parcel === res.parcel, { from: m, what: "notify" });
  model.unexpect(c);
  model.depositAcked(n.parcel, n.code, n.compartment, "reserved");
  res.state = "deposited";
  model.phase = "reserved:stored";
  await sim.waitFor(display("Stored in"), { from: m, what: "Stored in" });
  return toIdle(ctx);
}

/** A recipient types the code they were sent; acknowledged by "Thank you" once the door is shut. */
async function pickup(ctx: LoadContext, rec: CodeRecord): Promise<void> {
  const { sim, model } = ctx;
  rec.state = "typed";
  model.phase = "pickup:typed";
  model.expect(rec.compartment);
  let m = sim.mark();
  sim.send({ op: "keys", keys: `${rec.code}#` });
  const answer = await sim.waitFor<"display">(
    (e) => ["open", "not valid", "Too many", "faulty", "unavailable", "Pickup time"].some((t) => display(t)(e)),
    { from: m, what: "answer to a code" },
  );
  if (!answer.lines.some((l) => l.includes(`Door ${rec.compartment} open`))) {
    model.unexpect(rec.compartment);
    const text = answer.lines.join(" | ");
    if (/Too many/.test(text)) {
      rec.state = "live";
      model.counters.lockedOut++;
      return sleep(1100);
    }
    if (/faulty|unavailable/.test(text)) {
      rec.state = "live"; // the door, not the code: it stays valid
      return;
    }
    model.markUsed(rec); // refused or elsewhere: never typed again
    model.violation("an acknowledged code opens its door", `${rec.code} (${rec.parcel} in ${rec.compartment}, from ${rec.source}): ${text}`);
    return;
  }
  model.markUsed(rec);
  model.phase = "pickup:unlocking";
  await sim.waitFor((e) => e.ev === "door" && e.compartment === rec.compartment && e.state === "open", { from: m, what: `door ${rec.compartment} open` });
  model.phase = "pickup:door-open";
  m = sim.mark();
  sim.send({ op: "door", compartment: rec.compartment, state: "closed" });
  model.phase = "pickup:door-closed";
  await sim.waitFor(display("Thank you"), { from: m, what: "Thank you" });
  model.unexpect(rec.compartment);
  model.pickupAcked(rec.parcel);
}

/** Seven digits: never a live code (codes have eight). */
async function wrongCode(ctx: LoadContext): Promise<void> {
  const { sim, model } = ctx;
  model.phase = "wrong-code";
  const m = sim.mark();
  sim.send({ op: "keys", keys: `${1_000_000 + Math.floor(ctx.rng() * 9_000_000)}#` });
  const answer = await sim.waitFor<"display">((e) => display("not valid")(e) || display("Too many")(e), { from: m, what: "refusal" });
  model.counters.wrongCodes++;
  if (answer.lines.some((l) => l.includes("Too many"))) {
    model.counters.lockedOut++;
    await sleep(1100);
  }
}

/**
 * `*PIN#` until the person's first screen shows. Wrong codes and probes add up to the lockout
 * threshold over a long run; while the keypad is locked a PIN is refused unchecked ("Too many
 * tries"), and a courier waits and tries again, as one would.
 */
export async function signIn(sim: SimLink, pin: string, screen: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const m = sim.mark();
    sim.send({ op: "keys", keys: `*${pin}#` });
    const shown = await sim.waitFor<"display">((e) => display(screen)(e) || display("Too many")(e), { from: m, what: screen });
    if (!shown.lines.some((l) => l.includes("Too many"))) return;
    if (attempt === 5) throw new Stalled(`keypad still locked after ${attempt} waits`);
    await sleep(1100);
  }
}

/** Back to the idle screen: `*` ends a courier's session from "Another parcel?" and from a size menu. */
async function toIdle(ctx: LoadContext): Promise<void> {
  const { sim } = ctx;
  const m = sim.mark();
  sim.send({ op: "keys", keys: "*" });
  await sim.waitFor(display("Enter code"), { from: m, what: "idle screen" });
}

/** After a stall on a live daemon: shut every open door, clear the dialogue, forget expectations. */
async function recover(ctx: LoadContext): Promise<void> {
  const { sim, model } = ctx;
  try {
    for (const c of (await sim.state()).filter((v) => v.door === "open")) sim.send({ op: "door", compartment: c.id, state: "closed" });
    await sleep(200);
    const m = sim.mark();
    sim.send({ op: "keys", keys: "**" });
    await sim.waitFor(display("Enter code"), { from: m, timeoutMs: 8000, what: "idle screen" });
  } catch {
    // the kill came meanwhile, or the keypad is gone for good: the next step says which
  }
  model.expectNothing();
}

/** The server meanwhile: reservations, their cancellation, snapshots. Replies are applied by Model.applyReply. */
export async function serverLoad(ctx: LoadContext): Promise<void> {
  const { server, model, rng } = ctx;
  let n = 0;
  while (!ctx.killed() && !ctx.sim.closed) {
    const r = rng();
    const unclaimed = model.unclaimed();
    let pending: Promise<unknown>;
    if (r < 0.45 && unclaimed.length < 3) {
      const parcel = `R-${model.cycle}-${++n}`;
      model.reservations.set(parcel, { parcel, compartment: null, state: "sent" });
      pending = server.send("reserve", { parcel, recipient: pick(rng, ["p-1002", "p-1003"]), size: rng() < 0.7 ? "S" : "M" }).reply;
    } else if (r < 0.7 && unclaimed.length) {
      const res = unclaimed[0]!;
      res.state = "cancelling";
      pending = server.send("cancel", { parcel: res.parcel }).reply;
    } else {
      pending = server.send("snapshot", {}).reply;
    }
    const answered = await Promise.race([within(pending, STEP_MS), killedWatch(ctx)]);
    if (answered === undefined && !ctx.killed() && !ctx.sim.closed) model.violation("commands are answered", `no reply within ${STEP_MS} ms (cycle ${model.cycle})`);
    await sleep(60 + rng() * 240);
  }
}

/** Resolves (with undefined) once the kill flag is up. */
async function killedWatch(ctx: LoadContext): Promise<undefined> {
  while (!ctx.killed()) await sleep(20);
  return undefined;
}
