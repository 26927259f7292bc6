import type { SnapshotBatch } from '../../connectors/types.js';

/**
 * Gathers a connector's small pages into staging batches of a useful size:
 * one Postgres round trip per ~`target` records rather than per provider page
 * (a Schoology section's enrollments are a page of a few dozen). Order is kept:
 * a batch of another kind flushes what was gathered before it.
 */
export class BatchCoalescer {
  private pending: SnapshotBatch | undefined;

  constructor(private readonly target: number) {}

  /**
   * Adds a batch; returns the batches now ready to stage, in order. A batch
   * larger than the target (a Clever page of sections yields every student of
   * a thousand sections) is cut into target-sized ones, so no staging
   * statement grows with a provider's page size.
   */
  push(batch: SnapshotBatch): SnapshotBatch[] {
    if (batch.records.length === 0) return [];
    const ready: SnapshotBatch[] = [];
    if (this.pending && this.pending.kind !== batch.kind) ready.push(...this.flush());
    const records = batch.records as unknown[];
    for (let i = 0; i < records.length;) {
      if (!this.pending) this.pending = { kind: batch.kind, records: [] } as SnapshotBatch;
      const pending = this.pending.records as unknown[];
      const take = Math.min(this.target - pending.length, records.length - i);
      // A loop rather than push(...slice): spreading ~120k arguments overflows the stack.
      for (let k = 0; k < take; k++) pending.push(records[i + k]);
      i += take;
      if (pending.length >= this.target) ready.push(...this.flush());
    }
    return ready;
  }

  /** Whatever is still gathered. */
  flush(): SnapshotBatch[] {
    const out = this.pending ? [this.pending] : [];
    this.pending = undefined;
    return out;
  }
}
