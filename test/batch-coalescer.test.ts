import { BatchCoalescer } from '../src/sync/batch-coalescer.js';
import type { SnapshotBatch } from '../connectors/types.js';
import { enrol, student } from './helpers/roster.js';

const users = (...ids: string[]): SnapshotBatch => ({ kind: 'users', records: ids.map((id) => student(id)) });
const enrollments = (n: number, from = 0): SnapshotBatch => ({ kind: 'enrollments', records: Array.from({ length: n }, (_, i) => enrol(`u${from + i}`, 'c1')) });
const shape = (batches: SnapshotBatch[]) => batches.map((b) => `${b.kind}:${b.records.length}`);

test('small pages are gathered into staging batches of the target size, in order, kinds never mixed', () => {
  const c = new BatchCoalescer(5);
  const out: SnapshotBatch[] = [];
  out.push(...c.push(users('a', 'b')), ...c.push(users('c')), ...c.push(enrollments(3)), ...c.push(enrollments(3, 3)), ...c.push(enrollments(7, 6)), ...c.push(users('d')));
  out.push(...c.flush());
  expect(shape(out)).toEqual(['users:3', 'enrollments:6', 'enrollments:7', 'users:1']);
  // Every record arrives once, in the order it was fetched.
  expect(out.filter((b) => b.kind === 'enrollments').flatMap((b) => b.records.map((r) => (r as { userSourcedId: string }).userSourcedId)))
    .toEqual(Array.from({ length: 13 }, (_, i) => `u${i}`));
  expect(c.flush()).toEqual([]);
});
