import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { RosterDistrict } from '../fixtures/district.js';
import { ClassLinkInfoServer } from '../fixtures/oidc/classlink-info-server.js';
import type { FakeOidcProvider, Tamper } from '../fixtures/oidc/provider.js';
import { upsertDistrict } from '../src/districts/repository.js';
import { startHttpServer } from '../src/http/server.js';
import { listUsers } from '../src/queries.js';
import { setProvider } from '../src/sso/config-store.js';
import { createSsoHandler } from '../src/sso/routes.js';
import { SecretBox } from '../src/secrets/secret-box.js';
import { removeStudent } from '../src/sync/ops.js';
import { runCli } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { openContext } from '../src/context.js';
import { addPool } from './helpers/district.js';
import type { Snapshot } from '../src/reconcile/types.js';
import { applyPlan, planSmallChange } from '../src/sync/apply.js';
import { loadLocalState } from '../src/sync/local-state.js';
import { Browser, isCallback, startOidcProvider, type Hop } from './helpers/oidc.js';
import { freePort } from './helpers/net.js';

const SPEC = { seed: 91, schools: 2, students: 24, sections: 6, enrollmentsPerStudent: 2 };
const CLEVER_APP = { clientId: 'clever-app-1', clientSecret: 'clever-secret-do-not-print' };
const CLASSLINK_APP = { clientId: 'classlink-app-1', clientSecret: 'classlink-secret-do-not-print' };

let t: TestEnv;
let publicUrl: string;
let appUrl: string;
let server: { url: string; close(): Promise<void> };
let rosterA: RosterDistrict;
let rosterB: RosterDistrict;
let rosterC: RosterDistrict;
let clever: FakeOidcProvider;
let classlink: FakeOidcProvider;
let myInfo: ClassLinkInfoServer;


const studentsOf = (roster: RosterDistrict) => [...roster.students.values()];

/** A district whose accounts are the generated roster's students (as a sync would leave them), with a district-wide pool. */
async function addDistrict(id: string, provider: 'clever' | 'classlink', roster: RosterDistrict) {
  const settings = provider === 'clever'
    ? { provider, baseUrl: 'http://127.0.0.1:9/unused', credentials: { token: 'unused' } } as const
    : { provider, baseUrl: 'http://127.0.0.1:9/unused', credentials: { consumerKey: 'unused', consumerSecret: 'unused' } } as const;
  await upsertDistrict(t.ctx.db, { id, schedule: null, settings });
  await t.ctx.db.insertInto('users').values(studentsOf(roster).map((s) => ({
    district_id: id, provider, sourced_id: s.id, role: 'student', given_name: s.first, family_name: s.last, email: s.email,
    username: s.username, sis_id: s.sisId, grades: s.grade ? [s.grade] : [], school_sourced_ids: s.schoolIds,
  }))).execute();
  await addPool(t.ctx, id, 'MATHAPP', 1000);
}

beforeAll(async () => {
  const port = await freePort();
  publicUrl = `http://127.0.0.1:${port}`;
  appUrl = `${publicUrl}/app/home`;
  const secretsKey = randomBytes(32).toString('base64');
  t = await createTestEnv({
    PUBLIC_URL: publicUrl, APP_URL: appUrl, ADMIN_TOKEN: randomBytes(32).toString('base64'),
    SESSION_SECRET: randomBytes(32).toString('base64'), SECRETS_KEY: secretsKey,
  });

  // Two Clever districts and one ClassLink district, their accounts from the
  // deterministic generator; seats are then settled by the license rules.
  rosterA = new RosterDistrict({ ...SPEC, seed: 91 });
  rosterB = new RosterDistrict({ ...SPEC, seed: 92 });
  rosterC = new RosterDistrict({ ...SPEC, seed: 93 });
  await addDistrict('dist-a', 'clever', rosterA);
  await addDistrict('dist-b', 'clever', rosterB);
  await addDistrict('dist-c', 'classlink', rosterC);

  clever = await startOidcProvider('clever', [{ ...CLEVER_APP, redirectUris: [`${publicUrl}/sso/clever/callback`] }]);
  classlink = await startOidcProvider('classlink', [{ ...CLASSLINK_APP, redirectUris: [`${publicUrl}/sso/classlink/callback`] }]);
  myInfo = new ClassLinkInfoServer(classlink);
  await myInfo.start();

  server = await startHttpServer(t.ctx, port);
});

