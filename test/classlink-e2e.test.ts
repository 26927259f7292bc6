import { RosterDistrict } from '../fixtures/district.js';
import { FakeOneRosterServer, type FakeAuth, type OneRosterVersion } from '../fixtures/oneroster/server.js';
import { upsertDistrict } from '../src/districts/repository.js';
import type { DistrictSettings } from '../src/districts/settings.js';
import { listUsers, type UserView } from '../src/queries.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addPool, syncNow } from './helpers/district.js';

const TEST_SECRETS_KEY = Buffer.alloc(32, 7).toString('base64');
let t: TestEnv;
beforeAll(async () => {
  // District credentials are sealed at rest (src/secrets): the test env needs a key.
  process.env.SECRETS_KEY ??= TEST_SECRETS_KEY;
  t = await createTestEnv({ SECRETS_KEY: process.env.SECRETS_KEY });
  t.startWorker();
});
afterAll(async () => {
  await t.close();
});

const byId = (users: UserView[]) => new Map(users.map((u) => [u.sourcedId, u]));
const SPEC = { seed: 77, schools: 2, students: 90, sections: 10, enrollmentsPerStudent: 2 };

const CASES: [string, OneRosterVersion, FakeAuth][] = [
  ['OneRoster 1.1 with OAuth 1.0a', '1.1', { type: 'oauth1', consumerKey: 'ck-demo', consumerSecret: 'cs-demo' }],
  ['OneRoster 1.2 with OAuth 2', '1.2', { type: 'oauth2', clientId: 'client-demo', clientSecret: 'secret-demo', tokenTtlSec: 3600 }],
];

function settingsFor(server: FakeOneRosterServer, overrides: { secret?: string; fullEveryHours?: number; pageSize?: number } = {}): DistrictSettings {
  const auth = server.options.auth;
  const credentials = auth.type === 'oauth1'
    ? { consumerKey: auth.consumerKey, consumerSecret: overrides.secret ?? auth.consumerSecret }
    : { clientId: auth.clientId, clientSecret: overrides.secret ?? auth.clientSecret, tokenUrl: server.tokenUrl };
  return {
    provider: 'classlink', baseUrl: server.baseUrl, credentials, pageSize: overrides.pageSize ?? 40,
    minRetryDelayMs: 10, timeoutMs: 2000, retries: 4, fullSnapshotEveryHours: overrides.fullEveryHours,
  };
}

