import type { AppContext } from '../src/context.js';
import { expireStages } from '../src/sync/retention.js';
import { sql } from 'kysely';
import { dropStages } from '../src/sync/stage.js';
import { failQueuedRun, lostJobState } from './trigger.js';

/** A QUEUED run younger than this may still be on its way into the queue. */
const QUEUED_GRACE_MS = 60_000;

/**
 * Finds QUEUED runs whose job is gone (Redis restarted without its data, or
 * the job failed before the run could record it) and fails them with the
 * reason, so the district's next trigger starts a fresh run.
 */
export async function reapLostRuns(ctx: AppContext): Promise<string[]> {
  const graceEnd = new Date(Date.now() - QUEUED_GRACE_MS);
  const queued = await ctx.db.selectFrom('sync_runs').select(['id', 'approved'])
    .where('status', '=', 'QUEUED').where('created_at', '<', graceEnd)
    // An approved run was queued again at approval (heartbeat_at), not at creation.
    .where((eb) => eb.or([eb('heartbeat_at', 'is', null), eb('heartbeat_at', '<', graceEnd)])).execute();
  const reaped: string[] = [];
  for (const run of queued) {
    const state = await lostJobState(ctx, run);
    if (state && await failQueuedRun(ctx, run.id, `its queue job was lost (job state: ${state}); trigger a new sync`)) reaped.push(run.id);
  }
  // RUNNING with a stale heartbeat and no live job: its worker died where nothing
  // could record it. Without this, only a later run of its district would notice.
  const stale = await ctx.db.selectFrom('sync_runs').select(['id', 'approved', 'attempts', 'heartbeat_at'])
    .where('status', '=', 'RUNNING').where('heartbeat_at', '<', new Date(Date.now() - ctx.config.RUN_STALE_MS)).execute();
  for (const run of stale) {
    const state = await lostJobState(ctx, run);
    if (!state) continue;
    const failed = await ctx.db.updateTable('sync_runs')
      .set({ status: 'FAILED', phase: 'failed', finished_at: new Date(), error: `abandoned: no heartbeat since ${run.heartbeat_at?.toISOString()} and its queue job is gone (${state}); trigger a new sync` })
      .where('id', '=', run.id).where('status', '=', 'RUNNING').where('attempts', '=', run.attempts).executeTakeFirst();
    if (Number(failed.numUpdatedRows) > 0) {
      await dropStages(ctx.db, sql`SELECT ${run.id}::uuid`);
      reaped.push(run.id);
    }
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
