import { sql, type Kysely } from 'kysely';

// Issue #11: a run's snapshot is staged into typed, unlogged tables of its own
// (schema "stage", one table per kind of record, created and dropped with the
// run's stage) by COPY, and reconciled by set operations in Postgres. The
// worker then holds a page at a time, never the district.
// run_stage stays as the stage's ledger: one row per batch COPYed, so a resumed
// attempt still knows whether the stage is whole; its JSON column is no longer
// written (stages staged in JSON before this migration are not read back: an
// approval of such a run asks for a new sync).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE SCHEMA IF NOT EXISTS stage`.execute(db);
  await sql`ALTER TABLE run_stage ALTER COLUMN data DROP NOT NULL`.execute(db);
  // Drops whatever stage tables a run has, so callers can drop the stages of
  // any set of runs in one statement (SELECT stage.drop_run(id) FROM …).
  await sql`
    CREATE FUNCTION stage.drop_run(run uuid) RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE t text; n integer := 0;
    BEGIN
      FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
               WHERE s.nspname = 'stage' AND c.relkind = 'r' AND c.relname LIKE 'r' || replace(run::text, '-', '') || '\_%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS stage.%I', t);
        n := n + 1;
      END LOOP;
      RETURN n;
    END $$`.execute(db);

  // Memberships are the largest table (six per student), and three foreign-key
  // triggers per inserted row were two thirds of a first sync's write. Every
  // membership is written by the apply step from a join with its user and
  // class in the same district, under the district's lock, and the only hard
  // deletion (purge, under the same lock) deletes memberships explicitly: the
  // references hold by construction, checked once per run set-based
  // (src/sync/apply.ts) rather than once per row.
  for (const fk of ['enrollments_user_id_fkey', 'enrollments_class_id_fkey', 'enrollments_district_id_fkey']) {
    await sql`ALTER TABLE enrollments DROP CONSTRAINT IF EXISTS ${sql.id(fk)}`.execute(db);
  }
  // A delta that changes a class reaches its members through this, without
  // reading the district's memberships (the unique index leads with user_id).
  await sql`CREATE INDEX IF NOT EXISTS enrollments_class_active ON enrollments (class_id) WHERE ended_at IS NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS enrollments_class_active`.execute(db);
  await sql`ALTER TABLE enrollments ADD CONSTRAINT enrollments_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE`.execute(db);
  await sql`ALTER TABLE enrollments ADD CONSTRAINT enrollments_class_id_fkey FOREIGN KEY (class_id) REFERENCES classes(id) ON DELETE CASCADE`.execute(db);
  await sql`ALTER TABLE enrollments ADD CONSTRAINT enrollments_district_id_fkey FOREIGN KEY (district_id) REFERENCES districts(id) ON DELETE CASCADE`.execute(db);
  await sql`DELETE FROM run_stage WHERE data IS NULL`.execute(db);
  await sql`ALTER TABLE run_stage ALTER COLUMN data SET NOT NULL`.execute(db);
  await sql`DROP SCHEMA IF EXISTS stage CASCADE`.execute(db);
}
