import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { Worker } from 'bullmq';
import { loadConfig } from '../../src/config.js';
import { withDefaultUser } from '../../db/connection.js';
import { openContext, type AppContext } from '../../src/context.js';
import { closeQueue } from '../../jobs/queues.js';
import { createSyncWorker } from '../../jobs/sync-worker.js';
import type { ExecuteHooks } from '../../src/sync/execute.js';

const ADMIN_URL = withDefaultUser(process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://localhost:5432/postgres');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestEnv {
  ctx: AppContext;
  databaseUrl: string;
  queuePrefix: string;
  /** Environment for child processes that must see the same database and queue. */
  env: Record<string, string>;
  startWorker(hooks?: ExecuteHooks): Worker;
  stopWorkers(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Each test file gets its own Postgres database and its own BullMQ key prefix,
 * so files run in parallel against the one real Postgres and Redis.
 */
export async function createTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const name = `rostersync_test_${randomBytes(5).toString('hex')}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const queuePrefix = `rstest-${name}`;
  const env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    // Provider secrets are sealed at rest; each test file has its own key.
    SECRETS_KEY: randomBytes(32).toString('base64'),
    ...overrides,
  };
  const ctx = await openContext({ config: loadConfig(env) });
  const workers: Worker[] = [];
  return {
    ctx,
    databaseUrl,
    queuePrefix,
    env,
    startWorker(hooks) {
      const worker = createSyncWorker(ctx, { hooks });
      workers.push(worker);
      return worker;
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.close()));
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await closeQueue(ctx);
      await ctx.close();
      await dropDatabase(name);
      await deleteKeys(queuePrefix);
    },
  };
}

/** Runs one statement on the Postgres maintenance database (as the tests' superuser). */
export async function adminQuery(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    return await admin.query(text, params);
  } finally {
    await admin.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
}

async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
