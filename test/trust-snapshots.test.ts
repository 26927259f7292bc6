import type { FakeCleverServer } from '../fixtures/clever/server.js';
import { approveRun, triggerSync } from '../jobs/trigger.js';
import { listUsers } from '../src/queries.js';
import { readPlan } from '../src/sync/plan-items.js';
import { purgeDistrict } from '../src/sync/purge.js';
import { expireStages, pruneHistory } from '../src/sync/retention.js';
import { getRun } from '../src/sync/runs.js';
import { executeRun } from '../src/sync/execute.js';
import { SnapshotBuilder } from '../src/sync/snapshot-builder.js';
import { waitForRun } from '../src/sync/wait.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, addPool, startClever, syncNow, districtState } from './helpers/district.js';
import { enrol, klass, student } from './helpers/roster.js';
import { runCli } from './helpers/cli.js';
import { formatTable } from '../src/cli/output.js';

// Issue #6, "broken snapshots are held, not applied" and "see before
// approving; keep what must be kept": each story runs through the real queue
// against the fake Clever server, and asserts what was kept.

let t: TestEnv;
let server: FakeCleverServer;
const D = 'snap';

beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever({ seed: 77, schools: 3, students: 300, sections: 24, enrollmentsPerStudent: 3 });
  t.startWorker();
  // Ten to a page: every feed spans several pages.
  await addCleverDistrict(t.ctx, D, server, { pageSize: 10 });
  // Fewer seats than students: seats moving to the wrong people would show.
  await addPool(t.ctx, D, 'READ', 200);
  expect((await syncNow(t.ctx, D)).status).toBe('SUCCEEDED');
});
afterAll(async () => {
  await server.stop();
  await t.close();
});
beforeEach(() => {
  server.faults.length = 0;
});

const state = () => districtState(t.ctx, D);
const seatHolders = async () => (await listUsers(t.ctx.db, D)).filter((u) => u.products.includes('READ')).map((u) => u.sourcedId).sort();
const emptyPage = () => ({ status: 200, body: { data: [], links: [] } });

test('a sections feed cut after its first page is HELD; no seat moves, and the holders keep them once the provider recovers', async () => {
  const before = await state();
  const holders = await seatHolders();
  // Page 2 of sections comes back empty with no next link: the feed silently ends early.
  server.faults.push({ path: '/v3.0/sections?limit=10&starting_after', respond: emptyPage, times: 1 });
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  expect(held.error).toMatch(/would remove \d+ of \d+ \([\d.]+%\) active (classes|enrollments)/);
  expect(await state()).toEqual(before);

  // The provider recovers: the next sync applies nothing new, and every holder still holds their seat.
  const next = await syncNow(t.ctx, D);
  expect(next.status).toBe('SUCCEEDED');
  expect(next.counts).toMatchObject({ seatsAssigned: 0, seatsReleased: 0, enrollmentsEnded: 0, usersDeleted: 0 });
  expect(await seatHolders()).toEqual(holders);
});

test('a feed that returns no teachers is HELD instead of deleting every teacher', async () => {
  const before = await state();
  server.faults.push({ path: '/v3.0/users?role=teacher', respond: emptyPage, times: 1 });
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  expect(held.error).toContain('the provider returned no teachers while');
  expect(await state()).toEqual(before);
});

