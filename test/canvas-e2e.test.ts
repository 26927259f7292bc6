import type { FakeCanvasServer } from '../fixtures/canvas/server.js';
import { upsertDistrict } from '../src/districts/repository.js';
import type { CanvasSettings } from '../src/districts/settings.js';
import { listLicenses, listUsers, type UserView } from '../src/queries.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addPool, syncNow, districtState } from './helpers/district.js';
import { canvasSectionId, canvasSettings, canvasUserId, expectedRoster, startCanvas } from './helpers/canvas.js';

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
  t.startWorker();
});
afterAll(async () => {
  await t.close();
});

const byId = (users: UserView[]) => new Map(users.map((u) => [u.sourcedId, u]));
// A deleted course retires a sixth of these small districts' classes: above the default 10% loss guard.
const register = (id: string, server: FakeCanvasServer, over: Partial<CanvasSettings> = {}) =>
  upsertDistrict(t.ctx.db, { id, schedule: null, settings: canvasSettings(server, over), guard: { lossThresholdPct: 50 } });
const state = (d: string) => districtState(t.ctx, d);
const zero = (counts: object) => Object.entries(counts).filter(([, n]) => n !== 0);

describe('a Canvas district through the queue (provisioning report path)', () => {
  const D = 'cv';
  const SEATS = 150;
  let server: FakeCanvasServer;
  let students: string[];
  beforeAll(async () => {
    server = await startCanvas({ seed: 61, schools: 3, students: 200, sections: 12, enrollmentsPerStudent: 2 });
    students = [...server.district.students.keys()];
    await register(D, server);
    await addPool(t.ctx, D, 'READ', SEATS);
  });
  afterAll(() => server.stop());

  /** The local roster is Canvas's: every rostered person ACTIVE, in exactly their sections. */
  const mirrors = async () => {
    const users = byId(await listUsers(t.ctx.db, D, { status: 'ACTIVE' }));
    const expected = expectedRoster(server);
    expect(new Set(users.keys())).toEqual(expected.users);
    for (const [id, classes] of expected.classesOf) expect([id, users.get(id)!.classes]).toEqual([id, classes]);
  };

  test('first sync: the report path rosters everyone; a pool smaller than the students assigns and wait-lists', async () => {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    const expected = expectedRoster(server);
    expect(run.counts).toMatchObject({ usersCreated: expected.users.size, seatsAssigned: SEATS, seatsWaitlisted: 200 - SEATS });
    await mirrors();
    expect(await listLicenses(t.ctx.db, D)).toEqual([expect.objectContaining({ product: 'READ', seats: SEATS, assigned: SEATS, waitlisted: 200 - SEATS })]);
    // The bulk path: the report, not a request per course.
    expect(server.requestsTo('/reports/provisioning_csv').length).toBeGreaterThan(1);
    expect(server.requestsTo('/enrollments')).toEqual([]);
    const users = byId(await listUsers(t.ctx.db, D));
    const p = server.district.students.get(students[3]!)!;
    expect(users.get(canvasUserId(p.id))).toMatchObject({ role: 'student', sisId: p.sisId, email: p.email, givenName: p.first, familyName: p.last });
    expect(users.get(canvasUserId([...server.district.teachers.keys()][0]!))?.role).toBe('teacher');
  });

  test('a second sync changes nothing', async () => {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(zero(run.counts)).toEqual([]);
  });

  test('the REST path builds the same roster as the report path', async () => {
    server.options.reports = 'forbidden-403';
    try {
      await register(`${D}-rest`, server);
      await addPool(t.ctx, `${D}-rest`, 'READ', SEATS);
      expect((await syncNow(t.ctx, `${D}-rest`)).status).toBe('SUCCEEDED');
      expect(server.requestsTo('/enrollments?').length).toBeGreaterThan(0);
      const view = (users: UserView[]) => users.map(({ sourcedId, role, status, givenName, familyName, email, sisId, classes, products, waitlisted }) =>
        ({ sourcedId, role, status, givenName, familyName, email, sisId, classes, products, waitlisted }));
      expect(view(await listUsers(t.ctx.db, `${D}-rest`))).toEqual(view(await listUsers(t.ctx.db, D)));
    } finally {
      server.options.reports = 'allowed';
    }
  });

  let holders: string[];
  test('each way of leaving: deleted from the account, every enrollment inactive / completed / rejected → DELETED, seats freed to the wait-list; one lost section ends only that class', async () => {
    const users = byId(await listUsers(t.ctx.db, D));
    holders = students.filter((s) => users.get(canvasUserId(s))?.products.includes('READ'));
    const [deleted, inactive, completed, rejected, oneSection] = holders as [string, string, string, string, string];
    const d = server.district;
    const before = byId(await listUsers(t.ctx.db, D));
    server.deleteUser(deleted);
    for (const s of d.sectionsOf(inactive)) server.setEnrollmentState(s.id, inactive, 'inactive');
    for (const s of d.sectionsOf(completed)) server.setEnrollmentState(s.id, completed, 'completed');
    for (const s of d.sectionsOf(rejected)) server.setEnrollmentState(s.id, rejected, 'rejected');
    const lost = d.sectionsOf(oneSection)[0]!;
    server.setEnrollmentState(lost.id, oneSection, 'deleted');

    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersDeleted: 4, seatsReleased: 4, seatsAssigned: 4, usersCreated: 0 } });
    const after = byId(await listUsers(t.ctx.db, D));
    for (const id of [deleted, inactive, completed, rejected]) {
      expect(after.get(canvasUserId(id))).toMatchObject({ id: before.get(canvasUserId(id))!.id, status: 'DELETED', classes: [], products: [] });
    }
    const stay = after.get(canvasUserId(oneSection))!;
    expect(stay).toMatchObject({ status: 'ACTIVE', products: ['READ'] });
    expect(stay.classes).toEqual(before.get(canvasUserId(oneSection))!.classes.filter((c) => c !== canvasSectionId(lost.id)));
    expect(await listLicenses(t.ctx.db, D)).toEqual([expect.objectContaining({ assigned: SEATS, waitlisted: 200 - SEATS - 4 })]);
  });

  test('a returning student keeps their account id and is re-enrolled', async () => {
    const [deleted, inactive] = holders as [string, string];
    const before = byId(await listUsers(t.ctx.db, D));
    server.restoreUser(deleted);
    for (const s of server.district.sectionsOf(inactive)) server.setEnrollmentState(s.id, inactive, 'active');
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { usersReactivated: 2, usersCreated: 0, seatsWaitlisted: 2 } });
    const after = byId(await listUsers(t.ctx.db, D));
    for (const id of [deleted, inactive]) {
      const u = after.get(canvasUserId(id))!;
      expect(u).toMatchObject({ id: before.get(canvasUserId(id))!.id, status: 'ACTIVE', waitlisted: ['READ'] });
      expect(u.classes).toEqual(server.district.sectionsOf(id).map((s) => canvasSectionId(s.id)).sort());
    }
  });

  test("a deleted course's enrollments arrive as deleted: its sections leave every roster", async () => {
    const d = server.district;
    const section = [...d.sections.values()][5]!;
    const courseId = server.courseIdOfSection(section.id);
    const gone = new Set(server.sectionIdsOfCourse(courseId));
    server.setCourseState(courseId, 'deleted');
    try {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(run.counts.enrollmentsEnded).toBeGreaterThan(0);
    const users = byId(await listUsers(t.ctx.db, D));
    for (const u of users.values()) expect(u.classes.filter((c) => gone.has(c))).toEqual([]);
    // Members with a class elsewhere stay; members with none elsewhere have left.
    const ended = new Set(holders.slice(1, 4));
    const members = [...d.students.keys()].filter((id) => !ended.has(id) && d.sectionsOf(id).some((x) => gone.has(canvasSectionId(x.id))));
    expect(members.length).toBeGreaterThan(0);
    for (const id of members) {
      const elsewhere = d.sectionsOf(id).filter((x) => !gone.has(canvasSectionId(x.id)));
      expect([id, users.get(canvasUserId(id))!.status]).toEqual([id, elsewhere.length ? 'ACTIVE' : 'DELETED']);
    }
    } finally {
      server.setCourseState(courseId, 'available');
    }
    expect((await syncNow(t.ctx, D)).status).toBe('SUCCEEDED');
  });

  test('a refused token fails the run at once, naming the token; nothing changes', async () => {
    const before = await state(D);
    await register(D, server, { credentials: { token: 'WRONG' } });
    try {
      const requests = server.requests.length;
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('FAILED');
      expect(run.error).toMatch(/Canvas refused the access token \(HTTP 401\).*Invalid access token.*invalid, expired or revoked/);
      expect(run.error).not.toContain('WRONG');
      expect(server.requests.length - requests).toBe(1);
      expect(await state(D)).toEqual(before);
    } finally {
      await register(D, server);
    }
  });

  test('an empty account is HELD and nothing changes', async () => {
    const empty = await startCanvas({ seed: 62, schools: 1, students: 0, sections: 0, enrollmentsPerStudent: 0 });
    const before = await state(D);
    try {
      await register(D, empty);
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('HELD');
      expect(run.error).toContain('snapshot is empty');
      expect(await state(D)).toEqual(before);
    } finally {
      await register(D, server);
      await empty.stop();
    }
  });

  test('a mass deletion is HELD and nothing changes', async () => {
    const before = await state(D);
    const active = byId(before.users);
    const leaving = [...server.district.students.keys()].filter((id) => active.get(canvasUserId(id))?.status === 'ACTIVE').slice(0, 30);
    for (const id of leaving) server.deleteUser(id);
    try {
      const run = await syncNow(t.ctx, D);
      expect(run).toMatchObject({ status: 'HELD', counts: { usersDeleted: 30 } });
      expect(await state(D)).toEqual(before);
    } finally {
      for (const id of leaving) server.restoreUser(id);
    }
  });
});

