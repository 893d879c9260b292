// App passes (domain/pass.ts): round trips, every refusal, tampering, domain separation from command
// signatures, a fuzz run that must never throw, and the worked example of docs/asyncapi.yaml read
// from the document itself, so the document and the code cannot disagree.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ConfigSchema } from "../../../src/config/schema.js";
import {
  encodePass,
  encodePassPayload,
  looksLikePass,
  MAX_PASS_CHARS,
  PARCEL_ID_PATTERN,
  parsePass,
  PASS_CONTEXT,
  PASS_PREFIX,
  PASS_REFUSALS,
  PASS_STATE_REFUSALS,
  SITE_PATTERN,
  DEVICE_PATTERN,
  verifyPass,
  type Pass,
  type PassCheck,
  type PassFields,
  type PassRefusal,
} from "../../../src/domain/pass.js";
import { canonicalCommand } from "../../../src/sync/contract.js";
import { publicKeyB64, SignatureVerifier } from "../../../src/sync/seal.js";

const server = generateKeyPairSync("ed25519");
const PUBLIC = publicKeyB64(server.publicKey);
const stranger = generateKeyPairSync("ed25519");

const T0 = 1_764_064_800_000; // 2025-11-25T10:00:00Z
const HOUR = 3_600_000;
const FIELDS: PassFields = {
  kind: "pickup",
  parcelId: "1Z999AA10123456784",
  site: "hq",
  device: "bank-01",
  notBefore: T0,
  expiresAt: T0 + 24 * HOUR,
  nonce: "00112233445566778899aabbccddeeff",
};
const AT: PassCheck = { publicKey: PUBLIC, site: "hq", device: "bank-01", now: T0 + HOUR, skewMs: 120_000 };
const TOKEN = encodePass(FIELDS, server.privateKey);

const b64url = (b: Buffer) => b.toString("base64url");
const bytesOf = (text: string) => Buffer.from(text.slice(PASS_PREFIX.length), "base64url");
const textOf = (bytes: Buffer) => PASS_PREFIX + b64url(bytes);
/** A pass of any payload bytes, correctly signed: whatever it is refused for, it is not the signature. */
const signed = (payload: Buffer, key: KeyObject = server.privateKey) => textOf(Buffer.concat([payload, sign(null, Buffer.concat([PASS_CONTEXT, payload]), key)]));
const payloadOf = (text: string) => {
  const b = bytesOf(text);
  return b.subarray(0, b.length - 64);
};
const refusal = (text: string, check: Partial<PassCheck> = {}): PassRefusal | "ok" => {
  const r = verifyPass(text, { ...AT, ...check });
  return r.ok ? "ok" : r.reason;
};

/** Hand-made payloads for the layout table: header fields, then raw id bytes with their own length bytes. */
function rawPayload(o: { version?: number; kind?: number; nbf?: number; exp?: number; ids?: Buffer[] } = {}): Buffer {
  const h = Buffer.alloc(26);
  h[0] = o.version ?? 1;
  h[1] = o.kind ?? 1;
  h.writeUInt32BE(o.nbf ?? T0 / 1000, 2);
  h.writeUInt32BE(o.exp ?? T0 / 1000 + 86_400, 6);
  Buffer.alloc(16, 0xab).copy(h, 10);
  const ids = o.ids ?? [Buffer.from("P-1"), Buffer.from("hq"), Buffer.from("bank-01")];
  return Buffer.concat([h, ...ids.map((id) => Buffer.concat([Buffer.from([id.length]), id]))]);
}

