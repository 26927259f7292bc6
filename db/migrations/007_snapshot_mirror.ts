import { sql, type Kysely } from 'kysely';

// Issue #11: a resync costs what the provider changed, not what it holds.
// The stage of a district's last applied complete snapshot is kept (its stage
// tables carry a content hash per record since this version) and registered
// here as the district's mirror. The next full sync stages only the records
// whose hash the mirror lacks and rebuilds the rest from the mirror inside
// Postgres (src/sync/snapshot-mirror.ts). `quiet` says nothing but that
// snapshot's own apply has changed the district since (any other apply, an ops
// change or a sign-in, clears it): a snapshot identical to a quiet mirror of
// the same day is known to plan nothing.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE snapshot_mirrors (
      district_id text PRIMARY KEY REFERENCES districts(id) ON DELETE CASCADE,
      provider text NOT NULL,
      run_id uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
      as_of text NOT NULL,
      quiet boolean NOT NULL,
      registered_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`SELECT stage.drop_run(run_id) FROM snapshot_mirrors`.execute(db);
  await sql`DROP TABLE IF EXISTS snapshot_mirrors`.execute(db);
}
