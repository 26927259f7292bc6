import { spawn } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { queueReachable, syncQueue } from '../jobs/queues.js';
import { syncSchedules } from '../jobs/scheduler.js';
import { createSyncWorker } from '../jobs/sync-worker.js';
import { triggerSync } from '../jobs/trigger.js';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { getDistrict, upsertDistrict } from '../src/districts/repository.js';
import { listUsers } from '../src/queries.js';
import { reconcileAndApply, executeRun } from '../src/sync/execute.js';
import { claimRun, getRun, SupersededError } from '../src/sync/runs.js';
import { clearStage, countStagedPages, resetStage, stageBatch } from '../src/sync/stage.js';
import { reapLostRuns } from '../jobs/housekeeping.js';
import { startHttpServer } from '../src/http/server.js';
import { SnapshotBuilder } from '../src/sync/snapshot-builder.js';
import { waitForRun } from '../src/sync/wait.js';
import { adminQuery, createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow, districtState } from './helpers/district.js';
import { OwnRedis } from './helpers/redis-server.js';
import { freePort } from './helpers/net.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

// Issue #6, "runs never get stuck, never run twice": each fault is reproduced
// against real Postgres and Redis, and each test asserts what was kept.

const cli = fileURLToPath(new URL('../bin/rostersync.js', import.meta.url));
let t: TestEnv;
let server: FakeCleverServer;

beforeAll(async () => {
  t = await createTestEnv({ RUN_STALE_MS: '3000' });
  server = await startClever({ seed: 61, schools: 2, students: 200, sections: 12, enrollmentsPerStudent: 2 });
});
afterAll(async () => {
  await server.stop();
  await t.close();
});
afterEach(async () => {
  await t.stopWorkers();
  server.faults.length = 0;
});

const state = (d: string) => districtState(t.ctx, d);

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

test('a queued run whose job Redis lost is failed with the reason, and the next trigger starts a new run', async () => {
  await addCleverDistrict(t.ctx, 'lost', server);
  const { run } = await triggerSync(t.ctx, 'lost', { trigger: 'cli' });
  // What a Redis restarted without its data leaves: the run row, no job.
  await (await syncQueue(t.ctx).getJob(run.id))!.remove();

  const next = await triggerSync(t.ctx, 'lost', { trigger: 'api' });
  expect(next.coalesced).toBe(false);
  expect(next.run.id).not.toBe(run.id);
  expect(await getRun(t.ctx.db, run.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('queue job was lost') });
  t.startWorker();
  expect((await waitForRun(t.ctx.db, next.run.id, { timeoutMs: 30000, intervalMs: 50 })).status).toBe('SUCCEEDED');
  expect((await listUsers(t.ctx.db, 'lost')).length).toBeGreaterThan(200);
});

test('a worker that cannot reach Postgres when it picks a job up leaves no run QUEUED for ever', async () => {
  await addCleverDistrict(t.ctx, 'pgdown', server);
  const before = await state('pgdown');
  // A second worker whose Postgres is behind a proxy we cut: it takes the job and fails it.
  const proxy = new TcpProxy({ host: '127.0.0.1', port: 5432 });
  await proxy.start();
  const url = new URL(t.databaseUrl);
  url.host = `127.0.0.1:${proxy.port}`;
  const cut = await openContext({ config: loadConfig({ ...t.env, DATABASE_URL: url.toString(), PG_STATEMENT_TIMEOUT_MS: '1500' }) });
  await sql1(cut);
  proxy.cut();
  const worker = createSyncWorker(cut, { concurrency: 1 });
  try {
    const { run } = await triggerSync(t.ctx, 'pgdown', { trigger: 'cli' });
    await until(async () => ((await syncQueue(t.ctx).getJobState(run.id)) === 'failed' ? true : undefined), 'the job to fail');
    expect((await getRun(t.ctx.db, run.id)).status).toBe('QUEUED');
    // The next trigger notices, fails the orphan with the reason, and queues a fresh run.
    const again = await triggerSync(t.ctx, 'pgdown', { trigger: 'cli' });
    expect(again.run.id).not.toBe(run.id);
    expect(await getRun(t.ctx.db, run.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('job was lost') });
    await worker.close(true);
    expect(await state('pgdown')).toEqual(before);
    t.startWorker();
    expect((await waitForRun(t.ctx.db, again.run.id, { timeoutMs: 30000, intervalMs: 50 })).status).toBe('SUCCEEDED');
  } finally {
    await worker.close(true).catch(() => undefined);
    proxy.heal();
    await cut.close();
    await proxy.stop();
  }
});

