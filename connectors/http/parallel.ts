// Bounded parallelism for connectors: a few requests in flight, never a burst
// (Canvas charges every request in flight against its bucket; Schoology answers bursts with 429).

/**
 * Runs `work` over `items` with at most `limit` at once and yields the results
 * in input order, so a snapshot read in parallel is the same, record for
 * record, as one read item by item. It is a sliding window: item i + limit
 * starts only once item i has been taken, so at most `limit` are in flight
 * or waiting, whatever the consumer's pace — Schoology answers a burst with
 * 429, and memory stays bounded by the window.
 *
 * Canvas's course lists are read this way too: its throttle charges every
 * request in flight up front, so the window stays small, and taking them in
 * order lets each batch be tagged with the pages read before it (page-origin.ts).
 */
export async function* inOrder<T, R>(items: Iterable<T>, limit: number, work: (item: T, signal: AbortSignal) => Promise<R>): AsyncIterable<R> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`inOrder: limit must be a positive integer, got ${limit}`);
  const source = items[Symbol.iterator]();
  const window: Promise<R>[] = [];
  // Aborted when the walk ends early (a failure, or the consumer stopped): work still in flight can stop paging.
  const stop = new AbortController();
  const fill = () => {
    while (window.length < limit) {
      const next = source.next();
      if (next.done) return;
      const pending = work(next.value, stop.signal);
      // If we stop early (the consumer leaves, or an earlier item failed), a later failure must not go unhandled.
      pending.catch(() => undefined);
      window.push(pending);
    }
  };
  try {
    fill();
    while (window.length) {
      const result = await window.shift()!;
      // Start the next one before handing this result on: the request runs while the consumer stages.
      fill();
      yield result;
    }
  } finally {
    stop.abort();
  }
}
