// The compiled notifier in a process of its own, as lockerd will use it: READY=1 and the watchdog
// reach a real notify socket, the process still exits by itself when its work is done (neither
// the helper nor the watchdog timer holds the event loop), and the helper leaves with it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/daemon.js";
import { openNotifySocket, type NotifySocket } from "../helpers/notify-socket.js";
import { requireTools } from "../helpers/tools.js";
import { slow } from "../helpers/slow.js";

const NOTIFY = join(ROOT, "dist/src/systemd/notify.js");
let dir: string;
let sock: NotifySocket;

beforeAll(async () => {
  requireTools("python3");
  dir = mkdtempSync(join(tmpdir(), "lockerd-notify-"));
  sock = await openNotifySocket(join(dir, "notify"));
});
afterAll(async () => {
  await sock.close();
  rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("a process with a notifier", () => {
  it("sends READY=1 and watchdog pings, exits by itself without close(), and its helper goes with it", { timeout: slow(20_000) }, async () => {
    // Ready, the watchdog started, 400 ms of work on timers, then nothing left to do: it must exit.
    const script = `
      import { createNotifier } from ${JSON.stringify(NOTIFY)};
      const n = createNotifier();
      n.ready();
      n.status("working");
      if (!n.startWatchdog()) process.exit(3);
      setTimeout(() => { process.stdout.write(String(n.helperPid)); n.stopping(); }, 400);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: "200000", WATCHDOG_PID: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`still running after 10 s: the notifier holds the event loop (${err})`)), 10_000);
      child.once("exit", (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    expect(code, err).toBe(0);
    const helper = Number(out);
    expect(helper).toBeGreaterThan(0);
    await sock.waitFor((d) => d.some((x) => x.text === "STOPPING=1"));
    const texts = sock.received.map((d) => d.text);
    expect(texts.slice(0, 2)).toEqual(["READY=1", "STATUS=working"]);
    expect(texts.filter((t) => t === "WATCHDOG=1").length).toBeGreaterThanOrEqual(3);
    // Nothing after STOPPING=1 but a watchdog ping the interval had already queued.
    expect(texts.slice(texts.indexOf("STOPPING=1") + 1).filter((t) => t !== "WATCHDOG=1")).toEqual([]);
    for (let i = 0; i < 100 && alive(helper); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(helper), "the helper outlived lockerd").toBe(false);
  });
});

describe("lockerd under a notify socket", () => {
  it("says READY=1 only once ready, feeds the watchdog, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 at SIGTERM", { timeout: slow(30_000) }, async () => {
    const bank = mkdtempSync(join(tmpdir(), "lockerd-notify-bank-"));
    const from = sock.received.length;
    const child = spawn(process.execPath, [join(ROOT, "dist/lockerd/lockerd.js"), "--config", join(ROOT, "config.example.json"), "--data", join(bank, "data")], {
      env: { ...process.env, NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: "400000", WATCHDOG_PID: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    try {
      const mine = () => sock.received.slice(from).map((d) => d.text);
      await sock.waitFor(() => mine().includes("READY=1"), 15_000);
      // READY=1 is sent right after the daemon logs ready (ledger and hardware up); the log line
      // travels on stdout, a different channel, so it may arrive a moment later.
      for (let i = 0; i < 100 && !/"msg":"ready/.test(out); i++) await new Promise((r) => setTimeout(r, 20));
      expect(out).toMatch(/"msg":"ready/);
      await sock.waitFor(() => mine().filter((t) => t === "WATCHDOG=1").length >= 3, 5_000);
      child.kill("SIGHUP");
      await sock.waitFor(() => mine().some((t) => t.startsWith("RELOADING=1")) && mine().lastIndexOf("READY=1") > mine().findIndex((t) => t.startsWith("RELOADING=1")), 5_000);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      await sock.waitFor(() => mine().includes("STOPPING=1"), 5_000);
      expect(mine().filter((t) => t.startsWith("STATUS=")).map((t) => t.slice(7))).toEqual(expect.arrayContaining([expect.stringMatching(/^ready: /), "stopping: SIGTERM"]));
    } finally {
      child.kill("SIGKILL");
      rmSync(bank, { recursive: true, force: true });
    }
  });
});
