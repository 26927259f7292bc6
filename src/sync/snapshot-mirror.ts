import { sql, type RawBuilder, type Transaction } from 'kysely';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Database } from '../../db/schema.js';
import { poolOf, type Db } from '../../db/connection.js';
import { HashList, HashSet, hashText } from './record-hash.js';
import type { PlanStats } from '../reconcile/types.js';
import type { RunLease } from './runs.js';
import { STAGE_KINDS, stageColumnList, stageSideTableName, stageTableName } from './stage-tables.js';
import { dropStages, inStageBatch } from './stage.js';
import { binaryCopySink, copyToSettled } from './copy-binary.js';

// A district's mirror is the kept stage of its last applied complete snapshot
// (db/migrations/007_snapshot_mirror.ts). A full sync loads the mirror's
// content hashes into the worker (8 bytes a record), stages only the records
// whose hash the mirror lacks, and has Postgres copy the rest from the mirror
// into the run's stage: the stage is then exactly the snapshot the provider
// sent (each distinct record once), while unchanged records never cross the
// wire to Postgres. When nothing is new and every mirrored record came back,
// the snapshot is the mirror's, and a quiet mirror of the same day needs no
// plan at all (src/sync/unchanged-run.ts).

type Trx = Transaction<Database>;

export interface Mirror {
  runId: string;
  asOf: string;
  quiet: boolean;
}

/** The mirror rebuilt from had gone (a purge, or a newer mirror) before the run could use it: fetch again without it. */
export class MirrorGoneError extends Error {}

/** The district's mirror, if it has one for this provider in the current stage format (rows with hashes). */
export async function findMirror(db: Db, districtId: string, provider: string): Promise<Mirror | undefined> {
  const row = await db.selectFrom('snapshot_mirrors').select(['run_id', 'as_of', 'quiet', 'provider'])
    .where('district_id', '=', districtId).executeTakeFirst();
  if (!row || row.provider !== provider) return undefined;
  // A stage staged before hashes existed, or lost with a Postgres restart (its tables are unlogged).
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'stage' AND c.relname LIKE ${`r${row.run_id.replace(/-/g, '')}\\_%`} AND a.attname = 'h' AND NOT a.attisdropped`.execute(db);
  if ((rows[0]?.n ?? 0) !== STAGE_KINDS.length) return undefined;
  return { runId: row.run_id, asOf: row.as_of, quiet: row.quiet };
}

/**
 * The mirror's hashes, read with one binary COPY (8 bytes a row on the wire,
 * never a JS object per row). Rows without a hash (added by Postgres when
 * merging copies) are not the provider's and never match.
 */
export async function loadMirrorHashes(db: Db, runId: string): Promise<HashSet> {
  const union = STAGE_KINDS.map((k) => `SELECT h FROM stage.${stageTableName(runId, k)} WHERE h IS NOT NULL`).join(' UNION ALL ');
  const client = await poolOf(db).connect();
  let broken: Error | undefined;
  try {
    const out = new HashList();
    let ended = false;
    const sink = binaryCopySink((buf, from) => {
      let at = from;
      // Each tuple: field count (int16 = 1), length (int32 = 8), the bigint (big-endian). The trailer is field count -1.
      while (!ended && buf.length - at >= 2) {
        if (buf.readInt16BE(at) === -1) { ended = true; break; }
        if (buf.length - at < 14) break;
        out.push(buf.readBigUInt64BE(at + 6));
        at += 14;
      }
      return ended ? buf.length : at;
    });
    await pipeline(client.query(copyToSettled(`COPY (${union}) TO STDOUT (FORMAT binary)`)), sink);
    return new HashSet(out.view());
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}

/** The keys of the mirror's records a run's fetch did not bring back unchanged (src/reconcile/sql/focus.ts reads them). */
const goneTable = (runId: string) => stageSideTableName(runId, 'gone');

/**
 * Completes a run's stage from the mirror: every mirrored record whose hash is
 * not among `unseen` (the mirror's records this fetch did not bring back
 * unchanged) is copied into the run's tables, by Postgres, as one more batch
 * of the ledger, whose data names the mirror. The keys of the others are kept
 * beside the stage (its "gone" table): with the rows this run staged itself,
 * they are where the snapshot differs from the mirror. Fenced like a staged
 * batch, and on the mirror still being the district's. Returns the rows copied.
 */
export async function rebuildFromMirror(db: Db, lease: RunLease, districtId: string, mirrorRunId: string, unseen: Iterable<bigint>): Promise<number> {
  const { runId } = lease;
  return inStageBatch(db, lease, { kind: 'mirror' }, async (client, seq) => {
    const still = await client.query(`SELECT 1 FROM snapshot_mirrors WHERE district_id = $1 AND run_id = $2 FOR SHARE`, [districtId, mirrorRunId]);
    if (still.rowCount === 0) throw new MirrorGoneError(`the district's mirror (run ${mirrorRunId}) was replaced or purged during the fetch`);
    await client.query('CREATE TEMP TABLE mirror_unseen (h bigint) ON COMMIT DROP');
    await pipeline(Readable.from(unseenText(unseen)), client.query(copyFrom('COPY mirror_unseen (h) FROM STDIN')));
    await client.query('CREATE INDEX ON mirror_unseen (h)');
    await client.query('ANALYZE mirror_unseen');
    // No column named h: findMirror counts a stage's tables by theirs.
    await client.query(`CREATE UNLOGGED TABLE ${goneTable(runId)} (kind text NOT NULL, sid text, user_sid text, q_kind text, ref_users text[], ref_classes text[])`);
    let copied = 0;
    for (const kind of STAGE_KINDS) {
      const mirrorTable = `stage.${stageTableName(mirrorRunId, kind)}`;
      const cols = stageColumnList(kind);
      const res = await client.query(
        `INSERT INTO stage.${stageTableName(runId, kind)} (seq, h, ${cols})
         SELECT $1, m.h, ${cols.split(', ').map((c) => `m.${c}`).join(', ')} FROM ${mirrorTable} m
         WHERE m.h IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mirror_unseen u WHERE u.h = m.h)`, [seq]);
      copied += res.rowCount ?? 0;
      // The rest of the kind's table, read again while it is warm: the keys of what did not come back.
      const key = kind === 'enrollments' ? `NULL, m.user_sid, NULL, NULL, NULL`
        : kind === 'quarantine' ? `m.sourced_id, NULL, m.kind, m.ref_users, m.ref_classes` : `m.sourced_id, NULL, NULL, NULL, NULL`;
      await client.query(`INSERT INTO ${goneTable(runId)} SELECT $1, ${key} FROM ${mirrorTable} m JOIN mirror_unseen u ON u.h = m.h`, [kind]);
    }
    await client.query('UPDATE run_stage SET data = $3 WHERE run_id = $1 AND seq = $2', [runId, seq, mirrorRunId]);
    return copied;
  }, (err) => err instanceof MirrorGoneError);
}

