// SQLite's own check of a ledger file (PRAGMA quick_check, or integrity_check with `full`), and of
// some tables only; and the same whole-file check as a script for a child process (LedgerCheck).
import { createRequire } from "node:module";
import Database from "better-sqlite3";

/** "ok", or the first problems SQLite reports, joined. */
export function fileCheck(db: Database.Database, full: boolean, table?: string): string {
  const pragma = full ? "integrity_check" : "quick_check";
  const rows = db.pragma(table === undefined ? `${pragma}(20)` : `${pragma}("${table.replaceAll('"', '""')}")`) as Record<string, string>[];
  const lines = rows.map((r) => r[pragma] ?? "");
  return lines.length === 1 && lines[0] === "ok" ? "ok" : lines.slice(0, 20).join("; ");
}

/**
 * The check of `file` on a read-only connection of its own (every table when `tables` is not
 * given). An error is the answer (a file that cannot be read is not intact), unless `strict`: then
 * only SQLite's corruption errors are, and any other (cannot open, out of memory) is thrown.
 */
export function checkFile(file: string, opts: { full?: boolean; tables?: (db: Database.Database) => string[]; strict?: boolean } = {}): string {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    if (!opts.tables) return fileCheck(db, opts.full ?? false);
    const problems: string[] = [];
    for (const t of opts.tables(db)) {
      const r = fileCheck(db, opts.full ?? false, t);
      if (r !== "ok") problems.push(r);
    }
    return problems.length ? problems.join("; ") : "ok";
  } catch (e) {
    if (opts.strict && !/^SQLITE_(CORRUPT|NOTADB)/.test((e as { code?: string }).code ?? "")) throw e;
    return (e as Error).message;
  } finally {
    db?.close();
  }
}

/**
 * `node -e CHECK_SCRIPT BETTER_SQLITE3 FILE`: checkFile(FILE, {strict: true}) in a process of its
 * own, loading better-sqlite3 and nothing else, printed as one JSON line {"result": "ok" |
 * problems}; exit 1 with the error on stderr when it could not check. A script text rather than a
 * file: the daemon runs bundled (scripts/bundle.ts), where no module has a path of its own.
 */
export const CHECK_SCRIPT = `
const Database = require(process.argv[1]);
const out = (result) => process.stdout.write(JSON.stringify({ result }) + "\\n");
let db;
try {
  db = new Database(process.argv[2], { readonly: true, fileMustExist: true });
  const lines = db.pragma("quick_check(20)").map((r) => r.quick_check);
  out(lines.length === 1 && lines[0] === "ok" ? "ok" : lines.slice(0, 20).join("; "));
} catch (e) {
  if (/^SQLITE_(CORRUPT|NOTADB)/.test(e.code || "")) out(e.message);
  else { process.stderr.write(String(e.message) + "\\n"); process.exitCode = 1; }
} finally {
  db?.close();
}
`;

/** The better-sqlite3 this process loads, for CHECK_SCRIPT. */
export const BETTER_SQLITE3 = createRequire(import.meta.url).resolve("better-sqlite3");
