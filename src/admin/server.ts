// The admin socket lockerctl talks to: a unix socket (0660, group lockerd-admin), JSON lines in,
// one reply per request, plus stream lines for --follow / --watch. A bad request gets an error
// reply and never disturbs the daemon. A connection proves its OS user first (hello/prove,
// identity.ts): changes are recorded under that user, and refused on a connection that has not.
//
//   lockerctl ──line──▶ JSON + zod ──▶ run(cmd) ──▶ Technician / Bank / Ledger ──▶ reply line
//                                         └── follow/watch: ledger commits, door edges ──▶ stream lines
import type { SyncLink } from "../sync/link.js";
import { createHash } from "node:crypto";
import { chownSync, closeSync, openSync, readdirSync, readFileSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { formatIssues } from "../config/load.js";
import type { Config } from "../config/schema.js";
import type { Bank } from "../bank/bank.js";
import type { Technician } from "../bank/technician.js";
import { alarmMessage } from "../domain/alarms.js";
import { isOpening, type CompartmentState } from "../domain/compartment.js";
import type { DoorState, Hardware } from "../drivers/types.js";
import { ErrorCode, isLockerError, LockerError, toErrorBody } from "../errors.js";
import type { ChangedBy, People } from "../bank/people.js";
import { describePlan } from "../bank/layout.js";
import type { EnrollProgress, Fingers } from "../bank/fingers.js";
import type { ReloadReport } from "../runtime.js";
import type { Ledger } from "../ledger/ledger.js";
import { LineServer, type LineClient } from "../lines/server.js";
import type { Logger } from "../log.js";
import { compartmentRows, eventMatcher, eventView, findEvents, ledgerChecks, type SelftestCheck } from "./queries.js";
import { ConnectionIdentity, ProofDir, ProofError } from "./identity.js";
import { AdminErrorCode, adminRequest, MAX_REQUEST_BYTES, needsIdentity, type AdminRequest, type CommandRequest } from "./requests.js";
import type { Alarm, BackupResult, ReloadResult, ClockStatus, CompartmentRow, StatusResult, StorageStatus, StreamItem } from "./protocol.js";

/** What lockerctl shows of the server link (the link's own report; a type import loads no mqtt). */
export type LinkInfo = ReturnType<SyncLink["info"]>;

export interface AdminDeps {
  path: string;
  group: string;
  dataDir: string;
  config: Config;
  version: string;
  startedAt: number;
  ledger: Ledger;
  bank: Bank;
  technician: Technician;
  /** Read the config file again (Runtime.reloadFile); absent: no file to read. */
  reload?: (() => ReloadReport) | undefined;
  people: People;
  /** Fingerprint slots and enrolments; absent: the bank has none. */
  fingers?: Fingers | undefined;
  /** The bank's display during an enrolment (Terminal.enrollment). */
  enrollScreen?: ((lines: string[] | null, done?: { lines: string[]; ok: boolean }) => void) | undefined;
  /** The HMAC key of the ledger's secrets: it goes into a backup with the ledger. */
  deviceKey: Buffer;
  hardware: Hardware;
  /** Latest readings of the refrigerated compartments' sensors. */
  temperatures: () => StatusResult["temperatures"];
  /** The data directory's disk (StorageMonitor), once started. */
  storage?: (() => StorageStatus | undefined) | undefined;
  /** The whole-file check found the ledger damaged (bank/storage.ts, LedgerCheck): since when, what. */
  ledgerDamaged?: (() => { since: number; detail: string } | null) | undefined;
  /** The server link, when sync is enabled. */
  link?: (() => LinkInfo | undefined) | undefined;
  /** The bank's clock: synchronized or not, its last step (sync/clock.ts). */
  clock?: (() => ClockStatus) | undefined;
  now: () => number;
  log: Logger;
}

const WATCH_EVENTS = 20;
/** Raw bytes per backup chunk (a 256 KB base64 line). */
const BACKUP_CHUNK = 192 * 1024;
/** A backup whose client reads nothing for this long is abandoned (its copy deleted). */
const BACKUP_STALL_MS = 30_000;

function withTimeout<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(error()), ms)))]).finally(() => clearTimeout(timer));
}

