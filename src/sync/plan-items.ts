import { sql, type Transaction } from 'kysely';
import type { Db } from '../../db/connection.js';
import type { Database } from '../../db/schema.js';
import type { SnapshotTables } from '../reconcile/sql/snapshot-source.js';
import { getRun } from './runs.js';

// A HELD or dry run keeps what it would do, person by person, so an ops
// engineer approves knowing exactly who leaves, which seats are released and
// who receives them. Applied runs need none: their audit rows say it.

export const PLAN_SECTIONS = ['users', 'enrollments', 'seats'] as const;
export type PlanSection = (typeof PLAN_SECTIONS)[number];

export interface PlanItem {
  section: PlanSection;
  action: string;
  sourcedId: string;
  name: string | null;
  role: string | null;
  classSourcedId: string | null;
  product: string | null;
  reason: string | null;
}

/**
 * Keeps what a HELD or dry run would do, from the plan the reconciler left in
 * the transaction (src/reconcile/sql/plan.ts), one INSERT … SELECT: people by
 * name and role (as the snapshot has them, else as the district does).
 */
export async function recordPlanItems(trx: Transaction<Database>, runId: string, snap: SnapshotTables, districtId: string, provider: string): Promise<void> {
  await trx.deleteFrom('run_plan_items').where('run_id', '=', runId).execute();
  await sql`
    INSERT INTO run_plan_items (run_id, seq, section, action, sourced_id, name, role, class_sourced_id, product, reason)
    SELECT ${runId}::uuid, row_number() OVER (ORDER BY i.rank, i.sid COLLATE "C", i.class_sid COLLATE "C", i.product COLLATE "C"),
      i.section, i.action, i.sid,
      COALESCE(NULLIF(trim(s.given_name || ' ' || s.family_name), ''), NULLIF(trim(l.given_name || ' ' || l.family_name), '')),
      COALESCE(s.role, l.role), i.class_sid, i.product, i.reason
    FROM (
      SELECT 'users' AS section, action, sid, NULL AS class_sid, NULL AS product, reason,
        CASE action WHEN 'delete' THEN 1 WHEN 'reactivate' THEN 2 WHEN 'create' THEN 3 ELSE 4 END AS rank FROM p_users
      UNION ALL
      SELECT 'enrollments', action, user_sid, class_sid, NULL, reason, CASE action WHEN 'end' THEN 5 ELSE 6 END FROM p_enrollments
      UNION ALL
      SELECT 'seats', action, sid, NULL, product, reason, CASE action WHEN 'release' THEN 7 WHEN 'assign' THEN 8 ELSE 9 END FROM p_seats
      WHERE action IN ('release', 'assign', 'waitlist')
    ) i
    LEFT JOIN ${snap.users} s ON s.sourced_id = i.sid  -- one row per user once duplicates are merged
    LEFT JOIN users l ON l.district_id = ${districtId} AND l.provider = ${provider} AND l.sourced_id = i.sid`.execute(trx);
}

export interface PlanPage {
  runId: string;
  status: string;
  section: PlanSection | null;
  page: number;
  pageSize: number;
  total: number;
  /** Item counts by section and action, whatever the page. */
  summary: Record<string, Record<string, number>>;
  items: PlanItem[];
}

/** One page of what a HELD or dry run would do (or did not do); applied runs have none left. */
export async function readPlan(db: Db, runId: string, opts: { section?: PlanSection; page?: number; pageSize?: number } = {}): Promise<PlanPage> {
  const run = await getRun(db, runId);
  const page = Math.max(1, opts.page ?? 1);
  const pageSize = Math.min(Math.max(1, opts.pageSize ?? 100), 1000);
  let base = db.selectFrom('run_plan_items').where('run_id', '=', runId);
  if (opts.section) base = base.where('section', '=', opts.section);
  const [rows, totals, summaryRows] = await Promise.all([
    base.selectAll().orderBy('seq').limit(pageSize).offset((page - 1) * pageSize).execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
    db.selectFrom('run_plan_items').select(['section', 'action', (eb) => eb.fn.countAll<string>().as('n')]).where('run_id', '=', runId).groupBy(['section', 'action']).execute(),
  ]);
  const summary: Record<string, Record<string, number>> = {};
  for (const r of summaryRows) (summary[r.section] ??= {})[r.action] = Number(r.n);
  return {
    runId, status: run.status, section: opts.section ?? null, page, pageSize, total: Number(totals.n), summary,
    items: rows.map((r) => ({
      section: r.section as PlanSection, action: r.action, sourcedId: r.sourced_id, name: r.name, role: r.role,
      classSourcedId: r.class_sourced_id, product: r.product, reason: r.reason,
    })),
  };
}
