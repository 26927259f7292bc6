import type http from 'node:http';
import * as client from 'openid-client';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { createLtiHandler } from '../lti/routes.js';
import { SecretBox } from '../secrets/secret-box.js';
import { appsOf, bindingForDistrict, type SsoApp } from './config-store.js';
import { readCookies, serializeCookie } from './cookies.js';
import { findAccount, findDistrict } from './matching.js';
import { OidcFlow } from './oidc-flow.js';
import { PROFILES, SsoProviderSchema, redirectUri, type SsoProvider } from './providers.js';
import { SignInRefusal, auditSignIn, type RefusalCode } from './refusals.js';
import { SESSION_COOKIE, SESSION_TTL_SEC, SessionStore } from './session-store.js';
import { STATE_TTL_SEC, consumeState, saveState } from './state-store.js';

/** What an SSO route answers; null when the path is not an SSO route. */
export interface SsoReply {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: unknown;
}

/** The LTI routes (ltijs, an express app) write the response themselves. */
export interface SsoHandled { handled: true }

/** Binds a sign-in started here to the browser that started it. */
const BROWSER_COOKIE = 'rostersync_oidc';

export class SessionSecretMissing extends Error {}

/**
 * Sign-in routes (`/sso/*`), mounted by the HTTP server before its admin
 * routes. DESIGN.md "Sign-in (SSO)" is the contract.
 */