export class AdminServer {
  private readonly lines: LineServer;
  private backingUp = false;
  private readonly log: Logger;
  /** Who each connection has proven it is (identity.ts). */
  private readonly proofs: ProofDir;
  private readonly conns = new WeakMap<LineClient, ConnectionIdentity>();

  constructor(private readonly deps: AdminDeps) {
    this.log = deps.log.child({ module: "admin" });
    this.proofs = new ProofDir({ socketPath: deps.path, log: this.log });
    this.lines = new LineServer({
      path: deps.path,
      mode: 0o660,
      maxLineBytes: MAX_REQUEST_BYTES,
      maxBacklogBytes: 4 * 2 ** 20,
      log: this.log,
      onMessage: (client, value) => void this.handle(client, value),
      onBadLine: (client, message) => client.send({ id: null, ok: false, error: { code: ErrorCode.BadInput, message } }),
    });
  }

  async start(): Promise<void> {
    // A backup copy left by a crash mid-backup holds the device key: it goes at the next start.
    for (const f of readdirSync(this.deps.dataDir)) if (/^backup-[0-9a-f]+\.tmp$/.test(f)) rmSync(join(this.deps.dataDir, f), { force: true });
    await this.lines.start();
    this.applyGroup();
    this.proofs.prepare();
  }

  async stop(): Promise<void> {
    await this.lines.stop();
    this.proofs.close();
  }

  /** Technicians reach the socket through group membership, not through root. */
  private applyGroup(): void {
    const { group, path } = this.deps;
    const line = readFileSync("/etc/group", "utf8").split("\n").find((l) => l.split(":")[0] === group);
    const gid = line ? Number(line.split(":")[2]) : NaN;
    if (!Number.isInteger(gid)) {
      this.log.warn({ group, path }, "admin group missing: only the daemon's own user and group can use lockerctl");
      return;
    }
    try {
      chownSync(path, -1, gid);
    } catch (e) {
      this.log.warn({ group, err: e }, "cannot give the admin socket to its group");
    }
  }

  private async handle(client: LineClient, raw: unknown): Promise<void> {
    const id = typeof (raw as { id?: unknown })?.id === "number" ? (raw as { id: number }).id : null;
    const parsed = adminRequest().safeParse(raw);
    if (!parsed.success) {
      return client.send({ id, ok: false, error: { code: ErrorCode.BadInput, message: formatIssues(parsed.error).join("; ") } });
    }
    if (parsed.data.cmd === "hello" || parsed.data.cmd === "prove") return client.send(this.identify(client, parsed.data));
    // A change is recorded under the proven OS user; `user` is only the client's claim, kept beside it.
    const proven = this.connection(client).identity;
    if (!proven && needsIdentity(parsed.data.cmd)) {
      this.log.warn({ cmd: parsed.data.cmd, claimedUser: parsed.data.user }, "admin change refused: connection has not proven its user");
      return client.send({
        id,
        ok: false,
        error: {
          code: AdminErrorCode.IdentityRequired,
          message: `${parsed.data.cmd} changes the bank and is recorded in your name, but this connection has not proven which OS user it is (hello, then prove: src/admin/protocol.ts)`,
          context: { proofDir: this.proofs.path },
        },
      });
    }
    const claimed = parsed.data.user;
    const req: AdminCall = proven
      ? { ...parsed.data, user: proven.user, verified: true, ...(claimed !== proven.user ? { claimedUser: claimed } : {}) }
      : { ...parsed.data, verified: false };
    try {
      const result = await this.run(req, (item) => client.send({ id: req.id, stream: item }), (fn) => client.onClose(fn), () => client.drained());
      client.send({ id: req.id, ok: true, result });
    } catch (e) {
      if (!isLockerError(e)) this.log.error({ err: e, cmd: req.cmd }, "admin command failed");
      const body = toErrorBody(e);
      client.send({ id: req.id, ok: false, error: isLockerError(e) ? { ...body, context: e.context } : body });
    }
  }

