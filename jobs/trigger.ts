import type { SyncRunRow } from '../db/schema.js';
import type { AppContext } from '../src/context.js';
import { getDistrict } from '../src/districts/repository.js';
import { appliedSyncRuns, createOrCoalesceRun, getRun, type RunTrigger } from '../src/sync/runs.js';
import { queueReachable, syncQueue } from './queues.js';

/** Job states in which a worker will still pick the job up (or has it now). */
export const LIVE_JOB_STATES = new Set<string>(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

export const jobIdOf = (run: Pick<SyncRunRow, 'id' | 'approved'>) => (run.approved ? `${run.id}-approved` : run.id);

/** The run's queue job state when nothing will ever process it (gone, failed, completed), else null. */
export async function lostJobState(ctx: AppContext, run: Pick<SyncRunRow, 'id' | 'approved'>): Promise<string | null> {
  const state = await syncQueue(ctx).getJobState(jobIdOf(run));
  return LIVE_JOB_STATES.has(state) ? null : state;
}

/**
 * Ends a run that is QUEUED but whose job is gone (Redis lost it, or the job
 * failed before the run could record why): nothing would ever process it, and
 * every later trigger would join it.
 */
export async function failQueuedRun(ctx: AppContext, runId: string, reason: string): Promise<boolean> {
  const result = await ctx.db.updateTable('sync_runs')
    .set({ status: 'FAILED', phase: 'failed', error: reason, finished_at: new Date() })
    .where('id', '=', runId).where('status', '=', 'QUEUED').executeTakeFirst();
  const failed = Number(result.numUpdatedRows) > 0;
  if (failed) ctx.logger.warn({ runId, reason }, 'queued run failed: its job is gone');
  return failed;
}

/**
 * Queues a sync of a district, or joins the one already queued. The job id is
 * the run id, so adding it again (a retry after a crash between the insert and
 * the add, or a coalesced trigger) never creates a second job. A queued run
 * whose job is gone is failed first, so the trigger starts a new one.
 */
export async function triggerSync(ctx: AppContext, districtId: string, opts: { trigger: RunTrigger; dryRun?: boolean; full?: boolean }) {
  await getDistrict(ctx.db, districtId);
  // Fail fast, before any run is recorded, when the queue cannot be reached.
  await queueReachable(ctx);
  const queue = syncQueue(ctx);
  for (;;) {
    const { run, coalesced } = await createOrCoalesceRun(ctx.db, { districtId, trigger: opts.trigger, dryRun: opts.dryRun ?? false, full: opts.full ?? false });
    if (coalesced) {
      const state = await lostJobState(ctx, run);
      if (state) {
        await failQueuedRun(ctx, run.id, `its queue job was lost (job state: ${state}; Redis restarted or the worker could not start it); a new run was queued instead`);
        continue;
      }
    } else {
      await queue.add('run', { type: 'run', runId: run.id }, { jobId: run.id });
    }
    ctx.logger.info({ districtId, runId: run.id, coalesced, trigger: opts.trigger }, coalesced ? 'sync joined the queued run' : 'sync queued');
    return { run, coalesced };
  }
}

export class ApprovalError extends Error {}

/** Re-queues a HELD run to apply exactly the snapshot it held, skipping the guards. */
export async function approveRun(ctx: AppContext, runId: string) {
  const run = await getRun(ctx.db, runId);
  await queueReachable(ctx);
  if (run.status !== 'HELD') throw new ApprovalError(`run ${runId} is ${run.status}, only a HELD run can be approved`);
  const newer = await appliedSyncRuns(ctx.db).select('id')
    .where('district_id', '=', run.district_id).where('created_at', '>', run.created_at)
    .executeTakeFirst();
  if (newer) throw new ApprovalError(`run ${runId} is superseded by run ${newer.id}, which synced a newer snapshot; trigger a new sync instead`);
  // Belt and braces: purge fails HELD runs, but no approval may outlive a purge in any case.
  const purge = await ctx.db.selectFrom('audit_log').select('at')
    .where('district_id', '=', run.district_id).where('entity', '=', 'district').where('action', '=', 'purge').where('at', '>', run.created_at)
    .executeTakeFirst();
  if (purge) throw new ApprovalError(`run ${runId} was staged before the district's roster data was purged (${purge.at.toISOString()}); trigger a new sync instead`);
  const updated = await ctx.db.updateTable('sync_runs')
    // heartbeat_at marks when it was queued again, for housekeeping's grace period.
    .set({ status: 'QUEUED', approved: true, phase: 'queued', error: null, finished_at: null, heartbeat_at: new Date() })
    .where('id', '=', runId).where('status', '=', 'HELD').returningAll().executeTakeFirst();
  if (!updated) throw new ApprovalError(`run ${runId} changed while approving; look at it again`);
  await syncQueue(ctx).add('run', { type: 'run', runId }, { jobId: jobIdOf(updated) });
  ctx.logger.info({ districtId: run.district_id, runId }, 'held run approved');
  return updated;
}

