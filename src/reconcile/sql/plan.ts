import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../../db/schema.js';
import { zeroCounts, type RunCounts } from '../../domain/model.js';
import { planSeats } from '../../licenses/settle-sql.js';
import type { PlanStats } from '../types.js';
import type { ChangeFocus } from './focus.js';
import type { SnapshotTables } from './snapshot-source.js';

type Trx = Transaction<Database>;

export interface DbPlanOptions {
  districtId: string;
  provider: string;
  /** True when absence means departure (a full snapshot); false for a delta. */
  complete: boolean;
  /** The run's date (YYYY-MM-DD): enrollments ending before it have ended. */
  asOf: string;
  /** Users ops removed by hand: they leave exactly as a departed student would. */
  removals?: ReadonlyMap<string, string>;
  /**
   * Settle every student's seats, not only those of the people a delta
   * touches: after a pool was created, resized or rescoped (ops).
   */
  allSeats?: boolean;
  /**
   * A complete snapshot planned only where it differs from the district's
   * quiet mirror (src/reconcile/sql/focus.ts says why that is exact): the
   * plan reads `focus.tables` for its decisions and `snap` for the
   * snapshot-wide numbers.
   */
  focus?: ChangeFocus;
}

export interface DbPlan {
  counts: RunCounts;
  stats: PlanStats;
  /** Milliseconds per step, for the run's log: where a slow plan spends its time. */
  timings: Record<string, number>;
}

/** Roster tables the entity diff covers: the stage kind, the local table, compared columns (snapshot side, local side). */
export const ENTITY_TABLES = [
  { kind: 'orgs', table: 'schools', entity: 'school', cols: ['name', 'identifier'], local: ['name', 'identifier'], include: sql`i.type = 'school'` },
  { kind: 'academicSessions', table: 'terms', entity: 'term', cols: ['title', 'start_date', 'end_date'], local: ['title', 'start_date::text', 'end_date::text'], include: sql`true` },
  { kind: 'courses', table: 'courses', entity: 'course', cols: ['title', 'course_code'], local: ['title', 'course_code'], include: sql`true` },
  {
    kind: 'classes', table: 'classes', entity: 'class',
    cols: ['title', 'class_code', 'course_sourced_id', 'school_sourced_id', 'term_sourced_ids', 'grades'],
    local: ['title', 'class_code', 'course_sourced_id', 'school_sourced_id', 'term_sourced_ids', 'grades'], include: sql`true`,
  },
] as const;

export const USER_COLS = ['role', 'given_name', 'family_name', 'email', 'username', 'sis_id', 'grades', 'school_sourced_ids'] as const;

const list = (names: readonly string[], prefix: string) => sql.raw(names.map((n) => `${prefix}${n}`).join(', '));

/**
 * Session settings for grouping and joining a whole snapshot, local to the
 * transaction: merging copies (snapshot-source.ts) and planning both need them.
 */
export async function useReconcileMemory(trx: Trx): Promise<void> {
  // Hash joins and aggregates over a large district's rows want room (with the
  // default 4 MB they sort on disk). 512 MB measured slower at 1M students than
  // 256 MB: the larger hash tables cost more in memory traffic than the batches they save.
  await sql`SET LOCAL work_mem = '256MB'`.execute(trx);
  // Those statements' costs look enormous to the JIT, which would then spend
  // more compiling each one than it takes to run.
  await sql`SET LOCAL jit = off`.execute(trx);
}

/**
 * The reconciler, set-based: the same decisions as src/reconcile/reconcile.ts
 * (which stays their reference definition and the oracle of the property
 * tests), computed by Postgres from the snapshot's tables and the district's
 * rows, so a run holds pages, never districts. The plan is left in temporary
 * tables of the transaction (p_schools, p_terms, p_courses, p_classes, p_users,
 * p_enrollments, p_seats) for src/sync/apply.ts and src/sync/plan-items.ts;
 * the function returns its counts and what the guards look at.
 */
