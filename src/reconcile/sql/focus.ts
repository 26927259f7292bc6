import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../../db/schema.js';
import type { SnapshotTables } from './snapshot-source.js';
import { useReconcileMemory } from './plan.js';

type Trx = Transaction<Database>;

/**
 * A complete snapshot narrowed to where it differs from the district's quiet
 * mirror: what src/reconcile/sql/plan.ts needs to plan a churn at the cost of
 * the change rather than of the district.
 *
 * Why that is exact. The mirror M is the last applied complete snapshot, its
 * apply left the district as L, and nothing has changed L since (quiet), on
 * the same day (what is current depends on the date). Planning M again on L
 * changes nothing. Every decision the planner makes about an entity, a person
 * or a membership reads only that record, the person's own enrollments, the
 * local row, and what the quarantine names; so a new snapshot S decides
 * differently from M only for the keys whose records changed or vanished:
 * - entities (schools, terms, courses, classes, users) whose own record did,
 *   or that a changed or vanished quarantine row names;
 * - people one of whose enrollments did (their enrollments-ended rule);
 * - memberships of those people and of those classes.
 * Seats are then settled for the people touched, as a delta's are. The
 * snapshot-wide numbers the guards weigh are still taken from all of S, but
 * for the memberships naming a user or class nobody has: outside the focus
 * each is so exactly when it was in M, so when M's plan counted none, those
 * in focus are all there are.
 * test/snapshot-mirror.test.ts checks each kind of change against a twin
 * district planned in full.
 */
export interface ChangeFocus {
  /** Where the plan reads records: each kind's rows of S for the keys in focus (the quarantine whole: it is small, and freezes by what it names). */
  tables: SnapshotTables;
  /** The keys in focus: (kind, sid) for orgs, academicSessions, courses, classes and users. */
  keys: RawBuilder<unknown>;
  /** Memberships of the mirror's snapshot naming a user or class neither it nor the district had, as its plan counted them. */
  mirrorDangling: number;
}

const ENTITY_KINDS = ['orgs', 'academicSessions', 'courses', 'classes', 'users'] as const;

/**
 * Whether S holds two rows of one key. M had none (a mirror with copies is
 * never quiet), so any pair involves a changed row: each kind's changed rows
 * are matched against the whole table, one scan.
 */
export async function changedRowsHaveCopies(trx: Trx, snap: SnapshotTables, mirrorSeq: number): Promise<boolean> {
  const keyed = [...ENTITY_KINDS.map((k) => ({ table: snap[k], key: sql`o.sourced_id = c.sourced_id` })),
    { table: snap.enrollments, key: sql`o.user_sid = c.user_sid AND o.class_sid = c.class_sid` }];
  await useReconcileMemory(trx);
  // Fresh stage tables have no statistics, and a planner that takes a million
  // rows for a handful loops over the whole table once per changed row: each
  // is analyzed first (lightly; the plan analyzes them the same way).
  await sql`SET LOCAL default_statistics_target = 10`.execute(trx);
  for (const { table } of keyed) await sql`ANALYZE ${table}`.execute(trx);
  // Changed rows are hashed, the table scanned once.
  await sql`SET LOCAL enable_nestloop = off`.execute(trx);
  for (const { table, key } of keyed) {
    const { rows: [r] } = await sql<{ any: boolean }>`
      SELECT EXISTS (SELECT 1 FROM ${table} c JOIN ${table} o ON ${key} AND o.ctid <> c.ctid WHERE c.seq <> ${mirrorSeq}) AS any`.execute(trx);
    if (r?.any) return true;
  }
  // Back to the session's setting: the focused plan's small joins go by index.
  await sql`SET LOCAL enable_nestloop TO DEFAULT`.execute(trx);
  return false;
}

/**
 * The focus of a staged complete snapshot against the mirror: rows of S not
 * copied from the mirror (their batch is not the mirror's, `mirrorSeq`) are
 * the changed ones; `gone` (src/sync/snapshot-mirror.ts) holds the keys of
 * the mirror's records S did not bring back unchanged.
 */
export async function focusOnChanges(trx: Trx, snap: SnapshotTables, m: { mirrorSeq: number; gone: RawBuilder<unknown>; mirrorDangling: number }): Promise<ChangeFocus> {
  const { mirrorSeq, gone } = m;
  const run = (q: RawBuilder<unknown>) => q.execute(trx);
  const changed = (kind: keyof SnapshotTables) => sql`(SELECT * FROM ${snap[kind]} WHERE seq <> ${mirrorSeq})`;
  await run(sql`CREATE TEMP TABLE fx (kind text NOT NULL, sid text NOT NULL, PRIMARY KEY (kind, sid)) ON COMMIT DROP`);
  await run(sql`
    INSERT INTO fx
    ${sql.join(ENTITY_KINDS.map((k) => sql`SELECT ${k}::text, sourced_id FROM ${changed(k)} x`), sql` UNION `)}
    UNION SELECT 'users', user_sid FROM ${changed('enrollments')} x
    UNION SELECT kind, sid FROM ${gone} WHERE kind <> 'enrollments' AND kind <> 'quarantine'
    UNION SELECT 'users', user_sid FROM ${gone} WHERE kind = 'enrollments'
    -- A quarantine row freezes the record it is and those it names: a change in it reaches them.
    UNION SELECT q_kind, sid FROM ${gone} WHERE kind = 'quarantine' AND sid IS NOT NULL AND q_kind <> 'enrollments'
    UNION SELECT 'users', unnest(ref_users) FROM ${gone} WHERE kind = 'quarantine'
    UNION SELECT 'classes', unnest(ref_classes) FROM ${gone} WHERE kind = 'quarantine'
    UNION SELECT kind, sourced_id FROM ${changed('quarantine')} x WHERE sourced_id IS NOT NULL AND kind <> 'enrollments'
    UNION SELECT 'users', unnest(ref_users) FROM ${changed('quarantine')} x
    UNION SELECT 'classes', unnest(ref_classes) FROM ${changed('quarantine')} x`);
  await run(sql`ANALYZE fx`);
  const tables = { quarantine: snap.quarantine } as SnapshotTables;
  for (const kind of ENTITY_KINDS) {
    const name = `f_${kind.toLowerCase()}`;
    await run(sql`CREATE TEMP TABLE ${sql.table(name)} ON COMMIT DROP AS
      SELECT * FROM ${snap[kind]} WHERE sourced_id IN (SELECT sid FROM fx WHERE kind = ${kind})`);
    tables[kind] = sql.table(name);
  }
  // Every enrollment of a person or class in focus: their decisions read all of them.
  await run(sql`CREATE TEMP TABLE f_enrollments ON COMMIT DROP AS
    SELECT * FROM ${snap.enrollments}
    WHERE user_sid IN (SELECT sid FROM fx WHERE kind = 'users') OR class_sid IN (SELECT sid FROM fx WHERE kind = 'classes')`);
  tables.enrollments = sql.table('f_enrollments');
  for (const kind of [...ENTITY_KINDS, 'enrollments'] as const) await run(sql`ANALYZE ${tables[kind]}`);
  return { tables, keys: sql.table('fx'), mirrorDangling: m.mirrorDangling };
}
