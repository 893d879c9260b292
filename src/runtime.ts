// Builds one bank from a config and a data directory: ledger, hardware, bank, terminal and (sim
// profile) the simulator socket. main.ts owns the process; tests and benchmarks build the same
// runtime in-process. Constructors only store; start() brings things up, stop() takes them down in
// reverse order, relays last off.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { ErrorCode, isLockerError, LockerError } from "./errors.js";
import { compartmentIds, maxCommandLifetimeMs, type CompartmentLayout, type Config } from "./config/schema.js";
import { Bank } from "./bank/bank.js";
import { DeadlineScheduler } from "./bank/deadlines.js";
import { DoorAlarms } from "./bank/door-alarms.js";
import { TemperatureMonitor } from "./bank/temperature.js";
import { ItemSensors } from "./bank/item-sensors.js";
import { Technician } from "./bank/technician.js";
import { Terminal, type TerminalDeps } from "./bank/terminal.js";
import { LedgerCheck, Retention, StorageMonitor } from "./bank/storage.js";
import { AdminServer } from "./admin/server.js";
import { SimHardware } from "./drivers/sim/hardware.js";
import type { Hardware, Input } from "./drivers/types.js";
import {
  checkDataDir,
  ensureDataDir,
  keyFingerprint,
  loadDeviceKey,
  META_BANK,
  META_KEY,
  META_RESTORED,
  setAside,
  takeDataDirLock,
  tightenLedgerFiles,
  writeMarker,
  type BankIdentity,
} from "./ledger/datadir.js";
import { Ledger, SLOW_WRITE_MS } from "./ledger/ledger.js";
import { alarmMessage } from "./domain/alarms.js";
import type { Logger } from "./log.js";
import type { CompartmentView } from "./sim/protocol.js";
import { SimSocket } from "./sim/socket.js";
import { People, peopleOwner } from "./bank/people.js";
import { loadConfig } from "./config/load.js";
import { applyPolicy, RemoteOps, storedPolicy } from "./bank/remote.js";
import { applyLayout, layoutChanges, liveLayout, planLayout, planSummary, readLayoutState, refusalMessage, specOf, type LayoutPlan } from "./bank/layout.js";
import { configDifferences, sensorWarnings, temperatureDifferences } from "./config/checks.js";
import type { CommandRouter } from "./sync/commands.js";
import type { SyncLink } from "./sync/link.js";
import { Sealer, SignatureVerifier } from "./sync/seal.js";
import { BankClock } from "./sync/clock.js";
import { Passes } from "./bank/passes.js";
import { Fingers } from "./bank/fingers.js";

/** The whole ledger file's check after a start waits this long: never competing with the start itself. */
export const LEDGER_CHECK_DELAY_MS = 3000;

export interface RuntimeOptions {
  config: Config;
  dataDir: string;
  log: Logger;
  version: string;
  /** Wall clock for records (tests pass a controlled one). */
  now?: () => number;
  /** Open the sim socket (sim profile). Default true. */
  simSocket?: boolean;
  /** Open the admin socket for lockerctl. Default true. */
  adminSocket?: boolean;
  /** Ledger durability; benchmarks of the durable path keep FULL. */
  synchronous?: "FULL" | "NORMAL" | "OFF";
  /** --init: a new, empty bank in a directory that held one (its files are kept aside). */
  init?: boolean;
  /** The config file, read again by reloadFile() (SIGHUP, lockerctl reload). */
  configFile?: string;
  /** The devices as they are before the bank reads them at start (a test fits an item sensor). */
  onHardware?: (hardware: Hardware) => void;
  /** Where systemd-timesyncd flags a synchronized clock (sync/clock.ts; a test points it elsewhere). */
  timesyncDir?: string;
  /**
   * The monotonic clock a step of the wall clock is seen against (default performance.now; with
   * `now` given, that same clock: a controlled clock is time passing, never a step). A test whose
   * vi.setSystemTime means "time passes" passes Date.now.
   */
  monotonic?: () => number;
}

