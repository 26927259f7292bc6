import { setTimeout as sleep } from 'node:timers/promises';

export interface PacerOptions {
  /** Below this many units left in the bucket, requests are spaced out. */
  lowWater: number;
  /** The longest pause before one request (when the bucket reads empty). */
  maxWaitMs: number;
  signal?: AbortSignal;
}

/**
 * Paces requests by Canvas's leaky-bucket header. Canvas answers every request
 * with X-Request-Cost and X-Rate-Limit-Remaining (app/middleware/request_throttle.rb);
 * its bucket holds ~700 units, leaks back over time, and charges an up-front
 * cost for every request in flight, so parallel bursts drain it fastest. The
 * fewer units left, the longer we pause before the next request, so a long
 * sync slows down before Canvas starts refusing it.
 */
export class RateLimitPacer {
  private remaining = Number.POSITIVE_INFINITY;
  readonly stats = { pausedRequests: 0, pausedMs: 0, lowestRemaining: Number.POSITIVE_INFINITY, totalCost: 0 };

  constructor(private readonly options: PacerOptions) {}

  observe(headers: Record<string, string>): void {
    const remaining = Number(headers['x-rate-limit-remaining']);
    if (Number.isFinite(remaining)) {
      this.remaining = remaining;
      this.stats.lowestRemaining = Math.min(this.stats.lowestRemaining, remaining);
    }
    const cost = Number(headers['x-request-cost']);
    if (Number.isFinite(cost)) this.stats.totalCost += cost;
  }

  async beforeRequest(): Promise<void> {
    const { lowWater, maxWaitMs, signal } = this.options;
    if (!(this.remaining < lowWater)) return;
    const deficit = Math.min(1, (lowWater - Math.max(0, this.remaining)) / lowWater);
    const waitMs = Math.round(maxWaitMs * deficit);
    // Assume the bucket refills while we wait, so requests queued behind this one do not pause again.
    this.remaining = lowWater;
    if (waitMs <= 0) return;
    this.stats.pausedRequests += 1;
    this.stats.pausedMs += waitMs;
    await sleep(waitMs, undefined, { signal });
  }
}
