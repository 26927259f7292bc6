import { CanvasConnector, type CanvasConnectorOptions } from '../connectors/canvas/connector.js';
import { nextLink } from '../connectors/canvas/rest.js';
import { canvasRefusal } from '../connectors/canvas/errors.js';
import type { FakeCanvasServer } from '../fixtures/canvas/server.js';
import { createLogger } from '../src/logger.js';
import type { CanvasSettings } from '../src/districts/settings.js';
import { canvasSettings, canvasUserId, collect, startCanvas, type Canonical } from './helpers/canvas.js';

const logger = createLogger('silent');
const SPEC = { seed: 41, schools: 3, students: 230, sections: 12, enrollmentsPerStudent: 2 };

async function read(server: FakeCanvasServer, options: CanvasConnectorOptions, over: Partial<CanvasSettings> = {}) {
  const connector = new CanvasConnector(canvasSettings(server, over), logger, options);
  const snapshot = await collect(connector.fetch({ full: true }));
  return { snapshot, run: connector.lastRun! };
}

const fail = async (server: FakeCanvasServer, options: CanvasConnectorOptions = {}, over: Partial<CanvasSettings> = {}) =>
  read(server, options, over).then(() => { throw new Error('expected the fetch to fail'); }, (err: Error) => err);

describe('Canvas connector against the fake Canvas', () => {
  let server: FakeCanvasServer;
  /** Fixture student ids, taken before any leave (the district's own list shrinks). */
  let students: string[];
  beforeAll(async () => {
    server = await startCanvas(SPEC);
    const d = server.district;
    students = [...d.students.keys()];
    const [deleted, inactive, completed, rejected, invited, pending] = students;
    // Each way an enrollment or a user leaves, and the states that stay.
    server.deleteUser(deleted!);
    for (const s of d.sectionsOf(inactive!)) server.setEnrollmentState(s.id, inactive!, 'inactive');
    for (const s of d.sectionsOf(completed!)) server.setEnrollmentState(s.id, completed!, 'completed');
    server.setEnrollmentState(d.sectionsOf(rejected!)[0]!.id, rejected!, 'rejected');
    server.setEnrollmentState(d.sectionsOf(invited!)[0]!.id, invited!, 'invited');
    server.setEnrollmentState(d.sectionsOf(pending!)[0]!.id, pending!, 'creation_pending');
    server.clearSisId(students[10]!);
    // A teacher who also takes a class is a student (DESIGN: any StudentEnrollment).
    const teacher = [...d.teachers.keys()][0]!;
    const other = [...d.sections.values()].find((s) => !s.teacherIds.includes(teacher))!;
    server.addEnrollment(other.id, teacher, 'StudentEnrollment');
    // A deleted course: its sections retire, its enrollments arrive 'deleted'.
    server.setCourseState(server.courseIdOfSection([...d.sections.keys()][11]!), 'deleted');
  });
  afterAll(() => server.stop());

  let rest: { snapshot: Canonical; run: NonNullable<CanvasConnector['lastRun']> };
  let report: typeof rest;

  test('the REST path and the provisioning report give the same canonical snapshot', async () => {
    rest = await read(server, { path: 'rest' });
    report = await read(server, { path: 'report', reportPollMs: 5 });
    expect(rest.run.path).toBe('rest');
    expect(report.run.path).toBe('report');
    for (const kind of Object.keys(rest.snapshot) as (keyof Canonical)[]) expect([kind, report.snapshot[kind]]).toEqual([kind, rest.snapshot[kind]]);
    expect(rest.snapshot.quarantine).toEqual([]);
    expect(rest.snapshot.users.length).toBeGreaterThan(200);
    // The report: account, sub-accounts, POST, three status polls (running, running, complete), download.
    expect(report.run.requests).toBe(7);
    expect(report.run.reportPolls).toBe(3);
    // REST: a page per list, plus sections and enrollments per course.
    const courses = rest.snapshot.courses.length;
    expect(rest.run.requests).toBeGreaterThanOrEqual(3 + 2 * courses + 3);
  });

  test('ids are decimal strings beyond 2^31; schools are the sub-accounts, rolled up from a deeper department', () => {
    const { snapshot } = rest;
    for (const u of snapshot.users) expect(u.sourcedId).toMatch(/^1700000\d{8}$/);
    expect(Number(snapshot.users[0]!.sourcedId)).toBeGreaterThan(2 ** 31);
    expect(snapshot.orgs.map((o) => o.name).sort()).toEqual(['School 1', 'School 2', 'School 3']);
    const schoolIds = new Set(snapshot.orgs.map((o) => o.sourcedId));
    for (const c of snapshot.classes) expect(schoolIds.has(c.schoolSourcedId!)).toBe(true);
    expect(snapshot.academicSessions.map((t) => [t.title, t.endDate])).toEqual(expect.arrayContaining([['Fall', '2026-12-18'], ['Spring', '2027-06-04']]));
  });

  test('enrollment states map onto the roster: active/invited/creation_pending stay, the rest end', () => {
    const d = server.district;
    const byUser = (fixtureId: string) => rest.snapshot.enrollments.filter((e) => e.userSourcedId === canvasUserId(fixtureId));
    const deletedCourse = server.courseIdOfSection([...d.sections.keys()][11]!);
    const inDeletedCourse = new Set(server.sectionIdsOfCourse(deletedCourse));
    const status = (fixtureId: string) => byUser(fixtureId).filter((e) => !inDeletedCourse.has(e.classSourcedId)).map((e) => e.status);
    // students[0] was deleted from the account: not listed, enrollments 'deleted'.
    expect(rest.snapshot.users.find((u) => u.sourcedId === canvasUserId(students[0]!))).toBeUndefined();
    expect(byUser(students[0]!).every((e) => e.status === 'tobedeleted')).toBe(true);
    expect(byUser(students[0]!).length).toBeGreaterThan(0);
    expect(new Set(status(students[1]!))).toEqual(new Set(['tobedeleted']));
    expect(new Set(status(students[2]!))).toEqual(new Set(['tobedeleted']));
    expect(status(students[3]!)).toContain('tobedeleted');
    expect(status(students[3]!)).toContain('active');
    expect(new Set(status(students[4]!))).toEqual(new Set(['active']));
    expect(new Set(status(students[5]!))).toEqual(new Set(['active']));
    for (const e of rest.snapshot.enrollments.filter((x) => inDeletedCourse.has(x.classSourcedId))) expect(e.status).toBe('tobedeleted');
    for (const c of rest.snapshot.classes.filter((x) => inDeletedCourse.has(x.sourcedId))) expect(c.status).toBe('tobedeleted');
    // Fall term ends 2026-12-18: its enrollments carry that end.
    const fall = rest.snapshot.enrollments.find((e) => e.status === 'active' && e.endDate === '2026-12-18');
    expect(fall).toBeDefined();
  });

  test('roles come from enrollments; observers and admins are not rostered; sisId is sis_user_id or null', () => {
    const d = server.district;
    const users = new Map(rest.snapshot.users.map((u) => [u.sourcedId, u]));
    const teachers = [...d.teachers.keys()];
    expect(users.get(canvasUserId(teachers[0]!))?.role).toBe('student');
    expect(users.get(canvasUserId(teachers[1]!))?.role).toBe('teacher');
    expect(users.get('170000009000001')).toBeUndefined();
    expect(users.get('170000009000002')).toBeUndefined();
    expect(users.get(canvasUserId(students[10]!))?.sisId).toBeNull();
    const p = d.students.get(students[11]!)!;
    expect(users.get(canvasUserId(p.id))).toMatchObject({ sisId: p.sisId, givenName: p.first, familyName: p.last, email: p.email, username: p.username });
    expect(rest.snapshot.enrollments.some((e) => e.userSourcedId === '170000009000001')).toBe(false);
  });

  test('REST pages are read 100 at a time and the Link rel="next" bookmarks are followed verbatim', () => {
    const userPages = server.requestsTo('/api/v1/accounts/170000000001001/users?').filter((r) => r.status === 200);
    expect(userPages.length).toBeGreaterThanOrEqual(3);
    expect(userPages.every((r) => r.path.includes('per_page=100'))).toBe(true);
    expect(userPages.slice(1).every((r) => /page=bookmark%3A[A-Za-z0-9_-]+/.test(r.path))).toBe(true);
    const header = '<https://x.test/api/v1/a?page=first&per_page=100>; rel="current",<https://x.test/api/v1/a?page=bookmark:WzFd&per_page=100>; rel="next",<https://x.test/api/v1/a?page=first>; rel="first"';
    expect(nextLink(header, 'https://x.test/api/v1/a')).toBe('https://x.test/api/v1/a?page=bookmark:WzFd&per_page=100');
  });

  test('reports forbidden (401 or 403 "unauthorized") falls back to REST with the same snapshot', async () => {
    for (const mode of ['forbidden-401', 'forbidden-403'] as const) {
      server.options.reports = mode;
      try {
        const auto = await read(server, { reportPollMs: 5 });
        expect(auto.run.path).toBe('rest');
        expect(auto.run.reportFallback).toMatch(/not permitted.*HTTP 40[13].*user not authorized/);
        expect(auto.snapshot).toEqual(rest.snapshot);
      } finally {
        server.options.reports = 'allowed';
      }
    }
  });

  test('throttling in both Canvas forms is retried; a low X-Rate-Limit-Remaining slows requests down', async () => {
    server.throttles.push({ path: '/enrollments?', times: 2, form: 403 }, { path: '/users?', times: 2, form: 429 });
    server.options.bucket = { capacity: 260, leakPerSec: 1, costPerRequest: 5 };
    try {
      const before = server.requests.length;
      const { snapshot, run } = await read(server, { path: 'rest' });
      expect(snapshot).toEqual(rest.snapshot);
      const mine = server.requests.slice(before);
      expect(mine.filter((r) => r.status === 403)).toHaveLength(2);
      expect(mine.filter((r) => r.status === 429)).toHaveLength(2);
      expect(run.paced.pausedRequests).toBeGreaterThan(0);
      expect(run.paced.lowestRemaining).toBeLessThan(200);
    } finally {
      server.options.bucket = undefined;
    }
  });

  test('a bad token fails at once, naming the token; a missing permission fails at once, naming the permission', async () => {
    for (const state of ['invalid', 'expired', 'revoked'] as const) {
      server.options.tokenState = state;
      const before = server.requests.length;
      const err = await fail(server);
      server.options.tokenState = 'valid';
      expect(err.message).toMatch(/Canvas refused the access token \(HTTP 401\).*(Invalid|Expired|Revoked) access token.*invalid, expired or revoked/);
      expect(server.requests.length - before).toBe(1);
    }
    server.options.forbid.push('/users?');
    try {
      const err = await fail(server, { path: 'rest' });
      expect(err.message).toMatch(/token is valid but not permitted to GET .*\/users\?.*\(HTTP 403\).*user not authorized.*lacks a permission/);
      expect(server.requestsTo('/users?').filter((r) => r.status === 403)).toHaveLength(1);
    } finally {
      server.options.forbid.pop();
    }
    expect(canvasRefusal({ status: 401, headers: {}, body: '{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}' })).toBe('permission');
    expect(canvasRefusal({ status: 403, headers: {}, body: '403 Forbidden (Rate Limit Exceeded)\n' })).toBe('throttled');
  });

  test('a record whose id lost its exact value as a JSON number is quarantined, not misread', async () => {
    server.faults.push({ path: '/users?', times: 1, body: '[{"id": 170000000000000000001, "name": "Big Id", "sortable_name": "Id, Big"}]' });
    const { snapshot } = await read(server, { path: 'rest' });
    expect(snapshot.quarantine).toEqual([expect.objectContaining({ kind: 'users', reason: expect.stringContaining('2^53') })]);
  });

  test('the token never leaves the base URL origin: a report file elsewhere is not fetched with it', async () => {
    server.options.downloadOrigin = server.url.replace('127.0.0.1', 'localhost');
    try {
      const before = server.requests.length;
      const auto = await read(server, { reportPollMs: 5 });
      expect(auto.run.path).toBe('rest');
      expect(auto.run.reportFallback).toMatch(/refusing to send the district's credentials to http:\/\/localhost/);
      expect(server.requests.slice(before).filter((r) => r.path.startsWith('/files/'))).toEqual([]);
      expect(auto.snapshot).toEqual(rest.snapshot);
    } finally {
      server.options.downloadOrigin = undefined;
    }
  });

  // Last: churn changes the district for good. The fake keeps its sorted listings per district version;
  // a stale cache would serve the leavers and miss the joiners on both paths.
  test('after a churn both paths read the changed district (the fake rebuilds its cached listings)', async () => {
    const before = new Set(server.district.students.keys());
    const res = await fetch(`${server.url}/__control/churn`, { method: 'POST', body: JSON.stringify({ pct: 10, seed: 5 }) });
    expect(await res.json()).toEqual(expect.objectContaining({ left: expect.any(Number), joined: expect.any(Number) }));
    const after = new Set(server.district.students.keys());
    const left = [...before].filter((id) => !after.has(id)).map(canvasUserId);
    const joined = [...after].filter((id) => !before.has(id)).map(canvasUserId);
    expect(left.length).toBeGreaterThan(0);
    expect(joined.length).toBeGreaterThan(0);
    const churnedRest = await read(server, { path: 'rest' });
    const churnedReport = await read(server, { path: 'report', reportPollMs: 5 });
    const userIds = new Set(churnedRest.snapshot.users.map((u) => u.sourcedId));
    for (const id of joined) expect([id, userIds.has(id)]).toEqual([id, true]);
    for (const id of left) expect([id, userIds.has(id)]).toEqual([id, false]);
    expect(churnedRest.snapshot.users).not.toEqual(rest.snapshot.users);
    expect(churnedReport.snapshot).toEqual(churnedRest.snapshot);
  });
});

test('a damaged report part fails the read instead of silently losing rows (streaming inflate checks no CRC)', async () => {
  const { zipSync, strToU8 } = await import('fflate');
  const { ProvisioningReport } = await import('../connectors/canvas/report.js');
  const users = ['canvas_user_id,user_id,login_id,first_name,last_name,full_name,sortable_name,short_name,email,status,created_by_sis',
    ...Array.from({ length: 2000 }, (_, i) => `${1000 + i},SIS${i},u${i},First${i},Last${i},First${i} Last${i},"Last${i}, First${i}",F${i},u${i}@x.test,active,true`)].join('\n');
  const parts = { 'users.csv': users, 'terms.csv': 'canvas_term_id,term_id,name,status\n', 'courses.csv': 'canvas_course_id\n', 'sections.csv': 'canvas_section_id\n', 'enrollments.csv': 'canvas_user_id\n' };
  const zip = Buffer.from(zipSync(Object.fromEntries(Object.entries(parts).map(([n, t]) => [n, strToU8(t)]))));
  const readUsers = async (bytes: Buffer) => {
    let n = 0;
    for await (const batch of ProvisioningReport.open(bytes).users(1000)) n += batch.length;
    return n;
  };
  expect(await readUsers(zip)).toBe(2000);
  // The central directory now says users.csv inflates to more than it does: what a part cut short looks like.
  const damaged = Buffer.from(zip);
  const name = Buffer.from('users.csv');
  for (let at = 0; at + 46 < damaged.length; at += 1) {
    if (damaged.readUInt32LE(at) === 0x02014b50 && damaged.subarray(at + 46, at + 46 + name.length).equals(name)) {
      damaged.writeUInt32LE(damaged.readUInt32LE(at + 24) + 100, at + 24);
    }
  }
  await expect(readUsers(damaged)).rejects.toThrow(/users part is damaged \(inflated \d+ bytes, the zip says \d+\)/);
});