/** What SIGHUP did with a re-read config (Runtime.reload). */
export interface ReloadReport {
  /** The layout plan, against the ledger as it was. */
  plan: LayoutPlan;
  /**
   * applied: in force now (or nothing to apply); refused: something unsafe, nothing applied;
   * deferred: the hardware changed too, both wait for a restart; failed: the write did not happen.
   */
  layout: "applied" | "refused" | "deferred" | "failed";
  /** Config paths that changed and take effect only at the next restart. */
  restart: string[];
}

export class Runtime {
  /** The compartments served: the config's (until start), then the ledger's live ones (bank/layout.ts). */
  layout: readonly CompartmentLayout[];
  /** The config as given, before any server policy was applied to it: what SIGHUP compares with. */
  private readonly asStarted: Config;
  ledger!: Ledger;
  hardware!: Hardware;
  bank!: Bank;
  terminal!: Terminal;
  technician!: Technician;
  deadlines!: DeadlineScheduler;
  doorAlarms!: DoorAlarms;
  temperature!: TemperatureMonitor;
  items!: ItemSensors;
  admin: AdminServer | undefined;
  adminPath: string | undefined;
  sim: SimSocket | undefined;
  simPath: string | undefined;
  remote!: RemoteOps;
  people!: People;
  /** The wall clock as the bank judges it: synchronized or not, steps (sync/clock.ts). */
  clock!: BankClock;
  /** App passes at the scanner (bank/passes.ts). */
  passes!: Passes;
  /** Fingerprint slots and enrolments (bank/fingers.ts). */
  fingers!: Fingers;
  router: CommandRouter | undefined;
  link: SyncLink | undefined;
  readonly startedAt: number;
  private releaseLock: (() => void) | undefined;
  private readonly now: () => number;
  private stopping: Promise<void> | undefined;
  /** Start refused for the data directory (identity, damage): its ledger is left as it was. */
  private refused = false;
  storage: StorageMonitor | undefined;
  private retention: Retention | undefined;
  private ledgerCheck: LedgerCheck | undefined;
  private ledgerCheckTimer: NodeJS.Timeout | undefined;
  private readonly onInput = (input: Input) => this.terminal.input(input);

  constructor(private readonly opts: RuntimeOptions) {
    this.layout = compartmentIds(opts.config.bank.columns);
    this.asStarted = structuredClone(opts.config);
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
  }