test('a cursor that never advances stops the run with a clear error before it fills the stage', async () => {
  const before = await state();
  // Every page of students is the same first page, each time under a new URL.
  let n = 0;
  const first = (await fetch(`${server.url}/v3.0/users?role=student&limit=10`, { headers: { authorization: `Bearer ${server.token}` } }).then((r) => r.json())) as { data: unknown[] };
  server.faults.push({
    path: '/v3.0/users?role=student', times: 1000,
    respond: () => ({ status: 200, body: { data: first.data, links: [{ rel: 'next', uri: `/v3.0/users?role=student&limit=10&starting_after=x${(n += 1)}` }] } }),
  });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('FAILED');
  expect(run.error).toContain('returned the same page again (cursor does not advance)');
  expect(n).toBeLessThan(5);
  expect(await state()).toEqual(before);
  expect(await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', run.id).execute()).toEqual([]);
});

test('a page far larger than the limit asked for stops the run', async () => {
  const before = await state();
  const page = (await fetch(`${server.url}/v3.0/users?role=student&limit=300`, { headers: { authorization: `Bearer ${server.token}` } }).then((r) => r.json())) as { data: unknown[] };
  expect(page.data.length).toBe(300);
  server.faults.push({ path: '/v3.0/users?role=student', times: 1, respond: () => ({ status: 200, body: { data: page.data, links: [] } }) });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('FAILED');
  expect(run.error).toContain('a page held 300 records where 10 were asked for');
  expect(await state()).toEqual(before);
});

test('a NUL in a name is stripped, an over-long sourcedId is quarantined with its id in the run detail, and the rest applies', async () => {
  const real = (await fetch(`${server.url}/v3.0/users?role=student&limit=10`, { headers: { authorization: `Bearer ${server.token}` } }).then((r) => r.json())) as { data: { data: Record<string, unknown> }[]; links: unknown[] };
  const longId = 'x'.repeat(300);
  const firstId = real.data[0]!.data.id as string;
  const doctored = real.data.map((d, i) => {
    if (i === 0) return { ...d, data: { ...d.data, name: { ...(d.data.name as object), first: 'Ro\u0000sa\u001b[31m' } } };
    return d;
  });
  doctored.push({ data: { ...real.data[1]!.data, id: longId } });
  server.faults.push({ path: '/v3.0/users?role=student&limit=10', times: 1, respond: () => ({ status: 200, body: { data: doctored, links: real.links } }) });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('SUCCEEDED');
  expect(run.counts.recordsQuarantined).toBe(1);
  expect(run.guard).toMatchObject({ quarantined: [{ kind: 'users', sourcedId: expect.stringMatching(/^x{64}…$/), reason: expect.stringContaining('300 characters') }] });
  const rosa = (await listUsers(t.ctx.db, D)).find((u) => u.sourcedId === firstId)!;
  expect(rosa.givenName).toBe('Rosa[31m');
  expect(JSON.stringify(await listUsers(t.ctx.db, D))).not.toMatch(/\\u00(00|1b)/);
});

test('the same sourcedId twice with different content is held for review, naming it, and its person is left as they were', () => {
  const builder = new SnapshotBuilder(true, '2026-11-25');
  builder.add({ kind: 'users', records: [student('s1'), student('s2')] });
  builder.add({ kind: 'users', records: [student('s1', { familyName: 'Other' })] });
  // A dropped-and-re-added enrollment is no conflict: the current copy counts, whatever the order.
  builder.add({ kind: 'classes', records: [klass('c1')] });
  builder.add({ kind: 'enrollments', records: [enrol('s2', 'c1'), enrol('s2', 'c1', { status: 'tobedeleted' })] });
  const snapshot = builder.build();
  expect(snapshot.users.has('s1')).toBe(false);
  expect(snapshot.quarantined).toEqual([expect.objectContaining({ kind: 'users', sourcedId: 's1', conflict: true, refs: { users: ['s1'] } })]);
  expect(snapshot.enrollments.get('c1\u001fs2')?.status).toBe('active');
});

test('a HELD run shows who would leave, which seats go and to whom, paged; approval applies exactly that', async () => {
  const leavers = [...server.district.students.keys()].slice(10, 50);
  const removed = leavers.map((id) => server.district.removeStudent(id));
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  const plan = await readPlan(t.ctx.db, held.id, { section: 'users', page: 1, pageSize: 15 });
  // Everyone the run would change, with the counts the run reports.
  expect(plan.total).toBe(held.counts.usersDeleted + held.counts.usersCreated + held.counts.usersUpdated + held.counts.usersReactivated);
  expect(plan.items).toHaveLength(15);
  expect(plan.summary.users!.delete).toBe(held.counts.usersDeleted);
  const everyone = [];
  for (let page = 1; page <= Math.ceil(plan.total / 15); page += 1) everyone.push(...(await readPlan(t.ctx.db, held.id, { section: 'users', page, pageSize: 15 })).items);
  expect(everyone).toHaveLength(plan.total);
  const deleted = everyone.filter((i) => i.action === 'delete').map((i) => i.sourcedId);
  for (const id of leavers) expect(deleted).toContain(id);
  const named = server.district.students.get(leavers[0]!) ?? removed[0]!.student;
  expect(everyone.find((i) => i.sourcedId === leavers[0])).toMatchObject({ action: 'delete', reason: 'absent', name: `${named.first} ${named.last}`, role: 'student' });
  const seats = await readPlan(t.ctx.db, held.id, { section: 'seats', pageSize: 1000 });
  const released = seats.items.filter((i) => i.action === 'release');
  const assigned = seats.items.filter((i) => i.action === 'assign');
  // Every seat a leaver frees goes to someone on the wait-list, and the plan names them.
  expect(released.length).toBeGreaterThan(0);
  expect(assigned.length).toBe(released.length);
  expect(assigned.every((i) => i.name && !leavers.includes(i.sourcedId))).toBe(true);

  // The same plan through the CLI an ops engineer uses.
  const shown = await runCli(t.env, ['run', held.id, '--plan', '--section', 'seats', '--page-size', '1000', '--json']);
  expect(shown.code).toBe(0);
  expect(shown.json).toMatchObject({ runId: held.id, status: 'HELD', total: seats.total, items: seats.items });
  const human = await runCli(t.env, ['run', held.id, '--plan', '--section', 'users', '--page-size', '5']);
  expect(human.stdout).toContain(`users: ${held.counts.usersDeleted} delete`);
  expect(human.stdout).toMatch(/page 1 of \d+/);

  const approved = await approveRun(t.ctx, held.id);
  const done = await waitForRun(t.ctx.db, approved.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(done.status).toBe('SUCCEEDED');
  const holders = await seatHolders();
  for (const a of assigned) expect(holders).toContain(a.sourcedId);
  // Applied: the plan's people data is not kept beyond the run.
  expect((await readPlan(t.ctx.db, held.id)).total).toBe(0);
  for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  expect((await syncNow(t.ctx, D)).counts.usersReactivated).toBeGreaterThanOrEqual(40);
});

test('HELD stages expire after the retention period; approving then fails clearly and applies nothing', async () => {
  const leavers = [...server.district.students.keys()].slice(60, 100);
  const removed = leavers.map((id) => server.district.removeStudent(id));
  try {
    const held = await syncNow(t.ctx, D);
    expect(held.status).toBe('HELD');
    const before = await state();
    await t.ctx.db.updateTable('sync_runs').set({ finished_at: new Date(Date.now() - 80 * 3600_000) }).where('id', '=', held.id).execute();
    expect(await expireStages(t.ctx.db, 72)).toMatchObject({ runs: 1 });
    expect(await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', held.id).execute()).toEqual([]);
    expect((await readPlan(t.ctx.db, held.id)).total).toBe(0);
    expect((await getRun(t.ctx.db, held.id)).error).toContain('staged snapshot dropped after 72 h');
    const approved = await approveRun(t.ctx, held.id);
    const done = await waitForRun(t.ctx.db, approved.id, { timeoutMs: 30000, intervalMs: 50 });
    expect(done).toMatchObject({ status: 'FAILED', error: expect.stringContaining('no longer staged') });
    expect(await state()).toEqual(before);
  } finally {
    for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  }
});

test('prune deletes old runs and audit rows but keeps the last applied run; purge drops stages and refuses later approvals', async () => {
  const old = new Date(Date.now() - 400 * 86400_000);
  await t.ctx.db.updateTable('sync_runs').set({ finished_at: old }).where('district_id', '=', D).execute();
  await t.ctx.db.updateTable('audit_log').set({ at: old }).where('district_id', '=', D).execute();
  const lastApplied = await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', D).where('status', '=', 'SUCCEEDED')
    .where('trigger', 'not like', 'ops:%').where('dry_run', '=', false).orderBy('started_at', 'desc').executeTakeFirstOrThrow();
  const cliPrune = await runCli(t.env, ['prune', '--runs-days', '180', '--audit-days', '365', '--json']);
  expect(cliPrune.code).toBe(0);
  const pruned = cliPrune.json as Awaited<ReturnType<typeof pruneHistory>>;
  expect(pruned.runs).toBeGreaterThan(0);
  expect(pruned.auditRows).toBeGreaterThan(0);
  expect((await t.ctx.db.selectFrom('sync_runs').select('id').where('district_id', '=', D).execute()).map((r) => r.id)).toEqual([lastApplied.id]);
  expect(await t.ctx.db.selectFrom('audit_log').select('id').where('district_id', '=', D).execute()).toEqual([]);

  // A HELD run staged before a purge can never bring the purged people back.
  const leavers = [...server.district.students.keys()].slice(100, 140);
  const removed = leavers.map((id) => server.district.removeStudent(id));
  try {
    const held = await syncNow(t.ctx, D);
    expect(held.status).toBe('HELD');
    await purgeDistrict(t.ctx, D, 'all-roster-data');
    expect(await t.ctx.db.selectFrom('run_stage').select('seq').where('run_id', '=', held.id).execute()).toEqual([]);
    expect(await getRun(t.ctx.db, held.id)).toMatchObject({ status: 'FAILED', error: expect.stringContaining('superseded by a purge') });
    await expect(approveRun(t.ctx, held.id)).rejects.toThrow(/only a HELD run can be approved/);
    expect(await listUsers(t.ctx.db, D)).toEqual([]);
  } finally {
    for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  }
});

test('triggering again after a purge roster the district afresh', async () => {
  const { run } = await triggerSync(t.ctx, D, { trigger: 'cli' });
  const done = await waitForRun(t.ctx.db, run.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(done.status).toBe('SUCCEEDED');
  expect(done.counts.usersCreated).toBe(server.district.students.size + server.district.teachers.size);
});

test('an approved run that a newer sync overtook before it could apply is refused at apply time, changing nothing', async () => {
  await syncNow(t.ctx, D);
  const leavers = [...server.district.students.keys()].slice(150, 190);
  const removed = leavers.map((id) => server.district.removeStudent(id));
  const held = await syncNow(t.ctx, D);
  expect(held.status).toBe('HELD');
  // Nobody processes the queue for a moment: the approval waits in it …
  await t.stopWorkers();
  await approveRun(t.ctx, held.id);
  // … while the students come back and a newer sync applies first.
  for (const r of removed) server.district.restoreStudent(r.student, r.sectionIds);
  const { run: newer } = await triggerSync(t.ctx, D, { trigger: 'cli' });
  expect(await executeRun(t.ctx, newer.id)).toBe('done');
  expect((await getRun(t.ctx.db, newer.id)).status).toBe('SUCCEEDED');
  const after = await state();
  t.startWorker();
  const late = await waitForRun(t.ctx.db, held.id, { timeoutMs: 30000, intervalMs: 50 });
  expect(late).toMatchObject({ status: 'FAILED', error: expect.stringContaining(`superseded by run ${newer.id}`) });
  expect(await state()).toEqual(after);
});

test('the same sourcedId twice with different content, through the real pipeline: HELD, named, nothing changed', async () => {
  const before = await state();
  const real = (await fetch(`${server.url}/v3.0/users?role=student&limit=10`, { headers: { authorization: `Bearer ${server.token}` } }).then((r) => r.json())) as { data: { data: Record<string, unknown> }[]; links: unknown[] };
  const twin = { data: { ...real.data[2]!.data, name: { first: 'Some', last: 'Oneelse' } } };
  server.faults.push({ path: '/v3.0/users?role=student&limit=10', times: 1, respond: () => ({ status: 200, body: { data: [...real.data, twin], links: real.links } }) });
  const run = await syncNow(t.ctx, D);
  expect(run.status).toBe('HELD');
  expect(run.error).toContain('sent 1 record(s) twice with different content');
  expect(run.guard).toMatchObject({ conflicts: 1, quarantined: [expect.objectContaining({ kind: 'users', sourcedId: real.data[2]!.data.id, conflict: true })] });
  expect(await state()).toEqual(before);
});

test('tables printed to a terminal show control characters escaped, never raw', () => {
  const table = formatTable([{ givenName: 'Ro\u001b[2Jsa', familyName: 'Null\u0000' }], ['givenName', 'familyName']);
  for (const line of table.split('\n')) expect(line).not.toMatch(/[\u0000-\u001f]/);
  expect(table).toContain('Ro\\u001b[2Jsa');
  expect(table).toContain('Null\\u0000');
});
