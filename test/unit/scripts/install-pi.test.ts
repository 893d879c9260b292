// scripts/install-pi.sh --dry-run: every step printed, nothing done. The script runs with
// LOCKERD_ROOT (the prefix of every path it writes) in a temporary directory, and with PATH stubs
// for every command that changes a system (apt-get, useradd, systemctl, raspi-config, install, ln,
// ...): a stub records its call. A dry run may call none of them except read-only queries
// (systemctl is-active, raspi-config nonint get_*), and the temporary root stays empty.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasTool, requireTools } from "../../helpers/tools.js";
import { slow } from "../../helpers/slow.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const SCRIPT = join(ROOT, "scripts/install-pi.sh");
const MUTATING = [
  "apt-get", "groupadd", "useradd", "usermod", "install", "rsync", "npm", "ln", "mv", "rm", "cp", "touch",
  "chown", "chmod", "mkdir", "raspi-config", "udevadm", "systemctl", "runuser", "userdel", "groupdel",
];
const READ_ONLY = [/^systemctl is-active/, /^raspi-config nonint get_/];

let base: string;
let fakeRoot: string;
let stubs: string;
let log: string;

/** Real system paths the installer writes; none may appear through a dry run. */
const SYSTEM_PATHS = ["/opt/lockerd", "/etc/lockerd", "/usr/local/bin/lockerctl", "/usr/local/bin/lockerd", "/etc/systemd/system/lockerd.service", "/etc/udev/rules.d/99-lockerd-readers.rules"];
const existedBefore = new Map(SYSTEM_PATHS.map((p) => [p, existsSync(p)]));

