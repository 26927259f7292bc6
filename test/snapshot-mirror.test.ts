import { sql } from 'kysely';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { listLicenses, listUsers } from '../src/queries.js';
import { removeStudent } from '../src/sync/ops.js';
import { purgeDistrict } from '../src/sync/purge.js';
import { getRun, type RunView } from '../src/sync/runs.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';

// A district's mirror (src/sync/snapshot-mirror.ts) is the kept stage of its
// last applied complete snapshot. What must hold: a full sync that uses it
// ends exactly where a sync without it ends (same accounts, memberships, seats,
// wait-lists and counts), stages only the records that changed, and an
// identical snapshot is recorded as a no-op with the guard numbers the full
// planner gives. Each comparison is against a twin district on the same
// provider whose mirror is forgotten before every sync.

let t: TestEnv;
let server: FakeCleverServer;

beforeAll(async () => {
  t = await createTestEnv();
  t.startWorker();
  server = await startClever({ seed: 31, schools: 3, students: 150, sections: 18, enrollmentsPerStudent: 3 });
});

afterAll(async () => {
  await server.stop();
  await t.close();
});

/** A district by sourcedId: what a sync decides (account ids differ between districts). */
async function outcome(districtId: string) {
  const users = await listUsers(t.ctx.db, districtId);
  const licenses = await listLicenses(t.ctx.db, districtId);
  return {
    users: users.map(({ id: _id, ...u }) => u).sort((a, b) => a.sourcedId.localeCompare(b.sourcedId)),
    licenses: licenses.map(({ districtId: _d, ...l }) => l),
  };
}

const mirrorOf = (districtId: string) => t.ctx.db.selectFrom('snapshot_mirrors').selectAll().where('district_id', '=', districtId).executeTakeFirst();
const forgetMirror = (districtId: string) => t.ctx.db.deleteFrom('snapshot_mirrors').where('district_id', '=', districtId).execute();
const progressOf = async (run: RunView) => (await getRun(t.ctx.db, run.id)).progress as { records?: number; unchanged?: number; changed?: number } | null;

