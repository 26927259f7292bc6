import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Plan } from '../reconcile/types.js';

type Trx = Transaction<Database>;

/** Rows per statement: large enough to amortise round trips, small enough to keep each statement's memory modest. */
const CHUNK = 5000;

interface Scope { districtId: string; provider: string; runId: string | null }

function* chunks<T>(items: readonly T[], size = CHUNK): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

const json = (rows: unknown[]) => sql`${JSON.stringify(rows)}::jsonb`;

async function audit(trx: Trx, scope: Scope, entity: string, rows: { key: string; action: string; detail?: Record<string, unknown> }[]): Promise<void> {
  for (const part of chunks(rows)) {
    await sql`
      INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail)
      SELECT ${scope.districtId}, ${scope.runId}::uuid, ${entity}, r.key, r.action, r.detail
      FROM jsonb_to_recordset(${json(part)}) AS r(key text, action text, detail jsonb)`.execute(trx);
  }
}

const ENTITY_NAMES = { schools: 'school', terms: 'term', courses: 'course', classes: 'class' } as const;

/** Columns each roster table takes from its canonical record, in SQL. */
const ENTITY_COLUMNS: Record<'schools' | 'terms' | 'courses' | 'classes', { defs: string; names: string[]; from: (r: never) => Record<string, unknown> }> = {
  schools: { defs: 'name text, identifier text', names: ['name', 'identifier'], from: (o: { name: string; identifier: string | null }) => ({ name: o.name, identifier: o.identifier }) },
  terms: { defs: 'title text, start_date date, end_date date', names: ['title', 'start_date', 'end_date'], from: (t: { title: string; startDate: string | null; endDate: string | null }) => ({ title: t.title, start_date: t.startDate, end_date: t.endDate }) },
  courses: { defs: 'title text, course_code text', names: ['title', 'course_code'], from: (c: { title: string; courseCode: string | null }) => ({ title: c.title, course_code: c.courseCode }) },
  classes: {
    defs: 'title text, class_code text, course_sourced_id text, school_sourced_id text, term_sourced_ids text[], grades text[]',
    names: ['title', 'class_code', 'course_sourced_id', 'school_sourced_id', 'term_sourced_ids', 'grades'],
    from: (c: { title: string; classCode: string | null; courseSourcedId: string | null; schoolSourcedId: string | null; termSourcedIds: string[]; grades: string[] }) => ({
      title: c.title, class_code: c.classCode, course_sourced_id: c.courseSourcedId, school_sourced_id: c.schoolSourcedId, term_sourced_ids: c.termSourcedIds, grades: c.grades,
    }),
  },
};

async function applyEntities(trx: Trx, scope: Scope, table: keyof typeof ENTITY_COLUMNS, changes: { create: { sourcedId: string }[]; update: { sourcedId: string }[]; retire: string[] }): Promise<void> {
  const cols = ENTITY_COLUMNS[table];
  const rows = [
    ...changes.create.map((r) => ({ sourced_id: r.sourcedId, action: 'create', ...cols.from(r as never) })),
    ...changes.update.map((r) => ({ sourced_id: r.sourcedId, action: 'update', ...cols.from(r as never) })),
  ];
  const names = sql.raw(cols.names.join(', '));
  const fromR = sql.raw(cols.names.map((n) => `r.${n}`).join(', '));
  const setters = sql.raw(cols.names.map((n) => `${n} = EXCLUDED.${n}`).join(', '));
  for (const part of chunks(rows)) {
    await sql`
      INSERT INTO ${sql.table(table)} (district_id, provider, sourced_id, status, ${names})
      SELECT ${scope.districtId}, ${scope.provider}, r.sourced_id, 'ACTIVE', ${fromR}
      FROM jsonb_to_recordset(${json(part)}) AS r(sourced_id text, ${sql.raw(cols.defs)})
      ON CONFLICT (district_id, provider, sourced_id) DO UPDATE SET ${setters}, status = 'ACTIVE', updated_at = now()`.execute(trx);
  }
  for (const part of chunks(changes.retire)) {
    await sql`
      UPDATE ${sql.table(table)} SET status = 'RETIRED', updated_at = now()
      WHERE district_id = ${scope.districtId} AND provider = ${scope.provider} AND sourced_id = ANY(${part}::text[])`.execute(trx);
  }
  await audit(trx, scope, ENTITY_NAMES[table], [
    ...rows.map((r) => ({ key: r.sourced_id, action: r.action })),
    ...changes.retire.map((key) => ({ key, action: 'retire' })),
  ]);
}

