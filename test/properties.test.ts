import { sql } from 'kysely';
import { prng, pick } from '../fixtures/prng.js';
import { getDistrict, upsertDistrict } from '../src/districts/repository.js';
import type { Enrollment, RosterClass, User } from '../src/domain/model.js';
import type { Snapshot } from '../src/reconcile/types.js';
import { reconcile } from '../src/reconcile/reconcile.js';
import { planInDb } from '../src/reconcile/sql/plan.js';
import { mergeDuplicates, snapshotInTables } from '../src/reconcile/sql/snapshot-source.js';
import { applyPlan } from '../src/sync/apply.js';
import { loadLocalState } from '../src/sync/local-state.js';
import { lockDistrict } from '../src/sync/runs.js';
import { setLicensePool } from '../src/sync/ops.js';
import { comparableDbPlan, comparableTsPlan, dbWaitlistOrder, tsWaitlistOrder } from './helpers/db-plan.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { enrol, klass, snapshotOf, student, teacher } from './helpers/roster.js';

// Random roster histories against real Postgres. Every step is planned twice:
// by the set-based reconciler a run uses (src/reconcile/sql, seats by
// src/licenses/settle-sql.ts) and by the TypeScript reference definition
// (src/reconcile/reconcile.ts with src/licenses/rules.ts) over the same local
// state; the two plans must agree change for change, wait-list order included,
// before the step is applied. Seeds are fixed so a failure reproduces.

const HISTORIES = 8;
const STEPS = 4;
let t: TestEnv;
/** What the histories exercised, so the property cannot pass on trivial rosters. */
const seen = { waitlisted: 0, deleted: 0, reactivated: 0, deltas: 0, frozen: 0, bumped: 0, ended: 0 };

beforeAll(async () => {
  t = await createTestEnv();
});
afterAll(async () => {
  await t.close();
  expect(seen.waitlisted).toBeGreaterThan(0);
  expect(seen.deleted).toBeGreaterThan(0);
  expect(seen.reactivated).toBeGreaterThan(0);
  expect(seen.deltas).toBeGreaterThan(0);
  expect(seen.frozen).toBeGreaterThan(0);
  expect(seen.bumped).toBeGreaterThan(0);
  expect(seen.ended).toBeGreaterThan(0);
});

function randomSnapshot(rand: () => number, final = false): Snapshot {
  const classes: RosterClass[] = [
    klass('c1'), klass('c2'), klass('c3', { courseSourcedId: 'crs-art' }),
    klass('c4', { schoolSourcedId: 'sch2', grades: ['6'] }), klass('c5', { schoolSourcedId: 'sch2', courseSourcedId: 'crs-art', grades: ['6'] }),
  ].filter(() => rand() < 0.9);
  const users: User[] = [teacher('t1'), teacher('t2')];
  const enrollments: Enrollment[] = [];
  for (let i = 0; i < 16; i++) {
    if (rand() < 0.2) continue;
    const sid = `s${String(i).padStart(2, '0')}`;
    const grade = i % 2 ? '6' : '5';
    users.push(student(sid, { grades: [grade], orgSourcedIds: [i % 2 ? 'sch2' : 'sch1'], status: rand() < 0.05 ? 'tobedeleted' : 'active', enabled: rand() > 0.03, familyName: rand() < 0.1 ? 'Renamed' : `F${sid}` }));
    const want = 1 + Math.floor(rand() * 3);
    for (let k = 0; k < want && classes.length; k++) {
      const c = pick(rand, classes);
      const r = rand();
      // Ended, not yet begun, dropped (tobedeleted) or current.
      enrollments.push(enrol(sid, c.sourcedId, r < 0.1 ? { endDate: '2020-01-01' } : r < 0.15 ? { beginDate: '2027-01-01' } : r < 0.18 ? { status: 'tobedeleted' } : {}));
    }
  }
  for (const c of classes) enrollments.push(enrol(pick(rand, ['t1', 't2']), c.sourcedId, { role: 'teacher' }));
  // Now and then an enrollment naming nobody the district knows.
  if (rand() < 0.2) enrollments.push(enrol('ghost', 'c1'));
  const snap = snapshotOf(users, classes, enrollments);
  // Now and then a record that could not be read: what it names must be left as it was.
  // (Never in the last step: a frozen record keeps a state that depends on history.)
  if (!final && rand() < 0.3) snap.quarantined.push({ kind: 'users', sourcedId: `s${String(Math.floor(rand() * 16)).padStart(2, '0')}`, reason: 'unreadable' });
  if (!final && rand() < 0.15) snap.quarantined.push({ kind: 'enrollments', sourcedId: null, reason: 'unreadable', refs: { classes: [pick(rand, ['c1', 'c2', 'c3', 'c4', 'c5'])] } });
  if (!final && rand() < 0.3) return asDelta(snap, rand);
  return snap;
}

