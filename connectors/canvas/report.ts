import { setTimeout as sleep } from 'node:timers/promises';
import { unzipSync, strFromU8 } from 'fflate';
import { parse } from 'csv-parse/sync';
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

export interface ReportRoster {
  users: CanvasUserRecord[];
  terms: CanvasTermRecord[];
  courses: CanvasCourseRecord[];
  sections: CanvasSectionRecord[];
  enrollments: CanvasEnrollmentRecord[];
  quarantined: QuarantinedRecord[];
  rows: number;
}

/** Splits the downloaded report into its CSVs, by file name ("users.csv", "enrollments.csv", …). */
export function reportFiles(bytes: Buffer): Partial<Record<Part, string>> {
  const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b;
  if (!isZip) throw new Error('the provisioning report is not a zip (several parts were asked for, so Canvas zips them)');
  const files = unzipSync(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const out: Partial<Record<Part, string>> = {};
  for (const [name, data] of Object.entries(files)) {
    const base = name.split('/').pop()!.toLowerCase();
    const part = REPORT_PARTS.find((p) => base === `${p}.csv` || base.startsWith(`${p}_`) || base.startsWith(`${p}-`));
    if (part) out[part] = strFromU8(data);
  }
  return out;
}

function rows(csv: string | undefined): Record<string, string>[] {
  if (csv === undefined) return [];
  return parse(csv, { columns: true, skip_empty_lines: true, bom: true, relax_column_count: true }) as Record<string, string>[];
}

const issue = (e: z.ZodError) => e.issues.slice(0, 2).map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ');
const idOf = (row: Record<string, string>, col: string) => (row[col] ? String(row[col]).slice(0, 64) : null);

/** Reads the report's CSVs into the shape the REST path produces; a bad row is quarantined, never fatal. */
export function readReport(bytes: Buffer): ReportRoster {
  const files = reportFiles(bytes);
  const missing = REPORT_PARTS.filter((p) => files[p] === undefined);
  if (missing.length) throw new Error(`the provisioning report lacks ${missing.join(', ')}`);
  const out: ReportRoster = { users: [], terms: [], courses: [], sections: [], enrollments: [], quarantined: [], rows: 0 };
  const bad = (kind: QuarantinedRecord['kind'], row: Record<string, string>, col: string, reason: string, refs?: QuarantinedRecord['refs']) =>
    out.quarantined.push({ kind, sourcedId: idOf(row, col), reason: `provisioning report: ${reason}`, ...(refs ? { refs } : {}) });

  for (const row of rows(files.users)) {
    out.rows += 1;
    const r = UserRow.safeParse(row);
    if (!r.success) { bad('users', row, 'canvas_user_id', issue(r.error), row.canvas_user_id ? { users: [row.canvas_user_id] } : undefined); continue; }
    // A deleted login is listed (include_deleted) but not on the account any more: the REST list omits it too.
    if (r.data.status === 'deleted') continue;
    out.users.push({ id: r.data.canvas_user_id, sortableName: r.data.sortable_name, name: r.data.full_name, email: r.data.email, sisId: r.data.user_id, loginId: r.data.login_id });
  }
  for (const row of rows(files.terms)) {
    out.rows += 1;
    const r = TermRow.safeParse(row);
    if (!r.success) { bad('academicSessions', row, 'canvas_term_id', issue(r.error)); continue; }
    out.terms.push({ id: r.data.canvas_term_id, name: r.data.name, startAt: r.data.start_date, endAt: r.data.end_date });
  }
  for (const row of rows(files.courses)) {
    out.rows += 1;
    const r = CourseRow.safeParse(row);
    const state = r.success ? courseState(r.data.status) : null;
    if (!r.success || !state) { bad('courses', row, 'canvas_course_id', r.success ? `unknown course status '${row.status}'` : issue(r.error)); continue; }
    // The report fills start/end only when the course restricts enrollments to its dates.
    out.courses.push({ id: r.data.canvas_course_id, name: r.data.long_name, code: r.data.short_name, accountId: r.data.canvas_account_id, termId: r.data.canvas_term_id || null, state, startAt: r.data.start_date, endAt: r.data.end_date });
  }
  for (const row of rows(files.sections)) {
    out.rows += 1;
    const r = SectionRow.safeParse(row);
    if (!r.success) { bad('classes', row, 'canvas_section_id', issue(r.error), row.canvas_section_id ? { classes: [row.canvas_section_id] } : undefined); continue; }
    out.sections.push({ id: r.data.canvas_section_id, courseId: r.data.canvas_course_id, name: r.data.name, sisId: r.data.section_id, startAt: r.data.start_date, endAt: r.data.end_date, deleted: r.data.status === 'deleted' });
  }
  for (const row of rows(files.enrollments)) {
    out.rows += 1;
    const r = EnrollmentRow.safeParse(row);
    const kind = r.success ? enrollmentKind(r.data.base_role_type ?? r.data.role) : null;
    const state = r.success ? enrollmentState(r.data.status) : null;
    if (!r.success || !kind || !state) {
      const refs = { users: row.canvas_user_id ? [row.canvas_user_id] : [], classes: row.canvas_section_id ? [row.canvas_section_id] : [] };
      bad('enrollments', row, 'canvas_section_id', r.success ? `unknown role '${row.base_role_type ?? row.role}' or status '${row.status}'` : issue(r.error), refs);
      continue;
    }
    out.enrollments.push({ userId: r.data.canvas_user_id, sectionId: r.data.canvas_section_id, courseId: r.data.canvas_course_id, kind, state });
  }
  return out;
}

export interface ReportStatusPoller {
  /** GETs the report's status. */
  status(): Promise<{ status: string; progress: number | null; url: string | null }>;
  pollMs: number;
  maxWaitMs: number;
  signal?: AbortSignal;
}

/** Polls a report until Canvas says it is complete; returns the download URL, or why it is not coming. */
export async function awaitReport(p: ReportStatusPoller): Promise<{ url: string; polls: number } | { failed: string }> {
  const started = Date.now();
  for (let polls = 1; ; polls += 1) {
    const { status, url } = await p.status();
    if (status === 'complete') return url ? { url, polls } : { failed: 'the report completed without a file' };
    if (status === 'error' || status === 'aborted' || status === 'deleted') return { failed: `the report ended with status '${status}'` };
    if (Date.now() - started > p.maxWaitMs) return { failed: `the report was still '${status}' after ${Math.round(p.maxWaitMs / 1000)} s` };
    await sleep(p.pollMs, undefined, { signal: p.signal });
  }
}
