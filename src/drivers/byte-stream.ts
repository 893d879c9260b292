// A serial line as a device emulator sees it (the far end of a pseudo-terminal, or an in-memory
// pipe), and the one way every emulator is served on it: what arrives is its input, what it
// emits as "tx" goes out.

export interface ByteStream {
  write(bytes: Buffer): unknown;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  off(event: "data", listener: (chunk: Buffer) => void): unknown;
}

export interface StreamEmulator {
  input(chunk: Buffer): void;
  on(event: "tx", listener: (bytes: Buffer) => void): unknown;
  off(event: "tx", listener: (bytes: Buffer) => void): unknown;
}

/** Serve `stream` with `emu`: its data in, the emulator's answers out. Returns a detach function. */
export function serveStream(emu: StreamEmulator, stream: ByteStream): () => void {
  const onData = (chunk: Buffer) => emu.input(chunk);
  const onTx = (bytes: Buffer) => void stream.write(bytes);
  stream.on("data", onData);
  emu.on("tx", onTx);
  return () => {
    stream.off("data", onData);
    emu.off("tx", onTx);
  };
}
