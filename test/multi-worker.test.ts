import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import pg from 'pg';
import { FakeCleverServer } from '../fixtures/clever/server.js';
import { RosterDistrict, type DistrictSpec } from '../fixtures/district.js';
import { closeQueue, syncQueue } from '../jobs/queues.js';
import { createSyncWorker } from '../jobs/sync-worker.js';
import { withDefaultUser } from '../db/connection.js';
import { loadConfig } from '../src/config.js';
import { openContext } from '../src/context.js';
import { triggerSync } from '../jobs/trigger.js';
import { listUsers } from '../src/queries.js';
import { waitForRun } from '../src/sync/wait.js';
import { runCli } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict } from './helpers/district.js';
import { WorkerProcess } from './helpers/workers.js';

// Several machines, one Postgres and one Redis: three real `rostersync worker`
// processes (two runs each at once) share the database and the queue prefix.
// What must hold: districts sync in parallel, one district never twice at once
// (src/sync/runs.ts claimRun: one RUNNING per district, else the job waits in
// BullMQ's delayed set), and a long run does not hold up the short ones.

const WORKERS = 3;
const CONCURRENCY = 2;

let t: TestEnv;
let workers: WorkerProcess[] = [];
const servers = new Map<string, FakeCleverServer>();

/** Small districts of different sizes (60–155 students): each is a few dozen pages at 25 a page. */
const smallSpec = (i: number): DistrictSpec => ({ seed: 100 + i, schools: 2, students: 60 + 5 * i, sections: 8, enrollmentsPerStudent: 2 });

async function addDistrict(id: string, spec: DistrictSpec): Promise<FakeCleverServer> {
  const server = new FakeCleverServer(new RosterDistrict(spec), 'TEST_TOKEN');
  await server.start();
  servers.set(id, server);
  await addCleverDistrict(t.ctx, id, server);
  return server;
}

async function waitUntil<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 45000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Samples, while runs go on, how many runs of each district are RUNNING at once.
 * Postgres is the witness of record (the interval check below); this shows it live.
 */
function watchRunning() {
  const maxPerDistrict = new Map<string, number>();
  const connections = new Map<string, { open: number; busy: number }>();
  let maxTotal = 0;
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const rows = await t.ctx.db.selectFrom('sync_runs').select(['district_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', '=', 'RUNNING').groupBy('district_id').execute();
      samples += 1;
      let total = 0;
      for (const row of rows) {
        const n = Number(row.n);
        total += n;
        maxPerDistrict.set(row.district_id, Math.max(n, maxPerDistrict.get(row.district_id) ?? 0));
      }
      maxTotal = Math.max(maxTotal, total);
      // Sizing data, not an assertion: connections each worker process holds open, and uses at once.
      const conns = await sql<{ app: string; open: number; busy: number }>`
        SELECT application_name AS app, count(*)::int AS open, count(*) FILTER (WHERE state <> 'idle')::int AS busy
        FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'worker-%' GROUP BY 1`.execute(t.ctx.db);
      for (const c of conns.rows) {
        const seen = connections.get(c.app) ?? { open: 0, busy: 0 };
        connections.set(c.app, { open: Math.max(seen.open, c.open), busy: Math.max(seen.busy, c.busy) });
      }
      await sleep(15);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { maxPerDistrict, maxTotal, samples, connections: Object.fromEntries(connections) };
    },
  };
}

/** Pairs of runs of one district whose [started_at, finished_at) intervals overlap: must be none. */
async function overlappingRuns(districtIds: string[]) {
  const { rows } = await sql<{ district_id: string; a: string; b: string }>`
    SELECT a.district_id, a.id AS a, b.id AS b
    FROM sync_runs a JOIN sync_runs b ON b.district_id = a.district_id AND a.id < b.id
    WHERE a.district_id IN (${sql.join(districtIds)})
      AND tstzrange(a.started_at, a.finished_at) && tstzrange(b.started_at, b.finished_at)`.execute(t.ctx.db);
  return rows;
}

const runsOf = (districtIds: string[]) => t.ctx.db.selectFrom('sync_runs').selectAll().where('district_id', 'in', districtIds).orderBy('created_at').execute();

