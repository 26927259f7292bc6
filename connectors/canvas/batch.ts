import type { RecordKind, RecordKinds } from '../../src/domain/model.js';
import type { SnapshotBatch } from '../types.js';

/** Yields records of one kind as batches of at most `size` (the report arrives whole; the stage wants pages). */
export function* chunks<K extends RecordKind>(kind: K, records: RecordKinds[K][], size: number): Iterable<SnapshotBatch> {
  for (let i = 0; i < records.length; i += size) yield { kind, records: records.slice(i, i + size) } as SnapshotBatch;
}
