// The bank's clock as the server sees it (status, telemetry): the time, whether it is synchronized,
// and the tolerances the bank judges a command's issuedAt / expiresAt by.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/load.js";
import { clockInfo } from "../../../src/sync/clock.js";
import { OUTBOUND } from "../../../src/sync/contract.js";
import { exampleConfig, removeDir, tempDir } from "../../helpers/daemon.js";
import { fakeClockBanks } from "../../helpers/bank.js";
import { routerFor } from "../../helpers/router.js";

const T = Date.parse("2026-11-25T09:00:00Z");

describe("clockInfo", () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(removeDir));
  const timesync = () => {
    const dir = tempDir();
    dirs.push(dir);
    return join(dir, "timesync");
  };

  it("says synchronized only when systemd-timesyncd says so, unknown without it", () => {
    const sync = parseConfig({ ...exampleConfig(), sync: { clockSkewS: 30, maxCommandLifetimeS: 300 } }).sync;
    const dir = timesync();
    expect(clockInfo(T, sync, dir)).toEqual({ now: T, synchronized: "unknown", skewToleranceMs: 30_000, maxCommandLifetimeMs: 300_000 });
    mkdirSync(dir);
    expect(clockInfo(T, sync, dir).synchronized).toBe("no");
    writeFileSync(join(dir, "synchronized"), "");
    expect(clockInfo(T, sync, dir).synchronized).toBe("yes");
  });

  it("uses the configured defaults: 120 s skew, 600 s lifetime", () => {
    const sync = parseConfig(exampleConfig()).sync;
    expect(clockInfo(T, sync, timesync())).toMatchObject({ skewToleranceMs: 120_000, maxCommandLifetimeMs: 600_000 });
  });

  it("fits status and telemetry (and only a Last Will leaves it out)", () => {
    const clock = clockInfo(T, parseConfig(exampleConfig()).sync, timesync());
    const status = { state: "online", version: "1", bootedAt: T, instance: "5b0c8e1a-2f4d-4c6b-9a7e-3d1f0b2c4e6a" };
    expect(OUTBOUND.status.parse({ ...status, clock })).toMatchObject({ clock });
    expect(OUTBOUND.status.safeParse({ ...status, state: "offline" }).success).toBe(true);
    const telemetry = { ts: T, uptimeMs: 0, queueDepth: 0, cpuTempC: null, diskFreeBytes: 0, devices: [], temperatures: [], clock };
    expect(OUTBOUND.telemetry.parse(telemetry)).toMatchObject({ clock });
    expect(OUTBOUND.telemetry.safeParse({ ...telemetry, clock: undefined }).success).toBe(false);
  });
});

describe("the router judges time by the bank clock (point 8)", () => {
  const banks = fakeClockBanks();

  it("applies the configured skew tolerance and lifetime, and says the bank clock in the refusal", async () => {
    const b = await banks.open();
    const { send } = routerFor(b, { clockSkewMs: 10_000, maxCommandLifetimeMs: 60_000 });
    const now = Date.now();
    expect(await send("snapshot", {}, { issuedAt: now, expiresAt: now + 61_000 })).toMatchObject({ ok: false, error: { code: "bad_input" } });
    expect(await send("snapshot", {}, { issuedAt: now - 71_000 })).toMatchObject({ ok: false, error: { code: "expired", message: expect.stringContaining("2026-11-25T09:00:00.000Z") } });
    expect(await send("snapshot", {}, { issuedAt: now - 69_000 })).toMatchObject({ ok: true });
    expect(await send("snapshot", {}, { issuedAt: now + 11_000 })).toMatchObject({ ok: false, error: { code: "expired" } });
    expect(await send("snapshot", {}, { issuedAt: now + 9_000 })).toMatchObject({ ok: true });
  });
});
