/**
 * Runs `work` over `items` with at most `limit` at once and yields the results
 * in input order, so a snapshot read in parallel is the same, record for
 * record, as one read item by item. It is a sliding window: item i + limit
 * starts only once item i has been taken, so at most `limit` are in flight
 * or waiting, whatever the consumer's pace — Schoology answers a burst with
 * 429, and memory stays bounded by the window.
 *
 * Canvas has a sibling (connectors/canvas/parallel.ts, `inParallel`) that
 * yields in completion order; the two could live together in connectors/http.
 */
export async function* inOrder<T, R>(items: Iterable<T>, limit: number, work: (item: T) => Promise<R>): AsyncIterable<R> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`inOrder: limit must be a positive integer, got ${limit}`);
  const source = items[Symbol.iterator]();
  const window: Promise<R>[] = [];
  const fill = () => {
    while (window.length < limit) {
      const next = source.next();
      if (next.done) return;
      const pending = work(next.value);
      // If we stop early (the consumer leaves, or an earlier item failed), a later failure must not go unhandled.
      pending.catch(() => undefined);
      window.push(pending);
    }
  };
  fill();
  while (window.length) {
    const result = await window.shift()!;
    // Start the next one before handing this result on: the request runs while the consumer stages.
    fill();
    yield result;
  }
}
