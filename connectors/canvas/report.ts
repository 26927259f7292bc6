import { setTimeout as sleep } from 'node:timers/promises';
import { Readable, pipeline } from 'node:stream';
import { Unzip, UnzipInflate, unzipSync } from 'fflate';
import { parse } from 'csv-parse';
import { z } from 'zod';
import type { QuarantinedRecord } from '../../src/domain/model.js';
import { CanvasId } from './wire.js';
import {
  courseState, enrollmentKind, enrollmentState,
  type CanvasCourseRecord, type CanvasEnrollmentRecord, type CanvasSectionRecord, type CanvasTermRecord, type CanvasUserRecord,
} from './model.js';

// The provisioning report (gems/plugins/account_reports/lib/account_reports/sis_exporter.rb):
// POST /api/v1/accounts/:id/reports/provisioning_csv with parameters[users]=true, …;
// poll GET /api/v1/accounts/:id/reports/provisioning_csv/:report_id until status
// 'complete'; download attachment.url: a zip of one CSV per part when several
// parts are asked for. Its canvas_* columns are the REST ids, so both paths
// produce the same sourcedIds. Statuses as the report writes them:
// courses unpublished|active|concluded|deleted, enrollments
// invited|active|concluded|inactive|deleted|rejected, users active|deleted.

export const REPORT_PARTS = ['users', 'terms', 'courses', 'sections', 'enrollments'] as const;
type Part = (typeof REPORT_PARTS)[number];

export function reportParameters(): URLSearchParams {
  const form = new URLSearchParams();
  for (const part of REPORT_PARTS) form.set(`parameters[${part}]`, 'true');
  // Deleted enrollments (a deleted course's, a removed user's) are read and mapped, not inferred.
  form.set('parameters[include_deleted]', 'true');
  return form;
}

const Cell = z.string().nullish().transform((v) => (v === undefined || v === null || v === '' ? null : v));
const Name = z.string().nullish().transform((v) => v ?? '');

const UserRow = z.object({ canvas_user_id: CanvasId, user_id: Cell, login_id: Cell, full_name: Name, sortable_name: Name, email: Cell, status: z.string() });
const TermRow = z.object({ canvas_term_id: CanvasId, name: Name, start_date: Cell, end_date: Cell });
const CourseRow = z.object({ canvas_course_id: CanvasId, short_name: Cell, long_name: Name, canvas_account_id: CanvasId, canvas_term_id: CanvasId.nullish().or(z.literal('')), status: z.string(), start_date: Cell, end_date: Cell });
const SectionRow = z.object({ canvas_section_id: CanvasId, section_id: Cell, canvas_course_id: CanvasId, name: Name, status: z.string(), start_date: Cell, end_date: Cell });
const EnrollmentRow = z.object({ canvas_user_id: CanvasId, canvas_section_id: CanvasId, canvas_course_id: CanvasId, role: z.string(), base_role_type: Cell.optional(), status: z.string() });

/** A row as csv-parse hands it over (columns: false): cells by position, looked up through the header. */
type Cells = string[];
/** Column name → position, from a file's header row. */
type Header = Map<string, number>;
/** The named columns of one row, as an object: only these are ever built (a report row has 13–15 columns). */
const pick = (header: Header, cells: Cells, cols: readonly string[]): Record<string, string | undefined> => {
  const out: Record<string, string | undefined> = {};
  for (const c of cols) { const i = header.get(c); out[c] = i === undefined ? undefined : cells[i]; }
  return out;
};

/** How far the zip is pushed into the inflater at a time: bounds what is inflated but not yet parsed. */
const ZIP_SLICE = 64 * 1024;

/**
 * The inflated bytes of one report part, a slice at a time. fflate's streaming
 * Unzip (https://github.com/101arrowz/fflate#usage, "Unzip"/"UnzipInflate") calls
 * ondata synchronously during push(), so pushing the zip a slice at a time and
 * handing out what that slice inflated keeps only a slice or so in memory.
 * Files not start()ed are skipped without inflating them.
 */
