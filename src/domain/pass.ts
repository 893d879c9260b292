// App passes: the QR code a recipient's (or a courier's) phone shows, made and signed by the central
// server, read by the bank's scanner as a line of text and checked offline. docs/asyncapi.yaml
// ("App passes", schema AppPass) is the contract; this is the bank's side of it, plus the encoder
// the server tool and the tests use.
//
//   text      = "LP1." ‖ base64url(payload ‖ signature), no padding, at most 256 characters
//   payload   = version 0x01 · kind (0x01 pickup, 0x02 deposit) · notBefore u32 · expiresAt u32
//               (Unix seconds, big-endian) · nonce (16 bytes) · parcel · site · device
//               (each: one length byte, then that many bytes of UTF-8)
//   signature = Ed25519(server key, "lockerd-pass-v1\0" ‖ payload)
//
// Parsing is strict and bounded (no input makes it throw or work on more than 256 characters); a
// pass is accepted only in its one canonical encoding. What is left to the bank: whether the parcel
// is in the state the pass is for, and that its nonce was never seen before (a pass opens once).
import { createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";

/** Text prefix of a version-1 pass. */
export const PASS_PREFIX = "LP1.";
export const PASS_VERSION = 1;
/** What the signature covers before the payload: ASCII "lockerd-pass-v1" and a NUL (16 bytes). */
export const PASS_CONTEXT: Buffer = Buffer.from("lockerd-pass-v1\0", "latin1");
/**
 * The longest pass text: what a keyboard-wedge (USB HID) reader keeps of a line
 * (drivers/readers/keyboard.ts drops longer lines whole). The three ids then total at most 96 bytes.
 */
export const MAX_PASS_CHARS = 256;
/** No parcel label (a ParcelId, at most 64 characters) or pickup code is this long: a shorter text is never a pass. */
export const MIN_PASS_CHARS = 65;
export const PASS_NONCE_BYTES = 16;
const SIGNATURE_BYTES = 64;
/** version, kind, notBefore, expiresAt, nonce. */
const HEADER_BYTES = 2 + 4 + 4 + PASS_NONCE_BYTES;
/** The smallest payload: the header and three one-byte ids with their length bytes. */
const MIN_PAYLOAD_BYTES = HEADER_BYTES + 3 * 2;
const MAX_BODY_CHARS = MAX_PASS_CHARS - PASS_PREFIX.length;
const MAX_U32 = 0xffff_ffff;

/** The id formats of the contract: ParcelId (sync/contract.ts), device.site and device.id (config/schema.ts). */
export const PARCEL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const SITE_PATTERN = /^[a-z0-9-]{1,40}$/;
export const DEVICE_PATTERN = /^[a-z0-9-]{1,40}$/;

export const PASS_KINDS = ["pickup", "deposit"] as const;
export type PassKind = (typeof PASS_KINDS)[number];
const KIND_BYTE: Record<PassKind, number> = { pickup: 1, deposit: 2 };
const KIND_OF: Record<number, PassKind | undefined> = { 1: "pickup", 2: "deposit" };

/**
 * Why a text is not a pass the bank may act on (in the order verifyPass checks):
 * - `not_a_pass`: no `LP<digits>.` prefix, or 64 characters or fewer: route the scan elsewhere;
 * - `unsupported_version`: a pass of another version (prefix `LP2.`, or a version byte not 1);
 * - `malformed`: longer than 256 characters, not canonical unpadded base64url, too short,
 *   truncated, trailing bytes, an unknown kind, an id not UTF-8 or not in its format, or a window
 *   that ends before it starts;
 * - `no_key`: the bank has no (valid) `sync.serverPublicKey`, so it cannot check any pass;
 * - `bad_signature`: not signed by the server's key (forged, altered, or another key);
 * - `wrong_site` / `wrong_device`: a genuine pass for another bank;
 * - `not_yet_valid`: now < notBefore - skew;
 * - `expired`: now > expiresAt + skew.
 */
export const PASS_REFUSALS = [
  "not_a_pass",
  "unsupported_version",
  "malformed",
  "no_key",
  "bad_signature",
  "wrong_site",
  "wrong_device",
  "not_yet_valid",
  "expired",
] as const;
export type PassRefusal = (typeof PASS_REFUSALS)[number];
/**
 * The bank's own checks after verifyPass, rules of the format all the same (docs/asyncapi.yaml):
 * - `parcel_not_stored`: a pickup pass for a parcel this bank does not hold (never deposited here,
 *   or already picked up, removed or taken back);
 * - `parcel_not_reserved`: a deposit pass for a parcel not reserved at this bank, or already deposited;
 * - `already_used`: its nonce opened a door before: a pass opens once.
 */
export const PASS_STATE_REFUSALS = ["parcel_not_stored", "parcel_not_reserved", "already_used"] as const;
export type PassStateRefusal = (typeof PASS_STATE_REFUSALS)[number];
/** The refusals parsing alone can give. */
export type PassFormatRefusal = Extract<PassRefusal, "not_a_pass" | "unsupported_version" | "malformed">;

/** A pass's contents. Times are milliseconds since the Unix epoch (whole seconds on the wire). */
export interface Pass {
  kind: PassKind;
  parcelId: string;
  site: string;
  device: string;
  notBefore: number;
  expiresAt: number;
  /** 16 bytes, lowercase hex: the bank records it and never opens for it again. */
  nonce: string;
}

/** What encodePass takes: a Pass whose nonce may be left out (16 random bytes then). */
export type PassFields = Omit<Pass, "nonce"> & { nonce?: string | undefined };

export type ParsedPass =
  | {
      ok: true;
      pass: Pass;
      /** The payload bytes, as decoded. */
      payload: Buffer;
      /** The exact bytes the signature covers: PASS_CONTEXT ‖ payload. */
      signed: Buffer;
      signature: Buffer;
    }
  | { ok: false; reason: PassFormatRefusal };

export interface PassCheck {
  /** `sync.serverPublicKey`: the server's Ed25519 public key, 32 raw bytes in standard base64. */
  publicKey: string | undefined;
  /** This bank: `device.site` and `device.id`. */
  site: string;
  device: string;
  /** The bank's clock, ms since the Unix epoch. */
  now: number;
  /** Clock-skew tolerance, applied to both ends of the window (`sync.clockSkewS` × 1000). */
  skewMs: number;
  /**
   * Set while the bank's clock is not synchronized (sync/clock.ts), as for commands: `now` may then
   * be far off, so a pass is not refused as not yet valid, and is expired only when `lower` (the last
   * synchronized time + the uptime since; undefined without one) is past expiresAt + skew.
   */
  unsynced?: { lower: number | undefined } | undefined;
}

/**
 * The verdict. A refusal after the signature verified (wrong_site, wrong_device, not_yet_valid,
 * expired) carries the pass, so the bank can say which bank or which time it is for; the earlier
 * ones carry nothing read from the text.
 */
export type PassVerdict = { ok: true; pass: Pass } | { ok: false; reason: PassRefusal; pass?: Pass };

const PREFIX_RE = /^LP([0-9]{1,3})\./;
const BODY_RE = /^[A-Za-z0-9_-]+$/;
const NONCE_RE = /^[0-9a-f]{32}$/;
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Cheap: does this scan claim to be an app pass (of any version)? Check it with verifyPass. */
export function looksLikePass(text: unknown): boolean {
  return typeof text === "string" && text.length >= MIN_PASS_CHARS && PREFIX_RE.test(text.slice(0, 6));
}

function fail(reason: PassFormatRefusal): { ok: false; reason: PassFormatRefusal } {
  return { ok: false, reason };
}

/** One length-prefixed id at `at`, within `end`; undefined when it does not fit, is not UTF-8, or not in `format`. */
function readId(buf: Buffer, at: number, end: number, format: RegExp): { value: string; next: number } | undefined {
  const len = buf[at];
  if (len === undefined || len === 0 || at + 1 + len > end) return undefined;
  let value: string;
  try {
    value = UTF8.decode(buf.subarray(at + 1, at + 1 + len));
  } catch {
    return undefined;
  }
  return format.test(value) ? { value, next: at + 1 + len } : undefined;
}

function parse(text: string): ParsedPass {
  if (!looksLikePass(text)) return fail("not_a_pass");
  if (PREFIX_RE.exec(text.slice(0, 6))?.[1] !== String(PASS_VERSION)) return fail("unsupported_version");
  if (text.length > MAX_PASS_CHARS) return fail("malformed");
  const body = text.slice(PASS_PREFIX.length);
  if (body.length > MAX_BODY_CHARS || body.length % 4 === 1 || !BODY_RE.test(body)) return fail("malformed");
  const buf = Buffer.from(body, "base64url");
  // One encoding only: no padding, no stray bits in the last character.
  if (buf.toString("base64url") !== body) return fail("malformed");
  if (buf.length < MIN_PAYLOAD_BYTES + SIGNATURE_BYTES) return fail("malformed");
  if (buf[0] !== PASS_VERSION) return fail("unsupported_version");
  const kind = KIND_OF[buf[1]!];
  if (kind === undefined) return fail("malformed");
  const notBefore = buf.readUInt32BE(2);
  const expiresAt = buf.readUInt32BE(6);
  if (expiresAt <= notBefore) return fail("malformed");
  const nonce = buf.subarray(10, HEADER_BYTES).toString("hex");
  const end = buf.length - SIGNATURE_BYTES;
  const parcel = readId(buf, HEADER_BYTES, end, PARCEL_ID_PATTERN);
  const site = parcel && readId(buf, parcel.next, end, SITE_PATTERN);
  const device = site && readId(buf, site.next, end, DEVICE_PATTERN);
  // The signature follows the device id at once, and nothing follows the signature.
  if (!device || device.next !== end) return fail("malformed");
  const payload = buf.subarray(0, end);
  return {
    ok: true,
    pass: { kind, parcelId: parcel.value, site: site.value, device: device.value, notBefore: notBefore * 1000, expiresAt: expiresAt * 1000, nonce },
    payload,
    signed: Buffer.concat([PASS_CONTEXT, payload]),
    signature: buf.subarray(end),
  };
}

/** Decodes a pass without checking its signature or window. Never throws. */
export function parsePass(text: string): ParsedPass {
  try {
    return parse(text);
  } catch {
    // Not reachable by any string (the fuzz tests say so); a last line for whatever else arrives.
    return fail(typeof text === "string" ? "malformed" : "not_a_pass");
  }
}

// Public keys by their base64 text: a bank has one, so this stays tiny.
const keys = new Map<string, KeyObject | null>();
const MAX_CACHED_KEYS = 8;

function publicKeyOf(b64: string | undefined): KeyObject | null {
  if (typeof b64 !== "string") return null;
  let key = keys.get(b64);
  if (key !== undefined) return key;
  key = null;
  if (/^[A-Za-z0-9+/]{43}=$/.test(b64)) {
    try {
      key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(b64, "base64").toString("base64url") }, format: "jwk" });
    } catch {
      key = null;
    }
  }
  if (keys.size >= MAX_CACHED_KEYS) keys.clear();
  keys.set(b64, key);
  return key;
}

