// The admin socket's identity proof (src/admin/identity.ts): the checks on a proof file's lstat, and
// the proof directory on a real file system as this process's user: the file proves its owner, and
// a replayed nonce, a symlink, a hard link, a uid that is not the file's, a late proof and a flood of
// hellos are refused. (Two real OS users: test/integration/admin-identity.test.ts.)
import { chmodSync, closeSync, constants, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkProofStat, CTIME_SLACK_MS, NONCE_TTL_MS, PROOF_DIR_MODE, ProofDir, ProofError, proofDirFor, userNameOf, type ProofStat } from "../../../src/admin/identity.js";
import { needsIdentity, READ_ONLY_COMMANDS } from "../../../src/admin/protocol.js";
import { silentLogger } from "../../../src/log.js";

const uid = process.geteuid!();
const stat = (over: Partial<{ uid: number; nlink: number; ctimeMs: number; file: boolean; symlink: boolean }> = {}): ProofStat => ({
  uid: over.uid ?? 1001,
  nlink: over.nlink ?? 1,
  ctimeMs: over.ctimeMs ?? 10_000,
  isFile: () => over.file ?? true,
  isSymbolicLink: () => over.symlink ?? false,
});

describe("checkProofStat", () => {
  const expect1001 = { claimedUid: 1001, notBeforeMs: 9_000 };
  it("accepts a regular file with one link, owned by the claimed uid, changed after the nonce", () => {
    expect(checkProofStat(stat(), expect1001)).toEqual({ ok: true, uid: 1001 });
  });
  it("refuses a symlink, a directory, a hard link, another uid's file, a file older than its nonce", () => {
    const reason = (st: ProofStat) => {
      const r = checkProofStat(st, expect1001);
      return r.ok ? "ok" : r.reason;
    };
    expect(reason(stat({ symlink: true, file: false }))).toBe("symlink");
    expect(reason(stat({ file: false }))).toBe("not_a_file");
    expect(reason(stat({ nlink: 2 }))).toBe("hardlink");
    expect(reason(stat({ nlink: 0 }))).toBe("hardlink");
    expect(reason(stat({ uid: 0 }))).toBe("uid_mismatch");
    expect(reason(stat({ ctimeMs: 8_999 }))).toBe("stale");
  });
  it("says what is wrong", () => {
    expect(checkProofStat(stat({ uid: 1002 }), expect1001)).toMatchObject({ ok: false, message: "the proof file belongs to uid 1002, not to uid 1001 this client says it runs as" });
  });
});

describe("userNameOf", () => {
  const passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nlkt-alice:x:1001:1001::/home/lkt-alice:/bin/sh\n\n";
  it("names a uid from passwd text, and falls back to uid:N", () => {
    expect(userNameOf(0, passwd)).toBe("root");
    expect(userNameOf(1001, passwd)).toBe("lkt-alice");
    expect(userNameOf(4242, passwd)).toBe("uid:4242");
    expect(userNameOf(1, "")).toBe("uid:1");
  });
});

describe("the commands a proof guards", () => {
  it("every command but the read-only ones and the handshake needs a proven user", () => {
    for (const c of ["open", "disable", "enable", "relay-test"] as const) expect(needsIdentity(c)).toBe(true);
    for (const c of READ_ONLY_COMMANDS) expect(needsIdentity(c)).toBe(false);
    expect(needsIdentity("hello")).toBe(false);
    expect(needsIdentity("prove")).toBe(false);
  });
});

