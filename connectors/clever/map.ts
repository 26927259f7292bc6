import type { AcademicSession, Course, Enrollment, Org, RosterClass, User } from '../../src/domain/model.js';
import type { CleverCourse, CleverSchool, CleverSection, CleverTerm, CleverUser } from './wire.js';

// Clever has no enrollment records: membership lives on the section as lists of
// student and teacher ids. Ended memberships simply vanish from those lists.

export function mapSchool(s: CleverSchool): Org {
  return { sourcedId: s.id, name: s.name, type: 'school', identifier: s.school_number ?? s.sis_id ?? null, status: 'active' };
}

export function mapTerm(t: CleverTerm): AcademicSession {
  return { sourcedId: t.id, title: t.name ?? '', startDate: t.start_date ?? null, endDate: t.end_date ?? null, status: 'active' };
}

export function mapCourse(c: CleverCourse): Course {
  return { sourcedId: c.id, title: c.name ?? '', courseCode: c.number ?? null, status: 'active' };
}

export function mapSection(s: CleverSection): { cls: RosterClass; enrollments: Enrollment[] } {
  const cls: RosterClass = {
    sourcedId: s.id,
    title: s.name,
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
  for (const id of new Set(s.students)) enrollments.push(member(id, 'student'));
  return { cls, enrollments };
}

export function mapUser(u: CleverUser, role: 'student' | 'teacher'): User {
  const r = role === 'student' ? u.roles.student : (u.roles.teacher ?? u.roles.staff);
  const schools = r?.schools?.length ? r.schools : r?.school ? [r.school] : [];
  const grade = role === 'student' ? u.roles.student?.grade : null;
  return {
    sourcedId: u.id,
    role,
    givenName: u.name.first ?? '',
    familyName: u.name.last ?? '',
    email: u.email ?? null,
    username: r?.credentials?.district_username ?? u.email ?? null,
    grades: grade ? [grade] : [],
    orgSourcedIds: [...schools],
    enabled: true,
    status: 'active',
  };
}
