import { Writable } from 'node:stream';
import { CleverConnector } from '../connectors/clever/connector.js';
import type { SnapshotBatch } from '../connectors/types.js';
import { FakeCleverServer } from '../fixtures/clever/server.js';
import { RosterDistrict } from '../fixtures/district.js';
import { loadConfig, ConfigError } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import type { User } from '../src/domain/model.js';

const silent = createLogger('silent');
let server: FakeCleverServer;

beforeAll(async () => {
  server = new FakeCleverServer(new RosterDistrict({ seed: 31, schools: 2, students: 57, sections: 9, enrollmentsPerStudent: 2 }), 'TOKEN');
  await server.start();
});
afterAll(() => server.stop());
beforeEach(() => {
  server.requests.length = 0;
  server.faults.length = 0;
});

async function fetchAll(pageSize: number) {
  const connector = new CleverConnector({ provider: 'clever', baseUrl: server.url, credentials: { token: 'TOKEN' }, pageSize, minRetryDelayMs: 5 }, silent);
  const batches: SnapshotBatch[] = [];
  for await (const b of connector.fetch({ full: true })) batches.push(b);
  const all = (kind: SnapshotBatch['kind']): unknown[] => batches.filter((b) => b.kind === kind).flatMap((b): unknown[] => b.records);
  return { batches, all };
}

test('follows starting_after pagination to the end: every record exactly once', async () => {
  const { all } = await fetchAll(7);
  const users = all('users') as User[];
  expect(users).toHaveLength(57 + server.district.teachers.size);
  expect(new Set(users.map((u) => u.sourcedId)).size).toBe(users.length);
  expect(all('classes')).toHaveLength(9);
  expect(all('enrollments')).toHaveLength([...server.district.sections.values()].reduce((n, s) => n + s.studentIds.length + s.teacherIds.length, 0));
  // ceil(57/7) = 9 student pages; each request carries limit=7.
  expect(server.requestsTo('/v3.0/users?role=student')).toHaveLength(9);
  expect(server.requests.every((r) => r.path.includes('limit=7'))).toBe(true);
});

test('maps Clever v3 records to the canonical model field by field', async () => {
  const { all } = await fetchAll(100);
  const gen = [...server.district.students.values()][0]!;
  const mapped = (all('users') as User[]).find((u) => u.sourcedId === gen.id);
  expect(mapped).toEqual({
    sourcedId: gen.id, role: 'student', givenName: gen.first, familyName: gen.last, email: gen.email, username: gen.username, sisId: gen.sisId,
    grades: [gen.grade], orgSourcedIds: gen.schoolIds, enabled: true, status: 'active',
  });
  const section = [...server.district.sections.values()][0]!;
  const course = server.district.courses.find((c) => c.id === section.courseId)!;
  expect(all('classes')).toContainEqual({
    sourcedId: section.id, title: section.name, classCode: section.sectionNumber, courseSourcedId: course.id,
    schoolSourcedId: section.schoolId, termSourcedIds: [section.termId], grades: [section.grade], status: 'active',
  });
  expect(all('courses')).toContainEqual({ sourcedId: course.id, title: course.name, courseCode: course.number, status: 'active' });
});

test('a next link that loops back is an error, not an endless fetch', async () => {
  server.faults.push({ path: '/v3.0/schools', body: JSON.stringify({ data: [], links: [{ rel: 'next', uri: '/v3.0/schools?limit=50' }] }), times: 10 });
  await expect(fetchAll(50)).rejects.toThrow('Clever pagination loops back to /v3.0/schools?limit=50');
});

test('the fake server refuses what real Clever refuses', async () => {
  const get = (path: string, token = 'TOKEN') => fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  expect((await get('/v3.0/users?limit=10001')).status).toBe(413);
  expect((await get('/v3.0/users', 'wrong')).status).toBe(401);
  expect((await get('/v3.0/unknown')).status).toBe(404);
});

test('logs never carry credentials', () => {
  let written = '';
  const sink = new Writable({ write(chunk, _enc, done) { written += chunk.toString(); done(); } });
  const logger = createLogger('info', sink);
  logger.info({ settings: { credentials: { token: 'sekret-1' } }, headers: { authorization: 'Bearer sekret-2' }, clientSecret: 'sekret-3' }, 'x');
  expect(written).toContain('[redacted]');
  expect(written).not.toMatch(/sekret/);
});

test('a bad environment is a clear error', () => {
  expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
  expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
  expect(loadConfig({})).toMatchObject({ DATABASE_URL: 'postgres://localhost:5432/rostersync', REDIS_URL: 'redis://127.0.0.1:6379', PORT: 3000 });
});

test('one unreadable record on a page is quarantined with its id and the field; the rest of the page is read', async () => {
  const good = { id: 'a1good', district: 'd', name: { first: 'Ok', last: 'Fine' }, email: '', roles: { student: { schools: ['s1'], grade: 3, sis_id: '', credentials: { district_username: '' } } } };
  const bad = { id: 'a1bad', district: 'd', name: 'not an object', roles: { student: { schools: ['s1'] } } };
  server.faults.push({ path: '/v3.0/users?role=student', body: JSON.stringify({ data: [{ data: good }, { data: bad }], links: [] }), times: 1 });
  const { batches, all } = await fetchAll(100);
  const quarantined = batches.filter((b) => b.kind === 'quarantine').flatMap((b) => b.records);
  expect(quarantined).toEqual([{ kind: 'users', sourcedId: 'a1bad', reason: expect.stringMatching(/^users\?role=student record a1bad: name /), refs: { users: ['a1bad'] } }]);
  // Blank email, username and sis_id are missing values; a numeric grade is read as its string.
  expect((all('users') as User[]).find((u) => u.sourcedId === 'a1good')).toEqual({
    sourcedId: 'a1good', role: 'student', givenName: 'Ok', familyName: 'Fine', email: null, username: null, sisId: null,
    grades: ['3'], orgSourcedIds: ['s1'], enabled: true, status: 'active',
  });
});
