import { z } from 'zod';
import type { Logger } from '../../src/logger.js';
import type { SchoologySettings } from '../../src/districts/settings.js';
import type { QuarantinedRecord, RecordKind, Role } from '../../src/domain/model.js';
import { ProviderHttpClient } from '../http/client.js';
import { oauth1Header } from '../http/oauth1.js';
import { pagesAhead, type Page } from '../http/pages.js';
import { batchOrigin, digestOfText, foldDigest, foldKnown } from '../http/page-origin.js';
import type { Connector, FetchOptions, SnapshotBatch } from '../types.js';
import { classifySchoologyResponse, SCHOOLOGY_AUTH_HINT } from './errors.js';
import { ListGatherer } from './gather.js';
import { inOrder } from '../http/parallel.js';
import { mapBuilding, mapCourse, mapEnrollment, mapGradingPeriod, mapInactiveUser, mapSchoolAsOrg, mapSection, mapUser, roleOf } from './map.js';
import {
  SgyBuilding, SgyCourse, SgyEnrollment, SgyGradingPeriod, SgyInactiveUser, SgyRole, SgySchool, SgySection, SgyUser, sgyPage,
} from './wire.js';

/**
 * Schoology caps `limit` at 200 (DESIGN; larger values are cut to 200). The
 * connector asks for the most it may, so a district costs as few requests as
 * the API allows.
 */
export const SCHOOLOGY_MAX_LIMIT = 200;

/**
 * Lists (a course's sections, a section's enrollments) read at once. Schoology
 * throttles per consumer key with 429 (its docs give no number to pace by:
 * https://developers.schoology.com/api-documentation/rest-api-v1), so this
 * stays a handful, not a burst; each list pages one request at a time.
 */
export const SCHOOLOGY_LISTS_IN_FLIGHT = 4;

/** Classes and enrollments are handed on once about this many are gathered (one list is never split). */
export const SCHOOLOGY_BATCH_RECORDS = 1000;

/** One record of a page: read against its schema, or not (then quarantined, never fatal). */
type Unread = { ok: false; id: string | null; reason: string; raw: unknown };
type Read<T> = { ok: true; value: T } | Unread;

const idOfRaw = (raw: unknown): string | null => {
  if (raw && typeof raw === 'object') {
    const r = raw as Record<string, unknown>;
    const id = r.id ?? r.uid;
    if (typeof id === 'string' || typeof id === 'number') return String(id);
  }
  return null;
};

/**
 * The docs' examples print links as `http://…` although the API is served
 * over https: a next link on the API's own host is taken at the base URL's
 * origin, the only one the district's credentials go to. A link to another
 * host is left as it is, and ProviderHttpClient refuses to follow it.
 */
