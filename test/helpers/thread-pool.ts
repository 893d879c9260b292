// Every thread of libuv's pool taken, as a DNS lookup with the network down holds one: each thread
// blocked in open() of a FIFO nobody writes to, until release(). What is then queued on the pool
// (fs.read, fs.write, a stat) waits; what runs on the event loop's thread does not.
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, open, openSync, rmSync, stat } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TakenPool {
  /** Whether a job queued behind the blocked ones really could not run (checked for 200 ms). */
  taken: boolean;
  release(): Promise<void>;
}

export async function takeThreadPool(): Promise<TakenPool> {
  const dir = mkdtempSync(join(tmpdir(), "lockerd-pool-"));
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo-${i}`));
  for (const f of fifos) execFileSync("mkfifo", [f]);
  const readers = fifos.map((f) => new Promise<number>((resolve, reject) => open(f, "r", (e, fd) => (e ? reject(e) : resolve(fd)))));
  const canary = new Promise<void>((resolve) => stat(dir, () => resolve()));
  const ran = await Promise.race([canary.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 200))]);
  return {
    taken: !ran,
    async release() {
      // A writer opened without blocking lets each blocked open() return.
      const writers = fifos.map((f) => openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      for (const fd of await Promise.all(readers)) closeSync(fd);
      for (const fd of writers) closeSync(fd);
      await canary;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
