/**
 * Runs `work` over `items` with at most `limit` at once and yields each result
 * as it lands (not in input order). Canvas's throttle charges every request
 * in flight up front, so a small limit keeps the bucket from draining.
 */
export async function* inParallel<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): AsyncIterable<R> {
  const running = new Map<number, Promise<{ i: number; r: R }>>();
  let next = 0;
  const launch = () => {
    const i = next++;
    const p = work(items[i]!).then((r) => ({ i, r }));
    // If we stop early (an error elsewhere), a later failure here must not go unhandled.
    p.catch(() => undefined);
    running.set(i, p);
  };
  while (next < items.length && running.size < limit) launch();
  while (running.size) {
    const { i, r } = await Promise.race(running.values());
    running.delete(i);
    if (next < items.length) launch();
    yield r;
  }
}
