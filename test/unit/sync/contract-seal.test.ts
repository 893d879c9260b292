// The sealed pickup code as docs/asyncapi.yaml tells it: its worked example recomputed step by step
// with node:crypto, and opened by the document's procedure (test/helpers/asyncapi.ts, which imports
// nothing from src/); then the bank's own Sealer checked against that same procedure.
import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, type KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Sealer } from "../../../src/sync/seal.js";
import { eventHash, exampleOf, exampleSealKey, loadContract, openSealedCode, type SealedCode } from "../../helpers/asyncapi.js";

const doc = loadContract();
const worked = doc.components.schemas.SealedCode["x-lockerd-worked-example"];
const hex = (h: string) => Buffer.from(h, "hex");
const rawPublic = (k: KeyObject) => Buffer.from(createPublicKey(k).export({ format: "jwk" }).x as string, "base64url");
/** An X25519 private key from its 32 raw bytes (PKCS#8 DER, RFC 8410). */
const x25519Private = (d: Buffer) => createPrivateKey({ key: Buffer.concat([hex("302e020100300506032b656e04220420"), d]), format: "der", type: "pkcs8" });

describe("the document's sealed code", () => {
  const server = exampleSealKey(doc);
  const serverPublic = rawPublic(server);

  it("gives the server's public key in the form sync.sealKey takes", () => {
    expect(Buffer.from(worked.serverKey.sealKey, "base64").equals(serverPublic)).toBe(true);
    expect(worked.serverKey.sealKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  it("recomputes every step of the worked example", () => {
    const ephemeral = x25519Private(hex(worked.ephemeralPrivateKey));
    const epk = rawPublic(ephemeral);
    expect(epk.toString("hex")).toBe(worked.steps.epk);
    expect(epk.toString("base64")).toBe(worked.sealedCode.epk);
    // Both sides of the ECDH agree: the bank's (ephemeral private, server public), the server's (server private, epk).
    const shared = diffieHellman({ privateKey: ephemeral, publicKey: createPublicKey(server) });
    expect(shared.toString("hex")).toBe(worked.steps.shared);
    expect(diffieHellman({ privateKey: server, publicKey: createPublicKey(ephemeral) }).equals(shared)).toBe(true);
    const salt = Buffer.concat([epk, serverPublic]);
    expect(salt.toString("hex")).toBe(worked.steps.salt);
    const key = Buffer.from(hkdfSync("sha256", shared, salt, Buffer.from(worked.steps.info, "utf8"), 32));
    expect(key.toString("hex")).toBe(worked.steps.key);
    expect(hex(worked.iv).toString("base64")).toBe(worked.sealedCode.iv);
    expect(worked.steps.aad).toBe(worked.parcel);
    const cipher = createCipheriv("aes-256-gcm", key, hex(worked.iv));
    cipher.setAAD(Buffer.from(worked.steps.aad, "utf8"));
    const ct = Buffer.concat([cipher.update(worked.code, "utf8"), cipher.final(), cipher.getAuthTag()]);
    expect(ct.toString("hex")).toBe(worked.steps.ct);
    expect(ct.toString("base64")).toBe(worked.sealedCode.ct);
    expect(ct).toHaveLength(Buffer.byteLength(worked.code) + 16);
  });

  it("opens to the code with the server's key and the parcel id, and with nothing else", () => {
    const box = worked.sealedCode;
    expect(box.alg).toBe(doc.components.schemas.SealedCode.properties.alg.const);
    expect(openSealedCode(doc, box, server, worked.parcel)).toBe(worked.code);
    expect(() => openSealedCode(doc, box, server, `${worked.parcel}X`)).toThrow();
    const tampered = Buffer.from(box.ct, "base64");
    tampered[0]! ^= 1;
    expect(() => openSealedCode(doc, { ...box, ct: tampered.toString("base64") }, server, worked.parcel)).toThrow();
    const stranger = x25519Private(Buffer.alloc(32, 9));
    expect(() => openSealedCode(doc, box, stranger, worked.parcel)).toThrow();
  });

  it("is the sealedCode of the parcel.deposited example, whose hash still verifies", () => {
    const event = exampleOf(doc, "event", "parcel.deposited") as { parcel: string; hash: string; data: { sealedCode: SealedCode } };
    expect(event.data.sealedCode).toEqual(worked.sealedCode);
    expect(event.parcel).toBe(worked.parcel);
    expect(eventHash(event)).toBe(event.hash);
  });

  it("opens what the bank's Sealer makes, for a key the server made itself", () => {
    const sealer = new Sealer(worked.serverKey.sealKey);
    for (const [code, parcel] of [["48213905", "1Z999AA10123456784"], ["0042", "L-0a1b2c3d4e"], ["999999999999", "P.1:x-y_z"]] as const) {
      const box = sealer.seal(code, parcel);
      expect(Object.keys(box).sort()).toEqual(["alg", "ct", "epk", "iv"]);
      expect(Buffer.from(box.iv, "base64")).toHaveLength(12);
      expect(Buffer.from(box.epk, "base64")).toHaveLength(32);
      expect(openSealedCode(doc, box, server, parcel)).toBe(code);
    }
  });
});