  async start(): Promise<void> {
    const { config, dataDir, log } = this.opts;
    ensureDataDir(dataDir);
    this.releaseLock = await takeDataDirLock(dataDir);
    if (this.opts.init) {
      const aside = setAside(dataDir, this.now());
      log.warn({ dataDir, keptIn: aside ?? null }, "--init: starting a new, empty bank");
    }
    const { fresh, identity } = checkDataDir(dataDir);
    const deviceKey = loadDeviceKey(dataDir, fresh);
    const ledgerFile = join(dataDir, "ledger.db");
    if (!fresh) {
      const check = Ledger.checkForStart(ledgerFile);
      if (check !== "ok") throw this.refuse(new LockerError(ErrorCode.Storage, `${ledgerFile} is damaged (quick_check: ${check}): restore ledger.db and device.key from a backup, or start a new, empty bank deliberately with \`lockerd --init\``));
    }
    this.ledger = new Ledger(ledgerFile, { now: this.now, synchronous: this.opts.synchronous ?? "FULL" });
    tightenLedgerFiles(dataDir);
    this.clock = new BankClock({ now: this.now, monotonic: this.opts.monotonic ?? this.opts.now, timesyncDir: this.opts.timesyncDir, log });
    this.clock.attach(this.ledger); // from here on, events written on an unsynchronized clock say so
    this.confirmIdentity(dataDir, deviceKey, identity);
    this.layout = this.bringLayout(config);
    for (const warning of sensorWarnings(config)) log.warn(warning);
    this.hardware = await this.buildHardware(config);
    this.opts.onHardware?.(this.hardware);
    this.hardware.devices?.on("fault", (device, detail) => this.recordDevice("device.fault", device, { detail }));
    this.hardware.devices?.on("recovered", (device) => this.recordDevice("device.recovered", device, {}));
    await this.hardware.start(); // every relay off before anything else
    // Policies the server set (policy command) outlive restarts; a stored patch the config no longer admits is dropped.
    try {
      const stored = storedPolicy(this.ledger);
      if (stored.policies || stored.lockout) Object.assign(config, { ...config, ...applyPolicy(config, stored) });
    } catch (e) {
      log.warn({ err: e }, "stored policy overrides no longer valid with this config: ignored");
    }
    const sealer = config.sync.sealKey ? new Sealer(config.sync.sealKey) : undefined;
    if (config.sync.enabled && !sealer) log.warn("sync.sealKey not set: pickup codes cannot reach the server");
    this.bank = new Bank({ ledger: this.ledger, hardware: this.hardware, layout: this.layout, config, deviceKey, log, now: this.now, sealer });
    this.technician = new Technician({ bank: this.bank, ledger: this.ledger, hardware: this.hardware, now: this.now, log });
    this.fingers = new Fingers({ ledger: this.ledger, bank: this.bank, readers: this.hardware.fingerprints ?? [], now: this.now, log });
    this.passes = new Passes({ bank: this.bank, ledger: this.ledger, deviceKey, config, now: this.now, clock: this.clock, log });
    this.terminal = new Terminal({
      id: config.terminal.id,
      bank: this.bank,
      passes: this.passes,
      fingers: this.fingers,
      technician: this.technician,
      display: this.hardware.display,
      buzzer: this.hardware.buzzer,
      ...offerOf(this.layout),
      options: config.terminal,
      log,
    });
    await this.bank.start();
    this.people = new People({ ledger: this.ledger, deviceKey, owner: peopleOwner(config), now: this.now, fingers: this.fingers });
    this.remote = new RemoteOps({ bank: this.bank, technician: this.technician, ledger: this.ledger, config, deviceKey, people: this.people, now: this.now });
    this.deadlines = new DeadlineScheduler({ ledger: this.ledger, now: this.now, log, clock: this.clock });
    this.clock.start();
    this.deadlines.start();
    if (this.opts.adminSocket !== false) {
      // Under systemd (RuntimeDirectory=lockerd) the socket lives in /run/lockerd, where lockerctl looks first.
      this.adminPath = config.admin.socket ?? join(process.env.RUNTIME_DIRECTORY ?? dataDir, "admin.sock");
      const admin = new AdminServer({
        path: this.adminPath,
        group: config.admin.group,
        dataDir,
        config,
        version: this.opts.version,
        startedAt: this.startedAt,
        ledger: this.ledger,
        bank: this.bank,
        technician: this.technician,
        reload: () => this.reloadFile(),
        people: this.people,
        fingers: this.fingers,
        enrollScreen: (lines, done) => this.terminal.enrollment(lines, done),
        deviceKey,
        hardware: this.hardware,
        temperatures: () => this.temperature?.latest() ?? [],
        storage: () => this.storage?.status(),
        ledgerDamaged: () => this.ledgerCheck?.damaged ?? null,
        link: () => this.link?.info(),
        clock: () => ({ ...this.clock.info(config.sync), ...this.clock.state() }),
        now: this.now,
        log,
      });
      await admin.start();
      this.admin = admin;
    }
    if (this.hardware instanceof SimHardware && config.hardware.profile === "sim" && this.opts.simSocket !== false) {
      this.simPath = config.hardware.socket ?? join(dataDir, "sim.sock");
      const sim = new SimSocket({
        path: this.simPath,
        hardware: this.hardware,
        layout: this.layout,
        snapshot: () => this.snapshot(),
        device: `${config.device.site}/${config.device.id}`,
        terminal: config.terminal.id,
        log,
      });
      await sim.start();
      this.sim = sim;
      this.ledger.onCommit((events) => {
        if (events.some((e) => e.compartment)) sim.stateChanged();
      });
      // Only the simulated bank shows a code this way: it stands in for the server's SMS/e-mail.
      this.bank.on("codeIssued", (n) => sim.broadcast({ ev: "notify", ...n }));
    }
    // A disk that stalls holds every door behind its commit: said at once, then at most once a minute.
    const slow = { reported: 0, count: 0, worst: 0 };
    this.ledger.onSlowWrite((ms) => {
      slow.count++;
      slow.worst = Math.max(slow.worst, ms);
      const now = Date.now();
      if (now - slow.reported < 60_000) return;
      log.warn({ ms: Math.round(ms), slowWrites: slow.count, worstMs: Math.round(slow.worst) }, `slow disk: a ledger write took ${Math.round(ms)} ms (${slow.count} over ${SLOW_WRITE_MS} ms since the last report); doors wait for these writes`);
      Object.assign(slow, { reported: now, count: 0, worst: 0 });
    });
    // Alarms are heard at the bank (buzzer), logged, and shown on the sim socket; the ledger has them too.
    this.ledger.onCommit((events) => {
      for (const e of events) {
        if (!e.type.startsWith("alarm.")) continue;
        // Each with its next step (domain/alarms.ts); a clearance is news, not trouble.
        log[e.type === "alarm.cleared" ? "info" : "warn"]({ alarm: e.type, compartment: e.compartment, data: e.data }, alarmMessage(e));
        this.hardware.buzzer.sound("alarm");
        this.sim?.broadcast({ ev: "alarm", type: e.type, compartment: e.compartment, data: e.data });
      }
    });
    this.doorAlarms = new DoorAlarms({ bank: this.bank, ledger: this.ledger, hardware: this.hardware, limitS: config.policies.doorLeftOpenS, log });
    this.doorAlarms.on("leftOpen", (id) => this.terminal.notice([`Please close`, `door ${id}`]));
    this.doorAlarms.start();
    this.items = new ItemSensors({ bank: this.bank, ledger: this.ledger, hardware: this.hardware, now: this.now, log });
    this.items.start();
    const sensors = new Map(
      this.layout.flatMap((l) => {
        const sensor = this.hardware.thermometers.get(l.id);
        return l.temperature && sensor ? [[l.id, { sensor, minC: l.temperature.minC, maxC: l.temperature.maxC }] as const] : [];
      }),
    );
    this.temperature = new TemperatureMonitor({ ledger: this.ledger, sensors, intervalMs: config.policies.temperatureReadS * 1000, log: log.child({ module: "temperature" }) });
    this.temperature.start();
    for (const source of this.hardware.inputs) source.on("input", this.onInput);
    this.terminal.start();
    this.fingers.start((reader, touch) => this.terminal.finger(reader.name, touch));
    try {
      const restored = this.ledger.meta(META_RESTORED);
      this.ledger.transact((tx) => {
        // The first start after `lockerd restore`: the server learns this chain continues from the backup.
        if (restored) {
          tx.event({ type: "system.restored", data: JSON.parse(restored) as Record<string, unknown> });
          tx.setMeta(META_RESTORED, "");
        }
        tx.event({ type: "system.started", data: { version: this.opts.version, pid: process.pid } });
      });
    } catch (e) {
      if (!isLockerError(e, ErrorCode.Storage)) throw e;
      log.error({ err: e }, "started on a disk that takes no writes: refusing what needs one until it does");
    }
    this.storage = new StorageMonitor({
      dataDir,
      ledger: this.ledger,
      minFreeMb: config.storage.minFreeMb,
      checkS: config.storage.checkS,
      now: this.now,
      log,
      onRecovered: () => this.bank.resync(),
    });
    this.storage.start();
    this.retention = new Retention({
      ledger: this.ledger,
      days: config.sync.retentionDays,
      published: config.sync.enabled,
      now: this.now,
      log: log.child({ module: "retention" }),
      // A clock years ahead would prune what must be kept (events, command ids): not until it is set.
      // A damaged file: old events are not touched (a delete there would read the damaged pages).
      paused: () => !this.clock.mayPrune() || this.ledgerCheck?.damaged != null,
    });
    this.retention.start();
    // The whole file's check, old history included, a few seconds after the start (not competing
    // with it), in a child process: Ledger.checkForStart checked the rest before the bank served.
    this.ledgerCheck = new LedgerCheck({ file: ledgerFile, ledger: this.ledger, now: this.now, log: log.child({ module: "storage" }) });
    this.ledgerCheckTimer = setTimeout(() => this.ledgerCheck?.start(), LEDGER_CHECK_DELAY_MS);
    this.ledgerCheckTimer.unref();
    if (config.sync.enabled) await this.startLink(config, dataDir);
  }

