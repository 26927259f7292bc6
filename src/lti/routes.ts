import type http from 'node:http';
import { decodeJwt } from 'jose';
import type { AppContext } from '../context.js';
import { readCookies, serializeCookie } from '../sso/cookies.js';
import { SignInRefusal, auditSignIn } from '../sso/refusals.js';
import { SESSION_COOKIE, SESSION_TTL_SEC, type SessionStore } from '../sso/session-store.js';
import { LtijsToken, acceptLaunch } from './launch.js';
import { LTI_ROUTES, LtiStoreError, startLtijs, stopLtijs, type ExpressRequest, type ExpressResponse, type LtijsProvider } from './ltijs.js';
import { deploymentOf, issuerKnown, registrationOf } from './registry.js';

// `/lti/*`, served by ltijs' express app inside the project's HTTP server.
// ltijs runs the OIDC login initiation (state cookie, redirect to the platform)
// and validates the id_token; the callbacks below turn its verdicts into the
// sign-in contract of DESIGN.md (refusal codes, audit, our session cookie).

const AUDIT_PROVIDER = 'lti';

/** ltijs' error messages (Auth.js, Provider.js) → the refusal to answer. */
function refusalFor(message: string, issuerIsKnown: boolean): SignInRefusal {
  const again = 'Launch the tool again from your course; if it keeps failing, your LMS administrator should check the tool\'s settings.';
  if (message === 'MISSING_VALIDATION_COOKIE') {
    return new SignInRefusal('invalid_state', `This launch does not belong to this browser's sign-in (its state is unknown, used or expired, or cookies are blocked). ${again}`, { reason: message });
  }
  if (message === 'UNREGISTERED_PLATFORM' && !issuerIsKnown) {
    return new SignInRefusal('unknown_platform', 'This LMS is not set up for this tool. An administrator can set it up with `rostersync lti add-platform`.', { reason: message });
  }
  // Signature, alg, iss, aud (an issuer we know, but not this client id), exp, age, nonce replay, required claims.
  return new SignInRefusal('invalid_token', `The LMS's launch could not be verified. ${again}`, { reason: message });
}

/** Claims of a launch we refused, for the audit row only: unverified, never trusted. */
function claimedOf(req: ExpressRequest): Record<string, unknown> {
  const raw = req.body?.id_token;
  if (typeof raw !== 'string') return {};
  try {
    const c = decodeJwt(raw);
    return { iss: c.iss, aud: c.aud, sub: c.sub, deploymentId: c['https://purl.imsglobal.org/spec/lti/claim/deployment_id'] };
  } catch {
    return { malformed: true };
  }
}

