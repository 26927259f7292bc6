import type { AppContext } from '../src/context.js';
import { listDistricts } from '../src/districts/repository.js';
import { syncQueue } from './queues.js';

const schedulerId = (districtId: string) => `district:${districtId}`;

/**
 * Makes the queue's job schedulers match the districts' schedules: one cron per
 * district that has one, none for those that do not. Safe to run from every
 * worker at start and after `district add`.
 */
export async function syncSchedules(ctx: AppContext): Promise<{ scheduled: string[]; removed: string[] }> {
  const queue = syncQueue(ctx);
  const districts = await listDistricts(ctx.db);
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
