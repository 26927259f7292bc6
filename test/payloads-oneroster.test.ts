import { ORG, oneRoster11, oneRoster12, oneRoster12Unreadable } from '../fixtures/payloads/oneroster.js';
import type { OneRosterReplayServer } from '../fixtures/payloads/server.js';
import type { TestEnv } from './helpers/context.js';
import { addPool, syncNow } from './helpers/district.js';
import { addReplayDistrict, changes, createPayloadEnv, startOneRoster, storedState, type StoredState } from './helpers/payloads.js';

// OneRoster 1.1 and 1.2 payloads (fixtures/payloads/oneroster.ts, each record
// citing the spec table or the tenant deviation it follows) replayed through
// the real OneRoster connector, queue, reconciler and database.

const today = new Date().toISOString().slice(0, 10);
let t: TestEnv;
beforeAll(async () => {
  t = await createPayloadEnv();
  t.startWorker();
});
afterAll(() => t.close());

describe('OneRoster 1.2', () => {
  const D = 'or12-payloads';
  let server: OneRosterReplayServer;
  let first: StoredState;

  beforeAll(async () => {
    server = await startOneRoster('1.2', oneRoster12(today), { maxPage: 3 });
    await addReplayDistrict(t.ctx.db, D, server);
    await addPool(t.ctx, D, 'READ', 100);
    await addPool(t.ctx, D, 'LAB-B', 100, { schools: [ORG.schoolB] });
  });
  afterAll(() => server.stop());

  test('roles are chosen by meaning and date, schools come from the roles that make the account', async () => {
    const run = await syncNow(t.ctx, D, { full: true });
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { recordsQuarantined: 0 } });
    first = await storedState(t.ctx.db, D);
    const u = first.users;
    // Guardian at B (primary, listed first), teacher at A (secondary): a teacher at A.
    expect(u['usr-teacher-guardian']).toMatchObject({ role: 'teacher', status: 'ACTIVE', schools: [ORG.schoolA], classes: ['class-algebra', 'class-art', 'class-bio'], products: [] });
    // District administrator (listed first, primary) and teacher at B: a teacher of B only.
    expect(u['usr-admin-teacher']).toMatchObject({ role: 'teacher', status: 'ACTIVE', schools: [ORG.schoolB], classes: [], products: [] });
    // Student at A, aide at B: a student of A only, so no seat of B's pool.
    expect(u['usr-student-aide']).toMatchObject({ role: 'student', schools: [ORG.schoolA], products: ['READ'] });
    // Teacher role ended in 2021, administrator role begins in 2099: a student.
    expect(u['usr-former-teacher']).toMatchObject({ role: 'student', schools: [ORG.schoolA], classes: ['class-bio'], products: ['READ'] });
    // Their only rostered role ended: no account.
    expect(u['usr-left-teacher']).toBeUndefined();
    // District administrators: administrator accounts without seats (the same rule as Clever's district_admin).
    expect(u['usr-district-admin']).toMatchObject({ role: 'administrator', status: 'ACTIVE', schools: [ORG.district], classes: [], products: [] });
  });

  test('values outside the schema are read for what they mean', async () => {
    const u = first.users;
    // enabledUser "TRUE", grades "10", status null, username "" (falls back to the email), identifier "" (no SIS id).
    expect(u['usr-tolerant']).toEqual({
      role: 'student', status: 'ACTIVE', schools: [ORG.schoolB], grades: ['10'], email: 'usr-tolerant@springfield.example', username: 'usr-tolerant@springfield.example',
      sisId: null, classes: ['class-art'], products: ['LAB-B', 'READ'],
    });
    // enabledUser "1", grades "09, 10".
    expect(u['usr-enabled-one']).toMatchObject({ status: 'ACTIVE', grades: ['09', '10'], sisId: 'SIS-usr-enabled-one', classes: ['class-algebra'] });
    // enabledUser "0": not on the roster, holds nothing.
    expect(u['usr-disabled-zero'] ?? { status: 'DELETED', classes: [], products: [] }).toMatchObject({ status: 'DELETED', classes: [], products: [] });
    // grades as a comma list and as one string; an empty classCode is missing.
    expect(first.classes['class-art']).toEqual({ status: 'ACTIVE', school: ORG.schoolB, classCode: null, grades: ['09', '10'] });
    expect(first.classes['class-algebra']).toMatchObject({ grades: ['09'] });
  });

  test('only schools are schools: a department rolls up to its school', async () => {
    expect(Object.keys(first.schools).sort()).toEqual([ORG.schoolA, ORG.schoolB].sort());
    expect(first.classes['class-bio']).toMatchObject({ school: ORG.schoolA });
  });

  test('dates: endDate is exclusive, date-times compare by date, and a dropped-and-re-added student is enrolled', async () => {
    const e = first.enrollments;
    // Ends today (exclusive): not enrolled today. Ends tomorrow: today is its last day.
    expect(e['class-bio/usr-ends']).toBeUndefined();
    expect(e['class-algebra/usr-ends']).toEqual({ role: 'student', beginDate: '2020-08-01', endDate: today });
    // endDate 2099-06-30T00:00:00Z, exclusive: the last day is the 29th. A blank beginDate is missing.
    expect(e['class-art/usr-tolerant']).toEqual({ role: 'student', beginDate: null, endDate: '2099-06-29' });
    // One ended and one current record of the same membership: enrolled.
    expect(e['class-algebra/usr-readded']).toEqual({ role: 'student', beginDate: '2021-02-01', endDate: null });
    expect(first.users['usr-readded']).toMatchObject({ status: 'ACTIVE', classes: ['class-algebra'], products: ['READ'] });
    expect(first.terms['term-2026']).toEqual({ startDate: '2020-08-01', endDate: '2099-06-30' });
  });

  test('a no-op resync changes nothing', async () => {
    const run = await syncNow(t.ctx, D, { full: true });
    expect(run.status).toBe('SUCCEEDED');
    expect(changes(run.counts)).toEqual({});
    expect(await storedState(t.ctx.db, D)).toEqual(first);
  });

  test('unreadable records and unknown statuses are quarantined, never taken as departures', async () => {
    server.payload = oneRoster12Unreadable(today);
    try {
      const run = await syncNow(t.ctx, D, { full: true });
      expect(run.status).toBe('SUCCEEDED');
      expect(run.counts.recordsQuarantined).toBe(3);
      expect(changes(run.counts)).toEqual({});
      const detail = (run.guard as { quarantined: { kind: string; sourcedId: string; reason: string }[] }).quarantined;
      expect(detail).toEqual(expect.arrayContaining([
        expect.objectContaining({ kind: 'users', sourcedId: 'usr-tolerant', reason: expect.stringContaining('givenName') }),
        expect.objectContaining({ kind: 'users', sourcedId: 'usr-enabled-one', reason: expect.stringContaining("unknown status 'pending'") }),
        expect.objectContaining({ kind: 'enrollments', sourcedId: 'enr-readded-new', reason: expect.stringContaining('endDate') }),
      ]));
      expect(await storedState(t.ctx.db, D)).toEqual(first);
    } finally {
      server.payload = oneRoster12(today);
    }
  });

  test('above the quarantine threshold the run is HELD and nothing changes', async () => {
    await addReplayDistrict(t.ctx.db, D, server, { guard: { quarantineThresholdMin: 2, quarantineThresholdPct: 0 } });
    server.payload = oneRoster12Unreadable(today);
    try {
      const run = await syncNow(t.ctx, D, { full: true });
      expect(run.status).toBe('HELD');
      expect(run.error).toMatch(/3 provider records could not be read, above the district's threshold of 2/);
      expect(await storedState(t.ctx.db, D)).toEqual(first);
    } finally {
      server.payload = oneRoster12(today);
      await addReplayDistrict(t.ctx.db, D, server);
    }
  });
});