function appendSetCookie(res: http.ServerResponse, cookie: string): void {
  const existing = res.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
  res.setHeader('set-cookie', [...list, cookie]);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

export interface LtiHandler {
  /** Serves an `/lti/*` request, writing `res` itself. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void>;
  close(): Promise<void>;
}

export function createLtiHandler(ctx: AppContext, deps: { secret: string; sessions: SessionStore; appUrl: string }): LtiHandler {
  async function refuse(req: ExpressRequest, res: ExpressResponse, err: SignInRefusal, subject: string | null): Promise<void> {
    const districtId = typeof err.detail.districtId === 'string' ? err.detail.districtId : null;
    await auditSignIn(ctx.db, { districtId, provider: AUDIT_PROVIDER, subject, outcome: err.code, detail: { message: err.message, ...err.detail, claimed: claimedOf(req) } });
    ctx.logger.info({ provider: AUDIT_PROVIDER, code: err.code, districtId, detail: err.detail }, 'LTI launch refused');
    // No session survives a refusal, not even this browser's earlier one (a shared device).
    await deps.sessions.destroy(readCookies(req).get(SESSION_COOKIE));
    if (!res.headersSent) appendSetCookie(res, serializeCookie(SESSION_COOKIE, '', { path: '/', maxAgeSec: 0, secure: true, sameSite: 'None' }));
    sendJson(res, err.status, { error: err.code, message: err.message });
  }

  /** ltijs' per-launch rows (names, emails) are not needed once the launch is decided: our session and launch record replace them. */
  async function forgetLtijsCopies(lti: LtijsProvider, token: LtijsToken): Promise<void> {
    await lti.Database.Delete('idtoken', { iss: token.iss, clientId: token.clientId, deploymentId: token.deploymentId, user: token.user });
    await lti.Database.Delete('contexttoken', { contextId: token.platformContext.contextId, user: token.user });
  }

  /** ltijs calls its callbacks from express 4 handlers, which drop a rejected promise: answer 500 ourselves. */
  function guarded<A extends unknown[]>(fn: (...args: A) => Promise<unknown>, resOf: (...args: A) => ExpressResponse) {
    return (...args: A) => fn(...args).catch((err: unknown) => {
      ctx.logger.error({ err: (err as Error).message }, 'LTI request failed');
      sendJson(resOf(...args), 500, { error: 'internal error' });
    });
  }

  function configure(lti: LtijsProvider): void {
    lti.onConnect(guarded(async (token: unknown, req: ExpressRequest, res: ExpressResponse) => {
      const parsed = LtijsToken.safeParse(token);
      let cookie: string;
      try {
        if (!parsed.success) throw new SignInRefusal('invalid_token', 'The launch lacks required LTI claims. Launch the tool again from your course.', { reason: parsed.error.issues[0]?.message });
        const launch = parsed.data;
        try {
          const accepted = await acceptLaunch(ctx, launch, String(req.body?.id_token ?? ''));
          // A new launch replaces whatever session this browser had.
          await deps.sessions.destroy(readCookies(req).get(SESSION_COOKIE));
          cookie = await deps.sessions.create({ userId: accepted.userId, districtId: accepted.districtId, via: 'lti' });
          await auditSignIn(ctx.db, { districtId: accepted.districtId, provider: AUDIT_PROVIDER, subject: launch.user, outcome: 'signed-in', detail: { userId: accepted.userId, launchId: accepted.launchId, deploymentId: launch.deploymentId, contextId: launch.platformContext.context?.id ?? null } });
        } finally {
          // Before answering, so nothing of a refused launch outlives its answer.
          await forgetLtijsCopies(lti, launch);
        }
      } catch (err) {
        if (err instanceof SignInRefusal) return refuse(req, res, err, parsed.success ? parsed.data.user : null);
        ctx.logger.error({ err: (err as Error).message }, 'LTI launch failed');
        return sendJson(res, 500, { error: 'internal error' });
      }
      // LMS iframes: every request to us is cross-site, so the session cookie must be SameSite=None; Secure.
      appendSetCookie(res, serializeCookie(SESSION_COOKIE, cookie, { path: '/', maxAgeSec: SESSION_TTL_SEC, secure: true, sameSite: 'None' }));
      res.statusCode = 302;
      res.setHeader('location', deps.appUrl);
      res.setHeader('content-type', 'text/plain');
      res.end('');
    }, (_t, _req, res) => res));
    const resOf = (_req: ExpressRequest, res: ExpressResponse) => res;
    const invalid = guarded(async (req: ExpressRequest, res: ExpressResponse) => {
      const message = res.locals.err?.details?.message ?? 'unknown';
      const claimedIss = claimedOf(req).iss;
      const known = typeof claimedIss === 'string' && await issuerKnown(ctx.db, claimedIss);
      await refuse(req, res, refusalFor(message, known), null);
    }, resOf);
    lti.onInvalidToken(invalid);
    lti.onSessionTimeout(invalid);
    lti.onUnregisteredPlatform(guarded((req: ExpressRequest, res: ExpressResponse) => refuse(req, res, new SignInRefusal('unknown_platform', 'This LMS is not set up for this tool. An administrator can set it up with `rostersync lti add-platform`.', { issuer: loginParam(req, 'iss'), clientId: loginParam(req, 'client_id') }), null), resOf));
    lti.onInactivePlatform(guarded((req: ExpressRequest, res: ExpressResponse) => refuse(req, res, new SignInRefusal('unknown_platform', 'This LMS registration is switched off.', { issuer: loginParam(req, 'iss') }), null), resOf));
  }

  const loginParam = (req: ExpressRequest, name: string): string | undefined => {
    const v = req.body?.[name] ?? req.query?.[name];
    return typeof v === 'string' ? v : undefined;
  };

  /**
   * Login initiation (GET query or POST form) names the platform and
   * deployment before anything else happens: refuse an unknown one here rather
   * than send the user to the LMS. ltijs itself would accept any deployment.
   */
  async function preLogin(params: Record<string, unknown>): Promise<SignInRefusal | undefined> {
    const text = (k: string) => (typeof params[k] === 'string' ? params[k] : undefined);
    const iss = text('iss');
    const clientId = text('client_id');
    const deploymentId = text('lti_deployment_id');
    if (!iss || !clientId) return undefined; // ltijs answers a login without them (400, or the one platform of that issuer)
    const registration = await registrationOf(ctx.db, iss, clientId);
    if (!registration) return new SignInRefusal('unknown_platform', 'This LMS is not set up for this tool. An administrator can set it up with `rostersync lti add-platform`.', { issuer: iss, clientId });
    if (deploymentId && !(await deploymentOf(ctx.db, registration.id, deploymentId))) {
      return new SignInRefusal('unknown_deployment', `This installation of the tool (deployment ${deploymentId}) is not linked to a district here. An administrator can add it with \`rostersync lti add-platform <district> --deployment-id ${deploymentId} …\`.`, { issuer: iss, clientId, deploymentId });
    }
    return undefined;
  }

  const started = startLtijs({
    db: ctx.db, databaseUrl: ctx.config.DATABASE_URL, sessionSecret: deps.secret, logger: ctx.logger, configure,
    beforeRoutes: (app) => app.use(LTI_ROUTES.login, (req, res, next) => {
      const params = { ...req.query, ...req.body };
      preLogin(params)
        .then((refusal) => (refusal ? refuse(req, res, refusal, typeof params.login_hint === 'string' ? params.login_hint : null) : next()))
        .catch(next);
    }),
  });
  started.then(
    () => ctx.logger.debug('LTI store ready'),
    (err: Error) => ctx.logger.error({ err: err.message }, 'LTI launches are unavailable: the LTI store did not start'),
  );

  return {
    async handle(req, res, url) {
      const method = req.method ?? 'GET';
      const route = url.pathname;
      const allowed = (route === LTI_ROUTES.login && (method === 'GET' || method === 'POST'))
        || (route === LTI_ROUTES.launch && method === 'POST') || (route === LTI_ROUTES.keys && method === 'GET');
      if (!allowed) return sendJson(res, 404, { error: 'not_found', message: `no route ${method} ${route}` });
      let lti: LtijsProvider;
      try {
        lti = await started;
      } catch (err) {
        return sendJson(res, 503, { error: 'lti_unavailable', message: err instanceof LtiStoreError ? 'LTI launches are unavailable right now (the LTI store did not start; see the server log).' : 'LTI launches are unavailable right now.' });
      }
      await new Promise<void>((resolve) => {
        res.once('finish', resolve);
        res.once('close', resolve);
        lti.app(req, res, (err?: unknown) => {
          if (err) ctx.logger.error({ err: (err as Error).message, route }, 'LTI request failed');
          sendJson(res, err ? 500 : 404, err ? { error: 'internal error' } : { error: 'not_found', message: `no route ${method} ${route}` });
        });
      });
    },
    async close() {
      const lti = await started.catch(() => undefined);
      if (lti) await stopLtijs(lti);
    },
  };
}
