import { sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import { PERSON_ACTION, PERSON_ENTITY } from '../audit/person-roster.js';
import { ENTITY_TABLES, planInDb, USER_COLS, type DbPlan } from '../reconcile/sql/plan.js';
import { snapshotInTables } from '../reconcile/sql/snapshot-source.js';
import type { Snapshot } from '../reconcile/types.js';
import { disturbMirror } from './snapshot-mirror.js';

type Trx = Transaction<Database>;

export interface ApplyScope { districtId: string; provider: string; runId: string | null }

const DATE_COLUMNS = new Set(['start_date', 'end_date']);

/** Rows a run must add to a table before it re-analyzes it (ANALYZE samples ~30k rows: well under a second at any size). */
const GROWTH_WORTH_ANALYZING = 1000;
const value = (c: string) => (DATE_COLUMNS.has(c) ? `p.${c}::date` : `p.${c}`);

/**
 * Writes the plan src/reconcile/sql/plan.ts left in the transaction's p_*
 * tables, with set-based statements: either all of a run's changes land, with
 * their audit rows, or none do. Rows are addressed by id where they existed
 * (the plan carries them) and by sourcedId, through the unique index, where the
 * run creates them.
 */
export async function applyPlan(trx: Trx, scope: ApplyScope): Promise<Record<string, number>> {
  const { districtId: d, provider: p, runId } = scope;
  const run = (q: ReturnType<typeof sql>) => q.execute(trx);
  // Tables that grew a lot in this run are analyzed before they are joined
  // again (here, and by the next run): statistics taken before a first sync
  // say the district is empty, and a planner that believes it picks nested
  // loops that cost a million times over. Rows this transaction inserted count.
  // The count is the INSERT's own: no second pass over the plan.
  const insertAndAnalyze = async (table: string, insert: ReturnType<typeof sql>) => {
    const added = Number((await run(insert)).numAffectedRows ?? 0);
    if (added >= GROWTH_WORTH_ANALYZING) await run(sql`ANALYZE ${sql.table(table)}`);
  };
  const timings: Record<string, number> = {};
  // A plan that changes anything changes the district under its mirror (a
  // sync that keeps its own snapshot as the new mirror says so after this).
  // An empty one (a delta with nothing new, an ops action already in effect)
  // leaves the district, and the mirror's claim about it, as they were.
  const { rows: [planned] } = await sql<{ any: boolean }>`
    SELECT ${sql.join([...ENTITY_TABLES.map((e) => `p_${e.table}`), 'p_users', 'p_enrollments', 'p_seats']
      .map((t) => sql`EXISTS (SELECT 1 FROM ${sql.table(t)})`), sql` OR `)} AS any`.execute(trx);
  if (planned?.any) await disturbMirror(trx, d);
  // The district's own tables keep their full statistics (the plan sampled its temporary ones lightly).
  await run(sql`RESET default_statistics_target`);
  let t0 = performance.now();
  const lap = (step: string) => { timings[step] = Math.round(performance.now() - t0); t0 = performance.now(); };

  for (const e of ENTITY_TABLES) {
    const table = sql.table(e.table);
    const plan = sql.table(`p_${e.table}`);
    const cols = sql.raw(e.cols.join(', '));
    // New rows by plain INSERT, changed ones by id: no speculative upsert per row.
    await insertAndAnalyze(e.table, sql`
      INSERT INTO ${table} (district_id, provider, sourced_id, status, ${cols})
      SELECT ${d}, ${p}, p.sourced_id, 'ACTIVE', ${sql.raw(e.cols.map(value).join(', '))} FROM ${plan} p WHERE p.action = 'create'`);
    await run(sql`
      UPDATE ${table} t SET ${sql.raw(e.cols.map((c) => `${c} = ${value(c)}`).join(', '))}, status = 'ACTIVE', updated_at = now()
      FROM ${plan} p WHERE p.action = 'update' AND t.id = p.local_id`);
    await run(sql`UPDATE ${table} t SET status = 'RETIRED', updated_at = now() FROM ${plan} p WHERE p.action = 'retire' AND t.id = p.local_id`);
    await run(sql`
      INSERT INTO audit_log (district_id, run_id, entity, entity_key, action)
      SELECT ${d}, ${runId}::uuid, ${e.entity}, sourced_id, action FROM ${plan}`);
  }
  lap('entities');

  // Reactivation keeps the account's id: the row is updated in place, never re-created.
  const userCols = sql.raw(USER_COLS.join(', '));
  await insertAndAnalyze('users', sql`
    INSERT INTO users (district_id, provider, sourced_id, ${userCols})
    SELECT ${d}, ${p}, p.sid, ${sql.raw(USER_COLS.map((c) => `p.${c}`).join(', '))} FROM p_users p WHERE p.action = 'create'
    ORDER BY p.sid`);
  await run(sql`
    UPDATE users u SET ${sql.raw(USER_COLS.map((c) => `${c} = p.${c}`).join(', '))}, status = 'ACTIVE', deleted_at = NULL, updated_at = now()
    FROM p_users p WHERE p.action IN ('update', 'reactivate') AND u.id = p.local_id`);
  await run(sql`
    UPDATE users u SET status = 'DELETED', deleted_at = now(), updated_at = now()
    FROM p_users p WHERE p.action = 'delete' AND u.id = p.local_id AND u.status = 'ACTIVE'`);
  await run(sql`
    INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail)
    SELECT ${d}, ${runId}::uuid, 'user', sid, action, CASE WHEN reason IS NULL THEN NULL ELSE jsonb_build_object('reason', reason) END FROM p_users
    ORDER BY sid`);
  lap('users');

  // Ends before adds: a membership ended and re-added in one run must not trip the one-active-membership index.
  await run(sql`
    UPDATE enrollments e SET ended_at = now(), ended_reason = p.reason
    FROM p_enrollments p WHERE p.action = 'end' AND e.id = p.enrollment_id AND e.ended_at IS NULL`);
  await insertAndAnalyze('enrollments', sql`
    INSERT INTO enrollments (district_id, user_id, class_id, role, begin_date, end_date)
    SELECT ${d}, u.id, c.id, p.role, p.begin_date::date, p.end_date::date
    FROM p_enrollments p
    JOIN users u ON u.district_id = ${d} AND u.provider = ${p} AND u.sourced_id = p.user_sid
    JOIN classes c ON c.district_id = ${d} AND c.provider = ${p} AND c.sourced_id = p.class_sid
    WHERE p.action = 'add'
    -- In the unique index's order: a million random-order inserts into a btree keyed by a
    -- random uuid touch a different page each; sorted, they append.
    ORDER BY u.id, c.id`);
  lap('enrollments');

  await run(sql`
    UPDATE seat_assignments s SET released_at = now(), release_reason = p.reason
    FROM p_seats p WHERE p.action = 'release' AND s.id = p.seat_id AND s.released_at IS NULL`);
  await run(sql`
    DELETE FROM waitlist w USING p_seats p, users u
    WHERE p.action = 'unwaitlist' AND u.district_id = ${d} AND u.provider = ${p} AND u.sourced_id = p.sid AND w.pool_id = p.pool_id AND w.user_id = u.id`);
  await insertAndAnalyze('seat_assignments', sql`
    INSERT INTO seat_assignments (pool_id, user_id, run_id)
    SELECT p.pool_id, u.id, ${runId}::uuid FROM p_seats p JOIN users u ON u.district_id = ${d} AND u.provider = ${p} AND u.sourced_id = p.sid
    WHERE p.action = 'assign' ORDER BY p.pool_id, u.id`);
  // The plan's order is the wait-list's order: each entry is queued a microsecond after the one before.
  await run(sql`
    INSERT INTO waitlist (pool_id, user_id, queued_at)
    SELECT p.pool_id, u.id, now() + p.ord * interval '1 microsecond'
    FROM p_seats p JOIN users u ON u.district_id = ${d} AND u.provider = ${p} AND u.sourced_id = p.sid
    WHERE p.action = 'waitlist'
    ON CONFLICT (pool_id, user_id) DO NOTHING`);
  lap('seats');

  await auditPeople(trx, scope);
  lap('audit');
  return timings;
}

/**
 * One compact row per person for the run's enrollment and seat changes
 * (src/audit/person-roster.ts has the format, src/audit/history.ts reads it):
 * a first sync writes about one row per person rather than one per membership
 * and seat. Only the parts that changed are kept.
 */
async function auditPeople(trx: Trx, scope: ApplyScope): Promise<void> {
  await sql`
    INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail)
    SELECT ${scope.districtId}, ${scope.runId}::uuid, ${PERSON_ENTITY}, sid, ${PERSON_ACTION}, jsonb_strip_nulls(jsonb_build_object(
      'enrollments', CASE WHEN added IS NOT NULL OR ended IS NOT NULL THEN jsonb_build_object('added', added, 'ended', ended) END,
      'seats', CASE WHEN assigned IS NOT NULL OR released IS NOT NULL OR waitlisted IS NOT NULL OR unwaitlisted IS NOT NULL
                    THEN jsonb_build_object('assigned', assigned, 'released', released, 'waitlisted', waitlisted, 'unwaitlisted', unwaitlisted) END))
    FROM (
      SELECT sid,
        jsonb_agg(item ORDER BY item) FILTER (WHERE part = 'added') AS added,
        jsonb_agg(jsonb_build_object('class', item, 'reason', reason) ORDER BY item) FILTER (WHERE part = 'ended') AS ended,
        jsonb_agg(item ORDER BY item) FILTER (WHERE part = 'assign') AS assigned,
        jsonb_agg(jsonb_build_object('product', item, 'reason', reason) ORDER BY item) FILTER (WHERE part = 'release') AS released,
        jsonb_agg(item ORDER BY item) FILTER (WHERE part = 'waitlist') AS waitlisted,
        jsonb_agg(item ORDER BY item) FILTER (WHERE part = 'unwaitlist') AS unwaitlisted
      FROM (
        SELECT user_sid AS sid, CASE action WHEN 'add' THEN 'added' ELSE 'ended' END AS part, class_sid AS item, reason FROM p_enrollments
        UNION ALL
        SELECT sid, action, product, reason FROM p_seats
      ) changes GROUP BY sid
    ) people ORDER BY sid`.execute(trx);
}

/**
 * A small change built in memory (an ops removal, a pool resized, a sign-in's
 * one-user delta) through the same reconciler and license rules as a sync:
 * planned, then applied under the caller's run. The caller holds the district lock.
 */
export async function planSmallChange(trx: Trx, scope: Omit<ApplyScope, 'runId'>, snapshot: Snapshot, opts: { asOf: string; removals?: ReadonlyMap<string, string>; allSeats?: boolean }): Promise<DbPlan> {
  const tables = await snapshotInTables(trx, snapshot);
  return planInDb(trx, tables, { districtId: scope.districtId, provider: scope.provider, complete: snapshot.complete, asOf: opts.asOf, removals: opts.removals, allSeats: opts.allSeats });
}
