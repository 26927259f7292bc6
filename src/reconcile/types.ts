import type { AcademicSession, Course, Enrollment, Org, QuarantinedRecord, RosterClass, RunCounts, User } from '../domain/model.js';
import type { Pool, SeatChanges } from '../licenses/rules.js';

/** A provider's roster as staged for one run. */
export interface Snapshot {
  /** True when absence means departure (a full snapshot); false for a delta. */
  complete: boolean;
  orgs: Map<string, Org>;
  academicSessions: Map<string, AcademicSession>;
  courses: Map<string, Course>;
  classes: Map<string, RosterClass>;
  users: Map<string, User>;
  /** Keyed by enrollmentKey(user, class). */
  enrollments: Map<string, Enrollment>;
  /**
   * Records that could not be read, or that the provider sent twice with
   * different content: whatever they name keeps the state it had.
   */
  quarantined: QuarantinedRecord[];
}

export interface LocalEntity<T> {
  record: T;
  retired: boolean;
  /** The row's id, so the apply step writes by id rather than looking sourcedIds up again. */
  id?: string;
}

export interface LocalUser {
  record: User;
  id: string;
  deleted: boolean;
}

/** What the platform holds for a district now. */
export interface LocalState {
  orgs: Map<string, LocalEntity<Org>>;
  academicSessions: Map<string, LocalEntity<AcademicSession>>;
  courses: Map<string, LocalEntity<Course>>;
  classes: Map<string, LocalEntity<RosterClass>>;
  users: Map<string, LocalUser>;
  /** Active memberships only, keyed by enrollmentKey(user, class). */
  enrollments: Map<string, Enrollment>;
  pools: Pool[];
  seats: Map<string, Map<string, number>>;
  waitlist: Map<string, Map<string, number>>;
}

export interface EntityChanges<T> {
  create: T[];
  update: T[];
  retire: string[];
}

export interface Plan {
  orgs: EntityChanges<Org>;
  academicSessions: EntityChanges<AcademicSession>;
  courses: EntityChanges<Course>;
  classes: EntityChanges<RosterClass>;
  users: {
    create: User[];
    update: User[];
    reactivate: User[];
    delete: { sourcedId: string; reason: string }[];
  };
  enrollments: {
    add: Enrollment[];
    end: { userSourcedId: string; classSourcedId: string; reason: string }[];
  };
  seats: SeatChanges;
  counts: RunCounts;
  /** What the guards look at. */
  stats: PlanStats;
}

export interface PlanStats {
  complete: boolean;
  snapshotUsers: number;
  snapshotClasses: number;
  snapshotEnrollments: number;
  /** Teachers and schools the snapshot lists as active. */
  snapshotTeachers: number;
  snapshotSchools: number;
  activeStudentsBefore: number;
  activeTeachersBefore: number;
  activeClassesBefore: number;
  activeSchoolsBefore: number;
  activeEnrollmentsBefore: number;
  studentsDeleted: number;
  teachersDeleted: number;
  classesRetired: number;
  schoolsRetired: number;
  enrollmentsEnded: number;
  /** Enrollments naming a user or class the snapshot does not have; skipped. */
  danglingEnrollments: number;
  /** Every record the snapshot holds, of every kind. */
  snapshotRecords: number;
  /** Records quarantined (unreadable, or sent twice with different content), and of them the conflicts. */
  quarantined: number;
  conflicts: number;
}
