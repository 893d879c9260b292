// The systemd notifier against a REAL notify socket: a python3 receiver binds an AF_UNIX datagram
// socket (a path, and an abstract "@name"), $NOTIFY_SOCKET points at it, and what arrives is
// checked datagram by datagram: READY=1, STATUS=, WATCHDOG=1, STOPPING=1 each their own; watchdog
// pings at half of $WATCHDOG_USEC that stop while the event loop is blocked; a helper that is
// killed comes back; a missing interpreter is logged, never thrown.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createNotifier, isSupportedSocket, watchdogMsFrom, type Notifier } from "../../../src/systemd/notify.js";
import { monotonicMs, openNotifySocket, type NotifySocket } from "../../helpers/notify-socket.js";
import { requireTools } from "../../helpers/tools.js";
import { slow } from "../../helpers/slow.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

beforeAll(() => requireTools("python3"));

function captureLog() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  return {
    lines,
    log: {
      warn: (obj: object, msg: string) => lines.push({ level: "warn", obj: obj as Record<string, unknown>, msg }),
      info: (obj: object, msg: string) => lines.push({ level: "info", obj: obj as Record<string, unknown>, msg }),
    },
  };
}

async function pathSocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), "lockerd-notify-"));
  const sock = await openNotifySocket(join(dir, "notify"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanup.push(() => sock.close());
  return sock;
}

async function abstractSocket(): Promise<NotifySocket> {
  const sock = await openNotifySocket(`@lockerd-test-${randomBytes(6).toString("hex")}`);
  cleanup.push(() => sock.close());
  return sock;
}

function notifier(env: NodeJS.ProcessEnv, opts: Parameters<typeof createNotifier>[1] = {}): Notifier {
  const n = createNotifier(env, opts);
  if (!n) throw new Error("no notifier");
  cleanup.push(() => n.close());
  return n;
}

const texts = (s: NotifySocket) => s.received.map((d) => d.text);

describe("createNotifier", () => {
  it("is undefined when systemd did not ask (no NOTIFY_SOCKET), or names a socket it cannot reach", () => {
    expect(createNotifier({})).toBeUndefined();
    expect(createNotifier({ NOTIFY_SOCKET: "" })).toBeUndefined();
    const { lines, log } = captureLog();
    expect(createNotifier({ NOTIFY_SOCKET: "vsock:2:1234" }, { log })).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(isSupportedSocket("/run/systemd/notify")).toBe(true);
    expect(isSupportedSocket("@abstract")).toBe(true);
    expect(isSupportedSocket("@")).toBe(false);
    expect(isSupportedSocket("relative/path")).toBe(false);
  });

  it("reads the watchdog as sd_watchdog_enabled does: WATCHDOG_USEC, for WATCHDOG_PID only", () => {
    expect(watchdogMsFrom({})).toBeUndefined();
    expect(watchdogMsFrom({ WATCHDOG_USEC: "60000000" })).toBe(60_000);
    expect(watchdogMsFrom({ WATCHDOG_USEC: "60000000", WATCHDOG_PID: String(process.pid) })).toBe(60_000);
    expect(watchdogMsFrom({ WATCHDOG_USEC: "60000000", WATCHDOG_PID: "1" })).toBeUndefined();
    expect(watchdogMsFrom({ WATCHDOG_USEC: "0" })).toBeUndefined();
    expect(watchdogMsFrom({ WATCHDOG_USEC: "soon" })).toBeUndefined();
  });
});

describe.each([
  ["a socket path", pathSocket],
  ["an abstract socket (@name)", abstractSocket],
])("over %s", (_name, open) => {
  it("sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 as separate datagrams, in order", async () => {
    const sock = await open();
    const n = notifier({ NOTIFY_SOCKET: sock.address });
    expect(n.socket).toBe(sock.address);
    n.ready();
    n.status("ready: 16 compartments\nsecond line");
    n.watchdog();
    n.stopping();
    await sock.waitFor((d) => d.length >= 4);
    await new Promise((r) => setTimeout(r, 100)); // nothing else trails
    expect(texts(sock)).toEqual(["READY=1", "STATUS=ready: 16 compartments second line", "WATCHDOG=1", "STOPPING=1"]);
  });

  it("sends a reload as one datagram of two assignments, and an extended timeout", async () => {
    const sock = await open();
    const n = notifier({ NOTIFY_SOCKET: sock.address });
    const before = process.hrtime.bigint() / 1000n;
    n.reloading();
    n.extendTimeout(90_000);
    await sock.waitFor((d) => d.length >= 2);
    const [reload, extend] = texts(sock);
    const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(reload!);
    expect(m).not.toBeNull();
    expect(BigInt(m![1]!)).toBeGreaterThanOrEqual(before);
    expect(extend).toBe("EXTEND_TIMEOUT_USEC=90000000");
  });
});

describe("the watchdog", () => {
  it("pings at half of WATCHDOG_USEC from the event loop, and stops while the loop is blocked", { timeout: slow(15_000) }, async () => {
    const sock = await pathSocket();
    const n = notifier({ NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: "200000" }); // 200 ms: a ping every 100 ms
    expect(n.watchdogMs).toBe(200);
    expect(n.startWatchdog()).toBe(true);
    expect(n.startWatchdog()).toBe(true); // once
    const pings = () => sock.received.filter((d) => d.text === "WATCHDOG=1");
    await sock.waitFor(() => pings().length >= 5);

    // A hung event loop: 1 s of busy work. The helper is alive the whole time, but nobody asks it.
    const blockFrom = monotonicMs();
    while (monotonicMs() - blockFrom < 1000) {
      /* spin */
    }
    const blockTo = monotonicMs();
    const countAfterBlock = pings().length;
    await sock.waitFor(() => pings().length >= countAfterBlock + 3);

    // Nothing arrived during the block (a ping written just before it may land within a few ms).
    const during = pings().filter((d) => d.at > blockFrom + 50 && d.at < blockTo);
    expect(during).toEqual([]);
    // Steady pings before it: about every 100 ms, never the 200 ms systemd would act on.
    const before = pings().filter((d) => d.at < blockFrom);
    const gaps = before.slice(1).map((d, i) => d.at - before[i]!.at);
    expect(Math.max(...gaps)).toBeLessThan(190);
    // And after it the pings go on by themselves.
    expect(pings().filter((d) => d.at > blockTo).length).toBeGreaterThanOrEqual(3);

    n.stopWatchdog();
    const stopped = pings().length;
    await new Promise((r) => setTimeout(r, 350));
    expect(pings().length).toBeLessThanOrEqual(stopped + 1);
  });

  it("does nothing without WATCHDOG_USEC, or when WATCHDOG_PID is another process", async () => {
    const sock = await pathSocket();
    expect(notifier({ NOTIFY_SOCKET: sock.address }).startWatchdog()).toBe(false);
    expect(notifier({ NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: "200000", WATCHDOG_PID: "1" }).startWatchdog()).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    expect(texts(sock)).toEqual([]);
  });
});

describe("the helper process", () => {
  it("is one long-lived process; killed, it is logged once and started again, and messages flow again", { timeout: slow(15_000) }, async () => {
    const sock = await pathSocket();
    const { lines, log } = captureLog();
    const n = notifier({ NOTIFY_SOCKET: sock.address }, { log, retry: { baseMs: 50, capMs: 200 } });
    n.ready();
    await sock.waitFor((d) => d.length === 1);
    const first = n.helperPid!;
    expect(first).toBeGreaterThan(0);
    n.status("one");
    n.status("two");
    await sock.waitFor((d) => d.length === 3);
    expect(n.helperPid).toBe(first); // the same helper for every message

    process.kill(first, "SIGKILL");
    for (let i = 0; i < 200 && (n.helperPid === first || n.helperPid === undefined); i++) await new Promise((r) => setTimeout(r, 10));
    expect(n.helperPid).not.toBe(first);
    expect(n.helperPid).toBeGreaterThan(0);
    n.status("after");
    await sock.waitFor((d) => d.some((x) => x.text === "STATUS=after"));

    // Killed twice more: still only the one warning (it has not been healthy for 10 s since).
    for (let k = 0; k < 2; k++) {
      const pid = n.helperPid!;
      process.kill(pid, "SIGKILL");
      for (let i = 0; i < 200 && (n.helperPid === pid || n.helperPid === undefined); i++) await new Promise((r) => setTimeout(r, 10));
    }
    n.status("again");
    await sock.waitFor((d) => d.some((x) => x.text === "STATUS=again"));
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(lines[0]!.msg).toMatch(/notify helper exited/);
  });

  it("ignores SIGTERM (the unit's stop signal goes to the whole cgroup) and leaves at EOF", async () => {
    const sock = await pathSocket();
    const n = createNotifier({ NOTIFY_SOCKET: sock.address })!;
    n.ready();
    await sock.waitFor((d) => d.length === 1);
    const pid = n.helperPid!;
    process.kill(pid, "SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    expect(n.helperPid).toBe(pid);
    n.stopping();
    await n.close();
    await sock.waitFor((d) => d.length === 2);
    expect(texts(sock)).toEqual(["READY=1", "STOPPING=1"]);
    expect(() => process.kill(pid, 0)).toThrow(); // gone
    await n.close(); // twice is fine
    n.status("after close"); // ignored, never throws
  });

  it("a missing interpreter is logged once, never thrown; messages wait (bounded) for a helper", async () => {
    const sock = await pathSocket();
    const { lines, log } = captureLog();
    const n = notifier({ NOTIFY_SOCKET: sock.address }, { log, python: "/nonexistent/python3", retry: { baseMs: 20, capMs: 40 } });
    n.ready();
    n.watchdog();
    n.watchdog();
    await new Promise((r) => setTimeout(r, 300)); // several failed starts
    expect(texts(sock)).toEqual([]);
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(lines[0]!.msg).toMatch(/cannot start the notify helper/);
    expect(n.helperPid).toBeUndefined();
    await n.close();
  });

  it("reports a socket nobody listens on (from the helper's stderr), and keeps running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lockerd-notify-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const { lines, log } = captureLog();
    const n = notifier({ NOTIFY_SOCKET: join(dir, "nobody") }, { log });
    n.ready();
    for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(lines[0]!.msg).toMatch(/cannot reach systemd/);
    expect(String(lines[0]!.obj.helper)).toMatch(/sendto .*nobody/);
    expect(n.helperPid).toBeGreaterThan(0);
  });
});
