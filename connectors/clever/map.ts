import type { AcademicSession, Course, Enrollment, Org, RosterClass, User } from '../../src/domain/model.js';
import type { CleverCourse, CleverSchool, CleverSection, CleverTerm, CleverUser } from './wire.js';

// Clever has no enrollment records: membership lives on the section as lists of
// student and teacher ids. Ended memberships simply vanish from those lists.

/** A date-time compares by its calendar date, so a no-op resync writes nothing. */
const calendarDate = (d: string | null | undefined) => (d ? d.slice(0, 10) : null);

export function mapSchool(s: CleverSchool): Org {
  return { sourcedId: s.id, name: s.name, type: 'school', identifier: s.school_number ?? s.sis_id ?? null, status: 'active' };
}

export function mapTerm(t: CleverTerm): AcademicSession {
  return { sourcedId: t.id, title: t.name ?? '', startDate: calendarDate(t.start_date), endDate: calendarDate(t.end_date), status: 'active' };
}

export function mapCourse(c: CleverCourse): Course {
  return { sourcedId: c.id, title: c.name ?? '', courseCode: c.number ?? null, status: 'active' };
}

export function mapSection(s: CleverSection): { cls: RosterClass; enrollments: Enrollment[] } {
  const cls: RosterClass = {
    sourcedId: s.id,
    title: s.name,
    // An empty section number falls back to the SIS id, as a missing one does (wire.ts reads '' as missing).
    classCode: s.section_number ?? s.sis_id ?? null,
    courseSourcedId: s.course ?? null,
    schoolSourcedId: s.school,
    termSourcedIds: s.term_id ? [s.term_id] : [],
    grades: s.grade ? [s.grade] : [],
    status: 'active',
  };
  const teachers = new Set(s.teachers);
  if (s.teacher) teachers.add(s.teacher);
  const enrollments: Enrollment[] = [];
  const member = (userSourcedId: string, role: 'student' | 'teacher'): Enrollment =>
    ({ userSourcedId, classSourcedId: s.id, role, beginDate: null, endDate: null, status: 'active' });
  for (const id of teachers) enrollments.push(member(id, 'teacher'));
  // Someone listed as both teacher and student of one section is its teacher.
  for (const id of new Set(s.students)) if (!teachers.has(id)) enrollments.push(member(id, 'student'));
  return { cls, enrollments };
}

/** The Clever roles we fetch users under (`/users?role=…`), and the account role each makes. */
export const CLEVER_ROLES = { teacher: 'teacher', student: 'student', district_admin: 'administrator' } as const;
export type CleverRole = keyof typeof CLEVER_ROLES;

/**
 * One copy of a user, as listed under one Clever role: that role's schools,
 * grade, SIS id and username. A person with several roles is listed (and
 * mapped) once per role; the snapshot builder merges the copies into one
 * account taking the role that lets them teach (teacher > administrator >
 * student), so which copy arrives last does not matter.
 * Returns null when the record does not carry the role it was listed under.
 */
export function mapUser(u: CleverUser, listedAs: CleverRole): User | null {
  const r = listedAs === 'student' ? u.roles.student : listedAs === 'teacher' ? u.roles.teacher : u.roles.district_admin;
  if (!r) return null;
  // A district admin's scope is the whole district: no schools of their own.
  const school = listedAs === 'student' ? u.roles.student : listedAs === 'teacher' ? u.roles.teacher : null;
  const schools = school?.schools?.length ? school.schools : school?.school ? [school.school] : [];
  const grade = listedAs === 'student' ? u.roles.student?.grade : null;
  return {
    sourcedId: u.id,
    role: CLEVER_ROLES[listedAs],
    givenName: u.name.first ?? '',
    familyName: u.name.last ?? '',
    email: u.email ?? null,
    // An empty username is missing: fall back to the email, as for an absent one.
    username: r.credentials?.district_username ?? u.email ?? null,
    sisId: r.sis_id ?? null,
    grades: grade ? [grade] : [],
    orgSourcedIds: [...new Set(schools)].sort(),
    enabled: true,
    status: 'active',
  };
}
