import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { LtiTestPlatform, ROLE, type LaunchSpec, type PlatformUser } from '../fixtures/lti/platform.js';
import { upsertDistrict } from '../src/districts/repository.js';
import type { DistrictSettings } from '../src/districts/settings.js';
import { startHttpServer } from '../src/http/server.js';
import { LtiStoreError, startLtijs, stopLtijs } from '../src/lti/ltijs.js';
import { createLogger } from '../src/logger.js';
import { runCli } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { LtiBrowser, type Hop } from './helpers/lti.js';
import { freePort } from './helpers/net.js';

const CANVAS_ISS = 'https://canvas.instructure.com';
const SCHOOLOGY_ISS = 'https://schoology.schoology.com';
const CANVAS_CLIENT = '10000000000042';
const SCHOOLOGY_CLIENT = '7312894471';

let t: TestEnv;
let publicUrl: string;
let appUrl: string;
let server: { url: string; close(): Promise<void> };
let canvas: LtiTestPlatform;
let schoology: LtiTestPlatform;


interface Account { sourcedId: string; sisId: string; status?: 'ACTIVE' | 'DELETED'; given: string; family: string }

/** Accounts as a sync would have left them (sourcedIds in each provider's own id space). */
async function addDistrict(id: string, provider: 'canvas' | 'schoology' | 'clever', accounts: Account[]) {
  const settings: DistrictSettings = provider === 'canvas'
    ? { provider, baseUrl: 'http://127.0.0.1:9/api/v1', credentials: { token: 'unused' }, accountId: 'self' }
    : provider === 'schoology'
      ? { provider, baseUrl: 'http://127.0.0.1:9/v1', credentials: { consumerKey: 'unused', consumerSecret: 'unused' }, signatureMethod: 'HMAC-SHA1' }
      : { provider, baseUrl: 'http://127.0.0.1:9/unused', credentials: { token: 'unused' } };
  await upsertDistrict(t.ctx.db, { id, schedule: null, settings });
  await t.ctx.db.insertInto('users').values(accounts.map((a) => ({
    district_id: id, provider, sourced_id: a.sourcedId, role: 'student', given_name: a.given, family_name: a.family, email: null,
    username: null, sis_id: a.sisId, grades: ['7'], school_sourced_ids: [], status: a.status ?? 'ACTIVE', deleted_at: a.status === 'DELETED' ? new Date() : null,
  }))).execute();
}

const CANVAS_A: Account[] = [
  { sourcedId: '1001', sisId: 'S-A-1', given: 'Ada', family: 'Lovelace' },
  { sourcedId: '1002', sisId: 'S-A-2', given: 'Alan', family: 'Turing' },
  { sourcedId: '1003', sisId: 'S-A-3', given: 'Grace', family: 'Hopper', status: 'DELETED' },
];
const CANVAS_B: Account[] = [{ sourcedId: '2001', sisId: 'S-B-1', given: 'Edsger', family: 'Dijkstra' }];
const SCHOOLOGY_S: Account[] = [{ sourcedId: '58839201', sisId: 'S-S-1', given: 'Barbara', family: 'Liskov' }];
const CLEVER_C: Account[] = [{ sourcedId: '5f1a0c9e2b7d4e0012a3b4c5', sisId: 'SIS-C-77', given: 'Katherine', family: 'Johnson' }];

beforeAll(async () => {
  const port = await freePort();
  publicUrl = `http://127.0.0.1:${port}`;
  appUrl = `${publicUrl}/app/home`;
  t = await createTestEnv({ PUBLIC_URL: publicUrl, APP_URL: appUrl, ADMIN_TOKEN: randomBytes(32).toString('base64'), SESSION_SECRET: randomBytes(32).toString('base64') });
  await addDistrict('canvas-a', 'canvas', CANVAS_A);
  await addDistrict('canvas-b', 'canvas', CANVAS_B);
  await addDistrict('school-s', 'schoology', SCHOOLOGY_S);
  await addDistrict('clever-c', 'clever', CLEVER_C);
  canvas = new LtiTestPlatform('canvas', CANVAS_ISS, CANVAS_CLIENT, `${publicUrl}/lti/launch`);
  schoology = new LtiTestPlatform('schoology', SCHOOLOGY_ISS, SCHOOLOGY_CLIENT, `${publicUrl}/lti/launch`);
  await Promise.all([canvas.start(), schoology.start()]);
  canvas.toolJwksUrl = schoology.toolJwksUrl = `${publicUrl}/lti/keys`;
  server = await startHttpServer(t.ctx, port);
});