describe("ProofDir", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function setup(opts: { mono?: () => number; random?: () => Buffer; wall?: () => number } = {}) {
    const base = mkdtempSync(join(tmpdir(), "proof-"));
    dirs.push(base);
    const proofs = new ProofDir({ socketPath: join(base, "admin.sock"), log: silentLogger(), ...opts });
    proofs.prepare();
    return { base, proofs };
  }
  const create = (path: string) => closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
  const refusal = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      if (e instanceof ProofError) return e.reason;
      throw e;
    }
    return "accepted";
  };

  it("lives beside the socket, lockerd's, mode 1733, emptied at start", () => {
    expect(proofDirFor("/run/lockerd/admin.sock")).toBe("/run/lockerd/admin.proof");
    expect(proofDirFor("/run/lockerd/ctl")).toBe("/run/lockerd/ctl.proof");
    const base = mkdtempSync(join(tmpdir(), "proof-"));
    dirs.push(base);
    mkdirSync(join(base, "admin.proof"), { mode: 0o777 });
    writeFileSync(join(base, "admin.proof", "left-over"), "");
    const proofs = new ProofDir({ socketPath: join(base, "admin.sock"), log: silentLogger() });
    proofs.prepare();
    expect(proofs.unavailable).toBeNull();
    const st = lstatSync(proofs.path);
    expect(st.mode & 0o7777).toBe(PROOF_DIR_MODE);
    expect(st.uid).toBe(uid);
    expect(existsSync(join(proofs.path, "left-over"))).toBe(false);
    proofs.close();
    expect(existsSync(proofs.path)).toBe(false);
  });

  it("a file created after hello proves its owner; the file is removed; the nonce proves once", () => {
    const { proofs } = setup();
    const conn = proofs.connection();
    const hello = conn.hello();
    expect(hello).toEqual({ nonce: expect.stringMatching(/^[0-9a-f]{32}$/), dir: proofs.path, expiresInMs: NONCE_TTL_MS });
    create(join(hello.dir, hello.nonce));
    const who = conn.prove(hello.nonce, uid);
    expect(who).toEqual({ uid, user: userNameOf(uid, readFileSync("/etc/passwd", "utf8")) });
    if (uid === process.getuid!()) expect(who.user).toBe(userInfo().username);
    expect(conn.identity).toEqual(who);
    expect(existsSync(join(hello.dir, hello.nonce))).toBe(false);
    // replayed: on the same connection (proven: refused) and on another one (unknown there)
    expect(refusal(() => conn.prove(hello.nonce, uid))).toBe("already_proven");
    const other = proofs.connection();
    create(join(hello.dir, hello.nonce));
    expect(refusal(() => other.prove(hello.nonce, uid))).toBe("unknown_nonce");
    expect(other.identity).toBeUndefined();
    expect(refusal(() => conn.hello())).toBe("already_proven");
  });

  it("a nonce issued to one connection does not prove another", () => {
    const { proofs } = setup();
    const a = proofs.connection();
    const b = proofs.connection();
    const hello = a.hello();
    create(join(hello.dir, hello.nonce));
    expect(refusal(() => b.prove(hello.nonce, uid))).toBe("unknown_nonce");
    expect(a.prove(hello.nonce, uid).uid).toBe(uid); // still a's to use
  });

  it("refuses a missing file, a symlink, a hard link and a uid that is not the file's; each nonce is used up", () => {
    const { base, proofs } = setup();
    const conn = proofs.connection();
    let h = conn.hello();
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("missing");
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("unknown_nonce"); // used up by the failure

    const target = join(base, "someone-elses");
    writeFileSync(target, "secret", { mode: 0o600 });
    h = conn.hello();
    symlinkSync(target, join(h.dir, h.nonce));
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("symlink");
    expect(existsSync(join(h.dir, h.nonce))).toBe(false); // the link went, its target stays
    expect(readFileSync(target, "utf8")).toBe("secret");

    h = conn.hello();
    linkSync(target, join(h.dir, h.nonce));
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("hardlink");
    expect(lstatSync(target).nlink).toBe(1);

    h = conn.hello();
    mkdirSync(join(h.dir, h.nonce));
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("not_a_file");

    h = conn.hello();
    create(join(h.dir, h.nonce));
    expect(refusal(() => conn.prove(h.nonce, uid + 1))).toBe("uid_mismatch");
    expect(conn.identity).toBeUndefined();
  });

  it("a nonce expires; a file older than its nonce is refused", () => {
    let t = 0;
    let wall = Date.now() + 3_600_000; // an hour ahead of the file system's clock
    const { proofs } = setup({ mono: () => t, wall: () => wall });
    const conn = proofs.connection();
    let h = conn.hello();
    create(join(h.dir, h.nonce));
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("stale");
    wall = Date.now() + CTIME_SLACK_MS / 2; // within the slack
    h = conn.hello();
    create(join(h.dir, h.nonce));
    t += NONCE_TTL_MS + 1;
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("expired");
    expect(existsSync(join(h.dir, h.nonce))).toBe(false);
    h = conn.hello();
    create(join(h.dir, h.nonce));
    expect(conn.prove(h.nonce, uid).uid).toBe(uid);
  });

  it("bounds the pending nonces of a connection; expired ones make room; closing removes their files", () => {
    let t = 0;
    const { proofs } = setup({ mono: () => t });
    const conn = proofs.connection();
    const hellos = [conn.hello(), conn.hello(), conn.hello(), conn.hello()];
    expect(refusal(() => conn.hello())).toBe("too_many_pending");
    expect(proofs.connection().hello().nonce).toMatch(/^[0-9a-f]{32}$/); // another connection is not held up
    t += NONCE_TTL_MS + 1;
    const fresh = conn.hello();
    create(join(fresh.dir, fresh.nonce));
    conn.close();
    expect(existsSync(join(fresh.dir, fresh.nonce))).toBe(false);
    expect(refusal(() => conn.prove(hellos[0]!.nonce, uid))).toBe("unknown_nonce");
  });

  it("clears a file that already had the nonce's name when the nonce is issued", () => {
    const nonce = Buffer.alloc(16, 0xab);
    const { proofs } = setup({ random: () => nonce });
    const planted = join(proofs.path, nonce.toString("hex"));
    writeFileSync(planted, "");
    const conn = proofs.connection();
    const h = conn.hello();
    expect(existsSync(planted)).toBe(false);
    expect(refusal(() => conn.prove(h.nonce, uid))).toBe("missing");
  });

  it("refuses proofs when the directory is not lockerd's, or not sticky and unlistable any more", () => {
    const base = mkdtempSync(join(tmpdir(), "proof-"));
    dirs.push(base);
    symlinkSync(tmpdir(), join(base, "admin.proof"));
    const hijacked = new ProofDir({ socketPath: join(base, "admin.sock"), log: silentLogger() });
    hijacked.prepare();
    expect(hijacked.unavailable).toMatch(/admin\.proof exists and is not lockerd's directory \(a symbolic link\)/);
    expect(refusal(() => hijacked.connection().hello())).toBe("unavailable");

    const { proofs } = setup();
    chmodSync(proofs.path, 0o755);
    expect(refusal(() => proofs.connection().hello())).toBe("unavailable");
    chmodSync(proofs.path, 0o1730); // tighter is fine: sticky, nobody else lists
    expect(proofs.connection().hello().dir).toBe(proofs.path);
    rmSync(proofs.path, { recursive: true });
    expect(() => proofs.connection().hello()).toThrow(/proof directory .* is gone \(ENOENT\): restart lockerd/);
  });
});