/**
 * Checks a scanned text as the bank does, in order: format, key, signature, site, device, window
 * (notBefore - skew ≤ now ≤ expiresAt + skew, both bounds inclusive; see `unsynced`). Never throws.
 * The parcel's state and the nonce's novelty are the caller's to check next (PassStateRefusal).
 */
export function verifyPass(text: string, check: PassCheck): PassVerdict {
  const parsed = parsePass(text);
  if (!parsed.ok) return parsed;
  const key = publicKeyOf(check.publicKey);
  if (!key) return { ok: false, reason: "no_key" };
  let genuine = false;
  try {
    genuine = verify(null, parsed.signed, key, parsed.signature);
  } catch {
    genuine = false;
  }
  if (!genuine) return { ok: false, reason: "bad_signature" };
  const { pass } = parsed;
  if (pass.site !== check.site) return { ok: false, reason: "wrong_site", pass };
  if (pass.device !== check.device) return { ok: false, reason: "wrong_device", pass };
  const skew = Number.isFinite(check.skewMs) && check.skewMs > 0 ? check.skewMs : 0;
  if (check.unsynced) {
    const { lower } = check.unsynced;
    if (lower !== undefined && !(lower <= pass.expiresAt + skew)) return { ok: false, reason: "expired", pass };
    return { ok: true, pass };
  }
  // Written so that a NaN clock refuses rather than passes.
  if (!(check.now >= pass.notBefore - skew)) return { ok: false, reason: "not_yet_valid", pass };
  if (!(check.now <= pass.expiresAt + skew)) return { ok: false, reason: "expired", pass };
  return { ok: true, pass };
}

