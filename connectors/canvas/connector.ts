import type { Logger } from '../../src/logger.js';
import type { CanvasSettings } from '../../src/districts/settings.js';
import type { QuarantinedRecord } from '../../src/domain/model.js';
import { ProviderHttpClient } from '../http/client.js';
import { ProviderError } from '../http/errors.js';
import type { Connector, FetchOptions, SnapshotBatch } from '../types.js';
import { CanvasRefusalError, TOKEN_HINT, classifyCanvas } from './errors.js';
import type { CanvasAccountNode, CanvasEnrollmentRecord, CanvasSectionRecord } from './model.js';
import { RateLimitPacer } from './pacer.js';
import { inOrder } from '../http/parallel.js';
import { postForm } from './post.js';
import { ProvisioningReport, awaitReport, reportParameters } from './report.js';
import { PER_PAGE, enrollmentRefs, restCourse, restEnrollment, restSection, restUser, userRefs, walk } from './rest.js';
import { RosterAssembler } from './roster.js';
import { CanvasAccount, CanvasCourse, CanvasEnrollment, CanvasReport, CanvasSection, CanvasUser } from './wire.js';
import { chunks } from './batch.js';
import { batchOrigin, digestOfText, foldKnown } from '../http/page-origin.js';
import { zipContentDigest } from './zip-digest.js';

export interface CanvasConnectorOptions {
  /** 'auto' (default) tries the provisioning report and falls back to REST when it is not permitted. */
  path?: 'auto' | 'report' | 'rest';
  /** Longest wait between report status polls; default from the district's minRetryDelayMs (×4, 20 ms – 5 s). */
  reportPollMs?: number;
  /** First wait between report status polls, doubled after each poll up to reportPollMs (default 250 ms, at most reportPollMs). */
  reportFirstPollMs?: number;
  /** Give up on a report still running after this long and use REST (default 30 min). */
  reportMaxWaitMs?: number;
  /** Courses read at once on the REST path (each walks one page ahead: twice this many requests in flight at most). */
  courseConcurrency?: number;
}

/** What the last fetch did: for logs, tests and the request-count bench. */
export interface CanvasRunInfo {
  path: 'report' | 'rest' | null;
  /** Why the report path was not used, when it was tried. */
  reportFallback: string | null;
  requests: number;
  retried: number;
  reportPolls: number;
  paced: RateLimitPacer['stats'];
}

// REST enrollment listing: every state (DESIGN "Who is on the roster" maps each),
// without observers and the test student (type[] filter; enrollments_api_controller#index).
const ENROLLMENT_QUERY = [
  ...['active', 'invited', 'creation_pending', 'inactive', 'completed', 'deleted', 'rejected'].map((s) => `state[]=${s}`),
  ...['StudentEnrollment', 'TeacherEnrollment', 'TaEnrollment', 'DesignerEnrollment'].map((t) => `type[]=${t}`),
  `per_page=${PER_PAGE}`,
].join('&');
// accounts_controller#courses_api: every workflow state, deleted included (its sections end), with the term.
const COURSE_QUERY = [...['created', 'claimed', 'available', 'completed', 'deleted'].map((s) => `state[]=${s}`), 'include[]=term', `per_page=${PER_PAGE}`].join('&');
/** Canvas renders ids as JSON strings with this media type (lib/api.rb: "application/json+canvas-string-ids"). */
const ACCEPT = 'application/json+canvas-string-ids, application/json';
/** Records per yielded batch when the report delivers everything at once. */
const BATCH = 1000;

/**
 * Canvas LMS REST API v1 with an admin's access token. Every fetch is a full
 * snapshot. The fast path is the provisioning report (tens of requests for any
 * size); when the token may not run reports it walks the REST API instead.
 * Both reduce Canvas to one shape (model.ts) and one assembler maps it, so both
 * give the same canonical snapshot.
 */
export class CanvasConnector implements Connector {
  readonly provider = 'canvas';
  readonly supportsDelta = false;
  readonly fullSnapshotEveryMs = 0;
  lastRun: CanvasRunInfo | null = null;

  constructor(private readonly settings: CanvasSettings, private readonly logger: Logger, private readonly options: CanvasConnectorOptions = {}) {}

