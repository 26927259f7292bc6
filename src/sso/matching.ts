import type { AppContext } from '../context.js';
import type { Snapshot } from '../reconcile/types.js';
import { applyPlan, planSmallChange } from '../sync/apply.js';
import { lockDistrict } from '../sync/runs.js';
import { bindingForDistrict, bindingForTenant, type SsoApp, type TenantBinding } from './config-store.js';
import type { ProviderIdentity } from './oidc-flow.js';
import { PROFILES } from './providers.js';
import { SignInRefusal } from './refusals.js';

// One district first (by the identity's tenant, on the app that issued it),
// then one account of it (by sourcedId). Nothing here ever reactivates a
// DELETED account or looks outside the district.

export interface MatchedAccount { userId: string; districtId: string; sourcedId: string; created: boolean }

export async function findDistrict(ctx: AppContext, app: SsoApp, identity: ProviderIdentity, startedFor: string | undefined): Promise<TenantBinding> {
  const label = PROFILES[identity.provider].label;
  const owner = await bindingForTenant(ctx.db, identity.provider, identity.tenant);
  if (startedFor) {
    const started = await bindingForDistrict(ctx.db, identity.provider, startedFor);
    if (!started || started.tenant !== identity.tenant || started.app.id !== app.id) {
      throw new SignInRefusal('wrong_district', `You signed in with a ${label} account of another district than '${startedFor}'. Sign out of ${label} and sign in with your account for this district, or use your own district's sign-in link.`, { startedFor, tenant: identity.tenant });
    }
    return started;
  }
  // A portal launch: the tenant alone names the district, and only on the app it is configured with.
  if (!owner || owner.app.id !== app.id) {
    throw new SignInRefusal('unknown_tenant', `Your district is not set up for ${label} sign-in here (${label} district id ${identity.tenant}). An administrator can set it up with \`rostersync sso set <district> --provider ${identity.provider} --tenant ${identity.tenant} …\`.`, { tenant: identity.tenant });
  }
  return owner;
}

export async function findAccount(ctx: AppContext, binding: TenantBinding, identity: ProviderIdentity): Promise<MatchedAccount> {
  if (!identity.sourcedId) {
    throw new SignInRefusal('not_rostered', `${PROFILES[identity.provider].label} has no roster id for you, so no account can be found. Ask your district to roster you.`, { districtId: binding.districtId });
  }
  const user = await ctx.db.selectFrom('users').select(['id', 'status', 'sourced_id'])
    .where('district_id', '=', binding.districtId).where('provider', '=', identity.provider).where('sourced_id', '=', identity.sourcedId)
    .executeTakeFirst();
  if (user?.status === 'DELETED') {
    throw new SignInRefusal('account_deleted', 'Your account was removed when you left your district\'s roster. If you are back, ask your school to add you to the roster again; your account and history return with the next sync.', { districtId: binding.districtId });
  }
  if (user) return { userId: user.id, districtId: binding.districtId, sourcedId: user.sourced_id, created: false };
  if (!binding.jit) {
    throw new SignInRefusal('not_rostered', `You are not on ${binding.districtId}'s roster yet. Ask your school to add you in the student information system; you can sign in after the next roster sync.`, { districtId: binding.districtId });
  }
  return createJustInTime(ctx, binding, identity);
}

/**
 * `--jit`: the account is created as a one-user roster delta through the same
 * reconcile and license rules as a sync (under the district lock, recorded as a
 * run), so seats follow the one rule module and the next complete snapshot
 * treats the account like any other: absent → leaver.
 */
async function createJustInTime(ctx: AppContext, binding: TenantBinding, identity: ProviderIdentity): Promise<MatchedAccount> {
  const districtId = binding.districtId;
  return ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, districtId);
    const existing = await trx.selectFrom('users').select(['id', 'status']).where('district_id', '=', districtId)
      .where('provider', '=', identity.provider).where('sourced_id', '=', identity.sourcedId).executeTakeFirst();
    // Re-checked under the lock: a parallel sign-in or sync may have got there first.
    if (existing?.status === 'DELETED') throw new SignInRefusal('account_deleted', 'Your account was removed when you left your district\'s roster. Ask your school to add you to the roster again.', { districtId });
    if (existing) return { userId: existing.id, districtId, sourcedId: identity.sourcedId, created: false };
    const delta: Snapshot = {
      complete: false, orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), enrollments: new Map(), quarantined: [],
      users: new Map([[identity.sourcedId, {
        sourcedId: identity.sourcedId, role: identity.role ?? 'student', givenName: identity.givenName, familyName: identity.familyName,
        email: identity.email, username: null, sisId: null, grades: [], orgSourcedIds: [], enabled: true, status: 'active',
      }]]),
    };
    const startedAt = new Date();
    const plan = await planSmallChange(trx, { districtId, provider: identity.provider }, delta, { asOf: startedAt.toISOString().slice(0, 10) });
    const run = await trx.insertInto('sync_runs').values({
      district_id: districtId, trigger: 'sso:jit', status: 'SUCCEEDED', dry_run: false, full_snapshot: false, phase: 'done',
      counts: JSON.stringify(plan.counts), started_at: startedAt, finished_at: startedAt,
    }).returning('id').executeTakeFirstOrThrow();
    await applyPlan(trx, { districtId, provider: identity.provider, runId: run.id });
    const created = await trx.selectFrom('users').select('id').where('district_id', '=', districtId).where('provider', '=', identity.provider).where('sourced_id', '=', identity.sourcedId).executeTakeFirstOrThrow();
    return { userId: created.id, districtId, sourcedId: identity.sourcedId, created: true };
  });
}
