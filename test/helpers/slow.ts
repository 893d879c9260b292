// Time limits written into tests, stretched where everything runs slower: arm64 under qemu
// (scripts/arm64-proof.sh sets LOCKERD_TEST_SLOW, 5-10 times slower than the host). A limit is a
// bound on waiting for something that will happen, never a figure a test measures: stretching it
// changes no assertion.
export const SLOW = Math.max(1, Number(process.env.LOCKERD_TEST_SLOW ?? 1) || 1);

export const slow = (ms: number): number => Math.round(ms * SLOW);