afterAll(async () => {
  await server?.close();
  await Promise.all([clever?.stop(), classlink?.stop(), myInfo?.stop()]);
  await t.close();
});

/** Everything a refused sign-in must leave alone. */
async function kept() {
  const users = await t.ctx.db.selectFrom('users').select(['id', 'district_id', 'sourced_id', 'status', 'updated_at']).orderBy('id').execute();
  const seats = await t.ctx.db.selectFrom('seat_assignments').select(['id', 'user_id', 'released_at']).orderBy('id').execute();
  const sessions = await t.ctx.db.selectFrom('sso_sessions').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  return { users, seats, sessions: sessions.n };
}

async function lastAudit() {
  return t.ctx.db.selectFrom('audit_log').selectAll().where('entity', '=', 'sso').orderBy('id', 'desc').executeTakeFirstOrThrow();
}

function expectRefusal(hop: Hop, code: string, status: number) {
  expect({ status: hop.status, error: (JSON.parse(hop.body) as { error: string }).error }).toEqual({ status, error: code });
  expect((JSON.parse(hop.body) as { message: string }).message.length).toBeGreaterThan(20);
  expect(hop.setCookies.some((c) => c.startsWith('rostersync_session=') && !/Max-Age=0/.test(c))).toBe(false);
}

/** Follows a sign-in until it lands on APP_URL (the app itself is not served here). */
const signIn = (browser: Browser, url: string) => browser.follow(url, { stopBefore: (u) => u.href === appUrl });

const cleverClaims = (roster: RosterDistrict, tenant: string, id: string) => {
  const s = roster.students.get(id)!;
  return { district: tenant, user_type: 'student', given_name: s.first, family_name: s.last, email: s.email };
};

async function me(browser: Browser) {
  const hop = await browser.request(`${publicUrl}/sso/me`);
  return { status: hop.status, body: JSON.parse(hop.body) as Record<string, unknown> };
}

describe('sso set / sso list', () => {
  it('stores one shared app per issuer+client id with the secret sealed, prints the redirect URI and never the secret', async () => {
    const common = ['--provider', 'clever', '--client-id', CLEVER_APP.clientId, '--client-secret', CLEVER_APP.clientSecret, '--issuer', clever.url, '--json'];
    const a = await runCli(t.env, ['sso', 'set', 'dist-a', ...common, '--tenant', 'tenant-a']);
    const b = await runCli(t.env, ['sso', 'set', 'dist-b', ...common, '--tenant', 'tenant-b']);
    const c = await runCli(t.env, ['sso', 'set', 'dist-c', '--provider', 'classlink', '--client-id', CLASSLINK_APP.clientId, '--client-secret', CLASSLINK_APP.clientSecret,
      '--issuer', classlink.url, '--api-url', myInfo.url, '--tenant', '4242', '--json']);
    for (const r of [a, b, c]) {
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/secret-do-not-print/);
    }
    expect(a.json).toEqual({ districtId: 'dist-a', provider: 'clever', issuer: clever.url, clientId: CLEVER_APP.clientId, tenant: 'tenant-a', jit: false, apiUrl: 'https://api.clever.com', redirectUri: `${publicUrl}/sso/clever/callback` });
    expect(c.json).toMatchObject({ provider: 'classlink', tenant: '4242', apiUrl: myInfo.url, redirectUri: `${publicUrl}/sso/classlink/callback` });

    const apps = await t.ctx.db.selectFrom('sso_apps').selectAll().orderBy('provider').execute();
    expect(apps.map((x) => [x.provider, x.client_id])).toEqual([['classlink', CLASSLINK_APP.clientId], ['clever', CLEVER_APP.clientId]]);
    expect(apps.every((x) => !x.client_secret_sealed.includes('do-not-print'))).toBe(true);
    expect(SecretBox.fromConfig(t.ctx.config).open(apps[1]!.client_secret_sealed)).toBe(CLEVER_APP.clientSecret);

    const list = await runCli(t.env, ['sso', 'list', '--json']);
    expect((list.json as { districtId: string }[]).map((x) => x.districtId)).toEqual(['dist-a', 'dist-b', 'dist-c']);
    expect(list.stdout).not.toMatch(/secret/);
  });

  it('refuses a tenant that already belongs to another district, and a provider the district is not rostered by', async () => {
    const before = await t.ctx.db.selectFrom('sso_tenants').selectAll().orderBy('district_id').execute();
    const taken = await runCli(t.env, ['sso', 'set', 'dist-b', '--provider', 'clever', '--client-id', CLEVER_APP.clientId, '--client-secret', CLEVER_APP.clientSecret, '--issuer', clever.url, '--tenant', 'tenant-a', '--json']);
    expect(taken.code).toBe(2);
    expect((taken.json as { error: string }).error).toMatch(/tenant-a' already belongs to district 'dist-a'/);
    const crossed = await runCli(t.env, ['sso', 'set', 'dist-c', '--provider', 'clever', '--client-id', 'x', '--client-secret', 'y', '--issuer', clever.url, '--tenant', 'z', '--json']);
    expect(crossed.code).toBe(2);
    expect(await t.ctx.db.selectFrom('sso_tenants').selectAll().orderBy('district_id').execute()).toEqual(before);
  });
});

