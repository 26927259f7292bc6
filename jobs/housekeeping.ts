import type { AppContext } from '../src/context.js';
import { expireStages } from '../src/sync/retention.js';
import { syncQueue } from './queues.js';
import { failQueuedRun, LIVE_JOB_STATES, jobIdOf } from './trigger.js';

/** A QUEUED run younger than this may still be on its way into the queue. */
const QUEUED_GRACE_MS = 60_000;

/**
 * Finds QUEUED runs whose job is gone (Redis restarted without its data, or
 * the job failed before the run could record it) and fails them with the
 * reason, so the district's next trigger starts a fresh run.
 */
export async function reapLostRuns(ctx: AppContext): Promise<string[]> {
  const queued = await ctx.db.selectFrom('sync_runs').select(['id', 'approved'])
    .where('status', '=', 'QUEUED').where('created_at', '<', new Date(Date.now() - QUEUED_GRACE_MS)).execute();
  const queue = syncQueue(ctx);
  const reaped: string[] = [];
  for (const run of queued) {
    const state = await queue.getJobState(jobIdOf(run));
    if (LIVE_JOB_STATES.has(state)) continue;
    if (await failQueuedRun(ctx, run.id, `its queue job was lost (job state: ${state}); trigger a new sync`)) reaped.push(run.id);
  }
  return reaped;
}

/** The worker's periodic chores: lost runs, expired stages. */
export function startHousekeeping(ctx: AppContext, options: { intervalMs?: number } = {}): { stop(): void } {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const reaped = await reapLostRuns(ctx);
      const expired = await expireStages(ctx.db, ctx.config.STAGE_RETENTION_HOURS);
      if (reaped.length || expired.runs) ctx.logger.info({ reaped, expiredStages: expired }, 'housekeeping');
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'housekeeping failed; will try again');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), options.intervalMs ?? 60_000);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer) };
}
