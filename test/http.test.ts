import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { loadConfig } from '../src/config.js';
import { openContext, type AppContext } from '../src/context.js';
import { bindSecretBox } from '../src/districts/credentials.js';
import { startHttpServer, type RunningServer } from '../src/http/server.js';
import { SecretBox } from '../src/secrets/secret-box.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { runCli } from './helpers/cli.js';
import { addCleverDistrict, addPool, startClever } from './helpers/district.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef';
let t: TestEnv;
let server: FakeCleverServer;
let api: RunningServer;

beforeAll(async () => {
  t = await createTestEnv({ ADMIN_TOKEN: TOKEN, METRICS_TOKEN, SECRETS_KEY: randomBytes(32).toString('base64'), SESSION_SECRET: randomBytes(32).toString('base64') });
  bindSecretBox(t.ctx.db, SecretBox.fromConfig(t.ctx.config));
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

  const metrics = await call('GET', '/metrics', { token: METRICS_TOKEN });
  expect(metrics.status).toBe(200);
  expect(metrics.text).toContain('rostersync_seats{district="web",product="READ",state="assigned"} 10');
  expect(metrics.text).toContain('rostersync_seats{district="web",product="READ",state="waitlisted"} 30');
  expect(metrics.text).toMatch(/rostersync_runs\{district="web",status="SUCCEEDED"\} \d+/);
  expect(metrics.text).toMatch(/rostersync_last_success_timestamp_seconds\{district="web"\} \d+/);
});

test('/metrics needs the metrics or the admin token', async () => {
  expect(await call('GET', '/metrics', { token: null })).toMatchObject({ status: 401, json: { error: expect.stringContaining('METRICS_TOKEN') } });
  expect(await call('GET', '/metrics', { token: 'wrong-token-wrong-token-wrong' })).toMatchObject({ status: 401 });
  expect((await call('GET', '/metrics', { token: METRICS_TOKEN })).text).toContain('rostersync_runs');
  expect((await call('GET', '/metrics', { token: TOKEN })).text).toContain('rostersync_runs');
  // The metrics token opens /metrics only.
  expect(await call('GET', '/api/districts/web/runs', { token: METRICS_TOKEN })).toMatchObject({ status: 401 });
});

test('malformed or implausible path ids answer 400/404, never 500, and queue nothing', async () => {
  const before = await t.ctx.db.selectFrom('sync_runs').select('id').execute();
  expect(await call('GET', '/api/runs/%E0%A4%A')).toMatchObject({ status: 400, json: { error: 'malformed run in path' } });
  expect(await call('POST', '/api/runs/%E0%A4%A/approve')).toMatchObject({ status: 400 });
  expect(await call('POST', '/api/districts/%E0%A4%A/sync')).toMatchObject({ status: 400, json: { error: 'malformed district in path' } });
  expect(await call('GET', '/api/districts/%00/users')).toMatchObject({ status: 404, json: { error: "unknown district '?'" } });
  expect(await call('GET', '/api/districts/%00/runs')).toMatchObject({ status: 404 });
  expect(await call('POST', '/api/districts/we%00b/sync')).toMatchObject({ status: 404 });
  expect(await call('GET', `/api/districts/${'d'.repeat(5000)}/users`)).toMatchObject({ status: 404 });
  expect(await call('GET', `/api/runs/${'0'.repeat(5000)}`)).toMatchObject({ status: 404 });
  expect(await call('GET', '/api/runs/not-a-run')).toMatchObject({ status: 404 });
  expect(await t.ctx.db.selectFrom('sync_runs').select('id').execute()).toEqual(before);
});

