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

export function createDb(databaseUrl: string, options: { max?: number; onIdleError?: (err: Error) => void } = {}): Db {
  const pool = new pg.Pool({ connectionString: withDefaultUser(databaseUrl), max: options.max ?? 10 });
  // Postgres ends idle connections on a restart, a failover or an admin's
  // command. The pool drops such a client by itself; without a listener the
  // 'error' event would crash the process.
  pool.on('error', (err) => options.onIdleError?.(err));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
