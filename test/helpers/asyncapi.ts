// A server's side of the bank's contract, built from docs/asyncapi.yaml and node:crypto alone: no
// import from src/. What a server engineer would write from the document (contract-seal.test.ts,
// contract-server.test.ts); where it falls short, the document is what needs fixing.
import {
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  sign,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export const DOC_FILE = new URL("../../docs/asyncapi.yaml", import.meta.url).pathname;

type Node = Record<string, unknown>;

/** The parts of the document a server reads, loosely typed. */
export interface Contract {
  info: { description: string; "x-lockerd-example-key": JsonWebKey & { serverPublicKey: string } };
  channels: Record<string, { address: string }>;
  operations: Record<string, { action: string; channel: { $ref: string }; bindings: { $ref: string }; "x-lockerd-signed"?: boolean }>;
  components: {
    parameters: Record<string, { default?: string; examples: string[] }>;
    messages: Record<string, { examples?: { name?: string; payload: Node }[] }>;
    schemas: { SealedCode: { properties: { alg: { const: string } }; "x-lockerd-worked-example": SealWorkedExample } };
    operationBindings: Record<string, { mqtt: { qos: 0 | 1 | 2; retain: boolean } }>;
  };
}

export interface SealedCode {
  alg: string;
  epk: string;
  iv: string;
  ct: string;
}

export interface SealWorkedExample {
  serverKey: JsonWebKey & { sealKey: string };
  ephemeralPrivateKey: string;
  parcel: string;
  code: string;
  iv: string;
  steps: { epk: string; shared: string; salt: string; info: string; key: string; aad: string; ct: string };
  sealedCode: SealedCode;
}

export function loadContract(): Contract {
  return parse(readFileSync(DOC_FILE, "utf8")) as Contract;
}

/** The topic of a channel for one bank: `{prefix}/{site}/{device}/…`. */
export function topicOf(doc: Contract, channel: string, bank: { prefix: string; site: string; device: string }): string {
  const address = doc.channels[channel]?.address;
  if (!address) throw new Error(`no channel ${channel} in the document`);
  return address.replace("{prefix}", bank.prefix).replace("{site}", bank.site).replace("{device}", bank.device);
}

/** The first example of a message, by name when given. */
export function exampleOf(doc: Contract, message: string, name?: string): Node {
  const examples = doc.components.messages[message]?.examples ?? [];
  const ex = name === undefined ? examples[0] : examples.find((e) => e.name === name);
  if (!ex) throw new Error(`no example ${name ?? "#0"} of ${message}`);
  return structuredClone(ex.payload);
}

/** "Object keys sorted by UTF-16 code units at every depth, no whitespace" (Signatures). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Node).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** `sig`: Ed25519 over the canonical JSON of {args, device, expiresAt?, id, issuedAt, name, site}. */
export function signCommand(
  key: KeyObject,
  to: { site: string; device: string; name: string },
  payload: { id: string; args: unknown; issuedAt: number; expiresAt?: number },
): string {
  const { id, args, issuedAt, expiresAt } = payload;
  const text = canonicalJson({ args, device: to.device, expiresAt, id, issuedAt, name: to.name, site: to.site });
  return sign(null, Buffer.from(text, "utf8"), key).toString("base64");
}

/** The example signing key (both halves, JWK) as a private KeyObject. */
export function exampleSigningKey(doc: Contract): KeyObject {
  const { kty, crv, x, d } = doc.info["x-lockerd-example-key"];
  return createPrivateKey({ key: { kty, crv, x, d }, format: "jwk" });
}

/** An X25519 public key from its 32 raw bytes. */
function x25519Public(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "X25519", x: raw.toString("base64url") }, format: "jwk" });
}

function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(createPublicKey(key).export({ format: "jwk" }).x as string, "base64url");
}

/** The server's X25519 key pair of the worked example. */
export function exampleSealKey(doc: Contract): KeyObject {
  const { kty, crv, x, d } = doc.components.schemas.SealedCode["x-lockerd-worked-example"].serverKey;
  return createPrivateKey({ key: { kty, crv, x, d }, format: "jwk" });
}

/**
 * Open a sealedCode as "Sealed pickup codes" says: shared = X25519(server key, epk); key =
 * HKDF-SHA256(shared, salt = epk ‖ server public key, info, 32); AES-256-GCM(key, iv, aad = parcel)
 * over ct minus its last 16 bytes, which are the tag.
 */
export function openSealedCode(doc: Contract, box: SealedCode, serverKey: KeyObject, parcel: string): string {
  const sealed = doc.components.schemas.SealedCode;
  if (box.alg !== sealed.properties.alg.const) throw new Error(`unknown alg ${box.alg}`);
  const info = sealed["x-lockerd-worked-example"].steps.info;
  const epk = Buffer.from(box.epk, "base64");
  const shared = diffieHellman({ privateKey: serverKey, publicKey: x25519Public(epk) });
  const key = Buffer.from(hkdfSync("sha256", shared, Buffer.concat([epk, rawPublic(serverKey)]), Buffer.from(info, "utf8"), 32));
  const data = Buffer.from(box.ct, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(box.iv, "base64"));
  decipher.setAAD(Buffer.from(parcel, "utf8"));
  decipher.setAuthTag(data.subarray(data.length - 16));
  return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString("utf8");
}

/** sha256_hex(prevHash + canonical JSON of the event without hash) (Events: at least once, in order). */
export function eventHash(event: Node): string {
  const rest = Object.fromEntries(Object.entries(event).filter(([k]) => k !== "hash"));
  return createHash("sha256").update(`${String(event.prevHash)}${canonicalJson(rest)}`, "utf8").digest("hex");
}
