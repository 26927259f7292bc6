import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../db/connection.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import type { Snapshot } from '../reconcile/types.js';
import type { SnapshotBuilder } from './snapshot-builder.js';
import { SupersededError, type RunLease } from './runs.js';

// A run's snapshot is staged in Postgres under its run id, one row per provider
// page, so the fetch and the reconcile are separate steps: a worker that dies
// after the fetch is replaced by one that reconciles from the stage, and a HELD
// run can be approved later from exactly the snapshot that was held.

/** Pages read per query when loading a stage back: bounds each result set. */
const READ_PAGE = 4;

/**
 * Stages one page for the attempt holding the run. The run's row is locked in
 * share mode while the page goes in, so a newer attempt's claim waits for it
 * and then clears it with the rest; once superseded, nothing is staged.
 */
export async function stageBatch(db: Db, lease: RunLease, batch: SnapshotBatch): Promise<boolean> {
  if (batch.records.length === 0) return false;
  const { runId, attempt } = lease;
  const result = await sql`
    INSERT INTO run_stage (run_id, seq, kind, records, data)
    SELECT ${runId}::uuid, COALESCE((SELECT max(seq) FROM run_stage WHERE run_id = ${runId}::uuid), 0) + 1, ${batch.kind}, ${batch.records.length}, ${JSON.stringify(batch.records)}
    FROM sync_runs r WHERE r.id = ${runId}::uuid AND r.attempts = ${attempt} AND r.status = 'RUNNING'
    FOR SHARE OF r`.execute(db);
  if (Number(result.numAffectedRows ?? 0) === 0) throw new SupersededError(runId, attempt);
  return true;
}

export async function countStagedPages(db: Db, runId: string): Promise<number> {
  const row = await db.selectFrom('run_stage').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Deletes a run's staged pages. With a lease, only while that attempt holds the
 * run (the run's row is locked in share mode meanwhile, as for staging).
 */
export async function clearStage(db: Db, runId: string, lease?: RunLease): Promise<void> {
  if (!lease) {
    await db.deleteFrom('run_stage').where('run_id', '=', runId).execute();
    return;
  }
  // One statement, so the check and the delete see the same (locked) run row.
  const { rows } = await sql<{ held: number }>`
    WITH lease AS (SELECT id FROM sync_runs WHERE id = ${runId}::uuid AND attempts = ${lease.attempt} AND status = 'RUNNING' FOR SHARE),
         gone AS (DELETE FROM run_stage WHERE run_id IN (SELECT id FROM lease) RETURNING 1)
    SELECT (SELECT count(*) FROM lease)::int AS held, (SELECT count(*) FROM gone)::int AS deleted`.execute(db);
  if (!rows[0]?.held) throw new SupersededError(runId, lease.attempt);
}

/** Drops the staged snapshots and plans (names, emails) of the runs a query selects. */
export async function dropStages(db: Db, runIds: RawBuilder<unknown>): Promise<number> {
  const pages = await sql`DELETE FROM run_stage WHERE run_id IN (${runIds})`.execute(db);
  await sql`DELETE FROM run_plan_items WHERE run_id IN (${runIds})`.execute(db);
  return Number(pages.numAffectedRows ?? 0);
}

/** Reads a run's staged snapshot back, page by page. */
export async function loadSnapshot(db: Db, runId: string, builder: SnapshotBuilder): Promise<Snapshot> {
  let after = 0;
  for (;;) {
    const pages = await db.selectFrom('run_stage').select(['seq', 'kind', 'data'])
      .where('run_id', '=', runId).where('seq', '>', after).orderBy('seq').limit(READ_PAGE).execute();
    for (const page of pages) builder.add({ kind: page.kind, records: JSON.parse(page.data) } as SnapshotBatch);
    if (pages.length < READ_PAGE) break;
    after = pages[pages.length - 1]!.seq;
  }
  return builder.build();
}
