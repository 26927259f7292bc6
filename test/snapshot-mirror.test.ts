import { sql } from 'kysely';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { listLicenses, listUsers } from '../src/queries.js';
import { removeStudent } from '../src/sync/ops.js';
import { purgeDistrict } from '../src/sync/purge.js';
import { getRun, type RunView } from '../src/sync/runs.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';
import { prng } from '../fixtures/prng.js';
import { RosterDistrict } from '../fixtures/district.js';
import { FakeOneRosterServer } from '../fixtures/oneroster/server.js';
import { upsertDistrict } from '../src/districts/repository.js';
import { worthPlanningAsDifference } from '../src/sync/snapshot-mirror.js';
import { KeyHashLog } from '../src/sync/record-hash.js';
import { approveRun } from '../jobs/trigger.js';
import { waitForRun } from '../src/sync/wait.js';

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
  // District credentials are sealed at rest (src/secrets): the OneRoster district needs a key.
  process.env.SECRETS_KEY ??= Buffer.alloc(32, 7).toString('base64');
  t = await createTestEnv({ SECRETS_KEY: process.env.SECRETS_KEY });
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

/** Every membership and seat the district ever had, with how each ended: what the license rules decided, not only where they left it. */
async function history(districtId: string) {
  const { rows: memberships } = await sql<{ u: string; c: string; role: string; ended: boolean; reason: string | null }>`
    SELECT u.sourced_id AS u, c.sourced_id AS c, e.role, e.ended_at IS NOT NULL AS ended, e.ended_reason AS reason
    FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
    WHERE e.district_id = ${districtId} ORDER BY 1, 2, 4, 5`.execute(t.ctx.db);
  const { rows: seats } = await sql<{ u: string; product: string; released: boolean; reason: string | null }>`
    SELECT u.sourced_id AS u, p.product, s.released_at IS NOT NULL AS released, s.release_reason AS reason
    FROM seat_assignments s JOIN users u ON u.id = s.user_id JOIN license_pools p ON p.id = s.pool_id
    WHERE p.district_id = ${districtId} ORDER BY 1, 2, 3, 4`.execute(t.ctx.db);
  const { rows: classes } = await sql<{ c: string; status: string; title: string; course: string }>`
    SELECT sourced_id AS c, status, title, course_sourced_id AS course FROM classes WHERE district_id = ${districtId} ORDER BY 1`.execute(t.ctx.db);
  // Who waits for which product, in the order seats will be offered.
  const { rows: waitlist } = await sql<{ u: string; product: string }>`
    SELECT u.sourced_id AS u, p.product FROM waitlist w JOIN users u ON u.id = w.user_id JOIN license_pools p ON p.id = w.pool_id
    WHERE p.district_id = ${districtId} ORDER BY p.product, w.queued_at, u.sourced_id`.execute(t.ctx.db);
  return { memberships, seats, classes, waitlist };
}

const mirrorOf = (districtId: string) => t.ctx.db.selectFrom('snapshot_mirrors').selectAll().where('district_id', '=', districtId).executeTakeFirst();
const forgetMirror = (districtId: string) => t.ctx.db.deleteFrom('snapshot_mirrors').where('district_id', '=', districtId).execute();
const progressOf = async (run: RunView) => (await getRun(t.ctx.db, run.id)).progress as { records?: number; unchanged?: number; changed?: number; planned?: string } | null;

const keysDistinct = async (run: RunView) => (await t.ctx.db.selectFrom('sync_runs').select('staged_keys_distinct').where('id', '=', run.id).executeTakeFirstOrThrow()).staged_keys_distinct;

