import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { approveRun, triggerSync } from '../jobs/trigger.js';
import { listUsers } from '../src/queries.js';
import { getRun, toRunView } from '../src/sync/runs.js';
import { waitForRun } from '../src/sync/wait.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow, districtState } from './helpers/district.js';

let t: TestEnv;
let server: FakeCleverServer;
const D = 'faulty';

beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever({ seed: 23, schools: 2, students: 150, sections: 12, enrollmentsPerStudent: 2 });
  t.startWorker();
  await addCleverDistrict(t.ctx, D, server);
  await addPool(t.ctx, D, 'READ', 1000);
  expect((await syncNow(t.ctx, D)).status).toBe('SUCCEEDED');
});
afterAll(async () => {
  await server.stop();
  await t.close();
});
beforeEach(() => {
  server.faults.length = 0;
  server.requests.length = 0;
});

/** Everything a run could change, to compare before and after a fault. */
const state = () => districtState(t.ctx, D);

test('bursts of 429 (with Retry-After) and 500 are retried and the run succeeds', async () => {
  const leaver = [...server.district.students.keys()][0]!;
  const removed = server.district.removeStudent(leaver);
  server.faults.push(
    { path: '/v3.0/users', status: 429, retryAfterSec: 1, times: 2 },
    { path: '/v3.0/sections', status: 500, times: 3 },
    { path: '/v3.0/schools', status: 503, times: 1 },
  );
  const started = Date.now();
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(run.counts.usersDeleted).toBe(1);
  expect(server.requests.filter((r) => r.status === 429)).toHaveLength(2);
  expect(server.requests.filter((r) => r.status >= 500)).toHaveLength(4);
  // Retry-After was honoured: two 429s of one second each.
  expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  server.district.restoreStudent(removed.student, removed.sectionIds);
  expect((await syncNow(t.ctx, D)).counts.usersReactivated).toBe(1);
});

test('a truncated page and a page slower than the timeout are fetched again', async () => {
  const before = await state();
  server.faults.push({ path: '/v3.0/users?role=student', truncate: true, times: 1 }, { path: '/v3.0/courses', delayMs: 2300, times: 1 });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(Object.values(run.counts).every((n) => n === 0)).toBe(true);
  expect(server.requestsTo('/v3.0/courses').length).toBeGreaterThanOrEqual(2);
  expect(await state()).toEqual(before);
});

test('a provider that keeps failing fails the run with the reason and changes nothing', async () => {
  const before = await state();
  const removed = server.district.removeStudent([...server.district.students.keys()][5]!);
  server.faults.push({ path: '/v3.0/users?role=student', status: 502, times: 1000 });
  const run = await syncNow(t.ctx, D);
  server.district.restoreStudent(removed.student, removed.sectionIds);
  expect(run.status).toBe('FAILED');
  expect(run.error).toMatch(/Clever: GET .*\/v3\.0\/users\?role=student.* failed with HTTP 502/);
  expect(server.requests.filter((r) => r.status === 502)).toHaveLength(7); // 1 + 6 retries
  expect(await state()).toEqual(before);
  const staged = await t.ctx.db.selectFrom('run_stage').select('run_id').where('run_id', '=', run.id).execute();
  expect(staged).toEqual([]);
});

test('a 401 fails at once with a message that says to fix the token, and changes nothing', async () => {
  const before = await state();
  await addCleverDistrict(t.ctx, D, server, { token: 'revoked-token' });
  try {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('FAILED');
    expect(run.error).toContain('Clever refused our credentials (HTTP 401)');
    expect(run.error).toContain('district token');
    expect(run.error).not.toContain('revoked-token');
    expect(server.requests).toHaveLength(1);
    expect(await state()).toEqual(before);
  } finally {
    await addCleverDistrict(t.ctx, D, server);
  }
});

test('a malformed page fails the run without retrying, and changes nothing', async () => {
  const before = await state();
  // The page itself is not Clever's envelope (one bad record inside a good page is quarantined instead).
  server.faults.push({ path: '/v3.0/schools', body: JSON.stringify({ data: { id: 42 }, links: [] }), times: 5 });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('FAILED');
  expect(run.error).toMatch(/malformed page: data/);
  expect(server.requestsTo('/v3.0/schools')).toHaveLength(1);
  expect(await state()).toEqual(before);
});