  async *fetch(options: FetchOptions): AsyncIterable<SnapshotBatch> {
    const s = this.settings;
    const minDelay = s.minRetryDelayMs ?? 500;
    // Canvas sends no Retry-After when it throttles: wait as long as a drained bucket needs.
    const throttleWaitMs = Math.min(10_000, minDelay * 20);
    const pacer = new RateLimitPacer({ lowWater: 200, maxWaitMs: throttleWaitMs, signal: options.signal });
    const apiPath = new URL(s.baseUrl).pathname.replace(/\/+$/, '');
    const http = new ProviderHttpClient({
      providerName: 'Canvas',
      baseUrl: s.baseUrl,
      authorize: async ({ url }) => {
        await pacer.beforeRequest();
        // String ids for API calls; a file download (the report) keeps the client's own Accept.
        const api = new URL(url).pathname.startsWith(`${apiPath}/`);
        return { Authorization: `Bearer ${s.credentials.token}`, ...(api ? { Accept: ACCEPT } : {}) };
      },
      authHint: TOKEN_HINT,
      classifyResponse: (raw) => classifyCanvas(raw, throttleWaitMs),
      onResponse: (h) => pacer.observe(h),
      logger: this.logger,
      timeoutMs: s.timeoutMs,
      retries: s.retries,
      minRetryDelayMs: s.minRetryDelayMs,
      signal: options.signal,
    });
    const run: CanvasRunInfo = { path: null, reportFallback: null, requests: 0, retried: 0, reportPolls: 0, paced: pacer.stats };
    this.lastRun = run;
    let posts = 0;
    const sync = () => {
      run.requests = http.requests.sent + posts;
      run.retried = http.requests.retried;
    };
    let pages = 0;
    let records = 0;
    const progress = (resource: string) => (n: number) => {
      pages += 1;
      records += n;
      sync();
      options.onPage?.({ pages, records, resource });
    };

    try {
      // The district's account: resolves `self` / `sis_account_id:X` to its id, and checks the token first.
      const accountPath = `/accounts/${encodeURIComponent(s.accountId).replace(/%3A/gi, ':')}`;
      const { body: account, digest: accountDigest } = await http.getJson(accountPath, CanvasAccount);
      // What the assembler knows of the account tree, as a digest: on the report path every batch is mapped from it and the report.
      let tree: bigint | undefined = accountDigest;
      const districtId = account.id;
      const accounts: CanvasAccountNode[] = [{ id: account.id, name: account.name, parentId: account.parent_account_id, sisId: account.sis_account_id }];
      const quarantined: QuarantinedRecord[] = [];
      // The whole sub-account tree, on both paths: the report's accounts part lists only direct children of a sub-account.
      for await (const page of walk(http, `/accounts/${districtId}/sub_accounts?recursive=true&per_page=${PER_PAGE}`, CanvasAccount, 'sub-accounts', { kind: 'orgs' }, progress('accounts'))) {
        for (const c of page) {
          tree = foldKnown(tree, c.digest);
          accounts.push(...c.ok.map((a) => ({ id: a.id, name: a.name, parentId: a.parent_account_id, sisId: a.sis_account_id })));
          quarantined.push(...c.bad);
        }
      }
      const assembler = new RosterAssembler(districtId, accounts);

      let report: { report: ProvisioningReport; digest: bigint | undefined } | null = null;
      const path = this.options.path ?? 'auto';
      if (path !== 'rest') {
        const outcome = await this.tryReport(http, districtId, pacer, throttleWaitMs, options.signal, () => { posts += 1; }, run);
        if ('report' in outcome) report = outcome;
        else {
          if (path === 'report') throw new ProviderError(`Canvas: the provisioning report could not be used: ${outcome.fallback}`, 'client');
          run.reportFallback = outcome.fallback;
          this.logger.warn({ provider: 'canvas', reason: outcome.fallback }, 'Canvas provisioning report not usable; reading the REST API instead (many more requests)');
        }
        sync();
      }

      // Every batch is mapped by the assembler from what it has read so far:
      // on the report path the account tree and the whole report (a user's
      // role and schools come from all their enrollments), on the REST path
      // the tree and every page read before the batch, in order. Each batch
      // is tagged with the digest of those and its place in the fetch
      // (page-origin.ts), so an unchanged district is taken whole from the
      // page memo, and any change reads every batch after it again.
      let read: bigint | undefined = report ? foldKnown(tree, report.digest) : tree;
      let seq = 0;
      const tagged = async function* (batches: AsyncIterable<SnapshotBatch> | Iterable<SnapshotBatch>): AsyncIterable<SnapshotBatch> {
        for await (const b of batches) yield read === undefined ? b : { ...b, origin: batchOrigin(read, 0n, seq++) };
      };
      yield* tagged([{ kind: 'orgs', records: assembler.schools() }]);
      if (report) {
        run.path = 'report';
        yield* tagged(this.fromReport(report.report, assembler, (n) => options.onPage?.({ pages: ++pages, records: (records += n), resource: 'provisioning report' })));
      } else {
        run.path = 'rest';
        yield* tagged(this.fromRest(http, districtId, assembler, progress, quarantined, (digest) => {
          read = foldKnown(read, digest);
        }));
      }
      if (quarantined.length) yield* tagged([{ kind: 'quarantine', records: quarantined }]);
      const skipped = assembler.skipped;
      this.logger.info({ provider: 'canvas', path: run.path, requests: http.requests.sent + posts, retried: http.requests.retried, paced: pacer.stats, skipped }, 'Canvas roster read');
    } finally {
      sync();
    }
  }

