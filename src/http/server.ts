import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { NotFoundError, requireDistrict } from '../districts/repository.js';
import { listUsers, poolUsage } from '../queries.js';
import { personHistory } from '../audit/history.js';
import { appliedSyncRuns, getRun, listRuns, toRunView } from '../sync/runs.js';
import { PLAN_SECTIONS, readPlan } from '../sync/plan-items.js';
import { ApprovalError, approveRun, triggerSync } from '../../jobs/trigger.js';
import { QueueUnavailableError } from '../../jobs/queues.js';
import { createSsoHandler } from '../sso/routes.js';

/** Shortest ADMIN_TOKEN / METRICS_TOKEN `serve` accepts: long enough that guessing is hopeless. */
export const MIN_TOKEN_LENGTH = 24;
/** Each health check gets this long, so /healthz answers within a second even when a store hangs. */
const HEALTH_CHECK_MS = 800;
// Path ids: district ids as the CLI accepts them (flags.ts DistrictId), run ids as UUIDs.
const DISTRICT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// An account id or a provider sourcedId: printable, bounded.
const USER_REF = /^[^\u0000-\u001F\u007F]{1,255}$/;

const SyncBody = z.object({ dryRun: z.boolean().optional(), full: z.boolean().optional() }).strict();
const PlanQuery = z.object({
  section: z.enum(PLAN_SECTIONS).optional(),
  page: z.coerce.number().int().min(1).optional(),
  pageSize: z.coerce.number().int().min(1).max(1000).optional(),
}).strict();
const UsersQuery = z.object({ status: z.enum(['ACTIVE', 'DELETED']).optional() });

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function metricsRegistry(ctx: AppContext): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'rostersync_process_' });
  // Gauges read from Postgres at scrape time, so any number of workers and
  // servers report one consistent picture.
  new Gauge({
    name: 'rostersync_runs', help: 'Sync runs by district and status', labelNames: ['district', 'status'], registers: [registry],
    async collect() {
      this.reset();
      const rows = await sql<{ district_id: string; status: string; n: number }>`SELECT district_id, status, count(*)::int AS n FROM sync_runs GROUP BY 1, 2`.execute(ctx.db);
      for (const r of rows.rows) this.set({ district: r.district_id, status: r.status }, r.n);
    },
  });
  new Gauge({
    name: 'rostersync_seats', help: 'License seats by district, product and state', labelNames: ['district', 'product', 'state'], registers: [registry],
    async collect() {
      this.reset();
      for (const p of await poolUsage(ctx.db)) {
        this.set({ district: p.districtId, product: p.product, state: 'total' }, p.seats);
        this.set({ district: p.districtId, product: p.product, state: 'assigned' }, p.assigned);
        this.set({ district: p.districtId, product: p.product, state: 'waitlisted' }, p.waitlisted);
      }
    },
  });
  new Gauge({
    name: 'rostersync_last_success_timestamp_seconds', help: 'When each district last synced successfully', labelNames: ['district'], registers: [registry],
    async collect() {
      this.reset();
      const rows = await appliedSyncRuns(ctx.db)
        .select(['district_id', sql<number>`extract(epoch FROM max(finished_at))::float8`.as('at')])
        .groupBy('district_id').execute();
      for (const r of rows) this.set({ district: r.district_id }, Number(r.at));
    },
  });
  return registry;
}

/** Redis or Postgres unreachable, refusing, or timing out: the service is unavailable, not broken. */
function storeUnavailable(err: unknown): boolean {
  if (err instanceof QueueUnavailableError) return true;
  const code = (err as { code?: string }).code;
  const message = (err as Error)?.message ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', '57P01', '57P03', '53300'].includes(code ?? '')
    || /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED/i.test(message);
}

function storeMessage(err: unknown): string {
  if (err instanceof QueueUnavailableError) return err.message;
  return `Postgres is unavailable (${(err as Error).message}); nothing was queued or changed`;
}