describe('a Canvas district whose token may not run reports (REST path)', () => {
  const D = 'cv-api';
  let server: FakeCanvasServer;
  beforeAll(async () => {
    server = await startCanvas({ seed: 63, schools: 2, students: 260, sections: 10, enrollmentsPerStudent: 2 }, { reports: 'forbidden-401' });
    await register(D, server);
    await addPool(t.ctx, D, 'READ', 1000);
  });
  afterAll(() => server.stop());

  test('throttling in both Canvas forms and a 5xx burst are retried; every retried request is answered; many pages followed', async () => {
    server.throttles.push({ path: '/users?', times: 2, form: 403 }, { path: '/enrollments?', times: 2, form: 429 });
    server.faults.push({ path: '/sections?', status: 503, times: 3 });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(run.counts.usersCreated).toBe(expectedRoster(server).users.size);
    // Each throttled or failed request was asked again and answered.
    for (const [fragment, status, n] of [['/users?', 403, 2], ['/enrollments?', 429, 2], ['/sections?', 503, 3]] as const) {
      const hits = server.requestsTo(fragment);
      expect(hits.filter((r) => r.status === status)).toHaveLength(n);
      for (const bad of hits.filter((r) => r.status === status)) expect(hits.some((r) => r.path === bad.path && r.status === 200)).toBe(true);
    }
    // 260 students + teachers + observer + admin at 100 a page, each next page an opaque bookmark.
    const userPages = server.requestsTo('/users?').filter((r) => r.status === 200);
    expect(userPages.length).toBe(3);
    expect(userPages.slice(1).every((r) => r.path.includes('page=bookmark%3A'))).toBe(true);
    const users = byId(await listUsers(t.ctx.db, D));
    const noSis = [...server.district.students.values()][0]!;
    expect(users.get(canvasUserId(noSis.id))?.sisId).toBe(noSis.sisId);
  });

  test('a malformed page fails the run, naming the endpoint; nothing changes', async () => {
    const before = await state(D);
    server.faults.push({ path: '/users?', times: 1, body: '{"errors":"not a list of users"}' });
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/Canvas: GET .*\/users\?.* returned a malformed page/);
    expect(await state(D)).toEqual(before);
  });

  test('a missing permission fails the run at once, naming the permission; nothing changes', async () => {
    const before = await state(D);
    server.options.forbid.push('/courses?');
    try {
      const run = await syncNow(t.ctx, D);
      expect(run.status).toBe('FAILED');
      expect(run.error).toMatch(/token is valid but not permitted to GET .*\/courses\?.*HTTP 403.*user not authorized to perform that action.*lacks a permission/);
      expect(server.requestsTo('/courses?').filter((r) => r.status === 403)).toHaveLength(1);
      expect(await state(D)).toEqual(before);
    } finally {
      server.options.forbid.pop();
    }
  });
});
