import type { FakeSchoologyServer } from '../fixtures/schoology/server.js';
import { listLicenses, listUsers, type UserView } from '../src/queries.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addPool, syncNow, districtState } from './helpers/district.js';
import { oauth1Header } from '../connectors/http/oauth1.js';
import { SCHOOLOGY_LISTS_IN_FLIGHT } from '../connectors/schoology/connector.js';
import { addSchoologyDistrict, SGY_KEY, SGY_SECRET, startSchoology } from './helpers/schoology.js';

// End to end through the real queue: fake Schoology (OAuth 1.0a checked, real
// start/limit paging) → connector → reconcile → license rules → Postgres.

let t: TestEnv;
let server: FakeSchoologyServer;
const D = 'sgy';
const SPEC = { seed: 41, schools: 2, students: 90, sections: 12, enrollmentsPerStudent: 3 };
const SEATS = 60;
/** Deletions (and lost enrollments) above this hold a run for review. */
const GUARD_MIN = 40;

const byUid = (users: UserView[]) => new Map(users.map((u) => [u.sourcedId, u]));
const state = () => districtState(t.ctx, D);
const students = () => [...server.district.students.keys()];
/** A student's current classes as Schoology section ids, sorted like listUsers. */
const classesOf = (genId: string, except: string[] = []) =>
  server.district.sectionsOf(genId).filter((s) => !except.includes(s.id)).map((s) => server.sid(s.id)).sort();

beforeAll(async () => {
  t = await createTestEnv();
  t.startWorker();
  server = await startSchoology(SPEC);
  await addSchoologyDistrict(t.ctx, D, server, {}, { deletionThresholdMin: GUARD_MIN });
  await addPool(t.ctx, D, 'READ', SEATS);
});
afterAll(async () => {
  await server.stop();
  await t.close();
});
beforeEach(() => {
  server.faults.length = 0;
  server.requests.length = 0;
});

