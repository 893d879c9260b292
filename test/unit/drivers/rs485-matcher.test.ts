// The request/response matcher, on fake time: the first matching frame wins, others are left for
// the caller's "unsolicited" path, and a missing reply is a HardwareTimeout at exactly its deadline.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ReplyMatcher } from "../../../src/drivers/rs485/matcher.js";
import { ErrorCode, LockerError, isLockerError } from "../../../src/errors.js";

interface Frame {
  board: number;
  cmd: number;
}

describe("ReplyMatcher", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("resolves with the first frame that matches board and command", async () => {
    const m = new ReplyMatcher<Frame>();
    const reply = m.wait((f) => f.board === 1 && f.cmd === 0x35, 100, "kerong #1 read status");
    expect(m.offer({ board: 0, cmd: 0x35 })).toBe(false);
    expect(m.offer({ board: 1, cmd: 0x31 })).toBe(false);
    expect(m.offer({ board: 1, cmd: 0x35 })).toBe(true);
    await expect(reply).resolves.toEqual({ board: 1, cmd: 0x35 });
    expect(m.size).toBe(0);
    expect(m.offer({ board: 1, cmd: 0x35 })).toBe(false);
  });

  it("times out with HardwareTimeout at the deadline, not before", async () => {
    const m = new ReplyMatcher<Frame>();
    const reply = m.wait(() => true, 100, "kerong #3 read status");
    const seen = vi.fn();
    reply.catch(seen);
    await vi.advanceTimersByTimeAsync(99);
    expect(seen).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    const e: unknown = seen.mock.calls[0]?.[0];
    expect(isLockerError(e, ErrorCode.HardwareTimeout)).toBe(true);
    expect((e as Error).message).toBe("no answer from kerong #3 read status within 100 ms");
    expect(m.size).toBe(0);
  });

  it("fails every waiter at once on cancelAll", async () => {
    const m = new ReplyMatcher<Frame>();
    const a = m.wait(() => true, 100, "a");
    const b = m.wait(() => true, 100, "b");
    m.cancelAll(new LockerError(ErrorCode.HardwareUnavailable, "port closed"));
    await expect(a).rejects.toMatchObject({ code: ErrorCode.HardwareUnavailable });
    await expect(b).rejects.toMatchObject({ code: ErrorCode.HardwareUnavailable });
    expect(vi.getTimerCount()).toBe(0);
  });
});