beforeAll(() => {
  requireTools("bash", "git", "sha256sum");
  base = mkdtempSync(join(tmpdir(), "lockerd-install-"));
  fakeRoot = join(base, "root");
  stubs = join(base, "bin");
  log = join(base, "calls.log");
  mkdirSync(fakeRoot);
  mkdirSync(stubs);
  for (const cmd of MUTATING) {
    const f = join(stubs, cmd);
    // raspi-config's getters answer "1" (off), so the dry run shows the do_* it would run.
    writeFileSync(f, `#!/bin/sh\necho "${cmd} $*" >> "${log}"\ncase "$*" in "nonint get_"*) echo 1 ;; esac\nexit 0\n`);
    chmodSync(f, 0o755);
  }
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function installer(args: string[], env: Record<string, string> = {}) {
  writeFileSync(log, "");
  const r = spawnSync("bash", [SCRIPT, ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, PATH: `${stubs}:${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, LOCKERD_ROOT: fakeRoot, SUDO_USER: "", ...env },
  });
  const calls = readFileSync(log, "utf8").split("\n").filter(Boolean);
  return { ...r, out: r.stdout + r.stderr, calls, changing: calls.filter((c) => !READ_ONLY.some((re) => re.test(c))) };
}

const steps = (out: string) => [...out.matchAll(/^\[(\d+)\] (.*)$/gm)].map((m) => m[2]!);

function nothingChanged(r: ReturnType<typeof installer>) {
  expect(r.changing, "commands a dry run ran").toEqual([]);
  expect(readdirSync(fakeRoot), "the temporary root").toEqual([]);
  for (const p of SYSTEM_PATHS) expect(existsSync(p), p).toBe(existedBefore.get(p));
}

describe("scripts/install-pi.sh", () => {
  it("is shellcheck-clean", () => {
    if (!hasTool("shellcheck")) throw new Error("shellcheck missing: sudo scripts/test-deps.sh");
    const r = spawnSync("shellcheck", [SCRIPT, join(ROOT, "scripts/test-deps.sh")], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("--help says what it does, and refuses bad arguments with 64", () => {
    const help = installer(["--help"]);
    expect(help.status).toBe(0);
    for (const opt of ["--profile a|b|c", "--node PATH", "--dry-run", "--uninstall", "--rollback", "--devices"]) expect(help.stdout).toContain(opt);
    expect(installer(["--bogus"]).status).toBe(64);
    expect(installer(["--profile", "z"]).status).toBe(64);
    expect(installer(["--profile", "a", "/x/config.json"]).status).toBe(64);
    expect(installer(["--node"]).status).toBe(64);
    expect(help.changing).toEqual([]);
  });

  it("--dry-run --profile c prints every step and its commands, and changes nothing", () => {
    const r = installer(["--dry-run", "--profile", "c", "--node", process.execPath]);
    expect(r.status, r.out).toBe(0);
    expect(steps(r.out)).toEqual([
      "Check the system",
      "System packages",
      "Node.js (major 20, 22, 24)",
      "User lockerd, group lockerd-admin",
      expect.stringMatching(/^Release 0\.\d+\.\d+/),
      "Config /etc/lockerd/config.json",
      "Data /var/lib/lockerd, backups /var/backups/lockerd",
      "Interfaces the config uses (I2C, UART, GPIO)",
      "udev rules",
      "Commands: /usr/local/bin/lockerd, /usr/local/bin/lockerctl, /opt/lockerd/node",
      expect.stringMatching(/^Check \/etc\/lockerd\/config\.json against release /),
      "systemd unit and its device drop-in",
      expect.stringMatching(/^First start of release /),
      "Old releases (keeping 3, current and previous)",
      "Done",
    ]);
    // The commands a real run would run, each printed.
    for (const cmd of [
      /\$ useradd --system --user-group --home-dir \/var\/lib\/lockerd .*lockerd/,
      /\$ usermod -aG lockerd-admin lockerd/,
      /\$ install -m 0640 \S+\/hardware\/profiles\/c-kerong-rs485\.json \S*\/etc\/lockerd\/config\.json/,
      /\$ chown root:lockerd \S*\/etc\/lockerd\/config\.json/,
      /\$ install -d -m 0700 \S*\/var\/lib\/lockerd/,
      /\$ env -C \S+ PATH=\S+ \S+ ci --no-audit --no-fund/,
      /\$ runuser -u lockerd -- \S+\/node \S+\/dist\/lockerd\/lockerd\.js --config \S*\/etc\/lockerd\/config\.json --check-config/,
      /\$ install -m 0644 \S+\/systemd\/lockerd\.service \S*\/etc\/systemd\/system\/lockerd\.service/,
      /\$ systemctl enable lockerd/,
      /\$ systemctl restart lockerd/,
    ]) expect(r.out).toMatch(cmd);
    // The wrappers, as they would be written.
    expect(r.out).toContain("exec /opt/lockerd/node /opt/lockerd/current/dist/lockerd/lockerctl.js \"$@\"");
    // What profile c needs from the host, from the config itself.
    expect(r.out).toMatch(/the config uses: i2c uart gpio usb-serial hidraw/);
    if (hasTool("raspi-config")) expect(r.out).toMatch(/\$ raspi-config nonint do_i2c 0/);
    expect(r.out).toContain("(dry run: nothing was changed)");
    nothingChanged(r);
  });

  it("takes a config path given after --dry-run as the config, not as an option", () => {
    const cfg = join(base, "bank.json");
    writeFileSync(cfg, readFileSync(join(ROOT, "hardware/profiles/a-gpio-16-relays.json")));
    const r = installer(["--dry-run", cfg, "--node", process.execPath]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`$ install -m 0640 ${cfg} ${fakeRoot}/etc/lockerd/config.json`);
    expect(r.out).toMatch(/the config uses: i2c uart gpio hidraw/);
    nothingChanged(r);
  });

  it("refuses the simulator's config.example.json (demo people) even in a dry run", () => {
    const r = installer(["--dry-run", join(ROOT, "config.example.json"), "--node", process.execPath]);
    expect(r.out).toMatch(/WOULD STOP HERE: config\.example\.json is the simulator's/);
    nothingChanged(r);
  });

  it("says what to do when no Node 20/22/24 is to be had (Bookworm's apt has 18)", () => {
    const fakeNode = join(base, "node18");
    writeFileSync(fakeNode, "#!/bin/sh\nprintf 18\n");
    chmodSync(fakeNode, 0o755);
    const r = installer(["--dry-run", "--profile", "a", "--node", fakeNode]);
    expect(r.out).toMatch(/--node \S+node18 is Node 18; lockerd runs on Node 20, 22, 24/);
    nothingChanged(r);
  });

  it("refuses Node 24.19 to 24.21 (better-sqlite3 aborts at exit there) and takes 24.18 and 24.22", () => {
    const fake = (v: string) => {
      const f = join(base, `node-${v}`);
      writeFileSync(f, `#!/bin/sh\nprintf ${v}\n`);
      chmodSync(f, 0o755);
      return f;
    };
    for (const v of ["24.19.0", "24.21.3"]) {
      const r = installer(["--dry-run", "--profile", "a", "--node", fake(v)]);
      expect(r.out).toContain(`is Node ${v}; lockerd runs on Node 20, 22, 24, not 24.19 to 24.21`);
      nothingChanged(r);
    }
    for (const v of ["24.18.1", "24.22.0", "22.12.0"]) {
      const r = installer(["--dry-run", "--profile", "a", "--node", fake(v)]);
      expect(r.out).toContain(`(Node ${v})`);
      expect(r.out).not.toMatch(/lockerd runs on Node/);
    }
  });

  it("--dry-run --uninstall removes the service and the releases, keeps the config and the data", () => {
    const r = installer(["--dry-run", "--uninstall"]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/\$ rm -rf \S*\/opt\/lockerd/);
    expect(r.out).toMatch(/\$ rm -f \S*\/etc\/systemd\/system\/lockerd\.service/);
    expect(r.out).not.toMatch(/\$ rm .*\/(var\/lib|etc)\/lockerd\b/);
    expect(r.out).toMatch(/Kept[\s\S]*\/etc\/lockerd \(the config\), \/var\/lib\/lockerd \(the ledger and device key\)/);
    nothingChanged(r);
  });

  it("--rollback without a previous release says so", () => {
    const r = installer(["--dry-run", "--rollback"]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/no previous release/);
    nothingChanged(r);
  });

  // A real run, not a dry one: every path under a temporary root (LOCKERD_ROOT), the commands
  // that change the machine itself stubbed (apt, users, systemd, udev, chown), and npm standing in
  // for the build by copying this checkout's dist/ and node_modules/ (a real `npm ci` needs the
  // registry and minutes). What is checked is what the script itself does with the files.
  it("a real run into a temporary root installs a release, is idempotent, and an upgrade keeps the previous one", { timeout: slow(60_000) }, () => {
    requireTools("rsync");
    const root = join(base, "real");
    const bin = join(base, "real-bin");
    mkdirSync(root);
    mkdirSync(bin);
    const calls = join(base, "real-calls.log");
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${calls}"\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    for (const c of ["apt-get", "groupadd", "useradd", "usermod", "chown", "udevadm"]) stub(c, "exit 0");
    stub("dpkg-query", "echo 'install ok installed'");
    stub("systemctl", 'case "$1" in is-active) exit 3 ;; esac; exit 0'); // never running: nothing to back up online
    stub("runuser", 'shift 3; exec "$@"'); // runuser -u lockerd -- CMD...: run CMD as we are
    // The node the installer is given sits in the stub directory, so `npm` beside it is the stub.
    const node = join(bin, "node");
    spawnSync("ln", ["-s", process.execPath, node]);
    stub("npm", `case "$1" in ci) ln -s "${ROOT}node_modules" node_modules ;; run) cp -r "${ROOT}dist" dist ;; esac; exit 0`);
    const run = (...args: string[]) => {
      writeFileSync(calls, "");
      const r = spawnSync("bash", [SCRIPT, ...args], {
        encoding: "utf8",
        timeout: 50_000,
        env: { ...process.env, PATH: `${bin}:${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, LOCKERD_ROOT: root, SUDO_USER: "" },
      });
      return { ...r, out: r.stdout + r.stderr, calls: readFileSync(calls, "utf8").split("\n").filter(Boolean) };
    };

    const first = run("--profile", "b", "--node", node, "--no-start");
    expect(first.status, first.out).toBe(0);
    const current = readlinkSync(join(root, "opt/lockerd/current"));
    expect(current).toMatch(/^releases\/0\.\d+\.\d+-/);
    expect(existsSync(join(root, "opt/lockerd", current, ".complete"))).toBe(true);
    expect(existsSync(join(root, "opt/lockerd", current, "dist/lockerd/lockerd.js"))).toBe(true);
    expect(readlinkSync(join(root, "opt/lockerd/node"))).toBe(node);
    expect(statSync(join(root, "etc/lockerd/config.json")).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(root, "etc/lockerd/config.json"), "utf8")).toBe(readFileSync(join(ROOT, "hardware/profiles/b-two-mcp23017.json"), "utf8"));
    expect(statSync(join(root, "var/lib/lockerd")).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(root, "usr/local/bin/lockerctl"), "utf8")).toContain("exec /opt/lockerd/node /opt/lockerd/current/dist/lockerd/lockerctl.js");
    expect(statSync(join(root, "usr/local/bin/lockerctl")).mode & 0o111).toBe(0o111);
    expect(readFileSync(join(root, "etc/systemd/system/lockerd.service"), "utf8")).toBe(readFileSync(join(ROOT, "systemd/lockerd.service"), "utf8"));
    const dropIn = readFileSync(join(root, "etc/systemd/system/lockerd.service.d/10-devices.conf"), "utf8");
    expect(dropIn.split("\n").filter((l) => l.startsWith("DeviceAllow="))).toEqual(["DeviceAllow=", "DeviceAllow=/dev/i2c-1 rw", "DeviceAllow=/dev/serial0 rw", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-hidraw rw"]);
    expect(existsSync(join(root, "etc/udev/rules.d/99-lockerd-readers.rules"))).toBe(true);
    expect(first.calls).toEqual(expect.arrayContaining([
      "useradd --system --user-group --home-dir /var/lib/lockerd --no-create-home --shell /usr/sbin/nologin lockerd",
      "usermod -aG lockerd-admin lockerd",
      `chown root:lockerd ${root}/etc/lockerd/config.json`,
      `chown lockerd:lockerd ${root}/var/lib/lockerd`,
      "systemctl daemon-reload",
    ]));
    expect(first.calls.some((c) => c.startsWith("runuser -u lockerd -- ") && c.includes("--check-config"))).toBe(true);

    // Again, unchanged: nothing rebuilt, the config kept, the same release current.
    const again = run("--profile", "b", "--node", node, "--no-start");
    expect(again.status, again.out).toBe(0);
    expect(again.out).toContain("already built");
    expect(again.out).toContain("kept /etc/lockerd/config.json");
    expect(again.out).toMatch(/release \S+ is already current/);
    expect(readlinkSync(join(root, "opt/lockerd/current"))).toBe(current);

    // An older release was current: this run is an upgrade. No ledger yet, so no backup; the old
    // one becomes `previous`, and --rollback goes back to it.
    const old = join(root, "opt/lockerd/releases/0.0.1-old");
    mkdirSync(old);
    writeFileSync(join(old, ".complete"), "");
    rmSync(join(root, "opt/lockerd/current"));
    spawnSync("ln", ["-s", "releases/0.0.1-old", join(root, "opt/lockerd/current")]);
    const upgrade = run("--node", node, "--no-start");
    expect(upgrade.status, upgrade.out).toBe(0);
    expect(upgrade.out).toMatch(/Upgrade releases\/0\.0\.1-old -> releases\//);
    expect(readlinkSync(join(root, "opt/lockerd/current"))).toBe(current);
    expect(readlinkSync(join(root, "opt/lockerd/previous"))).toBe("releases/0.0.1-old");
    const back = run("--rollback", "--no-start");
    expect(back.status, back.out).toBe(0);
    expect(readlinkSync(join(root, "opt/lockerd/current"))).toBe("releases/0.0.1-old");
    expect(readlinkSync(join(root, "opt/lockerd/previous"))).toBe(current);

    // Uninstall: the service and releases go; the config and the data stay.
    mkdirSync(join(root, "var/lib/lockerd/keep"), { recursive: true });
    const gone = run("--uninstall");
    expect(gone.status, gone.out).toBe(0);
    expect(existsSync(join(root, "opt/lockerd"))).toBe(false);
    expect(existsSync(join(root, "etc/systemd/system/lockerd.service"))).toBe(false);
    expect(existsSync(join(root, "usr/local/bin/lockerctl"))).toBe(false);
    expect(lstatSync(join(root, "etc/lockerd/config.json")).isFile()).toBe(true);
    expect(existsSync(join(root, "var/lib/lockerd/keep"))).toBe(true);
  });
});