  /** hello and prove: the connection's identity handshake (protocol.ts header, identity.ts). */
  private identify(client: LineClient, req: Extract<AdminRequest, { cmd: "hello" | "prove" }>): unknown {
    const conn = this.connection(client);
    try {
      if (req.cmd === "hello") return { id: req.id, ok: true, result: conn.hello() };
      const who = conn.prove(req.args.nonce, req.args.uid);
      this.log.info({ user: who.user, uid: who.uid, claimedUser: req.user }, "admin connection proved its user");
      return { id: req.id, ok: true, result: who };
    } catch (e) {
      if (!(e instanceof ProofError)) {
        this.log.error({ err: e, cmd: req.cmd }, "admin identity handshake failed");
        return { id: req.id, ok: false, error: toErrorBody(e) };
      }
      this.log.warn({ cmd: req.cmd, reason: e.reason, claimedUid: req.cmd === "prove" ? req.args.uid : undefined, claimedUser: req.user }, `admin identity proof refused: ${e.message}`);
      const code = e.reason === "unavailable" ? AdminErrorCode.ProofUnavailable : AdminErrorCode.ProofRefused;
      return { id: req.id, ok: false, error: { code, message: e.message, context: { reason: e.reason, proofDir: this.proofs.path } } };
    }
  }

  private connection(client: LineClient): ConnectionIdentity {
    let c = this.conns.get(client);
    if (!c) {
      const made = this.proofs.connection();
      client.onClose(() => made.close());
      this.conns.set(client, made);
      c = made;
    }
    return c;
  }

  private async run(req: AdminCall, stream: (item: StreamItem) => void, onClose: (fn: () => void) => void, drained: () => Promise<void>): Promise<unknown> {
    const { technician, ledger, people } = this.deps;
    this.log.info({ cmd: req.cmd, user: req.user, verified: req.verified, ...(req.claimedUser ? { claimedUser: req.claimedUser } : {}) }, req.verified ? "admin request" : "admin request (unverified connection: user is only claimed)");
    switch (req.cmd) {
      case "status":
        return this.status();
      case "compartments":
        return { compartments: this.rows() };
      case "open":
        return technician.open(req.args.compartment, { user: req.user, claimedUser: req.claimedUser, reason: req.args.reason });
      case "disable":
      case "enable": {
        technician.setEnabled(req.args.compartment, req.cmd === "enable", { user: req.user, claimedUser: req.claimedUser, reason: req.args.reason });
        return { compartment: this.deps.bank.compartmentByKeypad(req.args.compartment).id, enabled: req.cmd === "enable" };
      }
      case "relay-test":
        return { results: await technician.relayTest(req.args.compartments, { user: req.user, claimedUser: req.claimedUser, reason: req.args.reason }) };
      case "sensors": {
        if (req.args.watch) {
          const onDoor = (channel: number, door: DoorState) => {
            const id = this.deps.bank.compartmentOnChannel(channel);
            if (id) stream({ kind: "door", compartment: id, door, ts: this.deps.now() });
          };
          this.deps.hardware.doors.on("change", onDoor);
          onClose(() => this.deps.hardware.doors.off("change", onDoor));
        }
        return { doors: technician.sensors() };
      }
      case "selftest":
        return this.selftest();
      case "events": {
        const { follow, ...query } = req.args;
        const events = findEvents(ledger, query);
        if (follow) {
          const match = eventMatcher(query.type);
          onClose(ledger.onCommit((evs) => evs.filter(match).forEach((e) => stream({ kind: "event", event: eventView(e) }))));
        }
        return { events: events.map(eventView) };
      }
      case "sync":
        return this.sync();
      case "stats":
        // stats.ts and ledger/backup.ts are loaded on first use: not on the way to ready
        return (await import("./stats.js")).computeStats(ledger, { now: this.deps.now(), days: req.args.days });
      case "people-list":
        return { owner: people.owner, people: people.list() };
      case "people-add":
        return people.add({ id: req.args.person, name: req.args.name, roles: req.args.roles, number: req.args.number }, this.changedBy(req));
      case "people-enable":
      case "people-disable":
        return people.setActive(req.args.person, req.cmd === "people-enable", this.changedBy(req), req.args.reason);
      case "people-set-pin":
        return people.setPin(req.args.person, req.args.pin, this.changedBy(req));
      case "people-enroll-finger": {
        // lockerctl interrupted (the connection closes): the enrolment ends at once, the display is the public's again.
        const cancel = new AbortController();
        onClose(() => cancel.abort());
        return this.enrollFinger(req, stream, cancel.signal);
      }
      case "people-remove-finger": {
        if (!this.deps.fingers) throw new LockerError(ErrorCode.HardwareUnavailable, "this bank has no fingerprint reader");
        const r = await this.deps.fingers.remove(req.args.person, this.changedBy(req), req.args.slot);
        return { person: req.args.person, ...r };
      }
      case "people-set-badge":
        return people.setBadges(req.args.person, req.args.badges, this.changedBy(req));
      case "reload": {
        if (!this.deps.reload) throw new LockerError(ErrorCode.Config, "this bank cannot read its config again (no config file)");
        let r: ReloadReport;
        try {
          r = this.deps.reload();
        } catch (e) {
          const issues = isLockerError(e, ErrorCode.Config) ? (e.context.issues as string[] | undefined) : undefined;
          if (!issues) throw e;
          throw new LockerError(ErrorCode.Config, `the config is not valid: nothing applied, running on as before:\n${issues.map((i) => `  - ${i}`).join("\n")}`, { issues });
        }
        this.log.info({ user: req.user, layout: r.layout }, "config reloaded by lockerctl");
        return { layout: r.layout, plan: describePlan(r.plan), restart: r.restart } satisfies ReloadResult;
      }
      case "backup":
        return this.backup(req, stream, drained);
      case "watch": {
        let queued = false;
        onClose(
          ledger.onCommit((evs) => {
            for (const e of evs) stream({ kind: "event", event: eventView(e) });
            if (queued) return;
            queued = true;
            setImmediate(() => {
              queued = false;
              stream({ kind: "compartments", compartments: this.rows(), alarms: this.alarmsView() });
            });
          }),
        );
        const recent = ledger.eventsFrom(Math.max(1, ledger.headSeq - WATCH_EVENTS + 1), WATCH_EVENTS).map(eventView);
        return { device: this.device(), compartments: this.rows(), alarms: this.alarmsView(), events: recent };
      }
    }
  }

