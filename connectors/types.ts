import type { QuarantinedRecord, RecordKind, RecordKinds } from '../src/domain/model.js';

/**
 * What a batch was made from (connectors/http/page-origin.ts): a connector
 * sets it only where two batches of equal origin always hold the same records.
 */
interface Tagged {
  origin?: bigint;
}
/** One page's worth of canonical records of one kind. */
export type RecordBatch = { [K in RecordKind]: { kind: K; records: RecordKinds[K][] } & Tagged }[RecordKind];
/**
 * What a connector yields: canonical records, or the records of a page it could
 * not read (one bad record never fails the page, let alone the run).
 */
export type SnapshotBatch = RecordBatch | ({ kind: 'quarantine'; records: QuarantinedRecord[] } & Tagged);

export interface FetchProgress {
  pages: number;
  records: number;
  resource: string;
}

export interface FetchOptions {
  /** A complete snapshot; when false, only what changed since `since`. */
  full: boolean;
  /** Start of the delta window (only with full = false). */
  since?: Date;
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
  /** Whether the provider can return only what changed since a given time. */
  readonly supportsDelta: boolean;
  /** How often a full snapshot is forced between deltas, to catch deletions a provider never reports. */
  readonly fullSnapshotEveryMs: number;
  fetch(options: FetchOptions): AsyncIterable<SnapshotBatch>;
}
