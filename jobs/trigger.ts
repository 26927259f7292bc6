import type { AppContext } from '../src/context.js';
import { getDistrict } from '../src/districts/repository.js';
import { appliedSyncRuns, createOrCoalesceRun, getRun, type RunTrigger } from '../src/sync/runs.js';
import { syncQueue } from './queues.js';

/**
 * Queues a sync of a district, or joins the one already queued. The job id is
 * the run id, so adding it again (a retry after a crash between the insert and
 * the add, or a coalesced trigger) never creates a second job.
 */
export async function triggerSync(ctx: AppContext, districtId: string, opts: { trigger: RunTrigger; dryRun?: boolean; full?: boolean }) {
  await getDistrict(ctx.db, districtId);
  const { run, coalesced } = await createOrCoalesceRun(ctx.db, { districtId, trigger: opts.trigger, dryRun: opts.dryRun ?? false, full: opts.full ?? false });
  await syncQueue(ctx).add('run', { type: 'run', runId: run.id }, { jobId: run.id });
  ctx.logger.info({ districtId, runId: run.id, coalesced, trigger: opts.trigger }, coalesced ? 'sync joined the queued run' : 'sync queued');
  return { run, coalesced };
}

export class ApprovalError extends Error {}

/** Re-queues a HELD run to apply exactly the snapshot it held, skipping the guards. */
export async function approveRun(ctx: AppContext, runId: string) {
  const run = await getRun(ctx.db, runId);
  if (run.status !== 'HELD') throw new ApprovalError(`run ${runId} is ${run.status}, only a HELD run can be approved`);
  const newer = await appliedSyncRuns(ctx.db).select('id')
    .where('district_id', '=', run.district_id).where('created_at', '>', run.created_at)
    .executeTakeFirst();
  if (newer) throw new ApprovalError(`run ${runId} is superseded by run ${newer.id}, which synced a newer snapshot; trigger a new sync instead`);
  const updated = await ctx.db.updateTable('sync_runs')
    .set({ status: 'QUEUED', approved: true, phase: 'queued', error: null, finished_at: null })
    .where('id', '=', runId).where('status', '=', 'HELD').returningAll().executeTakeFirst();
  if (!updated) throw new ApprovalError(`run ${runId} changed while approving; look at it again`);
  await syncQueue(ctx).add('run', { type: 'run', runId }, { jobId: `${runId}-approved` });
  ctx.logger.info({ districtId: run.district_id, runId }, 'held run approved');
  return updated;
}