function authorized(req: http.IncomingMessage, ...tokens: (string | undefined)[]): boolean {
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  return tokens.some((token) => {
    if (!token) return false;
    const expected = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function requireToken(name: string, value: string | undefined, required: boolean): void {
  if (value === undefined) {
    if (required) throw new Error(`${name} must be set to serve the admin API (at least ${MIN_TOKEN_LENGTH} characters: openssl rand -base64 32)`);
    return;
  }
  if (value.length < MIN_TOKEN_LENGTH) throw new Error(`${name} is too short (${value.length} characters): use at least ${MIN_TOKEN_LENGTH} (openssl rand -base64 32)`);
}

/** One path segment, decoded; a malformed or implausible one is a 400/404, never a 500 from deeper down. */
function pathId(raw: string, pattern: RegExp, what: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `malformed ${what} in path`);
  }
  if (!pattern.test(id)) throw new HttpError(404, `unknown ${what} '${id.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}'`);
  return id;
}

/** Resolves with the check's answer, or false once `ms` have passed: a hung store must not hang /healthz. */
async function withinMs(check: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Its own Redis connection: the shared one queues commands until Redis comes
 * back (BullMQ needs that), so a ping on it never answers while Redis is down.
 * On this one a ping fails after HEALTH_CHECK_MS even while queued offline
 * (ioredis `commandTimeout` is armed before a command is queued, see
 * sendCommand in ioredis/built/Redis.js), and after one reconnection attempt.
 */
function healthRedis(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: true, commandTimeout: HEALTH_CHECK_MS, connectTimeout: HEALTH_CHECK_MS, maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on('error', () => undefined); // reported through /healthz, not as unhandled errors
  return redis;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function checked<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return result.data;
}

export interface RunningServer {
  /** Where this host reaches the server (loopback when bound to every interface). */
  url: string;
  /** The address actually bound (`http://host:port`, noting a wildcard), for the start-up line. */
  listening: string;
  close(): Promise<void>;
}

export async function startHttpServer(ctx: AppContext, port = ctx.config.PORT, host = ctx.config.HOST): Promise<RunningServer> {
  const adminToken = ctx.config.ADMIN_TOKEN;
  requireToken('ADMIN_TOKEN', adminToken, true);
  requireToken('METRICS_TOKEN', ctx.config.METRICS_TOKEN, false);
  const registry = metricsRegistry(ctx);
  const sso = createSsoHandler(ctx);
  const redisForHealth = healthRedis(ctx.config.REDIS_URL);

  const health = async () => {
    const [postgres, redis] = await Promise.all([
      withinMs(sql`SELECT 1`.execute(ctx.db).then(() => true), HEALTH_CHECK_MS),
      withinMs(redisForHealth.ping().then((reply) => reply === 'PONG'), HEALTH_CHECK_MS),
    ]);
    const down = [...(postgres ? [] : ['postgres']), ...(redis ? [] : ['redis'])];
    return { status: down.length ? 503 : 200, body: { ok: down.length === 0, postgres, redis, down } };
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<{ status: number; body: unknown; type?: string; headers?: Record<string, string | string[]> } | null> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://local');
    } catch {
      throw new HttpError(400, 'malformed request target');
    }
    const method = req.method ?? 'GET';
    const signIn = await sso.handle(req, url, res);
    // The LTI routes (ltijs, an express app) wrote the response themselves.
    if (signIn && 'handled' in signIn) return null;
    if (signIn) return { status: signIn.status, body: signIn.body ?? '', headers: signIn.headers };
    if (method === 'GET' && url.pathname === '/healthz') return health();
    if (method === 'GET' && url.pathname === '/metrics') {
      // Per-district seat and run counts are not for the public: a scraper gets its own token.
      if (!authorized(req, ctx.config.METRICS_TOKEN, adminToken)) throw new HttpError(401, 'missing or wrong bearer token (METRICS_TOKEN or ADMIN_TOKEN)');
      return { status: 200, body: await registry.metrics(), type: registry.contentType };
    }
    if (!url.pathname.startsWith('/api/')) throw new HttpError(404, `no route ${method} ${url.pathname}`);
    if (!authorized(req, adminToken)) throw new HttpError(401, 'missing or wrong bearer token');

    let m: RegExpExecArray | null;
    if ((m = /^\/api\/districts\/([^/]+)\/sync$/.exec(url.pathname)) && method === 'POST') {
      const body = checked(SyncBody, await readJson(req));
      const { run, coalesced } = await triggerSync(ctx, pathId(m[1]!, DISTRICT_ID, 'district'), { trigger: 'api', ...body });
      return { status: 202, body: { ...toRunView(run), coalesced } };
    }
    if ((m = /^\/api\/districts\/([^/]+)\/runs$/.exec(url.pathname)) && method === 'GET') {
      const districtId = pathId(m[1]!, DISTRICT_ID, 'district');
      await requireDistrict(ctx.db, districtId);
      return { status: 200, body: (await listRuns(ctx.db, districtId, 50)).map(toRunView) };
    }
    if ((m = /^\/api\/districts\/([^/]+)\/users$/.exec(url.pathname)) && method === 'GET') {
      const query = checked(UsersQuery, Object.fromEntries(url.searchParams));
      return { status: 200, body: await listUsers(ctx.db, pathId(m[1]!, DISTRICT_ID, 'district'), query) };
    }
    if ((m = /^\/api\/districts\/([^/]+)\/users\/([^/]+)\/audit$/.exec(url.pathname)) && method === 'GET') {
      return { status: 200, body: await personHistory(ctx.db, pathId(m[1]!, DISTRICT_ID, 'district'), pathId(m[2]!, USER_REF, 'user')) };
    }
    if ((m = /^\/api\/runs\/([^/]+)$/.exec(url.pathname)) && method === 'GET') {
      return { status: 200, body: toRunView(await getRun(ctx.db, pathId(m[1]!, RUN_ID, 'run'))) };
    }
    if ((m = /^\/api\/runs\/([^/]+)\/plan$/.exec(url.pathname)) && method === 'GET') {
      const q = checked(PlanQuery, Object.fromEntries(url.searchParams));
      return { status: 200, body: await readPlan(ctx.db, pathId(m[1]!, RUN_ID, 'run'), q) };
    }
    if ((m = /^\/api\/runs\/([^/]+)\/approve$/.exec(url.pathname)) && method === 'POST') {
      return { status: 202, body: toRunView(await approveRun(ctx, pathId(m[1]!, RUN_ID, 'run'))) };
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res)
      .then((reply) => {
        if (!reply) return;
        const { status, body, type, headers } = reply;
        res.writeHead(status, { 'content-type': type ?? 'application/json', ...headers });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      })
      .catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : err instanceof NotFoundError ? 404 : err instanceof ApprovalError ? 409
          : storeUnavailable(err) ? 503 : 500;
        // The path only: a query string can carry a sign-in code or state.
        if (status >= 500) ctx.logger.error({ err: (err as Error).message, path: (req.url ?? '/').split('?')[0] }, 'HTTP request failed');
        res.writeHead(status, { 'content-type': 'application/json' });
        // A store being down is said as such (what to check); anything else stays an internal error.
        const message = status === 503 ? storeMessage(err) : status === 500 ? 'internal error' : (err as Error).message;
        res.end(JSON.stringify({ error: message }));
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  }).catch(async (err: unknown) => {
    redisForHealth.disconnect();
    await sso.close();
    throw err;
  });
  const bound = server.address() as AddressInfo;
  const hostPart = (address: string) => (address.includes(':') ? `[${address}]` : address);
  const wildcard = bound.address === '0.0.0.0' || bound.address === '::';
  const listening = `${hostPart(bound.address)}:${bound.port}${wildcard ? ' (every interface)' : ''}`;
  ctx.logger.info({ address: bound.address, port: bound.port }, 'HTTP server listening');
  return {
    url: `http://${wildcard ? '127.0.0.1' : hostPart(bound.address)}:${bound.port}`,
    listening: `http://${listening}`,
    close: async () => {
      await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
      redisForHealth.disconnect();
      await sso.close();
    },
  };
}
