import { sql } from 'kysely';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { listLicenses, listUsers, type UserView } from '../src/queries.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';

let t: TestEnv;
let server: FakeCleverServer;
const D = 'e2e';

beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever({ seed: 11, schools: 3, students: 150, sections: 18, enrollmentsPerStudent: 3 });
  t.startWorker();
  await addCleverDistrict(t.ctx, D, server);
  // Whole-district pool with room for all; a MATH pool too small for everyone.
  await addPool(t.ctx, D, 'READ', 500);
  await addPool(t.ctx, D, 'MATH', 20, { courses: ['MATH-1'] });
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

const byId = (users: UserView[]) => new Map(users.map((u) => [u.sourcedId, u]));

/** What the platform must hold after syncing the fake district as it is now. */
async function expectMirrorsProvider(): Promise<void> {
  const users = byId(await listUsers(t.ctx.db, D, { status: 'ACTIVE' }));
  const district = server.district;
  expect(new Set(users.keys())).toEqual(new Set([...district.students.keys(), ...district.teachers.keys()]));
  for (const [id] of district.students) {
    const expected = district.sectionsOf(id).map((s) => s.id).sort();
    expect(users.get(id)?.classes).toEqual(expected);
  }
}

test('first sync mirrors the provider and seats students by pool scope', async () => {
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(run.counts.usersCreated).toBe(150 + server.district.teachers.size);
  await expectMirrorsProvider();

  const pools = new Map((await listLicenses(t.ctx.db, D)).map((p) => [p.product, p]));
  expect(pools.get('READ')).toMatchObject({ seats: 500, assigned: 150, waitlisted: 0 });
  // MATH-1 students beyond 20 seats are wait-listed, never over-allocated.
  const mathStudents = [...server.district.students.keys()].filter((id) =>
    server.district.sectionsOf(id).some((s) => server.district.courses.find((c) => c.id === s.courseId)?.number === 'MATH-1'));
  expect(mathStudents.length).toBeGreaterThan(20);
  expect(pools.get('MATH')).toMatchObject({ assigned: 20, waitlisted: mathStudents.length - 20 });
  // Teachers never hold seats.
  const teachers = (await listUsers(t.ctx.db, D)).filter((u) => u.role === 'teacher');
  expect(teachers.every((u) => u.products.length === 0)).toBe(true);
});

test('resyncing an unchanged roster changes nothing', async () => {
  const before = await listUsers(t.ctx.db, D);
  const audits = await t.ctx.db.selectFrom('audit_log').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(Object.values(run.counts).every((n) => n === 0)).toBe(true);
  expect(await listUsers(t.ctx.db, D)).toEqual(before);
  const after = await t.ctx.db.selectFrom('audit_log').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  expect(after.n).toBe(audits.n);
});

test('a student who leaves loses classes and seats but keeps the account; returning restores them with the same id', async () => {
  const mathHolder = (await listUsers(t.ctx.db, D)).find((u) => u.products.includes('MATH'))!;
  const firstWaiting = await sql<{ sourced_id: string }>`
    SELECT u.sourced_id FROM waitlist w JOIN users u ON u.id = w.user_id JOIN license_pools p ON p.id = w.pool_id
    WHERE p.product = 'MATH' ORDER BY w.queued_at LIMIT 1`.execute(t.ctx.db);
  const { student, sectionIds } = server.district.removeStudent(mathHolder.sourcedId);

  const leave = await syncNow(t.ctx, D);
  expect(leave.status).toBe('SUCCEEDED');
  expect(leave.counts).toMatchObject({ usersDeleted: 1, enrollmentsEnded: sectionIds.length, seatsReleased: 2 });
  const gone = byId(await listUsers(t.ctx.db, D)).get(student.id)!;
  expect(gone).toMatchObject({ id: mathHolder.id, status: 'DELETED', classes: [], products: [] });
  // History is kept: ended enrollments and released seats are still there.
  const history = await t.ctx.db.selectFrom('enrollments').select(['ended_at', 'ended_reason']).where('user_id', '=', mathHolder.id).execute();
  expect(history).toHaveLength(sectionIds.length);
  expect(history.every((h) => h.ended_at !== null && h.ended_reason === 'absent')).toBe(true);
  // The freed MATH seat went to the student who had waited longest.
  const heir = byId(await listUsers(t.ctx.db, D)).get(firstWaiting.rows[0]!.sourced_id)!;
  expect(heir.products).toContain('MATH');
  expect((await listLicenses(t.ctx.db, D)).find((p) => p.product === 'MATH')!.assigned).toBe(20);

  server.district.restoreStudent(student, sectionIds);
  const back = await syncNow(t.ctx, D);
  expect(back.counts).toMatchObject({ usersReactivated: 1, usersCreated: 0, enrollmentsAdded: sectionIds.length });
  const returned = byId(await listUsers(t.ctx.db, D)).get(student.id)!;
  expect(returned).toMatchObject({ id: mathHolder.id, status: 'ACTIVE', classes: [...sectionIds].sort() });
  expect(returned.products).toContain('READ');
  // MATH is full now: the returning student waits like anyone else.
  expect(returned.products).not.toContain('MATH');
  expect(returned.waitlisted).toContain('MATH');
  await expectMirrorsProvider();
});

