// Sealing pickup codes for the server, and checking the server's signatures on commands.
//
// A code the bank draws must reach the server (which tells the recipient) without being readable
// in the ledger, in a log, or on the broker. It travels inside the `parcel.deposited` /
// `code.issued` event as a sealed box for the server's X25519 public key (sync.sealKey):
//
//   ephemeral X25519 key pair (one per code) ─ ECDH with the server key ─▶ shared secret
//   HKDF-SHA256(shared, salt = epk ‖ server key, info = "lockerd/seal/v1") ─▶ 32-byte AES key
//   AES-256-GCM(key, random 96-bit iv, code, aad = "<parcel>") ─▶ ct ‖ 16-byte tag
//
// Only the server's private key opens it; the aad binds it to its parcel, so a sealed code cannot
// be moved to another parcel's event. The bank forgets the ephemeral key at once.
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, verify, type KeyObject } from "node:crypto";
import { ErrorCode, LockerError } from "../errors.js";

export const SEAL_ALG = "X25519-HKDF-SHA256-A256GCM";
const INFO = Buffer.from("lockerd/seal/v1");

export interface SealedBox {
  alg: typeof SEAL_ALG;
  /** Ephemeral X25519 public key, base64. */
  epk: string;
  iv: string;
  /** Ciphertext followed by the 16-byte GCM tag, base64. */
  ct: string;
}

function okpPublic(crv: "X25519" | "Ed25519", b64: string): KeyObject {
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 32) throw new LockerError(ErrorCode.Config, `${crv} public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: { kty: "OKP", crv, x: raw.toString("base64url") }, format: "jwk" });
}

function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: "jwk" }).x as string, "base64url");
}

function aesKey(shared: Buffer, epk: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", shared, Buffer.concat([epk, recipient]), INFO, 32));
}

/** Seals `secret` for the holder of the X25519 private key whose public key is `recipientB64`. */
export class Sealer {
  private readonly recipient: KeyObject;
  private readonly recipientRaw: Buffer;
  constructor(recipientB64: string) {
    this.recipient = okpPublic("X25519", recipientB64);
    this.recipientRaw = rawPublic(this.recipient);
  }

  seal(secret: string, aad: string): SealedBox {
    const eph = generateKeyPairSync("x25519");
    const epk = rawPublic(eph.publicKey);
    const key = aesKey(diffieHellman({ privateKey: eph.privateKey, publicKey: this.recipient }), epk, this.recipientRaw);
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(aad, "utf8"));
    const ct = Buffer.concat([cipher.update(secret, "utf8"), cipher.final(), cipher.getAuthTag()]);
    key.fill(0);
    return { alg: SEAL_ALG, epk: epk.toString("base64"), iv: iv.toString("base64"), ct: ct.toString("base64") };
  }
}

/** The server's side (and the tests'): open a box with the X25519 private key (PKCS#8 PEM or JWK d). */
export function openSealed(box: SealedBox, privateKey: KeyObject, aad: string): string {
  const epk = Buffer.from(box.epk, "base64");
  const recipientRaw = rawPublic(createPublicKey(privateKey));
  const key = aesKey(diffieHellman({ privateKey, publicKey: okpPublic("X25519", box.epk) }), epk, recipientRaw);
  const data = Buffer.from(box.ct, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(box.iv, "base64"));
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(data.subarray(data.length - 16));
  return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString("utf8");
}

/** Checks Ed25519 signatures made with the server's private key. */
export class SignatureVerifier {
  private readonly key: KeyObject;
  constructor(publicKeyB64: string) {
    this.key = okpPublic("Ed25519", publicKeyB64);
  }
  verify(message: Buffer, sigB64: string): boolean {
    const sig = Buffer.from(sigB64, "base64");
    if (sig.length !== 64) return false;
    try {
      return verify(null, message, this.key, sig);
    } catch {
      return false;
    }
  }
}

/** Base64 of the raw 32-byte public key (what the config takes). */
export function publicKeyB64(key: KeyObject): string {
  return rawPublic(key).toString("base64");
}

