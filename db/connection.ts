import os from 'node:os';
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { Database } from './schema.js';

// DATE columns stay 'YYYY-MM-DD' strings: roster dates have no time zone, and
// turning them into JS Dates would shift them by the server's offset.
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v);
// bigint ids stay strings (exact), counts come back through explicit ::int casts.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

export type Db = Kysely<Database>;

/** Each Db's node-postgres pool, for what kysely has no words for (COPY). */
const pools = new WeakMap<Db, pg.Pool>();

export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('internal: this Db was not made by createDb (or is a transaction)');
  return pool;
}

/**
 * libpq falls back to the OS user when a URL names none, but node-postgres reads
 * $USER, which service managers and CI often leave unset. Fill it in the same way.
 */
export function withDefaultUser(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (url.username || process.env.PGUSER) return databaseUrl;
  url.username = process.env.USER || os.userInfo().username;
  return url.toString();
}

export interface SessionLimits {
  /** Longest a statement may run (server side). */
  statementTimeoutMs: number;
  /** Longest a statement may wait for a lock, advisory locks included. */
  lockTimeoutMs: number;
  /** A session idle inside a transaction this long is ended by the server, its locks released. */
  idleInTransactionTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { statementTimeoutMs: 600_000, lockTimeoutMs: 120_000, idleInTransactionTimeoutMs: 60_000 };

export function createDb(databaseUrl: string, options: { max?: number; limits?: SessionLimits; onIdleError?: (err: Error) => void } = {}): Db {
  const limits = options.limits ?? DEFAULT_SESSION_LIMITS;
  const pool = new pg.Pool({
    connectionString: withDefaultUser(databaseUrl),
    max: options.max ?? 10,
    // A Postgres that does not answer at all (down, partitioned) fails fast instead of hanging the caller.
    connectionTimeoutMillis: 10_000,
    statement_timeout: limits.statementTimeoutMs,
    lock_timeout: limits.lockTimeoutMs,
    idle_in_transaction_session_timeout: limits.idleInTransactionTimeoutMs,
    // Client-side too, a little later than the server's: a partition swallows the server's own timeout error.
    query_timeout: Math.round(limits.statementTimeoutMs * 1.1) + 1000,
    // TCP keepalives notice a silent partition on an otherwise idle connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // Postgres ends connections on a restart, a failover or an admin's command.
  // The pool drops an idle client by itself; a client checked out at that
  // moment emits 'error' on itself, and without a listener either event would
  // crash the process. The query in flight fails on its own, and the run with it.
  pool.on('error', (err) => options.onIdleError?.(err));
  pool.on('connect', (client) => client.on('error', (err) => options.onIdleError?.(err)));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return db;
}
