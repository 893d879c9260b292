// What an alarm means and what to do next: the log line the daemon writes for every alarm.* event
// (runtime.ts), so whoever reads `journalctl -u lockerd -p warning` knows the next step without the
// manual. Pure.
import type { LedgerEvent } from "./events.js";

type AlarmEvent = Pick<LedgerEvent, "type" | "compartment" | "data">;

const str = (v: unknown, fallback = "?") => (typeof v === "string" || typeof v === "number" ? String(v) : fallback);

/** What happened, then the next step, for each alarm type; an alarm added later still gets a step. */
const STEPS: Record<string, (c: string, d: Record<string, unknown>) => string> = {
  "alarm.forced_open": (c) => `${c} opened without a pulse (forced, or a lock that does not hold): inspect the compartment and its lock, then \`lockerctl enable ${c}\``,
  "alarm.door_left_open": (c, d) => `${c} open for more than ${str(d.openForS)} s: close it; if it will not latch, \`lockerctl disable ${c} --reason ...\` and check the lock`,
  "alarm.sensor_flapping": (c) => `door sensor of ${c} flapping: check its switch and magnet with \`lockerctl sensors --watch\``,
  "alarm.temperature": (c, d) => `${c} at ${str(d.celsius)} °C, outside ${str(d.minC)}..${str(d.maxC)} °C: check the cooling unit and the door seal; move perishables`,
  "alarm.sensor_fault": (c, d) => `temperature sensor of ${c} (${str(d.sensor)}) not answering: check its wiring, then \`lockerctl selftest\``,
  "alarm.item_left_inside": (c) => `something is still inside ${c} after it was emptied: look inside (\`lockerctl open ${c} --reason ...\`), remove it, then \`lockerctl enable ${c}\``,
  "alarm.brute_force": (_c, d) => `${str(d.inWindow)} bad codes at terminal ${str(d.terminal)} within the alarm window: someone may be guessing codes; check the site (the keypad locks itself out meanwhile)`,
  "alarm.unauthorized_command": (_c, d) =>
    `server command ${str(d.name)} ${str(d.id)} refused (${str(d.reason)}): ${
      d.reason === "expired" || d.reason === "future" ? "compare the server's clock with this bank's (`lockerctl status`: clock)" : "check the server's signing key and who publishes on cmd/"
    }`,
  "alarm.duplicate_identity": (_c, d) => `another bank connects as this one (${str(d.clientId)}): give each bank its own device.site / device.id`,
  "alarm.ledger_damaged": (_c, d) =>
    `ledger.db has damaged pages (${str(d.detail)}): the bank serves on (the tables that decide a door were checked at start), but old history may not read and a backup of this file will be refused; replace the SD card and restore the newest backup from before this alarm (\`lockerd restore\`), events since then are on the server when sync is on`,
  "alarm.disk_low": (_c, d) => `disk space low in ${str(d.path)}: free space there (old backups, logs: \`df -h\`, \`journalctl --vacuum-size\`)`,
};

/** Alarm types with a next step of their own (a test checks every alarm.* in EVENT_TYPES has one). */
export const ALARMS_WITH_STEPS: readonly string[] = Object.keys(STEPS);

/** The log message of an alarm event: what it is, where, and the next step. */
export function alarmMessage(e: AlarmEvent): string {
  const kind = e.type.replace(/^alarm\./, "");
  const c = e.compartment ?? "-";
  if (e.type === "alarm.cleared") return `alarm cleared: ${str(e.data.alarm)}${e.compartment ? ` at ${e.compartment}` : ""}`;
  const step = STEPS[e.type]?.(c, e.data) ?? `see \`lockerctl status\` and \`lockerctl events --type alarm\``;
  return `alarm ${kind}${e.compartment ? ` at ${e.compartment}` : ""}: ${step}`;
}