/** Stage tables of the district's runs that still exist. */
async function stageTablesOf(districtId: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    JOIN sync_runs r ON c.relname LIKE 'r' || replace(r.id::text, '-', '') || '\\_%'
    WHERE s.nspname = 'stage' AND r.district_id = ${districtId} ORDER BY 1`.execute(t.ctx.db);
  return rows.map((r) => r.name);
}

/** Syncs the district (with its mirror) and its twin (without one), and checks they end the same. */
async function syncBoth(id: string, twin: string, opts: { full?: boolean } = {}): Promise<{ run: RunView; twinRun: RunView }> {
  const run = await syncNow(t.ctx, id, { full: opts.full });
  await forgetMirror(twin);
  const twinRun = await syncNow(t.ctx, twin, { full: opts.full });
  expect([run.status, run.error]).toEqual(['SUCCEEDED', null]);
  expect([twinRun.status, twinRun.error]).toEqual(['SUCCEEDED', null]);
  expect(run.counts).toEqual(twinRun.counts);
  expect(run.guard).toEqual(twinRun.guard);
  expect(await outcome(id)).toEqual(await outcome(twin));
  expect(await history(id)).toEqual(await history(twin));
  // The twin never has a mirror to plan against.
  expect((await progressOf(twinRun))?.planned).toBe('whole');
  return { run, twinRun };
}

test('an unchanged snapshot stages nothing and plans nothing; its run records the guard numbers the full planner gives', async () => {
  await addCleverDistrict(t.ctx, 'same', server);
  await addPool(t.ctx, 'same', 'READ', 100);
  const first = await syncNow(t.ctx, 'same');
  expect(first.status).toBe('SUCCEEDED');
  // A first sync stages every record itself and saw each key once: nothing to merge (src/sync/record-hash.ts KeyHashLog).
  expect(await keysDistinct(first)).toBe(true);
  const mirror = await mirrorOf('same');
  expect(mirror).toMatchObject({ run_id: first.id, quiet: true });
  const before = await outcome('same');
  expect(before.licenses[0]).toMatchObject({ assigned: 100 });
  expect(before.users.filter((u) => u.waitlisted.length > 0).length).toBe(50);

  const again = await syncNow(t.ctx, 'same');
  expect(again.status).toBe('SUCCEEDED');
  // Completed from the mirror, its fetch did not see every key: not known.
  expect(await keysDistinct(again)).toBeNull();
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
  // Planned as its difference from the mirror.
  expect(progress?.planned).toBe('difference');
  expect((await listUsers(t.ctx.db, 'churn')).find((u) => u.sourcedId === joined.id)?.status).toBe('ACTIVE');

  // Back again, the next day: the mirror of another day is never taken for a no-op, and the result still matches.
  district.restoreStudent(gone.student, gone.sectionIds);
  await t.ctx.db.updateTable('snapshot_mirrors').set({ as_of: '2000-01-01' }).where('district_id', '=', 'churn').execute();
  const nextDay = await syncBoth('churn', 'churn-twin');
  expect((await progressOf(nextDay.run))?.planned).toBe('whole');
});

type Provider = { district: RosterDistrict; add: (id: string) => Promise<void>; full?: boolean };

/**
 * Rounds of every kind of roster change the provider can send, each synced
 * by the district (planned as its difference from the mirror) and by its twin
 * (the whole snapshot): both must end the same, run by run.
 */
async function mixedRounds(name: string, provider: Provider, reasons: string[]) {
  const d = provider.district;
  const [id, twin] = [name, `${name}-twin`];
  for (const district of [id, twin]) {
    await provider.add(district);
    // Fewer seats than students (a wait-list that moves), and a pool scoped to one course (eligibility by class).
    await addPool(t.ctx, district, 'READ', 90);
    await addPool(t.ctx, district, 'MATH', 20, { courses: [d.courses[0]!.id] });
  }
  await syncBoth(id, twin, provider);
  const rand = prng(2026);
  const pickOf = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const removed: ReturnType<typeof d.removeStudent>[] = [];
  const student = () => pickOf([...d.students.keys()]);
  const changes: ((round: number) => void)[] = [
    () => removed.push(d.removeStudent(student())),
    () => { const back = removed.pop(); if (back) d.restoreStudent(back.student, back.sectionIds.filter((s) => d.sections.has(s))); },
    () => d.addStudent(),
    (r) => { d.students.get(student())!.first = `Renamed${r}`; },
    () => {
      const who = student();
      const from = d.sectionsOf(who)[0];
      const to = pickOf([...d.sections.values()].filter((s) => !s.studentIds.includes(who)));
      if (from) d.moveStudent(who, from.id, to.id);
    },
    // Every membership of one student ended: they leave by the enrollments-ended rule (where the provider sends end dates).
    () => { const who = student(); for (const s of d.sectionsOf(who)) d.endEnrollment(s.id, who, '2001-06-30'); },
    // One membership ended, one ending later.
    () => { const who = student(); const [a, b] = d.sectionsOf(who); if (a) d.endEnrollment(a.id, who, '2001-06-30'); if (b) d.endEnrollment(b.id, who, '2099-06-30'); },
    () => d.setEnabled(student(), false),
    () => d.markToBeDeleted(student()),
    () => d.setSectionTeacher(pickOf([...d.sections.keys()]), pickOf([...d.teachers.keys()])),
    (r) => { pickOf([...d.sections.values()]).name = `Renamed section ${r}`; },
    // A class moves to the scoped course, or away from it: seats follow eligibility.
    () => { const s = pickOf([...d.sections.values()]); s.courseId = s.courseId === d.courses[0]!.id ? d.courses[1]!.id : d.courses[0]!.id; },
    // A class disappears: its memberships end, its members' seats are weighed again.
    () => { if (d.sections.size > 8) d.sections.delete(pickOf([...d.sections.keys()])); },
    // A class lists someone the users feed never had (a dangling membership), or stops listing one.
    (r) => { pickOf([...d.sections.values()]).studentIds.push(`ghost-${name}-${r}`); },
    () => { const s = [...d.sections.values()].find((x) => x.studentIds.some((id) => id.startsWith('ghost-'))); if (s) s.studentIds = s.studentIds.filter((id) => !id.startsWith('ghost-')); },
  ];
  const dangling: number[] = [];
  for (let round = 1; round <= 4; round += 1) {
    // Each kind of change once, in a shuffled order, and a few more at random.
    const order = changes.map((c) => ({ c, k: rand() })).sort((a, b) => a.k - b.k).map((x) => x.c);
    for (const change of [...order, ...Array.from({ length: 5 }, () => pickOf(changes))]) change(round);
    d.version += 1;
    const { run } = await syncBoth(id, twin, provider);
    expect((await progressOf(run))?.planned).toBe('difference');
    dangling.push((run.guard as { danglingEnrollments: number }).danglingEnrollments);
    const c = run.counts;
    // The round did change something (so the comparison means something).
    expect(c.usersCreated + c.usersUpdated + c.usersDeleted + c.enrollmentsAdded + c.enrollmentsEnded).toBeGreaterThan(0);
  }
  // Dangling memberships came and went: counted from the focus alone (none in the mirror) and from the whole stage.
  expect(dangling.some((n) => n > 0)).toBe(true);
  expect(dangling.slice(1).some((n, i) => n !== dangling[i])).toBe(true);
  // Across the rounds, each rule was exercised.
  const { memberships, seats } = await history(id);
  for (const reason of reasons) expect([reason, memberships.some((m) => m.reason === reason)]).toEqual([reason, true]);
  expect(seats.some((s) => s.released)).toBe(true);
}

test('Clever: every kind of change, planned as the difference from the mirror, ends exactly where the whole snapshot planned on a twin ends', async () => {
  // Its own provider: these rounds change the roster a lot.
  const own = await startClever({ seed: 77, schools: 3, students: 120, sections: 15, enrollmentsPerStudent: 3 });
  try {
    // Guards wide open: the rounds remove more than a real district's day would.
    const add = async (id: string) => { await addCleverDistrict(t.ctx, id, own, { guardMin: 10_000, lossPct: 100 }); };
    // Clever lists no ended membership and no flagged person: they are absent.
    await mixedRounds('mix-clever', { district: own.district, add }, ['ended', 'class-retired', 'absent']);
  } finally {
    await own.stop();
  }
});

/** A OneRoster 1.2 provider of its own (OAuth 1.0a), and a way to register ClassLink districts on it. */
async function startOneRoster(spec: { seed: number; schools: number; students: number; sections: number; enrollmentsPerStudent: number }) {
  const auth = { type: 'oauth1' as const, consumerKey: `ck-${spec.seed}`, consumerSecret: `cs-${spec.seed}` };
  const server = new FakeOneRosterServer(new RosterDistrict(spec), { version: '1.2', auth });
  await server.start();
  const add = async (id: string, guard?: { deletionThresholdMin: number; deletionThresholdPct: number; lossThresholdPct: number }) => {
    await upsertDistrict(t.ctx.db, {
      id, schedule: null, ...(guard ? { guard } : {}),
      settings: { provider: 'classlink', baseUrl: server.baseUrl, credentials: { consumerKey: auth.consumerKey, consumerSecret: auth.consumerSecret }, pageSize: 40, minRetryDelayMs: 10, timeoutMs: 2000, retries: 4 },
    });
  };
  return { server, add };
}

test('OneRoster full snapshots: the same, with end dates, tobedeleted and disabled records on the wire', async () => {
  const { server: own, add: addOneRoster } = await startOneRoster({ seed: 78, schools: 3, students: 120, sections: 15, enrollmentsPerStudent: 3 });
  try {
    const add = (id: string) => addOneRoster(id, { deletionThresholdMin: 10_000, deletionThresholdPct: 5, lossThresholdPct: 100 });
    await mixedRounds('mix-oneroster', { district: own.district, add, full: true }, ['ended', 'class-retired', 'enrollments-ended', 'tobedeleted', 'disabled']);
  } finally {
    await own.stop();
  }
});

test('changes that move eligibility under pools scoped by course code, grade and school are planned as differences and agree with the twin', async () => {
  const own = await startClever({ seed: 41, schools: 3, students: 150, sections: 18, enrollmentsPerStudent: 3 });
  try {
    const d = own.district;
    const code = d.courses[0]!.number;
    const grade = [...d.students.values()][0]!.grade ?? '5';
    for (const id of ['scoped', 'scoped-twin']) {
      await addCleverDistrict(t.ctx, id, own, { guardMin: 10_000, lossPct: 100 });
      await addPool(t.ctx, id, 'CODE', 15, { courses: [code] });
      await addPool(t.ctx, id, 'GRADE', 10, { grades: [grade] });
      await addPool(t.ctx, id, 'SCHOOL', 12, { schools: [d.schools[0]!.id] });
    }
    await syncBoth('scoped', 'scoped-twin');
    const steps: [string, () => void][] = [
      ['a course code changes (its pool loses every class)', () => { d.courses[0]!.number = 'ZZZ-9'; }],
      ['and changes back', () => { d.courses[0]!.number = code; }],
      ['a class moves into the scoped school', () => { [...d.sections.values()].find((s) => s.schoolId !== d.schools[0]!.id)!.schoolId = d.schools[0]!.id; }],
      ['a student changes grade', () => { const st = [...d.students.values()][3]!; st.grade = st.grade === grade ? 'Other' : grade; }],
      ['a teacher leaves', () => d.removeTeacher([...d.teachers.keys()][0]!)],
      ['a course disappears', () => { d.courses.splice(1, 1); }],
    ];
    const moved: number[] = [];
    for (const [what, change] of steps) {
      change();
      d.version += 1;
      const { run } = await syncBoth('scoped', 'scoped-twin');
      expect([what, (await progressOf(run))?.planned]).toEqual([what, 'difference']);
      moved.push(run.counts.seatsAssigned + run.counts.seatsReleased + run.counts.seatsWaitlisted);
    }
    // Seats did move (so the comparisons mean something): at least when the code left and came back.
    expect(moved[0]).toBeGreaterThan(0);
    expect(moved[1]).toBeGreaterThan(0);
  } finally {
    await own.stop();
  }
});

test('a difference the guards hold is reviewed and approved as one, and a dry run of it changes nothing', async () => {
  const own = await startClever({ seed: 79, schools: 2, students: 100, sections: 10, enrollmentsPerStudent: 2 });
  try {
    for (const id of ['held', 'held-twin']) {
      await addCleverDistrict(t.ctx, id, own);
      await addPool(t.ctx, id, 'READ', 60);
    }
    await syncBoth('held', 'held-twin');
    // 30 of 100 students leave at once: above the deletion threshold (25).
    for (const id of [...own.district.students.keys()].slice(0, 30)) own.district.removeStudent(id);
    own.district.addStudent();
    const before = await outcome('held');

    const dry = await syncNow(t.ctx, 'held', { dryRun: true });
    expect(dry.status).toBe('SUCCEEDED');
    expect((await progressOf(dry))?.planned).toBe('difference');
    expect(await outcome('held')).toEqual(before);
    // A dry run leaves the mirror as it was: still quiet, still the last applied snapshot.
    expect((await mirrorOf('held'))?.quiet).toBe(true);

    const held = await syncNow(t.ctx, 'held');
    await forgetMirror('held-twin');
    const twinHeld = await syncNow(t.ctx, 'held-twin');
    expect([held.status, twinHeld.status]).toEqual(['HELD', 'HELD']);
    expect((await progressOf(held))?.planned).toBe('difference');
    expect(held.counts).toEqual(twinHeld.counts);
    expect(dry.counts).toEqual(held.counts);
    expect(held.guard).toEqual(twinHeld.guard);
    expect(await outcome('held')).toEqual(before);

    const approve = async (run: RunView) => waitForRun(t.ctx.db, (await approveRun(t.ctx, run.id)).id, { timeoutMs: 30000, intervalMs: 50 });
    const [done, twinDone] = [await approve(held), await approve(twinHeld)];
    expect([done.status, twinDone.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect((await progressOf(done))?.planned).toBe('difference');
    expect(done.counts).toEqual(twinDone.counts);
    expect(done.counts.usersDeleted).toBe(30);
    expect(await outcome('held')).toEqual(await outcome('held-twin'));
    expect(await history('held')).toEqual(await history('held-twin'));
    // Approved past the guards: the new mirror is not quiet, so the next resync plans whole.
    expect(await mirrorOf('held')).toMatchObject({ run_id: done.id, quiet: false });
    const next = await syncNow(t.ctx, 'held');
    expect((await progressOf(next))?.planned).toBe('whole');
  } finally {
    await own.stop();
  }
});

test('a delta or an ops action that changes nothing leaves the mirror quiet; one that changes something, or a pool change, does not', async () => {
  const { server: own, add } = await startOneRoster({ seed: 80, schools: 2, students: 60, sections: 8, enrollmentsPerStudent: 2 });
  try {
    await add('quiet');
    const first = await syncNow(t.ctx, 'quiet');
    expect(first).toMatchObject({ status: 'SUCCEEDED', full: true });
    // A delta with nothing new applies an empty plan: the district, and the mirror's claim about it, are as they were.
    const delta = await syncNow(t.ctx, 'quiet');
    expect(delta).toMatchObject({ status: 'SUCCEEDED', full: false });
    expect(await mirrorOf('quiet')).toMatchObject({ run_id: first.id, quiet: true });
    // So the day's full snapshot is known to change nothing: no stage, no plan.
    const full = await syncNow(t.ctx, 'quiet', { full: true });
    expect(full.status).toBe('SUCCEEDED');
    expect((await progressOf(full))?.changed).toBe(0);
    expect((await progressOf(full))?.planned).toBeUndefined();
    expect(Object.values(full.counts).every((n) => n === 0)).toBe(true);

    // A delta that changes someone disturbs it; the next full snapshot is planned whole (and still agrees).
    own.district.students.get([...own.district.students.keys()][3]!)!.first = 'Changed';
    own.district.version += 1;
    const changed = await syncNow(t.ctx, 'quiet');
    expect(changed).toMatchObject({ status: 'SUCCEEDED', full: false, counts: { usersUpdated: 1 } });
    expect((await mirrorOf('quiet'))?.quiet).toBe(false);
    const wholeAgain = await syncNow(t.ctx, 'quiet', { full: true });
    expect((await progressOf(wholeAgain))?.planned).toBe('whole');
    expect(Object.values(wholeAgain.counts).every((n) => n === 0)).toBe(true);
    expect(await mirrorOf('quiet')).toMatchObject({ run_id: wholeAgain.id, quiet: true });

    // A pool set to what it already is moves no seat, but the pools are the district's too.
    await addPool(t.ctx, 'quiet', 'READ', 10);
    const quietAgain = await syncNow(t.ctx, 'quiet', { full: true });
    expect(await mirrorOf('quiet')).toMatchObject({ run_id: quietAgain.id, quiet: true });
    await addPool(t.ctx, 'quiet', 'READ', 10);
    expect((await mirrorOf('quiet'))?.quiet).toBe(false);
  } finally {
    await own.stop();
  }
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
  // Someone leaves too: with the mirror's rows lost, only the whole plan can tell.
  const leaver = [...server.district.students.keys()][7]!;
  const left = server.district.removeStudent(leaver);
  // Crash recovery empties unlogged tables (the mirror's registration, logged, stays quiet): every record is then staged.
  const m = (await mirrorOf('lost'))!;
  expect(m.quiet).toBe(true);
  for (const name of await stageTablesOf('lost')) if (name.startsWith(`r${m.run_id.replace(/-/g, '')}_`)) await sql`TRUNCATE ${sql.table(`stage.${name}`)}`.execute(t.ctx.db);
  const { run } = await syncBoth('lost', 'lost-twin');
  expect((await progressOf(run))?.unchanged).toBe(0);
  expect((await progressOf(run))?.changed).toBeGreaterThan(150 + 450);
  // The emptied mirror no longer holds what its snapshot had: planned whole, and the leaver left.
  expect((await progressOf(run))?.planned).toBe('whole');
  expect(run.counts).toMatchObject({ usersDeleted: 1, usersCreated: 1 });
  expect((await listUsers(t.ctx.db, 'lost')).find((u) => u.sourcedId === leaver)?.status).toBe('DELETED');
  server.district.restoreStudent(left.student, left.sectionIds);

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

test('a difference is planned as one while it is small or at most a quarter of the snapshot', () => {
  expect(worthPlanningAsDifference(10_000, 12_000)).toBe(true);
  expect(worthPlanningAsDifference(10_001, 12_000)).toBe(false);
  expect(worthPlanningAsDifference(1_772_000, 7_088_000)).toBe(true);
  expect(worthPlanningAsDifference(1_772_001, 7_088_000)).toBe(false);
});

test('the key log tells a fetch that saw every key once from one that saw a key twice, in any bucket, however it grew', () => {
  const log = new KeyHashLog();
  // Spread over every bucket (the top bits), past the first growth of each.
  const hashes = Array.from({ length: 40_000 }, (_, i) => (BigInt(i) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
  for (const h of hashes) log.add(h);
  expect(log.allDistinct()).toBe(true);
  const copied = new KeyHashLog();
  for (const h of hashes) copied.add(h);
  copied.add(hashes[31_337]!);
  expect(copied.allDistinct()).toBe(false);
});
