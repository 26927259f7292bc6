import pRetry from 'p-retry';
import type { AppContext } from '../context.js';
import type { Logger } from '../logger.js';
import { SupersededError, updateRun, type RunLease } from './runs.js';
import { clearStage } from './stage.js';

/**
 * Records a run as FAILED with its reason. Postgres may be the very thing that
 * failed, so the write is retried for a while: a run left RUNNING would block
 * its district until its heartbeat goes stale.
 */
export async function finishFailed(ctx: AppContext, lease: RunLease, message: string, log: Logger): Promise<void> {
  try {
    await pRetry(() => updateRun(ctx.db, lease, { status: 'FAILED', phase: 'failed', error: message, finished: true }), {
      retries: 8, minTimeout: 250, maxTimeout: 5000, factor: 2,
      shouldRetry: ({ error }) => !(error instanceof SupersededError),
    });
  } catch (err) {
    if (err instanceof SupersededError) return;
    log.error({ err: (err as Error).message }, 'could not record the run as FAILED; the next trigger will find it stale');
    return;
  }
  await clearStage(ctx.db, lease.runId).catch(() => undefined);
}
