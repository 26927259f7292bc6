import { createHmac } from 'node:crypto';
import type http from 'node:http';
import { sql } from 'kysely';
import ltijs from 'ltijs';
import SequelizeDatabase from 'ltijs-sequelize';
import { withDefaultUser, type Db } from '../../db/connection.js';
import type { Logger } from '../logger.js';

// ltijs 5 (https://github.com/Cvmcosta/ltijs, dist/Provider/Provider.js) with the
// ltijs-sequelize 2 plugin (https://github.com/Cvmcosta/ltijs-sequelize,
// dist/DB.js) on the project's Postgres, deployed serverless. What this module
// works around, each measured in those sources:
// - `require('ltijs').Provider` is one shared instance and `setup()` refuses a
//   second call; a fresh instance of its class is made per runtime instead, so
//   several servers (and tests) can live in one process.
// - `deploy()` calls `process.exit()` when the database setup throws. The
//   plugin's setup is run (and its errors turned into LtiStoreError) first, then
//   made a no-op, so deploy has nothing left that can fail.
// - `deploy()` adds a SIGINT handler that calls `process.exit()`; it is removed
//   again so `serve` keeps its own shutdown.
// - Umzug logs its migrations to `console` (stdout) and sequelize logs every
//   query: both are routed to pino.
// - Sequelize creates its tables in `public` (plural model names: platforms,
//   publickeys, privatekeys, nonces, states, idtokens, contexttokens,
//   accesstokens, platformStatuses, SequelizeMeta), next to the project's own.

/** ltijs' id_token age limit (s): its default is 10 s; Canvas and Schoology clocks may be a little off ours. Our own nonce store covers the longer window. */
export const TOKEN_MAX_AGE_SEC = 60;

export class LtiStoreError extends Error {}

export type ExpressRequest = http.IncomingMessage & { body?: Record<string, unknown>; query?: Record<string, unknown>; path?: string };
export type ExpressResponse = http.ServerResponse & {
  locals: { token?: unknown; context?: unknown; err?: { details?: { message?: string; description?: string } } };
  cookie(name: string, value: string, options: Record<string, unknown>): ExpressResponse;
};
type Next = (err?: unknown) => void;

export interface LtijsPlatform {
  platformClientId(): Promise<string>;
  platformUrl(): Promise<string>;
}

/** The slice of ltijs' Provider this project uses. */
export interface LtijsProvider {
  app: (req: http.IncomingMessage, res: http.ServerResponse, next: Next) => void;
  Database: { Delete(table: string, where: Record<string, unknown>): Promise<true> };
  NamesAndRoles: { getMembers(idtoken: { iss: string; clientId: string; platformContext: { namesRoles: { context_memberships_url: string } } }, options: { pages: number | false }): Promise<unknown> };
  setup(key: string, database: { plugin: object }, options: Record<string, unknown>): LtijsProvider;
  deploy(options: { serverless: true; silent: true }): Promise<true>;
  close(options: { silent: true }): Promise<true>;
  onConnect(cb: (token: unknown, req: ExpressRequest, res: ExpressResponse, next: Next) => unknown): true;
  onInvalidToken(cb: (req: ExpressRequest, res: ExpressResponse) => unknown): true;
  onSessionTimeout(cb: (req: ExpressRequest, res: ExpressResponse) => unknown): true;
  onUnregisteredPlatform(cb: (req: ExpressRequest, res: ExpressResponse) => unknown): true;
  onInactivePlatform(cb: (req: ExpressRequest, res: ExpressResponse) => unknown): true;
  registerPlatform(p: {
    url: string; name: string; clientId: string; authenticationEndpoint: string; accesstokenEndpoint: string;
    authConfig: { method: 'JWK_SET'; key: string };
  }): Promise<LtijsPlatform>;
  getPlatform(url: string, clientId: string): Promise<LtijsPlatform | false>;
  deletePlatform(url: string, clientId: string): Promise<true>;
}

interface SequelizePlugin { setup(): Promise<true>; Close(): Promise<true> }

/**
 * ltijs encrypts the tool's private keys (and signs its cookies) with this key.
 * DESIGN.md: SESSION_SECRET "keys the LTI store"; a derived key keeps the two
 * uses apart. Changing SESSION_SECRET makes the stored tool keys unreadable:
 * platforms then need `lti add-platform` again (a new key pair).
 */
