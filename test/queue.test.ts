import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { syncQueue } from '../jobs/queues.js';
import { triggerSync } from '../jobs/trigger.js';
import { waitForRun } from '../src/sync/wait.js';
import { adminQuery, createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, startClever } from './helpers/district.js';

let t: TestEnv;
let server: FakeCleverServer;

beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever({ seed: 5, schools: 2, students: 60, sections: 8, enrollmentsPerStudent: 2 });
  await addCleverDistrict(t.ctx, 'q1', server);
  await addCleverDistrict(t.ctx, 'q2', server);
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

test('triggers while a run is queued join it: one run, one job', async () => {
  const a = await triggerSync(t.ctx, 'q1', { trigger: 'cli' });
  const b = await triggerSync(t.ctx, 'q1', { trigger: 'api' });
  const c = await triggerSync(t.ctx, 'q1', { trigger: 'schedule', full: true });
  expect(a.coalesced).toBe(false);
  expect([b.coalesced, c.coalesced]).toEqual([true, true]);
  expect(new Set([a.run.id, b.run.id, c.run.id]).size).toBe(1);
  // A dry run is a different question and gets its own run.
  const dry = await triggerSync(t.ctx, 'q1', { trigger: 'cli', dryRun: true });
  expect(dry.run.id).not.toBe(a.run.id);
  expect(await syncQueue(t.ctx).getWaitingCount()).toBe(2);

  t.startWorker();
  const done = await waitForRun(t.ctx.db, a.run.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(done.status).toBe('SUCCEEDED');
  expect((await waitForRun(t.ctx.db, dry.run.id, { timeoutMs: 30000, intervalMs: 50 })).status).toBe('SUCCEEDED');
  const runs = await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', 'q1').execute();
  expect(runs).toHaveLength(2);
});

test('two runs of one district never overlap, even with spare workers; other districts run alongside', async () => {
  t.startWorker();
  // Slow pages keep the first run busy long enough for the second to try to start.
  server.faults.push({ path: '/v3.0/users', delayMs: 400, times: 4 });
  const first = await triggerSync(t.ctx, 'q1', { trigger: 'cli' });
  await waitForPhase(first.run.id, 'RUNNING');
  const second = await triggerSync(t.ctx, 'q1', { trigger: 'cli' });
  const other = await triggerSync(t.ctx, 'q2', { trigger: 'cli' });
  expect(second.coalesced).toBe(false);
  const [r1, r2, r3] = await Promise.all([first, second, other].map((x) => waitForRun(t.ctx.db, x.run.id, { timeoutMs: 30000, intervalMs: 50 })));
  expect([r1!.status, r2!.status, r3!.status]).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
  expect(Date.parse(r2!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(r1!.finishedAt!));
  // q2 did not wait for q1.
  expect(Date.parse(r3!.startedAt!)).toBeLessThan(Date.parse(r1!.finishedAt!));
});

async function waitForPhase(runId: string, status: string): Promise<void> {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const row = await t.ctx.db.selectFrom('sync_runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow();
    if (row.status === status) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`run ${runId} never reached ${status}`);
}

test('a Postgres connection ended by the server does not crash the process; the next query reconnects', async () => {
  await Promise.all([1, 2, 3].map(() => t.ctx.db.selectFrom('districts').select('id').execute()));
  const name = new URL(t.databaseUrl).pathname.slice(1);
  const killed = await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
  expect(killed.rowCount).toBeGreaterThan(0);
  await new Promise((r) => setTimeout(r, 200));
  expect((await t.ctx.db.selectFrom('districts').select('id').orderBy('id').execute()).map((d) => d.id)).toEqual(['q1', 'q2']);
});

test('a district with a schedule syncs on its own; clearing the schedule stops it', async () => {
  const { syncSchedules } = await import('../jobs/scheduler.js');
  const { getDistrict, upsertDistrict } = await import('../src/districts/repository.js');
  const q2 = await getDistrict(t.ctx.db, 'q2');
  await upsertDistrict(t.ctx.db, { id: 'q2', settings: q2.settings, schedule: '*/1 * * * * *' });
  expect((await syncSchedules(t.ctx)).scheduled).toEqual(['district:q2']);
  const scheduledRun = async () => t.ctx.db.selectFrom('sync_runs').selectAll()
    .where('district_id', '=', 'q2').where('trigger', '=', 'schedule').where('status', '=', 'SUCCEEDED').executeTakeFirst();
  const deadline = Date.now() + 20000;
  while (!(await scheduledRun()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(await scheduledRun()).toBeDefined();

  await upsertDistrict(t.ctx.db, { id: 'q2', settings: q2.settings, schedule: null });
  expect(await syncSchedules(t.ctx)).toEqual({ scheduled: [], removed: ['district:q2'] });
  expect(await syncQueue(t.ctx).getJobSchedulers()).toEqual([]);
});

test('a RUNNING run whose worker vanished without a trace is taken over once its heartbeat is stale', async () => {
  // What a worker leaves behind when it dies while the database is down: RUNNING, no job, no heartbeat since.
  const stuck = await t.ctx.db.insertInto('sync_runs').values({
    district_id: 'q1', trigger: 'cli', status: 'RUNNING', dry_run: false, full_snapshot: true,
    started_at: new Date(Date.now() - 3_600_000), heartbeat_at: new Date(Date.now() - 3_600_000),
  }).returning('id').executeTakeFirstOrThrow();
  const { run } = await triggerSync(t.ctx, 'q1', { trigger: 'cli' });
  const done = await waitForRun(t.ctx.db, run.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(done.status).toBe('SUCCEEDED');
  const old = await t.ctx.db.selectFrom('sync_runs').select(['status', 'error']).where('id', '=', stuck.id).executeTakeFirstOrThrow();
  expect(old).toMatchObject({ status: 'FAILED', error: expect.stringContaining(`abandoned: no heartbeat since`) });

  // A RUNNING run with a fresh heartbeat is not touched: the next run waits for it.
  const live = await t.ctx.db.insertInto('sync_runs').values({
    district_id: 'q1', trigger: 'cli', status: 'RUNNING', dry_run: false, full_snapshot: true, started_at: new Date(), heartbeat_at: new Date(),
  }).returning('id').executeTakeFirstOrThrow();
  const { run: waiting } = await triggerSync(t.ctx, 'q1', { trigger: 'cli' });
  await new Promise((r) => setTimeout(r, 1500));
  expect((await t.ctx.db.selectFrom('sync_runs').select('status').where('id', '=', waiting.id).executeTakeFirstOrThrow()).status).toBe('QUEUED');
  await t.ctx.db.updateTable('sync_runs').set({ status: 'FAILED', finished_at: new Date() }).where('id', '=', live.id).execute();
  expect((await waitForRun(t.ctx.db, waiting.id, { timeoutMs: 30000, intervalMs: 50 })).status).toBe('SUCCEEDED');
});
