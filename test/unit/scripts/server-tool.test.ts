// server-tool as a server engineer runs it: keys, then a signed command the bank accepts, then a
// sealed code opened; and app passes the bank verifies.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { verifyPass } from "../../../src/domain/pass.js";
import { canonicalCommand, COMMANDS } from "../../../src/sync/contract.js";
import { Sealer, SignatureVerifier } from "../../../src/sync/seal.js";
import { removeDir, ROOT, tempDir } from "../../helpers/daemon.js";

const TOOL = join(ROOT, "dist/scripts/server-tool.js");
const run = (...args: string[]) => execFileSync(process.execPath, [TOOL, ...args], { encoding: "utf8" });
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

describe("server-tool", () => {
  it("makes keys the bank's config takes, signs commands the bank verifies, and unseals codes", () => {
    const dir = tempDir();
    dirs.push(dir);
    const out = run("keys", join(dir, "keys"));
    const { sync } = JSON.parse(out.split("\n#")[0]!) as { sync: { serverPublicKey: string; sealKey: string } };
    expect(statSync(join(dir, "keys", "sign.pem")).mode & 0o777).toBe(0o600);

    const signed = JSON.parse(run("sign", "--key", join(dir, "keys", "sign.pem"), "--site", "hq", "--device", "bank-01", "open", '{"id":"c1","args":{"compartment":"A07","reason":"forgot code"}}')) as {
      id: string;
      args: unknown;
      issuedAt: number;
      expiresAt: number;
      sig: string;
    };
    expect(COMMANDS.open.safeParse(signed).success).toBe(true);
    expect(signed.expiresAt - signed.issuedAt).toBe(300_000);
    const verifier = new SignatureVerifier(sync.serverPublicKey);
    expect(verifier.verify(canonicalCommand({ site: "hq", device: "bank-01", name: "open", ...signed }), signed.sig)).toBe(true);
    expect(verifier.verify(canonicalCommand({ site: "hq", device: "bank-02", name: "open", ...signed }), signed.sig)).toBe(false);

    const event = { parcel: "P-1", data: { sealedCode: new Sealer(sync.sealKey).seal("55512345", "P-1") } };
    expect(run("unseal", "--key", join(dir, "keys", "seal.pem"), JSON.stringify(event)).trim()).toBe("55512345");
  });

  it("makes app passes the bank verifies, and the document's worked example byte for byte", () => {
    const dir = tempDir();
    dirs.push(dir);
    const out = run("keys", join(dir, "keys"));
    const { sync } = JSON.parse(out.split("\n#")[0]!) as { sync: { serverPublicKey: string } };
    const key = join(dir, "keys", "sign.pem");
    const bank = { publicKey: sync.serverPublicKey, site: "hq", device: "bank-01", skewMs: 120_000 };

    const before = Date.now();
    const pickup = run("pass", "--key", key, "--parcel", "1Z999AA10123456784", "--site", "hq", "--device", "bank-01");
    expect(pickup).toMatch(/^LP1\.[A-Za-z0-9_-]+\n$/);
    const now = verifyPass(pickup.trim(), { ...bank, now: Date.now() });
    if (!now.ok) throw new Error(now.reason);
    expect(now.pass).toMatchObject({ kind: "pickup", parcelId: "1Z999AA10123456784", site: "hq", device: "bank-01" });
    expect(now.pass.notBefore).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(now.pass.expiresAt - now.pass.notBefore).toBe(24 * 3_600_000);
    expect(verifyPass(pickup.trim(), { ...bank, device: "bank-02", now: Date.now() })).toMatchObject({ ok: false, reason: "wrong_device" });

    const deposit = run("pass", "--key", key, "--parcel", "P-7", "--site", "hq", "--device", "bank-01", "--kind", "deposit", "--valid-from", "2030-01-02T03:04:05.678Z", "--valid-for", "15m").trim();
    const from = Date.parse("2030-01-02T03:04:05Z");
    expect(verifyPass(deposit, { ...bank, now: from })).toMatchObject({ ok: true, pass: { kind: "deposit", parcelId: "P-7", notBefore: from, expiresAt: from + 900_000 } });
    expect(verifyPass(deposit, { ...bank, now: from + 900_000 + 120_001 })).toMatchObject({ ok: false, reason: "expired" });

    // The worked example of docs/asyncapi.yaml, from its TEST key and its fields.
    const doc = parse(readFileSync(join(ROOT, "docs/asyncapi.yaml"), "utf8")) as {
      components: { schemas: { AppPass: { "x-lockerd-worked-example": { key: { pkcs8: string }; pass: Record<string, string | number>; text: string } } } };
    };
    const worked = doc.components.schemas.AppPass["x-lockerd-worked-example"];
    const testKey = join(dir, "test-key.pem");
    writeFileSync(testKey, `-----BEGIN PRIVATE KEY-----\n${worked.key.pkcs8}\n-----END PRIVATE KEY-----\n`);
    const p = worked.pass;
    const validFor = `${Number(p.expiresAt) - Number(p.notBefore)}s`;
    const from2 = new Date(Number(p.notBefore) * 1000).toISOString();
    const example = run("pass", "--key", testKey, "--kind", String(p.kind), "--parcel", String(p.parcelId), "--site", String(p.site), "--device", String(p.device), "--valid-from", from2, "--valid-for", validFor, "--nonce", String(p.nonce));
    expect(example.trim()).toBe(worked.text);

    // Refusals: a usage error (64), or a message and 1; never a pass.
    const fails = (...args: string[]) => spawnSync(process.execPath, [TOOL, "pass", "--key", key, ...args], { encoding: "utf8" });
    expect(fails("--parcel", "P-1", "--site", "hq").status).toBe(64);
    for (const bad of [["--kind", "return"], ["--valid-for", "0h"], ["--valid-for", "1y"], ["--valid-from", "yesterday"], ["--site", "HQ"], ["--nonce", "00"]]) {
      const r = fails(...(bad[0] === "--site" ? ["--parcel", "P-1", "--device", "bank-01"] : ["--parcel", "P-1", "--site", "hq", "--device", "bank-01"]), ...bad);
      expect(r.status, bad.join(" ")).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^server-tool: /);
    }
  });
});
