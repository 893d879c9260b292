// mqtts:// with mutual TLS and a password, against mosquitto configured as a managed broker would
// be (require_certificate, password_file, no anonymous): certificates made here with openssl.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { Runtime } from "../../src/runtime.js";
import { exampleConfig, removeDir, tempDir } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";

const PASSWORD = "s3cret-Pa55-word";
const dir = tempDir("lockerd-tls-");
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=lockerd test CA");
  for (const [name, cn, ext] of [
    ["server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
    ["client", "hq-bank-01", "extendedKeyUsage=clientAuth"],
  ] as const) {
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", `/CN=${cn}`);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    openssl("x509", "-req", "-in", f(`${name}.csr`), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${name}.pem`), "-days", "2", "-extfile", f(`${name}.ext`));
  }
  writeFileSync(f("password"), `${PASSWORD}\n`, { mode: 0o600 });
  execFileSync("mosquitto_passwd", ["-b", "-c", f("passwd"), "bank-01", PASSWORD]);
}

let broker: Mosquitto;
beforeAll(async () => {
  makeCertificates();
  broker = new Mosquitto({
    listener: [`cafile ${f("ca.pem")}`, `certfile ${f("server.pem")}`, `keyfile ${f("server.key")}`, "require_certificate true", "allow_anonymous false", `password_file ${f("passwd")}`],
  });
  await broker.start();
});
afterAll(async () => {
  await broker.close();
  removeDir(dir);
});

async function bank(tls: Record<string, string>, passwordFile = f("password")) {
  const raw = exampleConfig() as Record<string, any>;
  raw.sync = { enabled: true, url: broker.url, username: "bank-01", passwordFile, tls, reconnectBaseMs: 200, reconnectCapMs: 400 };
  let logs = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString();
      done();
    },
  });
  const data = tempDir();
  const rt = new Runtime({ config: parseConfig(raw), dataDir: join(data, "data"), log: createLogger("debug", sink), version: "tls", simSocket: false, adminSocket: false });
  await rt.start();
  return {
    rt,
    logs: () => logs,
    close: async () => {
      await rt.stop();
      removeDir(data);
    },
  };
}

async function settle(rt: Runtime, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (rt.link?.info().state !== "online" && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

describe("mqtts with mutual TLS", () => {
  it("connects with the CA, client certificate and password from files, and never logs the password", async () => {
    const b = await bank({ ca: f("ca.pem"), cert: f("client.pem"), key: f("client.key") });
    try {
      await settle(b.rt);
      expect(b.rt.link?.info()).toMatchObject({ state: "online", broker: broker.url });
      expect(broker.url).toMatch(/^mqtts:/);
      await b.rt.link!.outbox.drained();
      expect(b.rt.ledger.counts().unpublished).toBe(0);
      expect(b.logs()).toContain("connected to the broker");
      expect(b.logs()).not.toContain(PASSWORD);
    } finally {
      await b.close();
    }
  });

  it("without a client certificate, or with a wrong password, stays offline and says why; the bank keeps working", async () => {
    for (const [tls, pw] of [
      [{ ca: f("ca.pem") }, f("password")],
      [{ ca: f("ca.pem"), cert: f("client.pem"), key: f("client.key") }, f("ca.srl")],
    ] as const) {
      const b = await bank(tls, pw);
      try {
        await settle(b.rt, 1500);
        const info = b.rt.link!.info();
        expect(info.state).not.toBe("online");
        expect(info.lastError).toBeTruthy();
        expect(b.logs()).not.toContain(PASSWORD);
        // Offline is not broken: a technician open still works, and its events wait in the outbox.
        const r = await b.rt.technician.open("A02", { user: "tech", reason: "offline test" });
        expect(r.opened).toBe(true);
        expect(b.rt.ledger.counts().unpublished).toBeGreaterThan(0);
      } finally {
        await b.close();
      }
    }
  });

  it("a config naming a certificate that cannot be read is refused at start, naming the file", async () => {
    await expect(bank({ ca: f("missing.pem") })).rejects.toThrow(/sync\.tls\.ca: cannot read .*missing\.pem/);
  });
});
