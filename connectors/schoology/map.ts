import type { AcademicSession, Course, Enrollment, Org, RecordStatus, Role, RosterClass, User } from '../../src/domain/model.js';
import type { SgyBuilding, SgyCourse, SgyEnrollment, SgyGradingPeriod, SgyInactiveUser, SgyRole, SgySchool, SgySection, SgyUser } from './wire.js';

// Schoology → canonical model. sourcedIds are Schoology's own ids (DESIGN,
// "Canvas and Schoology"): user = uid, class = section id, course = course id,
// school = building id (the school itself when it has no buildings), term =
// grading period id.

/** What a Schoology role makes a person here; null: not rostered (parents and the like). */
export function roleOf(role: SgyRole): Role | null {
  // `faculty` 1 covers teachers and administrators alike; the title is all that tells them apart.
  if (role.faculty === 1) return /admin/i.test(role.title) ? 'administrator' : 'teacher';
  if (/parent|guardian|observer/i.test(role.title)) return null;
  return 'student';
}

export function mapBuilding(b: SgyBuilding): Org {
  return { sourcedId: b.id, name: b.title, type: 'school', identifier: b.building_code, status: 'active' };
}

/** A school without buildings is its own (only) campus. */
export function mapSchoolAsOrg(s: SgySchool): Org {
  return { sourcedId: s.id, name: s.title, type: 'school', identifier: null, status: 'active' };
}

export function mapGradingPeriod(g: SgyGradingPeriod): AcademicSession {
  return { sourcedId: g.id, title: g.title, startDate: g.start.slice(0, 10), endDate: g.end.slice(0, 10), status: 'active' };
}

export function mapCourse(c: SgyCourse): Course {
  return { sourcedId: c.id, title: c.title, courseCode: c.course_code, status: 'active' };
}

export function mapSection(s: SgySection, course: SgyCourse): RosterClass {
  return {
    sourcedId: s.id,
    title: s.course_title ? `${s.course_title}: ${s.section_title}` : s.section_title,
    classCode: s.section_school_code ?? s.section_code,
    courseSourcedId: course.id,
    // The course's building is the section's campus; sections only name the school.
    schoolSourcedId: course.building_id ?? s.school_id,
    termSourcedIds: s.grading_periods,
    grades: [],
    status: 'active',
  };
}

/**
 * Enrollment `status`: 1 active; 2 expired and 5 archived have ended; 3/4
 * (invite or request pending) are not active yet: returns null, so a pending
 * member is simply not in the class (and holds no seat through it).
 */
export function mapEnrollment(e: SgyEnrollment, sectionId: string): Enrollment | null {
  let status: RecordStatus;
  if (e.status === 1) status = 'active';
  else if (e.status === 2 || e.status === 5) status = 'tobedeleted';
  else return null;
  return { userSourcedId: e.uid, classSourcedId: sectionId, role: e.admin === 1 ? 'teacher' : 'student', beginDate: null, endDate: null, status };
}

export function mapUser(u: SgyUser, role: Role): User {
  const buildings = [u.building_id, ...(u.additional_buildings ?? '').split(',')].map((b) => b?.trim()).filter((b): b is string => !!b && b !== '0');
  return {
    sourcedId: u.uid,
    role,
    givenName: u.name_first_preferred ?? u.name_first,
    familyName: u.name_last,
    email: u.primary_email,
    username: u.username ?? u.primary_email,
    sisId: u.school_uid,
    grades: [],
    orgSourcedIds: [...new Set(buildings)],
    enabled: true,
    status: 'active',
  };
}

/**
 * A user in /users/inactive: Schoology's own "made inactive". It leaves the
 * roster (status tobedeleted); the record carries only what the short inactive
 * listing gives, and the reconciler reads nothing else of a departing user.
 */
export function mapInactiveUser(u: SgyInactiveUser): User {
  const name = (u.name ?? '').trim();
  const cut = name.lastIndexOf(' ');
  return {
    sourcedId: u.uid,
    role: 'student',
    givenName: cut > 0 ? name.slice(0, cut) : name,
    familyName: cut > 0 ? name.slice(cut + 1) : '',
    email: null,
    username: null,
    sisId: u.school_uid,
    grades: [],
    orgSourcedIds: [],
    enabled: false,
    status: 'tobedeleted',
  };
}
