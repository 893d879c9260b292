// The admin socket lockerctl talks to: a unix socket (0660, group lockerd-admin), JSON lines in,
// one reply per request, plus stream lines for --follow / --watch. A bad request gets an error
// reply and never disturbs the daemon.
//
//   lockerctl ──line──▶ JSON + zod ──▶ run(cmd) ──▶ Technician / Bank / Ledger ──▶ reply line
//                                         └── follow/watch: ledger commits, door edges ──▶ stream lines
import type { SyncLink } from "../sync/link.js";
import { chownSync, readFileSync, statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import { formatIssues } from "../config/load.js";
import type { Config } from "../config/schema.js";
import type { Bank } from "../bank/bank.js";
import type { Technician } from "../bank/technician.js";
import { isOpening, type CompartmentState } from "../domain/compartment.js";
import type { LedgerEvent } from "../domain/events.js";
import type { DoorState, Hardware } from "../drivers/types.js";
import { ErrorCode, isLockerError, toErrorBody } from "../errors.js";
import { Ledger } from "../ledger/ledger.js";
import { LineServer, type LineClient } from "../lines/server.js";
import type { Logger } from "../log.js";
import { computeStats } from "./stats.js";
import { AdminRequest, MAX_REQUEST_BYTES, type Alarm, type CompartmentRow, type StatusResult, type StorageStatus, type StreamItem } from "./protocol.js";

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
  hardware: Hardware;
  /** Latest readings of the refrigerated compartments' sensors. */
  temperatures: () => StatusResult["temperatures"];
  /** The data directory's disk (StorageMonitor), once started. */
  storage?: (() => StorageStatus | undefined) | undefined;
  /** The server link, when sync is enabled. */
  link?: (() => LinkInfo | undefined) | undefined;
  now: () => number;
  log: Logger;
}

const WATCH_EVENTS = 20;

export class AdminServer {
  private readonly lines: LineServer;
  private readonly log: Logger;

  constructor(private readonly deps: AdminDeps) {
    this.log = deps.log.child({ module: "admin" });
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
    await this.lines.start();
    this.applyGroup();
  }

  stop(): Promise<void> {
    return this.lines.stop();
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
    const parsed = AdminRequest.safeParse(raw);
    if (!parsed.success) {
      return client.send({ id, ok: false, error: { code: ErrorCode.BadInput, message: formatIssues(parsed.error).join("; ") } });
    }
    const req = parsed.data;
    try {
      const result = await this.run(req, (item) => client.send({ id: req.id, stream: item }), (fn) => client.onClose(fn));
      client.send({ id: req.id, ok: true, result });
    } catch (e) {
      if (!isLockerError(e)) this.log.error({ err: e, cmd: req.cmd }, "admin command failed");
      const body = toErrorBody(e);
      client.send({ id: req.id, ok: false, error: isLockerError(e) ? { ...body, context: e.context } : body });
    }
  }

