// server-tool as a server engineer runs it: keys, then a signed command the bank accepts, then a
// sealed code opened.
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
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
});
