// `lockerd restore FILE --data DIR`: put a backup made by `lockerctl backup` back, with lockerd
// stopped. The file is verified (SQLite integrity, key ↔ ledger, the whole custody chain) before
// the directory is touched; what the directory held is moved to DIR/replaced-<time>/, never deleted.
// Exit codes: 0 restored · 64 usage · 65 the file is not a good backup · 73 the directory is
// unusable · 75 a lockerd is running on that directory.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ErrorCode, isLockerError } from "../errors.js";
import { restoreBackup } from "../ledger/backup.js";
import { ensureDataDir, takeDataDirLock } from "../ledger/datadir.js";

export const RESTORE_HELP = `lockerd restore — put a backup back (lockerd stopped)

Usage: lockerd restore FILE --data DIR

  FILE        a backup written by \`lockerctl backup FILE\` (the ledger and its device key)
  --data DIR  the data directory to restore into (e.g. /var/lib/lockerd)

The file is checked first: SQLite integrity, that its device key belongs to its ledger, and the
whole custody chain. Only then is anything in DIR touched: what DIR held (ledger, key, marker)
is moved to DIR/replaced-<time>/, never deleted. Then start lockerd as usual. The restored bank
continues from the backup's last event and records system.restored when it starts.

Exit codes: 0 restored, 64 usage, 65 not a good backup, 73 directory unusable,
75 a lockerd is running on DIR (stop it first: systemctl stop lockerd).
`;

export async function restoreMain(argv: string[], write: (s: string) => void = (s) => process.stderr.write(s)): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { data: { type: "string" }, help: { type: "boolean", short: "h" } } }));
  } catch (e) {
    write(`lockerd restore: ${(e as Error).message}\n\n${RESTORE_HELP}`);
    return 64;
  }
  if (values.help) {
    process.stdout.write(RESTORE_HELP);
    return 0;
  }
  if (positionals.length !== 1 || !values.data) {
    write(`lockerd restore: expected one backup FILE and --data DIR\n\n${RESTORE_HELP}`);
    return 64;
  }
  const file = resolve(positionals[0]!);
  const dir = resolve(values.data);
  let release: (() => void) | undefined;
  try {
    ensureDataDir(dir);
    release = await takeDataDirLock(dir);
    const r = restoreBackup(file, dir, Date.now());
    process.stdout.write(
      [
        `restored ${file} into ${dir}`,
        `  bank ${r.bank}, key ${r.keyFingerprint}`,
        `  backup made ${new Date(r.createdAt).toISOString()}: ${r.events} events (head seq ${r.headSeq}), custody chain verified`,
        `  ${r.parcelsStored} parcel(s) in the bank as of the backup`,
        r.setAsideIn ? `  what ${dir} held before is kept in ${r.setAsideIn}` : `  ${dir} held no bank before`,
        "  next: start lockerd (systemctl start lockerd), then check it with `lockerctl selftest`",
        "",
      ].join("\n"),
    );
    return 0;
  } catch (e) {
    write(`lockerd restore: ${(e as Error).message}\n`);
    if (isLockerError(e, ErrorCode.Busy)) return 75;
    if (isLockerError(e, ErrorCode.BadInput) || isLockerError(e, ErrorCode.ChainBroken)) return 65;
    return 73;
  } finally {
    release?.();
  }
}