/** The district as its provider has it, read back from the database: every student and teacher ACTIVE. */
async function expectMatchesProvider(districtId: string) {
  const { district } = servers.get(districtId)!;
  const users = await listUsers(t.ctx.db, districtId, { status: 'ACTIVE' });
  expect({ districtId, students: users.filter((u) => u.role === 'student').length, teachers: users.filter((u) => u.role === 'teacher').length })
    .toEqual({ districtId, students: district.students.size, teachers: district.teachers.size });
  const enrollments = users.reduce((n, u) => n + u.classes.length, 0);
  const expected = [...district.sections.values()].reduce((n, s) => n + s.studentIds.length + s.teacherIds.length, 0);
  expect(enrollments).toBe(expected);
}

const report: Record<string, unknown> = {};

beforeAll(async () => {
  // A longer job lock than the crash tests use: on two busy cores a 2 s lock can
  // lapse under load, and the point here is contention, not lost workers.
  t = await createTestEnv({ WORKER_LOCK_MS: '15000', WORKER_STALLED_INTERVAL_MS: '5000' });
  const env = { ...t.env, LOG_LEVEL: 'info' };
  workers = Array.from({ length: WORKERS }, (_, i) => new WorkerProcess(`worker-${i + 1}`, env, CONCURRENCY));
  // Every worker listening before anything is queued, so none gets a head start.
  await waitUntil(async () => ((await syncQueue(t.ctx).getWorkers()).length >= WORKERS ? true : undefined), `${WORKERS} workers to connect`, 60000)
    .catch((err: Error) => { throw new Error(`${err.message}; their output:\n${workers.flatMap((w) => w.other.map((l) => `${w.name}: ${l}`)).join('\n')}`); });
}, 90000);

afterAll(async () => {
  const codes = await Promise.all(workers.map((w) => w.stop()));
  report.exitCodes = codes;
  if (process.env.MULTI_WORKER_REPORT) writeFileSync(process.env.MULTI_WORKER_REPORT, JSON.stringify(report, null, 2));
  await Promise.all([...servers.values()].map((s) => s.stop()));
  await t.close();
});

