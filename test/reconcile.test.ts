import { reconcile } from '../src/reconcile/reconcile.js';
import { evaluateGuards, deletionThreshold, DEFAULT_GUARD_POLICY } from '../src/reconcile/guards.js';
import { emptyLocal, enrol, klass, localFrom, pool, snapshotOf, student, teacher } from './helpers/roster.js';

const asOf = '2026-11-22';

describe('reconcile', () => {
  const users = [student('s1'), student('s2'), teacher('t1')];
  const classes = [klass('c1'), klass('c2', { courseSourcedId: 'crs-art' })];
  const enrollments = [enrol('s1', 'c1'), enrol('s2', 'c2'), enrol('t1', 'c1', { role: 'teacher' }), enrol('t1', 'c2', { role: 'teacher' })];
  const snap = snapshotOf(users, classes, enrollments);

  test('a first sync creates everything and seats every student in scope', () => {
    const plan = reconcile(snap, emptyLocal([pool('MATH', 10, { courses: ['MATH'] })]), { asOf });
    expect(plan.users.create.map((u) => u.sourcedId).sort()).toEqual(['s1', 's2', 't1']);
    expect(plan.enrollments.add).toHaveLength(4);
    expect(plan.classes.create).toHaveLength(2);
    expect(plan.seats.assign).toEqual([{ product: 'MATH', userSourcedId: 's1' }]);
    expect(plan.counts).toMatchObject({ usersCreated: 3, enrollmentsAdded: 4, seatsAssigned: 1, seatsWaitlisted: 0 });
  });

  test('the same snapshot against the state it produced plans nothing', () => {
    const local = localFrom(snap, { pools: [pool('MATH', 10, { courses: ['MATH'] })], seats: { MATH: { s1: 1 } } });
    const plan = reconcile(snap, local, { asOf });
    expect(Object.values(plan.counts).every((n) => n === 0)).toBe(true);
  });

  test('a student missing from a complete snapshot leaves: classes end, seat freed, account deleted', () => {
    const local = localFrom(snap, { pools: [pool('ALL', 10)], seats: { ALL: { s1: 1, s2: 2 } } });
    const plan = reconcile(snapshotOf([student('s2'), teacher('t1')], classes, enrollments.filter((e) => e.userSourcedId !== 's1')), local, { asOf });
    expect(plan.users.delete).toEqual([{ sourcedId: 's1', reason: 'absent' }]);
    expect(plan.enrollments.end).toEqual([{ userSourcedId: 's1', classSourcedId: 'c1', reason: 'absent' }]);
    expect(plan.seats.release).toEqual([{ product: 'ALL', userSourcedId: 's1', reason: 'absent' }]);
    expect(plan.users.create).toEqual([]);
  });

  test('a delta snapshot deletes only what it marks tobedeleted', () => {
    const local = localFrom(snap, { pools: [pool('ALL', 10)], seats: { ALL: { s1: 1, s2: 2 } } });
    const delta = snapshotOf([student('s1', { status: 'tobedeleted' })], [], [], false);
    const plan = reconcile(delta, local, { asOf });
    expect(plan.users.delete).toEqual([{ sourcedId: 's1', reason: 'tobedeleted' }]);
    expect(plan.enrollments.end.map((e) => e.userSourcedId)).toEqual(['s1']);
    expect(plan.seats.release.map((r) => r.userSourcedId)).toEqual(['s1']);
    expect(plan.classes.retire).toEqual([]);
  });

  test('a DELETED student who reappears is reactivated, re-enrolled and seated', () => {
    const without = snapshotOf([student('s2'), teacher('t1')], classes, enrollments.filter((e) => e.userSourcedId !== 's1'));
    const local = localFrom(without, { pools: [pool('ALL', 10)], deleted: [student('s1')], seats: { ALL: { s2: 1 } } });
    const plan = reconcile(snap, local, { asOf });
    expect(plan.users.reactivate.map((u) => u.sourcedId)).toEqual(['s1']);
    expect(plan.users.create).toEqual([]);
    expect(plan.enrollments.add).toEqual([enrol('s1', 'c1')]);
    expect(plan.seats.assign).toEqual([{ product: 'ALL', userSourcedId: 's1' }]);
  });

  test('ended and future enrollments are not active; a student whose every enrollment ended leaves', () => {
    const s = snapshotOf([student('s1'), student('s2')], classes, [
      enrol('s1', 'c1', { endDate: '2026-01-01' }),
      enrol('s2', 'c1', { beginDate: '2027-01-01' }),
      enrol('s2', 'c2'),
    ]);
    const plan = reconcile(s, emptyLocal(), { asOf });
    expect(plan.users.create.map((u) => u.sourcedId)).toEqual(['s2']);
    expect(plan.enrollments.add).toEqual([enrol('s2', 'c2')]);
  });

  test('a class that disappears is retired and its memberships end', () => {
    const local = localFrom(snap);
    const plan = reconcile(snapshotOf(users, [klass('c1')], enrollments.filter((e) => e.classSourcedId === 'c1')), local, { asOf });
    expect(plan.classes.retire).toEqual(['c2']);
    expect(plan.enrollments.end.map((e) => [e.userSourcedId, e.reason])).toEqual([['s2', 'class-retired'], ['t1', 'class-retired']]);
  });

  test('a changed name is an update, not a new account', () => {
    const plan = reconcile(snapshotOf([student('s1', { familyName: 'Renamed' }), student('s2'), teacher('t1')], classes, enrollments), localFrom(snap), { asOf });
    expect(plan.users.update.map((u) => u.familyName)).toEqual(['Renamed']);
    expect(plan.counts.usersCreated).toBe(0);
  });

  test('an ops removal departs the student through the same rules, even against an empty delta', () => {
    const local = localFrom(snap, { pools: [pool('ALL', 1)], seats: { ALL: { s1: 1 } }, waitlist: { ALL: { s2: 5 } } });
    const plan = reconcile(snapshotOf([], [], [], false), local, { asOf, removals: new Map([['s1', 'removed-by-ops']]) });
    expect(plan.users.delete).toEqual([{ sourcedId: 's1', reason: 'removed-by-ops' }]);
    expect(plan.enrollments.end).toEqual([{ userSourcedId: 's1', classSourcedId: 'c1', reason: 'removed-by-ops' }]);
    expect(plan.seats.release).toEqual([{ product: 'ALL', userSourcedId: 's1', reason: 'removed-by-ops' }]);
    // The freed seat goes to the wait-list at once.
    expect(plan.seats.assign).toEqual([{ product: 'ALL', userSourcedId: 's2' }]);
  });

  test('enrollments naming unknown users or classes are counted and skipped', () => {
    const plan = reconcile(snapshotOf([student('s1')], [klass('c1')], [enrol('s1', 'c1'), enrol('ghost', 'c1'), enrol('s1', 'nope')]), emptyLocal(), { asOf });
    expect(plan.enrollments.add).toEqual([enrol('s1', 'c1')]);
    expect(plan.stats.danglingEnrollments).toBe(2);
  });
});

