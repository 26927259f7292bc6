import type { Logger } from '../../src/logger.js';
import type { JsonResponse } from '../http/client.js';
import type { ClassLinkSettings } from '../../src/districts/settings.js';
import type { QuarantinedRecord, RecordKinds } from '../../src/domain/model.js';
import { ProviderHttpClient } from '../http/client.js';
import { pagesAhead, rawId, type Page } from '../http/pages.js';
import { batchOrigin, digestOfText, foldKnown } from '../http/page-origin.js';
import type { Connector, FetchOptions, SnapshotBatch } from '../types.js';
import { mapClass, mapCourse, mapEnrollment, mapOrg, mapSession, mapUser, OrgTree } from './map.js';
import { ClientCredentialsToken, oauth1Header } from './oauth.js';
import { OrOrg, pageEnvelope, readRecords, RESOURCES, type Resource } from './wire.js';

const DEFAULT_LIMIT = 1000;
const DEFAULT_FULL_EVERY_HOURS = 24;

/** Next page from an RFC 8288 Link header, if the server sent one. */
function nextLink(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part.trim());
    if (m) return m[1];
  }
  return undefined;
}

/**
 * ClassLink Roster Server: the 1EdTech OneRoster REST binding, 1.1 (OAuth 1.0a,
 * HMAC-SHA256) or 1.2 (OAuth 2 client credentials), as the base URL and the
 * district's credentials say. Pages with limit/offset, follows Link rel=next
 * and X-Total-Count, and copes with servers that cap limit. Offers deltas via
 * filter=dateLastModified>'…'.
 */
export class OneRosterConnector implements Connector {
  readonly provider = 'classlink';
  readonly supportsDelta = true;
  readonly fullSnapshotEveryMs: number;
  private readonly token?: ClientCredentialsToken;

  constructor(private readonly settings: ClassLinkSettings, private readonly logger: Logger) {
    this.fullSnapshotEveryMs = (settings.fullSnapshotEveryHours ?? DEFAULT_FULL_EVERY_HOURS) * 3600_000;
    const c = settings.credentials;
    if ('clientId' in c) this.token = new ClientCredentialsToken({ ...c, timeoutMs: settings.timeoutMs ?? 30000 });
  }

  /** Tokens fetched so far (OAuth 2), for tests and logs. */
  get tokensIssued(): number {
    return this.token?.issued ?? 0;
  }

  async *fetch(options: FetchOptions): AsyncIterable<SnapshotBatch> {
    const c = this.settings.credentials;
    const http = new ProviderHttpClient({
      providerName: 'ClassLink',
      baseUrl: this.settings.baseUrl,
      authorize: async ({ method, url }) => ({
        Authorization: this.token ? `Bearer ${await this.token.get()}` : oauth1Header(method, url, (c as { consumerKey: string }).consumerKey, (c as { consumerSecret: string }).consumerSecret),
      }),
      authHint: this.token
        ? 'the access token was rejected; check the client id and secret and that the app is still authorized for this district'
        : 'the OAuth 1.0a signature was rejected; check --consumer-key and --consumer-secret',
      logger: this.logger,
      timeoutMs: this.settings.timeoutMs,
      retries: this.settings.retries,
      minRetryDelayMs: this.settings.minRetryDelayMs,
      signal: options.signal,
    });
    const filter = !options.full && options.since ? `dateLastModified>'${options.since.toISOString()}'` : undefined;
    const asOf = new Date().toISOString().slice(0, 10);
    let pages = 0;
    let records = 0;
    const pagesOf = (resource: Resource, pageFilter: string | undefined) => {
      const source = this.paginate(http, resource, pageFilter);
      return (async function* counted() {
        for await (const page of source) {
          pages += 1;
          records += page.items.length;
          options.onPage?.({ pages, records, resource });
          yield page;
        }
      })();
    };

    // Orgs come whole even in a delta (a district has few): classes and users
    // name departments that must roll up to their school.
    const orgTree = new OrgTree();
    // What a batch's mapping reads besides its page (page-origin.ts): classes
    // and users the org tree (every orgs page, in order), users the day too
    // (a role is current or ended as of it). Undefined once an orgs page
    // has no digest: nothing that reads the tree is tagged then.
    let orgsDigest: bigint | undefined = 0n;
    for await (const page of pagesOf('orgs', undefined)) {
      const { ok, quarantined } = readRecords('orgs', OrOrg, page.items);
      for (const o of ok) orgTree.add(o);
      orgsDigest = foldKnown(orgsDigest, page.digest);
      yield* batches(page, 0n, 'orgs', ok.map(mapOrg), quarantined);
    }
    const tree = orgsDigest;
    const treeAndDay = foldKnown(tree, digestOfText(asOf));
    for (const resource of ['academicSessions', 'courses', 'classes', 'users', 'enrollments'] as const) {
      for await (const page of pagesOf(resource, filter)) {
        switch (resource) {
          case 'academicSessions': { const r = readRecords(resource, RESOURCES[resource], page.items); yield* batches(page, 0n, resource, r.ok.map(mapSession), r.quarantined); break; }
          case 'courses': { const r = readRecords(resource, RESOURCES[resource], page.items); yield* batches(page, 0n, resource, r.ok.map(mapCourse), r.quarantined); break; }
          case 'classes': { const r = readRecords(resource, RESOURCES[resource], page.items); yield* batches(page, tree, resource, r.ok.map((c) => mapClass(c, orgTree)), r.quarantined); break; }
          case 'users': { const r = readRecords(resource, RESOURCES[resource], page.items); yield* batches(page, treeAndDay, resource, r.ok.map((u) => mapUser(u, asOf, orgTree)), r.quarantined); break; }
          case 'enrollments': { const r = readRecords(resource, RESOURCES[resource], page.items); yield* batches(page, 0n, resource, r.ok.map(mapEnrollment), r.quarantined); break; }
        }
      }
    }
  }

