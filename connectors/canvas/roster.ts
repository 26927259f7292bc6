import type { AcademicSession, Course, Enrollment, Org, RosterClass, User } from '../../src/domain/model.js';
import {
  ON_ROSTER_STATES,
  type CanvasAccountNode, type CanvasCourseRecord, type CanvasEnrollmentRecord, type CanvasSectionRecord, type CanvasTermRecord, type CanvasUserRecord, type CourseState,
} from './model.js';

/** A calendar day (UTC) from a Canvas ISO 8601 instant: REST sends UTC, the report the account's zone. */
export function dayOf(iso: string | null | undefined): string | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? new Date(t).toISOString().slice(0, 10) : null;
}

/**
 * Given and family name the way Canvas splits them for the provisioning report
 * (User.name_parts(sortable_name, likely_already_surname_first: true)):
 * "Family, Given" → [Given, Family]; without a comma the last word is the family name.
 * REST uses the same rule so both paths agree.
 */
export function nameParts(sortableName: string, name: string): [string, string] {
  const sortable = sortableName.trim();
  const comma = sortable.indexOf(',');
  if (comma >= 0) return [sortable.slice(comma + 1).trim(), sortable.slice(0, comma).trim()];
  const words = (sortable || name).trim().split(/\s+/).filter(Boolean);
  if (words.length <= 1) return [words[0] ?? '', ''];
  return [words.slice(0, -1).join(' '), words[words.length - 1]!];
}

const STUDENT_ON = 1;
const TEACHER_ON = 2;
const STUDENT_ANY = 4;
const TEACHER_ANY = 8;

interface Person { flags: number; schools: Set<string>; schoolsOnRoster: Set<string> }
interface SectionInfo { courseId: string; endDay: string | null; schoolId: string | null }
interface CourseInfo { state: CourseState; schoolId: string | null; endAt: string | null; termId: string | null; name: string }

/**
 * Maps what either path read from Canvas to canonical records, in the order the
 * connector yields them: schools, then courses (with their terms), sections,
 * enrollments, and users last, because a Canvas user's role, schools and
 * whether they are rostered at all come from their enrollments (DESIGN
 * "Canvas and Schoology": Canvas users have no role of their own).
 */
export class RosterAssembler {
  private readonly parentOf = new Map<string, string | null>();
  private readonly terms = new Map<string, CanvasTermRecord>();
  private readonly emittedTerms = new Set<string>();
  private readonly courses = new Map<string, CourseInfo>();
  private readonly sections = new Map<string, SectionInfo & { deleted: boolean }>();
  private readonly people = new Map<string, Person>();
  private readonly emittedUsers = new Set<string>();
  readonly skipped = { sections: 0, enrollments: 0, observers: 0, users: 0 };

  constructor(private readonly districtAccountId: string, private readonly accounts: CanvasAccountNode[]) {
    for (const a of accounts) this.parentOf.set(a.id, a.parentId);
  }

  /** Schools are the sub-accounts directly under the district's account. */
  schools(): Org[] {
    return this.accounts
      .filter((a) => a.parentId === this.districtAccountId && a.id !== this.districtAccountId)
      .map((a) => ({ sourcedId: a.id, name: a.name, type: 'school', identifier: a.sisId, status: 'active' }));
  }

  /** The school a course belongs to: its account, rolled up to the sub-account directly under the district's. */
  schoolOf(accountId: string): string | null {
    let id: string | null | undefined = accountId;
    for (let hops = 0; id && hops < 64; hops += 1) {
      const parent = this.parentOf.get(id);
      if (parent === this.districtAccountId) return id;
      id = parent;
    }
    return null;
  }

  /** Terms known (report: terms.csv; REST: each course's term include); emitted only once a course uses them. */
  addTerms(terms: CanvasTermRecord[]): void {
    for (const t of terms) if (!this.terms.has(t.id)) this.terms.set(t.id, t);
  }

  addCourses(list: CanvasCourseRecord[]): { courses: Course[]; terms: AcademicSession[] } {
    const courses: Course[] = [];
    const terms: AcademicSession[] = [];
    for (const c of list) {
      if (this.courses.has(c.id)) continue;
      this.courses.set(c.id, { state: c.state, schoolId: this.schoolOf(c.accountId), endAt: c.endAt, termId: c.termId, name: c.name });
      courses.push({ sourcedId: c.id, title: c.name, courseCode: c.code, status: c.state === 'deleted' ? 'tobedeleted' : 'active' });
      const term = c.termId ? this.terms.get(c.termId) : undefined;
      if (term && !this.emittedTerms.has(term.id)) {
        this.emittedTerms.add(term.id);
        terms.push({ sourcedId: term.id, title: term.name, startDate: dayOf(term.startAt), endDate: dayOf(term.endAt), status: 'active' });
      }
    }
    return { courses, terms };
  }

