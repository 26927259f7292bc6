import { ListGatherer } from '../connectors/schoology/gather.js';
import { mix64 } from '../connectors/http/page-origin.js';
import { prng } from '../fixtures/prng.js';

// Schoology's section member lists are gathered into batches whose ends the
// lists' own digests choose (connectors/schoology/gather.ts), so a changed
// list changes the origin of its own batch and at most the next one: every
// other batch is taken from the page memo on the next resync.

/** Batches (their origins and sizes) of lists given as [digest, size]. */
function gather(lists: [bigint, number][], cap = 4000): { origin?: bigint; n: number }[] {
  const g = new ListGatherer<number>(cap);
  const out: { origin?: bigint; n: number }[] = [];
  for (const [digest, n] of lists) {
    const b = g.add(Array.from({ length: n }, (_, i) => i), digest);
    if (b) out.push({ origin: b.origin, n: b.records.length });
  }
  const last = g.flush();
  if (last) out.push({ origin: last.origin, n: last.records.length });
  return out;
}

test('a list that changes (its digest and its size) changes at most two batches; every record is handed on once', () => {
  const rand = prng(11);
  const lists: [bigint, number][] = Array.from({ length: 2000 }, (_, i) => [mix64(BigInt(i + 1)), 50 + Math.floor(rand() * 150)]);
  const before = gather(lists);
  expect(before.reduce((n, b) => n + b.n, 0)).toBe(lists.reduce((n, [, k]) => n + k, 0));
  // About one list in eight ends a batch: a couple of hundred batches, none past the cap.
  expect(before.length).toBeGreaterThan(150);
  expect(before.every((b) => b.n <= 4000 + 200 && b.origin !== undefined)).toBe(true);
  for (const at of [3, 700, 1999]) {
    const changed = lists.map((l, i): [bigint, number] => (i === at ? [mix64(BigInt(-i - 7)), l[1] + 40] : l));
    const after = gather(changed);
    const kept = new Set(before.map((b) => b.origin));
    const made = after.filter((b) => !kept.has(b.origin));
    expect([at, made.length <= 2]).toEqual([at, true]);
    expect(made.length).toBeGreaterThan(0);
  }
});

test('a list without a digest leaves its batch untagged; the next batch is tagged again', () => {
  const batches = gather([[mix64(1n), 10], [undefined as unknown as bigint, 10], [0n, 5], [mix64(2n), 10], [0n, 5]]);
  // 0n ends a batch (its low bits are zero).
  expect(batches.map((b) => [b.n, b.origin === undefined])).toEqual([[25, true], [15, false]]);
});
