// The server's side of the MQTT contract without a broker: a real CommandRouter on a test bank,
// a `send` that checks every reply against the contract, and Ed25519 signing as a server does it.
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { expect } from "vitest";
import { silentLogger } from "../../src/log.js";
import { CommandRouter, type ReplyEnvelope } from "../../src/sync/commands.js";
import { canonicalCommand, REPLIES, type CommandName } from "../../src/sync/contract.js";
import { publicKeyB64, SignatureVerifier } from "../../src/sync/seal.js";
import type { TestBank } from "./bank.js";

export const SITE = "hq";
export const DEVICE = "bank-01";
export const serverKeys = generateKeyPairSync("ed25519");

export interface RouterOptions {
  /** Configure the server's public key: signed commands must then carry a valid sig. */
  signed?: boolean;
  clockSkewMs?: number;
  maxCommandLifetimeMs?: number;
}

export function routerFor(b: TestBank, opts: RouterOptions = {}) {
  const replayed: number[] = [];
  let states = 0;
  const router = new CommandRouter({
    ledger: b.rt.ledger,
    bank: b.rt.bank,
    remote: b.rt.remote,
    site: SITE,
    device: DEVICE,
    verifier: opts.signed ? new SignatureVerifier(publicKeyB64(serverKeys.publicKey)) : undefined,
    clockSkewMs: opts.clockSkewMs ?? 120_000,
    ...(opts.maxCommandLifetimeMs !== undefined ? { maxCommandLifetimeMs: opts.maxCommandLifetimeMs } : {}),
    now: () => Date.now(),
    log: silentLogger(),
    replay: (from, limit) => {
      replayed.push(from, limit);
      return 0;
    },
    publishState: () => states++,
  });
  let n = 0;
  const prefix = Math.random().toString(36).slice(2, 8);
  /** Every reply a known command gets is one its contract allows. */
  const handle = async (name: string, payload: Record<string, unknown> | string): Promise<ReplyEnvelope> => {
    const reply = await router.handle(name, typeof payload === "string" ? payload : JSON.stringify(payload));
    if (name in REPLIES) expect(REPLIES[name as CommandName].safeParse(reply).error?.issues ?? []).toEqual([]);
    return reply;
  };
  /** A fresh id, issued now; `extra` overrides or adds envelope fields. With `signed`, signs it. */
  const send = (name: string, args: unknown, extra: Record<string, unknown> = {}): Promise<ReplyEnvelope> => {
    const payload = { id: `cmd-${prefix}-${++n}`, args, issuedAt: Date.now(), ...extra };
    return handle(name, opts.signed ? signed(name, payload) : payload);
  };
  return { router, send, handle, replayed, states: () => states };
}

/** The payload with a `sig` over canonicalCommand for this bank (or another key). */
export function signed(name: string, payload: Record<string, unknown>, key: KeyObject = serverKeys.privateKey): Record<string, unknown> {
  const msg = canonicalCommand({ site: SITE, device: DEVICE, name, ...(payload as { id: string; args: unknown; issuedAt: number; expiresAt?: number }) });
  return { ...payload, sig: sign(null, msg, key).toString("base64") };
}

/** The same signature with one bit flipped: well-formed, and wrong. */
export function flipBit(sig: string): string {
  const bytes = Buffer.from(sig, "base64");
  bytes[10]! ^= 0x01;
  return bytes.toString("base64");
}