  private async startLink(config: Config, dataDir: string): Promise<void> {
    // Loaded only when sync is on: mqtt.js is the largest dependency and a bank without a server never needs it.
    const [{ SyncLink }, { CommandRouter }] = await Promise.all([import("./sync/link.js"), import("./sync/commands.js")]);
    const { log } = this.opts;
    this.router = new CommandRouter({
      ledger: this.ledger,
      bank: this.bank,
      remote: this.remote,
      site: config.device.site,
      device: config.device.id,
      verifier: config.sync.serverPublicKey ? new SignatureVerifier(config.sync.serverPublicKey) : undefined,
      clockSkewMs: config.sync.clockSkewS * 1000,
      maxCommandLifetimeMs: maxCommandLifetimeMs(config.sync),
      now: this.now,
      clock: this.clock,
      log,
      replay: (from, limit) => this.link?.replay(from, limit) ?? 0,
      publishState: () => this.link?.publishState(),
    });
    const link = new SyncLink({
      config,
      ledger: this.ledger,
      router: this.router,
      version: this.opts.version,
      bootedAt: this.startedAt,
      dataDir,
      now: this.now,
      log,
      devices: () => this.hardware.health(),
      temperatures: () => this.temperature?.latest() ?? [],
      storage: () => this.storage?.status(),
      clockInfo: (t) => this.clock.info(config.sync, t),
    });
    this.link = link;
    link.start();
  }

