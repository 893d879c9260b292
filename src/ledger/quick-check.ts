// SQLite's own check of a ledger file (PRAGMA quick_check, or integrity_check with `full`), and of
// some tables only. Its own small module so that the background check (check-file.ts, a child
// process) loads better-sqlite3 and nothing else.
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
