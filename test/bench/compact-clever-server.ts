// The bench's fake Clever server: fixtures/clever/server.ts's wire format and
// control endpoints over a CompactDistrict, each page rendered when it is asked
// for and nothing rendered kept: at a million students its peak RSS is about
// 650 MB (sections pages of ~5 MB of JSON), and 1% churn takes half a second.
// The fixture's server renders and caches every record (448 MB at 200,000
// students) and its churn scans every section for each student it moves.
// Same pages, byte for byte (compact-district-check.ts). Run by clever-serve.ts.
import type http from 'node:http';
import { FakeProviderServer, type Reply } from '../../fixtures/fake-server.js';
import { CREATED, cleverListRequest, cleverUser, type CleverListing as Listing } from '../../fixtures/clever/list-request.js';
import { CompactDistrict } from './compact-district.js';

export class CompactCleverServer extends FakeProviderServer {
  constructor(readonly district: CompactDistrict, readonly token = 'DEMO_DISTRICT_TOKEN') {
    super();
  }

  protected override route(req: http.IncomingMessage, url: URL): Reply | null {
    return cleverListRequest(req, url, this.token, (resource, role) => this.listing(resource, role));
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
          render: (i) => (i < students.length ? cleverUser(d.id, d.student(students[i]!), 'student') : cleverUser(d.id, teachers[i - students.length]!, 'teacher')),
        };
      }
      default:
        return { length: 0, idAt: () => '', render: () => ({ id: '' }) };
    }
  }
}
