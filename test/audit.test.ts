import { sql } from 'kysely';
import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { personHistory, type PersonHistory } from '../src/audit/history.js';
import { auditSignIn } from '../src/sso/refusals.js';
import { removeStudent } from '../src/sync/ops.js';
import { triggerSync } from '../jobs/trigger.js';
import { waitForRun } from '../src/sync/wait.js';
import type { RunView } from '../src/sync/runs.js';
import { runCli } from './helpers/cli.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow } from './helpers/district.js';

let t: TestEnv;
let server: FakeCleverServer;
const D = 'audit-d';

beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever({ seed: 23, schools: 2, students: 60, sections: 12, enrollmentsPerStudent: 3 });
  t.startWorker();
  await addCleverDistrict(t.ctx, D, server);
  // Room for everyone in READ; one TINY seat, so everyone after the first waits.
  await addPool(t.ctx, D, 'READ', 1000);
  await addPool(t.ctx, D, 'TINY', 1);
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

async function auditCounts(runId: string): Promise<Record<string, number>> {
  const rows = await t.ctx.db.selectFrom('audit_log').select(['entity', sql<number>`count(*)::int`.as('n')]).where('run_id', '=', runId).groupBy('entity').execute();
  return Object.fromEntries(rows.map((r) => [r.entity, r.n]));
}

async function apiSync(): Promise<RunView> {
  const { run } = await triggerSync(t.ctx, D, { trigger: 'api' });
  return waitForRun(t.ctx.db, run.id, { timeoutMs: 60000, intervalMs: 50 });
}

/** The events of one run, without the timestamps (a run's rows share one). */
const ofRun = (h: PersonHistory, runId: string) => h.events.filter((e) => e.runId === runId).map(({ at: _at, ...e }) => e);

test('a first sync writes one roster row per person, not one per enrollment and seat', async () => {
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  const d = server.district;
  const people = d.students.size + d.teachers.size;
  const enrollments = [...d.sections.values()].reduce((n, s) => n + s.studentIds.length + s.teacherIds.length, 0);
  const teaching = [...d.teachers.keys()].filter((id) => d.sectionsOf(id).length > 0).length;
  const counts = await auditCounts(run.id);
  // One compact row for each student (enrolled, seated or wait-listed) and each teacher with a class.
  expect(counts).toEqual({
    user: people, person: d.students.size + teaching,
    school: d.schools.length, term: d.terms.length, course: d.courses.length, class: d.sections.size,
  });
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  expect(total).toBeLessThanOrEqual(2 * people + d.schools.length + d.terms.length + d.courses.length + d.sections.size);
  // Before the compact format this run wrote a row per membership and per seat or wait-list place on top.
  expect(total).toBeLessThan(enrollments + 2 * d.students.size);

  // One row still says everything: the classes, the seat, the wait-list.
  const someone = [...d.students.keys()][5]!;
  const row = await t.ctx.db.selectFrom('audit_log').select(['action', 'detail']).where('run_id', '=', run.id).where('entity', '=', 'person').where('entity_key', '=', someone).executeTakeFirstOrThrow();
  expect(row.action).toBe('roster');
  expect((row.detail as { enrollments: { added: string[] } }).enrollments.added.sort()).toEqual(d.sectionsOf(someone).map((s) => s.id).sort());
  expect(Object.keys((row.detail as { seats: object }).seats).sort()).toEqual(expect.arrayContaining(['assigned']));
});