describe("app pass: encode and verify", () => {
  it("round-trips both kinds, every field as given", () => {
    for (const kind of ["pickup", "deposit"] as const) {
      const text = encodePass({ ...FIELDS, kind }, server.privateKey);
      expect(looksLikePass(text)).toBe(true);
      expect(verifyPass(text, AT)).toEqual({ ok: true, pass: { ...FIELDS, kind } });
    }
  });

  it("round-trips random fields, with a fresh random nonce when none is given", () => {
    const idChars = "ABCXYZabcxyz0189._:-";
    const siteChars = "abcz09-";
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) % n);
    const word = (chars: string, first: string, n: number) => first[rnd(first.length)]! + Array.from({ length: n - 1 }, () => chars[rnd(chars.length)]).join("");
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const parcelId = word(idChars, "A9z", 1 + rnd(40));
      const site = word(siteChars, siteChars, 1 + rnd(20));
      const device = word(siteChars, siteChars, 1 + rnd(20));
      const notBefore = rnd(4_000_000_000) * 1000;
      const expiresAt = notBefore + (1 + rnd(1_000_000)) * 1000;
      const fields: PassFields = { kind: i % 2 ? "pickup" : "deposit", parcelId, site, device, notBefore, expiresAt };
      const text = encodePass(fields, server.privateKey);
      expect(text.length).toBeLessThanOrEqual(MAX_PASS_CHARS);
      const r = verifyPass(text, { ...AT, site, device, now: notBefore });
      expect(r.ok).toBe(true);
      if (!r.ok) continue;
      expect(r.pass).toEqual({ ...fields, nonce: r.pass.nonce });
      expect(r.pass.nonce).toMatch(/^[0-9a-f]{32}$/);
      nonces.add(r.pass.nonce);
    }
    expect(nonces.size).toBe(200);
  });

  it("gives the signed bytes: the context, then the payload, under a 64-byte signature", () => {
    const p = parsePass(TOKEN);
    if (!p.ok) throw new Error(p.reason);
    expect(p.signed.equals(Buffer.concat([PASS_CONTEXT, p.payload]))).toBe(true);
    expect(PASS_CONTEXT.toString("latin1")).toBe("lockerd-pass-v1\0");
    expect(p.signature).toHaveLength(64);
    expect(bytesOf(TOKEN).equals(Buffer.concat([p.payload, p.signature]))).toBe(true);
  });

  it("keeps to 256 characters: the three ids may total 96 bytes, no more", () => {
    const at96 = encodePass({ ...FIELDS, parcelId: "X".repeat(64), site: "s".repeat(16), device: "d".repeat(16) }, server.privateKey);
    expect(at96).toHaveLength(MAX_PASS_CHARS);
    expect(verifyPass(at96, { ...AT, site: "s".repeat(16), device: "d".repeat(16) }).ok).toBe(true);
    expect(() => encodePass({ ...FIELDS, parcelId: "X".repeat(64), site: "s".repeat(17), device: "d".repeat(16) }, server.privateKey)).toThrow(/96 bytes/);
    const shortest = encodePass({ ...FIELDS, parcelId: "P", site: "s", device: "d" }, server.privateKey);
    expect(shortest).toHaveLength(132);
    expect(TOKEN).toHaveLength(164);
  });

  it("refuses to encode fields out of format", () => {
    const bad: Partial<PassFields>[] = [
      { parcelId: "" },
      { parcelId: "-lead" },
      { parcelId: "X".repeat(65) },
      { parcelId: "Ünïcode" },
      { site: "HQ" },
      { site: "" },
      { device: "bank_01" },
      { notBefore: T0 + 1 },
      { notBefore: -1000 },
      { expiresAt: T0 },
      { expiresAt: 2 ** 32 * 1000 },
      { nonce: "00" },
      { nonce: "00112233445566778899AABBCCDDEEFF" },
      { kind: "return" as never },
      { kind: "toString" as never },
    ];
    for (const b of bad) expect(() => encodePass({ ...FIELDS, ...b }, server.privateKey), JSON.stringify(b)).toThrow();
    expect(() => encodePass(FIELDS, server.publicKey)).toThrow(/private key/);
    expect(() => encodePass(FIELDS, generateKeyPairSync("x25519").privateKey)).toThrow(/Ed25519/);
  });
});