  /**
   * The config's layout brought to the ledger at start (bank/layout.ts): what is safe applied in
   * one transaction; anything refused stops the start (exit 78) with nothing applied and nothing
   * written. A disk that refuses the write leaves the ledger's layout in force. Returns the
   * compartments the bank serves: the ledger's live ones.
   */
  private bringLayout(config: Config): CompartmentLayout[] {
    const { log } = this.opts;
    const configured = compartmentIds(config.bank.columns);
    const state = readLayoutState(this.ledger.db);
    if (state.appliedProblem) log.warn(state.appliedProblem);
    const plan = planLayout(configured.map(specOf), state.applied, state);
    if (plan.refused.length) throw this.refuse(new LockerError(ErrorCode.Config, refusalMessage(plan), { refused: plan.refused }));
    try {
      if (applyLayout(this.ledger, plan, this.now()) && layoutChanges(plan)) log.info({ layout: planSummary(plan) }, `layout applied: ${countsOf(plan)}`);
    } catch (e) {
      if (!isLockerError(e, ErrorCode.Storage)) throw e;
      log.error({ err: e, layout: planSummary(plan) }, "layout not brought up to date: the ledger takes no writes; serving the compartments it has");
    }
    if (plan.kept.length) log.info({ kept: plan.kept }, "layout: values changed outside the config (e.g. a server resize) kept: the config did not change them since last applied");
    return liveLayout(configured, this.ledger.compartments());
  }

  /**
   * SIGHUP: a re-read config. Its layout is planned against the ledger as at start (a door being
   * opened right now counts as in use) and, when nothing is refused, applied to the ledger and the
   * running bank at once (bank, terminal menu, sim); when something is refused, nothing is applied
   * and the bank runs on. Whatever else differs from the config the bank started with needs a
   * restart: listed in the log, not applied; a changed hardware section defers the layout to that
   * restart too (the layout is written for the hardware it names). A ledger that cannot be read
   * throws (main.ts logs it; the bank runs on).
   */
  reload(next: Config): ReloadReport {
    const { log } = this.opts;
    const configured = compartmentIds(next.bank.columns);
    const restart = [
      ...configDifferences(this.asStarted, next, ["bank.columns", "$comment", "$schema"]),
      ...temperatureDifferences(this.asStarted, next).map((id) => `bank.columns: temperature sensor of ${id}`),
    ];
    const state = readLayoutState(this.ledger.db);
    const plan = planLayout(configured.map(specOf), state.applied, state, this.bank.actuation.opening());
    const report = (layout: ReloadReport["layout"]): ReloadReport => {
      if (restart.length) log.warn({ restart }, `config reloaded: these changes take effect only after a restart: ${restart.join(", ")}`);
      return { plan, layout, restart };
    };
    if (restart.some((p) => p === "hardware" || p.startsWith("hardware."))) {
      if (layoutChanges(plan) || plan.refused.length) log.warn({ layout: planSummary(plan) }, "layout not applied: the hardware section changed too; both take effect at the next restart");
      return report("deferred");
    }
    if (plan.refused.length) {
      log.error({ refused: plan.refused }, `${refusalMessage(plan)}; still running on the old layout`);
      return report("refused");
    }
    try {
      applyLayout(this.ledger, plan, this.now());
    } catch (e) {
      log.error({ err: e, layout: planSummary(plan) }, "layout not applied: still running on the old layout");
      return report("failed");
    }
    this.serve(liveLayout(configured, this.ledger.compartments()));
    if (layoutChanges(plan)) log.info({ layout: planSummary(plan) }, `config reloaded: layout applied: ${countsOf(plan)}`);
    else log.info("config reloaded: layout unchanged");
    if (plan.kept.length) log.info({ kept: plan.kept }, "layout: values changed outside the config (e.g. a server resize) kept: the config did not change them since last applied");
    return report("applied");
  }