describe('guards', () => {
  const stats = {
    complete: true, snapshotUsers: 100, snapshotClasses: 10, snapshotEnrollments: 300, snapshotTeachers: 10, snapshotSchools: 2, snapshotRecords: 420,
    activeStudentsBefore: 1000, activeTeachersBefore: 10, activeClassesBefore: 10, activeSchoolsBefore: 2, activeEnrollmentsBefore: 300,
    studentsDeleted: 0, teachersDeleted: 0, classesRetired: 0, schoolsRetired: 0, enrollmentsEnded: 0, danglingEnrollments: 0, quarantined: 0, conflicts: 0,
  };

  test('a small kind cannot lose half of itself unseen, whatever the floor', () => {
    const small = { ...stats, activeSchoolsBefore: 8, snapshotSchools: 3 };
    // 10% of 8 is 1; the floor is min(25, half of 8) = 4.
    expect(evaluateGuards({ ...small, schoolsRetired: 4 }, DEFAULT_GUARD_POLICY)).toEqual({ held: false });
    expect(evaluateGuards({ ...small, schoolsRetired: 5 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, reason: expect.stringContaining('would remove 5 of 8 (62.5%) active schools') });
    // A large kind is held by its percentage: 10% of 10,000 enrollments.
    const big = { ...stats, activeEnrollmentsBefore: 10000, snapshotEnrollments: 9000 };
    expect(evaluateGuards({ ...big, enrollmentsEnded: 1000 }, DEFAULT_GUARD_POLICY)).toEqual({ held: false });
    expect(evaluateGuards({ ...big, enrollmentsEnded: 1001 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true });
  });

  test('threshold is 5% of active students but at least 25', () => {
    expect(deletionThreshold(100, DEFAULT_GUARD_POLICY)).toBe(25);
    expect(deletionThreshold(1000, DEFAULT_GUARD_POLICY)).toBe(50);
    expect(deletionThreshold(50000, DEFAULT_GUARD_POLICY)).toBe(2500);
  });

  test('holds empty, partial and mass-deleting snapshots; passes normal ones and deltas', () => {
    expect(evaluateGuards(stats, DEFAULT_GUARD_POLICY)).toEqual({ held: false });
    expect(evaluateGuards({ ...stats, studentsDeleted: 50 }, DEFAULT_GUARD_POLICY)).toEqual({ held: false });
    expect(evaluateGuards({ ...stats, studentsDeleted: 51 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, threshold: 50 });
    expect(evaluateGuards({ ...stats, snapshotUsers: 0 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, reason: expect.stringContaining('empty') });
    expect(evaluateGuards({ ...stats, snapshotClasses: 0 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, reason: expect.stringContaining('no classes') });
    expect(evaluateGuards({ ...stats, snapshotEnrollments: 0 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, reason: expect.stringContaining('no enrollments') });
    expect(evaluateGuards({ ...stats, complete: false, snapshotUsers: 0, snapshotClasses: 0, snapshotEnrollments: 0 }, DEFAULT_GUARD_POLICY)).toEqual({ held: false });
    // A delta's tombstones are held by the same deletion threshold.
    expect(evaluateGuards({ ...stats, complete: false, snapshotUsers: 60, studentsDeleted: 51 }, DEFAULT_GUARD_POLICY)).toMatchObject({ held: true, threshold: 50 });
  });
});
