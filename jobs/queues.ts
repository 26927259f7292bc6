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

/**
 * How long a trigger waits for a Redis that accepted the connection but has not
 * answered. A Redis that is down refuses the connection and is reported at
 * once; this bound is for a stuck one. It used to be 2 s for both, which a
 * CLI process starting on a loaded machine (CI: two jest workers beside three
 * worker processes) could miss while Redis was fine.
 */
const REDIS_ANSWER_MS = 10_000;

/**
 * Fails with a clear message when Redis is not there: the queue's connection
 * retries for ever (workers must outlive Redis restarts), so a trigger that
 * just added a job would hang instead. A refused or reset connection fails the
 * trigger on the first error ioredis reports; silence, after REDIS_ANSWER_MS.
 */
export async function queueReachable(ctx: AppContext, answerMs = REDIS_ANSWER_MS): Promise<void> {
  // Triggers at once (a burst of API calls) share one check: one listener on the connection, not one each.
  const redis = ctx.redis();
  let check = checking.get(redis);
  if (!check) {
    check = answers(ctx, answerMs).finally(() => checking.delete(redis));
    checking.set(redis, check);
  }
  return check;
}

const checking = new WeakMap<object, Promise<void>>();

async function answers(ctx: AppContext, answerMs: number): Promise<void> {
  const redis = ctx.redis();
  const where = `Redis at ${redactRedisUrl(ctx.config.REDIS_URL)}`;
  let stopWatching = () => undefined as void;
  const unreachable = new Promise<never>((_, reject) => {
    const onError = (err: Error) => reject(new QueueUnavailableError(`${where} refused the connection (${err.message}); is it running? Nothing was queued`));
    const timer = setTimeout(() => reject(new QueueUnavailableError(`${where} did not answer within ${answerMs / 1000} s; is it running? Nothing was queued`)), answerMs);
    redis.on('error', onError);
    stopWatching = () => { clearTimeout(timer); redis.off('error', onError); };
  });
  try {
    await Promise.race([redis.ping(), unreachable]);
  } catch (err) {
    if (err instanceof QueueUnavailableError) throw err;
    throw new QueueUnavailableError(`${where} refused the queue: ${(err as Error).message}; nothing was queued`);
  } finally {
    stopWatching();
  }
}

export class QueueUnavailableError extends Error {}

const redactRedisUrl = (url: string) => url.replace(/\/\/([^@/]*)@/, '//[redacted]@');

export async function closeQueue(ctx: AppContext): Promise<void> {
  await queues.get(ctx)?.close();
  queues.delete(ctx);
}