  private async run(req: AdminRequest, stream: (item: StreamItem) => void, onClose: (fn: () => void) => void): Promise<unknown> {
    const { technician, ledger } = this.deps;
    this.log.info({ cmd: req.cmd, user: req.user }, "admin request");
    switch (req.cmd) {
      case "status":
        return this.status();
      case "compartments":
        return { compartments: this.rows() };
      case "open":
        return technician.open(req.args.compartment, { user: req.user, reason: req.args.reason });
      case "disable":
      case "enable": {
        technician.setEnabled(req.args.compartment, req.cmd === "enable", { user: req.user, reason: req.args.reason });
        return { compartment: this.deps.bank.compartmentByKeypad(req.args.compartment).id, enabled: req.cmd === "enable" };
      }
      case "relay-test":
        return { results: await technician.relayTest(req.args.compartments, { user: req.user, reason: req.args.reason }) };
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
        const { sinceSeq, sinceTs, type, limit, follow } = req.args;
        const match = (e: LedgerEvent) => !type || (type.endsWith(".") ? e.type.startsWith(type) : e.type === type);
        const events = this.findEvents(sinceSeq, sinceTs, match, limit);
        if (follow) {
          onClose(ledger.onCommit((evs) => evs.filter(match).forEach((e) => stream({ kind: "event", event: view(e) }))));
        }
        return { events: events.map(view) };
      }
      case "sync":
        return this.sync();
      case "stats":
        return computeStats(ledger, { now: this.deps.now(), days: req.args.days });
      case "watch": {
        let queued = false;
        onClose(
          ledger.onCommit((evs) => {
            for (const e of evs) stream({ kind: "event", event: view(e) });
            if (queued) return;
            queued = true;
            setImmediate(() => {
              queued = false;
              stream({ kind: "compartments", compartments: this.rows(), alarms: this.alarmsView() });
            });
          }),
        );
        const recent = ledger.eventsFrom(Math.max(1, ledger.headSeq - WATCH_EVENTS + 1), WATCH_EVENTS).map(view);
        return { device: this.device(), compartments: this.rows(), alarms: this.alarmsView(), events: recent };
      }
    }
  }

  private findEvents(sinceSeq: number | undefined, sinceTs: number | undefined, match: (e: LedgerEvent) => boolean, limit: number): LedgerEvent[] {
    const { ledger } = this.deps;
    const out: LedgerEvent[] = [];
    if (sinceSeq === undefined && sinceTs === undefined) {
      // The newest `limit` matching events, oldest first.
      for (let to = ledger.headSeq; to >= 1 && out.length < limit; to -= 1000) {
        const page = ledger.eventsFrom(Math.max(1, to - 999), 1000).filter(match);
        out.unshift(...page.slice(-(limit - out.length)));
      }
      return out;
    }
    for (let from = sinceSeq ?? 1; out.length < limit; ) {
      const page = ledger.eventsFrom(from, 1000);
      if (!page.length) break;
      for (const e of page) if ((sinceTs === undefined || e.ts >= sinceTs) && match(e) && out.length < limit) out.push(e);
      from = page[page.length - 1]!.seq + 1;
    }
    return out;
  }

  private device(): string {
    return `${this.deps.config.device.site}/${this.deps.config.device.id}`;
  }

  private rows(): CompartmentRow[] {
    const { bank, ledger, now } = this.deps;
    const t = now();
    return bank.compartments().map((c) => {
      const parcel = c.parcelId ? ledger.parcel(c.parcelId) : undefined;
      return {
        id: c.id,
        keypad: bank.layoutOf(c.id).keypadNumber,
        size: c.size,
        state: c.state,
        door: c.door,
        enabled: c.enabled,
        parcel: c.parcelId,
        parcelAgeMs: parcel ? t - (parcel.depositedAt ?? parcel.createdAt) : null,
        since: c.since,
        pulses: c.pulses,
        failedOpens: c.failedOpens,
        faultReason: c.faultReason,
      };
    });
  }

  private alarmsView(): Alarm[] {
    const duplicate = this.deps.link?.()?.duplicateIdentity;
    const { site, id } = this.deps.config.device;
    const storage = this.deps.storage?.();
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
      url: config.sync.enabled ? config.sync.url : null,
      backlog: ledger.counts().unpublished,
      lastAckAt: link?.lastAckAt ?? null,
      headSeq: ledger.headSeq,
      ...(link ? { lastError: link.lastError, instance: link.instance, duplicateIdentity: link.duplicateIdentity } : {}),
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
    // The whole file (integrity_check, not the start's quick_check), then what the tables must agree on.
    const integrity = Ledger.check(ledger.db.name, true);
    checks.push({ name: "ledger integrity", ok: integrity === "ok", detail: integrity === "ok" ? "integrity_check ok" : integrity });
    const broken = ledger.invariants().filter((i) => i.rows.length);
    checks.push({
      name: "ledger tables agree",
      ok: broken.length === 0,
      detail: broken.length ? broken.map((i) => `${i.rule}: ${i.rows.slice(0, 3).join(", ")}${i.rows.length > 3 ? ` (+${i.rows.length - 3})` : ""}`).join("; ") : "parcels, compartments and codes agree",
    });
    const chain = ledger.verify();
    checks.push({ name: "custody chain", ok: chain.ok, detail: chain.ok ? `${chain.checked} events verify` : `broken at seq ${chain.brokenAt}: ${chain.reason}` });
    const dirMode = statSync(dataDir).mode & 0o777;
    const keyMode = statSync(join(dataDir, "device.key")).mode & 0o777;
    checks.push({ name: "data directory", ok: dirMode === 0o700 && keyMode === 0o600, detail: `dir ${dirMode.toString(8)}, device.key ${keyMode.toString(8)}` });
    const fs = statfsSync(dataDir);
    const freeMb = Math.floor((fs.bavail * fs.bsize) / 2 ** 20);
    const storage = this.deps.storage?.();
    const floorMb = (storage?.minFreeBytes ?? 100 * 2 ** 20) / 2 ** 20;
    checks.push(
      storage?.state === "full"
        ? { name: "disk space", ok: false, detail: `disk full: ${storage.path}, ${freeMb} MB free; the ledger takes no writes (${storage.detail ?? ""})` }
        : { name: "disk space", ok: freeMb >= floorMb, detail: `${dataDir}: ${freeMb} MB free (floor ${floorMb} MB)` },
    );
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

export interface SelftestCheck {
  name: string;
  ok: boolean;
  detail: string;
}

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

function view(e: LedgerEvent) {
  return { seq: e.seq, id: e.id, ts: e.ts, type: e.type, compartment: e.compartment, parcel: e.parcel, actor: e.actor, data: e.data };
}

