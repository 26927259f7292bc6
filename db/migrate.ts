import pg from 'pg';
import { Migrator, sql, type Migration, type MigrationProvider } from 'kysely';
import { withDefaultUser, type Db } from './connection.js';
import * as m001 from './migrations/001_init.js';
import * as m002 from './migrations/002_hardening.js';
import * as m003 from './migrations/003_sso.js';
import * as m004 from './migrations/004_lti.js';
import * as m005 from './migrations/005_audit.js';
import * as m006 from './migrations/006_typed_stage.js';
import * as m007 from './migrations/007_snapshot_mirror.js';
import * as m008 from './migrations/008_staged_keys.js';
import * as m009 from './migrations/009_page_memo.js';
import * as m010 from './migrations/010_user_lookups.js';

// Listed here rather than read from disk, so migrations load the same way under
// tsx, jest and any bundler.
const migrations: Record<string, Migration> = { '001_init': m001, '002_hardening': m002, '003_sso': m003, '004_lti': m004, '005_audit': m005, '006_typed_stage': m006, '007_snapshot_mirror': m007, '008_staged_keys': m008, '009_page_memo': m009, '010_user_lookups': m010 };

const provider: MigrationProvider = { getMigrations: async () => migrations };

export async function migrateToLatest(db: Db): Promise<string[]> {
  // Every command and worker start comes here. When nothing is pending, say so
  // from the ledger alone: Kysely's Migrator first lists every table of the
  // database (its introspector calls pg_get_serial_sequence on each), and a
  // run's stage table dropped during that query fails it with "relation …
  // does not exist" (seen in CI as a `sync` exiting 1 under load).
  if (await upToDate(db)) return [];
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Creates the database named in the URL when it does not exist yet (fresh machines). */
export async function ensureDatabase(rawUrl: string): Promise<boolean> {
  const databaseUrl = withDefaultUser(rawUrl);
  const probe = new pg.Client({ connectionString: databaseUrl });
  try {
    await probe.connect();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
  } finally {
    await probe.end().catch(() => undefined);
  }
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    // Another process may have created it between our probe and now.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await admin.end();
  }
  return true;
}

/** Whether every migration this build knows has been applied (false when the ledger does not exist yet). */
async function upToDate(db: Db): Promise<boolean> {
  const { rows: [ledger] } = await sql<{ present: boolean }>`SELECT to_regclass('kysely_migration') IS NOT NULL AS present`.execute(db);
  if (!ledger?.present) return false;
  const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(db);
  const applied = new Set(rows.map((r) => r.name));
  return Object.keys(migrations).every((name) => applied.has(name));
}
