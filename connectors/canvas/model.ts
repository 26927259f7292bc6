// What the REST path and the provisioning-report path both reduce Canvas to,
// before one assembler (roster.ts) maps it to canonical records. Two wire
// formats, one mapping: the two paths cannot drift apart in meaning.

export interface CanvasAccountNode { id: string; name: string; parentId: string | null; sisId: string | null }

export interface CanvasTermRecord { id: string; name: string; startAt: string | null; endAt: string | null }

/** Course states as the REST API names them (the report's 'active'/'concluded' are mapped onto these). */
export type CourseState = 'unpublished' | 'available' | 'completed' | 'deleted';

export interface CanvasCourseRecord {
  id: string;
  name: string;
  code: string | null;
  accountId: string;
  termId: string | null;
  state: CourseState;
  /** Only when the course restricts enrollments to its own dates (otherwise the term's dates rule). */
  startAt: string | null;
  endAt: string | null;
}

export interface CanvasSectionRecord {
  id: string;
  courseId: string;
  name: string;
  sisId: string | null;
  /** Only when the section restricts enrollments to its own dates. */
  startAt: string | null;
  endAt: string | null;
  /** Listed although deleted (the report with include_deleted); REST lists only live sections. */
  deleted: boolean;
}

export type EnrollmentKind = 'student' | 'teacher' | 'ta' | 'designer' | 'observer';
/** enrollment_state (REST); the report's 'concluded' is 'completed' here. */
export type EnrollmentState = 'active' | 'invited' | 'creation_pending' | 'inactive' | 'completed' | 'deleted' | 'rejected';

export interface CanvasEnrollmentRecord { userId: string; sectionId: string; courseId: string; kind: EnrollmentKind; state: EnrollmentState }

export interface CanvasUserRecord { id: string; sortableName: string; name: string; email: string | null; sisId: string | null; loginId: string | null }

/** DESIGN "Who is on the roster": these states are; every other one has ended. */
export const ON_ROSTER_STATES: ReadonlySet<EnrollmentState> = new Set(['active', 'invited', 'creation_pending']);
const STATES: ReadonlySet<string> = new Set(['active', 'invited', 'creation_pending', 'inactive', 'completed', 'deleted', 'rejected']);

/** Reads an enrollment state from either wire; unknown states are refused (quarantined), never guessed. */
export function enrollmentState(raw: string): EnrollmentState | null {
  const s = raw.trim().toLowerCase();
  if (s === 'concluded') return 'completed';
  return STATES.has(s) ? (s as EnrollmentState) : null;
}

/**
 * The base enrollment type, from REST `type` ('StudentEnrollment') or the report's
 * base_role_type / role column ('StudentEnrollment' or the SIS name 'student').
 */
export function enrollmentKind(raw: string): EnrollmentKind | null {
  const s = raw.trim().toLowerCase().replace(/enrollment$/, '');
  return s === 'student' || s === 'teacher' || s === 'ta' || s === 'designer' || s === 'observer' ? s : null;
}

/** Course state from REST workflow_state or the report's status column. */
export function courseState(raw: string): CourseState | null {
  const s = raw.trim().toLowerCase();
  if (s === 'created' || s === 'claimed' || s === 'unpublished') return 'unpublished';
  if (s === 'available' || s === 'active') return 'available';
  if (s === 'completed' || s === 'concluded') return 'completed';
  if (s === 'deleted') return 'deleted';
  return null;
}