  /**
   * SIGHUP and `lockerctl reload`: read the config file again and reload(). A file that is not a
   * valid config throws LockerError(config) with its issues; nothing is applied, the bank runs on.
   */
  reloadFile(): ReloadReport {
    const file = this.opts.configFile;
    if (!file) throw new LockerError(ErrorCode.Config, "this bank was started without a config file to read again");
    return this.reload(loadConfig(file));
  }

  /** The running bank serves these compartments from now on (after a live layout change). */
  private serve(layout: CompartmentLayout[]): void {
    this.layout = layout;
    if (this.hardware instanceof SimHardware) this.hardware.addChannels(layout.map((l) => l.lock));
    this.bank.setLayout(layout);
    const offer = offerOf(layout);
    this.terminal.setOffer(offer.sizes, offer.specials);
    this.sim?.setLayout(layout);
  }

  /** Idempotent. Inputs stop first, relays go off, the ledger closes last. */
  stop(reason = "stop"): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  snapshot(): CompartmentView[] {
    return this.ledger.compartments().map((c) => ({
      id: c.id,
      size: c.size,
      state: c.state,
      enabled: c.enabled,
      door: c.door,
      parcel: c.parcelId,
      since: c.since,
    }));
  }

  /**
   * The ledger, the key and the directory's marker must be one bank's, and the custody chain's tail
   * must verify; a new bank (or one from before the marker) gets its identity written now.
   */
  private confirmIdentity(dataDir: string, key: Buffer, marker: BankIdentity | undefined): void {
    const ledger = this.ledger;
    const fingerprint = keyFingerprint(key);
    const bank = ledger.meta(META_BANK);
    const way = "restore ledger.db and device.key from a backup, or start a new, empty bank deliberately with `lockerd --init`";
    if (bank !== undefined && marker !== undefined && marker.bank !== bank) {
      throw this.refuse(new LockerError(ErrorCode.Storage, `${dataDir}: ledger.db belongs to bank ${bank}, but this directory held bank ${marker.bank}: ${way}`));
    }
    const keyOnRecord = ledger.meta(META_KEY) ?? marker?.keyFingerprint;
    if (keyOnRecord !== undefined && keyOnRecord !== fingerprint) {
      throw this.refuse(new LockerError(ErrorCode.Storage, `${dataDir}: device.key does not belong to this ledger (fingerprint ${fingerprint}, the ledger's ${keyOnRecord}): ${way}`));
    }
    const tail = ledger.verifyTail(1000);
    if (!tail.ok) {
      throw this.refuse(new LockerError(ErrorCode.Storage, `${dataDir}: the custody chain does not verify at seq ${tail.brokenAt} (${tail.reason}): ${way}`));
    }
    const identity: BankIdentity = { bank: bank ?? marker?.bank ?? randomUUID(), keyFingerprint: fingerprint, createdAt: marker?.createdAt ?? this.now() };
    if (bank === undefined || ledger.meta(META_KEY) === undefined) {
      ledger.transact((tx) => {
        tx.setMeta(META_BANK, identity.bank);
        tx.setMeta(META_KEY, fingerprint);
      });
    }
    if (marker === undefined) writeMarker(dataDir, identity);
  }

