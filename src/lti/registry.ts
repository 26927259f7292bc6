import type { Db } from '../../db/connection.js';
import { getDistrict } from '../districts/repository.js';
import { PLATFORM_PROFILES, defaultMatch, formatMatch, parseMatch, toolUrls, type LtiPlatform, type MatchRule } from './platforms.js';

// Which district a launch belongs to: a registration (issuer + client id, shared
// by the districts on one LMS) and its deployments, each owned by one district.

export class LtiConfigError extends Error {}

export interface Registration {
  id: string;
  platform: LtiPlatform;
  issuer: string;
  clientId: string;
  authUrl: string;
  tokenUrl: string;
  jwksUrl: string;
}

export interface DistrictPlatform {
  districtId: string;
  registration: Registration;
  deploymentIds: string[];
  match: MatchRule;
}

export interface AddPlatformInput {
  districtId: string;
  platform: LtiPlatform;
  clientId: string;
  deploymentIds: string[];
  issuer?: string;
  authUrl?: string;
  tokenUrl?: string;
  jwksUrl?: string;
  match?: MatchRule;
}

/** The registration add-platform would write, with the documented defaults, checked against what is stored. */
export async function planAddPlatform(db: Db, input: AddPlatformInput): Promise<{ registration: Omit<Registration, 'id'>; match: MatchRule }> {
  const district = await getDistrict(db, input.districtId);
  const profile = PLATFORM_PROFILES[input.platform];
  const match = input.match ?? defaultMatch(input.platform, district.provider);
  // A custom parameter carries the LMS's own user id: it only equals a sourcedId when that LMS rosters the district.
  if (match.kind === 'custom' && district.provider !== input.platform) {
    throw new LtiConfigError(`district '${district.id}' is rostered by ${district.provider}, so its sourcedIds are not ${profile.label} user ids; use --match sis (the launch's lis.person_sourcedid against the account's SIS id)`);
  }
  const issuer = (input.issuer ?? profile.issuer).replace(/\/+$/, '');
  const existing = await db.selectFrom('lti_registrations').selectAll().where('issuer', '=', issuer).where('client_id', '=', input.clientId).executeTakeFirst();
  if (existing && existing.platform !== input.platform) {
    throw new LtiConfigError(`${issuer} client ${input.clientId} is registered as ${existing.platform}, not ${input.platform}`);
  }
  const registration = {
    platform: input.platform, issuer, clientId: input.clientId,
    authUrl: input.authUrl ?? existing?.auth_url ?? profile.authUrl,
    tokenUrl: input.tokenUrl ?? existing?.token_url ?? profile.tokenUrl,
    jwksUrl: input.jwksUrl ?? existing?.jwks_url ?? profile.jwksUrl,
  };
  if (existing) await assertDeploymentsFree(db, existing.id, input.districtId, input.deploymentIds);
  return { registration, match };
}

async function assertDeploymentsFree(db: Db, registrationId: string, districtId: string, deploymentIds: string[]): Promise<void> {
  if (deploymentIds.length === 0) return;
  const taken = await db.selectFrom('lti_deployments').select(['deployment_id', 'district_id'])
    .where('registration_id', '=', registrationId).where('deployment_id', 'in', deploymentIds).where('district_id', '<>', districtId)
    .executeTakeFirst();
  if (taken) throw new LtiConfigError(`deployment '${taken.deployment_id}' already belongs to district '${taken.district_id}'; a deployment launches into one district only`);
}

/**
 * Writes the registration and sets the district's deployments on it to exactly
 * `deploymentIds` (re-run with the full list to add or drop one).
 */