// Joins that turn the plan's sourcedIds back into row ids, always scoped to the district.
const userJoin = (scope: Scope, column: RawBuilder<unknown>) =>
  sql`users u ON u.district_id = ${scope.districtId} AND u.provider = ${scope.provider} AND u.sourced_id = ${column}`;
const classJoin = (scope: Scope, column: RawBuilder<unknown>) =>
  sql`classes c ON c.district_id = ${scope.districtId} AND c.provider = ${scope.provider} AND c.sourced_id = ${column}`;
const poolJoin = (scope: Scope, column: RawBuilder<unknown>) =>
  sql`license_pools p ON p.district_id = ${scope.districtId} AND p.product = ${column}`;

/**
 * Writes a plan. Runs inside the caller's transaction: either all of a run's
 * changes land, with their audit rows, or none do.
 */
export async function applyPlan(trx: Trx, scope: Scope, plan: Plan): Promise<void> {
  await applyEntities(trx, scope, 'schools', plan.orgs);
  await applyEntities(trx, scope, 'terms', plan.academicSessions);
  await applyEntities(trx, scope, 'courses', plan.courses);
  await applyEntities(trx, scope, 'classes', plan.classes);

  const userRows = [
    ...plan.users.create.map((u) => ({ u, action: 'create' })),
    ...plan.users.update.map((u) => ({ u, action: 'update' })),
    ...plan.users.reactivate.map((u) => ({ u, action: 'reactivate' })),
  ].map(({ u, action }) => ({
    sourced_id: u.sourcedId, action, role: u.role, given_name: u.givenName, family_name: u.familyName,
    email: u.email, username: u.username, grades: u.grades, school_sourced_ids: u.orgSourcedIds,
  }));
  for (const part of chunks(userRows)) {
    // Reactivation keeps the account's id: the row is updated in place, never re-created.
    await sql`
      INSERT INTO users (district_id, provider, sourced_id, role, given_name, family_name, email, username, grades, school_sourced_ids)
      SELECT ${scope.districtId}, ${scope.provider}, r.sourced_id, r.role, r.given_name, r.family_name, r.email, r.username, r.grades, r.school_sourced_ids
      FROM jsonb_to_recordset(${json(part)}) AS r(sourced_id text, role text, given_name text, family_name text, email text, username text, grades text[], school_sourced_ids text[])
      ON CONFLICT (district_id, provider, sourced_id) DO UPDATE SET
        role = EXCLUDED.role, given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name, email = EXCLUDED.email,
        username = EXCLUDED.username, grades = EXCLUDED.grades, school_sourced_ids = EXCLUDED.school_sourced_ids,
        status = 'ACTIVE', deleted_at = NULL, updated_at = now()`.execute(trx);
  }
  for (const part of chunks(plan.users.delete)) {
    await sql`
      UPDATE users SET status = 'DELETED', deleted_at = now(), updated_at = now()
      WHERE district_id = ${scope.districtId} AND provider = ${scope.provider} AND status = 'ACTIVE'
        AND sourced_id = ANY(${part.map((d) => d.sourcedId)}::text[])`.execute(trx);
  }
  await audit(trx, scope, 'user', [
    ...userRows.map((r) => ({ key: r.sourced_id, action: r.action })),
    ...plan.users.delete.map((d) => ({ key: d.sourcedId, action: 'delete', detail: { reason: d.reason } })),
  ]);

  // Ends before adds: a membership ended and re-added in one run must not trip the
  // one-active-membership index.
  const ends = plan.enrollments.end.map((e) => ({ user_sid: e.userSourcedId, class_sid: e.classSourcedId, reason: e.reason }));
  for (const part of chunks(ends)) {
    await sql`
      UPDATE enrollments e SET ended_at = now(), ended_reason = r.reason
      FROM jsonb_to_recordset(${json(part)}) AS r(user_sid text, class_sid text, reason text)
      JOIN ${userJoin(scope, sql`r.user_sid`)} JOIN ${classJoin(scope, sql`r.class_sid`)}
      WHERE e.user_id = u.id AND e.class_id = c.id AND e.ended_at IS NULL`.execute(trx);
  }
  const adds = plan.enrollments.add.map((e) => ({ user_sid: e.userSourcedId, class_sid: e.classSourcedId, role: e.role, begin_date: e.beginDate, end_date: e.endDate }));
  for (const part of chunks(adds)) {
    await sql`
      INSERT INTO enrollments (district_id, user_id, class_id, role, begin_date, end_date)
      SELECT ${scope.districtId}, u.id, c.id, r.role, r.begin_date, r.end_date
      FROM jsonb_to_recordset(${json(part)}) AS r(user_sid text, class_sid text, role text, begin_date date, end_date date)
      JOIN ${userJoin(scope, sql`r.user_sid`)} JOIN ${classJoin(scope, sql`r.class_sid`)}`.execute(trx);
  }
  await audit(trx, scope, 'enrollment', [
    ...ends.map((e) => ({ key: `${e.class_sid}/${e.user_sid}`, action: 'end', detail: { reason: e.reason } })),
    ...adds.map((e) => ({ key: `${e.class_sid}/${e.user_sid}`, action: 'add' })),
  ]);

  await applySeats(trx, scope, plan.seats);
}