test('a teacher who leaves is deleted and removed from their classes', async () => {
  const teacherId = [...server.district.teachers.keys()][0]!;
  const theirSections = server.district.sectionsOf(teacherId).map((s) => s.id);
  server.district.removeTeacher(teacherId);
  const run = await syncNow(t.ctx, D);
  expect(run.counts).toMatchObject({ usersDeleted: 1, enrollmentsEnded: theirSections.length, seatsReleased: 0 });
  expect(byId(await listUsers(t.ctx.db, D)).get(teacherId)).toMatchObject({ status: 'DELETED', classes: [] });
});

test('a class moving to another teacher ends one membership and adds the other', async () => {
  const section = [...server.district.sections.values()].find((s) => s.teacherIds.length === 1)!;
  const oldTeacher = section.teacherIds[0]!;
  const newTeacher = [...server.district.teachers.keys()].find((id) => id !== oldTeacher)!;
  server.district.setSectionTeacher(section.id, newTeacher);
  const run = await syncNow(t.ctx, D);
  expect(run.counts).toMatchObject({ enrollmentsAdded: 1, enrollmentsEnded: 1, usersDeleted: 0 });
  const users = byId(await listUsers(t.ctx.db, D));
  expect(users.get(newTeacher)!.classes).toContain(section.id);
  expect(users.get(oldTeacher)!.classes).not.toContain(section.id);
  await expectMirrorsProvider();
});

test('a dry run reports the plan and applies nothing', async () => {
  const before = await listUsers(t.ctx.db, D);
  const leaver = [...server.district.students.keys()][3]!;
  const removed = server.district.removeStudent(leaver);
  const dry = await syncNow(t.ctx, D, { dryRun: true });
  expect(dry).toMatchObject({ status: 'SUCCEEDED', dryRun: true });
  expect(dry.counts.usersDeleted).toBe(1);
  expect(await listUsers(t.ctx.db, D)).toEqual(before);
  server.district.restoreStudent(removed.student, removed.sectionIds);
});

test('ops removal uses the same rules: classes ended, seats freed, wait-list served', async () => {
  const { removeStudent } = await import('../src/sync/ops.js');
  const holder = (await listUsers(t.ctx.db, D)).find((u) => u.products.includes('MATH'))!;
  const run = await removeStudent(t.ctx, D, holder.sourcedId);
  expect(run).toMatchObject({ status: 'SUCCEEDED', trigger: 'ops:remove-student' });
  expect(run.counts).toMatchObject({ usersDeleted: 1, enrollmentsEnded: holder.classes.length, seatsReleased: holder.products.length, seatsAssigned: 1 });
  expect(byId(await listUsers(t.ctx.db, D)).get(holder.sourcedId)).toMatchObject({ id: holder.id, status: 'DELETED', classes: [], products: [] });
  expect((await listLicenses(t.ctx.db, D)).find((p) => p.product === 'MATH')!.assigned).toBe(20);
  const audit = await t.ctx.db.selectFrom('audit_log').selectAll().where('entity', '=', 'user').where('entity_key', '=', holder.sourcedId).where('action', '=', 'delete').execute();
  expect(audit.at(-1)?.detail).toEqual({ reason: 'removed-by-ops' });
  // The provider still rosters the student, so the next sync brings them back, same account.
  const again = await syncNow(t.ctx, D);
  expect(again.counts.usersReactivated).toBe(1);
  expect(byId(await listUsers(t.ctx.db, D)).get(holder.sourcedId)).toMatchObject({ id: holder.id, status: 'ACTIVE' });
});

test('growing a pool serves its wait-list first-come at once', async () => {
  const waiting = await sql<{ sourced_id: string }>`
    SELECT u.sourced_id FROM waitlist w JOIN users u ON u.id = w.user_id JOIN license_pools p ON p.id = w.pool_id
    WHERE p.product = 'MATH' ORDER BY w.queued_at, u.sourced_id`.execute(t.ctx.db);
  expect(waiting.rows.length).toBeGreaterThan(2);
  const run = await addPool(t.ctx, D, 'MATH', 22, { courses: ['MATH-1'] });
  expect(run.counts.seatsAssigned).toBe(2);
  const users = byId(await listUsers(t.ctx.db, D));
  expect(waiting.rows.slice(0, 2).map((r) => users.get(r.sourced_id)!.products.includes('MATH'))).toEqual([true, true]);
  expect(users.get(waiting.rows[2]!.sourced_id)!.products).not.toContain('MATH');
});