export async function savePlatform(db: Db, input: { districtId: string; deploymentIds: string[]; match: MatchRule; registration: Omit<Registration, 'id'> }): Promise<DistrictPlatform> {
  const r = input.registration;
  return db.transaction().execute(async (trx) => {
    const row = await trx.insertInto('lti_registrations')
      .values({ platform: r.platform, issuer: r.issuer, client_id: r.clientId, auth_url: r.authUrl, token_url: r.tokenUrl, jwks_url: r.jwksUrl })
      .onConflict((oc) => oc.columns(['issuer', 'client_id']).doUpdateSet({ auth_url: r.authUrl, token_url: r.tokenUrl, jwks_url: r.jwksUrl, updated_at: new Date() }))
      .returning('id').executeTakeFirstOrThrow();
    // Checked again inside the transaction; the primary key catches a concurrent writer.
    await assertDeploymentsFree(trx, row.id, input.districtId, input.deploymentIds);
    await trx.deleteFrom('lti_deployments').where('registration_id', '=', row.id).where('district_id', '=', input.districtId).execute();
    await trx.insertInto('lti_deployments')
      .values(input.deploymentIds.map((d) => ({ registration_id: row.id, deployment_id: d, district_id: input.districtId, match: formatMatch(input.match) })))
      .execute();
    return { districtId: input.districtId, registration: { id: row.id, ...r }, deploymentIds: [...input.deploymentIds], match: input.match };
  });
}

function toRegistration(row: { id: string; platform: string; issuer: string; client_id: string; auth_url: string; token_url: string; jwks_url: string }): Registration {
  return { id: row.id, platform: row.platform as LtiPlatform, issuer: row.issuer, clientId: row.client_id, authUrl: row.auth_url, tokenUrl: row.token_url, jwksUrl: row.jwks_url };
}

export async function listPlatforms(db: Db, districtId?: string): Promise<DistrictPlatform[]> {
  let q = db.selectFrom('lti_deployments as d').innerJoin('lti_registrations as r', 'r.id', 'd.registration_id')
    .select(['d.district_id', 'd.deployment_id', 'd.match', 'r.id', 'r.platform', 'r.issuer', 'r.client_id', 'r.auth_url', 'r.token_url', 'r.jwks_url']);
  if (districtId) q = q.where('d.district_id', '=', districtId);
  const rows = await q.orderBy('d.district_id').orderBy('r.issuer').orderBy('r.client_id').orderBy('d.deployment_id').execute();
  const out = new Map<string, DistrictPlatform>();
  for (const row of rows) {
    const key = `${row.district_id}\n${row.id}`;
    const entry = out.get(key) ?? { districtId: row.district_id, registration: toRegistration(row), deploymentIds: [], match: parseMatch(row.match) };
    entry.deploymentIds.push(row.deployment_id);
    out.set(key, entry);
  }
  return [...out.values()];
}

export async function registrationOf(db: Db, issuer: string, clientId: string): Promise<Registration | undefined> {
  const row = await db.selectFrom('lti_registrations').selectAll().where('issuer', '=', issuer).where('client_id', '=', clientId).executeTakeFirst();
  return row && toRegistration(row);
}

export async function issuerKnown(db: Db, issuer: string): Promise<boolean> {
  return Boolean(await db.selectFrom('lti_registrations').select('id').where('issuer', '=', issuer).executeTakeFirst());
}

export async function deploymentOf(db: Db, registrationId: string, deploymentId: string): Promise<{ districtId: string; match: MatchRule } | undefined> {
  const row = await db.selectFrom('lti_deployments').select(['district_id', 'match'])
    .where('registration_id', '=', registrationId).where('deployment_id', '=', deploymentId).executeTakeFirst();
  return row && { districtId: row.district_id, match: parseMatch(row.match) };
}

/** What `lti add-platform` / `lti list` print. */
export function platformView(p: DistrictPlatform, publicUrl: string) {
  const r = p.registration;
  return {
    districtId: p.districtId, platform: r.platform, issuer: r.issuer, clientId: r.clientId, deploymentIds: p.deploymentIds,
    authUrl: r.authUrl, tokenUrl: r.tokenUrl, jwksUrl: r.jwksUrl, match: formatMatch(p.match), ...toolUrls(publicUrl),
  };
}
