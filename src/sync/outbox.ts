// The transactional outbox, publisher side. Events are already in the ledger (written with the state
// change they report); this sends them in seq order, QoS 1, with up to `window` unacknowledged, and
// moves the `outbox.acked` watermark as PUBACKs arrive. A broker acknowledges QoS 1 publishes in the
// order it received them, so the watermark is simply the highest contiguous acknowledged seq.
//
//   ledger.onCommit ─▶ wake() ─▶ setImmediate(pump) ─▶ publish(seq…) ──PUBACK──▶ acked ─▶ meta (batched)
//
// Nothing here runs on the caller's path: a commit only schedules a pump. After a reconnect sending
// resumes from the watermark, so an event whose PUBACK was lost goes out again (at least once; the
// event id lets the server drop the duplicate).
import type { LedgerEvent } from "../domain/events.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";

/** Sends one event; `done` runs on PUBACK (err undefined) or when the connection dropped it. */
export type PublishEvent = (event: LedgerEvent, done: (err?: Error) => void) => void;

export interface OutboxOptions {
  ledger: Ledger;
  log: Logger;
  /** Events in flight before the first is acknowledged. */
  window: number;
  /** How often the watermark is written while acknowledgements stream in (ms). */
  persistEveryMs?: number;
}

const BATCH = 512;

export class Outbox {
  /** Highest contiguous acknowledged seq (in memory; persisted lazily). */
  private acked: number;
  private persisted: number;
  private next: number;
  private inFlight = 0;
  private readonly early = new Set<number>();
  private publish: PublishEvent | undefined;
  /** Bumped on every (dis)connect, so a late callback from an old connection is ignored. */
  private generation = 0;
  private pumpScheduled = false;
  private persistTimer: NodeJS.Timeout | undefined;
  private readonly persistEveryMs: number;
  private unsubscribe: (() => void) | undefined;
  private drainedWaiters: (() => void)[] = [];
  /** Wall-clock ms of the last acknowledgement (lockerctl sync). */
  lastAckAt: number | null = null;

  constructor(private readonly opts: OutboxOptions) {
    this.acked = opts.ledger.ackedSeq();
    this.persisted = this.acked;
    this.next = this.acked + 1;
    this.persistEveryMs = opts.persistEveryMs ?? 200;
  }

  start(): void {
    this.unsubscribe = this.opts.ledger.onCommit(() => this.wake());
  }

  /** Stop publishing; write the watermark reached so far. */
  stop(): void {
    this.unsubscribe?.();
    this.disconnected();
    this.persist();
  }

  /** The link is up: send from the watermark on. */
  connected(publish: PublishEvent): void {
    this.generation++;
    this.publish = publish;
    this.inFlight = 0;
    this.early.clear();
    this.next = this.acked + 1;
    this.wake();
  }

  /** The link is down: whatever was in flight will be sent again after the next connect. */
  disconnected(): void {
    this.generation++;
    this.publish = undefined;
    this.inFlight = 0;
    this.early.clear();
  }

  /** Events the broker has not acknowledged. */
  get backlog(): number {
    return this.opts.ledger.headSeq - this.acked;
  }

  get ackedSeq(): number {
    return this.acked;
  }

  /** Resolves once every event committed so far is acknowledged (tests, benchmarks, shutdown). */
  drained(): Promise<void> {
    if (this.backlog === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainedWaiters.push(resolve));
  }

  private wake(): void {
    if (this.pumpScheduled || !this.publish) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const { ledger, window } = { ledger: this.opts.ledger, window: this.opts.window };
    while (this.publish && this.inFlight < window && this.next <= ledger.headSeq) {
      const batch = ledger.eventsFrom(this.next, Math.min(BATCH, window - this.inFlight));
      if (!batch.length) {
        // Pruned below the watermark cannot happen (prune keeps unacknowledged); a gap is a bug.
        this.opts.log.error({ next: this.next, head: ledger.headSeq }, "outbox: no event at the next seq");
        return;
      }
      const gen = this.generation;
      const publish = this.publish;
      for (const e of batch) {
        this.inFlight++;
        this.next = e.seq + 1;
        publish(e, (err) => this.onAck(gen, e.seq, err));
      }
    }
  }

  private onAck(gen: number, seq: number, err?: Error): void {
    if (gen !== this.generation) return; // from a connection that is gone: will be re-sent
    this.inFlight--;
    if (err) {
      this.opts.log.warn({ err, seq }, "outbox: publish failed; resending after reconnect");
      return;
    }
    this.lastAckAt = Date.now();
    if (seq === this.acked + 1) {
      this.acked = seq;
      while (this.early.delete(this.acked + 1)) this.acked++;
    } else if (seq > this.acked) {
      this.early.add(seq);
    }
    this.schedulePersist();
    this.wake();
    if (this.backlog === 0) {
      this.persist();
      const waiters = this.drainedWaiters;
      this.drainedWaiters = [];
      for (const w of waiters) w();
    }
  }

  private schedulePersist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persist();
    }, this.persistEveryMs);
  }

  private persist(): void {
    clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    if (this.acked === this.persisted) return;
    const acked = this.acked;
    try {
      this.opts.ledger.setMetaLazy("outbox.acked", String(acked));
      this.persisted = acked;
    } catch (e) {
      // A closed ledger at shutdown: the events go out again next time (at least once).
      this.opts.log.warn({ err: e, acked }, "outbox: watermark not written");
    }
  }
}
