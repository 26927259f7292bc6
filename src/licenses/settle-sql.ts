import { sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';

type Trx = Transaction<Database>;

/**
 * The license rules' seat settlement (src/licenses/rules.ts settleSeats and
 * inScope), set-based in Postgres for the reconciler of src/reconcile/sql/plan.ts.
 * rules.ts stays the one definition: its functions are what this must compute,
 * and the property tests run the same random histories through both and compare
 * every seat, release and wait-list entry. In words:
 * - a student is eligible for a pool while one of their active classes falls
 *   in its scope (school, course code or course sourcedId, class or student
 *   grade), or, where the scope names no courses, while their own school and
 *   grade do; an empty scope covers every active student;
 * - holders no longer eligible release (their departure's reason, else
 *   out-of-scope); a pool shrunk below its holders releases the most recently
 *   assigned seats (pool-reduced) and wait-lists those students;
 * - free seats go to the wait-list first-come, then to new candidates in
 *   sourcedId order; whoever does not fit is wait-listed; wait-list entries no
 *   longer eligible, or now holding a seat, leave it.
 * With `everyone` false (a delta), eligibility is evaluated for the people
 * the plan touched (the touched table; a_users holds only them): everyone
 * else who holds a seat or waits for one stays eligible, and nobody else was
 * eligible, because the last settlement seated or wait-listed every eligible
 * student and eligibility changes only through a plan.
 * Reads the plan's p_users, p_enrollments, a_users, a_classes and a_courses;
 * leaves p_seats (pool, product, user sourcedId, action, reason, the released
 * seat's id, and the wait-list order) and returns its counts.
 */
export async function planSeats(trx: Trx, opts: { districtId: string; everyone: boolean }): Promise<{ assigned: number; released: number; waitlisted: number }> {
  const { districtId: d } = opts;
  await sql`
    CREATE TEMP TABLE pl ON COMMIT DROP AS
    SELECT id, product, seats,
      ARRAY(SELECT jsonb_array_elements_text(COALESCE(scope->'schools', '[]'))) AS schools,
      ARRAY(SELECT jsonb_array_elements_text(COALESCE(scope->'grades', '[]'))) AS grades,
      ARRAY(SELECT jsonb_array_elements_text(COALESCE(scope->'courses', '[]'))) AS courses
    FROM license_pools WHERE district_id = ${d}`.execute(trx);
  await sql`ANALYZE pl`.execute(trx);
  await sql`CREATE TEMP TABLE p_seats (pool_id bigint, product text, sid text, action text, reason text, seat_id bigint, ord bigint) ON COMMIT DROP`.execute(trx);
  const { rows: [pools] } = await sql<{ n: number; scoped: number }>`
    SELECT count(*)::int AS n, count(*) FILTER (WHERE cardinality(schools) + cardinality(grades) + cardinality(courses) > 0)::int AS scoped FROM pl`.execute(trx);
  if (!pools || pools.n === 0) return { assigned: 0, released: 0, waitlisted: 0 };

  // Memberships after the plan (students' only matter), for pools with a scope.
  const afterMemberships = sql`
    SELECT u.sourced_id AS user_sid, c.sourced_id AS class_sid
    FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
    WHERE e.district_id = ${d} AND e.ended_at IS NULL AND u.role = 'student'
      AND ${opts.everyone ? sql`true` : sql`e.user_id IN (SELECT l.id FROM users l JOIN a_users a ON a.sid = l.sourced_id WHERE l.district_id = ${d})`}
      AND NOT EXISTS (SELECT 1 FROM p_enrollments x WHERE x.action = 'end' AND x.enrollment_id = e.id)
    UNION ALL
    SELECT user_sid, class_sid FROM p_enrollments WHERE action = 'add'`;
  await sql`
    CREATE TEMP TABLE elig ON COMMIT DROP AS
    SELECT DISTINCT pool_id, sid FROM (
      SELECT pl.id AS pool_id, s.sid
      FROM pl JOIN a_users s ON s.role = 'student'
      WHERE cardinality(pl.courses) = 0
        AND (cardinality(pl.schools) = 0 OR s.school_sourced_ids && pl.schools)
        AND (cardinality(pl.grades) = 0 OR s.grades && pl.grades)
      UNION ALL
      SELECT pl.id, s.sid
      FROM pl JOIN (${pools.scoped > 0 ? afterMemberships : sql`SELECT NULL::text AS user_sid, NULL::text AS class_sid WHERE false`}) ae ON true
      JOIN a_users s ON s.sid = ae.user_sid AND s.role = 'student'
      JOIN a_classes c ON c.sid = ae.class_sid
      LEFT JOIN a_courses co ON co.sid = c.course_sid
      WHERE cardinality(pl.schools) + cardinality(pl.grades) + cardinality(pl.courses) > 0
        AND (cardinality(pl.schools) = 0 OR c.school_sid = ANY(pl.schools))
        AND (cardinality(pl.courses) = 0 OR co.course_code = ANY(pl.courses) OR c.course_sid = ANY(pl.courses))
        AND (cardinality(pl.grades) = 0 OR c.grades && pl.grades OR s.grades && pl.grades)
    ) x`.execute(trx);
  await sql`CREATE UNIQUE INDEX ON elig (pool_id, sid)`.execute(trx);
  await sql`ANALYZE elig`.execute(trx);

  // Seats held and the wait-list now, by sourcedId.
  const eligible = (pool: string) => opts.everyone
    ? sql`EXISTS (SELECT 1 FROM elig e WHERE e.pool_id = ${sql.ref(pool)} AND e.sid = u.sourced_id)`
    : sql`(NOT EXISTS (SELECT 1 FROM touched t WHERE t.sid = u.sourced_id) OR EXISTS (SELECT 1 FROM elig e WHERE e.pool_id = ${sql.ref(pool)} AND e.sid = u.sourced_id))`;
  // For a delta, only the touched people's seats are read, plus how many
  // seats everyone else holds per pool (they keep them). Should the pool then
  // hold more eligible students than seats (it was shrunk outside a
  // settlement), every seat is read and ranked as for a complete snapshot.
  const heldRows = (all: boolean) => sql`
    CREATE TEMP TABLE held ON COMMIT DROP AS
    SELECT s.id AS seat_id, s.pool_id, u.sourced_id AS sid, s.assigned_at AS at, ${eligible('s.pool_id')} AS eligible
    FROM seat_assignments s JOIN pl ON pl.id = s.pool_id JOIN users u ON u.id = s.user_id
    WHERE s.released_at IS NULL
      ${all ? sql`` : sql`AND s.user_id IN (SELECT l.id FROM users l JOIN touched t ON t.sid = l.sourced_id WHERE l.district_id = ${d})`}`;
  await heldRows(opts.everyone).execute(trx);
  await sql`CREATE TEMP TABLE others (pool_id bigint PRIMARY KEY, n bigint NOT NULL) ON COMMIT DROP`.execute(trx);
  if (!opts.everyone) {
    await sql`
      INSERT INTO others
      SELECT pl.id, (SELECT count(*) FROM seat_assignments s WHERE s.pool_id = pl.id AND s.released_at IS NULL)
                    - (SELECT count(*) FROM held h WHERE h.pool_id = pl.id) FROM pl`.execute(trx);
    const { rows: [over] } = await sql<{ over: boolean }>`
      SELECT COALESCE(bool_or(o.n + (SELECT count(*) FROM held h WHERE h.pool_id = pl.id AND h.eligible) > pl.seats), false) AS over
      FROM pl JOIN others o ON o.pool_id = pl.id`.execute(trx);
    if (over?.over) {
      await sql`DROP TABLE held`.execute(trx);
      await sql`DELETE FROM others`.execute(trx);
      await heldRows(true).execute(trx);
    }
  }
  await sql`
    CREATE TEMP TABLE queued ON COMMIT DROP AS
    SELECT w.pool_id, u.sourced_id AS sid, w.queued_at AS at, ${eligible('w.pool_id')} AS eligible
    FROM waitlist w JOIN pl ON pl.id = w.pool_id JOIN users u ON u.id = w.user_id`.execute(trx);
  await sql`CREATE INDEX ON held (pool_id, sid)`.execute(trx);
  await sql`CREATE INDEX ON queued (pool_id, sid)`.execute(trx);
  await sql`ANALYZE held`.execute(trx);
  await sql`ANALYZE queued`.execute(trx);

  // Eligible holders in assignment order: the first `seats` keep theirs.
  await sql`
    CREATE TEMP TABLE kept ON COMMIT DROP AS
    SELECT h.*, row_number() OVER (PARTITION BY h.pool_id ORDER BY h.at, h.sid COLLATE "C") AS rn, pl.seats
    FROM held h JOIN pl ON pl.id = h.pool_id WHERE h.eligible`.execute(trx);
  await sql`CREATE INDEX ON kept (pool_id, sid)`.execute(trx);
  await sql`ANALYZE kept`.execute(trx);

  // Candidates: the wait-list first-come, then eligible students nobody has seated or queued, by sourcedId.
  await sql`
    CREATE TEMP TABLE cand ON COMMIT DROP AS
    SELECT c.*, row_number() OVER (PARTITION BY c.pool_id ORDER BY c.grp, c.at, c.sid COLLATE "C") AS rn
    FROM (
      SELECT q.pool_id, q.sid, 0 AS grp, q.at, true AS queued FROM queued q
      WHERE q.eligible AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.pool_id = q.pool_id AND k.sid = q.sid AND k.rn <= k.seats)
      UNION ALL
      SELECT e.pool_id, e.sid, 1, NULL, false FROM elig e
      WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.pool_id = e.pool_id AND h.sid = e.sid)
        AND NOT EXISTS (SELECT 1 FROM queued q WHERE q.pool_id = e.pool_id AND q.sid = e.sid)
    ) c`.execute(trx);
  await sql`ANALYZE cand`.execute(trx);

  await sql`
    INSERT INTO p_seats (pool_id, product, sid, action, reason, seat_id, ord)
    -- Holders out of scope, or gone.
    SELECT h.pool_id, pl.product, h.sid, 'release', COALESCE(pu.reason, 'out-of-scope'), h.seat_id, NULL::bigint
    FROM held h JOIN pl ON pl.id = h.pool_id LEFT JOIN p_users pu ON pu.sid = h.sid AND pu.action = 'delete'
    WHERE NOT h.eligible
    UNION ALL
    -- A pool shrunk below its holders: the latest seats go back, their students to the wait-list.
    SELECT k.pool_id, pl.product, k.sid, 'release', 'pool-reduced', k.seat_id, NULL::bigint FROM kept k JOIN pl ON pl.id = k.pool_id WHERE k.rn > k.seats
    UNION ALL
    SELECT k.pool_id, pl.product, k.sid, 'waitlist', NULL::text, NULL::bigint, row_number() OVER (ORDER BY pl.product COLLATE "C", k.rn)
    FROM kept k JOIN pl ON pl.id = k.pool_id WHERE k.rn > k.seats`.execute(trx);
  await sql`
    WITH free AS (
      SELECT pl.id AS pool_id, pl.product,
        pl.seats - (SELECT count(*) FROM kept k WHERE k.pool_id = pl.id AND k.rn <= k.seats) - COALESCE((SELECT n FROM others o WHERE o.pool_id = pl.id), 0) AS free
      FROM pl
    )
    INSERT INTO p_seats (pool_id, product, sid, action, reason, seat_id, ord)
    SELECT c.pool_id, f.product, c.sid, 'assign', NULL::text, NULL::bigint, NULL::bigint FROM cand c JOIN free f ON f.pool_id = c.pool_id WHERE c.rn <= f.free
    UNION ALL
    SELECT c.pool_id, f.product, c.sid, 'unwaitlist', NULL, NULL, NULL FROM cand c JOIN free f ON f.pool_id = c.pool_id WHERE c.rn <= f.free AND c.queued
    UNION ALL
    -- Wait-listed after the bumped holders of the same pool (pools in product order).
    SELECT c.pool_id, f.product, c.sid, 'waitlist', NULL, NULL,
      (SELECT count(*) FROM p_seats x WHERE x.action = 'waitlist') + row_number() OVER (ORDER BY f.product COLLATE "C", c.rn)
    FROM cand c JOIN free f ON f.pool_id = c.pool_id WHERE c.rn > f.free AND NOT c.queued
    UNION ALL
    -- Queued but no longer eligible, or holding a seat now.
    SELECT q.pool_id, f.product, q.sid, 'unwaitlist', NULL, NULL, NULL FROM queued q JOIN free f ON f.pool_id = q.pool_id
    WHERE NOT q.eligible OR EXISTS (SELECT 1 FROM kept k WHERE k.pool_id = q.pool_id AND k.sid = q.sid AND k.rn <= k.seats)`.execute(trx);

  await sql`ANALYZE p_seats`.execute(trx);
  const { rows: [c] } = await sql<{ assigned: number; released: number; waitlisted: number }>`
    SELECT count(*) FILTER (WHERE action = 'assign')::int AS assigned, count(*) FILTER (WHERE action = 'release')::int AS released,
           count(*) FILTER (WHERE action = 'waitlist')::int AS waitlisted FROM p_seats`.execute(trx);
  return c ?? { assigned: 0, released: 0, waitlisted: 0 };
}