export async function planInDb(trx: Trx, snap: SnapshotTables, opts: DbPlanOptions): Promise<DbPlan> {
  const { districtId: d, provider: p, complete, asOf, focus } = opts;
  // Where decisions read the snapshot: all of it, or the part in focus.
  const src = focus?.tables ?? snap;
  // Whether a key is in focus (always, without one).
  const inFocus = (kind: string, key: RawBuilder<unknown>) => (focus ? sql`${key} IN (SELECT sid FROM ${focus.keys} WHERE kind = ${kind})` : sql`true`);
  const timings: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (step: string) => { timings[step] = Math.round(performance.now() - t0); t0 = performance.now(); };
  const run = (q: RawBuilder<unknown>) => q.execute(trx);
  await useReconcileMemory(trx);
  // A complete snapshot is compared with the whole district: hash joins, never
  // nested loops, whatever the statistics of rows written moments ago say (a
  // planner that believes a district of a million has one row picks loops that
  // cost a million times over). A delta touches few rows: index lookups fit.
  // A focused plan reaches few rows of each table, by index.
  if (complete && !focus) await run(sql`SET LOCAL enable_nestloop = off`);
  // Fresh tables have no statistics, and a planner that takes a million rows
  // for a handful picks nested loops: every table is analyzed once it is filled.
  // A small sample is enough to tell a million rows from a handful (the
  // plan's own tables are analyzed the same way; apply.ts resets it).
  await run(sql`SET LOCAL default_statistics_target = 10`);
  for (const table of Object.values(snap)) await run(sql`ANALYZE ${table}`);
  lap('analyze');

  // What quarantined records name is left exactly as it was.
  await run(sql`
    CREATE TEMP TABLE fz ON COMMIT DROP AS
    SELECT DISTINCT kind, sid FROM (
      SELECT kind, sourced_id AS sid FROM ${snap.quarantine} WHERE kind <> 'enrollments' AND sourced_id IS NOT NULL
      UNION ALL SELECT 'users', unnest(ref_users) FROM ${snap.quarantine}
      UNION ALL SELECT 'classes', unnest(ref_classes) FROM ${snap.quarantine}) x`);
  await run(sql`CREATE UNIQUE INDEX ON fz (kind, sid)`);
  await run(sql`ANALYZE fz`);
  await run(sql`CREATE TEMP TABLE removals (sid text PRIMARY KEY, reason text NOT NULL) ON COMMIT DROP`);
  if (opts.removals?.size) {
    await run(sql`INSERT INTO removals SELECT * FROM unnest(${[...opts.removals.keys()]}::text[], ${[...opts.removals.values()]}::text[])`);
  }

  // Roster entities: create new, update changed (or retired and back), retire what left.
  for (const e of ENTITY_TABLES) {
    const rows = src[e.kind];
    const local = sql.table(e.table);
    await run(sql`
      CREATE TEMP TABLE ${sql.table(`p_${e.table}`)} ON COMMIT DROP AS
      SELECT i.sourced_id, CASE WHEN i.status = 'tobedeleted' THEN 'retire' WHEN l.id IS NULL THEN 'create' ELSE 'update' END AS action,
             l.id AS local_id, ${list(e.cols, 'i.')}
      FROM ${rows} i LEFT JOIN ${local} l ON l.district_id = ${d} AND l.provider = ${p} AND l.sourced_id = i.sourced_id
      WHERE ${e.include} AND NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = ${e.kind} AND fz.sid = i.sourced_id)
        AND CASE WHEN i.status = 'tobedeleted' THEN l.status = 'ACTIVE'
                 ELSE l.id IS NULL OR l.status = 'RETIRED' OR (${list(e.cols, 'i.')}) IS DISTINCT FROM (${list(e.local, 'l.')}) END
      UNION ALL
      SELECT l.sourced_id, 'retire', l.id, ${list(e.cols.map(() => 'NULL'), '')}
      FROM ${local} l
      WHERE ${complete} AND l.district_id = ${d} AND l.provider = ${p} AND l.status = 'ACTIVE' AND ${inFocus(e.kind, sql`l.sourced_id`)}
        AND NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = ${e.kind} AND fz.sid = l.sourced_id)
        AND NOT EXISTS (SELECT 1 FROM ${rows} i WHERE i.sourced_id = l.sourced_id AND ${e.include})`);
  }
  for (const e of ENTITY_TABLES) await run(sql`ANALYZE ${sql.table(`p_${e.table}`)}`);
  lap('entities');

  // Classes and courses active once the plan is applied, as the seat rules see them.
  await run(sql`
    CREATE TEMP TABLE a_classes ON COMMIT DROP AS
    SELECT sourced_id AS sid, school_sourced_id AS school_sid, course_sourced_id AS course_sid, grades FROM p_classes WHERE action <> 'retire'
    UNION ALL
    SELECT l.sourced_id, l.school_sourced_id, l.course_sourced_id, l.grades FROM classes l
    WHERE l.district_id = ${d} AND l.provider = ${p} AND l.status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM p_classes x WHERE x.sourced_id = l.sourced_id)`);
  await run(sql`CREATE UNIQUE INDEX ON a_classes (sid)`);
  await run(sql`
    CREATE TEMP TABLE a_courses ON COMMIT DROP AS
    SELECT sourced_id AS sid, course_code FROM p_courses WHERE action <> 'retire'
    UNION ALL
    SELECT l.sourced_id, l.course_code FROM courses l
    WHERE l.district_id = ${d} AND l.provider = ${p} AND l.status = 'ACTIVE' AND NOT EXISTS (SELECT 1 FROM p_courses x WHERE x.sourced_id = l.sourced_id)`);
  await run(sql`CREATE UNIQUE INDEX ON a_courses (sid)`);
  await run(sql`ANALYZE a_classes`);
  await run(sql`ANALYZE a_courses`);

  // A user whose snapshot enrollments have all ended leaves (complete snapshots only).
  await run(sql`
    CREATE TEMP TABLE ue ON COMMIT DROP AS
    WITH ended AS (
      SELECT DISTINCT user_sid FROM ${src.enrollments}
      WHERE ${complete} AND ${inFocus('users', sql`user_sid`)} AND (status = 'tobedeleted' OR (end_date IS NOT NULL AND end_date < ${asOf} COLLATE "C")))
    -- Users with an ended enrollment and no other: found from the (few) ended
    -- ones, joined (hashed on them) with the rest, rather than by grouping
    -- every enrollment of the district.
    , current AS (
      SELECT DISTINCT e.user_sid FROM ${src.enrollments} e JOIN ended x ON x.user_sid = e.user_sid
      WHERE NOT (e.status = 'tobedeleted' OR (e.end_date IS NOT NULL AND e.end_date < ${asOf} COLLATE "C")))
    SELECT user_sid AS sid, true AS all_ended FROM ended WHERE user_sid NOT IN (SELECT user_sid FROM current)`);
  await run(sql`CREATE UNIQUE INDEX ON ue (sid)`);
  await run(sql`ANALYZE ue`);

  // Users: the departure rule (src/licenses/rules.ts departureReason), then create, reactivate or update.
  await run(sql`
    CREATE TEMP TABLE p_users ON COMMIT DROP AS
    WITH cand AS (
      SELECT i.sourced_id AS sid, true AS incoming, i.status, i.enabled, ${list(USER_COLS, 'i.')}, r.reason AS removal
      FROM ${src.users} i LEFT JOIN removals r ON r.sid = i.sourced_id
      UNION ALL
      SELECT r.sid, false, NULL, NULL, ${list(USER_COLS.map(() => 'NULL'), '')}, r.reason FROM removals r
      WHERE NOT EXISTS (SELECT 1 FROM ${src.users} i WHERE i.sourced_id = r.sid)
      UNION ALL
      SELECT l.sourced_id, false, NULL, NULL, ${list(USER_COLS.map(() => 'NULL'), '')}, NULL FROM users l
      WHERE ${complete} AND l.district_id = ${d} AND l.provider = ${p} AND l.status = 'ACTIVE' AND ${inFocus('users', sql`l.sourced_id`)}
        AND NOT EXISTS (SELECT 1 FROM ${src.users} i WHERE i.sourced_id = l.sourced_id)
        AND NOT EXISTS (SELECT 1 FROM removals r WHERE r.sid = l.sourced_id)
    ), decided AS (
      SELECT c.*, l.id AS local_id, l.status AS local_status,
        (fz.sid IS NOT NULL AND c.removal IS NULL) AS frozen,
        (${list(USER_COLS, 'c.')}) IS DISTINCT FROM (${list(USER_COLS, 'l.')}) AS changed,
        COALESCE(c.removal, CASE
          WHEN NOT c.incoming THEN CASE WHEN ${complete} THEN 'absent' END
          WHEN c.status = 'tobedeleted' THEN 'tobedeleted'
          WHEN NOT c.enabled THEN 'disabled'
          WHEN ${complete} AND ue.all_ended THEN 'enrollments-ended' END) AS reason
      FROM cand c
      LEFT JOIN users l ON l.district_id = ${d} AND l.provider = ${p} AND l.sourced_id = c.sid
      LEFT JOIN fz ON fz.kind = 'users' AND fz.sid = c.sid
      LEFT JOIN ue ON ue.sid = c.sid
    )
    SELECT sid, action, CASE WHEN action = 'delete' THEN reason END AS reason, local_id, local_status, ${list(USER_COLS, '')}
    FROM (SELECT *, CASE
        WHEN frozen THEN NULL
        WHEN reason IS NOT NULL THEN CASE WHEN local_status = 'ACTIVE' THEN 'delete' END
        WHEN NOT incoming THEN NULL
        WHEN local_id IS NULL THEN 'create'
        WHEN local_status = 'DELETED' THEN 'reactivate'
        WHEN changed THEN 'update' END AS action FROM decided) x
    WHERE action IS NOT NULL`);
  await run(sql`CREATE UNIQUE INDEX ON p_users (sid)`);
  await run(sql`ANALYZE p_users`);
  lap('users');

  // Memberships: the snapshot's, those that name a user or class the snapshot and the district both lack set aside.
  // (Joins, not EXISTS … OR EXISTS: an OR of subqueries is evaluated row by row.)
  await run(sql`
    CREATE TEMP TABLE se ON COMMIT DROP AS
    SELECT s.user_sid, s.class_sid, s.role, s.begin_date, s.end_date,
      (NOT (s.status = 'tobedeleted' OR (s.end_date IS NOT NULL AND s.end_date < ${asOf} COLLATE "C"))
        AND (s.begin_date IS NULL OR s.begin_date <= ${asOf} COLLATE "C")) AS cur,
      (su.sourced_id IS NOT NULL OR lu.id IS NOT NULL) AND (sc.sourced_id IS NOT NULL OR lc.id IS NOT NULL) AS known
    FROM ${src.enrollments} s
    -- Whether the whole snapshot has the user and the class (a focused plan's enrollments name people outside its focus).
    LEFT JOIN ${snap.users} su ON su.sourced_id = s.user_sid
    LEFT JOIN users lu ON lu.district_id = ${d} AND lu.provider = ${p} AND lu.sourced_id = s.user_sid
    LEFT JOIN ${snap.classes} sc ON sc.sourced_id = s.class_sid
    LEFT JOIN classes lc ON lc.district_id = ${d} AND lc.provider = ${p} AND lc.sourced_id = s.class_sid
    WHERE NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = 'users' AND fz.sid = s.user_sid)
      AND NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = 'classes' AND fz.sid = s.class_sid)`);
  await run(sql`ANALYZE se`);
  lap('snapshotEnrollments');

  // A delta reaches only the people it touches: those it names, members of
  // the classes and courses it changes, and whoever waits for a seat. Everyone
  // else keeps their account, memberships and seats exactly (their
  // eligibility cannot have changed: every change of it goes through here).
  await run(sql`CREATE TEMP TABLE touched (sid text PRIMARY KEY) ON COMMIT DROP`);
  // A focused plan reaches as a delta does, and also everyone in focus and
  // every member of a class in focus (their memberships are weighed again).
  const narrow = (!complete || focus !== undefined) && !opts.allSeats;
  if (narrow) {
    await run(sql`
      INSERT INTO touched
      SELECT sid FROM p_users UNION SELECT user_sid FROM se
      ${focus ? sql`UNION SELECT sid FROM ${focus.keys} WHERE kind = 'users'` : sql``}
      UNION
      SELECT u.sourced_id FROM classes c
      JOIN enrollments e ON e.class_id = c.id AND e.ended_at IS NULL JOIN users u ON u.id = e.user_id
      WHERE c.district_id = ${d} AND c.provider = ${p}
        AND (c.sourced_id IN (SELECT sourced_id FROM p_classes) OR c.course_sourced_id IN (SELECT sourced_id FROM p_courses)
          ${focus ? sql`OR c.sourced_id IN (SELECT sid FROM ${focus.keys} WHERE kind = 'classes')` : sql``})
      UNION
      SELECT u.sourced_id FROM waitlist w JOIN license_pools lp ON lp.id = w.pool_id JOIN users u ON u.id = w.user_id
      WHERE lp.district_id = ${d}`);
    await run(sql`ANALYZE touched`);
  }
  const reach = narrow ? sql`sid IN (SELECT sid FROM touched)` : sql`true`;
  const reachLocal = narrow ? sql`l.sourced_id IN (SELECT sid FROM touched)` : sql`true`;

  // Who is ACTIVE once the plan is applied, with the fields they will have
  // (for a delta: of the people it touches).
  await run(sql`
    CREATE TEMP TABLE a_users ON COMMIT DROP AS
    SELECT sid, role, grades, school_sourced_ids FROM p_users WHERE action <> 'delete' AND ${reach}
    UNION ALL
    SELECT l.sourced_id, l.role, l.grades, l.school_sourced_ids FROM users l
    WHERE l.district_id = ${d} AND l.provider = ${p} AND l.status = 'ACTIVE' AND ${reachLocal}
      AND NOT EXISTS (SELECT 1 FROM p_users x WHERE x.sid = l.sourced_id)`);
  await run(sql`CREATE UNIQUE INDEX ON a_users (sid)`);
  await run(sql`ANALYZE a_users`);
  lap('activeUsers');


  // The district's active memberships, by sourcedId. A delta only reaches
  // those of users leaving, classes retiring and pairs it names: every other
  // membership of a live user in a live class stays as it is.
  const localMemberships = focus
    // Those of the people and classes in focus, each through an index.
    ? sql`
      SELECT e.id, u.sourced_id AS user_sid, c.sourced_id AS class_sid
      FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
      WHERE e.ended_at IS NULL AND e.id IN (
        SELECT e1.id FROM ${focus.keys} x JOIN users u1 ON u1.district_id = ${d} AND u1.provider = ${p} AND u1.sourced_id = x.sid
          JOIN enrollments e1 ON e1.user_id = u1.id AND e1.ended_at IS NULL WHERE x.kind = 'users'
        UNION
        SELECT e2.id FROM ${focus.keys} x JOIN classes c2 ON c2.district_id = ${d} AND c2.provider = ${p} AND c2.sourced_id = x.sid
          JOIN enrollments e2 ON e2.class_id = c2.id AND e2.ended_at IS NULL WHERE x.kind = 'classes')`
    : complete
    ? sql`
      SELECT e.id, u.sourced_id AS user_sid, c.sourced_id AS class_sid
      FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
      WHERE e.district_id = ${d} AND e.ended_at IS NULL`
    // Each reached through an index: the users leaving, the classes retiring, the pairs named.
    : sql`
      SELECT e.id, u.sourced_id AS user_sid, c.sourced_id AS class_sid
      FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
      WHERE e.ended_at IS NULL AND e.id IN (
        SELECT e1.id FROM p_users x JOIN users u1 ON u1.district_id = ${d} AND u1.provider = ${p} AND u1.sourced_id = x.sid
          JOIN enrollments e1 ON e1.user_id = u1.id AND e1.ended_at IS NULL WHERE x.action = 'delete'
        UNION
        SELECT e2.id FROM p_classes x JOIN classes c2 ON c2.district_id = ${d} AND c2.provider = ${p} AND c2.sourced_id = x.sourced_id
          JOIN enrollments e2 ON e2.class_id = c2.id AND e2.ended_at IS NULL WHERE x.action = 'retire'
        UNION
        SELECT e3.id FROM se x JOIN users u3 ON u3.district_id = ${d} AND u3.provider = ${p} AND u3.sourced_id = x.user_sid
          JOIN classes c3 ON c3.district_id = ${d} AND c3.provider = ${p} AND c3.sourced_id = x.class_sid
          JOIN enrollments e3 ON e3.user_id = u3.id AND e3.class_id = c3.id AND e3.ended_at IS NULL)`;
  await run(sql`
    CREATE TEMP TABLE p_enrollments ON COMMIT DROP AS
    WITH j AS (
      SELECT COALESCE(le.user_sid, se.user_sid) AS user_sid, COALESCE(le.class_sid, se.class_sid) AS class_sid,
             le.id AS enrollment_id, se.role, se.begin_date, se.end_date, COALESCE(se.cur, false) AS cur,
             le.id IS NOT NULL AS in_local, se.user_sid IS NOT NULL AS in_snap
      FROM (${localMemberships}) le FULL JOIN (SELECT * FROM se WHERE known) se ON se.user_sid = le.user_sid AND se.class_sid = le.class_sid
    ), w AS (
      SELECT j.*, au.sid IS NOT NULL AND ac.sid IS NOT NULL AS live, ac.sid IS NULL AS class_gone,
             fu.sid IS NOT NULL OR fc.sid IS NOT NULL AS frozen, pu.reason AS departure
      FROM j LEFT JOIN a_users au ON au.sid = j.user_sid LEFT JOIN a_classes ac ON ac.sid = j.class_sid
      LEFT JOIN fz fu ON fu.kind = 'users' AND fu.sid = j.user_sid
      LEFT JOIN fz fc ON fc.kind = 'classes' AND fc.sid = j.class_sid
      LEFT JOIN p_users pu ON pu.sid = j.user_sid AND pu.action = 'delete'
    ), x AS (
      SELECT w.*, live AND CASE WHEN frozen THEN in_local WHEN in_snap THEN cur ELSE NOT ${complete} AND in_local END AS wanted FROM w
    )
    SELECT user_sid, class_sid, enrollment_id, role, begin_date, end_date,
      CASE WHEN wanted THEN 'add' ELSE 'end' END AS action,
      CASE WHEN NOT wanted THEN COALESCE(departure, CASE WHEN class_gone THEN 'class-retired' ELSE 'ended' END) END AS reason
    FROM x WHERE wanted <> in_local`);
  await run(sql`ANALYZE p_enrollments`);
  lap('enrollments');

  const seatCounts = await planSeats(trx, { districtId: d, everyone: !narrow });
  lap('seats');

  const { rows: [c] } = await sql<Record<string, number>>`
    SELECT
      (SELECT count(*) FROM p_users WHERE action = 'create')::int AS "usersCreated",
      (SELECT count(*) FROM p_users WHERE action = 'update')::int AS "usersUpdated",
      (SELECT count(*) FROM p_users WHERE action = 'reactivate')::int AS "usersReactivated",
      (SELECT count(*) FROM p_users WHERE action = 'delete')::int AS "usersDeleted",
      (SELECT count(*) FROM p_users p JOIN users l ON l.id = p.local_id WHERE p.action = 'delete' AND l.role = 'student')::int AS "studentsDeleted",
      (SELECT count(*) FROM p_users p JOIN users l ON l.id = p.local_id WHERE p.action = 'delete' AND l.role = 'teacher')::int AS "teachersDeleted",
      (SELECT count(*) FROM p_enrollments WHERE action = 'add')::int AS "enrollmentsAdded",
      (SELECT count(*) FROM p_enrollments WHERE action = 'end')::int AS "enrollmentsEnded",
      (SELECT count(*) FROM p_classes WHERE action = 'create')::int AS "classesCreated",
      (SELECT count(*) FROM p_classes WHERE action = 'update')::int AS "classesUpdated",
      (SELECT count(*) FROM p_classes WHERE action = 'retire')::int AS "classesRetired",
      (SELECT count(*) FROM p_schools WHERE action = 'create')::int AS "orgsCreated",
      (SELECT count(*) FROM p_schools WHERE action = 'update')::int AS "orgsUpdated",
      (SELECT count(*) FROM p_schools WHERE action = 'retire')::int AS "orgsRetired",
      (SELECT count(*) FROM ${snap.quarantine})::int AS "quarantined",
      (SELECT count(*) FROM ${snap.quarantine} WHERE conflict)::int AS "conflicts",
      -- A focused plan's memberships are those in focus; outside it, each is known or not exactly as in
      -- the mirror (focus.ts), so with none dangling there, these are all (else the whole stage is counted).
      (${focus && focus.mirrorDangling !== 0 ? danglingIn(snap, d, p) : sql`SELECT count(*) FROM se WHERE NOT known`})::int AS "dangling",
      (SELECT count(*) FROM ${snap.users})::int AS "snapshotUsers",
      (SELECT count(*) FROM ${snap.users} WHERE role = 'teacher' AND status <> 'tobedeleted')::int AS "snapshotTeachers",
      (SELECT count(*) FROM ${snap.orgs} WHERE type = 'school' AND status <> 'tobedeleted')::int AS "snapshotSchools",
      (SELECT count(*) FROM ${snap.orgs})::int AS "snapshotOrgs",
      (SELECT count(*) FROM ${snap.academicSessions})::int AS "snapshotSessions",
      (SELECT count(*) FROM ${snap.courses})::int AS "snapshotCourses",
      (SELECT count(*) FROM ${snap.classes})::int AS "snapshotClasses",
      (SELECT count(*) FROM ${snap.enrollments})::int AS "snapshotEnrollments"`.execute(trx);
  const n = (k: string) => Number(c?.[k] ?? 0);
  const before = await activeBefore(trx, d, p);
  lap('counts');

  const counts: RunCounts = {
    ...zeroCounts(),
    usersCreated: n('usersCreated'), usersUpdated: n('usersUpdated'), usersReactivated: n('usersReactivated'), usersDeleted: n('usersDeleted'),
    enrollmentsAdded: n('enrollmentsAdded'), enrollmentsEnded: n('enrollmentsEnded'),
    seatsAssigned: seatCounts.assigned, seatsReleased: seatCounts.released, seatsWaitlisted: seatCounts.waitlisted,
    classesCreated: n('classesCreated'), classesUpdated: n('classesUpdated'), classesRetired: n('classesRetired'),
    orgsCreated: n('orgsCreated'), orgsUpdated: n('orgsUpdated'), orgsRetired: n('orgsRetired'),
    recordsQuarantined: n('quarantined'),
  };
  const stats: PlanStats = {
    complete,
    snapshotUsers: n('snapshotUsers'),
    snapshotClasses: n('snapshotClasses'),
    snapshotEnrollments: n('snapshotEnrollments'),
    snapshotTeachers: n('snapshotTeachers'),
    snapshotSchools: n('snapshotSchools'),
    ...before,
    studentsDeleted: n('studentsDeleted'),
    teachersDeleted: n('teachersDeleted'),
    classesRetired: n('classesRetired'),
    schoolsRetired: n('orgsRetired'),
    enrollmentsEnded: n('enrollmentsEnded'),
    danglingEnrollments: n('dangling'),
    snapshotRecords: n('snapshotOrgs') + n('snapshotSessions') + n('snapshotCourses') + n('snapshotClasses') + n('snapshotUsers') + n('snapshotEnrollments'),
    quarantined: n('quarantined'),
    conflicts: n('conflicts'),
  };
  return { counts, stats, timings };
}

