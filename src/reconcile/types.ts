import type { AcademicSession, Course, Enrollment, Org, RosterClass, RunCounts, User } from '../domain/model.js';
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
  activeStudentsBefore: number;
  activeClassesBefore: number;
  activeEnrollmentsBefore: number;
  studentsDeleted: number;
  /** Enrollments naming a user or class the snapshot does not have; skipped. */
  danglingEnrollments: number;
}
