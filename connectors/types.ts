import type { RecordKind, RecordKinds } from '../src/domain/model.js';

/** One page's worth of canonical records of one kind. */
export type SnapshotBatch = { [K in RecordKind]: { kind: K; records: RecordKinds[K][] } }[RecordKind];

export interface FetchProgress {
  pages: number;
  records: number;
  resource: string;
}

export interface FetchOptions {
  /** Ask for a complete snapshot even where the provider offers deltas. */
  full: boolean;
  signal?: AbortSignal;
  onPage?: (progress: FetchProgress) => void;
}

/**
 * A connector only fetches and maps to the canonical model: it never touches the
 * database. Batches are yielded page by page so memory stays bounded whatever
 * the district's size.
 */
export interface Connector {
  readonly provider: string;
  /** Whether what this fetch yields is the whole roster (absence means departure). */
  isComplete(options: FetchOptions): boolean;
  fetch(options: FetchOptions): AsyncIterable<SnapshotBatch>;
}
