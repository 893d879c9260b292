// What a server engineer needs to talk to a bank by hand (with mosquitto_pub / mosquitto_sub):
//
//   npm run server-tool -- keys ./keys                   Ed25519 (signing) + X25519 (sealing) key pairs,
//                                                        and the two config values for the bank
//   npm run server-tool -- sign --key ./keys/sign.pem --site hq --device bank-01 open '{"id":"c1","args":{...}}'
//                                                        adds issuedAt / expiresAt (--ttl s) and sig
//   npm run server-tool -- unseal --key ./keys/seal.pem '<a parcel.deposited or code.issued event>'
//                                                        prints the pickup code inside sealedCode
//   npm run server-tool -- pass --key ./keys/sign.pem --parcel 1Z999AA10123456784 --site hq --device bank-01
//                                                        prints an app pass (the text of its QR code;
//                                                        docs/asyncapi.yaml, "App passes")
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodePass, PASS_KINDS, type PassKind } from "../src/domain/pass.js";
import { canonicalCommand } from "../src/sync/contract.js";
import { openSealed, publicKeyB64, type SealedBox } from "../src/sync/seal.js";

function usage(): never {
  process.stderr.write(
    "usage: server-tool keys <dir>\n" +
      "       server-tool sign --key <sign.pem> --site <site> --device <device> [--ttl <s>] <command> '<payload json>'\n" +
      "       server-tool unseal --key <seal.pem> '<event json>'\n" +
      "       server-tool pass --key <sign.pem> --parcel <id> --site <site> --device <device>\n" +
      "                        [--kind pickup|deposit] [--valid-from <ISO time>|now] [--valid-for <n>s|m|h|d]\n" +
      "                        [--nonce <32 hex digits>]\n" +
      "         an app pass, the text of its QR code (byte mode, level M): a pickup pass (default) or a\n" +
      "         courier's deposit pass for a reserved parcel, valid from --valid-from (default now; whole\n" +
      "         seconds) for --valid-for (default 24h; a bare number is seconds). --nonce only to reproduce\n" +
      "         a given pass (the worked example of docs/asyncapi.yaml): every pass needs a new random one.\n",
  );
  process.exit(64);
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) usage();
  args.splice(i, 2);
  return v;
}

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `24h`, `7d` in ms; undefined for anything else. */
function duration(text: string): number | undefined {
  const m = /^([0-9]{1,9})([smhd]?)$/.exec(text);
  return m ? Number(m[1]) * UNIT_S[m[2] || "s"]! * 1000 : undefined;
}

function main(argv: string[]): void {
  const [verb, ...args] = argv;
  switch (verb) {
    case "keys": {
      const dir = args[0] ?? usage();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const signing = generateKeyPairSync("ed25519");
      const sealing = generateKeyPairSync("x25519");
      writeFileSync(join(dir, "sign.pem"), signing.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
      writeFileSync(join(dir, "seal.pem"), sealing.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
      process.stdout.write(
        `${JSON.stringify({ sync: { serverPublicKey: publicKeyB64(signing.publicKey), sealKey: publicKeyB64(sealing.publicKey) } }, null, 2)}\n` +
          `# private keys (keep them on the server): ${join(dir, "sign.pem")}, ${join(dir, "seal.pem")}\n`,
      );
      return;
    }
    case "sign": {
      const key = option(args, "key");
      const site = option(args, "site");
      const device = option(args, "device");
      const ttl = Number(option(args, "ttl") ?? 300);
      const [name, json] = args;
      if (!key || !site || !device || !name || !json) usage();
      const payload = JSON.parse(json) as { id: string; args: unknown; issuedAt?: number; expiresAt?: number };
      payload.issuedAt ??= Date.now();
      payload.expiresAt ??= payload.issuedAt + ttl * 1000;
      const msg = canonicalCommand({ site, device, name, ...payload, issuedAt: payload.issuedAt });
      const sig = sign(null, msg, createPrivateKey(readFileSync(key))).toString("base64");
      process.stdout.write(`${JSON.stringify({ ...payload, sig })}\n`);
      return;
    }
    case "unseal": {
      const key = option(args, "key");
      const [json] = args;
      if (!key || !json) usage();
      const event = JSON.parse(json) as { parcel: string; data: { sealedCode?: SealedBox } };
      if (!event.data.sealedCode) throw new Error("this event carries no sealedCode (is sync.sealKey set on the bank?)");
      const priv = createPrivateKey(readFileSync(key));
      createPublicKey(priv); // fails early on a key of the wrong kind
      process.stdout.write(`${openSealed(event.data.sealedCode, priv, event.parcel)}\n`);
      return;
    }
    case "pass": {
      const key = option(args, "key");
      const parcelId = option(args, "parcel");
      const site = option(args, "site");
      const device = option(args, "device");
      const kind = option(args, "kind") ?? "pickup";
      const from = option(args, "valid-from") ?? "now";
      const validFor = duration(option(args, "valid-for") ?? "24h");
      const nonce = option(args, "nonce")?.toLowerCase();
      if (!key || !parcelId || !site || !device || args.length > 0) usage();
      if (!(PASS_KINDS as readonly string[]).includes(kind)) throw new Error(`--kind must be ${PASS_KINDS.join(" or ")}`);
      const start = from === "now" ? Date.now() : Date.parse(from);
      if (!Number.isFinite(start)) throw new Error(`--valid-from: not an ISO time or "now": ${from}`);
      if (!validFor) throw new Error("--valid-for: expected a positive duration such as 900s, 15m, 24h or 7d");
      const notBefore = Math.floor(start / 1000) * 1000;
      const fields = { kind: kind as PassKind, parcelId, site, device, notBefore, expiresAt: notBefore + validFor, nonce };
      process.stdout.write(`${encodePass(fields, createPrivateKey(readFileSync(key)))}\n`);
      return;
    }
    default:
      usage();
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`server-tool: ${(e as Error).message}\n`);
  process.exit(1);
}
