import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../db/connection.js';
import { getRun, isFinished, toRunView, type RunView } from './runs.js';

/** Polls a run until it is SUCCEEDED, FAILED or HELD; works whichever process runs the worker. */
export async function waitForRun(db: Db, runId: string, opts: { timeoutMs?: number; intervalMs?: number; onUpdate?: (run: RunView) => void } = {}): Promise<RunView> {
  const timeoutMs = opts.timeoutMs ?? 30 * 60 * 1000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = toRunView(await getRun(db, runId));
    opts.onUpdate?.(run);
    if (isFinished(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status} (${run.phase ?? 'no phase'}) after ${timeoutMs} ms`);
    await sleep(opts.intervalMs ?? 200);
  }
}
