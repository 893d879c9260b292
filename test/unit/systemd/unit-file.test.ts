// systemd/lockerd.service as systemd reads it: Type=notify with a watchdog, no restart loop on a
// bad config, no wait for the network, the groups the udev rules hand devices to, and an exposure
// (`systemd-analyze security --offline=true`) of at most 2.5, the figure its comment states; the
// DeviceAllow= drop-in the installer derives from each ready-made profile.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { deviceNeeds, dropIn, needsLine } from "../../../src/systemd/devices.js";
import { DAEMON_FLAGS } from "../../../scripts/daemon-flags.js";
import { requireTools } from "../../helpers/tools.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const UNIT = join(ROOT, "systemd/lockerd.service");
const unitText = readFileSync(UNIT, "utf8");

/** Key → every value it is given (comments and section headers dropped). */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith("[")) continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
const d = directives(unitText);
const one = (k: string) => d.get(k)?.at(-1);

function exposure(unitFile: string): number {
  const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", unitFile], { encoding: "utf8" });
  const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout + r.stderr);
  if (!m) throw new Error(`systemd-analyze said: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

const profile = (name: string) => JSON.parse(readFileSync(join(ROOT, "hardware/profiles", name), "utf8")) as unknown;

describe("systemd/lockerd.service", () => {
  beforeAll(() => requireTools("systemd-analyze"));

  it("is Type=notify with a watchdog, accepts the notify helper's messages, and reloads on SIGHUP", () => {
    expect(one("Type")).toBe("notify");
    expect(one("NotifyAccess")).toBe("all");
    expect(one("WatchdogSec")).toMatch(/^\d+s?$/);
    expect(one("KillMode")).toBe("mixed");
    expect(one("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(one("ExecStart")).toMatch(/^\/opt\/lockerd\/node .* \/opt\/lockerd\/current\/dist\/lockerd\/lockerd\.js --config \/etc\/lockerd\/config\.json --data \/var\/lib\/lockerd$/);
  });

  it("runs node with the daemon's flags, the same as npm start, the entry's shebang and the benchmarks", () => {
    const flags = one("ExecStart")!.split(" ").filter((w) => w.startsWith("--") && !["--config", "--data"].includes(w));
    expect(flags).toEqual(DAEMON_FLAGS);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } };
    expect(pkg.scripts.start).toContain(`node ${DAEMON_FLAGS.join(" ")} dist/lockerd/lockerd.js`);
    expect(readFileSync(join(ROOT, "src/main.ts"), "utf8").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${DAEMON_FLAGS.join(" ")}`);
  });

  it("does not restart on a bad config (78), and gives up on a restart loop", () => {
    expect(one("Restart")).toBe("on-failure");
    expect(one("RestartPreventExitStatus")!.split(/\s+/)).toEqual(expect.arrayContaining(["64", "73", "78"]));
    expect(one("StartLimitIntervalSec")).toBeDefined();
    expect(Number(one("StartLimitBurst"))).toBeGreaterThan(1);
  });

  it("does not wait for the network, and wants time sync", () => {
    expect(unitText).not.toMatch(/^[^#]*network-online\.target/m);
    expect(one("After")).toContain("time-sync.target");
    expect(one("Wants")).toContain("time-sync.target");
  });

  it("runs as lockerd with the groups its devices and the admin socket need", () => {
    expect(one("User")).toBe("lockerd");
    expect(one("Group")).toBe("lockerd");
    expect(one("SupplementaryGroups")!.split(/\s+/).sort()).toEqual(["dialout", "gpio", "i2c", "lockerd-admin"]);
    expect(one("RuntimeDirectory")).toBe("lockerd");
    expect(one("RuntimeDirectoryMode")).toBe("0755");
    expect(one("StateDirectoryMode")).toBe("0700");
    expect(one("DevicePolicy")).toBe("closed");
    expect(d.get("DeviceAllow")).toBeUndefined(); // the drop-in says which
  });

  it("every group a udev rule gives a device to is one the service has", () => {
    const groups = new Set([one("Group")!, ...one("SupplementaryGroups")!.split(/\s+/)]);
    const dir = join(ROOT, "hardware/udev");
    const used = new Set<string>();
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".rules"))) {
      for (const m of readFileSync(join(dir, f), "utf8").matchAll(/GROUP="([^"]+)"/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(0);
    for (const g of used) expect(groups, `udev GROUP="${g}"`).toContain(g);
  });

  it("has an exposure of at most 2.5, the figure its comment states", () => {
    const measured = exposure(UNIT);
    expect(measured).toBeLessThanOrEqual(2.5);
    const stated = /systemd-analyze security --offline=true systemd\/lockerd\.service` = (\d+\.\d)/.exec(unitText);
    expect(stated, "the unit's comment states the figure").not.toBeNull();
    expect(Number(stated![1])).toBe(measured);
  });

  it("stays at that exposure with each profile's device drop-in", () => {
    const dir = mkdtempSync(join(tmpdir(), "lockerd-unit-"));
    try {
      for (const name of ["a-gpio-16-relays.json", "b-two-mcp23017.json", "c-kerong-rs485.json"]) {
        const allow = dropIn(deviceNeeds(profile(name)), name)
          .split("\n")
          .filter((l) => /^DeviceAllow=./.test(l));
        // Drop-ins are read from /etc/systemd/system/<unit>.d only; for the offline analysis the
        // lines go into a copy of the unit (after DevicePolicy=closed, as the drop-in would apply).
        const merged = unitText.replace(/^DevicePolicy=closed$/m, `DevicePolicy=closed\n${allow.join("\n")}`);
        const file = join(dir, "lockerd.service");
        writeFileSync(file, merged);
        expect(exposure(file), name).toBeLessThanOrEqual(2.5);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the device drop-in (src/systemd/devices.ts)", () => {
  it("profile a: I2C bus 1 (door expanders, LCD), the header UART's keypad, hidraw, and the GPIO character device (relays, buzzer)", () => {
    const n = deviceNeeds(profile("a-gpio-16-relays.json"));
    expect(n.allow).toEqual(["/dev/i2c-1 rw", "/dev/serial0 rw", "char-gpiochip rw", "char-hidraw rw"]);
    expect(needsLine(n)).toBe("i2c uart gpio hidraw");
  });

  it("profile b: the same nodes (MCP23017s on I2C bus 1)", () => {
    expect(deviceNeeds(profile("b-two-mcp23017.json")).allow).toEqual(["/dev/i2c-1 rw", "/dev/serial0 rw", "char-gpiochip rw", "char-hidraw rw"]);
  });

  it("profile c: and the USB-RS485 adapter by class (its node follows plug order)", () => {
    const n = deviceNeeds(profile("c-kerong-rs485.json"));
    expect(n.allow).toEqual(["/dev/i2c-1 rw", "/dev/serial0 rw", "char-gpiochip rw", "char-hidraw rw", "char-ttyACM rw", "char-ttyUSB rw"]);
    expect(needsLine(n)).toBe("i2c uart gpio usb-serial hidraw");
  });

  it("the simulated bank opens no device; other buses and ports are named as configured", () => {
    const sim = JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as unknown;
    expect(deviceNeeds(sim).allow).toEqual([]);
    expect(dropIn(deviceNeeds(sim), "x")).toContain("No device");
    const cfg = profile("c-kerong-rs485.json") as { hardware: Record<string, any> };
    cfg.hardware.readers = [{ type: "rdm6300", port: "/dev/serial0" }, { type: "serial-scanner", port: "/dev/ttyUSB3" }];
    cfg.hardware.display = { type: "hd44780-i2c", bus: 3, address: 39 };
    const n = deviceNeeds(cfg);
    expect(n.allow).toEqual(["/dev/i2c-3 rw", "/dev/serial0 rw", "char-gpiochip rw", "char-ttyACM rw", "char-ttyUSB rw"]);
    expect(n.hidraw).toBe(false);
  });

  it("runs as the installer runs it", () => {
    const cli = join(ROOT, "dist/src/systemd/devices.js");
    const r = spawnSync(process.execPath, [cli, "--needs", join(ROOT, "hardware/profiles/c-kerong-rs485.json")], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("i2c uart gpio usb-serial hidraw\n");
    const bad = spawnSync(process.execPath, [cli, join(ROOT, "package.json")], { encoding: "utf8" });
    expect(bad.status).toBe(0); // no hardware section: nothing to allow
    expect(spawnSync(process.execPath, [cli], { encoding: "utf8" }).status).toBe(64);
  });
});
