import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { getDistrict, NotFoundError } from '../districts/repository.js';
import { listUsers, poolUsage } from '../queries.js';
import { appliedSyncRuns, getRun, listRuns, toRunView } from '../sync/runs.js';
import { ApprovalError, approveRun, triggerSync } from '../../jobs/trigger.js';

const SyncBody = z.object({ dryRun: z.boolean().optional(), full: z.boolean().optional() }).strict();
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

function authorized(req: http.IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
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

export async function startHttpServer(ctx: AppContext, port = ctx.config.PORT): Promise<{ url: string; close(): Promise<void> }> {
  const adminToken = ctx.config.ADMIN_TOKEN;
  if (!adminToken) throw new Error('ADMIN_TOKEN must be set to serve the admin API');
  const registry = metricsRegistry(ctx);

  const handle = async (req: http.IncomingMessage): Promise<{ status: number; body: unknown; type?: string }> => {
    const url = new URL(req.url ?? '/', 'http://local');
    const method = req.method ?? 'GET';
    if (method === 'GET' && url.pathname === '/healthz') {
      const db = await sql`SELECT 1`.execute(ctx.db).then(() => true, () => false);
      const redis = await ctx.redis().ping().then((r) => r === 'PONG', () => false);
      return { status: db && redis ? 200 : 503, body: { ok: db && redis, postgres: db, redis } };
    }
    if (method === 'GET' && url.pathname === '/metrics') return { status: 200, body: await registry.metrics(), type: registry.contentType };
    if (!url.pathname.startsWith('/api/')) throw new HttpError(404, `no route ${method} ${url.pathname}`);
    if (!authorized(req, adminToken)) throw new HttpError(401, 'missing or wrong bearer token');

    let m: RegExpExecArray | null;
    if ((m = /^\/api\/districts\/([^/]+)\/sync$/.exec(url.pathname)) && method === 'POST') {
      const body = checked(SyncBody, await readJson(req));
      const { run, coalesced } = await triggerSync(ctx, decodeURIComponent(m[1]!), { trigger: 'api', ...body });
      return { status: 202, body: { ...toRunView(run), coalesced } };
    }
    if ((m = /^\/api\/districts\/([^/]+)\/runs$/.exec(url.pathname)) && method === 'GET') {
      const district = await getDistrict(ctx.db, decodeURIComponent(m[1]!));
      return { status: 200, body: (await listRuns(ctx.db, district.id, 50)).map(toRunView) };
    }
    if ((m = /^\/api\/districts\/([^/]+)\/users$/.exec(url.pathname)) && method === 'GET') {
      const query = checked(UsersQuery, Object.fromEntries(url.searchParams));
      return { status: 200, body: await listUsers(ctx.db, decodeURIComponent(m[1]!), query) };
    }
    if ((m = /^\/api\/runs\/([^/]+)$/.exec(url.pathname)) && method === 'GET') {
      return { status: 200, body: toRunView(await getRun(ctx.db, decodeURIComponent(m[1]!))) };
    }
    if ((m = /^\/api\/runs\/([^/]+)\/approve$/.exec(url.pathname)) && method === 'POST') {
      return { status: 202, body: toRunView(await approveRun(ctx, decodeURIComponent(m[1]!))) };
    }
    throw new HttpError(404, `no route ${method} ${url.pathname}`);
  };

  const server = http.createServer((req, res) => {
    handle(req)
      .then(({ status, body, type }) => {
        res.writeHead(status, { 'content-type': type ?? 'application/json' });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      })
      .catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : err instanceof NotFoundError ? 404 : err instanceof ApprovalError ? 409 : 500;
        if (status === 500) ctx.logger.error({ err: (err as Error).message, url: req.url }, 'HTTP request failed');
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: status === 500 ? 'internal error' : (err as Error).message }));
      });
  });
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  const bound = (server.address() as AddressInfo).port;
  ctx.logger.info({ port: bound }, 'HTTP server listening');
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