/** A delta: some of the snapshot's records (what changed), and tombstones for a few people. */
function asDelta(full: Snapshot, rand: () => number): Snapshot {
  const keep = <K, V>(m: Map<K, V>, p: number) => new Map([...m].filter(() => rand() < p));
  const users = keep(full.users, 0.4);
  for (const [sid, u] of full.users) if (!users.has(sid) && u.role === 'student' && rand() < 0.1) users.set(sid, { ...u, status: 'tobedeleted' });
  return { ...full, complete: false, users, classes: keep(full.classes, 0.5), enrollments: keep(full.enrollments, 0.4) };
}

async function makeDistrict(id: string, seats: { all: number; math: number; sch2: number }) {
  await upsertDistrict(t.ctx.db, {
    // These histories test the license rules, not the guards: nothing is ever held.
    id, schedule: null, guard: { deletionThresholdMin: 1_000_000, deletionThresholdPct: 100, lossThresholdPct: 100 },
    settings: { provider: 'clever', baseUrl: 'http://127.0.0.1:9', credentials: { token: 'unused' } },
  });
  await setLicensePool(t.ctx, id, { product: 'ALL', seats: seats.all, scope: { schools: [], grades: [], courses: [] } });
  await setLicensePool(t.ctx, id, { product: 'MATH', seats: seats.math, scope: { schools: [], grades: [], courses: ['MATH'] } });
  await setLicensePool(t.ctx, id, { product: 'SCH2', seats: seats.sch2, scope: { schools: ['sch2'], grades: [], courses: [] } });
}

const AS_OF = '2026-11-22';

async function apply(districtId: string, snapshot: Snapshot, pools?: Record<string, number>): Promise<void> {
  const district = await getDistrict(t.ctx.db, districtId);
  await t.ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, districtId);
    const run = await trx.insertInto('sync_runs').values({ district_id: districtId, trigger: 'cli', status: 'SUCCEEDED', dry_run: false, full_snapshot: snapshot.complete, attempts: 1 })
      .returning('id').executeTakeFirstOrThrow();
    // Pools resized in the same step: a shrunk pool gives back its latest seats.
    for (const [product, seats] of Object.entries(pools ?? {})) {
      await trx.updateTable('license_pools').set({ seats }).where('district_id', '=', districtId).where('product', '=', product).execute();
    }
    const local = await loadLocalState(trx, districtId);
    const expected = reconcile(snapshot, local, { asOf: AS_OF });
    const tables = await snapshotInTables(trx, snapshot);
    await mergeDuplicates(trx, tables, AS_OF);
    const got = await planInDb(trx, tables, { districtId, provider: district.provider, complete: snapshot.complete, asOf: AS_OF });
    expect(await comparableDbPlan(trx)).toEqual(comparableTsPlan(expected));
    expect(await dbWaitlistOrder(trx)).toEqual(tsWaitlistOrder(expected));
    expect(got.counts).toEqual(expected.counts);
    expect(got.stats).toEqual(expected.stats);
    await applyPlan(trx, { districtId, provider: district.provider, runId: run.id });
    seen.waitlisted += expected.counts.seatsWaitlisted;
    seen.deleted += expected.counts.usersDeleted;
    seen.reactivated += expected.counts.usersReactivated;
    seen.deltas += snapshot.complete ? 0 : 1;
    seen.frozen += snapshot.quarantined.length;
    seen.bumped += expected.seats.release.filter((r) => r.reason === 'pool-reduced').length;
    seen.ended += expected.enrollments.end.length;
  });
}

/** The seat invariants that must hold after every run, whatever came before. */
async function checkInvariants(districtId: string): Promise<void> {
  const pools = await sql<{ product: string; seats: number; assigned: number; waiting: number }>`
    SELECT p.product, p.seats,
      (SELECT count(*)::int FROM seat_assignments s WHERE s.pool_id = p.id AND s.released_at IS NULL) AS assigned,
      (SELECT count(*)::int FROM waitlist w WHERE w.pool_id = p.id) AS waiting
    FROM license_pools p WHERE p.district_id = ${districtId}`.execute(t.ctx.db);
  for (const p of pools.rows) {
    expect(p.assigned).toBeLessThanOrEqual(p.seats);
    // No seat stays idle while someone waits for it.
    if (p.waiting > 0) expect(p.assigned).toBe(p.seats);
  }
  const bad = await sql<{ what: string; n: number }>`
    SELECT 'seat held by DELETED or non-student' AS what, count(*)::int AS n
      FROM seat_assignments s JOIN users u ON u.id = s.user_id
      WHERE u.district_id = ${districtId} AND s.released_at IS NULL AND (u.status = 'DELETED' OR u.role <> 'student')
    UNION ALL SELECT 'enrollment of a DELETED user', count(*)::int
      FROM enrollments e JOIN users u ON u.id = e.user_id WHERE u.district_id = ${districtId} AND e.ended_at IS NULL AND u.status = 'DELETED'
    UNION ALL SELECT 'both seated and wait-listed', count(*)::int
      FROM waitlist w JOIN seat_assignments s ON s.pool_id = w.pool_id AND s.user_id = w.user_id AND s.released_at IS NULL
      JOIN users u ON u.id = w.user_id WHERE u.district_id = ${districtId}
    UNION ALL SELECT 'wait-listed while DELETED', count(*)::int
      FROM waitlist w JOIN users u ON u.id = w.user_id WHERE u.district_id = ${districtId} AND u.status = 'DELETED'`.execute(t.ctx.db);
  expect(bad.rows.filter((r) => r.n > 0)).toEqual([]);
}

