import { zeroCounts, type Enrollment, type RosterClass, type User } from '../domain/model.js';
import { departureReason, enrollmentIsCurrent, settleSeats, type ClassView, type StudentView } from '../licenses/rules.js';
import type { EntityChanges, LocalEntity, LocalState, Plan, Snapshot } from './types.js';

export interface ReconcileOptions {
  /** The run's date (YYYY-MM-DD): enrollments ending before it have ended. */
  asOf: string;
  /** Users ops removed by hand: they leave exactly as a departed student would. */
  removals?: ReadonlyMap<string, string>;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function sameRecord(a: object, b: object): boolean {
  for (const [k, v] of Object.entries(a)) {
    const w = (b as Record<string, unknown>)[k];
    if (Array.isArray(v) ? !(Array.isArray(w) && sameList(v, w)) : v !== w) return false;
  }
  return true;
}

/** Roster entities: create new, update changed (or retired and back), retire what left. */
function diffEntities<T extends { sourcedId: string; status: string }>(
  incoming: Map<string, T>,
  local: Map<string, LocalEntity<T>>,
  complete: boolean,
  frozen: ReadonlySet<string>,
  include: (r: T) => boolean = () => true,
): { changes: EntityChanges<T>; activeAfter: Map<string, T> } {
  const changes: EntityChanges<T> = { create: [], update: [], retire: [] };
  const activeAfter = new Map<string, T>();
  for (const [sid, l] of local) if (!l.retired) activeAfter.set(sid, l.record);
  for (const [sid, r] of incoming) {
    if (!include(r) || frozen.has(sid)) continue;
    const l = local.get(sid);
    if (r.status === 'tobedeleted') {
      if (l && !l.retired) changes.retire.push(sid);
      activeAfter.delete(sid);
      continue;
    }
    if (!l) changes.create.push(r);
    else if (l.retired || !sameRecord(r, l.record)) changes.update.push(r);
    activeAfter.set(sid, r);
  }
  if (complete) {
    for (const [sid, l] of local) {
      const r = incoming.get(sid);
      if (!l.retired && !frozen.has(sid) && (!r || !include(r))) {
        changes.retire.push(sid);
        activeAfter.delete(sid);
      }
    }
  }
  return { changes, activeAfter };
}

/**
 * The whole of a run's decision: a pure, deterministic function from the
 * provider's snapshot and the platform's state to the changes that make them
 * agree. Nothing here reads a clock, the database or the network.
 */
export function reconcile(snapshot: Snapshot, local: LocalState, options: ReconcileOptions): Plan {
  const { asOf } = options;
  const removals = options.removals ?? new Map<string, string>();
  const counts = zeroCounts();

  const frozen = frozenIds(snapshot);
  const orgs = diffEntities(snapshot.orgs, local.orgs, snapshot.complete, frozen.orgs, (o) => o.type === 'school');
  const sessions = diffEntities(snapshot.academicSessions, local.academicSessions, snapshot.complete, frozen.academicSessions);
  const courses = diffEntities(snapshot.courses, local.courses, snapshot.complete, frozen.courses);
  const classes = diffEntities(snapshot.classes, local.classes, snapshot.complete, frozen.classes);

  // Snapshot enrollments grouped by user: the departure rule needs them all.
  const byUser = new Map<string, Enrollment[]>();
  for (const e of snapshot.enrollments.values()) {
    const list = byUser.get(e.userSourcedId);
    if (list) list.push(e);
    else byUser.set(e.userSourcedId, [e]);
  }

  const users: Plan['users'] = { create: [], update: [], reactivate: [], delete: [] };
  const departures = new Map<string, string>();
  /** Who is ACTIVE once the plan is applied, with the fields they will have. */
  const activeAfter = new Map<string, User>();
  const consider = new Set<string>([...snapshot.users.keys(), ...removals.keys(), ...(snapshot.complete ? local.users.keys() : [])]);
  for (const sid of [...consider].sort()) {
    const existing = local.users.get(sid);
    if (frozen.users.has(sid) && !removals.has(sid)) {
      // A record of theirs could not be read: they stay exactly as they were.
      if (existing && !existing.deleted) activeAfter.set(sid, existing.record);
      continue;
    }
    const incoming = snapshot.users.get(sid);
    const reason = removals.get(sid) ?? departureReason(incoming, byUser.get(sid), snapshot.complete, asOf);
    if (reason) {
      if (existing && !existing.deleted) {
        users.delete.push({ sourcedId: sid, reason });
        departures.set(sid, reason);
      }
      continue;
    }
    if (!incoming) {
      // Delta snapshot: a user it does not mention stays as they are.
      if (existing && !existing.deleted) activeAfter.set(sid, existing.record);
      continue;
    }
    if (!existing) users.create.push(incoming);
    else if (existing.deleted) users.reactivate.push(incoming);
    else if (!sameRecord(incoming, existing.record)) users.update.push(incoming);
    activeAfter.set(sid, incoming);
  }
  // Users a delta snapshot did not mention and ops did not remove keep their state.
  if (!snapshot.complete) {
    for (const [sid, l] of local.users) if (!l.deleted && !consider.has(sid)) activeAfter.set(sid, l.record);
  }

  // Memberships wanted after the run: current ones whose user and class stay active.
  const wanted = new Map<string, Enrollment>();
  let dangling = 0;
  const keepIfLive = (key: string, e: Enrollment) => {
    if (activeAfter.has(e.userSourcedId) && classes.activeAfter.has(e.classSourcedId)) wanted.set(key, e);
  };
  const isFrozen = (e: Enrollment) => frozen.users.has(e.userSourcedId) || frozen.classes.has(e.classSourcedId);
  for (const [key, e] of local.enrollments) if (!snapshot.complete || isFrozen(e)) keepIfLive(key, e);
  for (const [key, e] of snapshot.enrollments) {
    if (isFrozen(e)) continue;
    if (!snapshot.users.has(e.userSourcedId) && !local.users.has(e.userSourcedId)) { dangling += 1; continue; }
    if (!snapshot.classes.has(e.classSourcedId) && !local.classes.has(e.classSourcedId)) { dangling += 1; continue; }
    if (enrollmentIsCurrent(e, asOf)) keepIfLive(key, e);
    else wanted.delete(key);
  }

  const enrollments: Plan['enrollments'] = { add: [], end: [] };
  for (const [key, e] of wanted) if (!local.enrollments.has(key)) enrollments.add.push(e);
  for (const [key, e] of local.enrollments) {
    if (wanted.has(key)) continue;
    const reason = departures.get(e.userSourcedId)
      ?? (!classes.activeAfter.has(e.classSourcedId) ? 'class-retired' : 'ended');
    enrollments.end.push({ userSourcedId: e.userSourcedId, classSourcedId: e.classSourcedId, reason });
  }
  enrollments.add.sort(byPair);
  enrollments.end.sort(byPair);

  const seats = settleSeats({
    pools: local.pools,
    students: studentViews(local, activeAfter, wanted),
    classes: classViews(classes.activeAfter, courses.activeAfter),
    seats: local.seats,
    waitlist: local.waitlist,
    departures,
  });

  counts.usersCreated = users.create.length;
  counts.usersUpdated = users.update.length;
  counts.usersReactivated = users.reactivate.length;
  counts.usersDeleted = users.delete.length;
  counts.enrollmentsAdded = enrollments.add.length;
  counts.enrollmentsEnded = enrollments.end.length;
  counts.seatsAssigned = seats.assign.length;
  counts.seatsReleased = seats.release.length;
  counts.seatsWaitlisted = seats.waitlistAdd.length;
  counts.classesCreated = classes.changes.create.length;
  counts.classesUpdated = classes.changes.update.length;
  counts.classesRetired = classes.changes.retire.length;
  counts.orgsCreated = orgs.changes.create.length;
  counts.orgsUpdated = orgs.changes.update.length;
  counts.orgsRetired = orgs.changes.retire.length;
  counts.recordsQuarantined = snapshot.quarantined.length;

  let activeStudentsBefore = 0;
  let activeTeachersBefore = 0;
  for (const l of local.users.values()) {
    if (l.deleted) continue;
    if (l.record.role === 'student') activeStudentsBefore += 1;
    else if (l.record.role === 'teacher') activeTeachersBefore += 1;
  }
  const activeCount = (m: Map<string, LocalEntity<unknown>>) => { let n = 0; for (const l of m.values()) if (!l.retired) n += 1; return n; };
  let snapshotTeachers = 0;
  for (const u of snapshot.users.values()) if (u.role === 'teacher' && u.status !== 'tobedeleted') snapshotTeachers += 1;
  let snapshotSchools = 0;
  for (const o of snapshot.orgs.values()) if (o.type === 'school' && o.status !== 'tobedeleted') snapshotSchools += 1;
  const deletedWithRole = (role: string) => users.delete.filter((d) => local.users.get(d.sourcedId)?.record.role === role).length;

  return {
    orgs: orgs.changes,
    academicSessions: sessions.changes,
    courses: courses.changes,
    classes: classes.changes,
    users,
    enrollments,
    seats,
    counts,
    stats: {
      complete: snapshot.complete,
      snapshotUsers: snapshot.users.size,
      snapshotClasses: snapshot.classes.size,
      snapshotEnrollments: snapshot.enrollments.size,
      snapshotTeachers,
      snapshotSchools,
      activeStudentsBefore,
      activeTeachersBefore,
      activeClassesBefore: activeCount(local.classes),
      activeSchoolsBefore: activeCount(local.orgs),
      activeEnrollmentsBefore: local.enrollments.size,
      studentsDeleted: deletedWithRole('student'),
      teachersDeleted: deletedWithRole('teacher'),
      classesRetired: classes.changes.retire.length,
      schoolsRetired: orgs.changes.retire.length,
      enrollmentsEnded: enrollments.end.length,
      danglingEnrollments: dangling,
      snapshotRecords: snapshot.orgs.size + snapshot.academicSessions.size + snapshot.courses.size + snapshot.classes.size + snapshot.users.size + snapshot.enrollments.size,
      quarantined: snapshot.quarantined.length,
      conflicts: snapshot.quarantined.filter((q) => q.conflict).length,
    },
  };
}

/** What the snapshot's quarantined records name: each is left exactly as it was. */
function frozenIds(snapshot: Snapshot): Record<'orgs' | 'academicSessions' | 'courses' | 'classes' | 'users', Set<string>> {
  const frozen = { orgs: new Set<string>(), academicSessions: new Set<string>(), courses: new Set<string>(), classes: new Set<string>(), users: new Set<string>() };
  for (const q of snapshot.quarantined) {
    if (q.kind !== 'enrollments' && q.sourcedId !== null) frozen[q.kind].add(q.sourcedId);
    for (const u of q.refs?.users ?? []) frozen.users.add(u);
    for (const c of q.refs?.classes ?? []) frozen.classes.add(c);
  }
  return frozen;
}

function byPair(a: { userSourcedId: string; classSourcedId: string }, b: { userSourcedId: string; classSourcedId: string }): number {
  return a.classSourcedId < b.classSourcedId ? -1 : a.classSourcedId > b.classSourcedId ? 1
    : a.userSourcedId < b.userSourcedId ? -1 : a.userSourcedId > b.userSourcedId ? 1 : 0;
}

function studentViews(local: LocalState, activeAfter: Map<string, User>, wanted: Map<string, Enrollment>): Map<string, StudentView> {
  const views = new Map<string, StudentView>();
  for (const [sid, u] of activeAfter) {
    if (u.role !== 'student') continue;
    views.set(sid, { sourcedId: sid, active: true, grades: u.grades, schools: u.orgSourcedIds, classes: [] });
  }
  for (const e of wanted.values()) views.get(e.userSourcedId)?.classes.push(e.classSourcedId);
  // Seat holders who are no longer active still need a (inactive) view so their seats release.
  for (const held of local.seats.values()) {
    for (const sid of held.keys()) if (!views.has(sid)) views.set(sid, { sourcedId: sid, active: false, grades: [], schools: [], classes: [] });
  }
  return views;
}

function classViews(classes: Map<string, RosterClass>, courses: Map<string, { courseCode: string | null }>): Map<string, ClassView> {
  const views = new Map<string, ClassView>();
  for (const [sid, c] of classes) {
    views.set(sid, {
      schoolSourcedId: c.schoolSourcedId,
      courseSourcedId: c.courseSourcedId,
      courseCode: c.courseSourcedId ? courses.get(c.courseSourcedId)?.courseCode ?? null : null,
      grades: c.grades,
    });
  }
  return views;
}