describe.each(CASES)('%s', (_label, version, auth) => {
  const D = `cl-${version.replace('.', '')}`;
  let server: FakeOneRosterServer;

  beforeAll(async () => {
    // The server caps pages at 25 while the connector asks for 40.
    server = new FakeOneRosterServer(new RosterDistrict(SPEC), { version, auth, maxLimit: 25 });
    await server.start();
    await upsertDistrict(t.ctx.db, { id: D, schedule: null, settings: settingsFor(server) });
    await addPool(t.ctx, D, 'READ', 1000);
  });
  afterAll(() => server.stop());

  const mirrors = async () => {
    const users = byId(await listUsers(t.ctx.db, D, { status: 'ACTIVE' }));
    const d = server.district;
    const listed = [...d.students.values(), ...d.teachers.values()].filter(RosterDistrict.listed);
    expect(new Set(users.keys())).toEqual(new Set(listed.map((p) => p.id)));
    for (const p of d.students.values()) {
      if (!RosterDistrict.listed(p)) continue;
      expect(users.get(p.id)?.classes).toEqual(d.sectionsOf(p.id).filter((s) => !d.enrollmentEnds.has(`${s.id}:${p.id}`)).map((s) => s.id).sort());
    }
  };

  test('first sync is a full snapshot that mirrors the provider, across capped pages', async () => {
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', full: true, deltaSince: null });
    expect(run.counts.usersCreated).toBe(90 + server.district.teachers.size);
    await mirrors();
    // limit=40 asked, 25 served: offsets advance by what came back.
    const userPages = server.requestsTo(`${server.prefix}/users?`);
    expect(userPages.map((r) => new URL(r.path, 'http://x').searchParams.get('offset'))).toEqual(['0', '25', '50', '75']);
  });

  test('the next sync is a delta with nothing to do, and a forced full one agrees', async () => {
    const delta = await syncNow(t.ctx, D);
    expect(delta).toMatchObject({ status: 'SUCCEEDED', full: false });
    expect(delta.deltaSince).not.toBeNull();
    expect(Object.values(delta.counts).every((n) => n === 0)).toBe(true);
    expect(server.requestsTo('filter=dateLastModified').length).toBeGreaterThan(0);
    const full = await syncNow(t.ctx, D, { full: true });
    expect(full).toMatchObject({ status: 'SUCCEEDED', full: true });
    expect(Object.values(full.counts).every((n) => n === 0)).toBe(true);
  });

  test('a student who disappears (reported tobedeleted) leaves in a delta; returning restores the same account', async () => {
    const id = [...server.district.students.keys()][4]!;
    const before = byId(await listUsers(t.ctx.db, D)).get(id)!;
    const removed = server.district.removeStudent(id);
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ full: false, counts: { usersDeleted: 1, enrollmentsEnded: removed.sectionIds.length, seatsReleased: 1 } });
    expect(byId(await listUsers(t.ctx.db, D)).get(id)).toMatchObject({ id: before.id, status: 'DELETED', classes: [], products: [] });

    server.district.restoreStudent(removed.student, removed.sectionIds);
    const joiner = server.district.addStudent();
    const back = await syncNow(t.ctx, D);
    expect(back).toMatchObject({ full: false, counts: {
      usersReactivated: 1, usersCreated: 1, seatsAssigned: 2,
      enrollmentsAdded: removed.sectionIds.length + server.district.sectionsOf(joiner.id).length,
    } });
    expect(byId(await listUsers(t.ctx.db, D)).get(joiner.id)).toMatchObject({ status: 'ACTIVE', products: ['READ'] });
    expect(byId(await listUsers(t.ctx.db, D)).get(id)).toMatchObject({ id: before.id, status: 'ACTIVE', products: ['READ'] });
    await mirrors();
  });

  test('status tobedeleted, enabledUser false and an enrollment ended in the past follow the same rules', async () => {
    const [flagged, disabled, ended] = [...server.district.students.keys()].slice(10, 13) as [string, string, string];
    server.district.markToBeDeleted(flagged);
    server.district.setEnabled(disabled, false);
    const section = server.district.sectionsOf(ended)[0]!;
    server.district.endEnrollment(section.id, ended, '2026-06-30');
    const run = await syncNow(t.ctx, D);
    expect(run.counts).toMatchObject({ usersDeleted: 2, seatsReleased: 2 });
    const users = byId(await listUsers(t.ctx.db, D));
    expect(users.get(flagged)).toMatchObject({ status: 'DELETED', classes: [], products: [] });
    expect(users.get(disabled)).toMatchObject({ status: 'DELETED', classes: [], products: [] });
    expect(users.get(ended)).toMatchObject({ status: 'ACTIVE', products: ['READ'] });
    expect(users.get(ended)!.classes).not.toContain(section.id);
    await mirrors();
  });

  test('a deletion the server never reports is missed by deltas and found by the next full snapshot', async () => {
    const server = new FakeOneRosterServer(new RosterDistrict({ ...SPEC, seed: 78 }), { version, auth, reportDeletions: false });
    await server.start();
    try {
      await upsertDistrict(t.ctx.db, { id: `${D}-silent`, schedule: null, settings: settingsFor(server) });
      expect((await syncNow(t.ctx, `${D}-silent`)).full).toBe(true);
      const id = [...server.district.students.keys()][0]!;
      server.district.removeStudent(id);
      const delta = await syncNow(t.ctx, `${D}-silent`);
      expect(delta).toMatchObject({ full: false, counts: { usersDeleted: 0 } });
      expect(byId(await listUsers(t.ctx.db, `${D}-silent`)).get(id)?.status).toBe('ACTIVE');

      // The periodic full snapshot is due at once with a tiny interval.
      await upsertDistrict(t.ctx.db, { id: `${D}-silent`, schedule: null, settings: settingsFor(server, { fullEveryHours: 1 / 3600 / 1000 }) });
      const full = await syncNow(t.ctx, `${D}-silent`);
      expect(full).toMatchObject({ full: true, counts: { usersDeleted: 1 } });
      expect(byId(await listUsers(t.ctx.db, `${D}-silent`)).get(id)?.status).toBe('DELETED');
    } finally {
      await server.stop();
    }
  });

  test('wrong credentials fail the run with a clear 401 and change nothing', async () => {
    const before = await listUsers(t.ctx.db, D);
    await upsertDistrict(t.ctx.db, { id: D, schedule: null, settings: settingsFor(server, { secret: 'wrong-secret' }) });
    try {
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('FAILED');
      expect(run.error).toMatch(auth.type === 'oauth1'
        ? /ClassLink refused our credentials \(HTTP 401\) on GET .*\(invalid signature\): the OAuth 1.0a signature was rejected/
        : /ClassLink's token endpoint refused the client credentials \(HTTP 401\)/);
      expect(run.error).not.toContain('wrong-secret');
      // A refused secret is asked once per run, whatever the retries and prefetch.
      if (auth.type === 'oauth2') expect(server.requests.filter((r) => r.path.startsWith('/oauth/token') && r.status === 401)).toHaveLength(1);
      expect(await listUsers(t.ctx.db, D)).toEqual(before);
    } finally {
      await upsertDistrict(t.ctx.db, { id: D, schedule: null, settings: settingsFor(server) });
    }
  });
});