test('a rostered role that ends is a departure, even in a delta', async () => {
  const D = 'or12-role-ends';
  const teaching = oneRoster12(today);
  teaching.users = teaching.users!.map((u) => ((u as { sourcedId: string }).sourcedId === 'usr-left-teacher'
    ? { ...(u as object), roles: [{ roleType: 'primary', role: 'teacher', org: { sourcedId: ORG.schoolA, type: 'org' }, beginDate: '2019-08-01' }] } : u));
  const server = await startOneRoster('1.2', teaching);
  try {
    await addReplayDistrict(t.ctx.db, D, server);
    expect((await syncNow(t.ctx, D, { full: true })).status).toBe('SUCCEEDED');
    const before = await storedState(t.ctx.db, D);
    expect(before.users['usr-left-teacher']).toMatchObject({ role: 'teacher', status: 'ACTIVE', schools: [ORG.schoolA] });

    server.payload = oneRoster12(today);
    const run = await syncNow(t.ctx, D);
    expect(run).toMatchObject({ status: 'SUCCEEDED', full: false, counts: { usersDeleted: 1 } });
    const after = await storedState(t.ctx.db, D);
    expect(after.users['usr-left-teacher']).toMatchObject({ status: 'DELETED', classes: [] });
    // Nobody else moved.
    expect({ ...after.users, 'usr-left-teacher': null }).toEqual({ ...before.users, 'usr-left-teacher': null });
  } finally {
    await server.stop();
  }
});