/** Stage tables of the district's runs that still exist. */
async function stageTablesOf(districtId: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    JOIN sync_runs r ON c.relname LIKE 'r' || replace(r.id::text, '-', '') || '\\_%'
    WHERE s.nspname = 'stage' AND r.district_id = ${districtId} ORDER BY 1`.execute(t.ctx.db);
  return rows.map((r) => r.name);
}

/** Syncs the district (with its mirror) and its twin (without one), and checks they end the same. */
async function syncBoth(id: string, twin: string): Promise<{ run: RunView; twinRun: RunView }> {
  const run = await syncNow(t.ctx, id);
  await forgetMirror(twin);
  const twinRun = await syncNow(t.ctx, twin);
  expect(run.status).toBe('SUCCEEDED');
  expect(twinRun.status).toBe('SUCCEEDED');
  expect(run.counts).toEqual(twinRun.counts);
  expect(await outcome(id)).toEqual(await outcome(twin));
  return { run, twinRun };
}

test('an unchanged snapshot stages nothing and plans nothing; its run records the guard numbers the full planner gives', async () => {
  await addCleverDistrict(t.ctx, 'same', server);
  await addPool(t.ctx, 'same', 'READ', 100);
  const first = await syncNow(t.ctx, 'same');
  expect(first.status).toBe('SUCCEEDED');
  const mirror = await mirrorOf('same');
  expect(mirror).toMatchObject({ run_id: first.id, quiet: true });
  const before = await outcome('same');
  expect(before.licenses[0]).toMatchObject({ assigned: 100 });
  expect(before.users.filter((u) => u.waitlisted.length > 0).length).toBe(50);

  const again = await syncNow(t.ctx, 'same');
  expect(again.status).toBe('SUCCEEDED');
  const progress = await progressOf(again);
  // Every record fetched was found in the mirror; none was staged or planned.
  expect(progress?.changed).toBe(0);
  // Schools, terms, courses, 18 sections, teachers, 150 students and their 450 memberships.
  expect(progress?.unchanged).toBeGreaterThan(150 + 450 + 18);
  expect(Object.values(again.counts ?? {}).every((n) => n === 0)).toBe(true);
  expect(await outcome('same')).toEqual(before);
  // The mirror is still the first run's, and the no-op left no stage of its own.
  expect((await mirrorOf('same'))?.run_id).toBe(first.id);
  expect((await stageTablesOf('same')).every((name) => name.startsWith(`r${first.id.replace(/-/g, '')}_`))).toBe(true);

  // The full planner on the same snapshot and state (the mirror made unprovable) agrees: nothing to do, the same numbers.
  await t.ctx.db.updateTable('snapshot_mirrors').set({ quiet: false }).where('district_id', '=', 'same').execute();
  const full = await syncNow(t.ctx, 'same');
  expect(full.status).toBe('SUCCEEDED');
  expect(full.counts).toEqual(again.counts);
  expect(full.guard).toEqual(again.guard);
  // It planned in full, so its snapshot is the mirror now.
  expect((await mirrorOf('same'))?.run_id).toBe(full.id);
  expect(await outcome('same')).toEqual(before);
});

test('changed records alone are staged; the stage rebuilt from the mirror gives what a sync without a mirror gives', async () => {
  await addCleverDistrict(t.ctx, 'churn', server);
  await addCleverDistrict(t.ctx, 'churn-twin', server);
  await addPool(t.ctx, 'churn', 'READ', 120);
  await addPool(t.ctx, 'churn-twin', 'READ', 120);
  await syncBoth('churn', 'churn-twin');

  const { district } = server;
  const [leaving, renamed] = [...district.students.keys()];
  const gone = district.removeStudent(leaving!);
  district.students.get(renamed!)!.first = 'Renamed';
  district.version += 1;
  const joined = district.addStudent();
  const { run } = await syncBoth('churn', 'churn-twin');
  expect(run.counts).toMatchObject({ usersCreated: 1, usersUpdated: 1, usersDeleted: 1, enrollmentsAdded: 3, enrollmentsEnded: 3 });
  const progress = await progressOf(run);
  // Staged: the renamed student, and the new one with their three memberships; nothing else.
  expect(progress?.changed).toBe(1 + 1 + 3);
  expect((await listUsers(t.ctx.db, 'churn')).find((u) => u.sourcedId === joined.id)?.status).toBe('ACTIVE');

  // Back again, the next day: the mirror of another day is never taken for a no-op, and the result still matches.
  district.restoreStudent(gone.student, gone.sectionIds);
  await t.ctx.db.updateTable('snapshot_mirrors').set({ as_of: '2000-01-01' }).where('district_id', '=', 'churn').execute();
  await syncBoth('churn', 'churn-twin');
});

test('after an ops change, a resync of the same snapshot is planned in full, and agrees with a sync without a mirror', async () => {
  await addCleverDistrict(t.ctx, 'ops', server);
  await addCleverDistrict(t.ctx, 'ops-twin', server);
  await syncBoth('ops', 'ops-twin');
  const student = [...server.district.students.keys()][5]!;
  await removeStudent(t.ctx, 'ops', student);
  await removeStudent(t.ctx, 'ops-twin', student);
  expect((await mirrorOf('ops'))?.quiet).toBe(false);
  const mirrorBefore = (await mirrorOf('ops'))!.run_id;
  const { run } = await syncBoth('ops', 'ops-twin');
  expect((await mirrorOf('ops'))?.run_id).toBe(run.id);
  expect(run.id).not.toBe(mirrorBefore);
});

test('a mirror emptied by a Postgres restart (unlogged tables) or forgotten mid-fetch still ends where a sync without one does', async () => {
  await addCleverDistrict(t.ctx, 'lost', server);
  await addCleverDistrict(t.ctx, 'lost-twin', server);
  await syncBoth('lost', 'lost-twin');
  server.district.addStudent();
  // Crash recovery empties unlogged tables: every record is then staged.
  const m = (await mirrorOf('lost'))!;
  for (const name of await stageTablesOf('lost')) if (name.startsWith(`r${m.run_id.replace(/-/g, '')}_`)) await sql`TRUNCATE ${sql.table(`stage.${name}`)}`.execute(t.ctx.db);
  const { run } = await syncBoth('lost', 'lost-twin');
  expect((await progressOf(run))?.unchanged).toBe(0);
  expect((await progressOf(run))?.changed).toBeGreaterThan(150 + 450);

  // The mirror replaced while the fetch runs: the rebuild refuses it and the run fetches again without it.
  server.district.addStudent();
  await t.stopWorkers();
  let forgotten = false;
  t.startWorker({ onProgress: async (p) => { if (!forgotten && p.phase === 'fetch') { forgotten = true; await forgetMirror('lost'); } } });
  try {
    const after = await syncBoth('lost', 'lost-twin');
    expect(forgotten).toBe(true);
    expect((await mirrorOf('lost'))?.run_id).toBe(after.run.id);
  } finally {
    await t.stopWorkers();
    t.startWorker();
  }
});

test('a purge drops the mirror with the stages; the next sync brings the district back in full', async () => {
  await addCleverDistrict(t.ctx, 'wipe', server);
  await addCleverDistrict(t.ctx, 'wipe-twin', server);
  await syncBoth('wipe', 'wipe-twin');
  expect(await stageTablesOf('wipe')).not.toEqual([]);
  await purgeDistrict(t.ctx, 'wipe', 'all-roster-data');
  expect(await mirrorOf('wipe')).toBeUndefined();
  expect(await stageTablesOf('wipe')).toEqual([]);
  expect(await listUsers(t.ctx.db, 'wipe')).toEqual([]);
  const run = await syncNow(t.ctx, 'wipe');
  expect((await progressOf(run))?.unchanged).toBeUndefined();
  expect(await outcome('wipe')).toEqual(await outcome('wipe-twin'));
});
