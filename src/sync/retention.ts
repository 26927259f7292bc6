import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import { appliedSyncRuns } from './runs.js';
import { dropStages } from './stage.js';

// What rostersync keeps, and for how long. Stages and plans hold names and
// emails, so they go as soon as they are no use (applied or dry runs clear
// theirs at once) or after a set time (HELD and FAILED runs). Run history and
// the audit trail are kept longer and pruned on command.

export interface StageExpiry { runs: number; pages: number }

/** Drops the stages and plans of HELD, FAILED and dry runs that finished more than `hours` ago. */
export async function expireStages(db: Db, hours: number): Promise<StageExpiry> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ id: string }>`
      SELECT id FROM sync_runs
      WHERE (status IN ('HELD', 'FAILED') OR dry_run) AND finished_at < now() - make_interval(secs => ${hours * 3600})
        AND (EXISTS (SELECT 1 FROM run_stage s WHERE s.run_id = sync_runs.id) OR EXISTS (SELECT 1 FROM run_plan_items p WHERE p.run_id = sync_runs.id))`.execute(trx);
    const ids = rows.map((r) => r.id);
    if (ids.length === 0) return { runs: 0, pages: 0 };
    const pages = await dropStages(trx, sql`SELECT unnest(${ids}::uuid[])`);
    // Said on the run itself, so an approval attempt explains why it cannot apply.
    await trx.updateTable('sync_runs')
      .set({ error: sql`coalesce(error || '; ', '') || ${`staged snapshot dropped after ${hours} h (retention); trigger a new sync to review again`}` })
      .where('id', 'in', ids).where('status', '=', 'HELD').execute();
    return { runs: ids.length, pages };
  });
}

export interface PruneResult { runs: number; auditRows: number; stages: StageExpiry }

/**
 * Deletes finished runs and audit rows older than the given ages. The latest
 * applied run of each district is kept whatever its age: the next delta's
 * window starts from it.
 */
export async function pruneHistory(db: Db, opts: { runsOlderThanDays: number; auditOlderThanDays: number; stageHours: number }): Promise<PruneResult> {
  const stages = await expireStages(db, opts.stageHours);
  const lastApplied = appliedSyncRuns(db).select('id').distinctOn('district_id').orderBy('district_id').orderBy('started_at', 'desc').orderBy('created_at', 'desc');
  const runs = await db.deleteFrom('sync_runs')
    .where('status', 'in', ['SUCCEEDED', 'FAILED', 'HELD'])
    .where('finished_at', '<', new Date(Date.now() - opts.runsOlderThanDays * 86400_000))
    .where('id', 'not in', lastApplied)
    // A district's mirror is the stage of one of its runs: kept while it is the mirror.
    .where('id', 'not in', db.selectFrom('snapshot_mirrors').select('run_id')).executeTakeFirst();
  const audit = await sql`DELETE FROM audit_log WHERE at < now() - make_interval(days => ${opts.auditOlderThanDays})`.execute(db);
  return { runs: Number(runs.numDeletedRows), auditRows: Number(audit.numAffectedRows ?? 0), stages };
}
