// A real systemd notify socket for tests: a python3 process binds an AF_UNIX SOCK_DGRAM socket (a
// path, or "@name" in the abstract namespace) and prints one JSON line per datagram it receives,
// with its CLOCK_MONOTONIC arrival time (the clock of process.hrtime). Datagram boundaries are kept:
// one received message is one datagram.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface Datagram {
  /** Arrival, ms on CLOCK_MONOTONIC (comparable with Number(process.hrtime.bigint()) / 1e6). */
  at: number;
  text: string;
}

export interface NotifySocket {
  /** The value for $NOTIFY_SOCKET. */
  address: string;
  received: Datagram[];
  /** Waits until `pred` holds for what has arrived. */
  waitFor(pred: (d: Datagram[]) => boolean, ms?: number): Promise<Datagram[]>;
  close(): Promise<void>;
}

const RECEIVER = [
  "import json, socket, sys, time",
  "a = sys.argv[1]",
  "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
  "s.bind('\\0' + a[1:] if a[0] == '@' else a)",
  "print('bound', flush=True)",
  "while True:",
  "    m = s.recv(65536)",
  "    print(json.dumps({'at': time.monotonic_ns() / 1e6, 'text': m.decode('utf-8', 'replace')}), flush=True)",
].join("\n");

export async function openNotifySocket(address: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn("python3", ["-I", "-S", "-c", RECEIVER, address], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const received: Datagram[] = [];
  const rl = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`notify receiver exited ${code}: ${stderr}`)));
    rl.once("line", (l) => (l === "bound" ? resolve() : reject(new Error(`notify receiver said ${l}`))));
  });
  rl.on("line", (l) => received.push(JSON.parse(l) as Datagram));
  return {
    address,
    received,
    async waitFor(pred, ms = 5000) {
      const end = Date.now() + ms;
      while (!pred(received)) {
        if (Date.now() > end) throw new Error(`not within ${ms} ms; received ${JSON.stringify(received.map((d) => d.text))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return received;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    },
  };
}

export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
