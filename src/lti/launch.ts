import { decodeJwt, decodeProtectedHeader } from 'jose';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { SignInRefusal } from '../sso/refusals.js';
import { TOKEN_MAX_AGE_SEC } from './ltijs.js';
import { PLATFORM_PROFILES, type MatchRule } from './platforms.js';
import { deploymentOf, registrationOf, type Registration } from './registry.js';

// A launch ltijs has validated (signature against the platform's JWKS, alg RS256,
// iss against the state cookie, aud/azp, exp, age, nonce not seen in 10 s, the
// LTI core claims), turned into an account of one district — or refused.
// ltijs does NOT check deployment_id; this module does, against the registered
// deployments, and keeps its own replay guard for as long as a token could pass.

const Context = z.object({ id: z.union([z.string(), z.number()]).transform(String), title: z.string().nullish() }).partial().nullish();

/** What ltijs (ltiaas mode) leaves in res.locals.token: the id_token's claims, re-shaped (Provider.js platformToken/contextToken). */
export const LtijsToken = z.object({
  iss: z.string().min(1),
  user: z.union([z.string(), z.number()]).transform(String),
  clientId: z.string().min(1),
  deploymentId: z.union([z.string(), z.number()]).transform(String),
  platformContext: z.object({
    contextId: z.string(),
    context: Context,
    resource: z.object({ id: z.union([z.string(), z.number()]).transform(String) }).partial().nullish(),
    roles: z.array(z.string()).nullish(),
    custom: z.record(z.string(), z.unknown()).nullish(),
    lis: z.object({ person_sourcedid: z.union([z.string(), z.number()]).transform(String).nullish() }).passthrough().nullish(),
    namesRoles: z.object({ context_memberships_url: z.string().url() }).passthrough().nullish(),
  }),
});
export type LtijsToken = z.infer<typeof LtijsToken>;

export interface AcceptedLaunch { userId: string; districtId: string; launchId: string }

const IdTokenTimes = z.object({ nonce: z.string().min(1), iat: z.number(), exp: z.number() });

/**
 * Our replay guard: one use per (issuer, nonce) for as long as the token could
 * still pass ltijs' checks (ltijs forgets a nonce after 10 s). Also re-checks
 * alg, whatever ltijs' version does.
 */
async function claimNonce(ctx: AppContext, issuer: string, rawIdToken: string): Promise<void> {
  const header = decodeProtectedHeader(rawIdToken);
  if (header.alg !== 'RS256') throw new SignInRefusal('invalid_token', 'The launch was not signed the way LTI 1.3 requires (RS256). Launch the tool again from your course.', { reason: `alg ${String(header.alg)}` });
  const times = IdTokenTimes.safeParse(decodeJwt(rawIdToken));
  if (!times.success) throw new SignInRefusal('invalid_token', 'The launch lacks a nonce or its times. Launch the tool again from your course.', { reason: 'nonce/iat/exp missing' });
  const expiresAt = new Date((Math.max(times.data.exp, times.data.iat + TOKEN_MAX_AGE_SEC) + 300) * 1000);
  await ctx.db.deleteFrom('lti_nonces').where('expires_at', '<', new Date()).execute();
  const fresh = await ctx.db.insertInto('lti_nonces').values({ issuer, nonce: times.data.nonce, expires_at: expiresAt })
    .onConflict((oc) => oc.columns(['issuer', 'nonce']).doNothing()).returning('nonce').executeTakeFirst();
  if (!fresh) throw new SignInRefusal('invalid_token', 'This launch was already used. Launch the tool again from your course.', { reason: 'nonce replayed' });
}

/** The value the district's match rule compares, from the launch. */
function matchValue(launch: LtijsToken, match: MatchRule, registration: Registration, districtId: string): string {
  const label = PLATFORM_PROFILES[registration.platform].label;
  if (match.kind === 'sis') {
    const sis = launch.platformContext.lis?.person_sourcedid;
    if (!sis) throw new SignInRefusal('not_rostered', `${label} did not send your SIS id (lis.person_sourcedid), so no account of ${districtId} can be found. Your ${label} administrator should let the tool see the user's SIS id.`, { districtId, reason: 'no lis.person_sourcedid' });
    return sis;
  }
  const raw = launch.platformContext.custom?.[match.key];
  const value = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw : '';
  // An unsubstituted "$Canvas.user.id" means the LMS was not allowed to fill the variable in.
  if (!value || value.startsWith('$')) {
    const profile = PLATFORM_PROFILES[registration.platform];
    throw new SignInRefusal('not_rostered', `${label} did not send the custom parameter '${match.key}' that names your account. Your ${label} administrator should add the custom field ${match.key}=${profile.customVariable} to the tool.`, { districtId, reason: `custom ${match.key} ${value ? 'unsubstituted' : 'missing'}` });
  }
  return value;
}

