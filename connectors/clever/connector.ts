import type { z } from 'zod';
import type { Logger } from '../../src/logger.js';
import type { CleverSettings } from '../../src/districts/settings.js';
import type { QuarantinedRecord, RecordKinds } from '../../src/domain/model.js';
import { ProviderHttpClient } from '../http/client.js';
import { pagesAhead, rawId, type Page } from '../http/pages.js';
import { batchOrigin } from '../http/page-origin.js';
import type { Connector, FetchOptions, SnapshotBatch } from '../types.js';
import { CLEVER_ROLES, mapCourse, mapSchool, mapSection, mapTerm, mapUser, type CleverRole } from './map.js';
import { readCleverRecords } from './records.js';
import { CleverCourse, CleverSchool, CleverSection, CleverTerm, CleverUser, cleverPageEnvelope } from './wire.js';

const API = '/v3.0';
/** Clever answers 413 above this. */
const MAX_LIMIT = 10000;

/**
 * Clever Data API v3.0 with a district token. Clever offers no full-roster
 * delta feed we rely on here, so every fetch is a complete snapshot.
 *
 * Users are listed once per role (`/users?role=teacher|student|district_admin`,
 * https://dev.clever.com/docs/users): a person with several roles comes once
 * under each, mapped with that role's schools. Staff (school admins, aides,
 * counselors) are not rostered.
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
    const pagesOf = (resource: string, query: string) =>
      this.paginate(http, `${API}/${resource}?${query ? `${query}&` : ''}limit=${limit}`, (n) => {
        pages += 1;
        records += n;
        options.onPage?.({ pages, records, resource });
      }, limit);

    // Each batch is a function of its page alone (the role is in the URL):
    // tagged with the page's origin, with no context.
    for await (const page of pagesOf('schools', '')) {
      const r = readCleverRecords('schools', 'orgs', CleverSchool, page.items);
      yield* batches(page, 'orgs', r.ok.map(mapSchool), r.quarantined);
    }
    for await (const page of pagesOf('terms', '')) {
      const r = readCleverRecords('terms', 'academicSessions', CleverTerm, page.items);
      yield* batches(page, 'academicSessions', r.ok.map(mapTerm), r.quarantined);
    }
    for await (const page of pagesOf('courses', '')) {
      const r = readCleverRecords('courses', 'courses', CleverCourse, page.items);
      yield* batches(page, 'courses', r.ok.map(mapCourse), r.quarantined);
    }
    for await (const page of pagesOf('sections', '')) {
      const r = readCleverRecords('sections', 'classes', CleverSection, page.items);
      const mapped = r.ok.map(mapSection);
      yield* batches(page, 'classes', mapped.map((m) => m.cls), r.quarantined);
      // Parts 2 and up: a page's batches are told apart by their part.
      if (mapped.length) yield { kind: 'enrollments', records: mapped.flatMap((m) => m.enrollments), origin: batchOrigin(page.digest, 0n, 2) } as SnapshotBatch;
    }
    for (const role of Object.keys(CLEVER_ROLES) as CleverRole[]) {
      for await (const page of pagesOf('users', `role=${role}`)) {
        const r = readCleverRecords(`users?role=${role}`, 'users', CleverUser, page.items);
        const users = [];
        for (const u of r.ok) {
          const mapped = mapUser(u, role);
          if (mapped) users.push(mapped);
          else r.quarantined.push({ kind: 'users', sourcedId: u.id, reason: `users record ${u.id}: listed under role=${role} but has no roles.${role}`, refs: { users: [u.id] } });
        }
        yield* batches(page, 'users', users, r.quarantined);
      }
    }
  }

  /** Follows rel=next links (range pagination with starting_after) until none is left. */
  private paginate(http: ProviderHttpClient, first: string, onPage: (n: number) => void, limit: number): AsyncIterable<Page<unknown>> {
    return pagesAhead(first, async (url) => {
      const { body, digest } = await http.getJson(url, cleverPageEnvelope);
      const envelope = body as z.infer<typeof cleverPageEnvelope>;
      const items = envelope.data.map((d) => d.data);
      onPage(items.length);
      return { items, next: envelope.links.find((l) => l.rel === 'next')?.uri, digest };
    }, 'Clever', { limit, idOf: rawId('id') });
  }
}

/** A page's records and what of it could not be read, as its parts 0 and 1. */
function* batches<K extends keyof RecordKinds>(page: Page<unknown>, kind: K, records: RecordKinds[K][], quarantined: QuarantinedRecord[]): Iterable<SnapshotBatch> {
  if (records.length) yield { kind, records, origin: batchOrigin(page.digest, 0n, 0) } as SnapshotBatch;
  if (quarantined.length) yield { kind: 'quarantine', records: quarantined, origin: batchOrigin(page.digest, 0n, 1) };
}
