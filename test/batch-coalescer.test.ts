import { BatchCoalescer } from '../src/sync/batch-coalescer.js';
import type { SnapshotBatch } from '../connectors/types.js';
import { enrol, student } from './helpers/roster.js';

const users = (...ids: string[]): SnapshotBatch => ({ kind: 'users', records: ids.map((id) => student(id)) });
const enrollments = (n: number, from = 0): SnapshotBatch => ({ kind: 'enrollments', records: Array.from({ length: n }, (_, i) => enrol(`u${from + i}`, 'c1')) });
const shape = (batches: SnapshotBatch[]) => batches.map((b) => `${b.kind}:${b.records.length}`);

test('small pages are gathered into staging batches of the target size, a batch per kind (alternating kinds never cut one short), records of a kind in order', () => {
  const c = new BatchCoalescer(5);
  const out: SnapshotBatch[] = [];
  out.push(...c.push(users('a', 'b')), ...c.push(enrollments(3)), ...c.push(users('c')), ...c.push(enrollments(3, 3)), ...c.push(enrollments(7, 6)), ...c.push(users('d')));
  out.push(...c.flush());
  expect(shape(out)).toEqual(['enrollments:5', 'enrollments:5', 'users:4', 'enrollments:3']);
  expect(out.filter((b) => b.kind === 'users').flatMap((b) => b.records.map((r) => (r as { sourcedId: string }).sourcedId))).toEqual(['a', 'b', 'c', 'd']);
  // Every record arrives once, in the order it was fetched.
  expect(out.filter((b) => b.kind === 'enrollments').flatMap((b) => b.records.map((r) => (r as { userSourcedId: string }).userSourcedId)))
    .toEqual(Array.from({ length: 13 }, (_, i) => `u${i}`));
  expect(c.flush()).toEqual([]);
});

test('a page far larger than the target (a Clever page of sections: every student of a thousand sections) is cut into target-sized batches, records in order', () => {
  const c = new BatchCoalescer(5000);
  const out = [...c.push(users('a')), ...c.push(enrollments(150_003)), ...c.push(enrollments(2, 150_003)), ...c.flush()];
  expect(shape(out)).toEqual([...Array.from({ length: 30 }, () => 'enrollments:5000'), 'users:1', 'enrollments:5']);
  const ids = out.filter((b) => b.kind === 'enrollments').flatMap((b) => b.records.map((r) => (r as { userSourcedId: string }).userSourcedId));
  expect(ids).toHaveLength(150_005);
  expect(ids[0]).toBe('u0');
  expect(ids[150_004]).toBe('u150004');
});
