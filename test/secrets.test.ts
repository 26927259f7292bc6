import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { bindSecretBox } from '../src/districts/credentials.js';
import { getDistrict, upsertDistrict } from '../src/districts/repository.js';
import { rotateSecrets } from '../src/districts/rotate.js';
import { SecretBox } from '../src/secrets/secret-box.js';
import { triggerSync } from '../jobs/trigger.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { runCli } from './helpers/cli.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';

const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const boxA = new SecretBox({ key: KEY_A });

let t: TestEnv;
let server: FakeCleverServer;
let dir: string;
const cli = (args: string[], env: Record<string, string> = {}) => runCli({ ...t.env, ...env }, args);

beforeAll(async () => {
  t = await createTestEnv({ SECRETS_KEY: KEY_A });
  // What openContext does for every context (see the report): the box goes with its database.
  bindSecretBox(t.ctx.db, boxA);
  server = await startClever({ seed: 5, schools: 2, students: 40, sections: 6, enrollmentsPerStudent: 2 });
  dir = mkdtempSync(join(tmpdir(), 'rostersync-secrets-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await server.stop();
  await t.close();
});

/** The stored row exactly as Postgres holds it. */
async function rawSettings(id: string): Promise<string> {
  const row = await sql<{ settings: string }>`SELECT settings::text AS settings FROM districts WHERE id = ${id}`.execute(t.ctx.db);
  return row.rows[0]!.settings;
}

async function allRawSettings(): Promise<string[]> {
  return (await sql<{ settings: string }>`SELECT settings::text AS settings FROM districts ORDER BY id`.execute(t.ctx.db)).rows.map((r) => r.settings);
}

/** Everything a failed sync must leave alone: accounts, enrollments, seats. */
async function rosterState(districtId: string) {
  const users = await t.ctx.db.selectFrom('users').select(['id', 'status']).where('district_id', '=', districtId).orderBy('id').execute();
  const enrollments = await t.ctx.db.selectFrom('enrollments').select(['id', 'ended_at']).where('district_id', '=', districtId).orderBy('id').execute();
  const seats = await sql<{ n: number }>`SELECT count(*)::int AS n FROM seat_assignments s JOIN license_pools p ON p.id = s.pool_id WHERE p.district_id = ${districtId} AND s.released_at IS NULL`.execute(t.ctx.db);
  return { users, enrollments, seats: seats.rows[0]!.n };
}

test('provider secrets are sealed at rest and a sync opens them', async () => {
  await addCleverDistrict(t.ctx, 'sealed', server);
  await addPool(t.ctx, 'sealed', 'READ', 10);
  const raw = await rawSettings('sealed');
  expect(raw).not.toContain(server.token);
  expect(JSON.parse(raw).credentials.token).toMatch(new RegExp(`^v1:${boxA.keyId}:`));
  expect((await getDistrict(t.ctx.db, 'sealed')).settings.credentials).toEqual({ token: server.token });

  t.startWorker();
  try {
    const run = await syncNow(t.ctx, 'sealed');
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersCreated: 40 + server.district.teachers.size, seatsAssigned: 10 } });
  } finally {
    await t.stopWorkers();
  }
});

test('a tampered secret fails clearly and changes nothing', async () => {
  const before = await rosterState('sealed');
  const raw = JSON.parse(await rawSettings('sealed'));
  const parts = String(raw.credentials.token).split(':');
  // Flip one byte of the ciphertext, keeping it valid base64url.
  const data = Buffer.from(parts[4]!, 'base64url');
  data[0] = data[0]! ^ 0xff;
  parts[4] = data.toString('base64url');
  raw.credentials.token = parts.join(':');
  await sql`UPDATE districts SET settings = ${JSON.stringify(raw)}::jsonb WHERE id = 'sealed'`.execute(t.ctx.db);
  const tampered = await allRawSettings();

  await expect(getDistrict(t.ctx.db, 'sealed')).rejects.toThrow(/district 'sealed' token: .*failed its integrity check \(tampered or corrupted\)/);
  const runsBefore = await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', 'sealed').execute();
  await expect(triggerSync(t.ctx, 'sealed', { trigger: 'cli' })).rejects.toThrow(/integrity check/);
  await expect(rotateSecrets(t.ctx.db, new SecretBox({ key: KEY_B, previousKey: KEY_A }))).rejects.toThrow(/district 'sealed' token: .*integrity check.*nothing was re-sealed/);

  expect(await allRawSettings()).toEqual(tampered);
  expect(await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', 'sealed').execute()).toEqual(runsBefore);
  expect(await rosterState('sealed')).toEqual(before);
  // Listing needs no secret, so ops can still see (and re-add) the district.
  const list = await cli(['district', 'list', '--json']);
  expect(list.json).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'sealed', settings: expect.objectContaining({ credentials: { token: '[redacted]' } }) })]));
  await addCleverDistrict(t.ctx, 'sealed', server);
});