async function applySeats(trx: Trx, scope: Scope, seats: Plan['seats']): Promise<void> {
  const release = seats.release.map((s) => ({ product: s.product, user_sid: s.userSourcedId, reason: s.reason }));
  for (const part of chunks(release)) {
    await sql`
      UPDATE seat_assignments s SET released_at = now(), release_reason = r.reason
      FROM jsonb_to_recordset(${json(part)}) AS r(product text, user_sid text, reason text)
      JOIN ${poolJoin(scope, sql`r.product`)} JOIN ${userJoin(scope, sql`r.user_sid`)}
      WHERE s.pool_id = p.id AND s.user_id = u.id AND s.released_at IS NULL`.execute(trx);
  }
  const unqueue = seats.waitlistRemove.map((s) => ({ product: s.product, user_sid: s.userSourcedId }));
  for (const part of chunks(unqueue)) {
    await sql`
      DELETE FROM waitlist w
      USING jsonb_to_recordset(${json(part)}) AS r(product text, user_sid text)
      JOIN ${poolJoin(scope, sql`r.product`)} JOIN ${userJoin(scope, sql`r.user_sid`)}
      WHERE w.pool_id = p.id AND w.user_id = u.id`.execute(trx);
  }
  const assign = seats.assign.map((s) => ({ product: s.product, user_sid: s.userSourcedId }));
  for (const part of chunks(assign)) {
    await sql`
      INSERT INTO seat_assignments (pool_id, user_id, run_id)
      SELECT p.id, u.id, ${scope.runId}::uuid
      FROM jsonb_to_recordset(${json(part)}) AS r(product text, user_sid text)
      JOIN ${poolJoin(scope, sql`r.product`)} JOIN ${userJoin(scope, sql`r.user_sid`)}`.execute(trx);
  }
  const queue = seats.waitlistAdd.map((s) => ({ product: s.product, user_sid: s.userSourcedId }));
  for (const part of chunks(queue)) {
    // The plan's order is the wait-list's order: each row is queued a microsecond after the last.
    await sql`
      INSERT INTO waitlist (pool_id, user_id, queued_at)
      SELECT p.id, u.id, clock_timestamp() + (x.ord * interval '1 microsecond')
      FROM jsonb_array_elements(${json(part)}) WITH ORDINALITY AS x(elem, ord)
      CROSS JOIN LATERAL jsonb_to_record(x.elem) AS r(product text, user_sid text)
      JOIN ${poolJoin(scope, sql`r.product`)} JOIN ${userJoin(scope, sql`r.user_sid`)}
      ON CONFLICT (pool_id, user_id) DO NOTHING`.execute(trx);
  }
  await audit(trx, scope, 'seat', [
    ...release.map((s) => ({ key: `${s.product}/${s.user_sid}`, action: 'release', detail: { reason: s.reason } })),
    ...assign.map((s) => ({ key: `${s.product}/${s.user_sid}`, action: 'assign' })),
    ...queue.map((s) => ({ key: `${s.product}/${s.user_sid}`, action: 'waitlist' })),
    ...unqueue.map((s) => ({ key: `${s.product}/${s.user_sid}`, action: 'unwaitlist' })),
  ]);
}
