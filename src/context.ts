import { Redis } from 'ioredis';
import { createDb, type Db } from '../db/connection.js';
import { ensureDatabase, migrateToLatest } from '../db/migrate.js';
import { loadConfig, type Config } from './config.js';
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
  const db = createDb(config.DATABASE_URL, { onIdleError: (err) => logger.warn({ err: err.message }, 'idle Postgres connection closed by the server; the pool will open a new one') });
  if (options.migrate !== false) await migrateToLatest(db);
  let redis: Redis | undefined;
  return {
    config,
    db,
    logger,
    redis() {
      // BullMQ workers need blocking commands to wait indefinitely.
      redis ??= new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
      return redis;
    },
    async close() {
      await db.destroy();
      if (redis) await redis.quit().catch(() => redis?.disconnect());
    },
  };
}
