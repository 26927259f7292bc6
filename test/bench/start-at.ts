// Two baselines started at one instant (the bench's "side by side": the bare
// fetch and the raw COPY, each in its own process): each does its set-up
// (connecting, a scratch database, a checkpoint), then waits for the agreed
// wall-clock instant before its clock starts, so neither's set-up overlaps the
// other's timed work.
import { setTimeout as sleep } from 'node:timers/promises';

export const startAtOption = {
  // Milliseconds since the epoch: set up, then start the timed part at that instant.
  'start-at': { type: 'string' },
} as const;

/** Waits for `startAt` (epoch ms, as given on the command line); returns how late the set-up made this process (0 when on time). */
export async function waitForStart(startAt: string | undefined): Promise<number> {
  if (startAt === undefined) return 0;
  const at = Number(startAt);
  if (!Number.isFinite(at)) throw new Error(`--start-at: '${startAt}' is not a time in milliseconds since the epoch`);
  const wait = at - Date.now();
  if (wait > 0) await sleep(wait);
  return Math.max(0, -wait);
}