test('an empty snapshot is HELD and changes nothing', async () => {
  const before = await state();
  const empty = JSON.stringify({ data: [], links: [] });
  server.faults.push({ path: '/v3.0/users', body: empty, times: 2 });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('HELD');
  expect(run.error).toContain('snapshot is empty');
  expect(await state()).toEqual(before);
  // The held snapshot stays staged, ready to be approved.
  expect((await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', run.id).execute()).length).toBeGreaterThan(0);
});

test('a mass deletion is HELD with its counts, changes nothing, and applies the held snapshot once approved', async () => {
  const before = await state();
  const ids = [...server.district.students.keys()].slice(10, 40);
  const removed = ids.map((id) => server.district.removeStudent(id));
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  expect(held.counts.usersDeleted).toBe(30);
  expect(held.error).toContain('would delete 30 of 150 active students, above the district\'s threshold of 25');
  expect(await state()).toEqual(before);

  // Meanwhile the provider changes again; approval applies what was reviewed, not this.
  server.district.restoreStudent(removed[0]!.student, removed[0]!.sectionIds);
  await approveRun(t.ctx, held.id);
  const applied = await waitForRun(t.ctx.db, held.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(applied).toMatchObject({ status: 'SUCCEEDED', approved: true });
  expect(applied.counts.usersDeleted).toBe(30);
  const deleted = await listUsers(t.ctx.db, D, { status: 'DELETED' });
  expect(deleted.map((u) => u.sourcedId).sort()).toEqual(expect.arrayContaining([...ids].sort()));
  expect(deleted.every((u) => u.products.length === 0 && u.classes.length === 0)).toBe(true);
  await expect(approveRun(t.ctx, held.id)).rejects.toThrow(/only a HELD run can be approved/);

  // The next sync sees the one student who came back.
  expect((await syncNow(t.ctx, D)).counts.usersReactivated).toBe(1);
  for (const r of removed.slice(1)) server.district.restoreStudent(r.student, r.sectionIds);
  // 29 returning at once is below the guard: reactivation is never held.
  expect((await syncNow(t.ctx, D)).counts.usersReactivated).toBe(29);
});

test('approving an old HELD run after a newer sync succeeded is refused', async () => {
  const removed = [...server.district.students.keys()].slice(0, 30).map((id) => server.district.removeStudent(id));
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  expect((await syncNow(t.ctx, D)).status).toBe('SUCCEEDED');
  await expect(approveRun(t.ctx, held.id)).rejects.toThrow(/superseded/);
  expect(toRunView(await getRun(t.ctx.db, held.id)).status).toBe('HELD');
  // Its staged snapshot, no longer approvable, was dropped by the newer run.
  expect(await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', held.id).execute()).toEqual([]);
});

test('approving a HELD run whose stage was lost fails clearly instead of applying an unreviewed snapshot', async () => {
  const removed = [...server.district.students.keys()].slice(60, 90).map((id) => server.district.removeStudent(id));
  try {
    const held = await syncNow(t.ctx, D);
    expect(held.status).toBe('HELD');
    const before = await state();
    // What a Postgres crash does to the unlogged stage.
    await t.ctx.db.deleteFrom('run_stage').where('run_id', '=', held.id).execute();
    await approveRun(t.ctx, held.id);
    const run = await waitForRun(t.ctx.db, held.id, { timeoutMs: 30000, intervalMs: 50 });
    expect(run.status).toBe('FAILED');
    expect(run.error).toContain('the held snapshot is no longer staged');
    expect(await state()).toEqual(before);
  } finally {
    for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  }
});

test('an unknown district is a clear error and queues nothing', async () => {
  await expect(triggerSync(t.ctx, 'no-such-district', { trigger: 'cli' })).rejects.toThrow("unknown district 'no-such-district'");
  expect(await t.ctx.db.selectFrom('sync_runs').selectAll().where('district_id', '=', 'no-such-district').execute()).toEqual([]);
});