afterAll(async () => {
  await server?.close();
  await Promise.all([canvas?.stop(), schoology?.stop()]);
  await t.close();
});

const endpoints = (p: LtiTestPlatform) => ['--auth-url', p.authUrl, '--token-url', p.tokenUrl, '--jwks-url', p.jwksUrl];
const canvasUser = (a: Account, extra: Partial<PlatformUser> = {}): PlatformUser => ({
  sub: randomUUID(), givenName: a.given, familyName: a.family, sisId: a.sisId, custom: { canvas_user_id: a.sourcedId }, roles: [ROLE.learner, ROLE.student], ...extra,
});
const loginUrl = () => `${publicUrl}/lti/login`;

/** Everything a refused launch must leave alone. */
async function kept() {
  const users = await t.ctx.db.selectFrom('users').select(['id', 'district_id', 'sourced_id', 'status', 'updated_at']).orderBy('id').execute();
  const count = async (table: 'sso_sessions' | 'lti_launches') => (await t.ctx.db.selectFrom(table).select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n;
  const ltijsRows = await sql<{ n: number }>`SELECT (SELECT count(*) FROM idtokens)::int + (SELECT count(*) FROM contexttokens)::int AS n`.execute(t.ctx.db);
  return { users, sessions: await count('sso_sessions'), launches: await count('lti_launches'), ltijsLaunchCopies: ltijsRows.rows[0]!.n };
}

async function lastAudit() {
  const row = await t.ctx.db.selectFrom('audit_log').selectAll().where('entity', '=', 'sso').orderBy('id', 'desc').executeTakeFirstOrThrow();
  return { ...row, detail: (typeof row.detail === 'string' ? JSON.parse(row.detail) : row.detail) as Record<string, unknown> };
}

function expectRefusal(hop: Hop, code: string, status: number) {
  const body = JSON.parse(hop.body) as { error: string; message: string };
  expect({ status: hop.status, error: body.error }).toEqual({ status, error: code });
  expect(body.message.length).toBeGreaterThan(20);
  // No session is set; at most the browser's earlier one is cleared.
  expect(hop.setCookies.some((c) => c.startsWith('rostersync_session=') && !/Max-Age=0/.test(c))).toBe(false);
}

/** A refused launch: the refusal, its audit row, and nothing created or changed. */
async function expectRefused(run: () => Promise<Hop>, code: string, status: number, auditReason?: RegExp) {
  const before = await kept();
  const hop = await run();
  expectRefusal(hop, code, status);
  const audit = await lastAudit();
  expect(audit.action).toBe(`refused:${code}`);
  expect(audit.detail.provider).toBe('lti');
  if (auditReason) expect(String(audit.detail.reason)).toMatch(auditReason);
  expect(await kept()).toEqual(before);
  return hop;
}

async function me(browser: LtiBrowser) {
  const hop = await browser.request(`${publicUrl}/sso/me`);
  return { status: hop.status, body: JSON.parse(hop.body) as Record<string, unknown> };
}

const spec = (deploymentId: string, user: PlatformUser, extra: Partial<LaunchSpec> = {}): LaunchSpec => ({ deploymentId, user, context: { id: 'course-501', title: 'Grade 7 Reading' }, ...extra });

describe('lti add-platform / lti list', () => {
  it('registers Canvas with the documented issuer, prints the URLs for the LMS admin, and defaults --match to custom:canvas_user_id', async () => {
    const r = await runCli(t.env, ['lti', 'add-platform', 'canvas-a', '--platform', 'canvas', '--client-id', CANVAS_CLIENT, '--deployment-id', 'dep-a', ...endpoints(canvas), '--json']);
    expect(r.code).toBe(0);
    expect(r.json).toEqual({
      districtId: 'canvas-a', platform: 'canvas', issuer: CANVAS_ISS, clientId: CANVAS_CLIENT, deploymentIds: ['dep-a'],
      authUrl: canvas.authUrl, tokenUrl: canvas.tokenUrl, jwksUrl: canvas.jwksUrl, match: 'custom:canvas_user_id',
      loginUrl: `${publicUrl}/lti/login`, launchUrl: `${publicUrl}/lti/launch`, keysUrl: `${publicUrl}/lti/keys`,
    });
    // Migration chatter from ltijs' store went to pino (stderr), not into the JSON on stdout.
    expect(r.stdout.trim().startsWith('{')).toBe(true);
  });

  it('shares the registration between districts (deployments), with --match sis for a district rostered elsewhere; Schoology defaults to custom:schoology_uid; no endpoint flags give the documented Canvas endpoints', async () => {
    const [b, c, s, d] = await Promise.all([
      runCli(t.env, ['lti', 'add-platform', 'canvas-b', '--platform', 'canvas', '--client-id', CANVAS_CLIENT, '--deployment-id', 'dep-b', ...endpoints(canvas), '--json']),
      runCli(t.env, ['lti', 'add-platform', 'clever-c', '--platform', 'canvas', '--client-id', CANVAS_CLIENT, '--deployment-id', 'dep-c', ...endpoints(canvas), '--json']),
      runCli(t.env, ['lti', 'add-platform', 'school-s', '--platform', 'schoology', '--client-id', SCHOOLOGY_CLIENT, '--deployment-id', 'dep-s', '--deployment-id', 'dep-s2', ...endpoints(schoology), '--json']),
      // No endpoint flags: the documented Canvas ones.
      runCli(t.env, ['lti', 'add-platform', 'canvas-b', '--platform', 'canvas', '--client-id', '10000000000099', '--deployment-id', 'dep-defaults', '--json']),
    ]);
    expect(d.json).toMatchObject({
      issuer: 'https://canvas.instructure.com', authUrl: 'https://sso.canvaslms.com/api/lti/authorize_redirect',
      tokenUrl: 'https://sso.canvaslms.com/login/oauth2/token', jwksUrl: 'https://sso.canvaslms.com/api/lti/security/jwks',
    });
    for (const r of [b, c, s, d]) expect({ code: r.code, stderr: r.code ? r.stderr : '' }).toEqual({ code: 0, stderr: '' });
    expect(c.json).toMatchObject({ districtId: 'clever-c', match: 'sis', deploymentIds: ['dep-c'] });
    expect(s.json).toMatchObject({ platform: 'schoology', issuer: SCHOOLOGY_ISS, match: 'custom:schoology_uid', deploymentIds: ['dep-s', 'dep-s2'] });
    const regs = await t.ctx.db.selectFrom('lti_registrations').select(['issuer', 'client_id']).orderBy('issuer').orderBy('client_id').execute();
    expect(regs).toEqual([{ issuer: CANVAS_ISS, client_id: CANVAS_CLIENT }, { issuer: CANVAS_ISS, client_id: '10000000000099' }, { issuer: SCHOOLOGY_ISS, client_id: SCHOOLOGY_CLIENT }]);
  });

  it('refuses binding one deployment to two districts, and a custom-id match for a district the platform does not roster; nothing changes', async () => {
    const before = await t.ctx.db.selectFrom('lti_deployments').selectAll().orderBy('deployment_id').execute();
    const [taken, custom] = await Promise.all([
      runCli(t.env, ['lti', 'add-platform', 'canvas-b', '--platform', 'canvas', '--client-id', CANVAS_CLIENT, '--deployment-id', 'dep-a', ...endpoints(canvas), '--json']),
      runCli(t.env, ['lti', 'add-platform', 'clever-c', '--platform', 'canvas', '--client-id', CANVAS_CLIENT, '--deployment-id', 'dep-c', '--match', 'custom:canvas_user_id', '--json']),
    ]);
    expect(taken.code).toBe(2);
    expect((taken.json as { error: string }).error).toMatch(/deployment 'dep-a' already belongs to district 'canvas-a'/);
    expect(custom.code).toBe(2);
    expect((custom.json as { error: string }).error).toMatch(/rostered by clever.*--match sis/);
    expect(await t.ctx.db.selectFrom('lti_deployments').selectAll().orderBy('deployment_id').execute()).toEqual(before);
  });

  it('lti list shows each district\'s deployments', async () => {
    const r = await runCli(t.env, ['lti', 'list', 'school-s', '--json']);
    expect(r.code).toBe(0);
    expect(r.json).toEqual([expect.objectContaining({ districtId: 'school-s', platform: 'schoology', deploymentIds: ['dep-s', 'dep-s2'], match: 'custom:schoology_uid' })]);
  });

  it('ltijs keeps its tables in public under names that do not clash with the project\'s, and /lti/keys serves the public keys only', async () => {
    const tables = await sql<{ table_name: string }>`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`.execute(t.ctx.db);
    const names = tables.rows.map((r) => r.table_name);
    expect(names).toEqual(expect.arrayContaining(['platforms', 'publickeys', 'privatekeys', 'nonces', 'states', 'idtokens', 'contexttokens', 'accesstokens', 'platformStatuses', 'users', 'classes', 'lti_deployments']));
    const keys = await fetch(`${publicUrl}/lti/keys`);
    const body = await keys.json() as { keys: Record<string, unknown>[] };
    expect(keys.status).toBe(200);
    expect(body.keys).toHaveLength(3); // one key pair per registration
    for (const k of body.keys) expect({ kty: k.kty, alg: k.alg, use: k.use, d: k.d, p: k.p }).toEqual({ kty: 'RSA', alg: 'RS256', use: 'sig', d: undefined, p: undefined });
  });
});

describe('launches', () => {
  it('Canvas: login initiation → auth request → form_post signs in the account whose sourcedId is $Canvas.user.id, with an iframe-ready session', async () => {
    const browser = new LtiBrowser();
    const user = canvasUser(CANVAS_A[0]!);
    const { hops, last } = await browser.launch(canvas.loginInitiation(loginUrl(), spec('dep-a', user, { nrps: true })));
    expect(hops[0]!.status).toBe(302);
    expect(hops[0]!.location!.startsWith(canvas.authUrl)).toBe(true);
    expect({ status: last.status, location: last.location }).toEqual({ status: 302, location: appUrl });
    const session = last.setCookies.find((c) => c.startsWith('rostersync_session='))!;
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=None/);
    expect(session).toMatch(/; Secure/);
    const who = await me(browser);
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ districtId: 'canvas-a', sourcedId: '1001', via: 'lti', givenName: 'Ada' });
    const launch = await t.ctx.db.selectFrom('lti_launches').selectAll().orderBy('id', 'desc').executeTakeFirstOrThrow();
    expect(launch).toMatchObject({ district_id: 'canvas-a', subject: user.sub, context_id: 'course-501', context_title: 'Grade 7 Reading', deployment_id: 'dep-a', roles: [ROLE.learner, ROLE.student], nrps_url: canvas.nrpsUrl('course-501') });
    expect((await lastAudit()).action).toBe('sign-in');
    // ltijs' own copies of the launch (names, emails) are not kept.
    expect((await kept()).ltijsLaunchCopies).toBe(0);
  });

  it('Schoology: aud is an array, no azp; the account whose sourcedId is $User.id signs in (a deployment sent only in the token)', async () => {
    const browser = new LtiBrowser();
    const a = SCHOOLOGY_S[0]!;
    const user: PlatformUser = { sub: `sch-${randomBytes(6).toString('hex')}`, givenName: a.given, familyName: a.family, custom: { schoology_uid: a.sourcedId }, roles: [ROLE.learner] };
    const login = schoology.loginInitiation(loginUrl(), spec('dep-s2', user));
    expect(new URL(login).searchParams.has('lti_deployment_id')).toBe(false);
    const { last, form } = await browser.launch(login);
    const claims = JSON.parse(Buffer.from(form!.fields.id_token!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect({ aud: claims.aud, azp: claims.azp }).toEqual({ aud: [SCHOOLOGY_CLIENT], azp: undefined });
    expect({ status: last.status, location: last.location }).toEqual({ status: 302, location: appUrl });
    expect((await me(browser)).body).toMatchObject({ districtId: 'school-s', sourcedId: a.sourcedId, via: 'lti' });
  });

  it('sis: a Clever-rostered district launched from Canvas matches lis.person_sourcedid to the account\'s SIS id', async () => {
    const browser = new LtiBrowser();
    const a = CLEVER_C[0]!;
    const user: PlatformUser = { sub: randomUUID(), givenName: a.given, familyName: a.family, sisId: a.sisId, custom: { canvas_user_id: '1001' }, roles: [ROLE.learner] };
    const { last } = await browser.launch(canvas.loginInitiation(loginUrl(), spec('dep-c', user)));
    expect(last.status).toBe(302);
    // canvas_user_id 1001 is someone in canvas-a: never looked at for a sis district.
    expect((await me(browser)).body).toMatchObject({ districtId: 'clever-c', sourcedId: a.sourcedId, via: 'lti' });
  });

  it('a login initiation POSTed as a form (as Canvas may send it) works the same', async () => {
    const browser = new LtiBrowser();
    const login = new URL(canvas.loginInitiation(loginUrl(), spec('dep-b', canvasUser(CANVAS_B[0]!))));
    const first = await browser.request(`${login.origin}${login.pathname}`, { method: 'POST', form: Object.fromEntries(login.searchParams) });
    expect(first.status).toBe(302);
    const { form } = await browser.toForm(first.location!);
    const last = await browser.post(form!);
    expect({ status: last.status, location: last.location }).toEqual({ status: 302, location: appUrl });
    expect((await me(browser)).body).toMatchObject({ districtId: 'canvas-b', sourcedId: '2001', via: 'lti' });
  });

  it('lti roster <district> <contextId> gets the membership over NRPS with the tool\'s client-credentials token, tied to rostered accounts', async () => {
    const ada = await t.ctx.db.selectFrom('lti_launches').select('subject').where('district_id', '=', 'canvas-a').orderBy('id').executeTakeFirstOrThrow();
    canvas.memberships.set('course-501', [
      { user_id: ada.subject, name: 'Ada Lovelace', lis_person_sourcedid: 'S-A-1', roles: [ROLE.learner], status: 'Active' },
      { user_id: randomUUID(), name: 'Alan Turing', lis_person_sourcedid: 'S-A-2', roles: [ROLE.learner] },
      { user_id: randomUUID(), name: 'Visiting Teacher', roles: [ROLE.instructor] },
    ]);
    const [r, none] = await Promise.all([runCli(t.env, ['lti', 'roster', 'canvas-a', 'course-501', '--json']), runCli(t.env, ['lti', 'roster', 'canvas-a', 'course-nope', '--json'])]);
    expect({ code: r.code, stderr: r.code ? r.stderr : '' }).toEqual({ code: 0, stderr: '' });
    const out = r.json as { contextId: string; members: { name: string; sourcedId: string | null }[] };
    expect(out.contextId).toBe('course-501');
    expect(out.members.map((m) => [m.name, m.sourcedId])).toEqual([['Ada Lovelace', '1001'], ['Alan Turing', '1002'], ['Visiting Teacher', null]]);
    expect(canvas.tokenRequests).toEqual([{ ok: true }]);
    expect(none.code).toBe(1);
    expect((none.json as { error: string }).error).toMatch(/no launch of context 'course-nope'/);
  });
});

