import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';

// What rostersync keeps, and for how long. Stages and plans hold names and
// emails, so they go as soon as they are no use (applied or dry runs clear
// theirs at once) or after a set time (HELD and FAILED runs). Run history and
// the audit trail are kept longer and pruned on command.

export interface StageExpiry { runs: number; pages: number }

/** Drops the stages and plans of HELD and FAILED runs that finished more than `hours` ago. */
export async function expireStages(db: Db, hours: number): Promise<StageExpiry> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ id: string }>`
      SELECT id FROM sync_runs
      WHERE status IN ('HELD', 'FAILED') AND finished_at < now() - make_interval(secs => ${hours * 3600})
        AND (EXISTS (SELECT 1 FROM run_stage s WHERE s.run_id = sync_runs.id) OR EXISTS (SELECT 1 FROM run_plan_items p WHERE p.run_id = sync_runs.id))`.execute(trx);
    const ids = rows.map((r) => r.id);
    if (ids.length === 0) return { runs: 0, pages: 0 };
    const pages = await trx.deleteFrom('run_stage').where('run_id', 'in', ids).executeTakeFirst();
    await trx.deleteFrom('run_plan_items').where('run_id', 'in', ids).execute();
    // Said on the run itself, so an approval attempt explains why it cannot apply.
    await trx.updateTable('sync_runs')
      .set({ error: sql`coalesce(error || '; ', '') || ${`staged snapshot dropped after ${hours} h (retention); trigger a new sync to review again`}` })
      .where('id', 'in', ids).where('status', '=', 'HELD').execute();
    return { runs: ids.length, pages: Number(pages.numDeletedRows) };
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
  const runs = await sql`
    DELETE FROM sync_runs r
    WHERE r.status IN ('SUCCEEDED', 'FAILED', 'HELD') AND r.finished_at < now() - make_interval(days => ${opts.runsOlderThanDays})
      AND r.id NOT IN (
        SELECT DISTINCT ON (district_id) id FROM sync_runs
        WHERE status = 'SUCCEEDED' AND NOT dry_run AND trigger NOT LIKE 'ops:%' AND trigger NOT LIKE 'sso:%'
        ORDER BY district_id, started_at DESC)`.execute(db);
  const audit = await sql`DELETE FROM audit_log WHERE at < now() - make_interval(days => ${opts.auditOlderThanDays})`.execute(db);
  return { runs: Number(runs.numAffectedRows ?? 0), auditRows: Number(audit.numAffectedRows ?? 0), stages };
}