describe('Clever', () => {
  it('signs a rostered student in from here: PKCE S256, state, nonce, district_id, HTTP Basic; session cookie; /sso/me', async () => {
    const student = studentsOf(rosterA)[0]!;
    clever.loginAs({ sub: student.id, claims: cleverClaims(rosterA, 'tenant-a', student.id) });
    const browser = new Browser();
    const { hops, last } = await signIn(browser, `${publicUrl}/sso/clever/login?district=dist-a`);
    const authorize = new URL(hops[0]!.location!);
    expect(authorize.origin + authorize.pathname).toBe(`${clever.url}/oauth/authorize`);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    for (const p of ['state', 'nonce', 'code_challenge']) expect(authorize.searchParams.get(p)?.length).toBeGreaterThan(20);
    expect(authorize.searchParams.get('district_id')).toBe('tenant-a');
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${publicUrl}/sso/clever/callback`);
    expect(clever.tokenAuth.at(-1)).toBe('basic');

    expect(last.status).toBe(302);
    expect(last.location).toBe(appUrl);
    const cookie = last.setCookies.find((c) => c.startsWith('rostersync_session='))!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Lax/);
    expect(cookie).toMatch(/; Path=\//);

    const account = (await listUsers(t.ctx.db, 'dist-a')).find((u) => u.sourcedId === student.id)!;
    expect(account.products).toEqual(['MATHAPP']);
    expect(await me(browser)).toEqual({ status: 200, body: { districtId: 'dist-a', userId: account.id, sourcedId: student.id, role: 'student', givenName: account.givenName, familyName: account.familyName, products: ['MATHAPP'], via: 'clever' } });
    expect(await lastAudit()).toMatchObject({ district_id: 'dist-a', action: 'sign-in', entity_key: student.id });

    // A forged or altered cookie is no session.
    const forged = new Browser();
    forged.setCookie(publicUrl, 'rostersync_session', browser.cookie(publicUrl, 'rostersync_session')!.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A')));
    expect((await me(forged)).status).toBe(401);

    const out = await browser.request(`${publicUrl}/sso/logout`, { method: 'POST' });
    expect(out.status).toBe(204);
    expect((await me(browser)).status).toBe(401);
  });

  it('accepts a Clever Portal / Instant Login launch (code, no state) for a configured tenant; the same code twice is refused', async () => {
    const student = studentsOf(rosterB)[1]!;
    clever.loginAs({ sub: student.id, claims: cleverClaims(rosterB, 'tenant-b', student.id) });
    const browser = new Browser();
    const portal = `${clever.url}/oauth/authorize?${new URLSearchParams({ client_id: CLEVER_APP.clientId, redirect_uri: `${publicUrl}/sso/clever/callback`, response_type: 'code', scope: 'openid' })}`;
    const { stoppedAt } = await browser.follow(portal, { stopBefore: isCallback });
    expect(new URL(stoppedAt!).searchParams.get('state')).toBeNull();
    const first = await browser.request(stoppedAt!);
    expect([first.status, first.location]).toEqual([302, appUrl]);
    expect((await me(browser)).body).toMatchObject({ districtId: 'dist-b', sourcedId: student.id, via: 'clever' });

    const before = await kept();
    const replay = await new Browser().request(stoppedAt!);
    expectRefusal(replay, 'invalid_token', 401);
    expect(await kept()).toEqual(before);
  });
});

describe('ClassLink', () => {
  it('signs a rostered student in: client_secret_post, /v2/my/info SourcedId + TenantId', async () => {
    const student = studentsOf(rosterC)[2]!;
    classlink.loginAs({ sub: 'cl-user-77', claims: { info: { UserId: 77, TenantId: 4242, SourcedId: student.id, FirstName: student.first, LastName: student.last, Role: 'Student' } } });
    const browser = new Browser();
    const { last } = await signIn(browser, `${publicUrl}/sso/classlink/login?district=dist-c`);
    expect([last.status, last.location]).toEqual([302, appUrl]);
    expect(classlink.tokenAuth.at(-1)).toBe('post');
    expect(myInfo.requestsTo('/v2/my/info').at(-1)?.status).toBe(200);
    expect((await me(browser)).body).toMatchObject({ districtId: 'dist-c', sourcedId: student.id, via: 'classlink', products: ['MATHAPP'] });
  });

  it('refuses a ClassLink identity of another tenant (wrong_district)', async () => {
    const student = studentsOf(rosterC)[3]!;
    classlink.loginAs({ sub: 'cl-user-78', claims: { info: { TenantId: 999, SourcedId: student.id } } });
    const before = await kept();
    const { last } = await new Browser().follow(`${publicUrl}/sso/classlink/login?district=dist-c`);
    expectRefusal(last, 'wrong_district', 403);
    expect(await kept()).toEqual(before);
  });
});

describe('refusals leave no session and change no account', () => {
  const studentA = () => studentsOf(rosterA)[4]!;
  const loginA = (claims: Record<string, unknown> = {}, sub = studentA().id) =>
    clever.loginAs({ sub, claims: { ...cleverClaims(rosterA, 'tenant-a', studentA().id), ...claims } });

  async function refused(run: () => Promise<Hop>, code: string, status: number) {
    const before = await kept();
    const hop = await run();
    expectRefusal(hop, code, status);
    expect(await kept()).toEqual(before);
    expect(await lastAudit()).toMatchObject({ action: `refused:${code}` });
  }
  const startA = async (browser = new Browser()) => (await browser.follow(`${publicUrl}/sso/clever/login?district=dist-a`)).last;

  const TOKENS: [string, Tamper][] = [
    ['wrong aud', { mode: 'provider-key', claims: (p) => ({ ...p, aud: 'someone-else' }) }],
    ['wrong iss', { mode: 'provider-key', claims: (p) => ({ ...p, iss: 'https://clever.example.invalid' }) }],
    ['expired', { mode: 'provider-key', claims: (p) => ({ ...p, iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }) }],
    ['nonce mismatch', { mode: 'provider-key', claims: (p) => ({ ...p, nonce: 'not-the-nonce-we-sent' }) }],
    ['forged signature', { mode: 'foreign-key' }],
    ['alg none', { mode: 'alg-none' }],
    ['forged signature claiming another district', { mode: 'foreign-key', claims: (p) => ({ ...p, district: 'tenant-b' }) }],
  ];
  it.each(TOKENS)('invalid_token: %s', async (_label, tamper) => {
    loginA();
    clever.tamperNextIdToken(tamper);
    await refused(() => startA(), 'invalid_token', 401);
  });

  it('a refused sign-in also ends the session this browser already had (a shared classroom device)', async () => {
    const browser = new Browser();
    loginA();
    await startA(browser);
    expect((await me(browser)).status).toBe(200);
    const earlier = browser.cookie(publicUrl, 'rostersync_session')!;
    // The next person at the same device is refused …
    loginA();
    clever.tamperNextIdToken({ mode: 'foreign-key' });
    const hop = await startA(browser);
    expectRefusal(hop, 'invalid_token', 401);
    expect(hop.setCookies.some((c) => c.startsWith('rostersync_session=') && /Max-Age=0/.test(c))).toBe(true);
    // … and does not find the previous person signed in, even with the old cookie replayed.
    expect((await me(browser)).status).toBe(401);
    const replay = new Browser();
    replay.setCookie(publicUrl, 'rostersync_session', earlier);
    expect((await me(replay)).status).toBe(401);
  });

  it('provider_error: the provider redirects back with error=', async () => {
    clever.loginAs(undefined);
    await refused(() => startA(), 'provider_error', 403);
  });

  it('invalid_state: missing, unknown, reused, expired, another browser', async () => {
    await refused(() => new Browser().request(`${publicUrl}/sso/clever/callback`), 'invalid_state', 400);
    await refused(() => new Browser().request(`${publicUrl}/sso/clever/callback?code=abc&state=never-issued`), 'invalid_state', 400);

    loginA();
    const browser = new Browser();
    const { stoppedAt } = await browser.follow(`${publicUrl}/sso/clever/login?district=dist-a`, { stopBefore: isCallback });
    await refused(() => new Browser().request(stoppedAt!), 'invalid_state', 400); // not this browser (and now used)
    await refused(() => browser.request(stoppedAt!), 'invalid_state', 400); // used

    loginA();
    const late = new Browser();
    const second = await late.follow(`${publicUrl}/sso/clever/login?district=dist-a`, { stopBefore: isCallback });
    await t.ctx.db.updateTable('sso_states').set({ expires_at: new Date(Date.now() - 1000) }).execute();
    await refused(() => late.request(second.stoppedAt!), 'invalid_state', 400);
  });

  it('not_rostered: a user of the tenant the roster does not have', async () => {
    loginA({}, 'ffffffffffffffffffffffff');
    await refused(() => startA(), 'not_rostered', 403);
  });

  it('account_deleted: a student who left the roster, even with --jit', async () => {
    const gone = studentsOf(rosterA)[5]!;
    await removeStudent(t.ctx, 'dist-a', gone.id);
    const box = SecretBox.fromConfig(t.ctx.config);
    await setProvider(t.ctx.db, box, { districtId: 'dist-a', provider: 'clever', ...CLEVER_APP, issuer: clever.url, tenant: 'tenant-a', jit: true });
    try {
      clever.loginAs({ sub: gone.id, claims: cleverClaims(rosterA, 'tenant-a', gone.id) });
      await refused(() => startA(), 'account_deleted', 403);
    } finally {
      await setProvider(t.ctx.db, box, { districtId: 'dist-a', provider: 'clever', ...CLEVER_APP, issuer: clever.url, tenant: 'tenant-a', jit: false });
    }
  });

  it('tenant isolation: two districts on one app, a token of district A never reaches district B', async () => {
    const a = studentsOf(rosterA)[6]!;
    // Started for B with A's identity.
    clever.loginAs({ sub: a.id, claims: cleverClaims(rosterA, 'tenant-a', a.id) });
    await refused(async () => (await new Browser().follow(`${publicUrl}/sso/clever/login?district=dist-b`)).last, 'wrong_district', 403);
    // An account id of A presented as B's identity: looked up in B only.
    clever.loginAs({ sub: a.id, claims: cleverClaims(rosterA, 'tenant-b', a.id) });
    const portal = `${clever.url}/oauth/authorize?${new URLSearchParams({ client_id: CLEVER_APP.clientId, redirect_uri: `${publicUrl}/sso/clever/callback`, response_type: 'code', scope: 'openid' })}`;
    await refused(async () => (await new Browser().follow(portal)).last, 'not_rostered', 403);
    expect((await lastAudit()).district_id).toBe('dist-b');
    // A portal launch for a tenant no district has.
    clever.loginAs({ sub: a.id, claims: cleverClaims(rosterA, 'tenant-zzz', a.id) });
    await refused(async () => (await new Browser().follow(portal)).last, 'unknown_tenant', 403);
  });
});

describe('sessions follow the roster', () => {
  it('a student who leaves the roster mid-session is refused by /sso/me at once', async () => {
    const student = studentsOf(rosterA)[7]!;
    clever.loginAs({ sub: student.id, claims: cleverClaims(rosterA, 'tenant-a', student.id) });
    const browser = new Browser();
    expect((await signIn(browser, `${publicUrl}/sso/clever/login?district=dist-a`)).last.location).toBe(appUrl);
    expect((await me(browser)).status).toBe(200);
    await removeStudent(t.ctx, 'dist-a', student.id);
    expect(await me(browser)).toMatchObject({ status: 401, body: { error: 'account_inactive' } });
  });

  it('state and sessions are shared by every serve process (Postgres), so a load balancer may switch between them', async () => {
    const other = await openContext({ config: t.ctx.config, logger: t.ctx.logger });
    const second = await startHttpServer(other, 0);
    try {
      const student = studentsOf(rosterA)[8]!;
      clever.loginAs({ sub: student.id, claims: cleverClaims(rosterA, 'tenant-a', student.id) });
      const browser = new Browser();
      const { stoppedAt } = await browser.follow(`${publicUrl}/sso/clever/login?district=dist-a`, { stopBefore: isCallback });
      // The callback lands on the other process, with the browser's cookies.
      const onSecond = stoppedAt!.replace(publicUrl, second.url);
      browser.setCookie(second.url, 'rostersync_oidc', browser.cookie(publicUrl, 'rostersync_oidc'));
      const done = await browser.request(onSecond);
      expect([done.status, done.location]).toEqual([302, appUrl]);
      const session = browser.cookie(second.url, 'rostersync_session')!;
      browser.setCookie(publicUrl, 'rostersync_session', session);
      expect((await me(browser)).body).toMatchObject({ districtId: 'dist-a', sourcedId: student.id });
    } finally {
      await second.close();
      await other.close();
    }
  });

  it('serve refuses to start without SESSION_SECRET', () => {
    expect(() => createSsoHandler({ ...t.ctx, config: { ...t.ctx.config, SESSION_SECRET: undefined } })).toThrow(/SESSION_SECRET must be set/);
  });
});

/**
 * The generator's roster as a complete snapshot, reconciled and applied as a
 * sync's apply step does (the worker path is covered by the sync suites).
 */
async function applyCompleteSnapshot(districtId: string, provider: string, rostered: string[]) {
  await t.ctx.db.transaction().execute(async (trx) => {
    const local = await loadLocalState(trx, districtId);
    const users = new Map(rostered.map((id) => [id, local.users.get(id)!.record]));
    const snapshot: Snapshot = {
      complete: true, users, quarantined: [],
      orgs: new Map([...local.orgs].map(([k, v]) => [k, v.record])), academicSessions: new Map([...local.academicSessions].map(([k, v]) => [k, v.record])),
      courses: new Map([...local.courses].map(([k, v]) => [k, v.record])), classes: new Map([...local.classes].map(([k, v]) => [k, v.record])),
      enrollments: new Map(local.enrollments),
    };
    const plan = await planSmallChange(trx, { districtId, provider }, snapshot, { asOf: new Date().toISOString().slice(0, 10) });
    const run = await trx.insertInto('sync_runs').values({ district_id: districtId, trigger: 'cli', status: 'SUCCEEDED', dry_run: false, full_snapshot: true, counts: JSON.stringify(plan.counts) }).returning('id').executeTakeFirstOrThrow();
    await applyPlan(trx, { districtId, provider, runId: run.id });
  });
}

describe('--jit', () => {
  it('gives an unrostered user of the tenant an ACTIVE account with seats by the license rules; a later complete snapshot treats them as a leaver', async () => {
    const box = SecretBox.fromConfig(t.ctx.config);
    await setProvider(t.ctx.db, box, { districtId: 'dist-b', provider: 'clever', ...CLEVER_APP, issuer: clever.url, tenant: 'tenant-b', jit: true });
    const newcomer = 'eeeeeeeeeeeeeeeeeeeeee01';
    clever.loginAs({ sub: newcomer, claims: { district: 'tenant-b', user_type: 'student', given_name: 'Nia', family_name: 'New', email: 'nia@example.org' } });
    const browser = new Browser();
    expect((await signIn(browser, `${publicUrl}/sso/clever/login?district=dist-b`)).last.location).toBe(appUrl);
    const created = (await listUsers(t.ctx.db, 'dist-b')).find((u) => u.sourcedId === newcomer)!;
    expect(created).toMatchObject({ status: 'ACTIVE', role: 'student', givenName: 'Nia', products: ['MATHAPP'] });
    expect((await me(browser)).body).toMatchObject({ userId: created.id, products: ['MATHAPP'] });
    // No other district saw anything.
    expect((await t.ctx.db.selectFrom('users').select('district_id').where('sourced_id', '=', newcomer).execute()).map((r) => r.district_id)).toEqual(['dist-b']);

    await applyCompleteSnapshot('dist-b', 'clever', studentsOf(rosterB).map((p) => p.id));
    const after = (await listUsers(t.ctx.db, 'dist-b')).find((u) => u.sourcedId === newcomer)!;
    expect(after).toMatchObject({ id: created.id, status: 'DELETED', products: [] });
    expect((await me(browser)).status).toBe(401);
  });
});