  /**
   * The report, part by part in the order the assembler needs; enrollments and
   * users are mapped and handed on a batch at a time as they are parsed, so
   * neither the report nor its rows are ever held whole.
   */
  private async *fromReport(r: ProvisioningReport, assembler: RosterAssembler, read: (rows: number) => void): AsyncIterable<SnapshotBatch> {
    let counted = 0;
    const progress = () => { read(r.rows - counted); counted = r.rows; };
    assembler.addTerms(await r.terms());
    const { courses, terms } = assembler.addCourses(await r.courses());
    yield* chunks('academicSessions', terms, BATCH);
    yield* chunks('courses', courses, BATCH);
    yield* chunks('classes', assembler.addSections(await r.sections()), BATCH);
    progress();
    for await (const batch of r.enrollments(BATCH)) {
      progress();
      const enrollments = assembler.addEnrollments(batch);
      if (enrollments.length) yield { kind: 'enrollments', records: enrollments };
    }
    // Users last: a Canvas user's role and schools come from their enrollments (roster.ts).
    for await (const batch of r.users(BATCH)) {
      progress();
      const users = batch.map((u) => assembler.user(u)).filter((u) => u !== null);
      if (users.length) yield { kind: 'users', records: users };
    }
    progress();
    if (r.quarantined.length) yield { kind: 'quarantine', records: r.quarantined };
  }

  /**
   * The REST path. `took` is told the digest of every page as the assembler
   * takes it in, before the batches mapped with it are handed on: course
   * lists are read a few at a time but taken in the listing's order, so the
   * same pages make the same batches.
   */
  private async *fromRest(
    http: ProviderHttpClient, districtId: string, assembler: RosterAssembler,
    progress: (resource: string) => (n: number) => void, quarantined: QuarantinedRecord[], took: (digest: bigint | undefined) => void,
  ): AsyncIterable<SnapshotBatch> {
    const courseIds: string[] = [];
    for await (const page of walk(http, `/accounts/${districtId}/courses?${COURSE_QUERY}`, CanvasCourse, 'courses', { kind: 'courses' }, progress('courses'))) {
      for (const c of page) {
        took(c.digest);
        quarantined.push(...c.bad);
        const read = c.ok.map(restCourse);
        for (const [i, r] of read.entries()) if ('reason' in r) quarantined.push({ kind: 'courses', sourcedId: c.ok[i]!.id, reason: r.reason });
        const ok = read.filter((r) => 'course' in r);
        assembler.addTerms(ok.flatMap((r) => (r.term ? [r.term] : [])));
        const { courses, terms } = assembler.addCourses(ok.map((r) => r.course));
        courseIds.push(...courses.map((x) => x.sourcedId));
        if (terms.length) yield { kind: 'academicSessions', records: terms };
        if (courses.length) yield { kind: 'courses', records: courses };
      }
    }

    // Sections and enrollments per course, a few courses at a time (a per-section walk would cost a request per section).
    const readCourse = async (courseId: string) => {
      const sections: CanvasSectionRecord[] = [];
      const enrollments: CanvasEnrollmentRecord[] = [];
      const bad: QuarantinedRecord[] = [];
      // The course's pages (their URLs name it), and whether it was gone.
      let digest: bigint | undefined = digestOfText(courseId);
      const fold = (d: bigint | undefined) => { digest = foldKnown(digest, d); };
      try {
        for await (const page of walk(http, `/courses/${courseId}/sections?per_page=${PER_PAGE}`, CanvasSection, 'sections', { kind: 'classes', refs: (raw) => ({ classes: raw.id ? [String(raw.id)] : [] }) }, progress('sections'))) {
          for (const c of page) { fold(c.digest); sections.push(...c.ok.map(restSection)); bad.push(...c.bad); }
        }
        for await (const page of walk(http, `/courses/${courseId}/enrollments?${ENROLLMENT_QUERY}`, CanvasEnrollment, 'enrollments', { kind: 'enrollments', refs: enrollmentRefs }, progress('enrollments'))) {
          for (const c of page) {
            fold(c.digest);
            bad.push(...c.bad);
            for (const e of c.ok) {
              const r = restEnrollment(e);
              if ('reason' in r) bad.push({ kind: 'enrollments', sourcedId: e.id, reason: r.reason, refs: { users: [e.user_id], classes: [e.course_section_id] } });
              else enrollments.push(r);
            }
          }
        }
      } catch (err) {
        // A course deleted between the listing and this read answers 404: it has nothing left on the roster.
        if (!(err instanceof ProviderError && err.kind === 'not-found')) throw err;
        fold(digestOfText('not found'));
      }
      return { sections, enrollments, bad, digest };
    };
    for await (const course of inOrder(courseIds, this.options.courseConcurrency ?? 2, readCourse)) {
      took(course.digest);
      quarantined.push(...course.bad);
      const classes = assembler.addSections(course.sections);
      if (classes.length) yield { kind: 'classes', records: classes };
      const enrollments = assembler.addEnrollments(course.enrollments);
      if (enrollments.length) yield { kind: 'enrollments', records: enrollments };
    }

    for await (const page of walk(http, `/accounts/${districtId}/users?include[]=email&per_page=${PER_PAGE}`, CanvasUser, 'users', { kind: 'users', refs: userRefs }, progress('users'))) {
      for (const c of page) {
        took(c.digest);
        quarantined.push(...c.bad);
        const users = c.ok.map((u) => assembler.user(restUser(u))).filter((u) => u !== null);
        if (users.length) yield { kind: 'users', records: users };
      }
    }
  }

