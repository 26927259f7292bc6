import { batchOrigin, foldKnown } from '../http/page-origin.js';

/** One list in eight ends a batch, by its digest (see ListGatherer). */
const CUT_MASK = 7n;

/**
 * Gathers lists (a section's members, a course's classes), each with its digest, into batches
 * tagged with their origin (connectors/http/page-origin.ts): the digests of
 * the lists they hold. A batch ends after a list whose digest says so (one in
 * eight), or at `cap` records: where batches end depends on the lists
 * themselves, not on how many records came before (content-defined cuts, as
 * backup tools cut files), so a changed list changes its own batch and at
 * most the next, and every other batch keeps its origin.
 */
export class ListGatherer<T> {
  private pending: T[] = [];
  private digest: bigint | undefined = 0n;

  constructor(private readonly cap: number) {}

  /** Adds a list; returns a batch to hand on when one ends with it. A list without a digest leaves its batch untagged. */
  add(records: readonly T[], digest: bigint | undefined): { records: T[]; origin?: bigint } | undefined {
    for (const r of records) this.pending.push(r);
    this.digest = foldKnown(this.digest, digest);
    const cut = digest !== undefined && (digest & CUT_MASK) === 0n;
    return cut || this.pending.length >= this.cap ? this.flush() : undefined;
  }

  /** What is gathered, or undefined when no record is. */
  flush(): { records: T[]; origin?: bigint } | undefined {
    const records = this.pending;
    const digest = this.digest;
    this.pending = [];
    this.digest = 0n;
    if (records.length === 0) return undefined;
    return { records, origin: batchOrigin(digest, 0n, 0) };
  }
}
