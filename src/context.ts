import { Redis } from 'ioredis';
import { createDb, type Db } from '../db/connection.js';
import { ensureDatabase, migrateToLatest } from '../db/migrate.js';
import { loadConfig, type Config } from './config.js';
import { bindSecretBox } from './districts/credentials.js';
import { SecretBox } from './secrets/secret-box.js';
import { createLogger, type Logger } from './logger.js';

/** What every entry point (CLI command, worker, HTTP server, test) works with. */
export interface AppContext {
  config: Config;
  db: Db;
  logger: Logger;
  /** Opened on first use: commands that never queue anything never connect to Redis. */
  redis(): Redis;
  close(): Promise<void>;
}

export async function openContext(options: { config?: Config; logger?: Logger; migrate?: boolean } = {}): Promise<AppContext> {
  const config = options.config ?? loadConfig();
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  // Every command creates and migrates the database as needed, except `migrate`, which reports doing it.
  if (options.migrate !== false) await ensureDatabase(config.DATABASE_URL);
  const db = createDb(config.DATABASE_URL, {
    max: config.PG_POOL_MAX,
    limits: { statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS, lockTimeoutMs: config.PG_LOCK_TIMEOUT_MS, idleInTransactionTimeoutMs: config.PG_IDLE_TX_TIMEOUT_MS },
    onIdleError: (err) => logger.warn({ err: err.message }, 'Postgres connection lost (server restart, failover or terminated); the pool opens a new one'),
  });
  // Provider secrets are sealed at rest: the district repository opens them with this key.
  bindSecretBox(db, SecretBox.fromConfig(config));
  if (options.migrate !== false) await migrateToLatest(db);
  let redis: Redis | undefined;
  return {
    config,
    db,
    logger,
    redis() {
      // BullMQ workers need blocking commands to wait indefinitely.
      if (!redis) {
        redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
        // Without a listener, a refused connection is an unhandled 'error' event.
        redis.on('error', (err: Error) => logger.debug({ err: err.message }, 'Redis connection error; reconnecting'));
      }
      return redis;
    },
    async close() {
      await db.destroy();
      // QUIT would wait in the offline queue for a Redis that is down.
      if (redis) {
        if (redis.status === 'ready') await redis.quit().catch(() => redis?.disconnect());
        else redis.disconnect();
      }
    },
  };
}
