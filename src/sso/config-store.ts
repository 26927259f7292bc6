import type { Db } from '../../db/connection.js';
import { getDistrict } from '../districts/repository.js';
import { SecretBox } from '../secrets/secret-box.js';
import { PROFILES, redirectUri, type SsoProvider } from './providers.js';

// Provider apps (shared, secret sealed at rest) and each district's tenant.

export interface SsoApp {
  id: string;
  provider: SsoProvider;
  issuer: string;
  clientId: string;
  /** Sealed; opened only when a token request needs it. */
  clientSecretSealed: string;
}

export interface TenantBinding {
  districtId: string;
  provider: SsoProvider;
  tenant: string;
  apiUrl: string;
  jit: boolean;
  app: SsoApp;
}

export class SsoConfigError extends Error {}

export interface SetProviderInput {
  districtId: string;
  provider: SsoProvider;
  clientId: string;
  clientSecret: string;
  tenant: string;
  issuer?: string;
  apiUrl?: string;
  jit?: boolean;
}

export async function setProvider(db: Db, box: SecretBox, input: SetProviderInput): Promise<TenantBinding> {
  const district = await getDistrict(db, input.districtId);
  // Matching compares the provider's user id with the roster's sourcedId, which
  // only means something when the same provider rosters the district.
  if (district.provider !== input.provider) {
    throw new SsoConfigError(`district '${district.id}' is rostered by ${district.provider}; ${PROFILES[input.provider].label} sign-in matches ${PROFILES[input.provider].label} user ids, so it needs a district rostered by ${input.provider}`);
  }
  const issuer = (input.issuer ?? PROFILES[input.provider].defaultIssuer).replace(/\/+$/, '');
  const apiUrl = (input.apiUrl ?? PROFILES[input.provider].defaultApiUrl).replace(/\/+$/, '');
  const sealed = box.seal(input.clientSecret);
  return db.transaction().execute(async (trx) => {
    const owner = await trx.selectFrom('sso_tenants').select('district_id')
      .where('provider', '=', input.provider).where('tenant', '=', input.tenant).where('district_id', '<>', input.districtId)
      .executeTakeFirst();
    if (owner) throw new SsoConfigError(`${PROFILES[input.provider].label} tenant '${input.tenant}' already belongs to district '${owner.district_id}'; a tenant signs in to one district only`);
    const app = await trx.insertInto('sso_apps')
      .values({ provider: input.provider, issuer, client_id: input.clientId, client_secret_sealed: sealed })
      .onConflict((oc) => oc.columns(['provider', 'issuer', 'client_id']).doUpdateSet({ client_secret_sealed: sealed, updated_at: new Date() }))
      .returningAll().executeTakeFirstOrThrow();
    const existing = await trx.selectFrom('sso_tenants').select('jit').where('district_id', '=', input.districtId).where('provider', '=', input.provider).executeTakeFirst();
    const jit = input.jit ?? existing?.jit ?? false;
    await trx.insertInto('sso_tenants')
      .values({ district_id: input.districtId, provider: input.provider, app_id: app.id, tenant: input.tenant, api_url: apiUrl, jit })
      .onConflict((oc) => oc.columns(['district_id', 'provider']).doUpdateSet({ app_id: app.id, tenant: input.tenant, api_url: apiUrl, jit, updated_at: new Date() }))
      .execute();
    return { districtId: input.districtId, provider: input.provider, tenant: input.tenant, apiUrl, jit, app: toApp(app) };
  });
}

function toApp(row: { id: string; provider: string; issuer: string; client_id: string; client_secret_sealed: string }): SsoApp {
  return { id: row.id, provider: row.provider as SsoProvider, issuer: row.issuer, clientId: row.client_id, clientSecretSealed: row.client_secret_sealed };
}

function baseQuery(db: Db) {
  return db.selectFrom('sso_tenants as t').innerJoin('sso_apps as a', 'a.id', 't.app_id')
    .select(['t.district_id', 't.provider', 't.tenant', 't.api_url', 't.jit', 'a.id', 'a.issuer', 'a.client_id', 'a.client_secret_sealed']);
}

type BindingRow = Awaited<ReturnType<ReturnType<typeof baseQuery>['executeTakeFirstOrThrow']>>;

function toBinding(r: BindingRow): TenantBinding {
  return {
    districtId: r.district_id, provider: r.provider as SsoProvider, tenant: r.tenant, apiUrl: r.api_url, jit: r.jit,
    app: toApp({ id: r.id, provider: r.provider, issuer: r.issuer, client_id: r.client_id, client_secret_sealed: r.client_secret_sealed }),
  };
}

export async function bindingForDistrict(db: Db, provider: SsoProvider, districtId: string): Promise<TenantBinding | undefined> {
  const row = await baseQuery(db).where('t.provider', '=', provider).where('t.district_id', '=', districtId).executeTakeFirst();
  return row && toBinding(row);
}

export async function bindingForTenant(db: Db, provider: SsoProvider, tenant: string): Promise<TenantBinding | undefined> {
  const row = await baseQuery(db).where('t.provider', '=', provider).where('t.tenant', '=', tenant).executeTakeFirst();
  return row && toBinding(row);
}

export async function appsOf(db: Db, provider: SsoProvider): Promise<SsoApp[]> {
  const rows = await db.selectFrom('sso_apps').selectAll().where('provider', '=', provider)
    .where('id', 'in', db.selectFrom('sso_tenants').select('app_id')).execute();
  return rows.map(toApp);
}

export async function listBindings(db: Db, districtId?: string): Promise<TenantBinding[]> {
  let q = baseQuery(db);
  if (districtId) q = q.where('t.district_id', '=', districtId);
  return (await q.orderBy('t.district_id').orderBy('t.provider').execute()).map(toBinding);
}

/** What `sso set` / `sso list` print: never the secret. */
export function bindingView(b: TenantBinding, publicUrl: string) {
  return { districtId: b.districtId, provider: b.provider, issuer: b.app.issuer, clientId: b.app.clientId, tenant: b.tenant, jit: b.jit, apiUrl: b.apiUrl, redirectUri: redirectUri(publicUrl, b.provider) };
}