describe('rostering', () => {
  const noSisId = () => students()[7]!;

  test('first sync: everyone on the roster, seats for some and a wait-list for the rest, across many pages', async () => {
    server.setSchoolUid(noSisId(), '');
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    const teachers = server.district.teachers.size;
    // Students, teachers and the school admin; the parent is not rostered.
    expect(run.counts).toMatchObject({ usersCreated: SPEC.students + teachers + 1, seatsAssigned: SEATS, seatsWaitlisted: SPEC.students - SEATS });
    expect(await listLicenses(t.ctx.db, D)).toEqual([expect.objectContaining({ product: 'READ', seats: SEATS, assigned: SEATS, waitlisted: SPEC.students - SEATS })]);

    const users = byUid(await listUsers(t.ctx.db, D));
    expect(users.size).toBe(SPEC.students + teachers + 1);
    expect(users.has(server.sid(server.parent.id))).toBe(false);
    expect(users.get(server.sid(server.admin.id))).toMatchObject({ role: 'administrator', status: 'ACTIVE', classes: [] });
    for (const [genId, p] of server.district.students) {
      expect(users.get(server.sid(genId))).toMatchObject({ role: 'student', status: 'ACTIVE', givenName: p.first, familyName: p.last, classes: classesOf(genId) });
    }
    for (const genId of server.district.teachers.keys()) expect(users.get(server.sid(genId))).toMatchObject({ role: 'teacher', classes: classesOf(genId) });
    // users --json sisId is school_uid; an empty school_uid is null.
    const someone = students()[3]!;
    expect(users.get(server.sid(someone))!.sisId).toBe(server.district.students.get(someone)!.sisId);
    expect(users.get(server.sid(noSisId()))!.sisId).toBeNull();

    // limit=25: 95 users (with the parent) are four pages, each reached through links.next.
    const starts = server.requestsTo('/v1/users?').map((r) => new URL(r.path, 'http://x').searchParams.get('start'));
    expect(starts).toEqual(['0', '25', '50', '75']);
  });

  test('a second sync changes nothing', async () => {
    const before = await state();
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(Object.values(run.counts).every((n) => n === 0)).toBe(true);
    expect(await state()).toEqual(before);
  });

  test('a user made inactive is DELETED with no classes and no seat, and the wait-list is served', async () => {
    const users = byUid(await listUsers(t.ctx.db, D));
    const leaver = students().find((id) => users.get(server.sid(id))!.products.length > 0)!;
    const before = users.get(server.sid(leaver))!;
    server.deactivate(leaver);
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersDeleted: 1, enrollmentsEnded: classesOf(leaver).length, seatsReleased: 1, seatsAssigned: 1 } });
    expect(byUid(await listUsers(t.ctx.db, D)).get(server.sid(leaver))).toMatchObject({ id: before.id, status: 'DELETED', classes: [], products: [] });
    expect(await listLicenses(t.ctx.db, D)).toEqual([expect.objectContaining({ assigned: SEATS, waitlisted: SPEC.students - SEATS - 1 })]);

    // Reactivated in Schoology (option_reenroll): the same account comes back, with its classes.
    server.reactivate(leaver);
    const back = await syncNow(t.ctx, D);
    expect(back).toMatchObject({ status: 'SUCCEEDED', counts: { usersReactivated: 1, usersCreated: 0, enrollmentsAdded: classesOf(leaver).length } });
    expect(byUid(await listUsers(t.ctx.db, D)).get(server.sid(leaver))).toMatchObject({ id: before.id, status: 'ACTIVE', classes: classesOf(leaver) });
  });

  test('a student whose enrollments all expired or were archived is DELETED; losing one section ends only that class', async () => {
    const [gone, partial, pending] = students().slice(20, 23) as [string, string, string];
    const [a, b, c] = server.district.sectionsOf(gone);
    server.setEnrollmentStatus(a!.id, gone, 2);
    server.setEnrollmentStatus(b!.id, gone, 5);
    server.setEnrollmentStatus(c!.id, gone, 2);
    const lost = server.district.sectionsOf(partial)[0]!;
    server.setEnrollmentStatus(lost.id, partial, 2);
    // An invitation not yet accepted (status 3) is not membership.
    const invited = server.district.sectionsOf(pending)[1]!;
    server.setEnrollmentStatus(invited.id, pending, 3);

    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersDeleted: 1, enrollmentsEnded: 3 + 1 + 1 } });
    const users = byUid(await listUsers(t.ctx.db, D));
    expect(users.get(server.sid(gone))).toMatchObject({ status: 'DELETED', classes: [], products: [] });
    expect(users.get(server.sid(partial))).toMatchObject({ status: 'ACTIVE', classes: classesOf(partial, [lost.id]) });
    expect(users.get(server.sid(pending))).toMatchObject({ status: 'ACTIVE', classes: classesOf(pending, [invited.id]) });
  });

  test('a section whose grading periods have all ended drops out: its class retires and only its memberships end', async () => {
    const before = byUid(await listUsers(t.ctx.db, D));
    const sections = [...server.district.sections.values()];
    const smallest = sections.reduce((x, y) => (y.studentIds.length < x.studentIds.length ? y : x));
    const sid = server.sid(smallest.id);
    const members = [...before.values()].filter((u) => u.classes.includes(sid));
    server.endSection(smallest.id);
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { classesRetired: 1, enrollmentsEnded: members.length, usersDeleted: 0 } });
    const after = byUid(await listUsers(t.ctx.db, D));
    for (const m of members) {
      expect(after.get(m.sourcedId)).toMatchObject({ status: m.status, classes: m.classes.filter((c) => c !== sid) });
    }
    // Nobody else was touched.
    for (const [uid, u] of before) if (!members.includes(u)) expect(after.get(uid)).toEqual(u);
  });
});

