// Pickup codes and secrets at rest. Pure apart from the CSPRNG, which is injectable.
import { createHmac, randomInt } from "node:crypto";

export type SecretKind = "code" | "pin" | "badge" | "pass";

/**
 * Codes a person might try first, or that a shoulder-surfer remembers: one repeated digit
 * (000000), a run up or down (123456, 987654, 890123), or a short pattern repeated (121212, 123123).
 */
export function isTrivialCode(code: string): boolean {
  const d = [...code].map(Number);
  const steps = new Set(d.slice(1).map((x, i) => (x - d[i]! + 10) % 10));
  if (steps.size === 1) {
    const step = [...steps][0]!;
    if (step === 0 || step === 1 || step === 9) return true;
  }
  for (let period = 1; period <= Math.floor(code.length / 2); period++) {
    if (code.length % period !== 0) continue;
    if (code === code.slice(0, period).repeat(code.length / period)) return true;
  }
  return false;
}

/** A uniformly random non-trivial numeric code from the CSPRNG. */
export function generateCode(length: number, random: (max: number) => number = randomInt): string {
  for (;;) {
    let code = "";
    for (let i = 0; i < length; i++) code += String(random(10));
    if (!isTrivialCode(code)) return code;
  }
}

/** HMAC-SHA256 of a secret under the device key, domain-separated by kind. What the ledger stores. */
export function secretHash(key: Buffer, kind: SecretKind, value: string): Buffer {
  const v = kind === "badge" ? value.toUpperCase() : value;
  return createHmac("sha256", key).update(`${kind}:${v}`).digest();
}
