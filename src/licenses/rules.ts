import type { Enrollment, User } from '../domain/model.js';

// The one set of license rules. Every path (scheduled sync, manual resync, a
// HELD run approved, ops removing a student, a pool resized) computes seats here.

export interface PoolScope {
  schools: string[];
  grades: string[];
  /** Course codes or course sourcedIds. */
  courses: string[];
}

export interface Pool {
  id: string;
  product: string;
  seats: number;
  scope: PoolScope;
}

/** A student as the seat rules see them after the run's roster changes. */
export interface StudentView {
  sourcedId: string;
  active: boolean;
  grades: string[];
  schools: string[];
  /** Active class memberships (class sourcedIds). */
  classes: string[];
}

export interface ClassView {
  schoolSourcedId: string | null;
  courseSourcedId: string | null;
  courseCode: string | null;
  grades: string[];
}

export type DepartureReason = 'absent' | 'tobedeleted' | 'disabled' | 'enrollments-ended' | 'removed-by-ops';

export interface SeatChange { product: string; userSourcedId: string }
export interface SeatRelease extends SeatChange { reason: string }

export interface SeatChanges {
  assign: SeatChange[];
  release: SeatRelease[];
  waitlistAdd: SeatChange[];
  waitlistRemove: SeatChange[];
}

/**
 * Why a rostered user leaves, or null if they stay. A student leaves when they are
 * missing from a complete snapshot, marked tobedeleted or disabled, or when every
 * enrollment they have has ended. Teachers leave by the same rules.
 */
export function departureReason(
  user: User | undefined,
  enrollments: readonly Enrollment[] | undefined,
  snapshotIsComplete: boolean,
  asOf: string,
): DepartureReason | null {
  if (!user) return snapshotIsComplete ? 'absent' : null;
  if (user.status === 'tobedeleted') return 'tobedeleted';
  if (!user.enabled) return 'disabled';
  if (snapshotIsComplete && enrollments && enrollments.length > 0 && enrollments.every((e) => enrollmentHasEnded(e, asOf))) {
    return 'enrollments-ended';
  }
  return null;
}

export function enrollmentHasEnded(e: Enrollment, asOf: string): boolean {
  return e.status === 'tobedeleted' || (e.endDate !== null && e.endDate < asOf);
}

/** Future-dated enrollments are kept out until they begin. */
export function enrollmentIsCurrent(e: Enrollment, asOf: string): boolean {
  return !enrollmentHasEnded(e, asOf) && (e.beginDate === null || e.beginDate <= asOf);
}

const overlaps = (a: readonly string[], b: readonly string[]) => a.some((x) => b.includes(x));

/**
 * A student holds a seat of a pool while one of their active classes falls in its
 * scope, or, where the scope names no courses, while their own school and grade do
 * (a whole-district pool has an empty scope and covers every active student).
 */
export function inScope(pool: Pool, student: StudentView, classes: ReadonlyMap<string, ClassView>): boolean {
  if (!student.active) return false;
  const { schools, grades, courses } = pool.scope;
  for (const sid of student.classes) {
    const c = classes.get(sid);
    if (!c) continue;
    if (schools.length && !(c.schoolSourcedId && schools.includes(c.schoolSourcedId))) continue;
    if (courses.length && !((c.courseCode && courses.includes(c.courseCode)) || (c.courseSourcedId && courses.includes(c.courseSourcedId)))) continue;
    if (grades.length && !overlaps(c.grades, grades) && !overlaps(student.grades, grades)) continue;
    return true;
  }
  if (courses.length) return false;
  return (!schools.length || overlaps(student.schools, schools)) && (!grades.length || overlaps(student.grades, grades));
}

export interface SettleInput {
  pools: readonly Pool[];
  /** Every student the district has, after the run's roster changes. */
  students: ReadonlyMap<string, StudentView>;
  classes: ReadonlyMap<string, ClassView>;
  /** Seats held now: product → (student sourcedId → assigned-at ms). */
  seats: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Wait-list now: product → (student sourcedId → queued-at ms). */
  waitlist: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Students leaving in this run and why, to label their released seats. */
  departures: ReadonlyMap<string, string>;
}

/**
 * Seats after the roster changes: holders out of scope (or gone) release, the
 * wait-list is served first-come, then new candidates in a stable order, and no
 * pool ever ends above its seat count.
 */
export function settleSeats(input: SettleInput): SeatChanges {
  const changes: SeatChanges = { assign: [], release: [], waitlistAdd: [], waitlistRemove: [] };
  for (const pool of input.pools) {
    const held = input.seats.get(pool.product) ?? new Map<string, number>();
    const queued = input.waitlist.get(pool.product) ?? new Map<string, number>();
    const eligible = new Set<string>();
    for (const student of input.students.values()) if (inScope(pool, student, input.classes)) eligible.add(student.sourcedId);

    const keep: [string, number][] = [];
    for (const [sid, at] of held) {
      if (eligible.has(sid)) keep.push([sid, at]);
      else changes.release.push({ product: pool.product, userSourcedId: sid, reason: input.departures.get(sid) ?? 'out-of-scope' });
    }
    // A pool shrunk below its holders gives back the most recently assigned
    // seats; those students join the wait-list.
    keep.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const bumped = keep.splice(pool.seats);
    const holders = new Set(keep.map(([sid]) => sid));

    const waiting = [...queued].filter(([sid]) => eligible.has(sid) && !holders.has(sid)).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1)).map(([sid]) => sid);
    const fresh = [...eligible].filter((sid) => !holders.has(sid) && !queued.has(sid) && !held.has(sid)).sort();
    const candidates = [...waiting, ...fresh];

    for (const [sid] of bumped) {
      changes.release.push({ product: pool.product, userSourcedId: sid, reason: 'pool-reduced' });
      changes.waitlistAdd.push({ product: pool.product, userSourcedId: sid });
    }
    let free = pool.seats - holders.size;
    for (const sid of candidates) {
      if (free > 0) {
        free -= 1;
        changes.assign.push({ product: pool.product, userSourcedId: sid });
        if (queued.has(sid)) changes.waitlistRemove.push({ product: pool.product, userSourcedId: sid });
      } else if (!queued.has(sid)) {
        changes.waitlistAdd.push({ product: pool.product, userSourcedId: sid });
      }
    }
    for (const sid of queued.keys()) {
      if (!eligible.has(sid) || holders.has(sid)) changes.waitlistRemove.push({ product: pool.product, userSourcedId: sid });
    }
  }
  return changes;
}
