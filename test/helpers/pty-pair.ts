// The serial reader tests' view of a socat pseudo-terminal pair (test/helpers/socat.ts): the reader
// under test opens `reader`, the test plays the device by writing raw bytes to `device` (what the
// wire carries). `unplug()` / `replug()` / `close()` are the pair's own.
import { open, type FileHandle } from "node:fs/promises";
import { makePtyPair as makeSocatPair } from "./socat.js";

export interface PtyPair {
  /** The end the reader driver opens. */
  reader: string;
  /** The end the test writes the device's bytes to. */
  device: string;
  /** Write bytes as the device sends them (opens the device end on first use). */
  write(data: string | Uint8Array): Promise<void>;
  unplug(): Promise<void>;
  replug(): Promise<void>;
  close(): Promise<void>;
}

export async function makePtyPair(): Promise<PtyPair> {
  const pair = await makeSocatPair();
  let handle: FileHandle | undefined;
  const closeDevice = async () => {
    await handle?.close().catch(() => undefined);
    handle = undefined;
  };
  return {
    reader: pair.host,
    device: pair.device,
    async write(data) {
      handle ??= await open(pair.device, "r+");
      await handle.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    },
    async unplug() {
      await closeDevice();
      await pair.unplug();
    },
    replug: () => pair.replug(),
    async close() {
      await closeDevice();
      await pair.close();
    },
  };
}