function idBytes(what: string, value: string, format: RegExp): Buffer {
  if (typeof value !== "string" || !format.test(value)) throw new RangeError(`pass ${what} ${JSON.stringify(value)} does not match ${format.source}`);
  const bytes = Buffer.from(value, "utf8");
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

function seconds(what: string, ms: number): number {
  if (!Number.isInteger(ms) || ms % 1000 !== 0 || ms < 0 || ms / 1000 > MAX_U32) {
    throw new RangeError(`pass ${what} must be whole seconds between 1970 and 2106 (ms since the epoch), got ${ms}`);
  }
  return ms / 1000;
}

/** The payload bytes of a pass (what follows PASS_CONTEXT under the signature). Throws on fields out of format. */
export function encodePassPayload(fields: PassFields, nonce: Buffer): Buffer {
  const kind = Object.hasOwn(KIND_BYTE, fields.kind) ? KIND_BYTE[fields.kind] : undefined;
  if (kind === undefined) throw new RangeError(`pass kind must be one of ${PASS_KINDS.join(", ")}, got ${String(fields.kind)}`);
  if (nonce.length !== PASS_NONCE_BYTES) throw new RangeError(`pass nonce must be ${PASS_NONCE_BYTES} bytes`);
  const notBefore = seconds("notBefore", fields.notBefore);
  const expiresAt = seconds("expiresAt", fields.expiresAt);
  if (expiresAt <= notBefore) throw new RangeError("pass expiresAt must be after notBefore");
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = PASS_VERSION;
  header[1] = kind;
  header.writeUInt32BE(notBefore, 2);
  header.writeUInt32BE(expiresAt, 6);
  nonce.copy(header, 10);
  return Buffer.concat([header, idBytes("parcel id", fields.parcelId, PARCEL_ID_PATTERN), idBytes("site", fields.site, SITE_PATTERN), idBytes("device", fields.device, DEVICE_PATTERN)]);
}

/**
 * The server's side (server-tool pass, and the tests): the text of a pass signed with the server's
 * Ed25519 private key. Throws on fields out of format, a key that is not a private Ed25519 key,
 * or ids too long for MAX_PASS_CHARS.
 */
export function encodePass(fields: PassFields, privateKey: KeyObject): string {
  if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") throw new TypeError("a pass is signed with an Ed25519 private key");
  if (fields.nonce !== undefined && !NONCE_RE.test(fields.nonce)) throw new RangeError("pass nonce must be 32 lowercase hex digits");
  const nonce = fields.nonce === undefined ? randomBytes(PASS_NONCE_BYTES) : Buffer.from(fields.nonce, "hex");
  const payload = encodePassPayload(fields, nonce);
  const signature = sign(null, Buffer.concat([PASS_CONTEXT, payload]), privateKey);
  const text = PASS_PREFIX + Buffer.concat([payload, signature]).toString("base64url");
  if (text.length > MAX_PASS_CHARS) {
    throw new RangeError(`pass would be ${text.length} characters, over ${MAX_PASS_CHARS}: parcel id, site and device may total at most 96 bytes`);
  }
  return text;
}