describe('OneRoster 1.1', () => {
  const D = 'or11-payloads';
  let server: OneRosterReplayServer;

  beforeAll(async () => {
    server = await startOneRoster('1.1', oneRoster11(today), { maxPage: 2 });
    await addReplayDistrict(t.ctx.db, D, server);
    await addPool(t.ctx, D, 'MUSIC-B', 100, { schools: [ORG.schoolB] });
  });
  afterAll(() => server.stop());

  test('one role per user, sub-orgs, string booleans and exclusive end dates', async () => {
    const run = await syncNow(t.ctx, D, { full: true });
    expect(run).toMatchObject({ status: 'SUCCEEDED', counts: { recordsQuarantined: 0 } });
    const s = await storedState(t.ctx.db, D);
    expect(s.users['u11-teacher']).toMatchObject({ role: 'teacher', status: 'ACTIVE', schools: [ORG.schoolA, ORG.schoolB].sort(), products: [] });
    // Org is a department of school B: the student is at school B (and so in B's pool). Band ended today (exclusive);
    // music has an ended and a current record: enrolled.
    expect(s.users['u11-student']).toEqual({
      role: 'student', status: 'ACTIVE', schools: [ORG.schoolB], grades: ['03'], email: 'u11-student@springfield.example', username: 'u11-student.login',
      sisId: 'SIS-u11-student', classes: ['class-music'], products: ['MUSIC-B'],
    });
    expect(s.classes['class-music']).toMatchObject({ school: ORG.schoolB, grades: ['03', '04'] });
    expect(s.classes['class-band']).toMatchObject({ school: ORG.schoolA, grades: ['03', '04'] });
    expect(Object.keys(s.schools).sort()).toEqual([ORG.schoolA, ORG.schoolB].sort());
    // 'inactive' (1.0) is tobedeleted; enabledUser "FALSE" is disabled; a guardian is not an account.
    for (const id of ['u11-inactive', 'u11-disabled']) expect(s.users[id] ?? { status: 'DELETED', classes: [] }).toMatchObject({ status: 'DELETED', classes: [] });
    expect(s.users['u11-guardian']).toBeUndefined();
    expect(s.users['u11-admin']).toMatchObject({ role: 'administrator', status: 'ACTIVE', schools: [ORG.district], products: [] });
    // Role "Student", status "Active", enabledUser "TRUE".
    expect(s.users['u11-caps']).toMatchObject({ role: 'student', status: 'ACTIVE', classes: ['class-band'] });

    const again = await syncNow(t.ctx, D, { full: true });
    expect(changes(again.counts)).toEqual({});
    expect(await storedState(t.ctx.db, D)).toEqual(s);
  });
});
