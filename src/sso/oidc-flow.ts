import * as client from 'openid-client';
import { z } from 'zod';
import type { SecretBox } from '../secrets/secret-box.js';
import type { SsoApp } from './config-store.js';
import { PROFILES, isLoopbackHttp, type SsoProvider } from './providers.js';
import { SignInRefusal } from './refusals.js';

// The authorization code flow with openid-client 6
// (https://github.com/panva/openid-client/blob/main/docs/README.md):
// discovery → buildAuthorizationUrl (PKCE S256, state, nonce) →
// authorizationCodeGrant, which checks iss, aud, exp, nonce, state, PKCE and
// the `iss` authorization response parameter. openid-client does NOT verify
// the id_token's signature on the code flow by default (it trusts the TLS
// channel to the token endpoint); enableNonRepudiationChecks makes it verify
// the signature against the issuer's jwks_uri, which we require.

/** Who the provider says signed in: the district's tenant and the user's id in the roster. */
export interface ProviderIdentity {
  provider: SsoProvider;
  tenant: string;
  sourcedId: string;
  givenName: string;
  familyName: string;
  email: string | null;
  role: 'student' | 'teacher' | 'administrator' | null;
}

export class OidcFlow {
  private readonly configs = new Map<string, Promise<client.Configuration>>();

  constructor(private readonly box: SecretBox) {}

  configuration(app: SsoApp): Promise<client.Configuration> {
    // Keyed by the sealed secret too, so `sso set` with a new secret takes effect without a restart.
    const key = `${app.id}:${app.clientSecretSealed}`;
    let config = this.configs.get(key);
    if (!config) {
      config = this.discover(app);
      config.catch(() => this.configs.delete(key));
      this.configs.set(key, config);
    }
    return config;
  }

  private async discover(app: SsoApp): Promise<client.Configuration> {
    const issuer = new URL(app.issuer);
    const secret = this.box.open(app.clientSecretSealed);
    const auth = PROFILES[app.provider].tokenAuth === 'client_secret_basic' ? client.ClientSecretBasic(secret) : client.ClientSecretPost(secret);
    const execute = [client.enableNonRepudiationChecks, ...(isLoopbackHttp(issuer) ? [client.allowInsecureRequests] : [])];
    return client.discovery(issuer, app.clientId, { id_token_signed_response_alg: 'RS256' }, auth, { execute });
  }

  async authorizationUrl(app: SsoApp, p: { redirectUri: string; state: string; nonce: string; codeVerifier: string; tenant: string }): Promise<URL> {
    const config = await this.configuration(app);
    const params: Record<string, string> = {
      response_type: 'code',
      redirect_uri: p.redirectUri,
      scope: PROFILES[app.provider].scope,
      state: p.state,
      nonce: p.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(p.codeVerifier),
      code_challenge_method: 'S256',
    };
    // Clever: district_id sends the user straight to their district's login page.
    if (app.provider === 'clever') params.district_id = p.tenant;
    return client.buildAuthorizationUrl(config, params);
  }

  /**
   * Exchanges the code and verifies the id_token. `started` is absent for a
   * portal launch: then no state, nonce or PKCE was sent, and none may come back.
   */
  async complete(app: SsoApp, callbackUrl: URL, started: { state: string; nonce: string; codeVerifier: string } | undefined, apiUrl: string): Promise<ProviderIdentity> {
    const config = await this.configuration(app);
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, started
        ? { expectedState: started.state, expectedNonce: started.nonce, pkceCodeVerifier: started.codeVerifier, idTokenExpected: true }
        : { idTokenExpected: true });
    } catch (err) {
      throw new SignInRefusal('invalid_token', `${PROFILES[app.provider].label} did not confirm this sign-in (the sign-in code or identity token was rejected). Try again from your portal; if it keeps failing, your administrator should check the ${PROFILES[app.provider].label} app settings (\`rostersync sso list\`).`, { reason: describe(err) });
    }
    const claims = tokens.claims();
    if (!claims) throw new SignInRefusal('invalid_token', 'The provider returned no identity token.', { reason: 'no id_token' });
    if (app.provider === 'clever') return cleverIdentity(claims);
    return classLinkIdentity(await fetchMyInfo(config, tokens.access_token, apiUrl));
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    const cause = (err as { cause?: unknown }).cause;
    const extra = cause && typeof cause === 'object' && 'error' in cause ? ` (${String((cause as { error: unknown }).error)})` : '';
    return `${code ? `${code}: ` : ''}${err.message}${extra}`;
  }
  return String(err);
}

const CleverClaims = z.object({
  sub: z.string().min(1),
  district: z.string().min(1),
  user_type: z.string().optional(),
  given_name: z.string().optional(),
  family_name: z.string().optional(),
  email: z.string().optional(),
});

const ROLES: Record<string, ProviderIdentity['role']> = {
  student: 'student', teacher: 'teacher', district_admin: 'administrator', school_admin: 'administrator', staff: 'administrator',
  'tenant administrator': 'administrator', administrator: 'administrator',
};

function cleverIdentity(claims: Record<string, unknown>): ProviderIdentity {
  const parsed = CleverClaims.safeParse(claims);
  if (!parsed.success) throw new SignInRefusal('invalid_token', 'Clever\'s identity token lacks the user or district id; ask your administrator to check that the Clever app is set up for OpenID Connect.', { reason: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
  const c = parsed.data;
  return { provider: 'clever', tenant: c.district, sourcedId: c.sub, givenName: c.given_name ?? '', familyName: c.family_name ?? '', email: c.email ?? null, role: ROLES[c.user_type ?? ''] ?? null };
}

// https://developer.classlink.com/docs/accessing-user-data-1: /v2/my/info fields.
const MyInfo = z.object({
  TenantId: z.union([z.string().min(1), z.number()]).transform(String),
  SourcedId: z.string().nullish(),
  FirstName: z.string().nullish(),
  LastName: z.string().nullish(),
  Email: z.string().nullish(),
  Role: z.string().nullish(),
});

async function fetchMyInfo(config: client.Configuration, accessToken: string, apiUrl: string): Promise<z.infer<typeof MyInfo>> {
  let body: unknown;
  try {
    const res = await client.fetchProtectedResource(config, accessToken, new URL(`${apiUrl}/v2/my/info`), 'GET');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = await res.json();
  } catch (err) {
    throw new SignInRefusal('invalid_token', 'ClassLink did not tell us who signed in (/v2/my/info failed). Try again; if it persists, your administrator should check the ClassLink app\'s scopes (profile) and --api-url.', { reason: describe(err) });
  }
  const parsed = MyInfo.safeParse(body);
  if (!parsed.success) throw new SignInRefusal('invalid_token', 'ClassLink\'s user info lacks the tenant id.', { reason: parsed.error.issues[0]?.message });
  return parsed.data;
}

function classLinkIdentity(info: z.infer<typeof MyInfo>): ProviderIdentity {
  return {
    provider: 'classlink', tenant: info.TenantId, sourcedId: info.SourcedId ?? '',
    givenName: info.FirstName ?? '', familyName: info.LastName ?? '', email: info.Email ?? null, role: ROLES[(info.Role ?? '').toLowerCase()] ?? null,
  };
}
