// SQLite's own check of a ledger file (PRAGMA quick_check, or integrity_check with `full`), of
// the whole file or of some tables; and the same check as a script for a child process
// (LedgerCheck), built from this very function's source, so that there is one implementation.
import { createRequire } from "node:module";
import Database from "better-sqlite3";

export interface CheckOptions {
  /** integrity_check rather than quick_check. */
  full?: boolean;
  /** Only these tables (and their indexes), those of them that exist; default: the whole file. */
  only?: readonly string[];
  /** Only SQLite's corruption errors are an answer; any other (cannot open, out of memory) is thrown. */
  strict?: boolean;
}

/**
 * "ok", or the first problems SQLite reports, joined: of `source`, a file opened read-only for the
 * check, or a connection already open (left open). An error is the answer (a file that cannot be
 * read is not intact), unless `strict`. Self-contained (better-sqlite3's Database is a parameter,
 * nothing else outside is named): CHECK_SCRIPT runs its source in a process of its own.
 */
export function checkWith(Db: typeof Database, source: string | Database.Database, opts: CheckOptions = {}): string {
  const pragma = opts.full ? "integrity_check" : "quick_check";
  let db: Database.Database | undefined;
  try {
    db = typeof source === "string" ? new Db(source, { readonly: true, fileMustExist: true }) : source;
    const only = opts.only;
    const tables = only ? (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name).filter((t) => only.includes(t)) : [undefined];
    const problems: string[] = [];
    for (const t of tables) {
      const rows = db.pragma(t === undefined ? `${pragma}(20)` : `${pragma}("${t.replaceAll('"', '""')}")`) as Record<string, string>[];
      const lines = rows.map((r) => r[pragma] ?? "");
      if (!(lines.length === 1 && lines[0] === "ok")) problems.push(...lines);
    }
    return problems.length ? problems.slice(0, 20).join("; ") : "ok";
  } catch (e) {
    if (opts.strict && !/^SQLITE_(CORRUPT|NOTADB)/.test((e as { code?: string }).code ?? "")) throw e;
    return (e as Error).message;
  } finally {
    if (typeof source === "string") db?.close();
  }
}

/** checkWith this process's better-sqlite3. */
export const checkFile = (source: string | Database.Database, opts: CheckOptions = {}): string => checkWith(Database, source, opts);

/**
 * `node -e CHECK_SCRIPT BETTER_SQLITE3 FILE`: checkWith(FILE, {strict: true}) in a process of its
 * own, loading better-sqlite3 and nothing else, printed as one JSON line {"result": "ok" |
 * problems}; exit 1 with the error on stderr when it could not check. A script text rather than a
 * file: the daemon runs bundled (scripts/bundle.ts), where no module has a path of its own.
 */
export const CHECK_SCRIPT = `
const checkWith = ${checkWith.toString()};
try {
  process.stdout.write(JSON.stringify({ result: checkWith(require(process.argv[1]), process.argv[2], { strict: true }) }) + "\\n");
} catch (e) {
  process.stderr.write(String(e && e.message) + "\\n");
  process.exitCode = 1;
}
`;

/** The better-sqlite3 this process loads, for CHECK_SCRIPT. */
export const BETTER_SQLITE3 = createRequire(import.meta.url).resolve("better-sqlite3");
