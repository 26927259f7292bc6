import type { AppContext } from '../context.js';
import { getDistrict, NotFoundError } from '../districts/repository.js';
import type { PoolScope } from '../licenses/rules.js';
import type { Snapshot } from '../reconcile/types.js';
import { applyPlan, planSmallChange } from './apply.js';
import { lockDistrict, toRunView, type RunTrigger, type RunView } from './runs.js';
import { disturbMirror } from './snapshot-mirror.js';

/** A delta that changes no roster record: what ops actions reconcile against. */
function emptyDelta(): Snapshot {
  return { complete: false, orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(), enrollments: new Map(), quarantined: [] };
}

/**
 * Ops actions are runs too: they go through the same reconcile and license
 * rules as a sync, under the same district lock, and are recorded (with their
 * audit rows) like any other run.
 */
async function settle(ctx: AppContext, districtId: string, trigger: RunTrigger, removals: Map<string, string>, before?: (trx: AppContext['db']) => Promise<void>): Promise<RunView> {
  // A pool created, resized or rescoped changes who is eligible anywhere in the district.
  const allSeats = before !== undefined;
  const district = await getDistrict(ctx.db, districtId);
  return ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, districtId);
    if (before) {
      await before(trx);
      // The district's pools changed, whatever the plan below moves.
      await disturbMirror(trx, districtId);
    }
    const startedAt = new Date();
    const scope = { districtId, provider: district.provider };
    const plan = await planSmallChange(trx, scope, emptyDelta(), { asOf: startedAt.toISOString().slice(0, 10), removals, allSeats });
    const run = await trx.insertInto('sync_runs').values({
      district_id: districtId, trigger, status: 'SUCCEEDED', dry_run: false, full_snapshot: false, phase: 'done',
      counts: JSON.stringify(plan.counts), started_at: startedAt,
    }).returning('id').executeTakeFirstOrThrow();
    await applyPlan(trx, { ...scope, runId: run.id });
    const row = await trx.updateTable('sync_runs').set({ finished_at: new Date() }).where('id', '=', run.id).returningAll().executeTakeFirstOrThrow();
    ctx.logger.info({ districtId, runId: run.id, trigger, counts: plan.counts }, 'ops change applied');
    return toRunView(row);
  });
}

/** `remove-student`: the student leaves exactly as if the roster had dropped them. */
export async function removeStudent(ctx: AppContext, districtId: string, userRef: string): Promise<RunView> {
  const user = await ctx.db.selectFrom('users').select(['sourced_id', 'role', 'status'])
    .where('district_id', '=', districtId)
    .where((eb) => eb.or([eb('sourced_id', '=', userRef), ...(/^[0-9a-f-]{36}$/i.test(userRef) ? [eb('id', '=', userRef)] : [])]))
    .executeTakeFirst();
  if (!user) throw new NotFoundError(`district '${districtId}' has no user '${userRef}' (give the account id or the provider's sourcedId)`);
  if (user.role !== 'student') throw new Error(`user '${userRef}' is a ${user.role}, not a student`);
  if (user.status === 'DELETED') throw new Error(`student '${userRef}' is already DELETED`);
  return settle(ctx, districtId, 'ops:remove-student', new Map([[user.sourced_id, 'removed-by-ops']]));
}

/** `license set`: creates or resizes a pool, then settles seats (a larger pool serves its wait-list at once). */
export async function setLicensePool(ctx: AppContext, districtId: string, pool: { product: string; seats: number; scope: PoolScope }): Promise<RunView> {
  return settle(ctx, districtId, 'ops:license-change', new Map(), async (trx) => {
    await trx.insertInto('license_pools')
      .values({ district_id: districtId, product: pool.product, seats: pool.seats, scope: JSON.stringify(pool.scope) })
      .onConflict((oc) => oc.columns(['district_id', 'product']).doUpdateSet({ seats: pool.seats, scope: JSON.stringify(pool.scope), updated_at: new Date() }))
      .execute();
  });
}