test("a student's whole life is one chronological history, with runs, triggers and reasons", async () => {
  const d = server.district;
  // Joins (through the API trigger), gets READ, waits for TINY.
  const student = d.addStudent();
  const join = await apiSync();
  const firstSections = d.sectionsOf(student.id).map((s) => s.id).sort();
  // Changes section.
  const from = firstSections[0]!;
  const to = [...d.sections.values()].find((s) => s.schoolId === student.schoolIds[0] && !firstSections.includes(s.id))!.id;
  d.moveStudent(student.id, from, to);
  const move = await syncNow(t.ctx, D);
  const afterMove = d.sectionsOf(student.id).map((s) => s.id).sort();
  // Leaves the roster.
  const left = d.removeStudent(student.id);
  const leave = await syncNow(t.ctx, D);
  // Comes back.
  d.restoreStudent(left.student, left.sectionIds);
  const back = await syncNow(t.ctx, D);
  // Signs in (OIDC: keyed by sourcedId), an LTI launch (keyed by the platform's subject, naming our account), and a refusal.
  const account = await t.ctx.db.selectFrom('users').select('id').where('sourced_id', '=', student.id).executeTakeFirstOrThrow();
  await auditSignIn(t.ctx.db, { districtId: D, provider: 'clever', subject: student.id, outcome: 'signed-in', detail: { userId: account.id } });
  await auditSignIn(t.ctx.db, { districtId: D, provider: 'lti', subject: 'lti-sub-123', outcome: 'signed-in', detail: { userId: account.id } });
  // Removed by ops.
  const ops = await removeStudent(t.ctx, D, student.id);
  await auditSignIn(t.ctx.db, { districtId: D, provider: 'clever', subject: student.id, outcome: 'account_deleted', detail: { districtId: D } });

  for (const r of [join, move, leave, back, ops]) expect(r.status).toBe('SUCCEEDED');
  const h = await personHistory(t.ctx.db, D, student.id);
  expect(h.user).toEqual({ id: account.id, sourcedId: student.id, status: 'DELETED', givenName: student.first, familyName: student.last });
  // Lookup by account id gives the same history.
  expect(await personHistory(t.ctx.db, D, account.id)).toEqual(h);

  const adds = (classes: string[], runId: string, trigger: string) => classes.map((c) => ({ runId, trigger, kind: 'enrollment', action: 'add', class: c }));
  const ends = (classes: string[], runId: string, trigger: string, reason: string) => classes.map((c) => ({ runId, trigger, kind: 'enrollment', action: 'end', class: c, reason }));
  expect(ofRun(h, join.id)).toEqual([
    { runId: join.id, trigger: 'api', kind: 'account', action: 'create' },
    ...adds(firstSections, join.id, 'api'),
    { runId: join.id, trigger: 'api', kind: 'seat', action: 'assign', product: 'READ' },
    { runId: join.id, trigger: 'api', kind: 'seat', action: 'waitlist', product: 'TINY' },
  ]);
  expect(ofRun(h, move.id)).toEqual([
    ...ends([from], move.id, 'cli', 'ended'),
    ...adds([to], move.id, 'cli'),
  ]);
  expect(ofRun(h, leave.id)).toEqual([
    { runId: leave.id, trigger: 'cli', kind: 'account', action: 'delete', reason: 'absent' },
    ...ends(afterMove, leave.id, 'cli', 'absent'),
    { runId: leave.id, trigger: 'cli', kind: 'seat', action: 'release', product: 'READ', reason: 'absent' },
    { runId: leave.id, trigger: 'cli', kind: 'seat', action: 'unwaitlist', product: 'TINY' },
  ]);
  expect(ofRun(h, back.id)).toEqual([
    { runId: back.id, trigger: 'cli', kind: 'account', action: 'reactivate' },
    ...adds([...left.sectionIds].sort(), back.id, 'cli'),
    { runId: back.id, trigger: 'cli', kind: 'seat', action: 'assign', product: 'READ' },
    { runId: back.id, trigger: 'cli', kind: 'seat', action: 'waitlist', product: 'TINY' },
  ]);
  expect(ofRun(h, ops.id)).toEqual([
    { runId: ops.id, trigger: 'ops:remove-student', kind: 'account', action: 'delete', reason: 'removed-by-ops' },
    ...ends([...left.sectionIds].sort(), ops.id, 'ops:remove-student', 'removed-by-ops'),
    { runId: ops.id, trigger: 'ops:remove-student', kind: 'seat', action: 'release', product: 'READ', reason: 'removed-by-ops' },
    { runId: ops.id, trigger: 'ops:remove-student', kind: 'seat', action: 'unwaitlist', product: 'TINY' },
  ]);
  // Sign-ins sit between the return and the removal; the refusal after it.
  const order = h.events.map((e) => (e.kind === 'sign-in' ? e.action : e.runId));
  const firstOf = (x: string) => order.indexOf(x);
  const lastOf = (x: string) => order.lastIndexOf(x);
  expect(lastOf(join.id)).toBeLessThan(firstOf(move.id));
  expect(lastOf(move.id)).toBeLessThan(firstOf(leave.id));
  expect(lastOf(leave.id)).toBeLessThan(firstOf(back.id));
  expect(h.events.filter((e) => e.kind === 'sign-in').map((e) => [e.action, e.runId])).toEqual([['sign-in', null], ['sign-in', null], ['refused:account_deleted', null]]);
  expect(lastOf(back.id)).toBeLessThan(firstOf('sign-in'));
  expect(lastOf('sign-in')).toBeLessThan(firstOf(ops.id));
  expect(lastOf(ops.id)).toBeLessThan(firstOf('refused:account_deleted'));
  expect(h.events.length).toBe(order.length);
  // Chronological throughout.
  const times = h.events.map((e) => e.at);
  expect([...times].sort()).toEqual(times);

  // Nobody else's rows leak in: another student's history names only them.
  const other = [...d.students.keys()][0]!;
  const otherHistory = await personHistory(t.ctx.db, D, other);
  expect(otherHistory.events.some((e) => e.runId === ops.id || e.runId === join.id)).toBe(false);
});

