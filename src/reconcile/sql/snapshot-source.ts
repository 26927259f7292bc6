import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../../db/schema.js';
import type { Snapshot } from '../types.js';
import { useReconcileMemory } from './plan.js';
import { STAGE_COLUMNS, STAGE_KINDS, stageTable, type StageKind } from '../../sync/stage-tables.js';

type Trx = Transaction<Database>;

/** Where the reconciler reads a run's snapshot: a table per kind of record, with the stage tables' columns. */
export type SnapshotTables = Record<StageKind, RawBuilder<unknown>>;

/** A staged run's own tables. */
export const stagedSnapshot = (runId: string): SnapshotTables =>
  Object.fromEntries(STAGE_KINDS.map((k) => [k, stageTable(runId, k)])) as SnapshotTables;

/**
 * A small snapshot built in memory (a sign-in's one-user delta, an ops change,
 * a test) put where the reconciler reads: temporary tables shaped like a stage,
 * dropped with the transaction.
 */
export async function snapshotInTables(trx: Trx, snapshot: Snapshot): Promise<SnapshotTables> {
  const tables = {} as SnapshotTables;
  const rowsOf: Record<StageKind, unknown[]> = {
    orgs: [...snapshot.orgs.values()], academicSessions: [...snapshot.academicSessions.values()], courses: [...snapshot.courses.values()],
    classes: [...snapshot.classes.values()], users: [...snapshot.users.values()], enrollments: [...snapshot.enrollments.values()],
    quarantine: snapshot.quarantined,
  };
  for (const kind of STAGE_KINDS) {
    const name = `snap_${kind.toLowerCase()}`;
    const cols = STAGE_COLUMNS[kind] as { name: string; type: string; of: (r: unknown) => unknown }[];
    const defs = cols.map((c) => `${c.name} ${c.type}`).join(', ');
    await sql`CREATE TEMP TABLE ${sql.table(name)} (seq integer NOT NULL, ${sql.raw(defs)}) ON COMMIT DROP`.execute(trx);
    const rows = rowsOf[kind].map((r) => Object.fromEntries(cols.map((c) => [c.name, c.of(r)])));
    if (rows.length) {
      await sql`
        INSERT INTO ${sql.table(name)} (seq, ${sql.raw(cols.map((c) => c.name).join(', '))})
        SELECT 1, ${sql.raw(cols.map((c) => `r.${c.name}`).join(', '))}
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(${sql.raw(defs)})`.execute(trx);
    }
    tables[kind] = sql.table(name);
  }
  return tables;
}

const ROLE_RANK = sql.raw(`CASE role WHEN 'teacher' THEN 3 WHEN 'administrator' THEN 2 ELSE 1 END`);

/**
 * Records the provider sent more than once, merged by meaning exactly as
 * src/sync/snapshot-builder.ts does (that class is this step's reference, and
 * the oracle of its tests), but in place, in Postgres:
 * - identical copies are one record;
 * - enrollments of one (user, class): the current copy wins, then one not yet
 *   begun, then the later end, then the teaching role;
 * - a user listed once per role: the teaching role's copy, when the copies
 *   agree on everything that is not per role;
 * - anything else that differs is a conflict: every copy leaves the snapshot
 *   and a quarantine row names it, which holds the run.
 * Idempotent: run again on the same stage (a resumed or approved run) it finds
 * nothing left to merge. Returns how many keys had copies.
 */