test('secrets come from a file or the environment, never shown back', async () => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${server.token}\n`, { mode: 0o600 });
  const fromFile = await cli(['district', 'add', 'from-file', '--provider', 'clever', '--base-url', server.url, '--token-file', tokenFile, '--json']);
  expect(fromFile.code).toBe(0);
  expect(fromFile.stdout).not.toContain(server.token);
  expect(fromFile.stderr).not.toContain('visible to other users');
  expect((await getDistrict(t.ctx.db, 'from-file')).settings.credentials).toEqual({ token: server.token });
  expect(await rawSettings('from-file')).not.toContain(server.token);

  const fromEnv = await cli(['district', 'add', 'from-env', '--provider', 'schoology', '--base-url', 'https://api.schoology.example/v1', '--consumer-key', 'ck', '--json'], { ROSTERSYNC_CONSUMER_SECRET: 'consumer-secret-from-env' });
  expect(fromEnv.code).toBe(0);
  expect(fromEnv.json).toMatchObject({ id: 'from-env', settings: { credentials: { consumerKey: '[redacted]', consumerSecret: '[redacted]' } } });
  expect((await getDistrict(t.ctx.db, 'from-env')).settings.credentials).toEqual({ consumerKey: 'ck', consumerSecret: 'consumer-secret-from-env' });
  expect(await rawSettings('from-env')).not.toContain('consumer-secret-from-env');

  const secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, 'client-secret-from-file');
  const oauth2 = await cli(['district', 'add', 'cl-file', '--provider', 'classlink', '--base-url', 'https://cl.example/ims/oneroster/rostering/v1p2',
    '--client-id', 'cid', '--client-secret-file', secretFile, '--token-url', 'https://cl.example/oauth/token', '--json'], { ROSTERSYNC_CLIENT_SECRET: 'ignored-env-secret' });
  expect(oauth2.code).toBe(0);
  expect((await getDistrict(t.ctx.db, 'cl-file')).settings.credentials).toMatchObject({ clientId: 'cid', clientSecret: 'client-secret-from-file' });

  // A secret on the command line still works, with a warning about ps.
  const inline = await cli(['district', 'add', 'inline', '--provider', 'clever', '--base-url', server.url, '--token', 'inline-token', '--json']);
  expect(inline.code).toBe(0);
  expect(inline.stderr).toContain('visible to other users');

  const ids = async () => (await t.ctx.db.selectFrom('districts').select('id').orderBy('id').execute()).map((d) => d.id);
  const saved = await ids();
  const both = await cli(['district', 'add', 'both', '--provider', 'clever', '--base-url', server.url, '--token', 'x', '--token-file', tokenFile, '--json']);
  expect(both).toMatchObject({ code: 2, json: { error: 'give --token or --token-file, not both' } });
  const missing = await cli(['district', 'add', 'missing', '--provider', 'clever', '--base-url', server.url, '--token-file', join(dir, 'nope'), '--json']);
  expect(missing).toMatchObject({ code: 2, json: { error: expect.stringContaining('--token-file: cannot read') } });
  const emptyFile = join(dir, 'empty');
  writeFileSync(emptyFile, '\n');
  expect(await cli(['district', 'add', 'empty', '--provider', 'clever', '--base-url', server.url, '--token-file', emptyFile, '--json'])).toMatchObject({ code: 2, json: { error: expect.stringContaining('is empty') } });
  expect(await ids()).toEqual(saved);

  const list = await cli(['district', 'list', '--json']);
  for (const secret of [server.token, 'consumer-secret-from-env', 'client-secret-from-file', 'inline-token']) expect(list.stdout).not.toContain(secret);
});

test('credentials inside a base URL are refused and nothing is saved', async () => {
  const before = await allRawSettings();
  const inUrl = await cli(['district', 'add', 'in-url', '--provider', 'clever', '--base-url', 'https://district:s3cr3t-pw@api.clever.example', '--token', 'T', '--json']);
  expect(inUrl.code).toBe(2);
  expect((inUrl.json as { error: string }).error).toBe('--base-url: must not contain credentials (user:password@host): pass them with --token-file, --client-secret-file or --consumer-secret-file');
  expect(inUrl.stdout + inUrl.stderr).not.toContain('s3cr3t-pw');
  const tokenUrl = await cli(['district', 'add', 'in-url', '--provider', 'classlink', '--base-url', 'https://cl.example/ims/oneroster/rostering/v1p2',
    '--client-id', 'cid', '--client-secret', 'cs', '--token-url', 'https://cid:cs@cl.example/oauth/token', '--json']);
  expect(tokenUrl).toMatchObject({ code: 2, json: { error: expect.stringContaining('must not contain credentials') } });
  expect(await allRawSettings()).toEqual(before);
});

test('without SECRETS_KEY a district is refused rather than stored in plaintext', async () => {
  const before = await allRawSettings();
  const noKey = await cli(['district', 'add', 'no-key', '--provider', 'clever', '--base-url', server.url, '--token', 'plain', '--json'], { SECRETS_KEY: '' });
  expect(noKey).toMatchObject({ code: 1, json: { error: expect.stringContaining('SECRETS_KEY is not set') } });
  const badKey = await cli(['district', 'add', 'no-key', '--provider', 'clever', '--base-url', server.url, '--token', 'plain', '--json'], { SECRETS_KEY: 'c2hvcnQ=' });
  expect(badKey).toMatchObject({ code: 1, json: { error: 'invalid environment: SECRETS_KEY: must be 32 random bytes in base64 (openssl rand -base64 32)' } });
  expect(await allRawSettings()).toEqual(before);
});

test('a plaintext row from before encryption is readable, and rotate-secrets seals it', async () => {
  const legacy = { provider: 'clever', baseUrl: server.url, credentials: { token: server.token }, pageSize: 25, minRetryDelayMs: 10, timeoutMs: 2000, retries: 6 };
  // Written as the code before encryption at rest wrote it (every other column at its default).
  await sql`INSERT INTO districts (id, provider, settings) VALUES ('legacy', 'clever', ${JSON.stringify(legacy)}::jsonb)`.execute(t.ctx.db);
  expect((await getDistrict(t.ctx.db, 'legacy')).settings.credentials).toEqual({ token: server.token });

  const rotated = await cli(['rotate-secrets', '--json']);
  expect(rotated.code).toBe(0);
  expect(rotated.json).toMatchObject({ keyId: boxA.keyId, sealedPlaintext: 1, resealed: 0 });
  expect(await rawSettings('legacy')).not.toContain(server.token);
  expect((await getDistrict(t.ctx.db, 'legacy')).settings.credentials).toEqual({ token: server.token });

  // Nothing left to do: a second run re-seals nothing.
  const again = await cli(['rotate-secrets', '--json']);
  expect(again.json).toMatchObject({ sealedPlaintext: 0, resealed: 0, current: (rotated.json as { current: number }).current + 1 });
});

test('key rotation: previous key opens, rotate-secrets re-seals, the old key alone then fails clearly', async () => {
  const count = (await allRawSettings()).length;
  const boxB = new SecretBox({ key: KEY_B });
  // A sign-in app's client secret, sealed the same way, rotates with the rest.
  await t.ctx.db.insertInto('sso_apps').values({ provider: 'clever', issuer: 'https://clever.com', client_id: 'sso-client', client_secret_sealed: boxA.seal('sso-client-secret') }).execute();

  // The new key alone cannot open what the old one sealed: a clear refusal, nothing queued.
  const early = await cli(['sync', 'legacy', '--json'], { SECRETS_KEY: KEY_B });
  expect(early).toMatchObject({ code: 1, json: { error: expect.stringMatching(/sealed with key .* neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS/) } });

  const rotated = await cli(['rotate-secrets', '--json'], { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A });
  expect(rotated.code).toBe(0);
  // legacy, sealed, from-file, inline: one token each; from-env, cl-file: one secret each; the sign-in app's.
  expect(rotated.json).toMatchObject({ keyId: boxB.keyId, districts: count, ssoApps: 1, resealed: 7, sealedPlaintext: 0, current: 0 });
  const app = await t.ctx.db.selectFrom('sso_apps').select('client_secret_sealed').executeTakeFirstOrThrow();
  expect(boxB.open(app.client_secret_sealed)).toBe('sso-client-secret');
  expect(boxB.needsReseal(app.client_secret_sealed)).toBe(false);
  for (const raw of await allRawSettings()) {
    expect(raw).not.toContain(`v1:${boxA.keyId}:`);
    expect(raw).not.toContain(server.token);
  }
  expect((await getDistrict(t.ctx.db, 'legacy', boxB)).settings.credentials).toEqual({ token: server.token });
  await expect(getDistrict(t.ctx.db, 'legacy', boxA)).rejects.toThrow(`district 'legacy' token: a stored secret was sealed with key ${boxB.keyId}, which is neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS`);

  const before = await rosterState('sealed');
  const oldKey = await cli(['sync', 'sealed', '--wait', '--json'], { SECRETS_KEY: KEY_A });
  expect(oldKey).toMatchObject({ code: 1, json: { error: expect.stringContaining('neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS') } });
  expect(await rosterState('sealed')).toEqual(before);

  // With the new key alone, a sync through the real CLI succeeds.
  const ok = await cli(['sync', 'sealed', '--wait', '--json'], { SECRETS_KEY: KEY_B });
  expect(ok).toMatchObject({ code: 0, json: { status: 'SUCCEEDED', counts: { usersCreated: 0, usersDeleted: 0 } } });
  expect(await rosterState('sealed')).toEqual(before);
});

test('upsertDistrict with an explicit box seals with that box', async () => {
  const boxB = new SecretBox({ key: KEY_B });
  await upsertDistrict(t.ctx.db, { id: 'explicit', settings: { provider: 'canvas', baseUrl: 'https://canvas.example/api/v1', credentials: { token: 'canvas-token' }, accountId: 'self' }, schedule: null }, boxB);
  expect(JSON.parse(await rawSettings('explicit')).credentials.token).toMatch(new RegExp(`^v1:${boxB.keyId}:`));
  expect((await getDistrict(t.ctx.db, 'explicit', boxB)).settings.credentials).toEqual({ token: 'canvas-token' });
});
