import { Queue } from 'bullmq';
import { z } from 'zod';
import type { AppContext } from '../src/context.js';

export const SYNC_QUEUE = 'sync';

/** `run`: execute a run row already created. `scheduled`: a district's cron fired; create (or join) a run first. */
export const SyncJobData = z.discriminatedUnion('type', [
  z.object({ type: z.literal('run'), runId: z.uuid() }),
  z.object({ type: z.literal('scheduled'), districtId: z.string().min(1) }),
]);
export type SyncJobData = z.infer<typeof SyncJobData>;

const queues = new WeakMap<AppContext, Queue<SyncJobData>>();

export function syncQueue(ctx: AppContext): Queue<SyncJobData> {
  let queue = queues.get(ctx);
  if (!queue) {
    queue = new Queue<SyncJobData>(SYNC_QUEUE, {
      connection: ctx.redis(),
      prefix: ctx.config.QUEUE_PREFIX,
      defaultJobOptions: {
        // Retries of a provider call happen inside the connector; a run that
        // fails is recorded FAILED and re-triggered, not silently retried here.
        attempts: 1,
        removeOnComplete: { count: 1000 },
        removeOnFail: { count: 1000 },
      },
    });
    queues.set(ctx, queue);
  }
  return queue;
}

export async function closeQueue(ctx: AppContext): Promise<void> {
  await queues.get(ctx)?.close();
  queues.delete(ctx);
}