  /**
   * Starts the provisioning report, polls it and downloads it. Anything that
   * keeps it from being used (no permission to run reports, no reports plugin,
   * a failed or endless report, an unreadable file) falls back to REST; only a
   * refused token fails at once, since REST would be refused as well.
   */
  private async tryReport(
    http: ProviderHttpClient, districtId: string, pacer: RateLimitPacer, throttleWaitMs: number,
    signal: AbortSignal | undefined, countPost: () => void, run: CanvasRunInfo,
  ): Promise<{ report: ProvisioningReport; digest: bigint | undefined } | { fallback: string }> {
    const s = this.settings;
    const reportsUrl = http.resolve(`/accounts/${districtId}/reports/provisioning_csv`);
    const mustFail = (err: unknown) => signal?.aborted || (err instanceof CanvasRefusalError && err.refusal === 'token');
    try {
      const created = await postForm(reportParameters(), CanvasReport, {
        url: reportsUrl,
        headers: async () => {
          countPost();
          await pacer.beforeRequest();
          return { Authorization: `Bearer ${s.credentials.token}`, Accept: ACCEPT };
        },
        classify: (raw) => classifyCanvas(raw, throttleWaitMs),
        onResponse: (h) => pacer.observe(h),
        timeoutMs: s.timeoutMs ?? 30000,
        retries: s.retries ?? 6,
        minRetryDelayMs: s.minRetryDelayMs ?? 500,
        signal,
      });
      const pollMs = this.options.reportPollMs ?? Math.min(5000, Math.max(20, (s.minRetryDelayMs ?? 500) * 4));
      const done = await awaitReport({
        pollMs,
        firstPollMs: Math.min(pollMs, this.options.reportFirstPollMs ?? 250),
        maxWaitMs: this.options.reportMaxWaitMs ?? 30 * 60_000,
        signal,
        status: async () => {
          run.reportPolls += 1;
          const { body } = await http.getJson(`${reportsUrl}/${created.id}`, CanvasReport);
          return { status: body.status, progress: body.progress ?? null, url: body.attachment?.url ?? body.file_url ?? null };
        },
      });
      if ('failed' in done) return { fallback: done.failed };
      const { body } = await http.getBytes(done.url);
      return { report: ProvisioningReport.open(body), digest: await zipContentDigest(body) };
    } catch (err) {
      if (mustFail(err)) throw err;
      return { fallback: (err as Error).message };
    }
  }
}
