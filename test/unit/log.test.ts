// The daemon's log lines (src/log.ts): syslog priorities for journald, a human line on a terminal,
// plain JSON elsewhere; secrets redacted; every alarm with its next step (domain/alarms.ts).
import { closeSync, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ALARMS_WITH_STEPS, alarmMessage } from "../../src/domain/alarms.js";
import { EVENT_TYPES } from "../../src/domain/events.js";
import { CENSOR, createLogger, detectLogFormat, isJournalStream, prettyLine, redactSecrets, scrubLine, SYSLOG_PRIORITY, type LogFormat } from "../../src/log.js";
import { removeDir, tempDir } from "../helpers/daemon.js";
import { hasSocat, makePtyPair } from "../helpers/socat.js";

function capture(format: LogFormat, level = "trace") {
  const lines: string[] = [];
  const log = createLogger(level, { write: (s: string) => void lines.push(s) }, { format, color: false });
  return { log, lines };
}

describe("formats", () => {
  it("journal: each line starts with its syslog priority, then the JSON (no time: journald stamps lines)", () => {
    const { log, lines } = capture("journal");
    const m = log.child({ module: "commands" });
    m.trace("t");
    m.debug("d");
    m.info("i");
    m.warn({ command: "open" }, "w");
    m.error("e");
    m.fatal("f");
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["<7>", "<7>", "<6>", "<4>", "<3>", "<2>"]);
    for (const l of lines) expect(l.endsWith("\n") && !l.slice(0, -1).includes("\n")).toBe(true);
    const warn = JSON.parse(lines[3]!.slice(3)) as Record<string, unknown>;
    expect(warn).toEqual({ level: 40, module: "commands", command: "open", msg: "w" });
    expect(SYSLOG_PRIORITY).toEqual({ 60: 2, 50: 3, 40: 4, 30: 6, 20: 7, 10: 7 });
  });

  it("json: what pino writes (what the tests and pipes read), with time and name", () => {
    const { log, lines } = capture("json");
    log.child({ module: "bank" }).info({ compartment: "A07" }, "door opened");
    expect(JSON.parse(lines[0]!)).toEqual({ level: 30, time: expect.any(Number), name: "lockerd", module: "bank", compartment: "A07", msg: "door opened" });
  });

  it("pretty: time, level, module, message, key fields; an error's stack below it", () => {
    const { log, lines } = capture("pretty");
    log.child({ module: "commands" }).warn({ command: "open", code: "expired", reason: "too late now" }, "command refused");
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}commands: command refused {2}command=open code=expired reason="too late now"\n$/);
    log.error({ err: new Error("disk on fire") }, "stop failed");
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR stop failed {2}err="disk on fire"\n {4}at /);
    expect(prettyLine("not json\n")).toBe("not json\n");
  });
});

describe("which format (detectLogFormat)", () => {
  const dirs: string[] = [];
  const fds: number[] = [];
  afterEach(() => {
    fds.splice(0).forEach((fd) => closeSync(fd));
    dirs.splice(0).forEach(removeDir);
  });
  const file = () => {
    const dir = tempDir();
    dirs.push(dir);
    const fd = openSync(join(dir, "out"), "w");
    fds.push(fd);
    return fd;
  };

  it("journal only when JOURNAL_STREAM names this very stream (systemd.exec(5)); an inherited one that does not match is ignored", () => {
    const fd = file();
    const st = fstatSync(fd, { bigint: true });
    expect(detectLogFormat({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd)).toBe("journal");
    expect(isJournalStream(fd, { JOURNAL_STREAM: `${st.dev}:${st.ino}` })).toBe(true);
    expect(detectLogFormat({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd)).toBe("json");
    expect(detectLogFormat({ JOURNAL_STREAM: "garbage" }, fd)).toBe("json");
    expect(detectLogFormat({}, fd)).toBe("json");
  });

  it.runIf(hasSocat())("pretty on a terminal", async () => {
    const pair = await makePtyPair();
    try {
      const fd = openSync(pair.host, "r+");
      fds.push(fd);
      expect(detectLogFormat({}, fd)).toBe("pretty");
    } finally {
      await pair.close();
    }
  });
});

describe("secrets", () => {
  it("redacts secret keys at any depth, pickup codes but not error codes, raw bytes, URL credentials and private keys", () => {
    const out = redactSecrets({
      pin: "739184",
      nested: { PickupCode: "48213905", badge: "C0FFEE9A7B", list: [{ code: "552211" }, { code: "expired" }], password: "hunter2" },
      code: "SQLITE_FULL",
      errno: { code: "EIO" },
      deviceKey: Buffer.alloc(32, 7),
      bytes: new Uint8Array(4),
      keys: "1234#",
      compartment: "A07",
      relay: { pin: 17 },
    });
    expect(out).toEqual({
      pin: CENSOR,
      nested: { PickupCode: CENSOR, badge: CENSOR, list: [{ code: CENSOR }, { code: "expired" }], password: CENSOR },
      code: "SQLITE_FULL",
      errno: { code: "EIO" },
      deviceKey: CENSOR,
      bytes: `${CENSOR} (4 bytes)`,
      keys: CENSOR,
      compartment: "A07",
      relay: { pin: 17 },
    });
    expect(scrubLine('{"broker":"mqtts://bank:s3cret@broker.example:8883","msg":"to mqtt://u:p@h"}')).toBe(`{"broker":"mqtts://${CENSOR}@broker.example:8883","msg":"to mqtt://${CENSOR}@h"}`);
    expect(scrubLine("key -----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEI\\n-----END PRIVATE KEY----- end")).toBe(`key ${CENSOR} end`);
  });

  it("redacts in every format, in bindings too", () => {
    for (const format of ["json", "journal", "pretty"] as const) {
      const { log, lines } = capture(format);
      log.child({ module: "x", password: "hunter2" }).info({ pin: "739184", url: "mqtt://bank:s3cret@h:1883" }, "with mqtt://a:b@c");
      expect(lines.join(""), format).not.toMatch(/739184|hunter2|s3cret|a:b@/);
    }
  });
});

describe("alarms say what to do next", () => {
  it("every alarm type has its own next step", () => {
    const alarms = EVENT_TYPES.filter((t) => t.startsWith("alarm.") && t !== "alarm.cleared");
    expect([...ALARMS_WITH_STEPS].sort()).toEqual([...alarms].sort());
  });

  it("names the compartment and the command to run", () => {
    expect(alarmMessage({ type: "alarm.forced_open", compartment: "A07", data: { state: "occupied" } })).toBe(
      "alarm forced_open at A07: A07 opened without a pulse (forced, or a lock that does not hold): inspect the compartment and its lock, then `lockerctl enable A07`",
    );
    expect(alarmMessage({ type: "alarm.temperature", compartment: "B01", data: { celsius: 11.5, minC: 2, maxC: 8 } })).toMatch(/B01 at 11\.5 °C, outside 2\.\.8 °C: check the cooling unit/);
    expect(alarmMessage({ type: "alarm.unauthorized_command", compartment: null, data: { name: "open", id: "c-1", reason: "future" } })).toMatch(/compare the server's clock/);
    expect(alarmMessage({ type: "alarm.cleared", compartment: "B01", data: { alarm: "temperature" } })).toBe("alarm cleared: temperature at B01");
  });
});
