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
  include: (r: T) => boolean = () => true,
): { changes: EntityChanges<T>; activeAfter: Map<string, T> } {
  const changes: EntityChanges<T> = { create: [], update: [], retire: [] };
  const activeAfter = new Map<string, T>();
  for (const [sid, l] of local) if (!l.retired) activeAfter.set(sid, l.record);
  for (const [sid, r] of incoming) {
    if (!include(r)) continue;
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
      if (!l.retired && (!r || !include(r))) {
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

  const orgs = diffEntities(snapshot.orgs, local.orgs, snapshot.complete, (o) => o.type === 'school');
  const sessions = diffEntities(snapshot.academicSessions, local.academicSessions, snapshot.complete);
  const courses = diffEntities(snapshot.courses, local.courses, snapshot.complete);
  const classes = diffEntities(snapshot.classes, local.classes, snapshot.complete);

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
    const incoming = snapshot.users.get(sid);
    const existing = local.users.get(sid);
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
  if (!snapshot.complete) for (const [key, e] of local.enrollments) keepIfLive(key, e);
  for (const [key, e] of snapshot.enrollments) {
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

  let activeStudentsBefore = 0;
  for (const l of local.users.values()) if (!l.deleted && l.record.role === 'student') activeStudentsBefore += 1;
  let activeClassesBefore = 0;
  for (const l of local.classes.values()) if (!l.retired) activeClassesBefore += 1;

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
      activeStudentsBefore,
      activeClassesBefore,
      activeEnrollmentsBefore: local.enrollments.size,
      studentsDeleted: users.delete.filter((d) => local.users.get(d.sourcedId)?.record.role === 'student').length,
      danglingEnrollments: dangling,
    },
  };
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