function* inflatedPart(zip: Uint8Array, part: Part, expectedBytes: number): Generator<Uint8Array> {
  const pending: Uint8Array[] = [];
  let failure: Error | null = null;
  let inflated = 0;
  let ended = false;
  const unzip = new Unzip((file) => {
    if (partOf(file.name) !== part) return;
    file.ondata = (err, data, final) => {
      if (err) failure = err;
      else {
        inflated += data.length;
        if (data.length) pending.push(data);
        if (final) ended = true;
      }
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  for (let at = 0; at < zip.length; at += ZIP_SLICE) {
    unzip.push(zip.subarray(at, at + ZIP_SLICE), at + ZIP_SLICE >= zip.length);
    if (failure) throw failure;
    while (pending.length) yield pending.shift()!;
  }
  // Streaming inflate checks no CRC: a part cut short or corrupted could
  // silently lose rows, and missing people would look like leavers. The size
  // the zip's central directory records is the check.
  if (!ended || inflated !== expectedBytes) {
    throw new Error(`the provisioning report's ${part} part is damaged (inflated ${inflated} bytes${ended ? '' : ', never finished'}, the zip says ${expectedBytes})`);
  }
}

/**
 * One part's rows, parsed as they are inflated (csv-parse's stream API,
 * https://csv.js.org/parse/api/stream/): arrays of cells, the header row first.
 * Async iteration gives backpressure: the inflater is pulled only as fast as
 * rows are used.
 */
async function* partRows(zip: Uint8Array, part: Part, expectedBytes: number): AsyncGenerator<Cells> {
  const parser = parse({ bom: true, skip_empty_lines: true, relax_column_count: true });
  pipeline(Readable.from(inflatedPart(zip, part, expectedBytes)), parser, () => { /* errors reach the iteration below */ });
  for await (const cells of parser as AsyncIterable<Cells>) yield cells;
}

const partOf = (name: string): Part | undefined => {
  const base = name.split('/').pop()!.toLowerCase();
  return REPORT_PARTS.find((p) => base === `${p}.csv` || base.startsWith(`${p}_`) || base.startsWith(`${p}-`));
};

const issue = (e: z.ZodError) => e.issues.slice(0, 2).map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ');
const idOf = (row: Record<string, string | undefined>, col: string) => (row[col] ? String(row[col]).slice(0, 64) : null);

const USER_COLS = Object.keys(UserRow.shape);
const TERM_COLS = Object.keys(TermRow.shape);
const COURSE_COLS = Object.keys(CourseRow.shape);
const SECTION_COLS = Object.keys(SectionRow.shape);
const ENROLLMENT_COLS = Object.keys(EnrollmentRow.shape);

/**
 * The downloaded provisioning report, read one part at a time and one row at a
 * time, each row reduced to its small record (model.ts) as it is parsed: the
 * report is never held inflated, as text or as rows. Parts can be read in any
 * order (the zip is kept; it is a tenth of what it inflates to), so the
 * connector reads them in the order the assembler needs: terms, courses and
 * sections whole (small), then enrollments and users in batches. A bad row is
 * quarantined, never fatal.
 */
export class ProvisioningReport {
  readonly quarantined: QuarantinedRecord[] = [];
  /** Rows read so far, over every part. */
  rows = 0;

  private constructor(private readonly zip: Uint8Array, private readonly sizes: ReadonlyMap<Part, number>) {}

  /** Checks that the download is the zip Canvas makes of several parts and that every part is in it; nothing is inflated yet. */
  static open(bytes: Buffer): ProvisioningReport {
    const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b;
    if (!isZip) throw new Error('the provisioning report is not a zip (several parts were asked for, so Canvas zips them)');
    const zip = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const sizes = new Map<Part, number>();
    // The filter sees every entry of the central directory; refusing them all lists the names (and sizes) without inflating anything.
    unzipSync(zip, { filter: (f) => { const p = partOf(f.name); if (p) sizes.set(p, f.originalSize); return false; } });
    const missing = REPORT_PARTS.filter((p) => !sizes.has(p));
    if (missing.length) throw new Error(`the provisioning report lacks ${missing.join(', ')}`);
    return new ProvisioningReport(zip, sizes);
  }

  private bad(kind: QuarantinedRecord['kind'], row: Record<string, string | undefined>, col: string, reason: string, refs?: QuarantinedRecord['refs']): null {
    this.quarantined.push({ kind, sourcedId: idOf(row, col), reason: `provisioning report: ${reason}`, ...(refs ? { refs } : {}) });
    return null;
  }

  /** A part's rows mapped by `read` (null: skipped or quarantined), in batches of at most `size`. */
  private async *records<T>(part: Part, cols: readonly string[], read: (row: Record<string, string | undefined>) => T | null, size: number): AsyncGenerator<T[]> {
    let header: Header | null = null;
    let batch: T[] = [];
    for await (const cells of partRows(this.zip, part, this.sizes.get(part)!)) {
      if (!header) { header = new Map(cells.map((name, i) => [name.trim(), i])); continue; }
      this.rows += 1;
      const record = read(pick(header, cells, cols));
      if (record === null) continue;
      batch.push(record);
      if (batch.length >= size) { yield batch; batch = []; }
    }
    if (batch.length) yield batch;
  }

  private async all<T>(batches: AsyncGenerator<T[]>): Promise<T[]> {
    const out: T[] = [];
    for await (const b of batches) for (const r of b) out.push(r);
    return out;
  }

  terms(): Promise<CanvasTermRecord[]> {
    return this.all(this.records('terms', TERM_COLS, (row) => {
      const r = TermRow.safeParse(row);
      if (!r.success) return this.bad('academicSessions', row, 'canvas_term_id', issue(r.error));
      return { id: r.data.canvas_term_id, name: r.data.name, startAt: r.data.start_date, endAt: r.data.end_date };
    }, 1000));
  }

  courses(): Promise<CanvasCourseRecord[]> {
    return this.all(this.records('courses', COURSE_COLS, (row) => {
      const r = CourseRow.safeParse(row);
      const state = r.success ? courseState(r.data.status) : null;
      if (!r.success || !state) return this.bad('courses', row, 'canvas_course_id', r.success ? `unknown course status '${row.status}'` : issue(r.error));
      // The report fills start/end only when the course restricts enrollments to its dates.
      return { id: r.data.canvas_course_id, name: r.data.long_name, code: r.data.short_name, accountId: r.data.canvas_account_id, termId: r.data.canvas_term_id || null, state, startAt: r.data.start_date, endAt: r.data.end_date };
    }, 1000));
  }

  sections(): Promise<CanvasSectionRecord[]> {
    return this.all(this.records('sections', SECTION_COLS, (row) => {
      const r = SectionRow.safeParse(row);
      if (!r.success) return this.bad('classes', row, 'canvas_section_id', issue(r.error), row.canvas_section_id ? { classes: [row.canvas_section_id] } : undefined);
      return { id: r.data.canvas_section_id, courseId: r.data.canvas_course_id, name: r.data.name, sisId: r.data.section_id, startAt: r.data.start_date, endAt: r.data.end_date, deleted: r.data.status === 'deleted' };
    }, 1000));
  }

  enrollments(size: number): AsyncGenerator<CanvasEnrollmentRecord[]> {
    return this.records('enrollments', ENROLLMENT_COLS, (row) => {
      const r = EnrollmentRow.safeParse(row);
      const kind = r.success ? enrollmentKind(r.data.base_role_type ?? r.data.role) : null;
      const state = r.success ? enrollmentState(r.data.status) : null;
      if (!r.success || !kind || !state) {
        const refs = { users: row.canvas_user_id ? [row.canvas_user_id] : [], classes: row.canvas_section_id ? [row.canvas_section_id] : [] };
        return this.bad('enrollments', row, 'canvas_section_id', r.success ? `unknown role '${row.base_role_type ?? row.role}' or status '${row.status}'` : issue(r.error), refs);
      }
      return { userId: r.data.canvas_user_id, sectionId: r.data.canvas_section_id, courseId: r.data.canvas_course_id, kind, state };
    }, size);
  }

  users(size: number): AsyncGenerator<CanvasUserRecord[]> {
    return this.records('users', USER_COLS, (row) => {
      const r = UserRow.safeParse(row);
      if (!r.success) return this.bad('users', row, 'canvas_user_id', issue(r.error), row.canvas_user_id ? { users: [row.canvas_user_id] } : undefined);
      // A deleted login is listed (include_deleted) but not on the account any more: the REST list omits it too.
      if (r.data.status === 'deleted') return null;
      return { id: r.data.canvas_user_id, sortableName: r.data.sortable_name, name: r.data.full_name, email: r.data.email, sisId: r.data.user_id, loginId: r.data.login_id };
    }, size);
  }
}

export interface ReportRoster {
  users: CanvasUserRecord[];
  terms: CanvasTermRecord[];
  courses: CanvasCourseRecord[];
  sections: CanvasSectionRecord[];
  enrollments: CanvasEnrollmentRecord[];
  quarantined: QuarantinedRecord[];
  rows: number;
}

/** The whole report at once (for tools and the profile; the connector streams it with ProvisioningReport). */
export async function readReport(bytes: Buffer): Promise<ReportRoster> {
  const report = ProvisioningReport.open(bytes);
  const terms = await report.terms();
  const courses = await report.courses();
  const sections = await report.sections();
  const enrollments: CanvasEnrollmentRecord[] = [];
  for await (const b of report.enrollments(10_000)) enrollments.push(...b);
  const users: CanvasUserRecord[] = [];
  for await (const b of report.users(10_000)) users.push(...b);
  return { users, terms, courses, sections, enrollments, quarantined: report.quarantined, rows: report.rows };
}

export interface ReportStatusPoller {
  /** GETs the report's status. */
  status(): Promise<{ status: string; progress: number | null; url: string | null }>;
  /** The longest wait between polls. */
  pollMs: number;
  /** The first wait; doubled after each poll up to pollMs. A small report is ready in well under a second, a large one takes minutes. */
  firstPollMs?: number;
  maxWaitMs: number;
  signal?: AbortSignal;
}

/** Polls a report until Canvas says it is complete; returns the download URL, or why it is not coming. */
export async function awaitReport(p: ReportStatusPoller): Promise<{ url: string; polls: number } | { failed: string }> {
  const started = Date.now();
  let waitMs = Math.min(p.firstPollMs ?? p.pollMs, p.pollMs);
  for (let polls = 1; ; polls += 1) {
    const { status, url } = await p.status();
    if (status === 'complete') return url ? { url, polls } : { failed: 'the report completed without a file' };
    if (status === 'error' || status === 'aborted' || status === 'deleted') return { failed: `the report ended with status '${status}'` };
    if (Date.now() - started > p.maxWaitMs) return { failed: `the report was still '${status}' after ${Math.round(p.maxWaitMs / 1000)} s` };
    await sleep(waitMs, undefined, { signal: p.signal });
    waitMs = Math.min(p.pollMs, waitMs * 2);
  }
}