export function ltiStoreKey(sessionSecret: string): string {
  return createHmac('sha256', sessionSecret).update('rostersync:ltijs-store:v1').digest('hex');
}

export const LTI_ROUTES = { login: '/lti/login', launch: '/lti/launch', keys: '/lti/keys', register: '/lti/register' } as const;

/** Runs `fn` with console output sent to pino (Umzug's migration logger is `console`). */
async function consoleToPino<T>(logger: Logger, fn: () => Promise<T>): Promise<T> {
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error };
  const to = (level: 'debug' | 'warn' | 'error') => (...args: unknown[]) => logger[level]({ ltijs: args.length === 1 ? args[0] : args }, 'ltijs store');
  console.log = to('debug');
  console.info = to('debug');
  console.warn = to('warn');
  console.error = to('error');
  try {
    return await fn();
  } finally {
    Object.assign(console, saved);
  }
}

function sequelizePlugin(databaseUrl: string, logger: Logger): SequelizePlugin {
  const url = new URL(withDefaultUser(databaseUrl));
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  return new SequelizeDatabase(database, decodeURIComponent(url.username), decodeURIComponent(url.password), {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 5432,
    dialect: 'postgres',
    logging: (msg: string) => logger.trace({ ltijs: msg }, 'ltijs store query'),
    pool: { max: 5 },
  }) as unknown as SequelizePlugin;
}

/**
 * Starts an ltijs provider on the project's database. Fails with LtiStoreError
 * (never process.exit) when its tables cannot be reached or created.
 */
export interface ExpressApp {
  use(path: string, fn: (req: ExpressRequest, res: ExpressResponse, next: Next) => void): void;
}

export async function startLtijs(opts: {
  db: Db; databaseUrl: string; sessionSecret: string; logger: Logger;
  /** Callbacks (onConnect, onInvalidToken…), set before deploy. */
  configure?: (lti: LtijsProvider) => void;
  /** Middleware mounted after ltijs' body and cookie parsers, before its routes (its `serverAddon` option). */
  beforeRoutes?: (app: ExpressApp) => void;
}): Promise<LtijsProvider> {
  const plugin = sequelizePlugin(opts.databaseUrl, opts.logger);
  try {
    // One process at a time creates ltijs' tables: concurrent CREATE TABLE IF NOT EXISTS races in Postgres.
    await opts.db.connection().execute(async (conn) => {
      await sql`SELECT pg_advisory_lock(hashtext('rostersync:ltijs-setup'))`.execute(conn);
      try {
        await consoleToPino(opts.logger, () => plugin.setup());
      } finally {
        await sql`SELECT pg_advisory_unlock(hashtext('rostersync:ltijs-setup'))`.execute(conn);
      }
    });
  } catch (err) {
    await plugin.Close().catch(() => undefined);
    throw new LtiStoreError(`the LTI store (ltijs tables in Postgres at ${new URL(opts.databaseUrl).host}) could not start: ${(err as Error).message}. Check DATABASE_URL and that its user may create tables in the public schema.`);
  }
  plugin.setup = async () => true;

  const Provider = (ltijs.Provider as { constructor: new () => LtijsProvider }).constructor;
  const lti = new Provider();
  lti.setup(ltiStoreKey(opts.sessionSecret), { plugin }, {
    appRoute: LTI_ROUTES.launch, loginRoute: LTI_ROUTES.login, keysetRoute: LTI_ROUTES.keys, dynRegRoute: LTI_ROUTES.register,
    // Launches are form posts and redirects, never cross-origin XHR: no CORS.
    cors: false,
    // "ltiaas" mode: after validating a launch ltijs hands it to onConnect instead of
    // redirecting with its own ltik and session cookie; the session is ours.
    ltiaas: true,
    tokenMaxAge: TOKEN_MAX_AGE_SEC,
    // The state cookie must survive the LMS iframe's cross-site form post.
    cookies: { secure: true, sameSite: 'None' },
    ...(opts.beforeRoutes ? { serverAddon: opts.beforeRoutes } : {}),
  });
  opts.configure?.(lti);
  const before = new Set(process.listeners('SIGINT'));
  await lti.deploy({ serverless: true, silent: true });
  for (const l of process.listeners('SIGINT')) if (!before.has(l)) process.off('SIGINT', l);
  return lti;
}

export async function stopLtijs(lti: LtijsProvider): Promise<void> {
  await lti.close({ silent: true });
}
