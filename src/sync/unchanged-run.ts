import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import type { District } from '../districts/repository.js';
import { zeroCounts } from '../domain/model.js';
import { evaluateGuards } from '../reconcile/guards.js';
import { activeBefore } from '../reconcile/sql/plan.js';
import type { PlanStats } from '../reconcile/types.js';
import { guardRecord } from './run-guard.js';
import { holdLease, lockDistrict, updateRun, type RunLease } from './runs.js';
import type { Mirror } from './snapshot-mirror.js';
import { dropStages, clearStage } from './stage.js';
import { stageTable } from './stage-tables.js';

/** The snapshot-side numbers of a plan: what a snapshot identical to the mirror's has, whatever the district holds now. */
const SNAPSHOT_STATS = ['snapshotUsers', 'snapshotClasses', 'snapshotEnrollments', 'snapshotTeachers', 'snapshotSchools', 'danglingEnrollments', 'snapshotRecords', 'quarantined', 'conflicts'] as const;

/**
 * A full sync whose snapshot is exactly the district's mirror: every mirrored
 * record came back unchanged and nothing else came. When the mirror is quiet
 * (its own apply is the last change to the district) and of the same day (what
 * is current depends on the date), planning it again is known to change
 * nothing: the plan is empty by idempotence, which test/snapshot-mirror.test.ts
 * checks against the full planner. The run is recorded with empty counts and
 * the guard numbers the full plan would have given, under the district lock.
 * Returns false, having written nothing, when that cannot be shown (the
 * mirror changed, the day turned, or the guards would hold the run): the
 * caller then plans it in full.
 */
export async function applyUnchanged(ctx: AppContext, district: District, mirror: Mirror, opts: { lease: RunLease; asOf: string; dryRun: boolean }): Promise<boolean> {
  const { lease } = opts;
  return ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, district.id);
    await holdLease(trx, lease);
    const now = await trx.selectFrom('snapshot_mirrors').select(['run_id', 'quiet', 'as_of', 'provider'])
      .where('district_id', '=', district.id).executeTakeFirst();
    if (!now || now.run_id !== mirror.runId || !now.quiet || now.as_of !== opts.asOf || now.provider !== district.provider) return false;
    const source = await trx.selectFrom('sync_runs').select('guard').where('id', '=', mirror.runId).executeTakeFirst();
    const recorded = (source?.guard ?? null) as Partial<Record<string, unknown>> | null;
    if (!recorded || SNAPSHOT_STATS.some((k) => typeof recorded[k] !== 'number')) return false;
    const stats: PlanStats = {
      ...Object.fromEntries(SNAPSHOT_STATS.map((k) => [k, recorded[k] as number])) as Pick<PlanStats, typeof SNAPSHOT_STATS[number]>,
      complete: true,
      ...await activeBefore(trx, district.id, district.provider),
      studentsDeleted: 0, teachersDeleted: 0, classesRetired: 0, schoolsRetired: 0, enrollmentsEnded: 0,
    };
    const verdict = evaluateGuards(stats, district.guard);
    // A held run must keep a stage to be approved from: the full path stages it.
    if (verdict.held) return false;
    const guard = await guardRecord(trx, stats, verdict, stageTable(mirror.runId, 'quarantine'));
    const counts = { ...zeroCounts(), recordsQuarantined: stats.quarantined };
    await updateRun(trx, lease, { status: 'SUCCEEDED', phase: 'done', counts, guard, error: null, finished: true });
    if (opts.dryRun) await clearStage(trx, lease.runId);
    // The run's own (empty) stage, and those of older HELD runs, as an applied run drops them.
    else await dropStages(trx, sql`SELECT id FROM sync_runs WHERE id = ${lease.runId}::uuid OR (district_id = ${district.id} AND status = 'HELD'
        AND created_at < (SELECT created_at FROM sync_runs WHERE id = ${lease.runId}::uuid))`);
    return true;
  });
}