describe('refused launches: the code, an audit row, no session, nothing created or changed', () => {
  const ada = () => canvasUser(CANVAS_A[0]!);
  const launchWith = (s: LaunchSpec, p: LtiTestPlatform = canvas, opts?: { issuer?: string; clientId?: string }) => async () => (await new LtiBrowser().launch(p.loginInitiation(loginUrl(), s, opts))).last;

  it('forged signature', () => expectRefused(launchWith(spec('dep-a', ada(), { tamper: { forgeSignature: true } })), 'invalid_token', 401, /invalid signature/));
  it('wrong aud', () => expectRefused(launchWith(spec('dep-a', ada(), { tamper: { aud: 'someone-elses-client' } })), 'invalid_token', 401, /UNREGISTERED_PLATFORM/));
  it('an iss other than the login\'s', () => expectRefused(launchWith(spec('dep-a', ada(), { tamper: { iss: 'https://evil.example' } })), 'invalid_token', 401, /ISS_CLAIM_DOES_NOT_MATCH/));
  it('unknown issuer at login', () => expectRefused(launchWith(spec('dep-a', ada()), canvas, { issuer: 'https://lms.unknown.example' }), 'unknown_platform', 400));
  it('unknown client id at login', () => expectRefused(launchWith(spec('dep-a', ada()), canvas, { clientId: '999' }), 'unknown_platform', 400));
  it('unregistered deployment named at login', () => expectRefused(launchWith(spec('dep-zzz', ada())), 'unknown_deployment', 403));
  it('unregistered deployment named in a POSTed login initiation', () => expectRefused(async () => {
    const login = new URL(canvas.loginInitiation(loginUrl(), spec('dep-zzz', ada())));
    return new LtiBrowser().request(`${login.origin}${login.pathname}`, { method: 'POST', form: Object.fromEntries(login.searchParams) });
  }, 'unknown_deployment', 403));
  it('unregistered deployment in the id_token (ltijs does not check it; we do)', () => expectRefused(
    launchWith(spec('dep-s', { sub: 'sch-x', givenName: 'B', familyName: 'L', custom: { schoology_uid: SCHOOLOGY_S[0]!.sourcedId }, roles: [ROLE.learner] }, { tamper: { deploymentId: 'dep-other' } }), schoology),
    'unknown_deployment', 403));
  it('expired token', () => expectRefused(launchWith(spec('dep-a', ada(), { tamper: { expired: true } })), 'invalid_token', 401, /expired/));
  it('alg: none', () => expectRefused(launchWith(spec('dep-a', ada(), { tamper: { algNone: true } })), 'invalid_token', 401));
  it('DELETED account', () => expectRefused(launchWith(spec('dep-a', canvasUser(CANVAS_A[2]!))), 'account_deleted', 403));
  it('unrostered user', () => expectRefused(launchWith(spec('dep-a', canvasUser({ sourcedId: '424242', sisId: 'S-X', given: 'New', family: 'Kid' }))), 'not_rostered', 403));
  it('no custom parameter (the LMS admin left out canvas_user_id=$Canvas.user.id)', async () => {
    const hop = await expectRefused(launchWith(spec('dep-a', canvasUser(CANVAS_A[0]!, { custom: { canvas_user_id: '$Canvas.user.id' } }))), 'not_rostered', 403);
    expect(hop.body).toMatch(/canvas_user_id=\$Canvas\.user\.id/);
  });
  it('district A\'s deployment naming a district B user', async () => {
    const hop = await expectRefused(launchWith(spec('dep-a', canvasUser(CANVAS_B[0]!))), 'not_rostered', 403);
    expect(hop.body).toMatch(/canvas-a/);
  });

  it('state mismatch: a changed state, or the form posted from another browser', async () => {
    const browser = new LtiBrowser();
    const { form } = await browser.toForm(canvas.loginInitiation(loginUrl(), spec('dep-a', ada())));
    await expectRefused(() => browser.post({ ...form!, fields: { ...form!.fields, state: randomBytes(25).toString('hex') } }), 'invalid_state', 400, /MISSING_VALIDATION_COOKIE/);
    const other = await new LtiBrowser().toForm(canvas.loginInitiation(loginUrl(), spec('dep-a', ada())));
    await expectRefused(() => new LtiBrowser().post(other.form!), 'invalid_state', 400);
  });

  it('replayed id_token and replayed nonce, also after ltijs has forgotten the nonce (10 s)', async () => {
    const browser = new LtiBrowser();
    const { form } = await browser.toForm(canvas.loginInitiation(loginUrl(), spec('dep-a', ada())));
    const jar = browser.cookies(publicUrl);
    expect((await browser.post(form!)).status).toBe(302);
    // The same post again, with the state cookie the browser had.
    browser.restoreCookies(publicUrl, jar);
    await expectRefused(() => browser.post(form!), 'invalid_token', 401, /NONCE_ALREADY_RECEIVED/);
    // ltijs keeps nonces 10 s; ours last as long as the token could pass.
    await sql`DELETE FROM nonces`.execute(t.ctx.db);
    browser.restoreCookies(publicUrl, jar);
    await expectRefused(() => browser.post(form!), 'invalid_token', 401, /nonce replayed/);
    // A fresh token (new state) carrying a used nonce.
    const used = canvas.issued[canvas.issued.length - 1]!.nonce;
    await sql`DELETE FROM nonces`.execute(t.ctx.db);
    await expectRefused(launchWith(spec('dep-a', ada(), { tamper: { nonce: used } })), 'invalid_token', 401, /nonce replayed/);
  });
});