test('serve binds to HOST only, and says where', async () => {
  expect(api.listening).toBe(`http://127.0.0.1:${new URL(api.url).port}`);
  // 127.0.0.2 is loopback too (all of 127/8 is, on Linux): a server bound to it is not on 127.0.0.1.
  const other = await startHttpServer(t.ctx, 0, '127.0.0.2');
  try {
    const port = new URL(other.url).port;
    expect(other.listening).toBe(`http://127.0.0.2:${port}`);
    expect((await fetch(`http://127.0.0.2:${port}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.2:${new URL(api.url).port}/healthz`)).rejects.toThrow();
  } finally {
    await other.close();
  }
});

test('the serve command prints the address it bound', async () => {
  const bin = fileURLToPath(new URL('../bin/rostersync.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'serve'], { env: { ...process.env, ...t.env, HOST: '127.0.0.2', PORT: '0', SESSION_SECRET: 's'.repeat(40) }, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => {
        err += chunk.toString();
        const m = /listening on (\S+)/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    expect(line).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
    expect(line).not.toMatch(/:0$/);
    expect((await fetch(`${line}/healthz`)).status).toBe(200);
  } finally {
    child.kill('SIGTERM');
  }
});

test('serve refuses a short ADMIN_TOKEN or METRICS_TOKEN, with a clear error', async () => {
  const short = { ...t.ctx, config: { ...t.ctx.config, ADMIN_TOKEN: 'too-short' } };
  await expect(startHttpServer(short, 0)).rejects.toThrow('ADMIN_TOKEN is too short (9 characters): use at least 24 (openssl rand -base64 32)');
  const none = { ...t.ctx, config: { ...t.ctx.config, ADMIN_TOKEN: undefined } };
  await expect(startHttpServer(none, 0)).rejects.toThrow(/ADMIN_TOKEN must be set/);
  const shortMetrics = { ...t.ctx, config: { ...t.ctx.config, METRICS_TOKEN: 'short' } };
  await expect(startHttpServer(shortMetrics, 0)).rejects.toThrow(/METRICS_TOKEN is too short/);
  const viaCli = await runCli({ ...t.env, ADMIN_TOKEN: 'too-short', PORT: '0', SESSION_SECRET: 's'.repeat(40) }, ['serve', '--json']);
  expect(viaCli).toMatchObject({ code: 1, json: { error: expect.stringContaining('ADMIN_TOKEN is too short') } });
});

describe('/healthz when a store is down', () => {
  const blackHoles: net.Server[] = [];
  const contexts: AppContext[] = [];
  /** A TCP port that accepts connections and never answers: a hung store. */
  async function blackHole(): Promise<number> {
    const hole = net.createServer(() => undefined);
    blackHoles.push(hole);
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
    return (hole.address() as net.AddressInfo).port;
  }
  afterAll(async () => {
    for (const ctx of contexts) await ctx.close();
    for (const hole of blackHoles) { hole.close(); }
  });

  async function healthWith(env: Record<string, string>) {
    const ctx = await openContext({ config: loadConfig({ ...t.env, ...env }), migrate: false });
    contexts.push(ctx);
    const down = await startHttpServer(ctx, 0);
    try {
      // A hang guard, not a benchmark: the checks give up after 800 ms each.
      const res = await fetch(`${down.url}/healthz`, { signal: AbortSignal.timeout(3000) });
      return { status: res.status, json: await res.json() };
    } finally {
      await down.close();
    }
  }

  test('Redis refusing connections: 503 naming redis', async () => {
    expect(await healthWith({ REDIS_URL: 'redis://127.0.0.1:1' })).toEqual({ status: 503, json: { ok: false, postgres: true, redis: false, down: ['redis'] } });
  });

  test('Redis hanging: 503 naming redis', async () => {
    expect(await healthWith({ REDIS_URL: `redis://127.0.0.1:${await blackHole()}` })).toEqual({ status: 503, json: { ok: false, postgres: true, redis: false, down: ['redis'] } });
  });

  test('Postgres refusing connections: 503 naming postgres', async () => {
    expect(await healthWith({ DATABASE_URL: 'postgres://localhost:1/rostersync' })).toEqual({ status: 503, json: { ok: false, postgres: false, redis: true, down: ['postgres'] } });
  });

  test('Postgres hanging and Redis down: 503 naming both', async () => {
    expect(await healthWith({ DATABASE_URL: `postgres://127.0.0.1:${await blackHole()}/rostersync`, REDIS_URL: 'redis://127.0.0.1:1' }))
      .toEqual({ status: 503, json: { ok: false, postgres: false, redis: false, down: ['postgres', 'redis'] } });
  });
});