describe("app pass: every refusal", () => {
  it("not_a_pass: codes, labels and anything without the prefix, at once and whatever its size", () => {
    for (const text of ["", "123456", "L:123456", "1Z999AA10123456784", "LP1.short", `lp1.${TOKEN.slice(4)}`, `xLP1.${TOKEN.slice(4)}`, "x".repeat(5_000_000), `LP.${TOKEN.slice(4)}`, `LPx.${TOKEN.slice(4)}`]) {
      expect(refusal(text)).toBe("not_a_pass");
      expect(looksLikePass(text)).toBe(false);
    }
    for (const v of [undefined, null, 42, {}, Buffer.from(TOKEN)]) {
      expect(refusal(v as unknown as string)).toBe("not_a_pass");
      expect(looksLikePass(v)).toBe(false);
    }
    // A parcel label may be a ParcelId that starts like a pass: at most 64 characters, so never one.
    const label = `LP1.${"A".repeat(60)}`;
    expect(PARCEL_ID_PATTERN.test(label)).toBe(true);
    expect(looksLikePass(label)).toBe(false);
  });

  it("unsupported_version: another prefix version, or another version byte", () => {
    expect(refusal(`LP2.${TOKEN.slice(4)}`)).toBe("unsupported_version");
    expect(refusal(`LP10.${TOKEN.slice(4)}`)).toBe("unsupported_version");
    expect(refusal(`LP01.${TOKEN.slice(4)}`)).toBe("unsupported_version");
    expect(looksLikePass(`LP2.${TOKEN.slice(4)}`)).toBe(true);
    expect(refusal(signed(rawPayload({ version: 2 })))).toBe("unsupported_version");
    expect(refusal(signed(rawPayload({ version: 0 })))).toBe("unsupported_version");
  });

  it("malformed: the text", () => {
    // A new random nonce each try: FIELDS' fixed nonce gives the same text every time (Ed25519
    // signs deterministically), and a key whose pass had neither character looped for ever (a
    // Node 24 CI run drew one: one key in ~400).
    const standardBase64 = () => {
      for (;;) {
        const t = encodePass({ ...FIELDS, nonce: undefined }, server.privateKey);
        if (/[-_]/.test(t.slice(4))) return t.slice(0, 4) + t.slice(4).replace(/-/g, "+").replace(/_/g, "/");
      }
    };
    const body = TOKEN.slice(4);
    const cases: Record<string, string> = {
      "too long": `LP1.${"A".repeat(MAX_PASS_CHARS)}`,
      huge: `LP1.${"A".repeat(1_000_000)}`,
      padded: `${TOKEN}==`,
      // A pass whose base64url has a '-' or '_' (a random one may have neither: then its standard
      // base64 is the same text, and valid; a CI run drew such a nonce).
      "standard base64": standardBase64(),
      "a space": `LP1.${body.slice(0, 50)} ${body.slice(50)}`,
      "a line end": `${TOKEN}\n`,
      "a space after the prefix": `LP1. ${body}`,
      "one character too many": `${TOKEN}A`,
      "non-ASCII": `LP1.${body.slice(0, 80)}é${body.slice(81)}`,
      "a lone surrogate": `LP1.${body.slice(0, 80)}\ud800${body.slice(81)}`,
      truncated: TOKEN.slice(0, -3),
      "cut in half": TOKEN.slice(0, 90),
      "no signature": textOf(payloadOf(TOKEN)),
      "a trailing byte": textOf(Buffer.concat([bytesOf(TOKEN), Buffer.from([0])])),
    };
    // Stray bits: 119 bytes take 159 characters, the last of which carries 2 unused bits.
    const odd = encodePass({ ...FIELDS, parcelId: "1Z999AA1012345678" }, server.privateKey);
    expect(verifyPass(odd, AT).ok).toBe(true);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sibling = alphabet[alphabet.indexOf(odd.at(-1)!) ^ 1]!;
    cases["stray bits"] = `${odd.slice(0, -1)}${sibling}`;
    expect(bytesOf(cases["stray bits"])).toHaveLength(119);
    expect(bytesOf(cases["stray bits"]).equals(bytesOf(odd))).toBe(true);
    for (const [what, text] of Object.entries(cases)) expect(refusal(text), what).toBe("malformed");
  });

  it("malformed: the payload, even when correctly signed", () => {
    const id = (s: string) => Buffer.from(s, "utf8");
    const cases: Record<string, Buffer> = {
      "kind 0": rawPayload({ kind: 0 }),
      "kind 3": rawPayload({ kind: 3 }),
      "expires when it starts": rawPayload({ nbf: 1000, exp: 1000 }),
      "expires before it starts": rawPayload({ nbf: 1001, exp: 1000 }),
      "empty parcel id": rawPayload({ ids: [id(""), id("hq"), id("bank-01")] }),
      "empty device": rawPayload({ ids: [id("P-1"), id("hq"), id("")] }),
      "invalid UTF-8": rawPayload({ ids: [Buffer.from([0x50, 0xff, 0x31]), id("hq"), id("bank-01")] }),
      "overlong UTF-8": rawPayload({ ids: [Buffer.from([0x50, 0xc0, 0xaf]), id("hq"), id("bank-01")] }),
      "a byte-order mark": rawPayload({ ids: [id("P-1"), Buffer.from([0xef, 0xbb, 0xbf, 0x68, 0x71]), id("bank-01")] }),
      "valid UTF-8, not a ParcelId": rawPayload({ ids: [id("Pä-1"), id("hq"), id("bank-01")] }),
      "site in capitals": rawPayload({ ids: [id("P-1"), id("HQ"), id("bank-01")] }),
      "device with NUL": rawPayload({ ids: [id("P-1"), id("hq"), id("bank\u000001")] }),
      "parcel id of 65": rawPayload({ ids: [id("P".repeat(65)), id("h"), id("b")] }),
      "a fourth id": rawPayload({ ids: [id("P-1"), id("hq"), id("bank-01"), id("x")] }),
      "no device": rawPayload({ ids: [id("P-1"), id("hq")] }),
      "header only": rawPayload({ ids: [] }),
    };
    for (const [what, payload] of Object.entries(cases)) expect(refusal(signed(payload)), what).toBe("malformed");
    // A length byte running into the signature: device length 0x47 (64 + 7).
    const long = Buffer.from(payloadOf(TOKEN));
    long[long.length - 8] = 7 + 64;
    expect(refusal(signed(long))).toBe("malformed");
    // A pass of 95 bytes (under the smallest, 96) whatever it says.
    expect(refusal(textOf(Buffer.alloc(95, 1)))).toBe("malformed");
  });

  it("no_key: without a usable public key, nothing is checked further", () => {
    for (const publicKey of [undefined, "", "not a key", PUBLIC.slice(0, -1), Buffer.alloc(31).toString("base64"), `${PUBLIC} `]) {
      expect(refusal(TOKEN, { publicKey }), String(publicKey)).toBe("no_key");
    }
    // The format comes first: a scan that is no pass is routed elsewhere even on a bank without a key.
    expect(refusal("123456", { publicKey: undefined })).toBe("not_a_pass");
  });

  it("bad_signature: another key, or a signature altered", () => {
    expect(refusal(encodePass(FIELDS, stranger.privateKey))).toBe("bad_signature");
    expect(refusal(TOKEN, { publicKey: publicKeyB64(stranger.publicKey) })).toBe("bad_signature");
    const b = bytesOf(TOKEN);
    b[b.length - 1]! ^= 0x01;
    expect(refusal(textOf(b))).toBe("bad_signature");
    // Checked before site and device: a forged pass for another bank says nothing about it.
    expect(verifyPass(encodePass({ ...FIELDS, site: "elsewhere" }, stranger.privateKey), AT)).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("wrong_site, wrong_device: a genuine pass for another bank, which it names", () => {
    const r = verifyPass(TOKEN, { ...AT, site: "depot" });
    expect(r).toEqual({ ok: false, reason: "wrong_site", pass: { ...FIELDS } });
    expect(refusal(TOKEN, { device: "bank-02" })).toBe("wrong_device");
    expect(refusal(TOKEN, { site: "depot", device: "bank-02" })).toBe("wrong_site");
  });

  it("not_yet_valid, expired: the window, the tolerance at both ends, inclusive", () => {
    const skew = 120_000;
    const { notBefore, expiresAt } = FIELDS;
    expect(refusal(TOKEN, { now: notBefore - skew - 1 })).toBe("not_yet_valid");
    expect(refusal(TOKEN, { now: notBefore - skew })).toBe("ok");
    expect(refusal(TOKEN, { now: expiresAt + skew })).toBe("ok");
    expect(refusal(TOKEN, { now: expiresAt + skew + 1 })).toBe("expired");
    expect(refusal(TOKEN, { now: notBefore - 1, skewMs: 0 })).toBe("not_yet_valid");
    expect(refusal(TOKEN, { now: expiresAt + 1, skewMs: 0 })).toBe("expired");
    // A nonsense tolerance counts as none; a nonsense clock refuses.
    expect(refusal(TOKEN, { now: notBefore - 1, skewMs: -5 })).toBe("not_yet_valid");
    expect(refusal(TOKEN, { now: expiresAt + 1, skewMs: Number.NaN })).toBe("expired");
    expect(refusal(TOKEN, { now: expiresAt + 1, skewMs: Number.POSITIVE_INFINITY })).toBe("expired");
    expect(refusal(TOKEN, { now: Number.NaN })).not.toBe("ok");
    const r = verifyPass(TOKEN, { ...AT, now: expiresAt + skew + 1 });
    expect(!r.ok && r.pass?.expiresAt).toBe(expiresAt);
  });

  it("while the clock is not synchronized: never not_yet_valid, expired only by the lower bound", () => {
    const { notBefore, expiresAt } = FIELDS;
    const skew = AT.skewMs;
    expect(refusal(TOKEN, { now: notBefore - 365 * 24 * HOUR, unsynced: { lower: undefined } })).toBe("ok");
    expect(refusal(TOKEN, { now: expiresAt + 365 * 24 * HOUR, unsynced: { lower: undefined } })).toBe("ok");
    expect(refusal(TOKEN, { now: 0, unsynced: { lower: expiresAt + skew } })).toBe("ok");
    expect(refusal(TOKEN, { now: 0, unsynced: { lower: expiresAt + skew + 1 } })).toBe("expired");
    // The format, signature and bank checks hold as ever.
    expect(refusal(TOKEN, { site: "depot", unsynced: { lower: undefined } })).toBe("wrong_site");
  });

  it("lists exactly these reasons", () => {
    expect([...PASS_REFUSALS]).toEqual(["not_a_pass", "unsupported_version", "malformed", "no_key", "bad_signature", "wrong_site", "wrong_device", "not_yet_valid", "expired"]);
  });
});

describe("app pass: tampering and domain separation", () => {
  it("refuses every byte of a real pass altered, each in three ways", () => {
    const bytes = bytesOf(TOKEN);
    const seen = new Set<string>();
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(bytes);
        b[i]! ^= mask;
        const r = verifyPass(textOf(b), AT);
        expect(r.ok, `byte ${i} ^ ${mask}`).toBe(false);
        if (!r.ok) {
          expect(["bad_signature", "malformed", "unsupported_version"], `byte ${i} ^ ${mask}: ${r.reason}`).toContain(r.reason);
          if (r.reason === "unsupported_version") expect(i).toBe(0);
          seen.add(r.reason);
        }
      }
    }
    expect(seen).toEqual(new Set(["bad_signature", "malformed", "unsupported_version"]));
  });

  it("a command signature made with the same key is no pass signature, and the other way round", () => {
    const payload = payloadOf(TOKEN);
    const command = { site: "hq", device: "bank-01", name: "open", id: "c1", args: { compartment: "A07", reason: "pass test" }, issuedAt: T0, expiresAt: T0 + 300_000 };
    const commandBytes = canonicalCommand(command);
    const commandSig = sign(null, commandBytes, server.privateKey);
    expect(new SignatureVerifier(PUBLIC).verify(commandBytes, commandSig.toString("base64"))).toBe(true);
    // The command's signature on the pass's payload.
    expect(refusal(textOf(Buffer.concat([payload, commandSig])))).toBe("bad_signature");
    // The command's bytes as a pass, with their genuine signature: the context is not there.
    expect(refusal(textOf(Buffer.concat([commandBytes, commandSig])))).not.toBe("ok");
    // The payload signed without the context.
    expect(refusal(textOf(Buffer.concat([payload, sign(null, payload, server.privateKey)])))).toBe("bad_signature");
    // The pass's signature as a command's sig.
    const p = parsePass(TOKEN);
    if (!p.ok) throw new Error(p.reason);
    expect(new SignatureVerifier(PUBLIC).verify(commandBytes, p.signature.toString("base64"))).toBe(false);
    // Why no signature can serve both: what they cover never starts alike.
    expect(commandBytes.subarray(0, 1).toString()).toBe("{");
    expect(p.signed.subarray(0, PASS_CONTEXT.length).equals(PASS_CONTEXT)).toBe(true);
    expect(PASS_CONTEXT[0]).not.toBe("{".charCodeAt(0));
  });

  it("never throws on 5,000 random and mutated scans, and accepts only the genuine passes themselves", () => {
    let seed = Number(process.env.FUZZ_SEED ?? 20261125) >>> 0;
    const rnd = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) >>> 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const int = (n: number) => Math.floor(rnd() * n);
    const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const NOISE = `${B64}+/=. \n\r\t\0éß€😀\ud800\udfffLP1.`;
    const pick = (s: string) => s[int(s.length)]!;
    const other = encodePass({ ...FIELDS, kind: "deposit", parcelId: "L-0a1b2c3d4e" }, server.privateKey);
    const mutate = (text: string): string => {
      const i = int(text.length + 1);
      switch (int(8)) {
        case 0:
          return text.slice(0, i) + pick(B64) + text.slice(i + 1);
        case 1:
          return text.slice(0, i) + pick(NOISE) + text.slice(i);
        case 2:
          return text.slice(0, i) + text.slice(i + 1 + int(4));
        case 3:
          return text.slice(0, i);
        case 4:
          return text + text.slice(int(text.length));
        case 5: {
          const b = bytesOf(text);
          if (b.length) b[int(b.length)] = int(256);
          return textOf(b);
        }
        case 6:
          return other.slice(0, i) + text.slice(i);
        default: {
          const j = int(text.length);
          return text.slice(0, Math.min(i, j)) + text.slice(Math.max(i, j)) + text.slice(Math.min(i, j), Math.max(i, j));
        }
      }
    };
    const randomText = (): string => {
      switch (int(6)) {
        case 0:
          return Array.from({ length: int(300) }, () => String.fromCharCode(int(0x10000))).join("");
        case 1:
          return PASS_PREFIX + Array.from({ length: int(300) }, () => pick(B64)).join("");
        case 2:
          return PASS_PREFIX + b64url(Buffer.from(Array.from({ length: 90 + int(110) }, () => int(256))));
        case 3:
          return int(50) === 0 ? PASS_PREFIX + "A".repeat(1_000_000 + int(10)) : Array.from({ length: int(30) }, () => pick(NOISE)).join("");
        default: {
          let t = int(2) ? TOKEN : other;
          for (let k = 1 + int(3); k > 0; k--) t = mutate(t);
          return t;
        }
      }
    };
    const counts: Record<string, number> = {};
    for (let n = 0; n < 5000; n++) {
      const text = randomText();
      let r: ReturnType<typeof verifyPass> | undefined;
      expect(() => {
        parsePass(text);
        looksLikePass(text);
        r = verifyPass(text, AT);
      }, JSON.stringify(text.slice(0, 300))).not.toThrow();
      if (!r) continue;
      counts[r.ok ? "ok" : r.reason] = (counts[r.ok ? "ok" : r.reason] ?? 0) + 1;
      if (r.ok) expect([TOKEN, other], "only a genuine text is accepted").toContain(text);
      else expect(PASS_REFUSALS).toContain(r.reason);
    }
    // The run reached the signature check, not only the parser.
    expect(counts.bad_signature ?? 0, JSON.stringify(counts)).toBeGreaterThan(100);
    expect(counts.malformed ?? 0, JSON.stringify(counts)).toBeGreaterThan(100);
    expect(counts.not_a_pass ?? 0, JSON.stringify(counts)).toBeGreaterThan(100);
  });

  it("parses in microseconds and verifies with a cached key", () => {
    const start = performance.now();
    for (let i = 0; i < 2000; i++) parsePass(TOKEN);
    const parseUs = ((performance.now() - start) * 1000) / 2000;
    expect(parseUs).toBeLessThan(200);
    const t1 = performance.now();
    for (let i = 0; i < 500; i++) expect(verifyPass(TOKEN, AT).ok).toBe(true);
    expect(((performance.now() - t1) * 1000) / 500).toBeLessThan(5000);
  });
});

