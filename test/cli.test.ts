import { sql } from 'kysely';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { createTestEnv, dropDatabase, type TestEnv } from './helpers/context.js';
import { startClever } from './helpers/district.js';
import { runCli } from './helpers/cli.js';

let t: TestEnv;
let server: FakeCleverServer;
const cli = (...args: string[]) => runCli(t.env, args);
const RUN_KEYS = ['id', 'districtId', 'status', 'dryRun', 'counts', 'error'];
const COUNT_KEYS = ['usersCreated', 'usersUpdated', 'usersDeleted', 'usersReactivated', 'enrollmentsAdded', 'enrollmentsEnded', 'seatsAssigned', 'seatsReleased', 'seatsWaitlisted'];

beforeAll(async () => {
  t = await createTestEnv({ SECRETS_KEY: randomBytes(32).toString('base64') });
  server = await startClever({ seed: 3, schools: 2, students: 80, sections: 10, enrollmentsPerStudent: 2 });
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

test('bad flags are refused with a clear error, exit 2, and nothing saved', async () => {
  const badProvider = await cli('district', 'add', 'x', '--provider', 'blackboard', '--base-url', server.url, '--json');
  expect(badProvider.code).toBe(2);
  expect(badProvider.json).toEqual({ error: expect.stringContaining('--provider: must be one of clever, classlink, canvas, schoology') });

  const noToken = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--json');
  expect(noToken.code).toBe(2);
  expect((noToken.json as { error: string }).error).toContain('Clever needs --token');

  const badUrl = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', 'not a url', '--token', 'T', '--json');
  expect(badUrl.code).toBe(2);
  expect((badUrl.json as { error: string }).error).toBe('--base-url: must be an http(s) URL');

  const badCron = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--schedule', 'every day', '--json');
  expect(badCron.code).toBe(2);
  expect((badCron.json as { error: string }).error).toContain('cron');

  const seconds = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--schedule', '*/5 * * * * *', '--json');
  expect(seconds).toMatchObject({ code: 2, json: { error: '--schedule: schedules run at most once a minute: use 5 cron fields (minute hour day month weekday), not 6 with seconds' } });

  const canvasOnly = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--account-id', '5', '--json');
  expect(canvasOnly).toMatchObject({ code: 2, json: { error: '--account-id applies to canvas' } });

  const badPct = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--loss-threshold-pct', '150', '--quarantine-threshold-min', '-1', '--json');
  expect(badPct).toMatchObject({ code: 2, json: { error: '--loss-threshold-pct: threshold must be between 0 and 100; --quarantine-threshold-min: threshold must be at least 0' } });
  const notNumber = await cli('district', 'add', 'x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--deletion-threshold-min', 'lots', '--json');
  expect(notNumber).toMatchObject({ code: 2, json: { error: '--deletion-threshold-min: threshold must be a number' } });

  const missing = await cli('district', 'add', '--json');
  expect(missing.code).toBe(2);
  expect(missing.json).toEqual({ error: "required option '--provider <provider>' not specified" });

  const list = await cli('district', 'list', '--json');
  expect(list.json).toEqual([]);
});

test('a district is rostered through the CLI, with the contract JSON shapes', async () => {
  const add = await cli('district', 'add', 'cli-d', '--provider', 'clever', '--base-url', server.url, '--token', server.token, '--page-size', '30', '--json');
  expect(add.code).toBe(0);
  expect(add.stdout).not.toContain(server.token);
  const list = await cli('district', 'list', '--json');
  expect(list.json).toEqual([expect.objectContaining({ id: 'cli-d', provider: 'clever', baseUrl: server.url, settings: expect.objectContaining({ credentials: { token: '[redacted]' } }) })]);
  expect(list.stdout).not.toContain(server.token);

  expect((await cli('license', 'set', 'cli-d', '--product', 'READ', '--seats', '-1', '--json')).code).toBe(2);
  // Beyond what Postgres holds, or not a product code: a clear usage error, never a database message.
  expect(await cli('license', 'set', 'cli-d', '--product', 'READ', '--seats', '99999999999', '--json')).toMatchObject({ code: 2, json: { error: '--seats: seats must be at most 10,000,000' } });
  expect(await cli('license', 'set', 'cli-d', '--product', "READ'; --", '--seats', '5', '--json')).toMatchObject({ code: 2, json: { error: expect.stringMatching(/^--product: product code: letters, digits/) } });
  expect((await cli('licenses', 'cli-d', '--json')).json).toEqual([]);
  expect((await cli('license', 'set', 'cli-d', '--product', 'READ', '--seats', '50', '--json')).code).toBe(0);

  const sync = await cli('sync', 'cli-d', '--wait', '--json');
  expect(sync.code).toBe(0);
  const run = sync.json as Record<string, unknown> & { counts: Record<string, number> };
  for (const key of RUN_KEYS) expect(run).toHaveProperty(key);
  for (const key of COUNT_KEYS) expect(typeof run.counts[key]).toBe('number');
  expect(run).toMatchObject({ districtId: 'cli-d', status: 'SUCCEEDED', dryRun: false, error: null });
  expect(run.counts).toMatchObject({ usersCreated: 80 + server.district.teachers.size, seatsAssigned: 50, seatsWaitlisted: 30 });
  // No worker was running: the CLI said so and processed the run itself.
  expect(sync.stderr).toContain('no rostersync worker is running');

  const runs = await cli('runs', 'cli-d', '--json');
  expect((runs.json as { id: string }[]).map((r) => r.id)).toContain(run.id);
  const one = await cli('run', String(run.id), '--json');
  expect(one.json).toMatchObject({ id: run.id, status: 'SUCCEEDED' });

  const users = (await cli('users', 'cli-d', '--status', 'ACTIVE', '--json')).json as Record<string, unknown>[];
  expect(users).toHaveLength(80 + server.district.teachers.size);
  const aStudent = users.find((u) => u.role === 'student' && (u.products as string[]).length)!;
  expect(Object.keys(aStudent)).toEqual(expect.arrayContaining(['id', 'sourcedId', 'role', 'status', 'givenName', 'familyName', 'email', 'classes', 'products']));
  expect(aStudent.products).toEqual(['READ']);
  expect(aStudent.classes).toEqual(server.district.sectionsOf(String(aStudent.sourcedId)).map((s) => s.id).sort());

  const licenses = await cli('licenses', 'cli-d', '--json');
  expect(licenses.json).toEqual([expect.objectContaining({ product: 'READ', seats: 50, assigned: 50, waitlisted: 30 })]);

  const removed = await cli('remove-student', 'cli-d', String(aStudent.sourcedId), '--json');
  expect(removed.code).toBe(0);
  expect(removed.json).toMatchObject({ status: 'SUCCEEDED', counts: { usersDeleted: 1, seatsReleased: 1, seatsAssigned: 1 } });
  const deleted = (await cli('users', 'cli-d', '--status', 'DELETED', '--json')).json as Record<string, unknown>[];
  expect(deleted).toEqual([expect.objectContaining({ id: aStudent.id, status: 'DELETED', classes: [], products: [] })]);

  // One wait-listed student took the freed seat.
  const human = await cli('licenses', 'cli-d');
  expect(human.stdout).toMatch(/READ\s+50\s+50\s+29/);
});

test('a mass deletion exits 3 (HELD) and approve applies it', async () => {
  // Students ops has not touched (ops removed one of the first few above).
  const ids = [...server.district.students.keys()].slice(40, 70);
  for (const id of ids) server.district.removeStudent(id);
  const held = await cli('sync', 'cli-d', '--wait', '--json');
  expect(held.code).toBe(3);
  expect(held.json).toMatchObject({ status: 'HELD', counts: { usersDeleted: 30 }, error: expect.stringContaining('threshold') });
  const users = (await cli('users', 'cli-d', '--status', 'DELETED', '--json')).json as unknown[];
  expect(users).toHaveLength(1);

  const approved = await cli('approve', String((held.json as { id: string }).id), '--json');
  expect(approved.code).toBe(0);
  // The student ops removed is still rostered by the provider, so this snapshot brings them back.
  expect(approved.json).toMatchObject({ status: 'SUCCEEDED', counts: { usersDeleted: 30, usersReactivated: 1 } });
  expect(((await cli('users', 'cli-d', '--status', 'DELETED', '--json')).json as unknown[])).toHaveLength(30);
});

test('failures print { error } and exit non-zero, and change nothing', async () => {
  const before = (await cli('users', 'cli-d', '--json')).stdout;
  const unknown = await cli('sync', 'nowhere', '--wait', '--json');
  expect(unknown.code).toBe(1);
  expect(unknown.json).toEqual({ error: "unknown district 'nowhere' (see `rostersync district list`)" });
  expect(await cli('run', 'not-a-run', '--json')).toMatchObject({ code: 1, json: { error: "'not-a-run' is not a run id" } });
  expect(await cli('users', 'cli-d', '--status', 'GONE', '--json')).toMatchObject({ code: 2, json: { error: expect.stringContaining('ACTIVE or DELETED') } });
  expect(await cli('purge', 'cli-d', '--json')).toMatchObject({ code: 2, json: { error: expect.stringContaining('--yes') } });
  expect(await cli('remove-student', 'cli-d', 'nobody', '--json')).toMatchObject({ code: 1, json: { error: expect.stringContaining("no user 'nobody'") } });
  const lastRun = ((await cli('runs', 'cli-d', '--json')).json as { id: string }[])[0]!;
  expect(await cli('approve', lastRun.id, '--json')).toMatchObject({ code: 1, json: { error: expect.stringContaining('only a HELD run can be approved') } });
  expect((await cli('users', 'cli-d', '--json')).stdout).toBe(before);
});

test('a provider that rejects the token fails the run with exit 1 and a readable reason', async () => {
  await cli('district', 'add', 'cli-bad', '--provider', 'clever', '--base-url', server.url, '--token', 'wrong', '--json');
  const run = await cli('sync', 'cli-bad', '--wait');
  expect(run.code).toBe(1);
  expect(run.stdout).toContain('FAILED');
  expect(run.stdout).toContain('Clever refused our credentials (HTTP 401)');
});

/** Memberships of the district, and those pointing at no user or class (memberships carry no foreign keys: purge deletes them itself). */
async function membershipRows(districtId: string) {
  const { rows } = await sql<{ all: number; orphans: number }>`
    SELECT count(*)::int AS all,
      count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id) OR NOT EXISTS (SELECT 1 FROM classes c WHERE c.id = e.class_id))::int AS orphans
    FROM enrollments e WHERE e.district_id = ${districtId}`.execute(t.ctx.db);
  return rows[0]!;
}

test('purge erases roster data for good, keeps the district and pools, and audits it', async () => {
  const before = await membershipRows('cli-d');
  const ofDeleted = Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM enrollments e JOIN users u ON u.id = e.user_id WHERE u.district_id = 'cli-d' AND u.status = 'DELETED'`.execute(t.ctx.db)).rows[0]!.n);
  expect(ofDeleted).toBeGreaterThan(0);
  const purge = await cli('purge', 'cli-d', '--deleted-only', '--yes', '--json');
  expect(purge.json).toMatchObject({ scope: 'deleted-users', users: 30 });
  expect(((await cli('users', 'cli-d', '--status', 'DELETED', '--json')).json as unknown[])).toEqual([]);
  expect(((await cli('users', 'cli-d', '--status', 'ACTIVE', '--json')).json as unknown[]).length).toBeGreaterThan(0);
  const audit = await t.ctx.db.selectFrom('audit_log').selectAll().where('action', '=', 'purge').execute();
  expect(audit).toEqual([expect.objectContaining({ district_id: 'cli-d', entity: 'district', detail: expect.objectContaining({ users: 30 }) })]);
  expect((await cli('licenses', 'cli-d', '--json')).json).toEqual([expect.objectContaining({ product: 'READ', seats: 50 })]);
  // The erased accounts' memberships (history included) went with them; everyone else's stayed.
  expect(await membershipRows('cli-d')).toEqual({ all: before.all - ofDeleted, orphans: 0 });

  // The full summer wipe: every roster record goes; the district and its pools stay.
  const wipe = await cli('purge', 'cli-d', '--yes', '--json');
  expect(wipe.json).toMatchObject({ scope: 'all-roster-data', users: 80 - 30 + server.district.teachers.size });
  expect((await cli('users', 'cli-d', '--json')).json).toEqual([]);
  expect(await t.ctx.db.selectFrom('classes').select('id').where('district_id', '=', 'cli-d').execute()).toEqual([]);
  expect(await membershipRows('cli-d')).toEqual({ all: 0, orphans: 0 });
  expect((await cli('licenses', 'cli-d', '--json')).json).toEqual([expect.objectContaining({ product: 'READ', seats: 50, assigned: 0 })]);
});

test('a person\'s seats and wait-list entries are reached by an index that starts from the person, not by reading every district\'s', async () => {
  // What a purge's ON DELETE CASCADE runs for each erased user, what GET /sso/me and `users` run per person.
  // Without such an index each of those reads the whole table: a million-student purge would take most of a day.
  const indexOf = (table: string) => t.ctx.db.transaction().execute(async (trx) => {
    await sql`SET LOCAL enable_seqscan = off`.execute(trx);
    // A constant, as the cascade's and the lookups' parameters are (a volatile expression is never an index condition).
    const { rows } = await sql<{ 'QUERY PLAN': { Plan: Record<string, unknown> }[] }>`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${sql.table(table)} WHERE user_id = '6f1c0d6e-59b4-4a53-9a53-5d2f1f0e7b11'::uuid`.execute(trx);
    const plan = JSON.stringify(rows[0]!['QUERY PLAN']);
    const name = /"Index Name":"([^"]+)"/.exec(plan)?.[1];
    if (!name || !/"Index Cond":"\(user_id = /.test(plan)) return { plan };
    const { rows: [def] } = await sql<{ first: string }>`
      SELECT a.attname AS first FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indexrelid = ${name}::regclass`.execute(trx);
    return { name, firstColumn: def?.first };
  });
  for (const table of ['seat_assignments', 'waitlist']) {
    expect(await indexOf(table)).toEqual({ name: expect.any(String), firstColumn: 'user_id' });
  }
});

test('a ClassLink district is added with OAuth 2 credentials (redacted) and its full-snapshot interval', async () => {
  const add = await cli('district', 'add', 'cli-cl', '--provider', 'classlink', '--base-url', 'https://cl.example/ims/oneroster/rostering/v1p2',
    '--client-id', 'cid', '--client-secret', 'top-secret', '--token-url', 'https://cl.example/oauth/token', '--full-every-hours', '12',
    '--deletion-threshold-pct', '7.5', '--loss-threshold-pct', '20', '--quarantine-threshold-min', '50', '--quarantine-threshold-pct', '2', '--json');
  expect(add.code).toBe(0);
  expect(add.json).toMatchObject({
    id: 'cli-cl', provider: 'classlink',
    settings: { fullSnapshotEveryHours: 12, credentials: { clientId: '[redacted]', clientSecret: '[redacted]', tokenUrl: 'https://cl.example/oauth/token' } },
    guard: { deletionThresholdPct: 7.5, deletionThresholdMin: 25, lossThresholdPct: 20, quarantineThresholdMin: 50, quarantineThresholdPct: 2 },
  });
  expect(add.stdout).not.toContain('top-secret');
  const wrong = await cli('district', 'add', 'cli-x', '--provider', 'clever', '--base-url', server.url, '--token', 'T', '--full-every-hours', '12', '--json');
  expect(wrong).toMatchObject({ code: 2, json: { error: expect.stringContaining('--full-every-hours applies to providers with delta syncs') } });
});

test('migrate creates a missing database and reports what it applied', async () => {
  const url = new URL(t.databaseUrl);
  url.pathname = `${url.pathname}_m`;
  const first = await runCli({ ...t.env, DATABASE_URL: url.toString() }, ['migrate', '--json']);
  const again = await runCli({ ...t.env, DATABASE_URL: url.toString() }, ['migrate', '--json']);
  await dropDatabase(url.pathname.slice(1));
  const migrations = readdirSync(new URL('../db/migrations/', import.meta.url)).filter((f) => /^\d+_.*\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort();
  expect(migrations[0]).toBe('001_init');
  expect(first).toMatchObject({ code: 0, json: { ok: true, created: true, applied: migrations } });
  expect(again).toMatchObject({ code: 0, json: { ok: true, created: false, applied: [] } });
});
