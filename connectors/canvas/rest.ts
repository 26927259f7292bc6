import type { z } from 'zod';
import type { QuarantinedRecord, RecordKind } from '../../src/domain/model.js';
import type { ProviderHttpClient } from '../http/client.js';
import { itemsOf, PaginationError, pagesAhead } from '../http/pages.js';
import { readRecords, readableId } from '../http/records.js';
import { ArrayPage, type CanvasCourse, type CanvasEnrollment, type CanvasSection, type CanvasUser } from './wire.js';
import {
  courseState, enrollmentKind, enrollmentState,
  type CanvasCourseRecord, type CanvasEnrollmentRecord, type CanvasSectionRecord, type CanvasTermRecord, type CanvasUserRecord,
} from './model.js';

/** Canvas caps per_page at 100 (config/initializers: Api::MAX_PER_PAGE). */
export const PER_PAGE = 100;

/**
 * The rel="next" target of a Canvas Link header (lib/api.rb#build_links):
 * `<…>; rel="current",<…>; rel="next",<…>; rel="first"`. Followed verbatim: the
 * page parameter may be an opaque bookmark ("bookmark:WzE3…"), never computed.
 */
export function nextLink(header: string | undefined, requestUrl: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]+)>\s*;(.*)$/.exec(part);
    if (m && /\brel="?next"?/i.test(m[2]!)) return new URL(m[1]!, requestUrl).toString();
  }
  return undefined;
}

/** A page's records, checked; with the page's digest (page-origin.ts), for a fetch whose batches it tags. */
export interface Checked<T> { ok: T[]; bad: QuarantinedRecord[]; digest?: bigint }

/**
 * Walks a Canvas list endpoint page by page (one page ahead), checking the
 * page is an array and then each record on its own: a record that fails its
 * schema is quarantined, the rest of the page stands.
 */
export function walk<S extends z.ZodType>(
  http: ProviderHttpClient, first: string, record: S, label: string,
  quarantine: { kind: RecordKind; refs?: (raw: Record<string, unknown>) => QuarantinedRecord['refs'] },
  onPage: (n: number) => void,
): AsyncIterable<Checked<z.infer<S>>[]> {
  return itemsOf(pagesAhead(http.resolve(first), async (url) => {
    const { body, headers, digest } = await http.getJson(url, ArrayPage);
    if (body.length > PER_PAGE * 2 + 10) {
      throw new PaginationError(`Canvas ${label}: a page held ${body.length} records where ${PER_PAGE} were asked for; refusing a page that large (provider fault)`);
    }
    const { ok, quarantined: bad } = readRecords(body, record, (rec, why) => {
      const refs = quarantine.refs?.(rec);
      return { kind: quarantine.kind, sourcedId: readableId(rec.id), reason: `${label}: ${why}`, ...(refs ? { refs } : {}) };
    });
    onPage(body.length);
    return { items: [{ ok, bad, digest }], next: nextLink(headers.link, url) };
  }, `Canvas ${label}`, {
    // One item per page (its checked records): a cursor that hands back the same records again is a loop.
    idOf: (c) => (c.ok.length ? `${idOf(c.ok[0])}..${idOf(c.ok[c.ok.length - 1])}#${c.ok.length}` : `empty:${(emptyPages += 1)}`),
  }));
}

let emptyPages = 0;
const idOf = (r: unknown) => String((r as { id?: unknown }).id);

const str = (v: unknown) => (v === undefined || v === null ? undefined : String(v));
export const userRefs = (raw: Record<string, unknown>) => ({ users: [str(raw.id)].filter((x): x is string => !!x) });
export const enrollmentRefs = (raw: Record<string, unknown>) => ({
  users: [str(raw.user_id)].filter((x): x is string => !!x),
  classes: [str(raw.course_section_id)].filter((x): x is string => !!x),
});

// Wire → the shape both paths share (model.ts).

export function restCourse(c: CanvasCourse): { course: CanvasCourseRecord; term: CanvasTermRecord | null } | { reason: string } {
  const state = courseState(c.workflow_state);
  if (!state) return { reason: `unknown course workflow_state '${c.workflow_state}'` };
  // Course dates bound enrollments only when the course restricts to them (as the report prints them).
  const restrict = c.restrict_enrollments_to_course_dates === true;
  return {
    course: {
      id: c.id, name: c.name ?? '', code: c.course_code, accountId: c.account_id, termId: c.enrollment_term_id ?? c.term?.id ?? null, state,
      startAt: restrict ? c.start_at : null, endAt: restrict ? c.end_at : null,
    },
    term: c.term ? { id: c.term.id, name: c.term.name ?? '', startAt: c.term.start_at, endAt: c.term.end_at } : null,
  };
}

export function restSection(s: CanvasSection): CanvasSectionRecord {
  const restrict = s.restrict_enrollments_to_section_dates === true;
  return { id: s.id, courseId: s.course_id, name: s.name ?? '', sisId: s.sis_section_id, startAt: restrict ? s.start_at : null, endAt: restrict ? s.end_at : null, deleted: false };
}

export function restEnrollment(e: CanvasEnrollment): CanvasEnrollmentRecord | { reason: string } {
  const kind = enrollmentKind(e.type);
  const state = enrollmentState(e.enrollment_state);
  if (!kind || !state) return { reason: `unknown enrollment type '${e.type}' or state '${e.enrollment_state}'` };
  return { userId: e.user_id, sectionId: e.course_section_id, courseId: e.course_id, kind, state };
}

export function restUser(u: CanvasUser): CanvasUserRecord {
  return { id: u.id, sortableName: u.sortable_name ?? '', name: u.name ?? '', email: u.email, sisId: u.sis_user_id, loginId: u.login_id };
}
