export interface LoadedPage<T> {
  items: T[];
  /** Where the next page is, if there is one. */
  next?: string;
  /** The page's digest (JsonResponse.digest), for the origin of the batches made from it. */
  digest?: bigint;
}

/** A page as handed on: its items, and its digest when it has one. */
export type Page<T> = Pick<LoadedPage<T>, 'items' | 'digest'>;

/** The items of each page, for a connector that tags no batch with an origin. */
export async function* itemsOf<T>(pages: AsyncIterable<Page<T>>): AsyncIterable<T[]> {
  for await (const page of pages) yield page.items;
}

export interface PageBounds<T> {
  /** The page size asked for: a page far larger is a provider fault, not data. */
  limit?: number;
  /** A record's id, to notice a cursor that does not advance (the same page again under a new URL). */
  idOf?: (item: T) => string;
}

export class PaginationError extends Error {}

/** The id field of a raw (not yet validated) provider record, for PageBounds.idOf. */
export const rawId = (field: string) => (item: unknown): string => {
  const id = typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[field] : undefined;
  return typeof id === 'string' || typeof id === 'number' ? String(id) : '';
};

/**
 * Walks a provider's pages one ahead: the next page is requested before the
 * current one is handed on, so the provider renders it while we stage this
 * one. A next link already followed, a page that repeats the previous one, or
 * a page far beyond the limit asked for stops the walk with an error: a
 * pagination that never ends must not fill the stage.
 */
export async function* pagesAhead<T>(first: string, load: (url: string) => Promise<LoadedPage<T>>, label: string, bounds: PageBounds<T> = {}): AsyncIterable<Page<T>> {
  const seen = new Set<string>();
  const start = (url: string) => {
    if (seen.has(url)) throw new PaginationError(`${label} pagination loops back to ${url}`);
    seen.add(url);
    const pending = load(url);
    // If the consumer stops early, a prefetch that fails later must not surface as unhandled.
    pending.catch(() => undefined);
    return pending;
  };
  // Every page seen, by its first and last ids: a cycle of any length (A, B, A, …) is caught, not just a repeat.
  const signatures = new Set<string>();
  let pending: Promise<LoadedPage<T>> | undefined = start(first);
  while (pending) {
    const page: LoadedPage<T> = await pending;
    const { limit, idOf } = bounds;
    if (limit !== undefined && page.items.length > limit * 2 + 10) {
      throw new PaginationError(`${label}: a page held ${page.items.length} records where ${limit} were asked for; refusing a page that large (provider fault)`);
    }
    if (idOf && page.items.length > 0) {
      const signature = `${idOf(page.items[0]!)}\u0000${idOf(page.items[page.items.length - 1]!)}\u0000${page.items.length}`;
      if (signatures.has(signature)) throw new PaginationError(`${label}: the provider returned the same page again (cursor does not advance); stopping before the stage fills`);
      signatures.add(signature);
    }
    pending = page.next ? start(page.next) : undefined;
    if (page.items.length) yield { items: page.items, digest: page.digest };
  }
}
