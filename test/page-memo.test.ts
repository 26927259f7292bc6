import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { withDefaultUser } from '../db/connection.js';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { ORG, oneRoster12 } from '../fixtures/payloads/oneroster.js';
import { listLicenses, listUsers } from '../src/queries.js';
import { getRun, type RunView } from '../src/sync/runs.js';
import { upsertDistrict, getDistrict } from '../src/districts/repository.js';
import { triggerSync } from '../jobs/trigger.js';
import { waitForRun } from '../src/sync/wait.js';
import type { TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';
import { addReplayDistrict, createPayloadEnv, startOneRoster, storedState } from './helpers/payloads.js';
import { addSchoologyDistrict, schoologySettings, startSchoology } from './helpers/schoology.js';
import { canvasSettings, canvasUserId, startCanvas } from './helpers/canvas.js';
import { loadPageMemo, MemoMismatchError, PageMemo } from '../src/sync/page-memo.js';
import { HashSet } from '../src/sync/record-hash.js';

// The page memo (src/sync/page-memo.ts): a complete fetch keeps, for each
// batch a connector tagged with its origin (the page's URL and bytes, and what
// else its mapping read), the hashes of the rows it made; a resync meeting
// the same origin takes those rows from the mirror without reading the page
// record by record. What must hold: a run that reuses pages ends exactly
// where a run that reads every page ends, pages that changed are read again,
// a page whose mapping read something that changed (a OneRoster org tree) is
// read again though its bytes did not change, and an entry the mirror cannot
// back is never used.

let t: TestEnv;
let server: FakeCleverServer;

beforeAll(async () => {
  t = await createPayloadEnv();
  t.startWorker();
  server = await startClever({ seed: 41, schools: 2, students: 150, sections: 12, enrollmentsPerStudent: 3 });
});

afterAll(async () => {
  await server.stop();
  await t.close();
});

const progressOf = async (run: RunView) => (await getRun(t.ctx.db, run.id)).progress as { reused?: number; unchanged?: number; changed?: number } | null;
const memoOf = async (districtId: string) => (await t.ctx.db.selectFrom('page_memo').select(['key', 'hashes']).where('district_id', '=', districtId).execute())
  .map((r) => ({ key: r.key, rows: r.hashes.byteLength / 8 })).sort((a, b) => a.key.localeCompare(b.key));

/** What a sync decides, by sourcedId (account ids differ between districts). */
async function outcome(districtId: string) {
  const users = (await listUsers(t.ctx.db, districtId)).map(({ id: _id, ...u }) => u).sort((a, b) => a.sourcedId.localeCompare(b.sourcedId));
  const licenses = (await listLicenses(t.ctx.db, districtId)).map(({ districtId: _d, ...l }) => l);
  const { rows: memberships } = await sql<{ u: string; c: string; ended: boolean; reason: string | null }>`
    SELECT u.sourced_id AS u, c.sourced_id AS c, e.ended_at IS NOT NULL AS ended, e.ended_reason AS reason
    FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
    WHERE e.district_id = ${districtId} ORDER BY 1, 2, 3, 4`.execute(t.ctx.db);
  return { users, licenses, memberships, roster: await storedState(t.ctx.db, districtId) };
}

/** Requests the Clever server answered during the district's last run (syncBoth). */
let lastRequests = 0;

/** The district's mirror tables (a run's stage tables). */
async function mirrorTables(districtId: string): Promise<string[]> {
  const { run_id: mirrorRun } = await t.ctx.db.selectFrom('snapshot_mirrors').select('run_id').where('district_id', '=', districtId).executeTakeFirstOrThrow();
  const { rows } = await sql<{ name: string }>`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'stage' AND c.relname LIKE ${`r${mirrorRun.replace(/-/g, '')}\\_%`}`.execute(t.ctx.db);
  return rows.map((r) => r.name);
}

/**
 * Syncs the district while its mirror's hashes cannot be read (a lock on
 * one of its tables, held until the run ends): only a fetch that never
 * loads them can finish. Fails (after 15 s) otherwise.
 */
async function syncWithoutMirrorHashes(id: string, provider: { requests: unknown[] } = server): Promise<RunView> {
  const table = (await mirrorTables(id)).find((name) => name.endsWith('_orgs'))!;
  const before = provider.requests.length;
  // A connection of its own: the worker runs in this process, on the context's pool.
  const locker = new pg.Client({ connectionString: withDefaultUser(t.ctx.config.DATABASE_URL) });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE stage.${table} IN ACCESS EXCLUSIVE MODE`);
    const { run } = await triggerSync(t.ctx, id, { trigger: 'cli' });
    const done = await waitForRun(t.ctx.db, run.id, { timeoutMs: 15_000, intervalMs: 50 });
    lastRequests = provider.requests.length - before;
    return done;
  } finally {
    await locker.query('COMMIT');
    await locker.end();
  }
}

/** Syncs the district (memo and mirror) and its twin (neither: both forgotten first), and checks they end the same. */
async function syncBoth(id: string, twin: string, provider: { requests: unknown[] } = server, sync: () => Promise<RunView> = () => syncNow(t.ctx, id)): Promise<RunView> {
  const before = provider.requests.length;
  const run = await sync();
  lastRequests = provider.requests.length - before;
  await t.ctx.db.deleteFrom('snapshot_mirrors').where('district_id', '=', twin).execute();
  await t.ctx.db.deleteFrom('page_memo').where('district_id', '=', twin).execute();
  const twinRun = await syncNow(t.ctx, twin);
  expect([run.status, run.error]).toEqual(['SUCCEEDED', null]);
  expect([twinRun.status, twinRun.error]).toEqual(['SUCCEEDED', null]);
  expect((await progressOf(twinRun))?.reused ?? 0).toBe(0);
  expect(run.counts).toEqual(twinRun.counts);
  expect(run.guard).toEqual(twinRun.guard);
  expect(await outcome(id)).toEqual(await outcome(twin));
  return run;
}

test('Clever: a resync reuses every unchanged page, reads the changed ones again, and ends where reading every page ends', async () => {
  for (const id of ['memo', 'memo-twin']) {
    await addCleverDistrict(t.ctx, id, server);
    await addPool(t.ctx, id, 'READ', 100);
  }
  await syncBoth('memo', 'memo-twin');
  // A batch per page of schools, terms, courses, sections (classes, and their memberships), teachers and students (25 a page).
  const memo = await memoOf('memo');
  expect(memo.length).toBeGreaterThanOrEqual(1 + 1 + 1 + 2 * 1 + 1 + 6);
  expect(memo.reduce((n, e) => n + e.rows, 0)).toBeGreaterThan(150 + 450);

  // Nothing changed: every batch is taken from the mirror, none is read.
  const same = await syncBoth('memo', 'memo-twin');
  const fetchRequests = lastRequests;
  const noop = await progressOf(same);
  expect(noop?.reused).toBe(memo.length);
  expect(noop?.changed).toBe(0);
  expect(Object.values(same.counts).every((n) => n === 0)).toBe(true);
  expect(await memoOf('memo')).toEqual(memo);

  // One student renamed, one removed: the pages listing them are read again (and the sections listing the removed one).
  const { district } = server;
  const [renamed, leaving] = [...district.students.keys()];
  district.students.get(renamed!)!.first = 'Renamed';
  district.removeStudent(leaving!);
  district.version += 1;
  const churn = await syncBoth('memo', 'memo-twin');
  expect(churn.counts).toMatchObject({ usersUpdated: 1, usersDeleted: 1 });
  const progress = await progressOf(churn);
  expect(progress?.reused).toBeGreaterThan(0);
  expect(progress?.reused).toBeLessThan(memo.length);
  expect(progress?.changed).toBeGreaterThan(0);
  // The memo now describes this snapshot: the pages as they are now, none that is no longer sent.
  const after = await memoOf('memo');
  expect(after.length).toBeGreaterThanOrEqual(memo.length - 1);
  expect(after.filter((e) => !memo.some((m) => m.key === e.key)).length).toBeGreaterThan(0);
  const again = await syncBoth('memo', 'memo-twin');
  expect((await progressOf(again))?.reused).toBe(after.length);
  // Every page taken, none fetched twice.
  expect(lastRequests).toBe(fetchRequests);
});

test('a snapshot whose every page the memo backs is known unchanged without the mirror\'s hashes; an entry the mirror cannot back is caught, and the outcome is the same', async () => {
  for (const id of ['stale', 'stale-twin']) await addCleverDistrict(t.ctx, id, server);
  await syncBoth('stale', 'stale-twin');
  const fetchRequests = lastRequests;
  const memo = await memoOf('stale');
  // Every page is one the quiet mirror's own fetch made, and no other came:
  // the run is a no-op though the mirror's hashes cannot be read meanwhile.
  await expectCoveringNoop('stale', server, memo.length, fetchRequests);

  const { district } = server;
  const [, , , renamed, later] = [...district.students.keys()];
  // A student renamed: the pages before theirs are taken without the
  // mirror's hashes; the changed page needs them, and once they are loaded
  // the entries taken are seen wrong: the snapshot is fetched again without
  // the memo, and ends where the twin does.
  const renameAndCatch = async (student: string, first: string) => {
    district.students.get(student)!.first = first;
    district.version += 1;
    const run = await syncBoth('stale', 'stale-twin');
    expect(lastRequests).toBeGreaterThan(fetchRequests);
    expect(lastRequests).toBeLessThanOrEqual(2 * fetchRequests);
    expect((await progressOf(run))?.reused).toBe(0);
    expect(run.counts).toMatchObject({ usersUpdated: 1, usersDeleted: 0 });
  };

  // Every entry now names rows no mirror holds (a bad write, or a mirror of another snapshot).
  await sql`UPDATE page_memo SET hashes = decode(repeat('ab', length(hashes)), 'hex') WHERE district_id = 'stale'`.execute(t.ctx.db);
  await renameAndCatch(renamed!, 'Renamed');
  // Read again, the entries are made again (one page's changed).
  expect((await memoOf('stale')).length).toBe(memo.length);

  // The mirror emptied under a kept memo (a crash restart empties unlogged tables): caught the same way.
  for (const name of await mirrorTables('stale')) await sql`TRUNCATE stage.${sql.table(name)}`.execute(t.ctx.db);
  await renameAndCatch(later!, 'After the crash');
});

test('entries are salted with the district\'s settings: other settings never meet them', async () => {
  await addCleverDistrict(t.ctx, 'salted', server);
  await syncNow(t.ctx, 'salted');
  const before = await memoOf('salted');
  expect((await progressOf(await syncNow(t.ctx, 'salted')))?.reused).toBe(before.length);
  // Same pages (same page size), another timeout: every entry is made again under the new salt.
  const d = await getDistrict(t.ctx.db, 'salted');
  await upsertDistrict(t.ctx.db, { id: 'salted', schedule: null, settings: { ...d.settings, timeoutMs: 2500 } as typeof d.settings });
  const run = await syncNow(t.ctx, 'salted');
  expect(run.status).toBe('SUCCEEDED');
  expect((await progressOf(run))?.reused).toBe(0);
  const after = await memoOf('salted');
  expect(after.map((e) => e.rows)).toEqual(expect.arrayContaining(before.map((e) => e.rows)));
  expect(after.some((e) => before.some((b) => b.key === e.key))).toBe(false);
});

test('OneRoster: a class page whose bytes did not change is read again when the org tree it rolls up to changed', async () => {
  const today = new Date().toISOString().slice(0, 10);
  const payload = oneRoster12(today);
  const or = await startOneRoster('1.2', payload, { maxPage: 3 });
  try {
    await addReplayDistrict(t.ctx.db, 'memo-or', or);
    const first = await syncNow(t.ctx, 'memo-or', { full: true });
    expect(first.status).toBe('SUCCEEDED');
    expect((await storedState(t.ctx.db, 'memo-or')).classes['class-bio']).toMatchObject({ school: ORG.schoolA });
    const same = await syncNow(t.ctx, 'memo-or', { full: true });
    // All but one: the page listing usr-readded's membership twice. Its two
    // records are merged into one row in Postgres, so the mirror lacks the
    // rows the page makes, and that page is always read.
    expect((await progressOf(same))?.reused).toBe((await memoOf('memo-or')).length - 1);

    // The science department moves to school B: only the orgs pages' bytes change.
    const dept = (payload.orgs as { sourcedId: string; parent: { sourcedId: string; href: string } }[]).find((o) => o.sourcedId === ORG.department)!;
    dept.parent = { ...dept.parent, sourcedId: ORG.schoolB, href: dept.parent.href.replace(ORG.schoolA, ORG.schoolB) };
    const moved = await syncNow(t.ctx, 'memo-or', { full: true });
    expect(moved.status).toBe('SUCCEEDED');
    // Its class now belongs to school B, as a first sync of this payload would say.
    expect((await storedState(t.ctx.db, 'memo-or')).classes['class-bio']).toMatchObject({ school: ORG.schoolB });
    // Pages whose mapping reads no org (sessions, courses, enrollments) were still reused.
    expect((await progressOf(moved))?.reused).toBeGreaterThan(0);
  } finally {
    await or.stop();
  }
});

test('a memo of large entries loads whole: entries spanning many COPY chunks come back row for row', async () => {
  await addCleverDistrict(t.ctx, 'memo-big', server);
  // Three entries of 70,000 rows (560 kB each), and one empty; hashes drawn so that no two are equal.
  const entries = [1n, 2n, (1n << 63n) + 5n].map((key, e) => ({ key, hashes: BigUint64Array.from({ length: 70_000 }, (_, i) => BigInt(e * 1_000_000 + i + 1) * 0x9e3779b97f4a7c15n & ((1n << 64n) - 1n)) }));
  entries.push({ key: 4n, hashes: new BigUint64Array(0) });
  for (const { key, hashes } of entries) {
    await sql`INSERT INTO page_memo (district_id, key, run_id, hashes) VALUES ('memo-big', ${BigInt.asIntN(64, key).toString()}::bigint, ${randomUUID()}::uuid, ${Buffer.from(hashes.buffer)})`.execute(t.ctx.db);
  }
  const d = await getDistrict(t.ctx.db, 'memo-big');
  // Loaded by an attempt of a run that never writes (nothing is remembered here).
  const memo = (await loadPageMemo(t.ctx.db, { runId: randomUUID(), attempt: 1 }, 'memo-big', d.settings, {}))!;
  // Every entry is found by its key and names exactly its rows: each marks its own 70,000 in a set of all of them.
  const everything = new HashSet(BigUint64Array.from(entries.flatMap((e) => [...e.hashes])));
  for (const [n, { key }] of entries.entries()) {
    expect(memo.reuse(key, everything)).toBe(true);
    expect(everything.seenSize).toBe(Math.min(n + 1, 3) * 70_000);
  }
  expect(memo.reused).toBe(4);
  // A key it does not hold, and an entry the set cannot back, are not reused.
  expect(memo.reuse(5n, everything)).toBe(false);
  expect(memo.reuse(1n, new HashSet(entries[0]!.hashes.slice(1)))).toBe(false);
});

test('Schoology: section member lists are gathered into batches cut by their own digests, so a changed list is read again alone; users pages are read again when the roles they were mapped with change', async () => {
  const sgy = await startSchoology({ seed: 43, schools: 2, students: 120, sections: 24, enrollmentsPerStudent: 3 });
  try {
    for (const id of ['memo-sgy', 'memo-sgy-twin']) await addSchoologyDistrict(t.ctx, id, sgy);
    await syncBoth('memo-sgy', 'memo-sgy-twin', sgy);
    const memo = await memoOf('memo-sgy');
    // Enrollment batches (24 lists gathered), users pages (25 a page), and inactive users.
    expect(memo.length).toBeGreaterThanOrEqual(2 + 120 / 25);
    const same = await syncBoth('memo-sgy', 'memo-sgy-twin', sgy);
    expect((await progressOf(same))?.reused).toBe(memo.length);
    expect((await progressOf(same))?.changed).toBe(0);

    // One student moves between sections: their old and new lists change, and with them at most their batches and the next ones.
    const d = sgy.district;
    const who = [...d.students.keys()][5]!;
    const from = d.sectionsOf(who)[0]!;
    const to = [...d.sections.values()].find((s) => !s.studentIds.includes(who))!;
    d.moveStudent(who, from.id, to.id);
    d.version += 1;
    const moved = await syncBoth('memo-sgy', 'memo-sgy-twin', sgy);
    expect(moved.counts).toMatchObject({ enrollmentsAdded: 1, enrollmentsEnded: 1 });
    const progress = await progressOf(moved);
    // Every users page and all but at most four enrollment batches are reused.
    expect(progress?.reused).toBeGreaterThanOrEqual(memo.length - 4);
    expect(progress?.reused).toBeLessThan(memo.length);

    // The school admin role is renamed: its users become teachers, though no users page changed a byte.
    const admins = (await listUsers(t.ctx.db, 'memo-sgy')).filter((u) => u.role === 'administrator').map((u) => u.sourcedId);
    expect(admins.length).toBeGreaterThan(0);
    const roles = (sgy as unknown as { roles: () => { role: { title: string }[] } }).roles.bind(sgy);
    (sgy as unknown as { roles: () => unknown }).roles = () => {
      const r = roles();
      for (const role of r.role) if (role.title === 'School Admin') role.title = 'School Staff';
      return r;
    };
    const renamed = await syncBoth('memo-sgy', 'memo-sgy-twin', sgy);
    expect(renamed.status).toBe('SUCCEEDED');
    const after = await listUsers(t.ctx.db, 'memo-sgy');
    expect(admins.map((id) => after.find((u) => u.sourcedId === id)?.role)).toEqual(admins.map(() => 'teacher'));
    // The member lists, mapped without the roles, were still reused.
    expect((await progressOf(renamed))?.reused).toBeGreaterThan(0);
  } finally {
    await sgy.stop();
  }
});

/** A no-op that must finish without the mirror's hashes: every batch taken, nothing changed, no page fetched twice. */
async function expectCoveringNoop(id: string, provider: { requests: unknown[] }, entries: number, fetchRequests: number): Promise<void> {
  const noop = await syncWithoutMirrorHashes(id, provider);
  expect([noop.status, noop.error]).toEqual(['SUCCEEDED', null]);
  expect(Object.values(noop.counts).every((n) => n === 0)).toBe(true);
  expect((await progressOf(noop))?.reused).toBe(entries);
  expect(lastRequests).toBe(fetchRequests);
}

test('Schoology: every batch is tagged, so an unchanged district needs no hashes; classes are read again when the course\'s building or the grading periods make them other classes though their lists did not change', async () => {
  // Two schools beside the district's own have no buildings: each is its own campus, listed on the same page.
  const sgy = await startSchoology({ seed: 44, schools: 3, students: 100, sections: 16, enrollmentsPerStudent: 2 }, { campusLessSchools: 2 });
  try {
    // Ending a term retires half the classes: a loss the guards would hold for review, which this test is not about.
    for (const id of ['memo-sgy2', 'memo-sgy2-twin']) await upsertDistrict(t.ctx.db, { id, schedule: null, settings: schoologySettings(sgy), guard: { lossThresholdPct: 100, deletionThresholdPct: 100 } });
    await syncBoth('memo-sgy2', 'memo-sgy2-twin', sgy);
    const fetchRequests = lastRequests;
    const memo = await memoOf('memo-sgy2');
    const campuses = Object.entries((await storedState(t.ctx.db, 'memo-sgy2')).schools).filter(([, s]) => s.status === 'ACTIVE').length;
    expect(campuses).toBe(3 + 2);
    // Schools and buildings, grading periods, courses, classes, enrollments, users, inactive users.
    expect(memo.length).toBeGreaterThanOrEqual(7);
    await expectCoveringNoop('memo-sgy2', sgy, memo.length, fetchRequests);

    // A course moves to another building: only the courses page changes, and its classes now belong to that building.
    const stateBefore = await storedState(t.ctx.db, 'memo-sgy2');
    const fake = sgy as unknown as { render: () => { courses: { id: number; building_id: string }[]; buildings: { id: string }[]; sectionsByCourse: Map<string, { json: { id: string } }[]> } };
    const render = fake.render.bind(sgy);
    const first = render();
    const course = first.courses[0]!;
    const building = first.buildings.find((b) => b.id !== course.building_id)!.id;
    const sections = first.sectionsByCourse.get(String(course.id))!.map((x) => x.json.id);
    expect(sections.map((id) => stateBefore.classes[id]?.school)).toEqual(sections.map(() => course.building_id));
    fake.render = () => {
      const r = render();
      r.courses.find((c) => c.id === course.id)!.building_id = building;
      return r;
    };
    const moved = await syncBoth('memo-sgy2', 'memo-sgy2-twin', sgy);
    expect(moved.counts).toMatchObject({ classesUpdated: sections.length, classesRetired: 0, orgsRetired: 0 });
    const stateMoved = await storedState(t.ctx.db, 'memo-sgy2');
    expect(sections.map((id) => stateMoved.classes[id]?.school)).toEqual(sections.map(() => building));
    // The member lists and users pages were reused.
    expect((await progressOf(moved))?.reused).toBeGreaterThan(memo.length / 2);

    // The fall term ends: only the grading periods page changes, and the fall sections are no longer current.
    const fall = sgy.district.terms[0]!;
    fall.endDate = new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 10);
    sgy.district.version += 1;
    const fallClasses = [...sgy.district.sections.values()].filter((sec) => sec.termId === fall.id).length;
    expect(fallClasses).toBeGreaterThan(0);
    const ended = await syncBoth('memo-sgy2', 'memo-sgy2-twin', sgy);
    expect(ended.counts).toMatchObject({ classesRetired: fallClasses });
    expect(ended.counts.enrollmentsEnded).toBeGreaterThan(0);
    expect((await progressOf(ended))?.reused).toBeGreaterThan(0);
  } finally {
    await sgy.stop();
  }
});

test('Canvas report: a report zipped afresh with the same rows is taken whole without the mirror\'s hashes; a changed report is read again', async () => {
  const cv = await startCanvas({ seed: 47, schools: 2, students: 120, sections: 10, enrollmentsPerStudent: 2 });
  try {
    for (const id of ['memo-cv', 'memo-cv-twin']) await upsertDistrict(t.ctx.db, { id, schedule: null, settings: canvasSettings(cv) });
    await syncBoth('memo-cv', 'memo-cv-twin', cv);
    const fetchRequests = lastRequests;
    // Each download is a new zip: the same rows, stamped with the time it was made.
    const zips = [...cv.reports.values()].map((r) => Buffer.from(r.zip));
    expect(zips.length).toBe(2);
    expect(zips[0]!.length).toBe(zips[1]!.length);
    expect(zips[0]!.equals(zips[1]!)).toBe(false);
    const memo = await memoOf('memo-cv');
    // Schools, terms, courses, classes, enrollments, users.
    expect(memo.length).toBeGreaterThanOrEqual(6);
    await expectCoveringNoop('memo-cv', cv, memo.length, fetchRequests);

    // A school renamed: only the sub-accounts page changes (the report names accounts by id), and every batch is read again.
    const accounts = (cv as unknown as { schoolAccounts: { id: string; name: string }[] }).schoolAccounts;
    accounts[0]!.name = 'Renamed Middle School';
    cv.district.version += 1;
    const school = await syncBoth('memo-cv', 'memo-cv-twin', cv);
    expect(school.counts).toMatchObject({ orgsUpdated: 1 });
    expect((await progressOf(school))?.reused).toBe(0);
    const { rows: [renamedSchool] } = await sql<{ name: string }>`SELECT name FROM schools WHERE district_id = 'memo-cv' AND sourced_id = ${accounts[0]!.id}`.execute(t.ctx.db);
    expect(renamedSchool?.name).toBe('Renamed Middle School');

    // One student renamed, to a name as long (every part keeps its size: only
    // the data tells the reports apart): every batch depends on the whole
    // report, so all are read again, and end where the twin does.
    const [student] = [...cv.district.students.keys()];
    const person = cv.district.students.get(student!)!;
    const renamedTo = `Q${'z'.repeat(person.first.length - 1)}`;
    person.first = renamedTo;
    cv.district.version += 1;
    const renamed = await syncBoth('memo-cv', 'memo-cv-twin', cv);
    expect(renamed.counts).toMatchObject({ usersUpdated: 1 });
    expect((await listUsers(t.ctx.db, 'memo-cv')).find((u) => u.sourcedId === canvasUserId(student!))?.givenName).toBe(renamedTo);
    expect((await progressOf(renamed))?.reused).toBe(0);
    await expectCoveringNoop('memo-cv', cv, (await memoOf('memo-cv')).length, fetchRequests);
  } finally {
    await cv.stop();
  }
});

test('an origin met for two different batches is never kept, and a fetch that took one of them from the memo starts again without it', async () => {
  const rows = (...xs: number[]) => BigUint64Array.from(xs.map(BigInt));
  const lease = { runId: randomUUID(), attempt: 1 };
  // Made twice by one fetch: the same rows (a list the provider repeated) are kept; different rows are not.
  const fresh = new PageMemo(t.ctx.db, lease, 'memo-shared', 7n, new Map());
  await fresh.remember(1n, rows(10, 11));
  await fresh.remember(1n, rows(10, 11));
  await fresh.remember(2n, rows(20, 21));
  await fresh.remember(2n, rows(20, 22));
  await fresh.remember(2n, rows(20, 21));
  expect(fresh.shared).toBe(1);
  expect(fresh.keys().made).toEqual(['1']);
  // An entry of the district that this fetch did not keep is dropped by the save.
  expect(fresh.allKept).toBe(false);

  // Taken from the memo (its rows marked seen unchecked), then met again with other rows: those rows may
  // have been the other batch's, so the fetch stops, to start again without the memo; met again with the
  // same rows, it is simply kept.
  const known = new Map([[3n, { hashes: rows(30, 31), backed: true, covering: true }], [4n, { hashes: rows(40), backed: true, covering: true }]]);
  const memo = new PageMemo(t.ctx.db, lease, 'memo-shared', 7n, known);
  expect(memo.takeBacked(3n)).toBe(true);
  expect(memo.takeBacked(3n)).toBe(false);
  await expect(memo.remember(3n, rows(30, 32))).rejects.toBeInstanceOf(MemoMismatchError);
  expect(memo.takeBacked(4n)).toBe(true);
  await memo.remember(4n, rows(40));
  expect(memo.shared).toBe(1);
  expect(memo.keys().made).toEqual(['4']);
});

test('Canvas REST: every page is taken in order and tags the batches after it, so an unchanged district is taken whole and a change reads what follows it', async () => {
  const cv = await startCanvas({ seed: 48, schools: 2, students: 120, sections: 10, enrollmentsPerStudent: 2 }, { reports: 'forbidden-403' });
  try {
    for (const id of ['memo-rest', 'memo-rest-twin']) await upsertDistrict(t.ctx.db, { id, schedule: null, settings: canvasSettings(cv) });
    await syncBoth('memo-rest', 'memo-rest-twin', cv);
    expect(cv.requestsTo('/enrollments').length).toBeGreaterThan(0);
    const fetchRequests = lastRequests;
    const memo = await memoOf('memo-rest');
    // Schools, courses and terms, each course's classes and memberships, users pages.
    expect(memo.length).toBeGreaterThanOrEqual(2 + 10);
    await expectCoveringNoop('memo-rest', cv, memo.length, fetchRequests);

    // The last student renamed: the batches before the users page listing them are taken from the memo, the rest read again.
    const student = [...cv.district.students.keys()].at(-1)!;
    cv.district.students.get(student)!.first = 'Renamed';
    cv.district.version += 1;
    const renamed = await syncBoth('memo-rest', 'memo-rest-twin', cv);
    expect(renamed.counts).toMatchObject({ usersUpdated: 1 });
    expect((await listUsers(t.ctx.db, 'memo-rest')).find((u) => u.sourcedId === canvasUserId(student))?.givenName).toBe('Renamed');
    const reused = (await progressOf(renamed))?.reused ?? 0;
    expect(reused).toBeGreaterThanOrEqual(memo.length - 5);
    expect(reused).toBeLessThan(memo.length);

    // A student moves between sections: their courses' lists change, and every batch from the first of them on is read again.
    const d = cv.district;
    const who = [...d.students.keys()][3]!;
    const from = d.sectionsOf(who)[0]!;
    const to = [...d.sections.values()].find((sec) => !sec.studentIds.includes(who) && sec.courseId !== from.courseId)!;
    d.moveStudent(who, from.id, to.id);
    d.version += 1;
    const moved = await syncBoth('memo-rest', 'memo-rest-twin', cv);
    expect(moved.counts).toMatchObject({ enrollmentsAdded: 1, enrollmentsEnded: 1 });
    expect((await progressOf(moved))?.reused).toBeLessThan(memo.length);
  } finally {
    await cv.stop();
  }
});