  addSections(list: CanvasSectionRecord[]): RosterClass[] {
    const out: RosterClass[] = [];
    for (const s of list) {
      const course = this.courses.get(s.courseId);
      if (!course) {
        // A section of a course outside this district's account (cross-listed in from elsewhere).
        this.skipped.sections += 1;
        continue;
      }
      if (this.sections.has(s.id)) continue;
      // Canvas's precedence: section dates if the section restricts to them, else the course's, else the term's.
      const termEnd = course.termId ? this.terms.get(course.termId)?.endAt ?? null : null;
      const endDay = dayOf(s.endAt ?? course.endAt ?? termEnd);
      this.sections.set(s.id, { courseId: s.courseId, endDay, schoolId: course.schoolId, deleted: s.deleted });
      out.push({
        sourcedId: s.id,
        title: s.name || course.name,
        classCode: s.sisId,
        courseSourcedId: s.courseId,
        schoolSourcedId: course.schoolId,
        termSourcedIds: course.termId ? [course.termId] : [],
        grades: [],
        status: course.state === 'deleted' || s.deleted ? 'tobedeleted' : 'active',
      });
    }
    return out;
  }

  /**
   * One canonical enrollment per Canvas enrollment (the snapshot builder merges
   * copies of one user and section). Ended states are kept as 'tobedeleted'
   * rather than dropped: a user whose every enrollment ended must still be seen
   * with those enrollments to leave (DESIGN: "every enrollment ended").
   */
  addEnrollments(list: CanvasEnrollmentRecord[]): Enrollment[] {
    const out: Enrollment[] = [];
    for (const e of list) {
      if (e.kind === 'observer') {
        this.skipped.observers += 1;
        continue;
      }
      const section = this.sections.get(e.sectionId);
      const course = section ? this.courses.get(section.courseId) : undefined;
      if (!section || !course) {
        this.skipped.enrollments += 1;
        continue;
      }
      const ended = !ON_ROSTER_STATES.has(e.state) || section.deleted || course.state === 'deleted' || course.state === 'completed';
      const student = e.kind === 'student';
      let person = this.people.get(e.userId);
      if (!person) this.people.set(e.userId, (person = { flags: 0, schools: new Set(), schoolsOnRoster: new Set() }));
      person.flags |= (student ? STUDENT_ANY : TEACHER_ANY) | (ended ? 0 : student ? STUDENT_ON : TEACHER_ON);
      if (section.schoolId) (ended ? person.schools : person.schoolsOnRoster).add(section.schoolId);
      out.push({
        userSourcedId: e.userId,
        classSourcedId: e.sectionId,
        role: student ? 'student' : 'teacher',
        beginDate: null,
        endDate: section.endDay,
        status: ended ? 'tobedeleted' : 'active',
      });
    }
    return out;
  }

  /**
   * The canonical user, or null when Canvas gives them no student or teaching
   * enrollment here (observers, admins: not rostered). Role per DESIGN: any
   * StudentEnrollment makes a student, judged on the enrollments still on the
   * roster when there are any (a former student now teaching is a teacher).
   * This is decided here, once per user, so the snapshot builder's
   * teacher-over-student merge never applies to Canvas.
   */
  user(u: CanvasUserRecord): User | null {
    const person = this.people.get(u.id);
    if (!person || this.emittedUsers.has(u.id)) {
      if (!person) this.skipped.users += 1;
      return null;
    }
    this.emittedUsers.add(u.id);
    const onRoster = person.flags & (STUDENT_ON | TEACHER_ON);
    const student = onRoster ? (person.flags & STUDENT_ON) !== 0 : (person.flags & STUDENT_ANY) !== 0;
    const schools = person.schoolsOnRoster.size ? person.schoolsOnRoster : person.schools;
    const [givenName, familyName] = nameParts(u.sortableName, u.name);
    return {
      sourcedId: u.id,
      role: student ? 'student' : 'teacher',
      givenName,
      familyName,
      email: u.email || null,
      username: u.loginId || null,
      sisId: u.sisId || null,
      grades: [],
      orgSourcedIds: [...schools].sort(),
      enabled: true,
      status: 'active',
    };
  }
}
