import type { z } from 'zod';
import type { Logger } from '../../src/logger.js';
import type { CleverSettings } from '../../src/districts/settings.js';
import { ProviderHttpClient } from '../http/client.js';
import { pagesAhead } from '../http/pages.js';
import type { Connector, FetchOptions, SnapshotBatch } from '../types.js';
import { mapCourse, mapSchool, mapSection, mapTerm, mapUser } from './map.js';
import { CleverCourse, CleverSchool, CleverSection, CleverTerm, CleverUser, cleverPage } from './wire.js';

const API = '/v3.0';
type PageShape = { data: { data: unknown }[]; links: { rel: string; uri: string }[] };
/** Clever answers 413 above this. */
const MAX_LIMIT = 10000;

/**
 * Clever Data API v3.0 with a district token. Clever offers no full-roster
 * delta feed we rely on here, so every fetch is a complete snapshot.
 */
export class CleverConnector implements Connector {
  readonly provider = 'clever';
  readonly supportsDelta = false;
  readonly fullSnapshotEveryMs = 0;

  constructor(private readonly settings: CleverSettings, private readonly logger: Logger) {}

  async *fetch(options: FetchOptions): AsyncIterable<SnapshotBatch> {
    const http = new ProviderHttpClient({
      providerName: 'Clever',
      baseUrl: this.settings.baseUrl,
      authorize: () => ({ Authorization: `Bearer ${this.settings.credentials.token}` }),
      authHint: 'the district token is wrong, revoked, or the district disconnected the app; set a new one with `district add … --token`',
      logger: this.logger,
      timeoutMs: this.settings.timeoutMs,
      retries: this.settings.retries,
      minRetryDelayMs: this.settings.minRetryDelayMs,
      signal: options.signal,
    });
    const limit = Math.min(this.settings.pageSize ?? 1000, MAX_LIMIT);
    let pages = 0;
    let records = 0;
    const pagesOf = <T extends z.ZodType>(resource: string, query: string, schema: T) =>
      this.paginate(http, `${API}/${resource}?${query ? `${query}&` : ''}limit=${limit}`, schema, (n) => {
        pages += 1;
        records += n;
        options.onPage?.({ pages, records, resource });
      });

    for await (const page of pagesOf('schools', '', CleverSchool)) yield { kind: 'orgs', records: page.map(mapSchool) };
    for await (const page of pagesOf('terms', '', CleverTerm)) yield { kind: 'academicSessions', records: page.map(mapTerm) };
    for await (const page of pagesOf('courses', '', CleverCourse)) yield { kind: 'courses', records: page.map(mapCourse) };
    for await (const page of pagesOf('sections', '', CleverSection)) {
      const mapped = page.map(mapSection);
      yield { kind: 'classes', records: mapped.map((m) => m.cls) };
      yield { kind: 'enrollments', records: mapped.flatMap((m) => m.enrollments) };
    }
    for (const role of ['teacher', 'student'] as const) {
      for await (const page of pagesOf('users', `role=${role}`, CleverUser)) yield { kind: 'users', records: page.map((u) => mapUser(u, role)) };
    }
  }

  /** Follows rel=next links (range pagination with starting_after) until none is left. */
  private paginate<T extends z.ZodType>(http: ProviderHttpClient, first: string, schema: T, onPage: (n: number) => void): AsyncIterable<z.infer<T>[]> {
    const pageSchema = cleverPage(schema);
    return pagesAhead(first, async (url) => {
      // Generic zod inference does not survive the envelope; the schema has checked the shape.
      const { body } = (await http.getJson(url, pageSchema)) as unknown as { body: PageShape };
      const items = body.data.map((d) => d.data as z.infer<T>);
      onPage(items.length);
      return { items, next: body.links.find((l) => l.rel === 'next')?.uri };
    }, 'Clever');
  }
}