  /**
   * The module's enrolment sequence with the person at the sensor: each step on the bank's display
   * and streamed to lockerctl; the slot and person.finger_enrolled in one transaction at the end.
   */
  private async enrollFinger(req: Extract<AdminCall, { cmd: "people-enroll-finger" }>, stream: (item: StreamItem) => void, signal: AbortSignal): Promise<unknown> {
    const { fingers, enrollScreen } = this.deps;
    if (!fingers) throw new LockerError(ErrorCode.HardwareUnavailable, "this bank has no fingerprint reader (a reader of type \"fingerprint\" in the hardware profile)");
    const person = this.deps.ledger.person(req.args.person);
    const who = person?.name ?? req.args.person;
    const screen = (s: EnrollProgress): string[] => {
      switch (s.step) {
        case "place":
          return ["Enrol finger:", who, `Place finger ${s.n}/${s.of}`];
        case "again":
          return ["Enrol finger:", who, `Again: place ${s.n}/${s.of}`];
        case "lift":
          return ["Enrol finger:", who, "Lift finger"];
        case "stored":
          return ["Enrol finger:", who, "Stored"];
      }
    };
    try {
      const slot = await fingers.enroll(req.args.person, this.changedBy(req), (s) => {
        enrollScreen?.(screen(s));
        stream({ kind: "finger", ...s });
      }, { captures: req.args.captures, signal, ...(req.args.reader ? { reader: req.args.reader } : {}) });
      enrollScreen?.(null, { lines: ["Finger enrolled", who], ok: true });
      this.log.info({ user: req.user, person: req.args.person, slot: slot.slot }, "fingerprint enrolled");
      return { person: req.args.person, reader: slot.reader, slot: slot.slot, fingers: fingers.slotsOf(req.args.person).filter((f) => f.status === "live").length };
    } catch (e) {
      const reason = isLockerError(e) ? String(e.context.reason ?? e.code) : "error";
      this.log.info({ user: req.user, person: req.args.person, reason }, `fingerprint not enrolled: ${(e as Error).message}`);
      enrollScreen?.(null, { lines: ["Enrolment failed", reason], ok: false });
      throw e;
    }
  }