export function createSsoHandler(ctx: AppContext): {
  handle(req: http.IncomingMessage, url: URL, res?: http.ServerResponse): Promise<SsoReply | SsoHandled | null>;
  close(): Promise<void>;
} {
  const secret = ctx.config.SESSION_SECRET;
  if (!secret) throw new SessionSecretMissing('SESSION_SECRET must be set to serve sign-in (32+ random characters: openssl rand -base64 48); it signs the rostersync_session cookie');
  const publicUrl = ctx.config.PUBLIC_URL.replace(/\/+$/, '');
  const appUrl = ctx.config.APP_URL ?? `${publicUrl}/`;
  const secure = new URL(publicUrl).protocol === 'https:';
  const sessions = new SessionStore(ctx.db, secret);
  const flow = new OidcFlow(SecretBox.fromConfig(ctx.config));
  // LTI 1.3 launches (issue #10) share the session store, the refusals and /sso/me.
  const lti = createLtiHandler(ctx, { secret, sessions, appUrl });

  const clearBrowserCookie = serializeCookie(BROWSER_COOKIE, '', { path: '/sso', maxAgeSec: 0, secure });
  const clearSessionCookie = serializeCookie(SESSION_COOKIE, '', { path: '/', maxAgeSec: 0, secure });

  /**
   * A refusal leaves no session at all, not even an earlier one of this
   * browser: on a shared classroom device, the next person refused must not
   * find the previous person still signed in.
   */
  async function refuse(provider: string, err: SignInRefusal, subject: string | null, req: http.IncomingMessage): Promise<SsoReply> {
    await sessions.destroy(readCookies(req).get(SESSION_COOKIE));
    const districtId = typeof err.detail.districtId === 'string' ? err.detail.districtId : typeof err.detail.startedFor === 'string' ? err.detail.startedFor : null;
    await auditSignIn(ctx.db, { districtId, provider, subject, outcome: err.code, detail: { message: err.message, ...err.detail } });
    ctx.logger.info({ provider, code: err.code, districtId, detail: err.detail }, 'sign-in refused');
    return { status: err.status, headers: { 'set-cookie': [clearBrowserCookie, clearSessionCookie] }, body: { error: err.code, message: err.message } };
  }

  async function login(provider: SsoProvider, url: URL): Promise<SsoReply> {
    const districtId = url.searchParams.get('district') ?? '';
    const binding = districtId ? await bindingForDistrict(ctx.db, provider, districtId) : undefined;
    if (!binding) return { status: 404, body: { error: 'unknown_district', message: `No district '${districtId}' is set up for ${PROFILES[provider].label} sign-in. Use the sign-in link your district gave you, or ask an administrator to run \`rostersync sso set\`.` } };
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const browserKey = client.randomState();
    await saveState(ctx.db, state, browserKey, { provider, districtId, nonce, codeVerifier });
    let target: URL;
    try {
      target = await flow.authorizationUrl(binding.app, { redirectUri: redirectUri(publicUrl, provider), state, nonce, codeVerifier, tenant: binding.tenant });
    } catch (err) {
      ctx.logger.warn({ provider, districtId, issuer: binding.app.issuer, err: (err as Error).message }, 'OpenID discovery failed');
      return { status: 502, body: { error: 'provider_unavailable', message: `${PROFILES[provider].label} cannot be reached right now (${binding.app.issuer}). Try again in a few minutes.` } };
    }
    return {
      status: 302,
      headers: { location: target.href, 'content-type': 'text/plain', 'set-cookie': serializeCookie(BROWSER_COOKIE, browserKey, { path: '/sso', maxAgeSec: STATE_TTL_SEC, secure }) },
      body: '',
    };
  }

  async function portalApp(provider: SsoProvider): Promise<SsoApp> {
    const apps = await appsOf(ctx.db, provider);
    if (apps.length === 1) return apps[0]!;
    // A launch without state carries nothing that names the app; with several, we cannot tell which secret the code was issued to.
    throw new SignInRefusal(apps.length === 0 ? 'unknown_tenant' : 'invalid_state',
      apps.length === 0
        ? `${PROFILES[provider].label} sign-in is not set up here. An administrator can set it up with \`rostersync sso set\`.`
        : `Several ${PROFILES[provider].label} apps are set up here, so a portal launch cannot tell which one it is for. Start from your district's sign-in link instead.`,
      { reason: 'portal launch app' });
  }

  async function callback(provider: SsoProvider, req: http.IncomingMessage, url: URL): Promise<SsoReply> {
    const cookies = readCookies(req);
    const state = url.searchParams.get('state');
    let subject: string | null = null;
    try {
      // The state is consumed first, whatever follows: it is single use even for a failed sign-in.
      const started = state ? await consumeState(ctx.db, provider, state, cookies.get(BROWSER_COOKIE)) : undefined;
      const providerError = url.searchParams.get('error');
      if (providerError) {
        throw new SignInRefusal('provider_error', `${PROFILES[provider].label} stopped the sign-in (${providerError}${url.searchParams.get('error_description') ? `: ${url.searchParams.get('error_description')}` : ''}). Try again; if it persists, your administrator should check the app's settings at ${PROFILES[provider].label}.`, { providerError, districtId: started?.districtId });
      }
      if (!url.searchParams.get('code')) throw new SignInRefusal('invalid_state', 'This sign-in link is incomplete (no state and no code). Start the sign-in again from the sign-in page or your portal.', { reason: 'missing' });
      const startedBinding = started ? await bindingForDistrict(ctx.db, provider, started.districtId) : undefined;
      if (started && !startedBinding) throw new SignInRefusal('unknown_tenant', `District '${started.districtId}' is no longer set up for ${PROFILES[provider].label} sign-in.`, { districtId: started.districtId });
      const app = startedBinding?.app ?? await portalApp(provider);
      const apiUrl = startedBinding?.apiUrl ?? (await bindingsApiUrl(app.id)) ?? PROFILES[provider].defaultApiUrl;
      const callbackUrl = new URL(`${redirectUri(publicUrl, provider)}${url.search}`);
      const identity = await flow.complete(app, callbackUrl, started && { state: state!, nonce: started.nonce, codeVerifier: started.codeVerifier }, apiUrl);
      subject = identity.sourcedId || null;
      const binding = await findDistrict(ctx, app, identity, started?.districtId);
      const account = await findAccount(ctx, binding, identity);
      // A new sign-in replaces whatever session this browser had.
      await sessions.destroy(readCookies(req).get(SESSION_COOKIE));
      const cookie = await sessions.create({ userId: account.userId, districtId: account.districtId, via: provider });
      await auditSignIn(ctx.db, { districtId: account.districtId, provider, subject, outcome: 'signed-in', detail: { userId: account.userId, portalLaunch: !started, jitCreated: account.created } });
      return {
        status: 302,
        headers: {
          location: appUrl, 'content-type': 'text/plain',
          'set-cookie': [serializeCookie(SESSION_COOKIE, cookie, { path: '/', maxAgeSec: SESSION_TTL_SEC, secure }), clearBrowserCookie],
        },
        body: '',
      };
    } catch (err) {
      if (err instanceof SignInRefusal) return refuse(provider, err, subject, req);
      throw err;
    }
  }

  async function bindingsApiUrl(appId: string): Promise<string | undefined> {
    const row = await ctx.db.selectFrom('sso_tenants').select('api_url').where('app_id', '=', appId).orderBy('district_id').executeTakeFirst();
    return row?.api_url;
  }

  async function me(req: http.IncomingMessage): Promise<SsoReply> {
    const cookie = readCookies(req).get(SESSION_COOKIE);
    const session = await sessions.find(cookie);
    if (!session) return { status: 401, body: { error: 'no_session', message: 'Not signed in (or the session expired). Sign in again.' } };
    const user = await ctx.db.selectFrom('users').select(['id', 'district_id', 'sourced_id', 'role', 'status', 'given_name', 'family_name'])
      .where('id', '=', session.userId).executeTakeFirst();
    // The roster rules over the session: an account that left it is signed out at once.
    if (!user || user.status !== 'ACTIVE' || user.district_id !== session.districtId) {
      await sessions.destroyByHash(session.idHash);
      return { status: 401, body: { error: 'account_inactive', message: 'Your account is no longer on your district\'s roster, so this session has ended.' } };
    }
    const products = await sql<{ product: string }>`
      SELECT DISTINCT p.product FROM seat_assignments s JOIN license_pools p ON p.id = s.pool_id
      WHERE s.user_id = ${user.id} AND s.released_at IS NULL ORDER BY p.product`.execute(ctx.db);
    return {
      status: 200,
      body: {
        districtId: user.district_id, userId: user.id, sourcedId: user.sourced_id, role: user.role,
        givenName: user.given_name, familyName: user.family_name, products: products.rows.map((r) => r.product), via: session.via,
      },
    };
  }

  async function logout(req: http.IncomingMessage): Promise<SsoReply> {
    await sessions.destroy(readCookies(req).get(SESSION_COOKIE));
    return { status: 204, headers: { 'set-cookie': serializeCookie(SESSION_COOKIE, '', { path: '/', maxAgeSec: 0, secure }) }, body: '' };
  }

  return {
    async handle(req, url, res) {
      if (url.pathname.startsWith('/lti/') && res) {
        await lti.handle(req, res, url);
        return { handled: true };
      }
      if (!url.pathname.startsWith('/sso/')) return null;
      const method = req.method ?? 'GET';
      if (url.pathname === '/sso/me' && method === 'GET') return me(req);
      if (url.pathname === '/sso/logout' && method === 'POST') return logout(req);
      const m = /^\/sso\/([^/]+)\/(login|callback)$/.exec(url.pathname);
      const provider = m ? SsoProviderSchema.safeParse(m[1]) : undefined;
      if (!m || !provider?.success || method !== 'GET') return { status: 404, body: { error: 'not_found', message: `no route ${method} ${url.pathname}` } };
      return m[2] === 'login' ? login(provider.data, url) : callback(provider.data, req, url);
    },
    close: () => lti.close(),
  };
}

export type { RefusalCode };
