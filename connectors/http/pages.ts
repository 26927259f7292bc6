export interface LoadedPage<T> {
  items: T[];
  /** Where the next page is, if there is one. */
  next?: string;
}

/**
 * Walks a provider's pages one ahead: the next page is requested before the
 * current one is handed on, so the provider renders it while we stage this
 * one. A next link already followed is an error, not an endless fetch.
 */
export async function* pagesAhead<T>(first: string, load: (url: string) => Promise<LoadedPage<T>>, label: string): AsyncIterable<T[]> {
  const seen = new Set<string>();
  const start = (url: string) => {
    if (seen.has(url)) throw new Error(`${label} pagination loops back to ${url}`);
    seen.add(url);
    const pending = load(url);
    // If the consumer stops early, a prefetch that fails later must not surface as unhandled.
    pending.catch(() => undefined);
    return pending;
  };
  let pending: Promise<LoadedPage<T>> | undefined = start(first);
  while (pending) {
    const page: LoadedPage<T> = await pending;
    pending = page.next ? start(page.next) : undefined;
    if (page.items.length) yield page.items;
  }
}
