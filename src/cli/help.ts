// lockerctl's help, made from the command table: the overview (lockerctl --help), one command's
// usage, options and examples (lockerctl help NAME, lockerctl NAME --help), and "did you mean"
// for a mistyped name.
import { COMMANDS, COMMON, type Command, type OptionSpec } from "./commands.js";
import { SYSTEM_DATA_DIR } from "./offline.js";

const COL = 29;

function line(left: string, right: string): string {
  return left.length < COL - 1 ? `  ${left.padEnd(COL - 2)} ${right}` : `  ${left}\n  ${"".padEnd(COL - 2)} ${right}`;
}

export function overview(): string {
  return `lockerctl — diagnostics and control of a lockerd parcel locker bank

Usage: lockerctl [--socket PATH | --data DIR] [--json] [--no-color] COMMAND [ARGS]
       lockerctl help COMMAND   (or COMMAND --help): its usage, options and an example

Commands:
${COMMANDS.map((c) => line(`${c.name}${c.usage ? ` ${c.usage}` : ""}`, c.summary)).join("\n")}

${wrap(`Without lockerd (nothing listening on the admin socket), ${offlineNames()} read its ledger file instead, read-only, and say so; the other commands need lockerd.`)}

Socket: --socket, else $LOCKERD_ADMIN_SOCKET, else /run/lockerd/admin.sock when it exists,
else <--data or ./data>/admin.sock.
Ledger (lockerd not running): <--data>/ledger.db, else ${SYSTEM_DATA_DIR}/ledger.db when
${SYSTEM_DATA_DIR} exists, else ./data/ledger.db.
Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 lockerd not running, 4 permission denied,
5 a check failed (selftest, relay-test).
`;
}

/** Words to lines of at most `width` columns. */
function wrap(text: string, width = 90): string {
  const lines = [""];
  for (const word of text.split(" ")) {
    const last = lines.length - 1;
    if (lines[last] && lines[last]!.length + 1 + word.length > width) lines.push(word);
    else lines[last] = lines[last] ? `${lines[last]} ${word}` : word;
  }
  return lines.join("\n");
}

function offlineNames(): string {
  const names = COMMANDS.filter((c) => c.offline).map((c) => c.name);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names.join("");
}

function option(o: OptionSpec): string {
  return line(`--${o.name}${o.value ? ` ${o.value}` : ""}`, o.help);
}

export function commandHelp(c: Command): string {
  return [
    `lockerctl ${c.name} — ${c.summary}`,
    "",
    `Usage: lockerctl [--socket PATH | --data DIR] [--json] ${c.name}${c.usage ? ` ${c.usage}` : ""}`,
    ...(c.about?.length ? ["", ...c.about] : []),
    ...(c.options?.length ? ["", "Options:", ...c.options.map(option)] : []),
    "",
    `Common options: ${COMMON.map((o) => `--${o.name}`).join(", ")} (lockerctl --help)`,
    c.offline ? "Without lockerd: read from the ledger file (read-only), and said so on stderr." : "Needs lockerd running.",
    "",
    c.examples.length > 1 ? "Examples:" : "Example:",
    ...c.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

/** Edit distance (optimal string alignment: a swap of two neighbours counts as one). */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      const up = d[i - 1]!;
      row[j] = Math.min(up[j]! + 1, row[j - 1]! + 1, up[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `names` to a mistyped one, if any is close: a few edits away, or the only one it begins. */
export function suggest(typed: string, names: readonly string[]): string | undefined {
  const t = typed.toLowerCase();
  const starts = names.filter((n) => t.length >= 3 && n.startsWith(t));
  if (starts.length === 1) return starts[0];
  const best = names.map((n) => ({ n, d: distance(t, n) })).sort((a, b) => a.d - b.d)[0];
  return best && best.d <= Math.max(1, Math.floor(t.length / 3)) ? best.n : undefined;
}

/** "unknown command "x"", with the closest command when there is one. */
export function unknownCommand(typed: string): string {
  const near = suggest(typed, COMMANDS.map((c) => c.name));
  return `unknown command "${typed}"${near ? `: did you mean "${near}"?` : ""}`;
}
