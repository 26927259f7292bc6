import { sql, type Transaction } from 'kysely';
import type { Db } from '../../db/connection.js';
import type { Database } from '../../db/schema.js';
import type { User } from '../domain/model.js';
import type { LocalState, Plan, Snapshot } from '../reconcile/types.js';
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

const CHUNK = 10000;

export async function recordPlanItems(trx: Transaction<Database>, runId: string, plan: Plan, snapshot: Snapshot, local: LocalState): Promise<void> {
  const person = (sid: string): User | undefined => snapshot.users.get(sid) ?? local.users.get(sid)?.record;
  const item = (section: PlanSection, action: string, sourcedId: string, extra: Partial<PlanItem> = {}): PlanItem => {
    const u = person(sourcedId);
    return { section, action, sourcedId, name: u ? `${u.givenName} ${u.familyName}`.trim() : null, role: u?.role ?? null, classSourcedId: null, product: null, reason: null, ...extra };
  };
  const items: PlanItem[] = [
    ...plan.users.delete.map((d) => item('users', 'delete', d.sourcedId, { reason: d.reason })),
    ...plan.users.reactivate.map((u) => item('users', 'reactivate', u.sourcedId)),
    ...plan.users.create.map((u) => item('users', 'create', u.sourcedId)),
    ...plan.users.update.map((u) => item('users', 'update', u.sourcedId)),
    ...plan.enrollments.end.map((e) => item('enrollments', 'end', e.userSourcedId, { classSourcedId: e.classSourcedId, reason: e.reason })),
    ...plan.enrollments.add.map((e) => item('enrollments', 'add', e.userSourcedId, { classSourcedId: e.classSourcedId })),
    ...plan.seats.release.map((s) => item('seats', 'release', s.userSourcedId, { product: s.product, reason: s.reason })),
    ...plan.seats.assign.map((s) => item('seats', 'assign', s.userSourcedId, { product: s.product })),
    ...plan.seats.waitlistAdd.map((s) => item('seats', 'waitlist', s.userSourcedId, { product: s.product })),
  ];
  await trx.deleteFrom('run_plan_items').where('run_id', '=', runId).execute();
  for (let i = 0; i < items.length; i += CHUNK) {
    const part = items.slice(i, i + CHUNK);
    const col = <K extends keyof PlanItem>(k: K) => part.map((p) => p[k]);
    await sql`
      INSERT INTO run_plan_items (run_id, seq, section, action, sourced_id, name, role, class_sourced_id, product, reason)
      SELECT ${runId}::uuid, ${i} + r.ord, r.section, r.action, r.sourced_id, r.name, r.role, r.class_sourced_id, r.product, r.reason
      FROM unnest(${col('section')}::text[], ${col('action')}::text[], ${col('sourcedId')}::text[], ${col('name')}::text[], ${col('role')}::text[],
                  ${col('classSourcedId')}::text[], ${col('product')}::text[], ${col('reason')}::text[])
        WITH ORDINALITY AS r(section, action, sourced_id, name, role, class_sourced_id, product, reason, ord)`.execute(trx);
  }
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
