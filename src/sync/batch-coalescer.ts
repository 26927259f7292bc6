import type { SnapshotBatch } from '../../connectors/types.js';

/**
 * Gathers a connector's pages into staging batches of a useful size: one COPY
 * per ~`target` records rather than per provider page (a Schoology section's
 * enrollments are a page of a few dozen; Canvas alternates sections and
 * enrollments course by course). Each kind of record has its own batch, so
 * alternating kinds never cut batches short: the stage is reconciled as a
 * whole, and only the order within a kind is kept (it is). A page larger than
 * the target (a Clever page of sections yields every student of a thousand
 * sections) is cut into target-sized batches, so no statement grows with a
 * provider's page size.
 */
export class BatchCoalescer<B extends { kind: string; records: readonly unknown[] } = SnapshotBatch> {
  private readonly pending = new Map<B['kind'], unknown[]>();

  constructor(private readonly target: number) {}

  /** Adds a batch; returns the batches now ready to stage. */
  push(batch: B): B[] {
    const ready: B[] = [];
    const records = batch.records as unknown[];
    for (let i = 0; i < records.length;) {
      let gathered = this.pending.get(batch.kind);
      if (!gathered) this.pending.set(batch.kind, (gathered = []));
      const take = Math.min(this.target - gathered.length, records.length - i);
      // A loop rather than push(...slice): spreading ~120k arguments overflows the stack.
      for (let k = 0; k < take; k++) gathered.push(records[i + k]);
      i += take;
      if (gathered.length >= this.target) {
        ready.push({ kind: batch.kind, records: gathered } as unknown as B);
        this.pending.delete(batch.kind);
      }
    }
    return ready;
  }

  /** Whatever is still gathered, a batch per kind. */
  flush(): B[] {
    const out = [...this.pending].map(([kind, records]) => ({ kind, records }) as unknown as B);
    this.pending.clear();
    return out;
  }
}
