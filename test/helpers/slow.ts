// Time limits written into tests, stretched where everything runs slower: arm64 under qemu
// (scripts/arm64-proof.sh sets LOCKERD_TEST_SLOW, 5-10 times slower than the host). A limit is a
// bound on waiting for something that will happen, never a figure a test measures: stretching it
// changes no assertion.
export const SLOW = Math.max(1, Number(process.env.LOCKERD_TEST_SLOW ?? 1) || 1);

export const slow = (ms: number): number => Math.round(ms * SLOW);

/**
 * The node that runs pure-JavaScript test fixtures standing for other programs: the fake gpiod
 * tools (on a Pi, Debian's native C programs, started in a few ms). Under the arm64 proof it is the
 * host's node (LOCKERD_TEST_FIXTURE_NODE): lockerd and lockerctl still run on arm64, while a tool
 * call does not pay an emulated Node start (over a second), which no Pi pays. A fixture that loads
 * a native addon (the board emulators: serialport) runs on process.execPath, as the addons in
 * node_modules are built for arm64 there.
 */
export const FIXTURE_NODE = process.env.LOCKERD_TEST_FIXTURE_NODE || process.execPath;