// ── the document ───────────────────────────────────────────────────────

interface WorkedPass {
  key: { seed: string; pkcs8: string; serverPublicKey: string };
  pass: { kind: Pass["kind"]; parcelId: string; site: string; device: string; notBefore: number; expiresAt: number; nonce: string };
  fields: { field: string; hex: string }[];
  payload: string;
  context: string;
  signature: string;
  text: string;
  length: number;
  qr: string;
}
interface Doc {
  info: { description: string; "x-lockerd-example-key": { d: string; x: string } };
  components: { schemas: { ParcelId: { pattern: string }; AppPass: { pattern: string; maxLength: number; examples: string[]; "x-lockerd-worked-example": WorkedPass } } };
}

describe("app pass: docs/asyncapi.yaml", () => {
  const doc = parse(readFileSync(new URL("../../../docs/asyncapi.yaml", import.meta.url), "utf8")) as Doc;
  const schema = doc.components.schemas.AppPass;
  const worked = schema["x-lockerd-worked-example"];
  const section = /## App passes\n([\s\S]*?)\n## /.exec(doc.info.description)?.[1] ?? "";
  const expected: Pass = { ...worked.pass, notBefore: worked.pass.notBefore * 1000, expiresAt: worked.pass.expiresAt * 1000 };
  const check = (over: Partial<PassCheck> = {}): PassCheck => ({ publicKey: worked.key.serverPublicKey, site: worked.pass.site, device: worked.pass.device, now: expected.notBefore, skewMs: 0, ...over });

  it("has its worked example, which verifies to the fields the document gives", () => {
    expect(section).toContain("lockerd-pass-v1");
    expect(verifyPass(worked.text, check())).toEqual({ ok: true, pass: expected });
    expect(verifyPass(worked.text, check({ now: expected.expiresAt }))).toEqual({ ok: true, pass: expected });
    expect(verifyPass(worked.text, check({ now: expected.expiresAt + 1 })).ok).toBe(false);
    expect(verifyPass(worked.text, check({ now: expected.notBefore - 1 })).ok).toBe(false);
    expect(schema.examples[0]).toBe(worked.text);
    expect(worked.text).toHaveLength(worked.length);
    expect(worked.text).toMatch(new RegExp(schema.pattern));
    expect(schema.maxLength).toBe(MAX_PASS_CHARS);
  });

  it("gives a TEST key whose halves agree, the document's example key", () => {
    const seed = Buffer.from(worked.key.seed, "hex");
    expect(seed).toHaveLength(32);
    const fromSeed = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
    const fromPkcs8 = createPrivateKey({ key: Buffer.from(worked.key.pkcs8, "base64"), format: "der", type: "pkcs8" });
    expect(fromPkcs8.export({ format: "jwk" })).toEqual(fromSeed.export({ format: "jwk" }));
    expect(publicKeyB64(createPublicKey(fromSeed))).toBe(worked.key.serverPublicKey);
    expect(seed.toString("base64url")).toBe(doc.info["x-lockerd-example-key"].d);
    // Ed25519 is deterministic: the same key and fields give the same text.
    expect(encodePass(expected, fromSeed)).toBe(worked.text);
  });

  it("spells out the bytes: the layout table, built here by hand, gives its payload, context and signature", () => {
    const p = parsePass(worked.text);
    if (!p.ok) throw new Error(p.reason);
    expect(p.payload.toString("hex")).toBe(worked.payload);
    expect(p.signature.toString("hex")).toBe(worked.signature);
    expect(worked.context).toBe(PASS_CONTEXT.toString("hex"));
    expect(worked.fields.map((f) => f.hex).join("")).toBe(worked.payload);
    expect(worked.fields.map((f) => f.field)).toEqual(["version", "kind", "notBefore", "expiresAt", "nonce", "parcel", "site", "device"]);
    // The layout table, independently of encodePass.
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const lp = (s: string) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s, "utf8")]);
    const byHand = Buffer.concat([
      Buffer.from([1, worked.pass.kind === "pickup" ? 1 : 2]),
      u32(worked.pass.notBefore),
      u32(worked.pass.expiresAt),
      Buffer.from(worked.pass.nonce, "hex"),
      lp(worked.pass.parcelId),
      lp(worked.pass.site),
      lp(worked.pass.device),
    ]);
    expect(byHand.toString("hex")).toBe(worked.payload);
    expect(encodePassPayload(expected, Buffer.from(worked.pass.nonce, "hex")).equals(byHand)).toBe(true);
    const key = createPrivateKey({ key: Buffer.from(worked.key.pkcs8, "base64"), format: "der", type: "pkcs8" });
    const sig = sign(null, Buffer.concat([Buffer.from(worked.context, "hex"), byHand]), key);
    expect(sig.toString("hex")).toBe(worked.signature);
    expect(`LP1.${Buffer.concat([byHand, sig]).toString("base64url")}`).toBe(worked.text);
  });

  it("states the limits, the QR code and every reason code the code uses", () => {
    const flat = section.replace(/\s+/g, " ");
    expect(flat).toContain(`**At most ${MAX_PASS_CHARS} characters**`);
    expect(flat).toContain("p + s + d is at most 96 bytes");
    expect(flat).toContain(`makes ${worked.length} characters`);
    expect(flat).toContain("the shortest pass has 132");
    expect(flat).toContain(`hex \`${PASS_CONTEXT.toString("hex")}\``);
    // QR byte-mode capacities at level M (ISO/IEC 18004, table 7): version 9 holds 180, 11 251, 12 287.
    expect(flat).toContain("(up to 180 characters) fits **version 9**");
    expect(worked.length).toBeLessThanOrEqual(180);
    expect(worked.qr).toBe("byte mode, level M, version 9");
    expect(MAX_PASS_CHARS).toBeGreaterThan(251);
    expect(MAX_PASS_CHARS).toBeLessThanOrEqual(287);
    expect(flat).toContain("the longest (256) version 12");
    expect(flat).toContain("when its three ids total at most 39 bytes");
    const withIds = (n: number) => encodePass({ ...FIELDS, parcelId: "P".repeat(n - 2), site: "s", device: "d" }, server.privateKey).length;
    expect(withIds(39)).toBe(180);
    expect(withIds(40)).toBeGreaterThan(180);
    for (const reason of [...PASS_REFUSALS, ...PASS_STATE_REFUSALS]) expect(flat, reason).toContain(`\`${reason}\``);
  });

  it("uses the contract's id formats", () => {
    expect(PARCEL_ID_PATTERN.source).toBe(doc.components.schemas.ParcelId.pattern);
    const device = ConfigSchema.shape.device;
    for (const s of ["hq", "bank-01", "a", "x".repeat(40), "x".repeat(41), "HQ", "bank_01", "", "bänk", "-"]) {
      expect(SITE_PATTERN.test(s), s).toBe(device.shape.site.safeParse(s).success);
      expect(DEVICE_PATTERN.test(s), s).toBe(device.shape.id.safeParse(s).success);
    }
  });
});