/**
 * The snapshot's memberships that name a user or class neither it nor the
 * district has (outside the quarantine's reach), counted over the whole
 * snapshot when the plan itself read only part of it: a join with the
 * snapshot's own users and classes first, the district's rows only for the
 * few left over.
 */
function danglingIn(snap: SnapshotTables, d: string, p: string): RawBuilder<unknown> {
  return sql`
    SELECT count(*) FROM ${snap.enrollments} s
    LEFT JOIN ${snap.users} su ON su.sourced_id = s.user_sid
    LEFT JOIN ${snap.classes} sc ON sc.sourced_id = s.class_sid
    WHERE (su.sourced_id IS NULL OR sc.sourced_id IS NULL)
      AND ((su.sourced_id IS NULL AND NOT EXISTS (SELECT 1 FROM users lu WHERE lu.district_id = ${d} AND lu.provider = ${p} AND lu.sourced_id = s.user_sid))
        OR (sc.sourced_id IS NULL AND NOT EXISTS (SELECT 1 FROM classes lc WHERE lc.district_id = ${d} AND lc.provider = ${p} AND lc.sourced_id = s.class_sid)))
      AND NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = 'users' AND fz.sid = s.user_sid)
      AND NOT EXISTS (SELECT 1 FROM fz WHERE fz.kind = 'classes' AND fz.sid = s.class_sid)`;
}

