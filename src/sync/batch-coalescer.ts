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

  /** Adds a batch; returns the batches now ready to stage, in order. */
  push(batch: SnapshotBatch): SnapshotBatch[] {
    if (batch.records.length === 0) return [];
    const ready: SnapshotBatch[] = [];
    if (this.pending && this.pending.kind !== batch.kind) ready.push(...this.flush());
    if (!this.pending && batch.records.length >= this.target) return [...ready, batch];
    if (!this.pending) this.pending = { kind: batch.kind, records: [...batch.records] } as SnapshotBatch;
    else (this.pending.records as unknown[]).push(...batch.records);
    if (this.pending.records.length >= this.target) ready.push(...this.flush());
    return ready;
  }

  /** Whatever is still gathered. */
  flush(): SnapshotBatch[] {
    const out = this.pending ? [this.pending] : [];
    this.pending = undefined;
    return out;
  }
}
