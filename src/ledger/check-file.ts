// `node check-file.js FILE`: the whole ledger file's quick_check, printed as one JSON line
// {"result": "ok" | problems}; exit 1 with the error on stderr when it could not check. Run by
// LedgerCheck (bank/storage.ts) as a child process at a low CPU priority after the bank is ready,
// so a long history (seconds on a Pi's SD card for millions of events) never delays a start or
// blocks the event loop, and a stop can end it at once.
import { checkFile } from "./quick-check.js";

const file = process.argv[2];
if (!file) {
  process.stderr.write("usage: check-file.js LEDGER_FILE\n");
  process.exit(2);
}
try {
  process.stdout.write(`${JSON.stringify({ result: checkFile(file, { strict: true }) })}\n`);
} catch (e) {
  // Not damage (the file could not be opened, memory ran out): the caller tries again later.
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
