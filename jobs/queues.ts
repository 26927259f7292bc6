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

/** How long a trigger waits for Redis before saying it is down. */
const REDIS_PING_MS = 2000;

/**
 * Fails fast with a clear message when Redis does not answer: the queue's
 * connection retries for ever (workers must outlive Redis restarts), so a
 * trigger that just added a job would hang instead.
 */
export async function queueReachable(ctx: AppContext): Promise<void> {
  const redis = ctx.redis();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new QueueUnavailableError(`Redis at ${redactRedisUrl(ctx.config.REDIS_URL)} did not answer within ${REDIS_PING_MS / 1000} s; is it running? Nothing was queued`)), REDIS_PING_MS);
  });
  try {
    await Promise.race([redis.ping(), timeout]);
  } catch (err) {
    if (err instanceof QueueUnavailableError) throw err;
    throw new QueueUnavailableError(`Redis at ${redactRedisUrl(ctx.config.REDIS_URL)} refused the queue: ${(err as Error).message}; nothing was queued`);
  } finally {
    clearTimeout(timer);
  }
}

export class QueueUnavailableError extends Error {}

const redactRedisUrl = (url: string) => url.replace(/\/\/([^@/]*)@/, '//[redacted]@');

export async function closeQueue(ctx: AppContext): Promise<void> {
  await queues.get(ctx)?.close();
  queues.delete(ctx);
}