export type ActiveBefore = Pick<PlanStats, 'activeStudentsBefore' | 'activeTeachersBefore' | 'activeClassesBefore' | 'activeSchoolsBefore' | 'activeEnrollmentsBefore'>;

/** What the district has active before a run applies: what the guards weigh losses against. */
export async function activeBefore(trx: Trx, d: string, p: string): Promise<ActiveBefore> {
  const { rows: [c] } = await sql<ActiveBefore>`
    SELECT
      (SELECT count(*) FROM users WHERE district_id = ${d} AND provider = ${p} AND status = 'ACTIVE' AND role = 'student')::int AS "activeStudentsBefore",
      (SELECT count(*) FROM users WHERE district_id = ${d} AND provider = ${p} AND status = 'ACTIVE' AND role = 'teacher')::int AS "activeTeachersBefore",
      (SELECT count(*) FROM classes WHERE district_id = ${d} AND provider = ${p} AND status = 'ACTIVE')::int AS "activeClassesBefore",
      (SELECT count(*) FROM schools WHERE district_id = ${d} AND provider = ${p} AND status = 'ACTIVE')::int AS "activeSchoolsBefore",
      (SELECT count(*) FROM enrollments WHERE district_id = ${d} AND ended_at IS NULL)::int AS "activeEnrollmentsBefore"`.execute(trx);
  return c!;
}