  /** Who a change is recorded as made by. */
  private changedBy(req: AdminCall): ChangedBy {
    return { actor: req.user, data: { via: "lockerctl", ...(req.claimedUser ? { claimedUser: req.claimedUser } : {}) } };
  }

  /** A consistent copy of the ledger and its key, streamed in chunks; the temporary file never outlives the request. */
  /**
   * One backup at a time (each is a copy of the ledger on the data directory's disk), and a client
   * that stops reading for BACKUP_STALL_MS loses it: the copy never outlives the request.
   */
  private async backup(req: AdminCall, stream: (item: StreamItem) => void, drained: () => Promise<void>): Promise<BackupResult> {
    const { ledger, deviceKey, dataDir, now } = this.deps;
    const { backupTemp, writeBackup } = await import("../ledger/backup.js"); // before the busy check: that and the flag stay one step
    if (this.backingUp) throw new LockerError(ErrorCode.Busy, "a backup is being made: try again when it is done");
    this.backingUp = true;
    const tmp = backupTemp(dataDir);
    try {
      const info = await writeBackup(ledger, deviceKey, tmp, now());
      const hash = createHash("sha256");
      const fd = openSync(tmp, "r");
      try {
        const buf = Buffer.alloc(BACKUP_CHUNK);
        for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
          hash.update(buf.subarray(0, n));
          stream({ kind: "chunk", data: buf.subarray(0, n).toString("base64") });
          await withTimeout(drained(), BACKUP_STALL_MS, () => new LockerError(ErrorCode.HardwareTimeout, `the client read nothing for ${BACKUP_STALL_MS / 1000} s: backup abandoned`));
        }
      } finally {
        closeSync(fd);
      }
      this.log.info({ user: req.user, bytes: info.bytes, headSeq: info.headSeq }, "backup sent");
      return { ...info, sha256: hash.digest("hex") };
    } finally {
      this.backingUp = false;
      rmSync(tmp, { force: true });
    }
  }

  private device(): string {
    return `${this.deps.config.device.site}/${this.deps.config.device.id}`;
  }

  private rows(): CompartmentRow[] {
    const { bank, ledger, now } = this.deps;
    return compartmentRows(ledger, now(), { keypad: (id) => bank.layoutOf(id).keypadNumber });
  }

  private alarmsView(): Alarm[] {
    const duplicate = this.deps.link?.()?.duplicateIdentity;
    const { site, id } = this.deps.config.device;
    const storage = this.deps.storage?.();
    const damaged = this.deps.ledgerDamaged?.();
    return [
      ...this.deps.technician.alarms(),
      ...(storage && storage.state !== "ok"
        ? [
            {
              kind: storage.state === "full" ? "disk_full" : "disk_low",
              compartment: null,
              since: storage.since ?? this.deps.now(),
              detail: `${storage.state === "full" ? "disk full: the bank refuses what needs a write" : "disk space low"} (${storage.path}, ${storage.freeBytes === null ? "?" : Math.floor(storage.freeBytes / 1024)} KB free)`,
            },
          ]
        : []),
      ...(damaged ? [{ kind: "ledger_damaged", compartment: null, since: damaged.since, detail: alarmMessage({ type: "alarm.ledger_damaged", compartment: null, data: { detail: damaged.detail.slice(0, 200) } }) }] : []),
      ...(duplicate
        ? [{ kind: "duplicate_identity", compartment: null, since: duplicate.since, detail: `another bank connects as ${site}/${id} (${duplicate.evidence}, ${duplicate.takeovers} takeovers): give each bank its own site/device; reconnecting only every few minutes` }]
        : []),
    ];
  }

  private sync(): StatusResult["sync"] {
    const { config, ledger } = this.deps;
    const link = this.deps.link?.();
    return {
      enabled: config.sync.enabled,
      connected: link?.state === "online",
      // The endpoint the link is on (or tries next) of sync.url's list.
      url: config.sync.enabled ? (link?.broker ?? [config.sync.url].flat()[0]!) : null,
      backlog: ledger.unpublished(),
      lastAckAt: link?.lastAckAt ?? null,
      headSeq: ledger.headSeq,
      ...(link ? { lastError: link.lastError, instance: link.instance, duplicateIdentity: link.duplicateIdentity, endpoints: link.endpoints, protocol: link.protocol } : {}),
    };
  }

  private status(): StatusResult {
    const { config, version, startedAt, hardware, now, bank } = this.deps;
    const counts: Record<string, number> = {};
    for (const c of bank.compartments()) {
      counts[c.state] = (counts[c.state] ?? 0) + 1;
      if (!c.enabled) counts.disabled = (counts.disabled ?? 0) + 1;
    }
    const t = now();
    return {
      device: `${config.device.site}/${config.device.id}`,
      version,
      pid: process.pid,
      startedAt,
      uptimeMs: t - startedAt,
      now: t,
      devices: hardware.health(),
      sync: this.sync(),
      alarms: this.alarmsView(),
      counts,
      temperatures: this.deps.temperatures(),
      ...(this.deps.storage?.() ? { storage: this.deps.storage()! } : {}),
      ...(this.deps.clock ? { clock: this.deps.clock() } : {}),
    };
  }

  private selftest(): { ok: boolean; checks: SelftestCheck[] } {
    const { hardware, ledger, dataDir, config, technician } = this.deps;
    const checks: SelftestCheck[] = [];
    // Every configured device: found or not, answering or faulted.
    const said = { ok: "found, answering", degraded: "found, degraded", faulted: "found, not answering (faulted)", absent: "not found" } as const;
    for (const d of hardware.health()) checks.push({ name: d.name, ok: d.health === "ok", detail: `${said[d.health]}${d.detail ? `: ${d.detail}` : ""}` });
    const sensors = technician.sensors();
    const unknown = sensors.filter((s) => s.door === "unknown");
    checks.push({ name: "door sensors read", ok: unknown.length === 0, detail: unknown.length ? `no reading: ${unknown.map((s) => s.compartment).join(", ")}` : "every door reads open or closed" });
    checks.push(doorPolarityCheck(sensors, new Map(ledger.compartments().map((c) => [c.id, c.state]))));
    // What needs no hardware, as lockerctl also checks it from the ledger file alone (queries.ts).
    const storage = this.deps.storage?.();
    checks.push(...ledgerChecks(ledger, dataDir, { minFreeBytes: storage?.minFreeBytes ?? config.storage.minFreeMb * 2 ** 20, storage }));
    const link = this.deps.link?.();
    checks.push(
      !config.sync.enabled || !link
        ? { name: "server link", ok: true, detail: "disabled in config" }
        : link.state === "online"
          ? { name: "server link", ok: true, detail: `connected to ${link.broker}, backlog ${link.backlog}` }
          : { name: "server link", ok: false, detail: `${link.state}: ${link.lastError ?? "no answer"} (${link.broker}); backlog ${link.backlog} kept` },
    );
    return { ok: checks.every((c) => c.ok), checks };
  }
}

