import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openSealed, publicKeyB64, SEAL_ALG, Sealer, SignatureVerifier } from "../../../src/sync/seal.js";

describe("sealed codes", () => {
  const server = generateKeyPairSync("x25519");
  const sealer = new Sealer(publicKeyB64(server.publicKey));

  it("only the server's private key opens a sealed code, and only for its parcel", () => {
    const box = sealer.seal("48213905", "L-abc");
    expect(box.alg).toBe(SEAL_ALG);
    expect(JSON.stringify(box)).not.toContain("48213905");
    expect(openSealed(box, server.privateKey, "L-abc")).toBe("48213905");
    expect(() => openSealed(box, server.privateKey, "L-other")).toThrow();
    const stranger = generateKeyPairSync("x25519");
    expect(() => openSealed(box, stranger.privateKey, "L-abc")).toThrow();
  });

  it("uses a fresh ephemeral key and iv for every code", () => {
    const a = sealer.seal("11112222", "P1");
    const b = sealer.seal("11112222", "P1");
    expect(a.epk).not.toBe(b.epk);
    expect(a.ct).not.toBe(b.ct);
  });

  it("refuses a key that is not 32 bytes", () => {
    expect(() => new Sealer(Buffer.alloc(16).toString("base64"))).toThrow(/32 bytes/);
  });
});

describe("command signatures", () => {
  const server = generateKeyPairSync("ed25519");
  const verifier = new SignatureVerifier(publicKeyB64(server.publicKey));
  const msg = Buffer.from('{"args":{},"id":"c1"}');

  it("accepts the server's signature and nothing else", () => {
    const sig = sign(null, msg, server.privateKey).toString("base64");
    expect(verifier.verify(msg, sig)).toBe(true);
    expect(verifier.verify(Buffer.from('{"args":{},"id":"c2"}'), sig)).toBe(false);
    const other = generateKeyPairSync("ed25519");
    expect(verifier.verify(msg, sign(null, msg, other.privateKey).toString("base64"))).toBe(false);
    expect(verifier.verify(msg, "AAAA")).toBe(false);
  });
});