async function sql1(ctx: { db: TestEnv['ctx']['db'] }) {
  await ctx.db.selectFrom('districts').select('id').execute();
}

test('Postgres ending the worker\'s connections mid-apply fails the run cleanly; the worker process lives on and syncs again', async () => {
  const big = await startClever({ seed: 62, schools: 3, students: 3000, sections: 100, enrollmentsPerStudent: 4 });
  try {
    await addCleverDistrict(t.ctx, 'term', big, { pageSize: 500 });
    await addPool(t.ctx, 'term', 'READ', 2500);
    // node-postgres reads PGAPPNAME: it tells the worker's connections apart from this test's own pool.
    const appName = 'trust-runs-terminated-worker';
    const child = spawn(process.execPath, [cli, 'worker', '--concurrency', '1'], { env: { ...process.env, ...t.env, PGAPPNAME: appName }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    try {
      const { run } = await triggerSync(t.ctx, 'term', { trigger: 'cli' });
      await until(async () => ((await getRun(t.ctx.db, run.id)).phase === 'apply' ? true : undefined), 'the apply phase', 60000);
      const name = new URL(t.databaseUrl).pathname.slice(1);
      // Only the worker's connections: ending this test's own pool too would fail the test's next
      // query (a pooled client handed out before it reads the termination), not the worker's run.
      const ended = await adminQuery('SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [name, appName]);
      expect(ended.rows.filter((r: { ended: boolean }) => r.ended).length).toBeGreaterThan(0);
      const failed = await waitForRun(t.ctx.db, run.id, { timeoutMs: 30000, intervalMs: 50 });
      expect(failed.status).toBe('FAILED');
      expect(failed.error).toMatch(/^lost the connection to Postgres \(.+\); the run's transaction rolled back, nothing was applied/);
      // Nothing of the run landed: the transaction rolled back.
      expect(await listUsers(t.ctx.db, 'term')).toEqual([]);
      expect(child.exitCode).toBeNull();
      // The same worker process takes the next run and applies it.
      const second = await triggerSync(t.ctx, 'term', { trigger: 'cli' });
      expect((await waitForRun(t.ctx.db, second.run.id, { timeoutMs: 60000, intervalMs: 100 })).status).toBe('SUCCEEDED');
      expect(child.exitCode).toBeNull();
      expect(stderr).not.toMatch(/Unhandled 'error' event/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  } finally {
    await big.stop();
  }
}, 120000);

test('a silent partition mid-apply cannot keep the district locked: the server ends the session and the next run takes over', async () => {
  await addCleverDistrict(t.ctx, 'part', server);
  await addPool(t.ctx, 'part', 'READ', 150);
  t.startWorker();
  expect((await syncNow(t.ctx, 'part')).status).toBe('SUCCEEDED');
  await t.stopWorkers();
  const before = await state('part');
  const leaver = [...server.district.students.keys()][3]!;
  const removed = server.district.removeStudent(leaver);

  const proxy = new TcpProxy({ host: '127.0.0.1', port: 5432 });
  await proxy.start();
  const url = new URL(t.databaseUrl);
  url.host = `127.0.0.1:${proxy.port}`;
  const partitioned = await openContext({ config: loadConfig({ ...t.env, DATABASE_URL: url.toString(), PG_IDLE_TX_TIMEOUT_MS: '1500', PG_STATEMENT_TIMEOUT_MS: '3000' }) });
  try {
    const { run } = await triggerSync(t.ctx, 'part', { trigger: 'cli' });
    // This attempt is driven by hand, not by a queue worker.
    await (await syncQueue(t.ctx).getJob(run.id))!.remove();
    // The worker behind the proxy is cut off the moment its apply transaction starts.
    let cutAt = 0;
    const attempt = executeRun(partitioned, run.id, { onProgress: (p) => { if (p.phase === 'apply') { proxy.cut(); cutAt = Date.now(); } } });
    await until(async () => (cutAt ? true : undefined), 'the apply phase');
    // The district is not locked for ever: Postgres ends the silent session (idle in transaction),
    // which frees the district's lock, and a healthy worker takes the run over once its heartbeat is stale.
    t.startWorker();
    const next = await triggerSync(t.ctx, 'part', { trigger: 'cli' });
    const done = await waitForRun(t.ctx.db, next.run.id, { timeoutMs: 30000, intervalMs: 50 });
    expect(done.status).toBe('SUCCEEDED');
    expect(done.counts.usersDeleted).toBe(1);
    expect(await getRun(t.ctx.db, run.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('abandoned') });
    // The partition heals: the old attempt finds it lost the run and writes nothing over it.
    proxy.heal();
    expect(['done', 'superseded']).toContain(await attempt);
    expect(await getRun(t.ctx.db, run.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('abandoned') });
    // Exactly one student left; everyone else is as before.
    const after = await listUsers(t.ctx.db, 'part');
    expect(after.filter((u) => u.status === 'DELETED').map((u) => u.sourcedId)).toEqual([leaver]);
    expect(after.length).toBe(before.users.length);
  } finally {
    proxy.heal();
    await partitioned.close();
    await proxy.stop();
    server.district.restoreStudent(removed.student, removed.sectionIds);
  }
}, 90000);

test('a superseded attempt changes nothing: not the stage, not the roster, not the run row', async () => {
  await addCleverDistrict(t.ctx, 'fence', server);
  await addPool(t.ctx, 'fence', 'READ', 500);
  const { run } = await triggerSync(t.ctx, 'fence', { trigger: 'cli' });
  // Attempt 1 stalls on its first heartbeat (its worker froze; its lock lapsed) …
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let stalled = false;
  const first = executeRun(t.ctx, run.id, {
    onProgress: async (p) => { if (p.phase === 'fetch' && !stalled) { stalled = true; await gate; } },
  });
  await until(async () => (stalled ? true : undefined), 'attempt 1 to stall');
  // … the provider changes, and attempt 2 (another worker) runs the whole run.
  const leaver = [...server.district.students.keys()][5]!;
  const removed = server.district.removeStudent(leaver);
  try {
    expect(await executeRun(t.ctx, run.id)).toBe('done');
    const applied = await getRun(t.ctx.db, run.id);
    expect(applied.status).toBe('SUCCEEDED');
    const afterSecond = await state('fence');
    // Attempt 1 wakes up with its older view of the world: it must stop.
    release();
    expect(await first).toBe('superseded');
    expect(await getRun(t.ctx.db, run.id)).toEqual(applied);
    expect(await state('fence')).toEqual(afterSecond);
    expect(await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', run.id).execute()).toEqual([]);

    // The apply step itself is fenced too: a stale lease applies nothing.
    const district = await getDistrict(t.ctx.db, 'fence');
    const stale = await t.ctx.db.insertInto('sync_runs').values({ district_id: 'fence', trigger: 'cli', status: 'QUEUED', dry_run: false, full_snapshot: true }).returning('id').executeTakeFirstOrThrow();
    const claimed = await claimRun(t.ctx.db, stale.id, 60000);
    expect(claimed.outcome).toBe('claimed');
    const attempt = claimed.outcome === 'claimed' ? claimed.run.attempts : 0;
    await claimRun(t.ctx.db, stale.id, 60000); // a newer attempt takes it
    const empty = new SnapshotBuilder(true, '2026-11-25').build();
    await expect(reconcileAndApply(t.ctx, district, empty, { lease: { runId: stale.id, attempt }, asOf: '2026-11-25', dryRun: false, approved: true }))
      .rejects.toBeInstanceOf(SupersededError);
    expect(await state('fence')).toEqual(afterSecond);
  } finally {
    server.district.restoreStudent(removed.student, removed.sectionIds);
  }
});

test('a provider that drips its answer byte by byte hits the total deadline and is asked again', async () => {
  await addCleverDistrict(t.ctx, 'drip', server);
  // timeoutMs is 2 s in the test district: 60 ms a byte never leaves the socket idle that long.
  server.faults.push({ path: '/v3.0/terms', dripMs: 60, times: 1 });
  t.startWorker();
  const asked = server.requestsTo('/v3.0/terms').length;
  const run = await syncNow(t.ctx, 'drip');
  expect(run.status).toBe('SUCCEEDED');
  expect(server.requestsTo('/v3.0/terms').length - asked).toBe(2);
});

test('a next link to another host is refused: the district token never leaves its base URL\'s origin', async () => {
  await addCleverDistrict(t.ctx, 'origin', server);
  t.startWorker();
  expect((await syncNow(t.ctx, 'origin')).status).toBe('SUCCEEDED');
  const before = await state('origin');
  // Another host on this machine, recording what reaches it.
  const seen: (string | undefined)[] = [];
  const other = http.createServer((req, res) => { seen.push(req.headers.authorization); res.end('{"data":[],"links":[]}'); });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const elsewhere = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  try {
    server.faults.push({ path: '/v3.0/terms', times: 1, respond: () => ({ status: 200, body: { data: [], links: [{ rel: 'next', uri: `${elsewhere}/v3.0/terms?limit=25&starting_after=x` }] } }) });
    const run = await syncNow(t.ctx, 'origin');
    expect(run.status).toBe('FAILED');
    expect(run.error).toContain(`refusing to send the district's credentials to ${elsewhere}`);
    expect(seen).toEqual([]);
    expect(await state('origin')).toEqual(before);
  } finally {
    await new Promise<void>((resolve) => other.close(() => resolve()));
  }
});

test('with Redis down, sync fails fast with a clear message and records no run', async () => {
  await addCleverDistrict(t.ctx, 'nored', server);
  const down = await openContext({ config: loadConfig({ ...t.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` }) });
  try {
    const started = Date.now();
    await expect(triggerSync(down, 'nored', { trigger: 'cli' })).rejects.toThrow(/^Redis at redis:\/\/127\.0\.0\.1:\d+ refused the connection \(connect ECONNREFUSED 127\.0\.0\.1:\d+\); is it running\? Nothing was queued$/);
    // Refused is known at once: no waiting out the bound meant for a Redis that accepted and went silent.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', 'nored').execute()).toEqual([]);
  } finally {
    await down.close();
  }
});

test('a Redis that accepts the connection and then says nothing fails the trigger after the answer bound, and queues nothing', async () => {
  // A TCP listener that never answers: a hung Redis (or a firewall that lets the SYN through).
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => { accepted.push(socket.on('error', () => undefined)); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as AddressInfo).port;
  const hung = await openContext({ config: loadConfig({ ...t.env, REDIS_URL: `redis://127.0.0.1:${port}` }) });
  try {
    await expect(queueReachable(hung, 300)).rejects.toThrow(`Redis at redis://127.0.0.1:${port} did not answer within 0.3 s; is it running? Nothing was queued`);
    // The same context's connection is still usable once Redis answers: the trigger only stopped waiting.
    expect(hung.redis().status).not.toBe('end');
  } finally {
    await hung.close();
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('district schedules come back on their own after Redis restarts without its data', async () => {
  const redis = new OwnRedis(await freePort());
  await redis.start();
  const ctx = await openContext({ config: loadConfig({ ...t.env, REDIS_URL: redis.url }) });
  const worker = createSyncWorker(ctx, { concurrency: 1, maintain: true });
  try {
    const d = await getDistrict(ctx.db, 'drip');
    await upsertDistrict(ctx.db, { id: 'sched', settings: d.settings, schedule: '0 3 * * *' });
    await syncSchedules(ctx);
    const keys = async () => (await syncQueue(ctx).getJobSchedulers()).map((s) => s.key);
    expect(await keys()).toEqual(['district:sched']);
    await redis.kill();
    await redis.start();
    // Postgres is the source of truth: the worker registers the schedule again once Redis is back.
    await until(async () => ((await keys().catch((): (string | null | undefined)[] => [])).includes('district:sched') ? true : undefined), 'the schedule to be re-registered', 20000);
  } finally {
    await worker.close(true);
    await ctx.close();
    await redis.kill();
  }
});

test('a superseded attempt cannot clear the stage a newer attempt is filling', async () => {
  await addCleverDistrict(t.ctx, 'clear', server);
  const { run } = await triggerSync(t.ctx, 'clear', { trigger: 'cli' });
  await (await syncQueue(t.ctx).getJob(run.id))!.remove();
  const first = await claimRun(t.ctx.db, run.id, 60000);
  const second = await claimRun(t.ctx.db, run.id, 60000);
  if (first.outcome !== 'claimed' || second.outcome !== 'claimed') throw new Error('both claims should succeed');
  const newer = { runId: run.id, attempt: second.run.attempts };
  const older = { runId: run.id, attempt: first.run.attempts };
  await expect(resetStage(t.ctx.db, older)).rejects.toBeInstanceOf(SupersededError);
  await resetStage(t.ctx.db, newer);
  expect(await stageBatch(t.ctx.db, newer, { kind: 'orgs', records: [{ sourcedId: 'sch', name: 'S', type: 'school', identifier: null, status: 'active' }] })).toBe(true);
  await expect(clearStage(t.ctx.db, run.id, older)).rejects.toBeInstanceOf(SupersededError);
  await expect(stageBatch(t.ctx.db, older, { kind: 'orgs', records: [{ sourcedId: 'x', name: 'X', type: 'school', identifier: null, status: 'active' }] })).rejects.toBeInstanceOf(SupersededError);
  expect(await countStagedPages(t.ctx.db, run.id)).toBe(1);
  await t.ctx.db.updateTable('sync_runs').set({ status: 'FAILED', finished_at: new Date() }).where('id', '=', run.id).execute();
});

test('housekeeping fails runs nothing will ever process: QUEUED without a job, RUNNING gone silent without a job; a just-approved run is left alone', async () => {
  await addCleverDistrict(t.ctx, 'reap', server);
  const old = new Date(Date.now() - 3_600_000);
  const insert = (values: { status: 'QUEUED' | 'RUNNING'; heartbeat_at?: Date; approved?: boolean; attempts?: number }) =>
    t.ctx.db.insertInto('sync_runs').values({ district_id: 'reap', trigger: 'cli', dry_run: false, full_snapshot: true, created_at: old, started_at: old, ...values })
      .returning('id').executeTakeFirstOrThrow();
  const queued = await insert({ status: 'QUEUED' });
  const silent = await insert({ status: 'RUNNING', heartbeat_at: old, attempts: 1 });
  // Approved a moment ago: its job is on its way into the queue.
  const approved = await insert({ status: 'QUEUED', approved: true, heartbeat_at: new Date() });
  const reaped = await reapLostRuns(t.ctx);
  expect(reaped.sort()).toEqual([queued.id, silent.id].sort());
  expect(await getRun(t.ctx.db, queued.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('queue job was lost') });
  expect(await getRun(t.ctx.db, silent.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('abandoned') });
  expect((await getRun(t.ctx.db, approved.id)).status).toBe('QUEUED');
  await t.ctx.db.updateTable('sync_runs').set({ status: 'FAILED', finished_at: new Date() }).where('id', '=', approved.id).execute();
});

test('HTTP sync with Redis down answers 503 with what to check, and records no run', async () => {
  await addCleverDistrict(t.ctx, 'http503', server);
  const down = await openContext({ config: loadConfig({ ...t.env, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, ADMIN_TOKEN: 'a'.repeat(32), SESSION_SECRET: 's'.repeat(40), PORT: '0' }) });
  const http503 = await startHttpServer(down, 0);
  try {
    const res = await fetch(`${http503.url}/api/districts/http503/sync`, { method: 'POST', headers: { authorization: `Bearer ${'a'.repeat(32)}` } });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toMatch(/Redis at .* refused the connection \(connect ECONNREFUSED .*\); is it running\? Nothing was queued/);
    expect(await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', 'http503').execute()).toEqual([]);
  } finally {
    await http503.close();
    await down.close();
  }
});
