import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import type { District } from '../districts/repository.js';
import { zeroCounts } from '../domain/model.js';
import { evaluateGuards } from '../reconcile/guards.js';
import { activeBefore } from '../reconcile/sql/plan.js';
import type { PlanStats } from '../reconcile/types.js';
import { guardRecord } from './run-guard.js';
import { holdLease, lockDistrict, updateRun, type RunLease } from './runs.js';
import { quietMirrorStats, type Mirror } from './snapshot-mirror.js';
import { dropStages, clearStage } from './stage.js';
import { stageTable } from './stage-tables.js';

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
    const recorded = await quietMirrorStats(trx, { districtId: district.id, mirrorRunId: mirror.runId, provider: district.provider, asOf: opts.asOf });
    if (!recorded) return false;
    const stats: PlanStats = {
      ...recorded,
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
