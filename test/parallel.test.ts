import { setTimeout as sleep } from 'node:timers/promises';
import { inOrder } from '../connectors/http/parallel.js';

// Bounded parallel reads (Canvas courses, Schoology lists): at most `limit` in
// flight, and once the walk ends early the work still in flight is told to stop.

test('inOrder: never more than the limit in flight, results in input order; stopping early aborts what is still running', async () => {
  let inFlight = 0;
  let most = 0;
  const signals: AbortSignal[] = [];
  const work = async (n: number, signal: AbortSignal) => {
    signals.push(signal);
    inFlight += 1;
    most = Math.max(most, inFlight);
    await sleep(5 + (n % 3) * 5);
    inFlight -= 1;
    return n;
  };
  const seen: number[] = [];
  for await (const n of inOrder([...Array(12).keys()], 3, work)) {
    seen.push(n);
    if (seen.length === 4) break;
  }
  expect(most).toBe(3);
  expect(signals.length).toBeGreaterThanOrEqual(4);
  expect(signals.every((s) => s.aborted)).toBe(true);
  expect(seen).toEqual([0, 1, 2, 3]);
});

test('a walk that runs to the end aborts nothing while it runs', async () => {
  const aborted: boolean[] = [];
  const out: number[] = [];
  for await (const n of inOrder([1, 2, 3, 4], 2, async (n, signal) => { await sleep(2); aborted.push(signal.aborted); return n * 10; })) out.push(n);
  expect(out).toEqual([10, 20, 30, 40]);
  expect(aborted).toEqual([false, false, false, false]);
});
