import { DelayedError, Worker, type Job } from 'bullmq';
import type { AppContext } from '../src/context.js';
import { executeRun, type ExecuteHooks } from '../src/sync/execute.js';
import { SYNC_QUEUE, SyncJobData } from './queues.js';
import { failQueuedRun, triggerSync } from './trigger.js';
import { keepSchedules } from './scheduler.js';
import { startHousekeeping } from './housekeeping.js';

/** How long a run waits before trying again when its district is busy. */
const BUSY_RETRY_MS = 1000;

/**
 * @param options.maintain also keep the district schedules registered (again
 * after a Redis restart) and run housekeeping: what `rostersync worker` does.
 */
export function createSyncWorker(ctx: AppContext, options: { concurrency?: number; hooks?: ExecuteHooks; maintain?: boolean } = {}): Worker<SyncJobData> {
  const worker = new Worker<SyncJobData>(SYNC_QUEUE, async (job: Job<SyncJobData>, token?: string) => {
    const data = SyncJobData.parse(job.data);
    if (data.type === 'scheduled') {
      const { run } = await triggerSync(ctx, data.districtId, { trigger: 'schedule' });
      return { runId: run.id, outcome: 'queued' };
    }
    const outcome = await executeRun(ctx, data.runId, {
      ...options.hooks,
      onProgress: async (p) => {
        await job.updateProgress(p);
        await options.hooks?.onProgress?.(p);
      },
    });
    if (outcome === 'busy') {
      // Another run of this district is in flight: wait our turn, never run beside it.
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    return { runId: data.runId, outcome };
  }, {
    connection: ctx.redis(),
    prefix: ctx.config.QUEUE_PREFIX,
    concurrency: options.concurrency ?? 2,
    lockDuration: ctx.config.WORKER_LOCK_MS,
    stalledInterval: ctx.config.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: 3,
  });
  worker.on('failed', (job, err) => {
    ctx.logger.error({ jobId: job?.id, err: err.message }, 'sync job failed');
    // The job died before the run could record why (Postgres down when the
    // worker picked it up, say): fail a run still QUEUED so the next trigger
    // starts afresh instead of joining a run nothing will ever process.
    const parsed = SyncJobData.safeParse(job?.data);
    if (parsed.success && parsed.data.type === 'run') {
      failQueuedRun(ctx, parsed.data.runId, `the worker could not start the run: ${err.message}`).catch((e: Error) =>
        ctx.logger.warn({ runId: parsed.data.type === 'run' ? parsed.data.runId : undefined, err: e.message }, 'could not record the lost run; the next trigger will'));
    }
  });
  worker.on('error', (err) => ctx.logger.error({ err: err.message }, 'sync worker error'));
  if (options.maintain) {
    const chores = [keepSchedules(ctx), startHousekeeping(ctx)];
    worker.on('closing', () => chores.forEach((c) => c.stop()));
  }
  return worker;
}
