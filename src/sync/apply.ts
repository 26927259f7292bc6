import { sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { LocalState, Plan } from '../reconcile/types.js';
import { PERSON_ACTION, PERSON_ENTITY, PersonRosterBuilder } from '../audit/person-roster.js';

type Trx = Transaction<Database>;

/** Rows per statement: large enough to amortise round trips, small enough to keep each statement's memory modest. */
const CHUNK = 10000;

interface Scope { districtId: string; provider: string; runId: string | null }

function* chunks<T>(items: readonly T[], size = CHUNK): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

const json = (rows: unknown[]) => sql`${JSON.stringify(rows)}::jsonb`;

interface AuditRow { key: string; action: string; reason?: string }

async function audit(trx: Trx, scope: Scope, entity: string, rows: AuditRow[]): Promise<void> {
  for (const part of chunks(rows)) {
    await sql`
      INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail)
      SELECT ${scope.districtId}, ${scope.runId}::uuid, ${entity}, r.key, r.action,
             CASE WHEN r.reason IS NULL THEN NULL ELSE jsonb_build_object('reason', r.reason) END
      FROM unnest(${part.map((r) => r.key)}::text[], ${part.map((r) => r.action)}::text[], ${part.map((r) => r.reason ?? null)}::text[]) AS r(key, action, reason)`.execute(trx);
  }
}

/**
 * One compact row per person for the run's enrollment and seat changes: a first
 * sync writes about one row per person here rather than one per membership and
 * seat (src/audit/person-roster.ts has the format; src/audit/history.ts reads it).
 */
async function auditPeople(trx: Trx, scope: Scope, people: PersonRosterBuilder): Promise<void> {
  for (const part of chunks(people.rows())) {
    await sql`
      INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail)
      SELECT ${scope.districtId}, ${scope.runId}::uuid, ${PERSON_ENTITY}, r->>'key', ${PERSON_ACTION}, r->'detail'
      FROM jsonb_array_elements(${json(part)}) AS r`.execute(trx);
  }
}

const ENTITY_NAMES = { schools: 'school', terms: 'term', courses: 'course', classes: 'class' } as const;

/** Columns each roster table takes from its canonical record, in SQL. */
const ENTITY_COLUMNS: Record<keyof typeof ENTITY_NAMES, { defs: string; names: string[]; from: (r: never) => Record<string, unknown> }> = {
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

/** Upserts and retires roster entities; returns the ids of the rows it wrote, by sourcedId. */
async function applyEntities(trx: Trx, scope: Scope, table: keyof typeof ENTITY_NAMES, changes: { create: { sourcedId: string }[]; update: { sourcedId: string }[]; retire: string[] }): Promise<Map<string, string>> {
  const cols = ENTITY_COLUMNS[table];
  const rows = [
    ...changes.create.map((r) => ({ sourced_id: r.sourcedId, action: 'create', ...cols.from(r as never) })),
    ...changes.update.map((r) => ({ sourced_id: r.sourcedId, action: 'update', ...cols.from(r as never) })),
  ];
  const names = sql.raw(cols.names.join(', '));
  const fromR = sql.raw(cols.names.map((n) => `r.${n}`).join(', '));
  const setters = sql.raw(cols.names.map((n) => `${n} = EXCLUDED.${n}`).join(', '));
  const ids = new Map<string, string>();
  for (const part of chunks(rows)) {
    const written = await sql<{ id: string; sourced_id: string }>`
      INSERT INTO ${sql.table(table)} (district_id, provider, sourced_id, status, ${names})
      SELECT ${scope.districtId}, ${scope.provider}, r.sourced_id, 'ACTIVE', ${fromR}
      FROM jsonb_to_recordset(${json(part)}) AS r(sourced_id text, ${sql.raw(cols.defs)})
      ON CONFLICT (district_id, provider, sourced_id) DO UPDATE SET ${setters}, status = 'ACTIVE', updated_at = now()
      RETURNING id, sourced_id`.execute(trx);
    for (const w of written.rows) ids.set(w.sourced_id, w.id);
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
  return ids;
}

/** sourcedId → row id, from what was there before the run and what the run just wrote. */
function idResolver(kind: string, before: Iterable<[string, string | undefined]>, written: Map<string, string>): (sourcedId: string) => string {
  const ids = new Map<string, string>();
  for (const [sid, id] of before) if (id) ids.set(sid, id);
  for (const [sid, id] of written) ids.set(sid, id);
  return (sid) => {
    const id = ids.get(sid);
    // The reconciler only plans changes for rows that exist or that it creates.
    if (!id) throw new Error(`internal: no ${kind} row for sourcedId ${sid}`);
    return id;
  };
}

/**
 * Writes a plan. Runs inside the caller's transaction: either all of a run's
 * changes land, with their audit rows, or none do. Rows are addressed by id
 * (known from the local state or returned by the upserts) and written with
 * set-based statements over arrays, a chunk at a time.
 */
export async function applyPlan(trx: Trx, scope: Scope, plan: Plan, local: LocalState): Promise<void> {
  await applyEntities(trx, scope, 'schools', plan.orgs);
  await applyEntities(trx, scope, 'terms', plan.academicSessions);
  await applyEntities(trx, scope, 'courses', plan.courses);
  const classId = idResolver('class', [...local.classes].map(([sid, c]) => [sid, c.id]), await applyEntities(trx, scope, 'classes', plan.classes));

  const userRows = [
    ...plan.users.create.map((u) => ({ u, action: 'create' })),
    ...plan.users.update.map((u) => ({ u, action: 'update' })),
    ...plan.users.reactivate.map((u) => ({ u, action: 'reactivate' })),
  ].map(({ u, action }) => ({
    sourced_id: u.sourcedId, action, role: u.role, given_name: u.givenName, family_name: u.familyName,
    email: u.email, username: u.username, sis_id: u.sisId, grades: u.grades, school_sourced_ids: u.orgSourcedIds,
  }));
  const writtenUsers = new Map<string, string>();
  for (const part of chunks(userRows)) {
    // Reactivation keeps the account's id: the row is updated in place, never re-created.
    const written = await sql<{ id: string; sourced_id: string }>`
      INSERT INTO users (district_id, provider, sourced_id, role, given_name, family_name, email, username, sis_id, grades, school_sourced_ids)
      SELECT ${scope.districtId}, ${scope.provider}, r.sourced_id, r.role, r.given_name, r.family_name, r.email, r.username, r.sis_id, r.grades, r.school_sourced_ids
      FROM jsonb_to_recordset(${json(part)}) AS r(sourced_id text, role text, given_name text, family_name text, email text, username text, sis_id text, grades text[], school_sourced_ids text[])
      ON CONFLICT (district_id, provider, sourced_id) DO UPDATE SET
        role = EXCLUDED.role, given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name, email = EXCLUDED.email,
        username = EXCLUDED.username, sis_id = EXCLUDED.sis_id, grades = EXCLUDED.grades, school_sourced_ids = EXCLUDED.school_sourced_ids,
        status = 'ACTIVE', deleted_at = NULL, updated_at = now()
      RETURNING id, sourced_id`.execute(trx);
    for (const w of written.rows) writtenUsers.set(w.sourced_id, w.id);
  }
  const userId = idResolver('user', [...local.users].map(([sid, u]) => [sid, u.id]), writtenUsers);
  for (const part of chunks(plan.users.delete)) {
    await sql`
      UPDATE users SET status = 'DELETED', deleted_at = now(), updated_at = now()
      WHERE id = ANY(${part.map((d) => userId(d.sourcedId))}::uuid[]) AND status = 'ACTIVE'`.execute(trx);
  }
  await audit(trx, scope, 'user', [
    ...userRows.map((r) => ({ key: r.sourced_id, action: r.action })),
    ...plan.users.delete.map((d) => ({ key: d.sourcedId, action: 'delete', reason: d.reason })),
  ]);

  // Ends before adds: a membership ended and re-added in one run must not trip the
  // one-active-membership index.
  for (const part of chunks(plan.enrollments.end)) {
    await sql`
      UPDATE enrollments e SET ended_at = now(), ended_reason = r.reason
      FROM unnest(${part.map((e) => userId(e.userSourcedId))}::uuid[], ${part.map((e) => classId(e.classSourcedId))}::bigint[], ${part.map((e) => e.reason)}::text[]) AS r(user_id, class_id, reason)
      WHERE e.user_id = r.user_id AND e.class_id = r.class_id AND e.ended_at IS NULL`.execute(trx);
  }
  for (const part of chunks(plan.enrollments.add)) {
    await sql`
      INSERT INTO enrollments (district_id, user_id, class_id, role, begin_date, end_date)
      SELECT ${scope.districtId}, r.user_id, r.class_id, r.role, r.begin_date, r.end_date
      FROM unnest(${part.map((e) => userId(e.userSourcedId))}::uuid[], ${part.map((e) => classId(e.classSourcedId))}::bigint[], ${part.map((e) => e.role)}::text[],
                  ${part.map((e) => e.beginDate)}::date[], ${part.map((e) => e.endDate)}::date[]) AS r(user_id, class_id, role, begin_date, end_date)`.execute(trx);
  }
  const people = new PersonRosterBuilder();
  for (const e of plan.enrollments.end) people.enrollmentEnded(e.userSourcedId, e.classSourcedId, e.reason);
  for (const e of plan.enrollments.add) people.enrollmentAdded(e.userSourcedId, e.classSourcedId);

  await applySeats(trx, scope, plan.seats, local, userId, people);
  await auditPeople(trx, scope, people);
}

async function applySeats(trx: Trx, scope: Scope, seats: Plan['seats'], local: LocalState, userId: (sid: string) => string, people: PersonRosterBuilder): Promise<void> {
  const pools = new Map(local.pools.map((p) => [p.product, p.id]));
  const poolId = (product: string) => {
    const id = pools.get(product);
    if (!id) throw new Error(`internal: no license pool ${product}`);
    return id;
  };
  const pairs = (items: { product: string; userSourcedId: string }[]) => sql`${items.map((s) => poolId(s.product))}::bigint[], ${items.map((s) => userId(s.userSourcedId))}::uuid[]`;

  for (const part of chunks(seats.release)) {
    await sql`
      UPDATE seat_assignments s SET released_at = now(), release_reason = r.reason
      FROM unnest(${pairs(part)}, ${part.map((s) => s.reason)}::text[]) AS r(pool_id, user_id, reason)
      WHERE s.pool_id = r.pool_id AND s.user_id = r.user_id AND s.released_at IS NULL`.execute(trx);
  }
  for (const part of chunks(seats.waitlistRemove)) {
    await sql`
      DELETE FROM waitlist w USING unnest(${pairs(part)}) AS r(pool_id, user_id)
      WHERE w.pool_id = r.pool_id AND w.user_id = r.user_id`.execute(trx);
  }
  for (const part of chunks(seats.assign)) {
    await sql`
      INSERT INTO seat_assignments (pool_id, user_id, run_id)
      SELECT r.pool_id, r.user_id, ${scope.runId}::uuid FROM unnest(${pairs(part)}) AS r(pool_id, user_id)`.execute(trx);
  }
  let position = 0;
  for (const part of chunks(seats.waitlistAdd)) {
    // The plan's order is the wait-list's order: each entry is queued a microsecond after the one before.
    const order = part.map(() => position++);
    await sql`
      INSERT INTO waitlist (pool_id, user_id, queued_at)
      SELECT r.pool_id, r.user_id, now() + r.ord * interval '1 microsecond'
      FROM unnest(${pairs(part)}, ${order}::int[]) AS r(pool_id, user_id, ord)
      ON CONFLICT (pool_id, user_id) DO NOTHING`.execute(trx);
  }
  for (const s of seats.release) people.seatReleased(s.userSourcedId, s.product, s.reason);
  for (const s of seats.assign) people.seatAssigned(s.userSourcedId, s.product);
  for (const s of seats.waitlistAdd) people.waitlisted(s.userSourcedId, s.product);
  for (const s of seats.waitlistRemove) people.unwaitlisted(s.userSourcedId, s.product);
}