function sameHost(link: string | undefined, base: string): string | undefined {
  if (!link || !/^https?:\/\//i.test(link)) return link;
  const target = new URL(link);
  const origin = new URL(base);
  if (target.hostname !== origin.hostname || target.origin === origin.origin) return link;
  return `${origin.origin}${target.pathname}${target.search}`;
}

/**
 * Schoology REST API v1 with two-legged OAuth 1.0a (realm "Schoology API",
 * empty oauth_token, HMAC-SHA1 or PLAINTEXT:
 * https://developers.schoology.com/api-documentation/authentication). Every
 * request, retry and 303 hop is signed afresh by ProviderHttpClient calling
 * `authorize` each time: Schoology refuses a reused timestamp/nonce with 401
 * "Duplicate timestamp/nonce combination, possible replay attack", and its
 * docs warn that users/me and users/ext/… answer 303.
 *
 * Walk: /roles; /schools and each school's /buildings; /gradingperiods;
 * /courses, each course's current /sections (past grading periods are left
 * out unless include_past=1) and each section's /enrollments; /users; then
 * /users/inactive. Lists page with start/limit and `links.next`. Schoology
 * has no change feed we can trust, so every fetch is a complete snapshot.
 * Course section lists and section enrollment lists (nine in ten requests)
 * are read a few at a time (inOrder) and handed on in the order asked, so
 * the snapshot is the same as read one by one; their records are gathered
 * into batches of ~SCHOOLOGY_BATCH_RECORDS.
 */
export class SchoologyConnector implements Connector {
  readonly provider = 'schoology';
  readonly supportsDelta = false;
  readonly fullSnapshotEveryMs = 0;
  /** Requests of the last fetch (sent includes retries and redirect hops), for the bench and logs. */
  lastRequests = { sent: 0, retried: 0 };

  constructor(private readonly settings: SchoologySettings, private readonly logger: Logger) {}

  async *fetch(options: FetchOptions): AsyncIterable<SnapshotBatch> {
    const { consumerKey, consumerSecret } = this.settings.credentials;
    const signatureMethod = this.settings.signatureMethod ?? 'HMAC-SHA1';
    const http = new ProviderHttpClient({
      providerName: 'Schoology',
      baseUrl: this.settings.baseUrl,
      authorize: ({ method, url }) => ({ Authorization: oauth1Header(method, url, consumerKey, consumerSecret, { signatureMethod, realm: 'Schoology API', token: '' }) }),
      authHint: SCHOOLOGY_AUTH_HINT,
      classifyResponse: classifySchoologyResponse,
      logger: this.logger,
      timeoutMs: this.settings.timeoutMs,
      retries: this.settings.retries,
      minRetryDelayMs: this.settings.minRetryDelayMs,
      signal: options.signal,
    });
    this.lastRequests = http.requests;
    const limit = Math.min(this.settings.pageSize ?? SCHOOLOGY_MAX_LIMIT, SCHOOLOGY_MAX_LIMIT);
    const today = new Date().toISOString().slice(0, 10);
    let pages = 0;
    let records = 0;
    const walk = <T>(path: string, key: string, schema: z.ZodType<T>, resource: string) =>
      this.paginate(http, path, key, schema, limit, (n) => {
        pages += 1;
        records += n;
        options.onPage?.({ pages, records, resource });
      });
    const quarantine = (kind: RecordKind, bad: Read<unknown>[], refs?: (f: Unread) => QuarantinedRecord['refs']): SnapshotBatch =>
      ({ kind: 'quarantine', records: bad.map((b) => { const f = b as Unread; const r = refs?.(f); return { kind, sourcedId: f.id, reason: f.reason, ...(r ? { refs: r } : {}) }; }) });
    const split = <T>(page: Read<T>[]) => ({ good: page.flatMap((r) => (r.ok ? [r.value] : [])), bad: page.filter((r) => !r.ok) });

    // Roles first: a user's role_id means nothing without them (and a users
    // page's batches are tagged with the roles they were read with).
    const { roles, digest: rolesDigest } = await this.roles(http);

    // Every batch is tagged with its origin (page-origin.ts): the pages it is
    // mapped from and whatever else its mapping read, so an unchanged district
    // is taken whole from the page memo (src/sync/page-memo.ts).
    for await (const page of walk('/schools', 'school', SgySchool, 'schools')) {
      const { good, bad } = split(page.items);
      if (bad.length) yield { ...quarantine('orgs', bad), origin: batchOrigin(page.digest, 0n, 1) };
      for (const [i, school] of good.entries()) {
        let buildings = 0;
        // The school (its place on the page: the page holds its record) and its
        // building lists: a school is its own campus only while they are empty.
        // Empty lists hand on no page, so without the school's place every
        // campus-less school on a page would share one origin.
        let lists: bigint | undefined = foldDigest(digestOfText(school.id), BigInt(i));
        for await (const bpage of walk(`/schools/${encodeURIComponent(school.id)}/buildings`, 'building', SgyBuilding, 'buildings')) {
          const b = split(bpage.items);
          buildings += bpage.items.length;
          lists = foldKnown(lists, bpage.digest);
          if (b.bad.length) yield { ...quarantine('orgs', b.bad), origin: batchOrigin(bpage.digest, 0n, 1) };
          if (b.good.length) yield { kind: 'orgs', records: b.good.map(mapBuilding), origin: batchOrigin(bpage.digest, 0n, 0) };
        }
        // DESIGN: school = building id; a school without buildings is its own campus.
        if (buildings === 0) yield { kind: 'orgs', records: [mapSchoolAsOrg(school)], origin: lists === undefined ? undefined : batchOrigin(page.digest, lists, 2) };
      }
    }

    const periodEnds = new Map<string, string>();
    for await (const page of walk('/gradingperiods', 'gradingperiods', SgyGradingPeriod, 'gradingperiods')) {
      const { good, bad } = split(page.items);
      if (bad.length) yield { ...quarantine('academicSessions', bad), origin: batchOrigin(page.digest, 0n, 1) };
      for (const g of good) periodEnds.set(g.id, g.end.slice(0, 10));
      if (good.length) yield { kind: 'academicSessions', records: good.map(mapGradingPeriod), origin: batchOrigin(page.digest, 0n, 0) };
    }
    /** A section is current while one of its grading periods has not ended (DESIGN); unknown periods count as current. */
    const isCurrent = (s: SgySection) => s.grading_periods.length === 0 || s.grading_periods.some((id) => { const end = periodEnds.get(id); return end === undefined || end >= today; });

    // Every list below one record (a course's sections, a section's members) is
    // read SCHOOLOGY_LISTS_IN_FLIGHT at a time and handed on in the order asked,
    // so the snapshot is the same as when they were read one by one.
    /** A whole list, and its digest: its path's and its pages' (page-origin.ts). */
    const readAll = async <T>(path: string, key: string, schema: z.ZodType<T>, resource: string, signal?: AbortSignal): Promise<{ items: Read<T>[]; digest: bigint | undefined }> => {
      const all: Read<T>[] = [];
      let digest: bigint | undefined = digestOfText(path);
      for await (const page of walk(path, key, schema, resource)) {
        all.push(...page.items);
        digest = foldKnown(digest, page.digest);
        // The run failed elsewhere (or stopped): do not spend the key's rate limit on pages nobody will use.
        if (signal?.aborted) throw new Error(`stopped reading ${path}: the fetch ended`);
      }
      return { items: all, digest };
    };
    const sectionsOf = (courseId: string, signal?: AbortSignal) => readAll(`/courses/${encodeURIComponent(courseId)}/sections`, 'section', SgySection, 'sections', signal);
    // A course's classes are mapped from its section list, the course's id and
    // building, and which sections are current (the day and the grading
    // periods decide that; the decisions themselves are what is folded in).
    const classes = new ListGatherer<ReturnType<typeof mapSection>>(SCHOOLOGY_BATCH_RECORDS);
    /** Current sections in course order: their members are read once every course is. */
    const current: string[] = [];

    for await (const page of walk('/courses', 'course', SgyCourse, 'courses')) {
      const { good, bad } = split(page.items);
      const unread = bad as Unread[];
      // An unreadable course must not retire its sections: they are named so they stay exactly as they were.
      const named = inOrder(unread.map((f, i) => ({ f, i })), SCHOOLOGY_LISTS_IN_FLIGHT, async ({ f, i }, signal) => ({ f, i, sections: f.id ? await sectionsOf(f.id, signal) : { items: [], digest: 0n } }));
      for await (const { f, i, sections } of named) {
        const ids = sections.items.flatMap((r) => { const id = r.ok ? r.value.id : r.id; return id ? [id] : []; });
        // Mapped from the page (the i-th unreadable course on it) and the course's section list.
        const context = foldKnown(sections.digest, BigInt(i));
        yield {
          kind: 'quarantine', records: [{ kind: 'courses', sourcedId: f.id, reason: f.reason, ...(ids.length ? { refs: { classes: ids } } : {}) }],
          origin: context === undefined ? undefined : batchOrigin(page.digest, context, 1),
        };
      }
      if (good.length) yield { kind: 'courses', records: good.map(mapCourse), origin: batchOrigin(page.digest, 0n, 0) };
      for await (const { course, sections } of inOrder(good, SCHOOLOGY_LISTS_IN_FLIGHT, async (course, signal) => ({ course, sections: await sectionsOf(course.id, signal) }))) {
        const s = split(sections.items);
        if (s.bad.length) yield { ...quarantine('classes', s.bad, (f) => (f.id ? { classes: [f.id] } : undefined)), origin: batchOrigin(sections.digest, 0n, 1) };
        // Past sections are already left out by the API; this also drops one whose periods ended since they were listed.
        const currentNow = s.good.map(isCurrent);
        const live = s.good.filter((_, i) => currentNow[i]);
        current.push(...live.map((sec) => sec.id));
        const read = foldKnown(foldKnown(sections.digest, digestOfText(`${course.id}\u0000${course.building_id ?? ''}`)), digestOfText(currentNow.map((c) => (c ? '1' : '0')).join('')));
        const full = classes.add(live.map((sec) => mapSection(sec, course)), read);
        if (full) yield { kind: 'classes', ...full };
      }
    }
    const lastClasses = classes.flush();
    if (lastClasses) yield { kind: 'classes', ...lastClasses };

    // ~118 members a section: gathered across sections so the stage gets a few
    // hundred batches, not one per section. A section's members are mapped
    // from its list alone (the section is in the list's path), so batches are
    // tagged with the digests of the lists they hold.
    const enrollments = new ListGatherer<NonNullable<ReturnType<typeof mapEnrollment>>>(SCHOOLOGY_BATCH_RECORDS * 4);
    const members = inOrder(current, SCHOOLOGY_LISTS_IN_FLIGHT, async (sectionId, signal) => ({
      sectionId, list: await readAll(`/sections/${encodeURIComponent(sectionId)}/enrollments`, 'enrollment', SgyEnrollment, 'enrollments', signal),
    }));
    for await (const { sectionId, list } of members) {
      const e = split(list.items);
      if (e.bad.length) {
        // The whole class is left as it was, and the member too when the uid can be read.
        yield { ...quarantine('enrollments', e.bad, (f) => {
          const uid = (f.raw as { uid?: unknown } | null)?.uid;
          return { classes: [sectionId], ...(typeof uid === 'string' || typeof uid === 'number' ? { users: [String(uid)] } : {}) };
        }), origin: batchOrigin(list.digest, 0n, 1) };
      }
      const full = enrollments.add(e.good.map((en) => mapEnrollment(en, sectionId)).filter((en) => en !== null), list.digest);
      if (full) yield { kind: 'enrollments', ...full };
    }
    const lastEnrollments = enrollments.flush();
    if (lastEnrollments) yield { kind: 'enrollments', ...lastEnrollments };

    let rostered = 0;
    for await (const page of walk('/users', 'user', SgyUser, 'users')) {
      const { good, bad } = split(page.items);
      const unreadable: QuarantinedRecord[] = bad.map((b) => { const f = b as Unread; return { kind: 'users', sourcedId: f.id, reason: f.reason, ...(f.id ? { refs: { users: [f.id] } } : {}) }; });
      const users = [];
      for (const u of good) {
        if (!roles.has(u.role_id)) {
          unreadable.push({ kind: 'users', sourcedId: u.uid, reason: `role_id ${u.role_id} is not among the school's /roles`, refs: { users: [u.uid] } });
          continue;
        }
        const role = roles.get(u.role_id);
        if (role) users.push(mapUser(u, role));
      }
      rostered += users.length;
      // Mapped from the page and the roles alone.
      if (unreadable.length) yield { kind: 'quarantine', records: unreadable, origin: batchOrigin(page.digest, rolesDigest, 1) };
      if (users.length) yield { kind: 'users', records: users, origin: batchOrigin(page.digest, rolesDigest, 0) };
    }

    // An account whose /users is empty is a broken key or an empty school, not a
    // district everyone left: without the inactive list the snapshot stays
    // empty, and the empty-snapshot guard holds the run.
    if (rostered === 0) {
      this.logger.warn({ provider: 'schoology' }, 'Schoology /users listed nobody on the roster; not reading /users/inactive');
      return;
    }
    for await (const page of walk('/users/inactive', 'user', SgyInactiveUser, 'users')) {
      const { good, bad } = split(page.items);
      // Mapped from the page alone.
      if (bad.length) yield { ...quarantine('users', bad, (f) => (f.id ? { users: [f.id] } : undefined)), origin: batchOrigin(page.digest, 0n, 1) };
      if (good.length) yield { kind: 'users', records: good.map(mapInactiveUser), origin: batchOrigin(page.digest, 0n, 0) };
    }
  }

  /** `/roles` lists organization roles under `role` and school override roles under `building_role`. */
  private async roles(http: ProviderHttpClient): Promise<{ roles: Map<string, Role | null>; digest: bigint }> {
    const schema = z.object({ role: z.array(z.unknown()).nullish(), building_role: z.array(z.unknown()).nullish() }).passthrough();
    const { body, digest } = await http.getJson('/roles', schema);
    const roles = new Map<string, Role | null>();
    for (const raw of [...(body.role ?? []), ...(body.building_role ?? [])]) {
      const parsed = SgyRole.safeParse(raw);
      if (parsed.success) roles.set(parsed.data.id, roleOf(parsed.data));
      else this.logger.warn({ provider: 'schoology', role: idOfRaw(raw) }, 'unreadable Schoology role; its users are quarantined');
    }
    return { roles, digest };
  }

  /**
   * Pages one Schoology list: `start`/`limit`, following `links.next`. When a
   * page has no next link but `total` (a string) says more remain, the next
   * start is computed: a server that drops the link must not cut the roster.
   */
  private paginate<T>(http: ProviderHttpClient, path: string, key: string, schema: z.ZodType<T>, limit: number, onPage: (n: number) => void): AsyncIterable<Page<Read<T>>> {
    const envelope = sgyPage(key);
    const first = `${path}?start=0&limit=${limit}`;
    return pagesAhead<Read<T>>(first, async (url) => {
      const { body, digest } = await http.getJson(url, envelope);
      const rawItems = (body[key] as unknown[] | null | undefined) ?? [];
      const items = rawItems.map((raw): Read<T> => {
        const parsed = schema.safeParse(raw);
        if (parsed.success) return { ok: true, value: parsed.data };
        const issue = parsed.error.issues[0];
        return { ok: false, id: idOfRaw(raw), raw, reason: `not a valid Schoology ${key}: ${issue ? `${issue.path.join('.') || '(record)'}: ${issue.message}` : 'unreadable'}` };
      });
      onPage(items.length);
      const start = Number(new URL(http.resolve(url)).searchParams.get('start') ?? 0);
      let next = sameHost(body.links?.next || undefined, http.resolve('/'));
      if (!next && body.total !== undefined && items.length > 0 && start + items.length < body.total) {
        next = `${path}?start=${start + items.length}&limit=${limit}`;
      }
      return { items, next, digest };
    }, `Schoology ${path}`, { limit, idOf: (r) => (r.ok ? JSON.stringify(r.value).slice(0, 120) : r.id ?? '') });
  }
}
