/**
 * Gathers records from many small lists (one section's ~100 members) into
 * batches of about `size`, so the worker stages a few large batches rather
 * than thousands of small ones. Records keep the order they were added in.
 */
export class Gatherer<T> {
  private pending: T[] = [];

  constructor(private readonly size: number) {}

  /** Adds records; returns a batch to hand on once `size` or more are gathered. */
  add(records: readonly T[]): T[] | undefined {
    this.pending.push(...records);
    return this.pending.length >= this.size ? this.flush() : undefined;
  }

  /** What is left, or undefined when nothing is. */
  flush(): T[] | undefined {
    if (this.pending.length === 0) return undefined;
    const batch = this.pending;
    this.pending = [];
    return batch;
  }
}
