import { enrollmentKey, type Enrollment, type RosterClass, type User } from '../../src/domain/model.js';
import type { Pool } from '../../src/licenses/rules.js';
import type { LocalState, Snapshot } from '../../src/reconcile/types.js';

// Small hand-built rosters for the pure reconciler and license-rule tests.

export const student = (sourcedId: string, over: Partial<User> = {}): User => ({
  sourcedId, role: 'student', givenName: `G${sourcedId}`, familyName: `F${sourcedId}`, email: `${sourcedId}@x.test`, username: sourcedId, sisId: null,
  grades: ['5'], orgSourcedIds: ['sch1'], enabled: true, status: 'active', ...over,
});

export const teacher = (sourcedId: string, over: Partial<User> = {}): User => student(sourcedId, { role: 'teacher', grades: [], ...over });

export const klass = (sourcedId: string, over: Partial<RosterClass> = {}): RosterClass => ({
  sourcedId, title: `Class ${sourcedId}`, classCode: null, courseSourcedId: 'crs-math', schoolSourcedId: 'sch1', termSourcedIds: [], grades: ['5'], status: 'active', ...over,
});

export const enrol = (userSourcedId: string, classSourcedId: string, over: Partial<Enrollment> = {}): Enrollment => ({
  userSourcedId, classSourcedId, role: 'student', beginDate: null, endDate: null, status: 'active', ...over,
});

export const pool = (product: string, seats: number, scope: Partial<Pool['scope']> = {}): Pool => ({
  id: product, product, seats, scope: { schools: [], grades: [], courses: [], ...scope },
});

export function snapshotOf(users: User[], classes: RosterClass[], enrollments: Enrollment[], complete = true): Snapshot {
  return {
    complete,
    orgs: new Map([['sch1', { sourcedId: 'sch1', name: 'School 1', type: 'school', identifier: null, status: 'active' }]]),
    academicSessions: new Map(),
    courses: new Map([['crs-math', { sourcedId: 'crs-math', title: 'Math', courseCode: 'MATH', status: 'active' }], ['crs-art', { sourcedId: 'crs-art', title: 'Art', courseCode: 'ART', status: 'active' }]]),
    classes: new Map(classes.map((c) => [c.sourcedId, c])),
    users: new Map(users.map((u) => [u.sourcedId, u])),
    enrollments: new Map(enrollments.map((e) => [enrollmentKey(e.userSourcedId, e.classSourcedId), e])),
    quarantined: [],
  };
}

export function emptyLocal(pools: Pool[] = []): LocalState {
  return {
    orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(), enrollments: new Map(),
    pools, seats: new Map(), waitlist: new Map(),
  };
}

/**
 * The local state a fully applied snapshot leaves behind: what the database
 * would hold. Seats are passed in, since they are what the tests vary.
 */
export function localFrom(snapshot: Snapshot, opts: { pools?: Pool[]; deleted?: User[]; seats?: Record<string, Record<string, number>>; waitlist?: Record<string, Record<string, number>> } = {}): LocalState {
  const local = emptyLocal(opts.pools);
  for (const [sid, o] of snapshot.orgs) local.orgs.set(sid, { record: o, retired: false });
  for (const [sid, c] of snapshot.courses) local.courses.set(sid, { record: c, retired: false });
  for (const [sid, c] of snapshot.classes) local.classes.set(sid, { record: c, retired: false });
  for (const [sid, u] of snapshot.users) local.users.set(sid, { record: u, id: `id-${sid}`, deleted: false });
  for (const u of opts.deleted ?? []) local.users.set(u.sourcedId, { record: u, id: `id-${u.sourcedId}`, deleted: true });
  for (const [key, e] of snapshot.enrollments) local.enrollments.set(key, e);
  const toMaps = (r: Record<string, Record<string, number>> = {}) => new Map(Object.entries(r).map(([p, m]) => [p, new Map(Object.entries(m))]));
  local.seats = toMaps(opts.seats);
  local.waitlist = toMaps(opts.waitlist);
  return local;
}
