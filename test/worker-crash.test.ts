import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { triggerSync } from '../jobs/trigger.js';
import { listUsers } from '../src/queries.js';
import { waitForRun } from '../src/sync/wait.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever } from './helpers/district.js';

const cli = fileURLToPath(new URL('../bin/rostersync.js', import.meta.url));

let t: TestEnv;
let server: FakeCleverServer;

beforeAll(async () => {
  t = await createTestEnv();
  // Big enough that applying takes long enough to be caught in the middle.
  server = await startClever({ seed: 99, schools: 4, students: 4000, sections: 120, enrollmentsPerStudent: 5 });
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

function startChildWorker(): ChildProcess {
  return spawn(process.execPath, [cli, 'worker', '--concurrency', '1'], { env: { ...process.env, ...t.env }, stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitUntil<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const phaseOf = async (runId: string) => (await t.ctx.db.selectFrom('sync_runs').select(['phase', 'status']).where('id', '=', runId).executeTakeFirstOrThrow());
const countUsers = async (districtId: string) => Number((await t.ctx.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('district_id', '=', districtId).executeTakeFirstOrThrow()).n);

async function killInPhase(districtId: string, phase: 'fetch' | 'apply') {
  const child = startChildWorker();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const { run } = await triggerSync(t.ctx, districtId, { trigger: 'cli' });
  await waitUntil(async () => ((await phaseOf(run.id)).phase === phase ? true : undefined), `phase ${phase}`);
  child.kill('SIGKILL');
  await exited;
  return run.id;
}

test.each(['apply', 'fetch'] as const)('a worker killed during %s leaves no partial state, and the run resumes and converges', async (phase) => {
  const districtId = `crash-${phase}`;
  await addCleverDistrict(t.ctx, districtId, server, { pageSize: 500 });
  await addPool(t.ctx, districtId, 'READ', 3000);
  if (phase === 'fetch') server.faults.push({ path: '/v3.0/users?role=student', delayMs: 1500, times: 1 });

  const runId = await killInPhase(districtId, phase);
  // The dead worker's transaction rolled back: nothing of the run is visible.
  expect(await phaseOf(runId)).toMatchObject({ status: 'RUNNING', phase });
  expect(await countUsers(districtId)).toBe(0);
  const seats = await t.ctx.db.selectFrom('seat_assignments').innerJoin('license_pools', 'license_pools.id', 'seat_assignments.pool_id')
    .select('seat_assignments.id').where('license_pools.district_id', '=', districtId).execute();
  expect(seats).toHaveLength(0);

  // A new worker picks the stalled job up once its lock lapses, and finishes the run.
  t.startWorker();
  const done = await waitForRun(t.ctx.db, runId, { timeoutMs: 60000, intervalMs: 100 });
  expect(done.status).toBe('SUCCEEDED');
  expect(done.attempts).toBe(2);
  expect(done.counts.usersCreated).toBe(4000 + server.district.teachers.size);
  const users = await listUsers(t.ctx.db, districtId, { status: 'ACTIVE' });
  expect(users).toHaveLength(4000 + server.district.teachers.size);
  // 3,000 seats for 4,000 students: exactly full, the rest wait-listed, none twice.
  const students = users.filter((u) => u.role === 'student');
  expect(students.filter((u) => u.products.includes('READ'))).toHaveLength(3000);
  expect(students.filter((u) => u.waitlisted.includes('READ'))).toHaveLength(1000);
  const enrollments = users.reduce((n, u) => n + u.classes.length, 0);
  const expected = [...server.district.sections.values()].reduce((n, s) => n + s.studentIds.length + s.teacherIds.length, 0);
  expect(enrollments).toBe(expected);

  // And the next run finds nothing left to do.
  const { run: next } = await triggerSync(t.ctx, districtId, { trigger: 'cli' });
  const again = await waitForRun(t.ctx.db, next.id, { timeoutMs: 60000, intervalMs: 100 });
  expect(Object.values(again.counts).every((n) => n === 0)).toBe(true);
  await t.stopWorkers();
});
