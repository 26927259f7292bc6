import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { startHttpServer } from '../src/http/server.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever } from './helpers/district.js';

const TOKEN = 'test-admin-token';
let t: TestEnv;
let server: FakeCleverServer;
let api: { url: string; close(): Promise<void> };

beforeAll(async () => {
  t = await createTestEnv({ ADMIN_TOKEN: TOKEN });
  server = await startClever({ seed: 8, schools: 2, students: 40, sections: 6, enrollmentsPerStudent: 2 });
  await addCleverDistrict(t.ctx, 'web', server);
  await addPool(t.ctx, 'web', 'READ', 10);
  t.startWorker();
  api = await startHttpServer(t.ctx, 0);
});
afterAll(async () => {
  await api.close();
  await server.stop();
  await t.close();
});

const call = async (method: string, path: string, opts: { token?: string | null; body?: unknown } = {}) => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`;
  const res = await fetch(`${api.url}${path}`, { method, headers, body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
};

test('health needs no token and reports both stores', async () => {
  expect(await call('GET', '/healthz', { token: null })).toMatchObject({ status: 200, json: { ok: true, postgres: true, redis: true } });
});

test('admin routes refuse a missing or wrong token and queue nothing', async () => {
  expect(await call('POST', '/api/districts/web/sync', { token: null })).toMatchObject({ status: 401, json: { error: 'missing or wrong bearer token' } });
  expect(await call('POST', '/api/districts/web/sync', { token: 'nope' })).toMatchObject({ status: 401 });
  expect(await t.ctx.db.selectFrom('sync_runs').select('id').where('trigger', '=', 'api').execute()).toEqual([]);
});

test('bad input gets a clear 4xx', async () => {
  expect(await call('POST', '/api/districts/nowhere/sync')).toMatchObject({ status: 404, json: { error: expect.stringContaining("unknown district 'nowhere'") } });
  expect(await call('POST', '/api/districts/web/sync', { body: { dryRun: 'yes' } })).toMatchObject({ status: 400, json: { error: expect.stringContaining('dryRun') } });
  expect(await call('POST', '/api/districts/web/sync', { body: '{not json' })).toMatchObject({ status: 400, json: { error: 'request body is not valid JSON' } });
  expect(await call('GET', '/api/districts/web/users?status=LOST')).toMatchObject({ status: 400 });
  expect(await call('GET', '/api/runs/00000000-0000-0000-0000-000000000000')).toMatchObject({ status: 404 });
  expect(await t.ctx.db.selectFrom('sync_runs').select('id').where('trigger', '=', 'api').execute()).toEqual([]);
});

test('a sync triggered over HTTP runs through the queue; runs, users and metrics show it', async () => {
  const queued = await call('POST', '/api/districts/web/sync', { body: {} });
  expect(queued).toMatchObject({ status: 202, json: { districtId: 'web', status: 'QUEUED', coalesced: false } });
  const id = (queued.json as { id: string }).id;
  let run: { status: string; counts: Record<string, number> } | undefined;
  for (let i = 0; i < 200; i++) {
    run = (await call('GET', `/api/runs/${id}`)).json as typeof run;
    if (run && ['SUCCEEDED', 'FAILED', 'HELD'].includes(run.status)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersCreated: 40 + server.district.teachers.size, seatsAssigned: 10, seatsWaitlisted: 30 } });
  expect(((await call('GET', '/api/districts/web/runs')).json as { id: string }[])[0]!.id).toBe(id);
  const students = ((await call('GET', '/api/districts/web/users?status=ACTIVE')).json as { role: string; products: string[] }[]).filter((u) => u.role === 'student');
  expect(students).toHaveLength(40);
  expect(students.filter((s) => s.products.includes('READ'))).toHaveLength(10);
  expect(await call('POST', `/api/runs/${id}/approve`)).toMatchObject({ status: 409, json: { error: expect.stringContaining('only a HELD run') } });

  const metrics = await call('GET', '/metrics', { token: null });
  expect(metrics.status).toBe(200);
  expect(metrics.text).toContain('rostersync_seats{district="web",product="READ",state="assigned"} 10');
  expect(metrics.text).toContain('rostersync_seats{district="web",product="READ",state="waitlisted"} 30');
  expect(metrics.text).toMatch(/rostersync_runs\{district="web",status="SUCCEEDED"\} \d+/);
  expect(metrics.text).toMatch(/rostersync_last_success_timestamp_seconds\{district="web"\} \d+/);
});