async function findAccount(ctx: AppContext, districtId: string, match: MatchRule, value: string): Promise<string> {
  const column = match.kind === 'sis' ? 'sis_id' : 'sourced_id';
  const rows = await ctx.db.selectFrom('users').select(['id', 'status']).where('district_id', '=', districtId).where(column, '=', value).execute();
  const active = rows.filter((r) => r.status === 'ACTIVE');
  if (active.length === 1) return active[0]!.id;
  if (active.length > 1) {
    throw new SignInRefusal('not_rostered', `Several accounts of ${districtId} carry this SIS id, so the launch cannot tell which is yours. Ask your school to fix the duplicate SIS id.`, { districtId, reason: 'ambiguous sis id', accounts: active.length });
  }
  if (rows.length > 0) {
    throw new SignInRefusal('account_deleted', 'Your account was removed when you left your district\'s roster. If you are back, ask your school to add you to the roster again; your account and history return with the next sync.', { districtId });
  }
  throw new SignInRefusal('not_rostered', `You are not on ${districtId}'s roster yet. Ask your school to add you; you can open the tool after the next roster sync.`, { districtId, [match.kind === 'sis' ? 'sisId' : 'sourcedId']: value });
}

/**
 * District from the registration of (iss, client id, deployment id); then one
 * ACTIVE account of it by the district's match rule. Nothing is created but the
 * launch record; `sub` is recorded, never matched.
 */
export async function acceptLaunch(ctx: AppContext, launch: LtijsToken, rawIdToken: string): Promise<AcceptedLaunch> {
  await claimNonce(ctx, launch.iss, rawIdToken);
  const registration = await registrationOf(ctx.db, launch.iss, launch.clientId);
  if (!registration) {
    throw new SignInRefusal('unknown_platform', 'This LMS is not set up for this tool. An administrator can set it up with `rostersync lti add-platform`.', { issuer: launch.iss, clientId: launch.clientId });
  }
  const label = PLATFORM_PROFILES[registration.platform].label;
  const deployment = await deploymentOf(ctx.db, registration.id, launch.deploymentId);
  if (!deployment) {
    throw new SignInRefusal('unknown_deployment', `This ${label} installation of the tool (deployment ${launch.deploymentId}) is not linked to a district here. An administrator can add it with \`rostersync lti add-platform <district> --deployment-id ${launch.deploymentId} …\`.`, { issuer: launch.iss, clientId: launch.clientId, deploymentId: launch.deploymentId });
  }
  const value = matchValue(launch, deployment.match, registration, deployment.districtId);
  const userId = await findAccount(ctx, deployment.districtId, deployment.match, value);
  const c = launch.platformContext;
  const row = await ctx.db.insertInto('lti_launches').values({
    district_id: deployment.districtId, user_id: userId, registration_id: registration.id, deployment_id: launch.deploymentId,
    subject: launch.user, context_id: c.context?.id ?? null, context_title: c.context?.title ?? null, resource_link_id: c.resource?.id ?? null,
    roles: c.roles ?? [], nrps_url: c.namesRoles?.context_memberships_url ?? null,
  }).returning('id').executeTakeFirstOrThrow();
  return { userId, districtId: deployment.districtId, launchId: row.id };
}

/** The most recent launch of a context with a Names and Roles endpoint. */
export async function latestNrpsLaunch(ctx: AppContext, districtId: string, contextId: string) {
  return ctx.db.selectFrom('lti_launches as l').innerJoin('lti_registrations as r', 'r.id', 'l.registration_id')
    .select(['l.context_id', 'l.context_title', 'l.nrps_url', 'r.issuer', 'r.client_id'])
    .where('l.district_id', '=', districtId).where('l.context_id', '=', contextId).where('l.nrps_url', 'is not', null)
    .orderBy('l.launched_at', 'desc').limit(1).executeTakeFirst();
}