function* unseenText(unseen: Iterable<bigint>): Generator<string> {
  let out = '';
  for (const h of unseen) {
    out += `${hashText(h)}\n`;
    if (out.length > 1 << 16) { yield out; out = ''; }
  }
  if (out) yield out;
}

/**
 * Keeps an applied complete snapshot's stage as the district's mirror, in the
 * apply's transaction, and drops the mirror it replaces. `quiet` is whether
 * this snapshot, planned again on what its apply left, is known to change
 * nothing: not when copies were merged (the stage no longer holds exactly what
 * the provider sent) or a person approved it past the guards.
 */
export async function keepAsMirror(trx: Trx, m: { districtId: string; provider: string; runId: string; asOf: string; quiet: boolean }): Promise<void> {
  const before = await trx.selectFrom('snapshot_mirrors').select('run_id').where('district_id', '=', m.districtId).executeTakeFirst();
  if (before && before.run_id !== m.runId) await dropStages(trx, sql`SELECT ${before.run_id}::uuid`);
  await trx.insertInto('snapshot_mirrors')
    .values({ district_id: m.districtId, provider: m.provider, run_id: m.runId, as_of: m.asOf, quiet: m.quiet })
    .onConflict((oc) => oc.column('district_id').doUpdateSet({ provider: m.provider, run_id: m.runId, as_of: m.asOf, quiet: m.quiet, registered_at: new Date() }))
    .execute();
  // Ledger rows and plan items are a run's working state; the mirror is its tables.
  await trx.deleteFrom('run_stage').where('run_id', '=', m.runId).execute();
  await trx.deleteFrom('run_plan_items').where('run_id', '=', m.runId).execute();
}

/** The snapshot-side numbers of a plan, as its run's guard records them: what a snapshot identical to the mirror's has, whatever the district holds now. */
const SNAPSHOT_STATS = ['snapshotUsers', 'snapshotClasses', 'snapshotEnrollments', 'snapshotTeachers', 'snapshotSchools', 'danglingEnrollments', 'snapshotRecords', 'quarantined', 'conflicts'] as const;
export type SnapshotStats = Pick<PlanStats, typeof SNAPSHOT_STATS[number]>;

/**
 * The numbers the mirror's own plan recorded for its snapshot, while
 * `mirrorRunId` is still the district's mirror, quiet, of this provider and of
 * the run's day: what both a no-op (src/sync/unchanged-run.ts) and a
 * difference plan stand on. Read under the district lock. Undefined otherwise
 * (or when the mirror's run recorded no such numbers).
 */