/**
 * A request as it runs. On a proven connection `user` is the proven OS user and `claimedUser` what
 * the client said when that differs; on an unproven one (read-only commands only) `user` is the
 * client's unverified claim and `verified` false.
 */
type AdminCall = CommandRequest & { verified: boolean; claimedUser?: string };

export type { SelftestCheck };

/**
 * Doors that read open while nobody was let in (no loading / unloading flow). Two or more, and most
 * of them, is not a crowd of open doors but the door sense read the wrong way round: every shut door
 * reads "open". Doors with no reading are left to the "door sensors read" check.
 */
export function doorPolarityCheck(doors: readonly { compartment: string; door: DoorState }[], states: ReadonlyMap<string, CompartmentState>): SelftestCheck {
  const idle = doors.filter((d) => d.door !== "unknown" && !isOpening(states.get(d.compartment) ?? "free"));
  const open = idle.filter((d) => d.door === "open").length;
  const detail = `${open} of ${idle.length} doors read open at idle`;
  if (open < 2 || open * 2 <= idle.length) return { name: "door polarity", ok: true, detail };
  return {
    name: "door polarity",
    ok: false,
    detail: `${detail}: the door/lock-bit polarity is likely inverted (lockBitOpen in the RS485 board's config, activeLow of GPIO/I2C door inputs); if the doors really stand open, shut them and run selftest again`,
  };
}