describe('faults keep everything as it was', () => {
  test('429 throttling is waited out and every throttled request is answered on retry', async () => {
    const before = await state();
    server.faults.push({ path: '/enrollments', status: 429, retryAfterSec: 0, times: 3 }, { path: '/v1/users?', status: 429, retryAfterSec: 0, times: 1 });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    const throttled = server.requests.filter((r) => r.status === 429);
    expect(throttled).toHaveLength(4);
    for (const r of throttled) {
      expect(server.requests.slice(server.requests.indexOf(r) + 1).some((later) => later.path === r.path && later.status === 200)).toBe(true);
    }
    expect(await state()).toEqual(before);
  });

  test('a request-rate limit (429 with Retry-After) slows the sync down but it completes', async () => {
    const before = await state();
    server.options.rateLimit = { requests: 20, windowMs: 1000 };
    try {
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('SUCCEEDED');
      expect(server.requests.filter((r) => r.status === 429).length).toBeGreaterThan(0);
      expect(await state()).toEqual(before);
    } finally {
      server.options.rateLimit = undefined;
    }
  });

  test('a burst of 5xx is retried and the run succeeds with nothing to change', async () => {
    const before = await state();
    server.faults.push({ path: '/v1/courses/', status: 503, times: 3 }, { path: '/v1/users?', status: 500, times: 2 }, { path: '/v1/gradingperiods', status: 502, times: 1 });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(server.requests.filter((r) => r.status >= 500)).toHaveLength(6);
    expect(Object.values(run.counts).every((n) => n === 0)).toBe(true);
    expect(await state()).toEqual(before);
  });

  test('303 redirects inside a queued sync are followed and re-signed', async () => {
    const before = await state();
    server.options.redirects = ['/users', '/sections/', '/roles'];
    try {
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('SUCCEEDED');
      expect(server.requests.filter((r) => r.status === 303).length).toBeGreaterThan(10);
      expect(server.requests.filter((r) => r.status === 401)).toEqual([]);
      expect(await state()).toEqual(before);
    } finally {
      server.options.redirects = undefined;
    }
  });

  test('a 401 for a personal API key fails the run at once, names the likely cause, and changes nothing', async () => {
    const before = await state();
    server.options.personalKey = true;
    try {
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('FAILED');
      expect(run.error).toMatch(/Schoology refused our credentials \(HTTP 401\) on GET .*\/v1\/sections\/\d+\/enrollments/);
      expect(run.error).toContain('personal API key');
      expect(run.error).toContain('system-level API key');
      expect(run.error).not.toContain(SGY_SECRET);
      // Sections' members are read SCHOOLOGY_LISTS_IN_FLIGHT at a time: those already in flight are refused too, but none is retried.
      const refused = server.requests.filter((r) => r.status === 401);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBeLessThanOrEqual(SCHOOLOGY_LISTS_IN_FLIGHT);
      expect(new Set(refused.map((r) => r.path)).size).toBe(refused.length);
      expect(refused.every((r) => /\/v1\/sections\/\d+\/enrollments\?start=0&/.test(r.path))).toBe(true);
      expect(await state()).toEqual(before);
    } finally {
      server.options.personalKey = false;
    }
  });

  test('a malformed page fails the run without retrying, and changes nothing', async () => {
    const before = await state();
    server.faults.push({ path: '/v1/users?', body: JSON.stringify({ user: { uid: '1' }, total: '1', links: {} }), times: 5 });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/Schoology: GET .*\/v1\/users\?start=0&limit=25 returned a malformed page: .*"user" is not a list/);
    expect(server.requestsTo('/v1/users?')).toHaveLength(1);
    expect(await state()).toEqual(before);
  });

  test('an unreadable course is quarantined and its sections, memberships and seats stay exactly as they were', async () => {
    const before = await state();
    const path = '/courses?start=0&limit=25';
    const authorization = oauth1Header('GET', `${server.baseUrl}${path}`, SGY_KEY, SGY_SECRET, { signatureMethod: 'HMAC-SHA1', realm: 'Schoology API', token: '' });
    const page = await (await fetch(`${server.baseUrl}${path}`, { headers: { authorization } })).json() as { course: Record<string, unknown>[] };
    page.course[0]!.title = { broken: true };
    server.faults.push({ path: `/v1${path}`, body: JSON.stringify(page), times: 1 });
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { recordsQuarantined: 1, classesRetired: 0, enrollmentsEnded: 0 } });
    expect(await state()).toEqual(before);
  });

  test('an empty account (no users) is HELD and changes nothing', async () => {
    const before = await state();
    server.faults.push({ path: '/v1/users?', body: JSON.stringify({ user: [], total: '0', links: { self: '' } }), times: 5 });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('HELD');
    expect(run.error).toContain('snapshot is empty');
    // Without active users the inactive list is not read (it would make an empty account look like mass departure).
    expect(server.requestsTo('/v1/users/inactive')).toEqual([]);
    expect(await state()).toEqual(before);
  });

  test('a mass deactivation is HELD and changes nothing', async () => {
    const before = await state();
    const users = byUid(before.users);
    const victims = students().filter((id) => users.get(server.sid(id))!.status === 'ACTIVE').slice(0, GUARD_MIN + 5);
    for (const id of victims) server.deactivate(id);
    try {
      const run = await syncNow(t.ctx, D);
      expect(run).toMatchObject({ status: 'HELD', counts: { usersDeleted: victims.length } });
      expect(run.error).toContain(`above the district's threshold of ${GUARD_MIN}`);
      expect(await state()).toEqual(before);
    } finally {
      for (const id of victims) server.reactivate(id);
    }
  });
});