describe('the LTI store', () => {
  it('creates its tables on a fresh database with its migration log in pino, nothing on stdout', async () => {
    const fresh = await createTestEnv();
    const lines: string[] = [];
    const logger = createLogger('debug', new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } }));
    const writes: string[] = [];
    const realWrite = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => { writes.push(String(chunk)); return realWrite(chunk, ...rest); }) as typeof process.stdout.write;
    try {
      const lti = await startLtijs({ db: fresh.ctx.db, databaseUrl: fresh.databaseUrl, sessionSecret: 'y'.repeat(32), logger });
      await stopLtijs(lti);
    } finally {
      process.stdout.write = realWrite;
      await fresh.close();
    }
    expect(writes).toEqual([]);
    expect(lines.some((l) => /00_addAuthorizationServer/.test(l))).toBe(true);
  });

  it('fails with a clear error (never process.exit) when its database cannot be reached', async () => {
    await expect(startLtijs({ db: t.ctx.db, databaseUrl: 'postgres://127.0.0.1:1/nowhere', sessionSecret: 'x'.repeat(32), logger: t.ctx.logger }))
      .rejects.toThrow(LtiStoreError);
    await expect(startLtijs({ db: t.ctx.db, databaseUrl: 'postgres://127.0.0.1:1/nowhere', sessionSecret: 'x'.repeat(32), logger: t.ctx.logger }))
      .rejects.toThrow(/the LTI store .*could not start/);
  });

});

