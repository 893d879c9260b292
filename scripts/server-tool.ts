// What a server engineer needs to talk to a bank by hand (with mosquitto_pub / mosquitto_sub):
//
//   npm run server-tool -- keys ./keys                   Ed25519 (signing) + X25519 (sealing) key pairs,
//                                                        and the two config values for the bank
//   npm run server-tool -- sign --key ./keys/sign.pem --site hq --device bank-01 open '{"id":"c1","args":{...}}'
//                                                        adds issuedAt / expiresAt (--ttl s) and sig
//   npm run server-tool -- unseal --key ./keys/seal.pem '<a parcel.deposited or code.issued event>'
//                                                        prints the pickup code inside sealedCode
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalCommand } from "../src/sync/contract.js";
import { openSealed, publicKeyB64, type SealedBox } from "../src/sync/seal.js";

function usage(): never {
  process.stderr.write(
    "usage: server-tool keys <dir>\n" +
      "       server-tool sign --key <sign.pem> --site <site> --device <device> [--ttl <s>] <command> '<payload json>'\n" +
      "       server-tool unseal --key <seal.pem> '<event json>'\n",
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