  private paginate(http: ProviderHttpClient, resource: Resource, filter: string | undefined): AsyncIterable<Page<unknown>> {
    const limit = this.settings.pageSize ?? DEFAULT_LIMIT;
    // Only the envelope is checked here: records are read one by one (readRecords).
    const pageSchema = pageEnvelope(resource);
    const query = (offset: number) => {
      const q = new URLSearchParams({ limit: String(limit), offset: String(offset), sort: 'sourcedId' });
      if (filter) q.set('filter', filter);
      return `/${resource}?${q}`;
    };
    return pagesAhead(query(0), async (url) => {
      const { body, headers, digest }: JsonResponse<unknown> = await http.getJson(url, pageSchema);
      const items = (body as Record<string, unknown[]>)[resource] ?? [];
      const offset = Number(new URL(url, 'http://base').searchParams.get('offset') ?? 0) + items.length;
      const total = headers['x-total-count'] !== undefined ? Number(headers['x-total-count']) : undefined;
      const link = nextLink(headers.link);
      // A server may cap limit below what we asked: advance by what it returned.
      let next: string | undefined;
      // RFC 8288: a relative reference resolves against the URL that was requested.
      if (link) next = new URL(link, http.resolve(url)).toString();
      else if (items.length === 0) next = undefined;
      else if (total !== undefined && Number.isFinite(total)) next = offset < total ? query(offset) : undefined;
      else next = items.length < limit ? undefined : query(offset);
      return { items, next, digest };
    }, `ClassLink ${resource}`, { limit, idOf: rawId('sourcedId') });
  }
}

/**
 * A page's records (people the platform does not roster left out) and what
 * could not be read, as its parts 0 and 1, tagged with the page's origin
 * under `context` (untagged when the context is unknown).
 */
function* batches<K extends keyof RecordKinds>(page: Page<unknown>, context: bigint | undefined, kind: K, mapped: (RecordKinds[K] | null)[], quarantined: QuarantinedRecord[]): Iterable<SnapshotBatch> {
  const records = mapped.filter((r): r is RecordKinds[K] => r !== null);
  const origin = (part: number) => (context === undefined ? undefined : batchOrigin(page.digest, context, part));
  if (records.length) yield { kind, records, origin: origin(0) } as SnapshotBatch;
  if (quarantined.length) yield { kind: 'quarantine', records: quarantined, origin: origin(1) };
}