export async function mergeDuplicates(trx: Trx, t: SnapshotTables, asOf: string): Promise<number> {
  // Finding copies groups the whole snapshot.
  await useReconcileMemory(trx);
  let merged = 0;
  const entityKinds: { kind: StageKind; content: string; refs: string }[] = [
    { kind: 'orgs', content: 'name, type, identifier, status', refs: `'{}'::text[], '{}'::text[]` },
    { kind: 'academicSessions', content: 'title, start_date, end_date, status', refs: `'{}'::text[], '{}'::text[]` },
    { kind: 'courses', content: 'title, course_code, status', refs: `'{}'::text[], '{}'::text[]` },
    { kind: 'classes', content: 'title, class_code, course_sourced_id, school_sourced_id, term_sourced_ids, grades, status', refs: `'{}'::text[], ARRAY[d.sourced_id]` },
    { kind: 'users', content: 'role, given_name, family_name, email, username, sis_id, grades, school_sourced_ids, enabled, status', refs: `ARRAY[d.sourced_id], '{}'::text[]` },
  ];
  for (const { kind, content, refs } of entityKinds) {
    const table = t[kind];
    // One cheap question first: almost every snapshot has no copies at all.
    const { rows: [probe] } = await sql<{ any: boolean }>`
      SELECT EXISTS (SELECT 1 FROM ${table} GROUP BY sourced_id HAVING count(*) > 1) AS any`.execute(trx);
    if (!probe?.any) continue;
    await sql`CREATE TEMP TABLE dup_keys ON COMMIT DROP AS SELECT sourced_id FROM ${table} GROUP BY sourced_id HAVING count(*) > 1`.execute(trx);
    const { rows: dups } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM dup_keys`.execute(trx);
    const n = dups[0]?.n ?? 0;
    if (n > 0) {
      merged += n;
      // Which keys' copies cannot be one record.
      const conflict = kind === 'users'
        ? sql`(SELECT d.sourced_id FROM dup_keys d JOIN ${table} u USING (sourced_id) GROUP BY d.sourced_id
               HAVING count(DISTINCT (u.given_name, u.family_name, u.email, u.enabled, u.status)) > 1
                   OR count(DISTINCT (${sql.raw(content.split(', ').map((c) => `u.${c}`).join(', '))})) > count(DISTINCT u.role))`
        : sql`(SELECT d.sourced_id FROM dup_keys d JOIN ${table} u USING (sourced_id) GROUP BY d.sourced_id
               HAVING count(DISTINCT (${sql.raw(content.split(', ').map((c) => `u.${c}`).join(', '))})) > 1)`;
      await sql`
        INSERT INTO ${t.quarantine} (seq, kind, sourced_id, reason, ref_users, ref_classes, conflict)
        SELECT 0, ${kind}, d.sourced_id, 'the provider sent ' || ${kind} || ' ' || d.sourced_id || ' more than once with different content', ${sql.raw(refs)}, true
        FROM ${conflict} AS d(sourced_id)`.execute(trx);
      await sql`DELETE FROM ${table} WHERE sourced_id IN ${conflict}`.execute(trx);
      // What is left of each key: identical copies, or (users) one copy per role; keep the one that ranks first.
      const order = kind === 'users' ? sql`${ROLE_RANK} DESC, ctid` : sql`ctid`;
      await sql`
        DELETE FROM ${table} x USING (
          SELECT ctid AS row_id, row_number() OVER (PARTITION BY sourced_id ORDER BY ${order}) AS rn
          FROM ${table} WHERE sourced_id IN (SELECT sourced_id FROM dup_keys)) r
        WHERE x.ctid = r.row_id AND r.rn > 1`.execute(trx);
    }
    await sql`DROP TABLE dup_keys`.execute(trx);
  }

  const e = t.enrollments;
  const { rows: [probe] } = await sql<{ any: boolean }>`
    SELECT EXISTS (SELECT 1 FROM ${e} GROUP BY class_sid, user_sid HAVING count(*) > 1) AS any`.execute(trx);
  if (probe?.any) {
    await sql`CREATE TEMP TABLE dup_pairs ON COMMIT DROP AS SELECT class_sid, user_sid FROM ${e} GROUP BY class_sid, user_sid HAVING count(*) > 1`.execute(trx);
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM dup_pairs`.execute(trx);
    merged += rows[0]?.n ?? 0;
    // src/sync/snapshot-builder.ts pickEnrollment: current (2) over not yet begun (1) over ended (0),
    // then the later end (open-ended last of all), then the teaching role, then a stable order.
    await sql`
      DELETE FROM ${e} x USING (
        SELECT ctid AS row_id, row_number() OVER (PARTITION BY class_sid, user_sid ORDER BY
          CASE WHEN status = 'tobedeleted' OR (end_date IS NOT NULL AND end_date < ${asOf} COLLATE "C") THEN 0
               WHEN begin_date IS NOT NULL AND begin_date > ${asOf} COLLATE "C" THEN 1 ELSE 2 END DESC,
          COALESCE(end_date, '9999-12-31') COLLATE "C" DESC, ${ROLE_RANK} DESC,
          begin_date COLLATE "C" ASC NULLS LAST, status COLLATE "C", ctid) AS rn
        FROM ${e} WHERE (class_sid, user_sid) IN (SELECT class_sid, user_sid FROM dup_pairs)) r
      WHERE x.ctid = r.row_id AND r.rn > 1`.execute(trx);
    await sql`DROP TABLE dup_pairs`.execute(trx);
  }
  return merged;
}