test('rows written before the compact format (one per enrollment and seat) still appear, in time order', async () => {
  const d = server.district;
  const sid = [...d.students.keys()][1]!;
  const cls = d.sectionsOf(sid)[0]!.id;
  // An old run, a year ago: the per-membership and per-seat rows the previous format wrote.
  const old = await t.ctx.db.insertInto('sync_runs').values({ district_id: D, trigger: 'schedule', status: 'SUCCEEDED', dry_run: false, full_snapshot: true, created_at: new Date('2025-09-01T02:00:00Z') }).returning('id').executeTakeFirstOrThrow();
  await sql`
    INSERT INTO audit_log (district_id, run_id, entity, entity_key, action, detail, at) VALUES
      (${D}, ${old.id}::uuid, 'enrollment', ${`${cls}/${sid}`}, 'end', '{"reason":"ended"}', '2025-09-01T02:05:00Z'),
      (${D}, ${old.id}::uuid, 'seat', ${`MATH/${sid}`}, 'release', '{"reason":"out-of-scope"}', '2025-09-01T02:05:00Z'),
      (${D}, ${old.id}::uuid, 'enrollment', ${`${cls}/x${sid}`}, 'add', NULL, '2025-09-01T02:05:00Z')`.execute(t.ctx.db);

  const h = await personHistory(t.ctx.db, D, sid);
  expect(h.events.slice(0, 2)).toEqual([
    { at: '2025-09-01T02:05:00.000Z', runId: old.id, trigger: 'schedule', kind: 'enrollment', action: 'end', class: cls, reason: 'ended' },
    { at: '2025-09-01T02:05:00.000Z', runId: old.id, trigger: 'schedule', kind: 'seat', action: 'release', product: 'MATH', reason: 'out-of-scope' },
  ]);
  // The row of someone whose sourcedId merely ends the same way is theirs, not this student's.
  expect(h.events.filter((e) => e.runId === old.id)).toHaveLength(2);
  // The new rows follow: created and enrolled by the first sync.
  expect(h.events[2]).toMatchObject({ kind: 'account', action: 'create', trigger: 'cli' });

  // The legacy lookup is served by its index, not a scan of the district's rows.
  await sql`ANALYZE audit_log`.execute(t.ctx.db);
  await sql`SET enable_seqscan = off`.execute(t.ctx.db);
  const plan = await sql<{ 'QUERY PLAN': string }>`EXPLAIN SELECT id FROM audit_log WHERE district_id = ${D} AND entity IN ('enrollment', 'seat') AND reverse(entity_key) LIKE ${`${[...sid].reverse().join('')}/%`}`.execute(t.ctx.db);
  await sql`RESET enable_seqscan`.execute(t.ctx.db);
  expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toContain('audit_log_legacy_person');
});

test('`rostersync audit` prints the same history through the real CLI, as JSON and as a table', async () => {
  const d = server.district;
  const sid = [...d.students.keys()][1]!;
  const expected = await personHistory(t.ctx.db, D, sid);
  const json = await runCli(t.env, ['audit', D, sid, '--json']);
  expect(json.code).toBe(0);
  expect(json.json).toEqual(expected);

  const table = await runCli(t.env, ['audit', D, expected.user.id]);
  expect(table.code).toBe(0);
  const lines = table.stdout.trim().split('\n');
  expect(lines[0]).toContain(sid);
  expect(lines[1]).toMatch(/^at\s+kind\s+action\s+what\s+reason\s+trigger\s+run$/);
  expect(lines).toHaveLength(2 + expected.events.length);
  expect(lines[2]).toMatch(/enrollment\s+end\s+\S+\s+ended\s+schedule/);

  const missing = await runCli(t.env, ['audit', D, 'nobody-here']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain("has no user 'nobody-here'");
  const bad = await runCli(t.env, ['audit', 'not a district!', sid]);
  expect(bad.code).toBe(2);
});

test('GET /api/districts/:id/users/:userId/audit returns the same history; an unknown user is 404', async () => {
  const { startHttpServer } = await import('../src/http/server.js');
  const { loadConfig } = await import('../src/config.js');
  const { openContext } = await import('../src/context.js');
  const token = 'audit-admin-token-0123456789';
  const ctx = await openContext({ config: loadConfig({ ...t.env, ADMIN_TOKEN: token, SESSION_SECRET: 's'.repeat(40) }) });
  const http = await startHttpServer(ctx, 0);
  try {
    const someone = (await t.ctx.db.selectFrom('users').select('sourced_id').where('district_id', '=', D).orderBy('sourced_id').executeTakeFirstOrThrow()).sourced_id;
    const res = await fetch(`${http.url}/api/districts/${D}/users/${encodeURIComponent(someone)}/audit`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(await personHistory(t.ctx.db, D, someone))));
    const missing = await fetch(`${http.url}/api/districts/${D}/users/nobody-here/audit`, { headers: { authorization: `Bearer ${token}` } });
    expect(missing.status).toBe(404);
  } finally {
    await http.close();
    await ctx.close();
  }
});