test('an OAuth 2 token is renewed before it expires during a long sync', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ ...SPEC, seed: 79 }), { version: '1.2', auth: { type: 'oauth2', clientId: 'c', clientSecret: 's', tokenTtlSec: 1 } });
  server.faults.push({ path: '/users?', delayMs: 300, times: 4 });
  await server.start();
  try {
    await upsertDistrict(t.ctx.db, { id: 'cl-renew', schedule: null, settings: settingsFor(server) });
    const run = await syncNow(t.ctx, 'cl-renew');
    expect(run.status).toBe('SUCCEEDED');
    expect(server.tokensIssued).toBeGreaterThan(1);
    expect(server.requests.filter((r) => r.status === 401)).toEqual([]);
  } finally {
    await server.stop();
  }
});

test('429 and 5xx bursts recover, and a mass deletion arriving as tombstones in a delta is HELD', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ ...SPEC, students: 120, seed: 80 }), { version: '1.1', auth: CASES[0]![2] });
  await server.start();
  try {
    await upsertDistrict(t.ctx.db, { id: 'cl-faults', schedule: null, settings: settingsFor(server) });
    server.faults.push({ path: '/enrollments?', status: 429, retryAfterSec: 0, times: 2 }, { path: '/classes?', status: 503, times: 2 });
    const first = await syncNow(t.ctx, 'cl-faults');
    expect(first.status).toBe('SUCCEEDED');
    expect(server.requests.filter((r) => r.status === 429 || r.status === 503)).toHaveLength(4);

    const before = await listUsers(t.ctx.db, 'cl-faults');
    for (const id of [...server.district.students.keys()].slice(0, 30)) server.district.removeStudent(id);
    const held = await syncNow(t.ctx, 'cl-faults');
    expect(held).toMatchObject({ status: 'HELD', full: false, counts: { usersDeleted: 30 } });
    expect(held.error).toContain('above the district\'s threshold of 25');
    expect(await listUsers(t.ctx.db, 'cl-faults')).toEqual(before);
  } finally {
    await server.stop();
  }
});

test('a server that sends only X-Total-Count (no Link header) and caps limit is still paged exactly once through', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ ...SPEC, seed: 81 }), { version: '1.1', auth: CASES[0]![2], maxLimit: 25, linkHeaders: false });
  await server.start();
  try {
    await upsertDistrict(t.ctx.db, { id: 'cl-count', schedule: null, settings: settingsFor(server) });
    const run = await syncNow(t.ctx, 'cl-count');
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersCreated: 90 + server.district.teachers.size } });
    const offsets = server.requestsTo('/users?').map((r) => new URL(r.path, 'http://x').searchParams.get('offset'));
    expect(offsets).toEqual(['0', '25', '50', '75']);
  } finally {
    await server.stop();
  }
});

test('after a purge of all roster data, the next sync is a full snapshot that rosters the district again, not a delta that finds nothing', async () => {
  const server = new FakeOneRosterServer(new RosterDistrict({ ...SPEC, seed: 83 }), { version: '1.2', auth: CASES[1]![2], maxLimit: 25 });
  await server.start();
  try {
    await upsertDistrict(t.ctx.db, { id: 'cl-purge', schedule: null, settings: settingsFor(server) });
    const people = 90 + server.district.teachers.size;
    expect(await syncNow(t.ctx, 'cl-purge')).toMatchObject({ status: 'SUCCEEDED', full: true, counts: { usersCreated: people } });
    // Normally the next run is a delta …
    expect(await syncNow(t.ctx, 'cl-purge')).toMatchObject({ status: 'SUCCEEDED', full: false });
    const { purgeDistrict } = await import('../src/sync/purge.js');
    await purgeDistrict(t.ctx, 'cl-purge', 'all-roster-data');
    // … but not after the roster was erased: everyone comes back.
    const again = await syncNow(t.ctx, 'cl-purge');
    expect(again).toMatchObject({ status: 'SUCCEEDED', full: true, deltaSince: null, counts: { usersCreated: people } });
    expect(await listUsers(t.ctx.db, 'cl-purge', { status: 'ACTIVE' })).toHaveLength(people);
  } finally {
    await server.stop();
  }
});