test('20 districts triggered over and over on 3 worker processes: each converges, none ever runs twice at once, the work is shared', async () => {
  const ids = Array.from({ length: 20 }, (_, i) => `district-${String(i + 1).padStart(2, '0')}`);
  for (const [i, id] of ids.entries()) await addDistrict(id, smallSpec(i));
  const watch = watchRunning();

  const triggered: { runId: string; coalesced: boolean }[] = [];
  const trigger = async (id: string) => {
    const { run, coalesced } = await triggerSync(t.ctx, id, { trigger: 'api' });
    triggered.push({ runId: run.id, coalesced });
  };
  // Round 1: every district at once.
  await Promise.all(ids.map(trigger));
  // Round 2, once runs are under way: a running district queues its next run
  // (which must wait its turn), a still-queued one joins the queued run.
  await waitUntil(async () => {
    const running = await t.ctx.db.selectFrom('sync_runs').select('id').where('status', '=', 'RUNNING').execute();
    return running.length >= 3 ? true : undefined;
  }, 'three runs RUNNING');
  // Some through the CLI, as an operator on yet another machine would.
  const viaCli = Promise.all(ids.slice(0, 4).map((id) => runCli(t.env, ['sync', id, '--json'])));
  await Promise.all(ids.map(trigger));
  // Round 3, straight after: joins whatever round 2 queued.
  await Promise.all(ids.map(trigger));
  const cliResults = await viaCli;
  // (Its output in the comparison: a failure says why; with --json the error is on stdout.)
  for (const r of cliResults) expect({ code: r.code, output: r.code === 0 ? '' : `${r.stdout}${r.stderr}` }).toEqual({ code: 0, output: '' });
  const cliRunIds = cliResults.map((r) => (r.json as { id: string }).id);

  const runIds = [...new Set([...triggered.map((x) => x.runId), ...cliRunIds])];
  for (const runId of runIds) await waitForRun(t.ctx.db, runId, { timeoutMs: 60000, intervalMs: 100 });
  // Nothing else was started behind our back, and nothing is left waiting.
  await waitUntil(async () => {
    const open = await t.ctx.db.selectFrom('sync_runs').select('id').where('status', 'in', ['QUEUED', 'RUNNING']).execute();
    return open.length === 0 ? true : undefined;
  }, 'no run QUEUED or RUNNING');
  const live = await watch.stop();

  const runs = await runsOf(ids);
  // Every trigger ended in a run that succeeded, or joined one: no run failed, none is stuck.
  expect(runs.map((r) => r.status).filter((s) => s !== 'SUCCEEDED')).toEqual([]);
  expect(new Set(runs.map((r) => r.id))).toEqual(new Set(runIds));
  // Contention happened: some districts had a second run queued while one ran, and triggers were joined.
  expect(runs.length).toBeGreaterThan(ids.length);
  expect(triggered.filter((x) => x.coalesced).length).toBeGreaterThan(0);
  // Each run was processed by one attempt: no job was handed to a second worker.
  expect(runs.filter((r) => r.attempts !== 1)).toEqual([]);

  // One district never twice at once: live, and by the record in Postgres.
  expect([...live.maxPerDistrict.values()].every((n) => n === 1)).toBe(true);
  expect(await overlappingRuns(ids)).toEqual([]);
  // While different districts did run in parallel, up to every slot at once.
  expect(live.maxTotal).toBeGreaterThan(1);
  expect(live.maxTotal).toBeLessThanOrEqual(WORKERS * CONCURRENCY);

  for (const id of ids) await expectMatchesProvider(id);

  // Who did the work: each applied run appears in exactly one worker's log, and more than one worker did some.
  const perWorker = workers.map((w) => w.appliedRuns());
  const applied = perWorker.flat();
  expect(applied.sort()).toEqual(runs.map((r) => r.id).sort());
  expect(perWorker.filter((r) => r.length > 0).length).toBeGreaterThan(1);
  expect(workers.flatMap((w) => w.errors())).toEqual([]);

  report.fleet = {
    districts: ids.length,
    triggers: triggered.length + cliRunIds.length,
    coalesced: triggered.filter((x) => x.coalesced).length,
    runs: runs.length,
    districtsWithSeveralRuns: ids.filter((id) => runs.filter((r) => r.district_id === id).length > 1).length,
    maxRunningPerDistrict: Math.max(...live.maxPerDistrict.values()),
    maxRunningTotal: live.maxTotal,
    samples: live.samples,
    maxPgConnectionsPerWorker: live.connections,
    runsPerWorker: Object.fromEntries(workers.map((w, i) => [w.name, perWorker[i]!.length])),
    peakRssMb: Object.fromEntries(workers.map((w) => [w.name, w.peakRssMb()])),
  };
}, 90000);