export async function quietMirrorStats(trx: Trx, m: { districtId: string; mirrorRunId: string; provider: string; asOf: string }): Promise<SnapshotStats | undefined> {
  const mirror = await trx.selectFrom('snapshot_mirrors').select(['run_id', 'quiet', 'as_of', 'provider']).where('district_id', '=', m.districtId).executeTakeFirst();
  if (!mirror || mirror.run_id !== m.mirrorRunId || !mirror.quiet || mirror.as_of !== m.asOf || mirror.provider !== m.provider) return undefined;
  const source = await trx.selectFrom('sync_runs').select('guard').where('id', '=', m.mirrorRunId).executeTakeFirst();
  const recorded = (source?.guard ?? null) as Partial<Record<string, unknown>> | null;
  if (!recorded || SNAPSHOT_STATS.some((k) => typeof recorded[k] !== 'number')) return undefined;
  return Object.fromEntries(SNAPSHOT_STATS.map((k) => [k, recorded[k] as number])) as SnapshotStats;
}

/**
 * A difference this small is always planned as one; a larger one only while
 * it is at most a quarter of the snapshot. Past that (a new school year, a
 * provider that re-keyed its records) planning the whole snapshot costs
 * about the same, and the whole plan's statements are the ones tuned for a
 * district's every row.
 */
const SMALL_DIFFERENCE = 10_000;
const DIFFERENCE_SHARE = 0.25;

/** Whether `difference` records (staged, plus the mirror's gone) of a snapshot of `records` are planned as a difference. */
export const worthPlanningAsDifference = (difference: number, records: number): boolean =>
  difference <= Math.max(SMALL_DIFFERENCE, DIFFERENCE_SHARE * records);

/**
 * Where a staged complete snapshot can be planned as its difference from the
 * mirror (src/reconcile/sql/focus.ts): it was completed from the mirror, which
 * is still the district's, quiet, of the same provider and of the run's day,
 * still holds every row of its snapshot, and the difference is small enough
 * to be worth it. Read in the plan's transaction, under the district lock.
 * Undefined otherwise.
 */
export async function mirrorDifference(trx: Trx, m: { runId: string; districtId: string; provider: string; asOf: string }): Promise<{ mirrorSeq: number; gone: RawBuilder<unknown>; mirrorDangling: number } | undefined> {
  const batch = await trx.selectFrom('run_stage').select(['seq', 'data', 'records']).where('run_id', '=', m.runId).where('kind', '=', 'mirror').executeTakeFirst();
  if (!batch?.data) return undefined;
  const recorded = await quietMirrorStats(trx, { districtId: m.districtId, mirrorRunId: batch.data, provider: m.provider, asOf: m.asOf });
  if (!recorded) return undefined;
  const { rows: [t] } = await sql<{ present: boolean }>`SELECT to_regclass(${goneTable(m.runId)}) IS NOT NULL AS present`.execute(trx);
  if (!t?.present) return undefined;
  const { rows: [size] } = await sql<{ staged: number; gone: number }>`
    SELECT (SELECT COALESCE(sum(records), 0) FROM run_stage WHERE run_id = ${m.runId}::uuid AND kind <> 'mirror')::int AS staged,
           (SELECT count(*) FROM ${sql.table(goneTable(m.runId))})::int AS gone`.execute(trx);
  if (!worthPlanningAsDifference((size?.staged ?? 0) + (size?.gone ?? 0), (size?.staged ?? 0) + batch.records)) return undefined;
  // The mirror must still hold every row its snapshot had: what left the
  // district is known only from the mirror's rows this fetch did not see. A
  // crash restart empties unlogged tables (so does promoting a standby, or
  // restoring a base backup) while the mirror's registration, logged, stays
  // quiet: every row of the mirror is either copied or gone, and their sum
  // must be the snapshot's size as its own plan counted it.
  if (batch.records + (size?.gone ?? 0) !== recorded.snapshotRecords + recorded.quarantined) return undefined;
  return { mirrorSeq: batch.seq, gone: sql.table(goneTable(m.runId)), mirrorDangling: recorded.danglingEnrollments };
}

/** Something other than the mirror's own apply changed the district: its snapshot no longer proves a resync changes nothing. */
export async function disturbMirror(trx: Trx, districtId: string): Promise<void> {
  await trx.updateTable('snapshot_mirrors').set({ quiet: false }).where('district_id', '=', districtId).where('quiet', '=', true).execute();
}

/**
 * Forgets the district's mirror, and its page memo (src/sync/page-memo.ts:
 * hashes of the district's records). Its tables are a run's stage: the
 * caller drops them with its other stages (a purge drops every run's).
 */
export async function forgetMirror(trx: Trx, districtId: string): Promise<void> {
  await trx.deleteFrom('snapshot_mirrors').where('district_id', '=', districtId).execute();
  await trx.deleteFrom('page_memo').where('district_id', '=', districtId).execute();
}
