import type { AcademicSession, Course, Enrollment, Org, Role, RosterClass, User } from '../../src/domain/model.js';
import type { OrAcademicSession, OrClass, OrCourse, OrEnrollment, OrOrg, OrRole, OrUser } from './wire.js';

/** A date-time compares by its calendar date, so a no-op resync writes nothing. */
export const calendarDate = (d: string | null | undefined): string | null => (d ? d.slice(0, 10) : null);

/** The day before a YYYY-MM-DD date. */
function dayBefore(date: string): string {
  const t = new Date(`${date}T00:00:00Z`);
  t.setUTCDate(t.getUTCDate() - 1);
  return t.toISOString().slice(0, 10);
}

/**
 * The last day an exclusive end date still includes. OneRoster defines an
 * enrollment's endDate as exclusive in 1.1 (Enrollment: "The end date for
 * the enrollment (exclusive)") and in 1.2 (Rostering Service, EnrollmentDType.endDate,
 * same words); the canonical model keeps the last day enrolled (a membership has
 * ended once that day is past). A date-time ending after midnight still includes
 * its own day.
 */
export function lastDayOfExclusiveEnd(end: string | null | undefined): string | null {
  const date = calendarDate(end);
  if (!date || !end) return null;
  const time = end.slice(11);
  const atMidnight = time === '' || /^00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?$/.test(time);
  return atMidnight ? dayBefore(date) : date;
}

/** Whether an exclusive-ended span [begin, end) covers the day asOf. */
export function coversDay(begin: string | null | undefined, end: string | null | undefined, asOf: string): boolean {
  const first = calendarDate(begin);
  const last = lastDayOfExclusiveEnd(end);
  return (first === null || first <= asOf) && (last === null || asOf <= last);
}

const ROLE_RANK: Record<Role, number> = { teacher: 3, administrator: 2, student: 1 };

/**
 * Roles the platform rosters. Guardians, parents, relatives, aides, proctors and
 * counselors are not accounts here. District, site and system administrators
 * (1.2) and 1.1's administrator are `administrator` accounts, which never hold a
 * seat: the same rule as Clever's district_admin.
 * Role values are matched without regard to case (tenants send "Teacher").
 */
export function canonicalRole(role: string | null | undefined): Role | null {
  switch (role?.trim().toLowerCase()) {
    case 'student': return 'student';
    case 'teacher': return 'teacher';
    case 'administrator': case 'districtadministrator': case 'siteadministrator': case 'systemadministrator': case 'principal':
      return 'administrator';
    default: return null;
  }
}

/**
 * The org tree of a district, to tell schools from other orgs. Only orgs of
 * type `school` are schools; departments (and any other sub-org) roll up to
 * the school above them (OneRoster OrgType: department, school, district,
 * local, state, national; `parent` links a sub-org to its parent).
 */
export class OrgTree {
  private readonly orgs = new Map<string, { type: string; parent: string | null }>();

  add(o: OrOrg): void {
    this.orgs.set(o.sourcedId, { type: o.type.trim().toLowerCase(), parent: o.parent?.sourcedId ?? null });
  }

  /** The school (or district) an org reference stands for; an org we never saw is taken as given. */
  resolve(sourcedId: string): string {
    let id = sourcedId;
    for (let depth = 0; depth < 16; depth += 1) {
      const org = this.orgs.get(id);
      if (!org || org.type === 'school' || org.type === 'district') return id;
      if (!org.parent) return id;
      id = org.parent;
    }
    return sourcedId;
  }
}

export function mapOrg(o: OrOrg): Org | null {
  const type = o.type.trim().toLowerCase();
  if (type !== 'school' && type !== 'district') return null;
  return { sourcedId: o.sourcedId, name: o.name ?? '', type, identifier: o.identifier ?? null, status: o.status };
}

export function mapSession(s: OrAcademicSession): AcademicSession {
  // Session dates are kept as the provider wrote them (by date): they are shown, never used to end a membership.
  return { sourcedId: s.sourcedId, title: s.title, startDate: calendarDate(s.startDate), endDate: calendarDate(s.endDate), status: s.status };
}

export function mapCourse(c: OrCourse): Course {
  return { sourcedId: c.sourcedId, title: c.title, courseCode: c.courseCode ?? null, status: c.status };
}

export function mapClass(c: OrClass, orgs: OrgTree): RosterClass {
  return {
    sourcedId: c.sourcedId, title: c.title, classCode: c.classCode ?? null, courseSourcedId: c.course?.sourcedId ?? null,
    schoolSourcedId: orgs.resolve(c.school.sourcedId), termSourcedIds: (c.terms ?? []).map((t) => t.sourcedId), grades: c.grades, status: c.status,
  };
}

/**
 * The account role of a user and the schools that come with it. 1.2 lists one
 * role per org; `roleType: primary` is per org, so neither it nor the list's
 * order says which role the account takes. The role that lets them teach wins
 * (teacher > administrator > student), counting only roles current on asOf, and
 * the user's schools are the orgs of the roles that make that account role (a
 * student's aide role elsewhere gives no school). When every rostered role has
 * ended the user is mapped as tobedeleted, so even a delta carries the
 * departure; roles that have not begun yet make no account. 1.1 has one role
 * and orgs[].
 */
function accountRole(u: OrUser, asOf: string, orgs: OrgTree): { role: Role; orgSourcedIds: string[]; ended: boolean } | null {
  if (u.roles?.length) {
    const rostered = u.roles
      .map((r: OrRole) => ({ role: canonicalRole(r.role), org: r.org?.sourcedId ?? null, span: r }))
      .filter((r): r is { role: Role; org: string | null; span: OrRole } => r.role !== null);
    const current = rostered.filter((r) => coversDay(r.span.beginDate, r.span.endDate, asOf));
    // Every rostered role has ended: they leave (said out loud, so a delta carries it too).
    const past = rostered.filter((r) => { const last = lastDayOfExclusiveEnd(r.span.endDate); return last !== null && last < asOf; });
    const counted = current.length ? current : past.length === rostered.length ? past : [];
    if (!counted.length) return null;
    const role = counted.reduce((best, r) => (ROLE_RANK[r.role] > ROLE_RANK[best] ? r.role : best), counted[0]!.role);
    const schools = counted.filter((r) => r.role === role && r.org !== null).map((r) => orgs.resolve(r.org!));
    return { role, orgSourcedIds: [...new Set(schools)].sort(), ended: !current.length };
  }
  const role = canonicalRole(u.role);
  if (!role) return null;
  return { role, orgSourcedIds: [...new Set((u.orgs ?? []).map((o) => orgs.resolve(o.sourcedId)))].sort(), ended: false };
}

export function mapUser(u: OrUser, asOf: string, orgs: OrgTree = new OrgTree()): User | null {
  const account = accountRole(u, asOf, orgs);
  if (!account) return null;
  return {
    sourcedId: u.sourcedId, role: account.role, givenName: u.givenName, familyName: u.familyName, email: u.email ?? null,
    username: u.username ?? u.email ?? null, sisId: u.identifier ?? null, grades: u.grades, orgSourcedIds: account.orgSourcedIds,
    enabled: u.enabledUser, status: account.ended ? 'tobedeleted' : u.status,
  };
}

export function mapEnrollment(e: OrEnrollment): Enrollment | null {
  const role = canonicalRole(e.role);
  if (role !== 'student' && role !== 'teacher') return null;
  return {
    userSourcedId: e.user.sourcedId, classSourcedId: e.class.sourcedId, role,
    beginDate: calendarDate(e.beginDate), endDate: lastDayOfExclusiveEnd(e.endDate), status: e.status,
  };
}
