// The bench's fake Clever server: fixtures/clever/server.ts's wire format and
// control endpoints over a CompactDistrict, each page rendered when it is asked
// for and nothing rendered kept: at a million students its peak RSS is about
// 650 MB (sections pages of ~5 MB of JSON), and 1% churn takes half a second.
// The fixture's server renders and caches every record (448 MB at 200,000
// students) and its churn scans every section for each student it moves.
// Same pages, byte for byte (compact-district-check.ts). Run by clever-serve.ts.
import type http from 'node:http';
import { FakeProviderServer, type Reply } from '../../fixtures/fake-server.js';
import type { GenPerson } from '../../fixtures/district.js';
import { CompactDistrict } from './compact-district.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10000;
const CREATED = '2026-08-01T00:00:00.000Z';

/** A sorted listing read by position, so a page is found and rendered without the others. */
interface Listing { length: number; idAt(i: number): string; render(i: number): { id: string } & Record<string, unknown> }

export class CompactCleverServer extends FakeProviderServer {
  constructor(readonly district: CompactDistrict, readonly token = 'DEMO_DISTRICT_TOKEN') {
    super();
  }

  protected override route(req: http.IncomingMessage, url: URL): Reply | null {
    const match = /^\/v3\.0\/(districts|schools|terms|courses|sections|users)$/.exec(url.pathname);
    if (!match) return null;
    if (req.headers.authorization !== `Bearer ${this.token}`) return { status: 401, body: { error: 'Unauthorized' } };
    const resource = match[1]!;
    const limit = url.searchParams.has('limit') ? Number(url.searchParams.get('limit')) : DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) return { status: 400, body: { error: 'limit must be a positive integer' } };
    if (limit > MAX_LIMIT) return { status: 413, body: { error: 'limit must be at most 10000' } };
    const role = url.searchParams.get('role');
    if (resource === 'users' && role && role !== 'student' && role !== 'teacher' && role !== 'staff' && role !== 'district_admin') {
      return { status: 400, body: { error: `unknown role ${role}` } };
    }
    const items = this.listing(resource, role);
    const after = url.searchParams.get('starting_after');
    let start = 0;
    if (after) {
      // Binary search: ids are sorted, and the cursor need not be a live id.
      let lo = 0, hi = items.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (items.idAt(mid) <= after) lo = mid + 1; else hi = mid; }
      start = lo;
    }
    const page: ({ id: string } & Record<string, unknown>)[] = [];
    for (let i = start; i < Math.min(items.length, start + limit); i++) page.push(items.render(i));
    const base = `/v3.0/${resource}`;
    const keep = new URLSearchParams(url.searchParams);
    keep.delete('starting_after');
    const links = [{ rel: 'self', uri: `${base}?${url.searchParams}` }];
    if (start + limit < items.length && page.length) {
      keep.set('starting_after', page[page.length - 1]!.id);
      links.push({ rel: 'next', uri: `${base}?${keep}` });
    }
    return { status: 200, body: { data: page.map((d) => ({ data: d, uri: `${base}/${d.id}` })), links } };
  }

  protected override control(url: URL, body: string): Reply | null {
    if (url.pathname === '/__control/churn') {
      const { pct, seed } = JSON.parse(body) as { pct: number; seed: number };
      return { status: 200, body: this.district.churn(pct, seed) };
    }
    return null;
  }

  private listing(resource: string, role: string | null): Listing {
    const d = this.district;
    const common = { district: d.id, created: CREATED, last_modified: CREATED };
    const of = <T>(list: readonly T[], id: (t: T) => string, render: (t: T) => Record<string, unknown>): Listing =>
      ({ length: list.length, idAt: (i) => id(list[i]!), render: (i) => ({ id: id(list[i]!), ...render(list[i]!) }) });
    switch (resource) {
      case 'districts':
        return of([d], (x) => x.id, (x) => ({ name: x.name, ...common }));
      case 'schools':
        return of(d.schools, (s) => s.id, (s) => ({ ...common, name: s.name, school_number: s.number, sis_id: `SCH${s.number}`, low_grade: s.grades[0], high_grade: s.grades[s.grades.length - 1] }));
      case 'terms':
        return of(d.terms, (t) => t.id, (t) => ({ district: d.id, name: t.name, start_date: t.startDate, end_date: t.endDate }));
      case 'courses':
        return of(d.courses, (c) => c.id, (c) => ({ district: d.id, name: c.name, number: c.number }));
      case 'sections':
        // The bench never flags people or ends memberships: every listed member is listed by Clever.
        return of(d.sections, (s) => s.id, (s) => ({
          ...common, school: d.schools[s.schoolIndex]!.id, course: s.courseId, term_id: s.termId, name: s.name, sis_id: `SEC-${s.sectionNumber}`,
          section_number: s.sectionNumber, grade: s.grade, subject: s.subject, period: s.period,
          teacher: s.teacherIds[0] ?? null, teachers: [...s.teacherIds], students: s.students.map((n) => d.studentId(n)),
        }));
      case 'users': {
        // Students ('a1…') sort before teachers ('a2…'); each kind in number order.
        const students = role === null || role === 'student' ? d.aliveNumbers() : new Int32Array(0);
        const teachers = role === null || role === 'teacher' ? d.teachers : [];
        return {
          length: students.length + teachers.length,
          idAt: (i) => (i < students.length ? d.studentId(students[i]!) : teachers[i - students.length]!.id),
          render: (i) => (i < students.length ? this.user(d.student(students[i]!), 'student') : this.user(teachers[i - students.length]!, 'teacher')),
        };
      }
      default:
        return { length: 0, idAt: () => '', render: () => ({ id: '' }) };
    }
  }

  private user(p: GenPerson, role: 'student' | 'teacher') {
    const roleData = role === 'student'
      ? { student: { school: p.schoolIds[0], schools: p.schoolIds, grade: p.grade, sis_id: p.sisId, student_number: p.sisId, credentials: { district_username: p.username } } }
      : { teacher: { school: p.schoolIds[0], schools: p.schoolIds, sis_id: p.sisId, teacher_number: p.sisId, credentials: { district_username: p.username } } };
    return { id: p.id, district: this.district.id, email: p.email, name: { first: p.first, last: p.last }, roles: roleData, created: CREATED, last_modified: CREATED };
  }
}