test('a long run beside small ones: the small districts triggered after it all finish first', async () => {
  // Stands in for a very large district: every page answers slowly, so its run
  // lasts many seconds (a million-student district spends minutes fetching).
  const large = await addDistrict('large', { seed: 900, schools: 3, students: 300, sections: 20, enrollmentsPerStudent: 3 });
  large.faults.push({ delayMs: 800, times: 100000 });
  const smallIds = Array.from({ length: 10 }, (_, i) => `small-${String(i + 1).padStart(2, '0')}`);
  for (const [i, id] of smallIds.entries()) await addDistrict(id, smallSpec(40 + i));

  const watch = watchRunning();
  const { run: largeRun } = await triggerSync(t.ctx, 'large', { trigger: 'api' });
  await waitUntil(async () => {
    const row = await t.ctx.db.selectFrom('sync_runs').select(['status', 'phase']).where('id', '=', largeRun.id).executeTakeFirstOrThrow();
    return row.status === 'RUNNING' && row.phase === 'fetch' ? true : undefined;
  }, 'the large run to be fetching');
  const small = await Promise.all(smallIds.map((id) => triggerSync(t.ctx, id, { trigger: 'api' })));

  const smallDone = await Promise.all(small.map(({ run }) => waitForRun(t.ctx.db, run.id, { timeoutMs: 60000, intervalMs: 100 })));
  const largeDone = await waitForRun(t.ctx.db, largeRun.id, { timeoutMs: 60000, intervalMs: 100 });
  const live = await watch.stop();

  expect(largeDone.status).toBe('SUCCEEDED');
  expect(smallDone.map((r) => r.status)).toEqual(smallIds.map(() => 'SUCCEEDED'));
  const largeStarted = Date.parse(largeDone.startedAt!);
  const largeFinished = Date.parse(largeDone.finishedAt!);
  for (const r of smallDone) {
    // Triggered while the large run was already under way, and done before it.
    expect(Date.parse(r.createdAt)).toBeGreaterThan(largeStarted);
    expect(Date.parse(r.finishedAt!)).toBeLessThan(largeFinished);
  }
  for (const id of ['large', ...smallIds]) await expectMatchesProvider(id);
  expect(await overlappingRuns(['large', ...smallIds])).toEqual([]);
  expect([...live.maxPerDistrict.values()].every((n) => n === 1)).toBe(true);

  report.largeBesideSmall = {
    largeMs: largeDone.durationMs,
    largePages: large.requests.length,
    smallMsMax: Math.max(...smallDone.map((r) => r.durationMs!)),
    smallAllDoneAfterLargeStartMs: Math.max(...smallDone.map((r) => Date.parse(r.finishedAt!))) - largeStarted,
    maxRunningTotal: live.maxTotal,
    maxPgConnectionsPerWorker: live.connections,
    peakRssMb: Object.fromEntries(workers.map((w) => [w.name, w.peakRssMb()])),
  };
}, 60000);

test('a run whose apply outlasts RUN_STALE_MS while its worker is alive is not abandoned by the next run of its district', async () => {
  // The apply transaction sends no heartbeat (execute.ts: the last one is the
  // 'apply' report just before it opens), so a long apply looks silent. A
  // million-student apply, or one waiting on the district's lock, can run past
  // RUN_STALE_MS with its worker alive and the lock held. Here the wait is made
  // by holding the district's roster lock from outside, and the threshold is 3 s.
  await Promise.all(workers.map((w) => w.stop()));
  const ctx = await openContext({ config: loadConfig({ ...t.env, RUN_STALE_MS: '3000' }) });
  const worker = createSyncWorker(ctx, { concurrency: 2 });
  const holder = new pg.Client({ connectionString: withDefaultUser(t.databaseUrl) });
  await holder.connect();
  try {
    await addDistrict('slow-apply', smallSpec(70));
    await holder.query(`SELECT pg_advisory_lock(hashtext('rostersync:district'), hashtext('slow-apply'))`);
    const { run: first } = await triggerSync(t.ctx, 'slow-apply', { trigger: 'api' });
    await waitUntil(async () => {
      const row = await t.ctx.db.selectFrom('sync_runs').select(['status', 'phase']).where('id', '=', first.id).executeTakeFirstOrThrow();
      return row.status === 'RUNNING' && row.phase === 'apply' ? true : undefined;
    }, 'the first run to be applying');
    // Past RUN_STALE_MS since its last heartbeat, its worker still waiting in the apply transaction.
    await sleep(3500);
    const { run: second } = await triggerSync(t.ctx, 'slow-apply', { trigger: 'api' });
    // The second run's job is tried (busy, again a second later, ...) while the first still waits.
    await sleep(3000);
    await holder.query(`SELECT pg_advisory_unlock(hashtext('rostersync:district'), hashtext('slow-apply'))`);

    const firstDone = await waitForRun(t.ctx.db, first.id, { timeoutMs: 30000, intervalMs: 100 });
    const secondDone = await waitForRun(t.ctx.db, second.id, { timeoutMs: 30000, intervalMs: 100 });
    // The first run's worker was alive throughout: its work stands, and the second waited its turn.
    expect({ status: firstDone.status, error: firstDone.error }).toEqual({ status: 'SUCCEEDED', error: null });
    expect(secondDone.status).toBe('SUCCEEDED');
    expect(await overlappingRuns(['slow-apply'])).toEqual([]);
    await expectMatchesProvider('slow-apply');
  } finally {
    await holder.end();
    await worker.close();
    await closeQueue(ctx);
    await ctx.close();
  }
}, 60000);
