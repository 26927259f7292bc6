import { sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Plan } from '../../src/reconcile/types.js';

// Plans in one comparable shape: what the TypeScript reconciler (the reference
// definition) returns, and what the set-based one left in its p_* tables.

export interface ComparablePlan {
  entities: string[];
  users: string[];
  enrollments: string[];
  seats: string[];
}

const sorted = (xs: string[]) => [...xs].sort();

export function comparableTsPlan(plan: Plan): ComparablePlan {
  const entities: string[] = [];
  for (const [name, changes] of [['school', plan.orgs], ['term', plan.academicSessions], ['course', plan.courses], ['class', plan.classes]] as const) {
    for (const r of changes.create) entities.push(`${name} create ${r.sourcedId}`);
    for (const r of changes.update) entities.push(`${name} update ${r.sourcedId}`);
    for (const sid of changes.retire) entities.push(`${name} retire ${sid}`);
  }
  return {
    entities: sorted(entities),
    users: sorted([
      ...plan.users.create.map((u) => `create ${u.sourcedId}`), ...plan.users.update.map((u) => `update ${u.sourcedId}`),
      ...plan.users.reactivate.map((u) => `reactivate ${u.sourcedId}`), ...plan.users.delete.map((d) => `delete ${d.sourcedId} ${d.reason}`),
    ]),
    enrollments: sorted([
      ...plan.enrollments.add.map((e) => `add ${e.classSourcedId}/${e.userSourcedId}`),
      ...plan.enrollments.end.map((e) => `end ${e.classSourcedId}/${e.userSourcedId} ${e.reason}`),
    ]),
    seats: sorted([
      ...plan.seats.assign.map((s) => `assign ${s.product} ${s.userSourcedId}`),
      ...plan.seats.release.map((s) => `release ${s.product} ${s.userSourcedId} ${s.reason}`),
      ...plan.seats.waitlistAdd.map((s) => `waitlist ${s.product} ${s.userSourcedId}`),
      ...plan.seats.waitlistRemove.map((s) => `unwaitlist ${s.product} ${s.userSourcedId}`),
    ]),
  };
}

/** The plan src/reconcile/sql/plan.ts left in the transaction. */
export async function comparableDbPlan(trx: Transaction<Database>): Promise<ComparablePlan> {
  const rows = async (q: ReturnType<typeof sql>) => ((await q.execute(trx)).rows as { line: string }[]).map((r) => r.line);
  return {
    entities: sorted(await rows(sql`
      SELECT 'school ' || action || ' ' || sourced_id AS line FROM p_schools UNION ALL SELECT 'term ' || action || ' ' || sourced_id FROM p_terms
      UNION ALL SELECT 'course ' || action || ' ' || sourced_id FROM p_courses UNION ALL SELECT 'class ' || action || ' ' || sourced_id FROM p_classes`)),
    users: sorted(await rows(sql`SELECT action || ' ' || sid || COALESCE(' ' || reason, '') AS line FROM p_users`)),
    enrollments: sorted(await rows(sql`SELECT action || ' ' || class_sid || '/' || user_sid || COALESCE(' ' || reason, '') AS line FROM p_enrollments`)),
    seats: sorted(await rows(sql`SELECT action || ' ' || product || ' ' || sid || COALESCE(' ' || reason, '') AS line FROM p_seats`)),
  };
}

/** Wait-list order per pool, as the TS plan queues it (bumped holders, then overflow). */
export function tsWaitlistOrder(plan: Plan): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of plan.seats.waitlistAdd) (out[s.product] ??= []).push(s.userSourcedId);
  return out;
}

export async function dbWaitlistOrder(trx: Transaction<Database>): Promise<Record<string, string[]>> {
  const { rows } = await sql<{ product: string; sid: string }>`SELECT product, sid FROM p_seats WHERE action = 'waitlist' ORDER BY product, ord`.execute(trx);
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.product] ??= []).push(r.sid);
  return out;
}