async function finalState(districtId: string) {
  // A DELETED account keeps the record as it was last rostered, which does depend
  // on history; statuses and active accounts' fields must not.
  const users = await sql<{ sourced_id: string; status: string; family_name: string | null }>`
    SELECT sourced_id, status, CASE WHEN status = 'ACTIVE' THEN family_name END AS family_name
    FROM users WHERE district_id = ${districtId} ORDER BY sourced_id`.execute(t.ctx.db);
  const enrollments = await sql<{ pair: string }>`
    SELECT c.sourced_id || '/' || u.sourced_id AS pair FROM enrollments e JOIN users u ON u.id = e.user_id JOIN classes c ON c.id = e.class_id
    WHERE e.district_id = ${districtId} AND e.ended_at IS NULL ORDER BY 1`.execute(t.ctx.db);
  const pools = await sql<{ product: string; assigned: number; waiting: number; holders: string[] }>`
    SELECT p.product,
      (SELECT count(*)::int FROM seat_assignments s WHERE s.pool_id = p.id AND s.released_at IS NULL) AS assigned,
      (SELECT count(*)::int FROM waitlist w WHERE w.pool_id = p.id) AS waiting,
      COALESCE((SELECT array_agg(u.sourced_id ORDER BY u.sourced_id) FROM seat_assignments s JOIN users u ON u.id = s.user_id
                WHERE s.pool_id = p.id AND s.released_at IS NULL), '{}') AS holders
    FROM license_pools p WHERE p.district_id = ${districtId} ORDER BY p.product`.execute(t.ctx.db);
  return { users: users.rows, enrollments: enrollments.rows.map((r) => r.pair), pools: pools.rows };
}

test.each(Array.from({ length: HISTORIES }, (_, i) => 1000 + i))('history seed %i: invariants hold at every step and the final state does not depend on the order of earlier snapshots', async (seed) => {
  const rand = prng(seed);
  const seats = { all: 6 + Math.floor(rand() * 12), math: 1 + Math.floor(rand() * 6), sch2: 1 + Math.floor(rand() * 8) };
  const history = Array.from({ length: STEPS }, (_, i) => randomSnapshot(rand, i === STEPS - 1));
  // Pool sizes per step: now and then one shrinks or grows; the last step restores them.
  const sizes = history.map((_, i) => {
    if (i === STEPS - 1) return { ALL: seats.all, MATH: seats.math, SCH2: seats.sch2 };
    return rand() < 0.4 ? { [pick(rand, ['ALL', 'MATH', 'SCH2'])]: Math.floor(rand() * 5) } : {};
  });
  const order = [...history.keys()].slice(0, -1).sort(() => rand() - 0.5);
  order.push(STEPS - 1);

  const [a, b] = [`prop-${seed}-a`, `prop-${seed}-b`];
  await makeDistrict(a, seats);
  await makeDistrict(b, seats);
  for (const [i, snap] of history.entries()) {
    await apply(a, snap, sizes[i]);
    await checkInvariants(a);
  }
  for (const i of order) {
    await apply(b, history[i]!, sizes[i]);
    await checkInvariants(b);
  }
  // Applying the last snapshot again is a no-op.
  const before = await finalState(a);
  await apply(a, history[STEPS - 1]!);
  expect(await finalState(a)).toEqual(before);

  const [sa, sb] = [await finalState(a), await finalState(b)];
  expect(sb.users).toEqual(sa.users);
  expect(sb.enrollments).toEqual(sa.enrollments);
  for (const [pa, pb] of sa.pools.map((p, i) => [p, sb.pools[i]!] as const)) {
    expect([pb.product, pb.assigned, pb.waiting]).toEqual([pa.product, pa.assigned, pa.waiting]);
    // Who holds a seat can depend on who came first only when the pool is oversubscribed.
    if (pa.waiting === 0) expect(pb.holders).toEqual(pa.holders);
  }
});
