// Alarm: many wake-ups from one timer, on the loop model (test/helpers/loop-model.ts), whose timers
// fire up to a millisecond before their nominal time as Node's do.
import { describe, expect, it } from "vitest";
import { ALARM_COALESCE_MS, Alarm } from "../../../src/drivers/alarm.js";
import { loopModel } from "../../helpers/loop-model.js";

describe("Alarm", () => {
  it("runs its entries in time order from one timer, each at its time or at most three milliseconds after it (two on a real loop), never inside the call", () => {
    for (const early of [0, 0.5, 0.99]) {
      const m = loopModel(() => early);
      const alarm = new Alarm(m.s);
      const ran: { name: string; at: number; when: number }[] = [];
      const add = (name: string, at: number) => alarm.at(at, () => ran.push({ name, at, when: m.now }));
      add("b", 10);
      add("a", 5.5);
      add("c", 20.25);
      add("b2", 10); // same time as b: after it
      expect(ran).toEqual([]);
      // b armed the timer, a (earlier) re-armed it, c and b2 (later) did not.
      expect(m.log).toHaveLength(2);
      m.run();
      expect(ran.map((r) => r.name)).toEqual(["a", "b", "b2", "c"]);
      for (const r of ran) {
        expect(r.when, `${r.name} early ${early}`).toBeGreaterThanOrEqual(r.at - ALARM_COALESCE_MS);
        expect(r.when, `${r.name} early ${early}`).toBeLessThanOrEqual(r.at + 3);
      }
      // One wake-up each for a, b with b2, and c; none found nothing to do.
      expect(m.wakes).toBe(3);
      expect(alarm.counts).toEqual({ wakeups: 3, idle: 0 });
    }
  });

  it("runs entries due within a millisecond of each other in one wake-up", () => {
    const m = loopModel(() => 0);
    const alarm = new Alarm(m.s);
    const ran: string[] = [];
    alarm.at(10, () => ran.push("poll"));
    alarm.at(10.6, () => ran.push("deadline"));
    alarm.at(14, () => ran.push("later"));
    m.run();
    expect(ran).toEqual(["poll", "deadline", "later"]);
    expect(m.wakes).toBe(2);
  });

  it("a cancelled entry does not run, also when one due in the same wake-up cancels it; cancelling the last entry takes its timer away", () => {
    const m = loopModel(() => 0.3);
    const alarm = new Alarm(m.s);
    const ran: string[] = [];
    alarm.at(5, () => ran.push("gone"))();
    let cancelSecond: () => void = () => undefined;
    alarm.at(8, () => {
      ran.push("first");
      cancelSecond();
    });
    cancelSecond = alarm.at(8.5, () => ran.push("second"));
    const cancelLast = alarm.at(30, () => ran.push("last"));
    m.event(12, () => cancelLast());
    m.run();
    expect(ran).toEqual(["first"]);
    expect(alarm.size).toBe(0);
    // The wake-up at 8 only: the timer for 5 was re-armed for 8, the one for 30 cleared.
    expect(m.wakes).toBe(1);
    cancelSecond(); // twice: nothing
    expect(alarm.size).toBe(0);
  });

  it("an entry added for now by a running one waits for the next wake-up; one that throws does not stop the others", () => {
    const m = loopModel(() => 0);
    const alarm = new Alarm(m.s);
    const ran: string[] = [];
    alarm.at(3, () => {
      ran.push("a");
      alarm.at(m.now, () => ran.push("again"));
      throw new Error("boom");
    });
    alarm.at(3, () => ran.push("b"));
    const thrown: unknown[] = [];
    // The model's loop calls the timer's callback directly: the throw reaches it, after b ran.
    try {
      m.run();
    } catch (e) {
      thrown.push(e);
      m.run();
    }
    expect((thrown[0] as Error).message).toBe("boom");
    expect(ran).toEqual(["a", "b", "again"]);
    expect(alarm.counts.wakeups).toBe(2);
  });

  it("nextAt names the earliest entry due at or after a time", () => {
    const m = loopModel(() => 0);
    const alarm = new Alarm(m.s);
    alarm.at(50, () => undefined);
    const cancel = alarm.at(125, () => undefined);
    expect(alarm.nextAt(0)).toBe(50);
    expect(alarm.nextAt(103)).toBe(125);
    cancel();
    expect(alarm.nextAt(103)).toBeUndefined();
  });
});
