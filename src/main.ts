#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size --expose-gc
// lockerd: the entry point. Arguments, config, the runtime, signals and exit codes.
//   0 stopped cleanly · 64 bad arguments · 70 internal error · 73 data directory unusable
//   75 data directory in use by another lockerd · 78 bad config, a layout change refused (a
//   compartment to remove or change holds a parcel: bank/layout.ts), or a host not set up for its hardware
// SIGHUP reads the config again (Runtime.reload); --check-config is check-config.ts.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfigAtStart } from "./config/load.js";
import { ErrorCode, isLockerError } from "./errors.js";
import { createLogger, stderrText } from "./log.js";
import { Runtime } from "./runtime.js";

export const EXIT = { ok: 0, usage: 64, software: 70, cantCreate: 73, tempFail: 75, config: 78 } as const;

/** Longest a stop may take before the process ends anyway (under systemd's TimeoutStopSec=20s). */
const STOP_DEADLINE_MS = 15_000;

const HELP = `lockerd — smart parcel locker bank daemon

Usage: lockerd [--config FILE] [--data DIR] [--check-config] [--init]
       lockerd restore FILE --data DIR   (a backup from \`lockerctl backup\`; --help for more)

  --config FILE   bank configuration (default: config.example.json)
  --data DIR      data directory: ledger, device key, sockets (default: ./data)
  --check-config  check the configuration as a start would (files, keys, sensors,
                  channel map) and exit 0 or 78; with --data, also print the
                  layout plan against that ledger (read only: works while
                  lockerd runs): compartments added / retired / changed /
                  refused (78)
  --init          start a new, empty bank in a data directory that held one whose
                  ledger or key is lost or damaged (its files are moved to
                  DIR/replaced-<time>/, never deleted)
  --help          this text
  --version       the version

Signals: SIGTERM / SIGINT stop cleanly; SIGHUP reads the config again and
applies its layout when every change is safe (else logs the refusal and runs on);
other changes need a restart (logged).

Exit codes: 0 clean stop, 64 bad arguments, 70 internal error, 73 data directory
unusable (unwritable; or it held a bank whose ledger or key is missing, empty,
damaged or not its own: restore them, or --init), 75 data directory in use
by a running lockerd, 78 bad configuration (or a layout change that is refused:
a compartment to remove or change still holds a parcel; or the host lacks
what the configured hardware needs: I2C enabled, sysfs GPIO, group membership).
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  // Whatever lockerd writes (ledger and its WAL, key, marker) is its own: 0600 whatever the
  // umask it was started with. Sockets get their modes set explicitly.
  process.umask(0o077);
  if (argv[0] === "restore") return (await import("./cli/restore.js")).restoreMain(argv.slice(1));
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        data: { type: "string" },
        help: { type: "boolean" },
        "check-config": { type: "boolean" },
        init: { type: "boolean" },
        version: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    process.stderr.write(stderrText(`lockerd: ${(e as Error).message}\n\n${HELP}`));
    return EXIT.usage;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  if (args.version) {
    process.stdout.write(`lockerd ${version()}\n`);
    return EXIT.ok;
  }

  const configFile = resolve(args.config ?? "config.example.json");
  let config;
  try {
    config = await loadConfigAtStart(configFile);
  } catch (e) {
    const issues = isLockerError(e) ? ((e.context.issues as string[] | undefined) ?? [e.message]) : [String(e)];
    process.stderr.write(stderrText(`lockerd: bad config ${configFile}:\n${issues.map((i) => `  - ${i}`).join("\n")}\n`));
    return EXIT.config;
  }

  if (args["check-config"]) {
    const { checkConfig } = await import("./check-config.js");
    const report = checkConfig(configFile, config, args.data === undefined ? undefined : resolve(args.data));
    process.stdout.write(report.text);
    return report.ok ? EXIT.ok : EXIT.config;
  }

  const log = createLogger(config.log.level);
  // Under systemd (Type=notify): READY=1 once ledger and hardware are up, the watchdog fed from the
  // event loop, STOPPING=1 at shutdown (src/systemd/notify.ts). Not loaded outside systemd.
  const notifier = process.env.NOTIFY_SOCKET ? (await import("./systemd/notify.js")).createNotifier(process.env, { log: log.child({ module: "systemd" }) }) : undefined;
  const runtime = new Runtime({ config, configFile, dataDir: resolve(args.data ?? "data"), log, version: version(), init: args.init === true });

  let exiting = false;
  const shutdown = (reason: string, code: number) => {
    if (exiting) return;
    exiting = true;
    notifier?.stopping();
    notifier?.status(`stopping: ${reason}`);
    log.info({ reason }, "stopping");
    // A stop that cannot finish (a device that never answers its release) still ends the process,
    // before systemd's TimeoutStopSec (20 s) kills it with no word.
    setTimeout(() => {
      quietly(() => log.error({ ms: STOP_DEADLINE_MS }, "stop did not finish in time: exiting"));
      process.exit(code === EXIT.ok ? EXIT.software : code);
    }, STOP_DEADLINE_MS).unref();
    runtime
      .stop(reason)
      .catch((e: unknown) => quietly(() => log.error({ err: e }, "stop failed")))
      .finally(() => {
        quietly(() => {
          log.info({ exitCode: code }, "stopped");
          log.flush();
        });
        process.exitCode = code;
        setImmediate(() => process.exit(code));
      });
  };
  // SIGHUP: the config again; its layout applied live when every change is safe (Runtime.reload).
  // Never exits. One that comes during the start is taken once the bank is ready.
  let ready = false;
  let reloadAsked = false;
  const reload = () => {
    if (exiting) return;
    if (!ready) {
      reloadAsked = true;
      log.info("SIGHUP during start: the config is read again once the bank is ready");
      return;
    }
    log.info({ config: configFile }, "SIGHUP: reading the config again");
    notifier?.reloading();
    try {
      runtime.reloadFile();
    } catch (e) {
      if (isLockerError(e, ErrorCode.Config)) {
        const issues = (e.context.issues as string[] | undefined) ?? [e.message];
        log.error({ issues }, "SIGHUP: the config is not valid: nothing applied, running on as before");
      } else log.error({ err: e }, "SIGHUP: the config could not be applied: running on as before");
    }
    notifier?.ready();
  };
  process.on("SIGHUP", reload);
  process.on("SIGTERM", () => shutdown("SIGTERM", EXIT.ok));
  process.on("SIGINT", () => shutdown("SIGINT", EXIT.ok));
  process.on("uncaughtException", (e) => {
    log.fatal({ err: e }, "uncaught exception: relays off, exiting");
    shutdown("uncaughtException", EXIT.software);
  });
  process.on("unhandledRejection", (e) => {
    log.fatal({ err: e }, "unhandled rejection: relays off, exiting");
    shutdown("unhandledRejection", EXIT.software);
  });

  try {
    await runtime.start();
  } catch (e) {
    log.fatal({ err: e }, "start failed");
    notifier?.status(`start failed: ${(e as Error).message}`);
    await runtime.stop("start failed").catch(() => {});
    process.stderr.write(stderrText(`lockerd: ${(e as Error).message}\n`));
    if (isLockerError(e, ErrorCode.Busy)) return EXIT.tempFail;
    if (isLockerError(e, ErrorCode.Storage)) return EXIT.cantCreate;
    // The host is not set up for the configured hardware (no I2C bus, no sysfs GPIO, not in group
    // gpio): restarting will not help, fixing the setup will (systemd does not restart on 78).
    if (isLockerError(e, ErrorCode.HardwareUnavailable) || isLockerError(e, ErrorCode.Config)) return EXIT.config;
    return EXIT.software;
  }
  log.info(
    { device: `${config.device.site}/${config.device.id}`, dataDir: resolve(args.data ?? "data"), simSocket: runtime.simPath, ms: Math.round(performance.now()) },
    runtime.simPath ? `ready: simulated bank; sim socket ${runtime.simPath}` : "ready",
  );
  notifier?.ready();
  notifier?.status(`ready: ${config.device.site}/${config.device.id}`);
  notifier?.startWatchdog();
  ready = true;
  if (reloadAsked) reload();
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(stderrText(`lockerd: ${String(e)}\n`));
    process.exit(EXIT.software);
  },
);

/** A log line at shutdown must never keep the process from ending (its reader may be gone). */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // nothing left to tell it to
  }
}
