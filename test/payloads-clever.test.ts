import { CLEVER as C, cleverPayload, cleverUnreadable } from '../fixtures/payloads/clever.js';
import type { CleverReplayServer } from '../fixtures/payloads/server.js';
import type { TestEnv } from './helpers/context.js';
import { addPool, syncNow } from './helpers/district.js';
import { addReplayDistrict, changes, createPayloadEnv, startClever, storedState, type StoredState } from './helpers/payloads.js';

// Clever payloads (fixtures/payloads/clever.ts, each record citing its source in
// Clever's docs) replayed through the real Clever connector, queue, reconciler
// and database.

let t: TestEnv;
let server: CleverReplayServer;
const D = 'clever-payloads';

beforeAll(async () => {
  t = await createPayloadEnv();
  t.startWorker();
  server = await startClever(cleverPayload(), { maxPage: 2 });
  await addReplayDistrict(t.ctx.db, D, server, { pageSize: 100 });
  await addPool(t.ctx, D, 'READ', 100);
  await addPool(t.ctx, D, 'K2', 100, { schools: [C.school2] });
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

let first: StoredState;

test('multi-role people, district admins, blanks and duplicates map to what they mean', async () => {
  const run = await syncNow(t.ctx, D);
  expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { recordsQuarantined: 0, usersCreated: 6 } });
  first = await storedState(t.ctx.db, D);

  // Teacher at school 1 and student at school 2, teaching section 1 and sitting section 2: a teacher, no seat.
  expect(first.users[C.teacherStudent]).toEqual({
    role: 'teacher', status: 'ACTIVE', schools: [C.school1], grades: [], email: 'r.morales@clever.example', username: 'rmorales', sisId: 'T-301',
    classes: [C.section1, C.section2].sort(), products: [],
  });
  expect(first.enrollments[`${C.section1}/${C.teacherStudent}`]).toMatchObject({ role: 'teacher' });
  // A district admin who also teaches is a teacher with the teacher role's schools.
  expect(first.users[C.adminTeacher]).toMatchObject({ role: 'teacher', schools: [C.school2], sisId: 'T-303', products: [] });
  // A district admin alone: an administrator account, no schools, no seat.
  expect(first.users[C.admin]).toEqual({
    role: 'administrator', status: 'ACTIVE', schools: [], grades: [], email: 'superintendent@clever.example', username: 'dreyes', sisId: 'DA-1', classes: [], products: [],
  });
  // Blank username and sis_id are missing values: the username falls back to the email.
  expect(first.users[C.student1]).toEqual({
    role: 'student', status: 'ACTIVE', schools: [C.school1], grades: ['9'], email: 'jamie.lee@students.clever.example', username: 'jamie.lee@students.clever.example',
    sisId: null, classes: [C.section1], products: ['READ'],
  });
  // Listed twice in section 1: one membership. Schools in any order: the same schools. School 2 gives the K2 seat.
  expect(first.users[C.student2]).toMatchObject({ role: 'student', schools: [C.school1, C.school2].sort(), classes: [C.section1, C.section2].sort(), products: ['K2', 'READ'] });
  expect(Object.keys(first.enrollments).filter((k) => k === `${C.section1}/${C.student1}`)).toHaveLength(1);
  // The fetch saw that key twice, so the copies were merged in Postgres rather than skipped.
  expect((await t.ctx.db.selectFrom('sync_runs').select('staged_keys_distinct').where('id', '=', run.id).executeTakeFirstOrThrow()).staged_keys_distinct).toBe(false);

  // Blank section_number falls back to the SIS id; blank school_number to the school's SIS id.
  expect(first.classes[C.section1]).toEqual({ status: 'ACTIVE', school: C.school1, classCode: 'SEC-100', grades: ['9'] });
  expect(first.classes[C.section2]).toMatchObject({ classCode: '7', grades: ['Kindergarten'] });
  expect(first.schools[C.school1]).toMatchObject({ identifier: 'SCH-1' });
  // A term ending as a date-time is stored by its date.
  expect(first.terms[C.term]).toEqual({ startDate: '2020-08-01', endDate: '2099-06-30' });
});

test('a no-op resync changes nothing', async () => {
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(changes(run.counts)).toEqual({});
  expect(await storedState(t.ctx.db, D)).toEqual(first);
});

test('whichever role copy comes last, a teacher who is also a student stays a teacher without a seat', async () => {
  // Clever lists the person under each role; serve the student copy in both lists' last place and first place.
  const p = cleverPayload();
  p['users?role=student'] = [...p['users?role=student']!].reverse();
  p['users?role=teacher'] = [...p['users?role=teacher']!].reverse();
  server.payload = p;
  try {
    const run = await syncNow(t.ctx, D);
    expect(changes(run.counts)).toEqual({});
    expect((await storedState(t.ctx.db, D)).users[C.teacherStudent]).toMatchObject({ role: 'teacher', products: [] });
  } finally {
    server.payload = cleverPayload();
  }
});

test('unreadable records are quarantined: counted, named, and everyone they name keeps exactly their state', async () => {
  server.payload = cleverUnreadable();
  try {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('SUCCEEDED');
    expect(run.counts.recordsQuarantined).toBe(2);
    expect(changes(run.counts)).toEqual({});
    const detail = (run.guard as { quarantined: { kind: string; sourcedId: string; reason: string }[] }).quarantined;
    expect(detail).toEqual(expect.arrayContaining([
      expect.objectContaining({ kind: 'users', sourcedId: C.student1, reason: expect.stringContaining('name') }),
      expect.objectContaining({ kind: 'classes', sourcedId: C.section2, reason: expect.stringContaining('students.1') }),
    ]));
    // Not a departure: the student and the section's members keep their classes and seats.
    expect(await storedState(t.ctx.db, D)).toEqual(first);
  } finally {
    server.payload = cleverPayload();
  }
});

test('more quarantined records than the district allows HOLD the run and change nothing', async () => {
  await addReplayDistrict(t.ctx.db, D, server, { guard: { quarantineThresholdMin: 1, quarantineThresholdPct: 0 } });
  server.payload = cleverUnreadable();
  try {
    const run = await syncNow(t.ctx, D);
    expect(run.status).toBe('HELD');
    expect(run.error).toMatch(/2 provider records could not be read, above the district's threshold of 1/);
    expect(await storedState(t.ctx.db, D)).toEqual(first);
  } finally {
    server.payload = cleverPayload();
    await addReplayDistrict(t.ctx.db, D, server);
  }
});
