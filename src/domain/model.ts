// The canonical roster model: OneRoster-shaped, provider-neutral. Connectors map
// their provider's records into these; everything downstream speaks only these.

export const PROVIDERS = ['clever', 'classlink', 'canvas', 'schoology'] as const;
export type Provider = (typeof PROVIDERS)[number];

export type Role = 'student' | 'teacher' | 'administrator';
/** OneRoster record status; 'tobedeleted' is treated exactly like a record that disappeared. */
export type RecordStatus = 'active' | 'tobedeleted';

export interface Org {
  sourcedId: string;
  name: string;
  type: 'district' | 'school';
  identifier: string | null;
  status: RecordStatus;
}

export interface AcademicSession {
  sourcedId: string;
  title: string;
  startDate: string | null;
  endDate: string | null;
  status: RecordStatus;
}

export interface Course {
  sourcedId: string;
  title: string;
  courseCode: string | null;
  status: RecordStatus;
}

export interface RosterClass {
  sourcedId: string;
  title: string;
  classCode: string | null;
  courseSourcedId: string | null;
  schoolSourcedId: string | null;
  termSourcedIds: string[];
  grades: string[];
  status: RecordStatus;
}

export interface User {
  sourcedId: string;
  role: Role;
  givenName: string;
  familyName: string;
  email: string | null;
  username: string | null;
  /** The district SIS's id for the person (Clever roles.<role>.sis_id, OneRoster identifier, Canvas sis_user_id, Schoology school_uid). */
  sisId: string | null;
  grades: string[];
  orgSourcedIds: string[];
  enabled: boolean;
  status: RecordStatus;
}

export interface Enrollment {
  userSourcedId: string;
  classSourcedId: string;
  role: Role;
  beginDate: string | null;
  endDate: string | null;
  status: RecordStatus;
}

export interface RecordKinds {
  orgs: Org;
  academicSessions: AcademicSession;
  courses: Course;
  classes: RosterClass;
  users: User;
  enrollments: Enrollment;
}
export type RecordKind = keyof RecordKinds;

/**
 * A provider record that could not be read (it fails the wire schema, or breaks
 * a limit such as the sourcedId's length). It is neither applied nor taken as a
 * departure: the person or entity it names keeps exactly the state it had.
 */
export interface QuarantinedRecord {
  kind: RecordKind;
  /** The record's id as far as it could be read (cut to a printable length), or null. */
  sourcedId: string | null;
  reason: string;
  /** Users and classes the record names, where they could be read: they are left as they were too. */
  refs?: { users?: string[]; classes?: string[] };
  /** The provider sent this sourcedId twice with different content: a provider error, always held for review. */
  conflict?: boolean;
}
export const RECORD_KINDS: RecordKind[] = ['orgs', 'academicSessions', 'courses', 'classes', 'users', 'enrollments'];

/** The key a record is staged and diffed under; enrollments are identified by their (user, class) pair. */
export function recordKey<K extends RecordKind>(kind: K, record: RecordKinds[K]): string {
  if (kind === 'enrollments') {
    const e = record as Enrollment;
    return enrollmentKey(e.userSourcedId, e.classSourcedId);
  }
  return (record as { sourcedId: string }).sourcedId;
}

export function enrollmentKey(userSourcedId: string, classSourcedId: string): string {
  return `${classSourcedId}\u001f${userSourcedId}`;
}

/** Every run counts the same things; extra keys are welcome, these are the contract. */
export interface RunCounts {
  usersCreated: number;
  usersUpdated: number;
  usersDeleted: number;
  usersReactivated: number;
  enrollmentsAdded: number;
  enrollmentsEnded: number;
  seatsAssigned: number;
  seatsReleased: number;
  seatsWaitlisted: number;
  classesCreated: number;
  classesUpdated: number;
  classesRetired: number;
  orgsCreated: number;
  orgsUpdated: number;
  orgsRetired: number;
  /** Provider records that could not be read and were left as they were (see QuarantinedRecord). */
  recordsQuarantined: number;
}

export function zeroCounts(): RunCounts {
  return {
    usersCreated: 0, usersUpdated: 0, usersDeleted: 0, usersReactivated: 0,
    enrollmentsAdded: 0, enrollmentsEnded: 0,
    seatsAssigned: 0, seatsReleased: 0, seatsWaitlisted: 0,
    classesCreated: 0, classesUpdated: 0, classesRetired: 0,
    orgsCreated: 0, orgsUpdated: 0, orgsRetired: 0,
    recordsQuarantined: 0,
  };
}
