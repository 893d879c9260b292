// A tag held near a reader is read again and again (RDM6300 sends its frame every ~100 ms): a
// repeated read of the same tag within a short window counts once.

export class Dedupe {
  private last: { id: string; at: number } | undefined;
  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when `id` should count: not the same tag as the last read within the window. */
  accept(id: string): boolean {
    const t = this.now();
    const repeat = this.last?.id === id && t - this.last.at < this.windowMs;
    // The window slides while the tag stays: a tag left on the reader counts once, not every window.
    this.last = { id, at: t };
    return !repeat;
  }
}
