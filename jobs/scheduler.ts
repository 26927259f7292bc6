import type { AppContext } from '../src/context.js';
import { listDistrictSummaries } from '../src/districts/repository.js';
import { syncQueue } from './queues.js';

const schedulerId = (districtId: string) => `district:${districtId}`;

/**
 * Makes the queue's job schedulers match the districts' schedules: one cron per
 * district that has one, none for those that do not. Safe to run from every
 * worker at start and after `district add`.
 */
export async function syncSchedules(ctx: AppContext): Promise<{ scheduled: string[]; removed: string[] }> {
  const queue = syncQueue(ctx);
  const districts = await listDistrictSummaries(ctx.db);
  const wanted = new Map(districts.filter((d) => d.schedule).map((d) => [schedulerId(d.id), d]));
  const removed: string[] = [];
  for (const existing of await queue.getJobSchedulers()) {
    if (existing.key && !wanted.has(existing.key)) {
      await queue.removeJobScheduler(existing.key);
      removed.push(existing.key);
    }
  }
  for (const [id, d] of wanted) {
    await queue.upsertJobScheduler(id, { pattern: d.schedule! }, { name: 'scheduled', data: { type: 'scheduled', districtId: d.id } });
  }
  ctx.logger.info({ scheduled: [...wanted.keys()], removed }, 'district schedules synced');
  return { scheduled: [...wanted.keys()], removed };
}

/**
 * Keeps the queue's schedulers in step with Postgres, the source of truth:
 * again whenever the Redis connection comes back (a Redis restarted without
 * its data has lost every scheduler) and every `intervalMs` besides.
 */
export function keepSchedules(ctx: AppContext, options: { intervalMs?: number } = {}): { stop(): void } {
  let running: Promise<unknown> | undefined;
  const resync = (why: string) => {
    if (running) return;
    running = syncSchedules(ctx)
      .catch((err: Error) => ctx.logger.warn({ err: err.message, why }, 'could not sync district schedules; will try again'))
      .finally(() => { running = undefined; });
  };
  const redis = ctx.redis();
  const onReady = () => resync('redis reconnected');
  redis.on('ready', onReady);
  const timer = setInterval(() => resync('periodic'), options.intervalMs ?? 60_000);
  timer.unref();
  resync('start');
  return {
    stop() {
      clearInterval(timer);
      redis.off('ready', onReady);
    },
  };
}