  /** A start refused for the data directory's sake: nothing more is written to that ledger. */
  private refuse(e: LockerError): LockerError {
    this.refused = true;
    return e;
  }

  private async doStop(reason: string): Promise<void> {
    const { log } = this.opts;
    for (const source of this.hardware?.inputs ?? []) source.off("input", this.onInput);
    this.fingers?.stop();
    this.terminal?.stop();
    this.storage?.stop();
    this.retention?.stop();
    clearTimeout(this.ledgerCheckTimer);
    this.ledgerCheck?.stop();
    this.deadlines?.stop();
    this.clock?.stop();
    this.doorAlarms?.stop();
    this.items?.stop();
    await this.temperature?.stop();
    await this.admin?.stop();
    // No more server commands; events keep flowing until the last one (system.stopped) is written.
    this.link?.quiesce();
    await this.sim?.stop();
    await this.bank?.stop();
    try {
      await this.hardware?.stop();
    } catch (e) {
      log.error({ err: e }, "hardware stop failed");
    }
    if (this.refused) this.ledger?.close();
    if (this.ledger?.db.open && !this.refused) {
      try {
        this.ledger.transact((tx) => tx.event({ type: "system.stopped", data: { reason } }));
      } catch (e) {
        log.error({ err: e }, "could not record stop");
      }
    }
    // system.stopped goes out with the rest of the backlog, then offline (SyncLink.stop).
    await this.link?.stop();
    if (this.ledger?.db.open) this.ledger.close();
    this.releaseLock?.();
  }

  private async buildHardware(config: Config): Promise<Hardware> {
    const hw = config.hardware;
    switch (hw.profile) {
      case "sim":
        return new SimHardware({
          channels: this.layout.map((l) => l.lock),
          springOpen: hw.springOpen,
          openDelayMs: hw.openDelayMs,
          timeScale: hw.timeScale,
          thermometers: this.layout.flatMap((l) => (l.temperature ? [{ compartment: l.id, celsius: (l.temperature.minC + l.temperature.maxC) / 2 }] : [])),
          terminal: config.terminal.id,
        });
      case "real": {
        const { buildRealHardware } = await import("./drivers/real/build.js");
        return buildRealHardware(hw, { log: this.opts.log, terminal: config.terminal.id });
      }
    }
  }

  /**
   * A device that stops answering, or comes back: on record (with the compartments whose locks it
   * drives: not offered while it is down), and in lockerctl status. When a lock board is back, the
   * flows it held are settled from the doors (Bank.settleHeld).
   */
  private recordDevice(type: "device.fault" | "device.recovered", device: string, data: Record<string, unknown>): void {
    if (!this.ledger?.db.open) return;
    const channels = this.hardware.lockChannelsOf?.(device) ?? [];
    const compartments = this.layout.filter((l) => channels.includes(l.lock)).map((l) => l.id);
    try {
      this.ledger.transact((tx) => tx.event({ type, data: { device, ...data, ...(compartments.length ? { compartments } : {}) } }));
    } catch (e) {
      this.opts.log.error({ err: e, device }, "device event not recorded");
    }
    if (type === "device.recovered" && compartments.length && (this.bank as Bank | undefined)) {
      const settled = this.bank.settleHeld();
      if (settled.length) this.opts.log.info({ device, settled }, "flows held by the board settled");
    }
  }
}

/** What the keypad's menus offer for a layout: its sizes, and the special kinds it has. */
function offerOf(layout: readonly CompartmentLayout[]): Pick<TerminalDeps, "sizes" | "specials"> {
  return {
    sizes: layout.map((l) => l.size),
    specials: [...(layout.some((l) => l.refrigerated) ? (["refrigerated"] as const) : []), ...(layout.some((l) => l.accessible) ? (["accessible"] as const) : [])],
  };
}

/** "2 added, 1 retired, 1 changed, 0 reactivated" */
function countsOf(plan: LayoutPlan): string {
  return `${plan.added.length} added, ${plan.retired.length} retired, ${plan.changed.length} changed, ${plan.reactivated.length} reactivated`;
}
