// The daemon's own node flags: a 1 MiB young generation and --optimize-for-size (memory), and
// --expose-gc (a minor collection after each pulse: src/bank/idle-gc.ts). The systemd unit, npm
// start and src/main.ts's shebang say the same (test/unit/systemd/unit-file.test.ts); npm run sim
// and the benchmarks start the daemon with them.
export const DAEMON_FLAGS: readonly string[] = ["--max-semi-space-size=1", "--optimize-for-size", "--expose-gc"];
