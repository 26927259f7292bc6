import type { AcademicSession, Course, Enrollment, Org, RecordStatus, Role, RosterClass, User } from '../../src/domain/model.js';
import type { OrAcademicSession, OrClass, OrCourse, OrEnrollment, OrOrg, OrUser } from './wire.js';

const status = (s: string): RecordStatus => (s === 'active' ? 'active' : 'tobedeleted');
/** OneRoster dates may carry a time part; the roster model keeps the calendar date. */
const date = (d: string | null | undefined) => (d ? d.slice(0, 10) : null);

/** Roles the platform rosters; guardians, aides and the like are not accounts here. */
export function canonicalRole(role: string | null | undefined): Role | null {
  switch (role) {
    case 'student': return 'student';
    case 'teacher': return 'teacher';
    case 'administrator': case 'districtAdministrator': case 'siteAdministrator': case 'systemAdministrator': case 'principal':
      return 'administrator';
    default: return null;
  }
}

export function mapOrg(o: OrOrg): Org {
  return { sourcedId: o.sourcedId, name: o.name, type: o.type === 'district' ? 'district' : 'school', identifier: o.identifier ?? null, status: status(o.status) };
}

export function mapSession(s: OrAcademicSession): AcademicSession {
  return { sourcedId: s.sourcedId, title: s.title, startDate: date(s.startDate), endDate: date(s.endDate), status: status(s.status) };
}

export function mapCourse(c: OrCourse): Course {
  return { sourcedId: c.sourcedId, title: c.title, courseCode: c.courseCode ?? null, status: status(c.status) };
}

export function mapClass(c: OrClass): RosterClass {
  return {
    sourcedId: c.sourcedId, title: c.title, classCode: c.classCode ?? null, courseSourcedId: c.course?.sourcedId ?? null,
    schoolSourcedId: c.school.sourcedId, termSourcedIds: (c.terms ?? []).map((t) => t.sourcedId), grades: c.grades ?? [], status: status(c.status),
  };
}

export function mapUser(u: OrUser): User | null {
  // 1.2: the primary entry of roles[]; 1.1: the single role field.
  const primary = u.roles?.find((r) => r.roleType === 'primary') ?? u.roles?.[0];
  const role = canonicalRole(primary?.role ?? u.role);
  if (!role) return null;
  const orgs = u.roles?.length ? u.roles.flatMap((r) => (r.org ? [r.org.sourcedId] : [])) : (u.orgs ?? []).map((o) => o.sourcedId);
  return {
    sourcedId: u.sourcedId, role, givenName: u.givenName, familyName: u.familyName, email: u.email ?? null,
    username: u.username ?? u.email ?? null, grades: u.grades ?? [], orgSourcedIds: [...new Set(orgs)],
    enabled: u.enabledUser === true || u.enabledUser === 'true', status: status(u.status),
  };
}

export function mapEnrollment(e: OrEnrollment): Enrollment | null {
  const role = canonicalRole(e.role);
  if (role !== 'student' && role !== 'teacher') return null;
  return {
    userSourcedId: e.user.sourcedId, classSourcedId: e.class.sourcedId, role,
    beginDate: date(e.beginDate), endDate: date(e.endDate), status: status(e.status),
  };
}
