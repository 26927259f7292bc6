import { sql, type Kysely } from 'kysely';

// Issue #6/#8: the SIS id every provider gives a person (what LTI launches from
// Clever/ClassLink-rostered districts match on).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users ADD COLUMN sis_id text`.execute(db);
  // Guards beyond student deletions: other kinds' losses, unreadable records.
  await sql`ALTER TABLE districts
    ADD COLUMN loss_threshold_pct real NOT NULL DEFAULT 10 CHECK (loss_threshold_pct >= 0),
    ADD COLUMN quarantine_threshold_min integer NOT NULL DEFAULT 10 CHECK (quarantine_threshold_min >= 0),
    ADD COLUMN quarantine_threshold_pct real NOT NULL DEFAULT 1 CHECK (quarantine_threshold_pct >= 0)`.execute(db);
  // What a HELD or dry run would do, person by person, for review before approval.
  await sql`
    CREATE TABLE run_plan_items (
      run_id uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
      seq integer NOT NULL,
      section text NOT NULL,
      action text NOT NULL,
      sourced_id text NOT NULL,
      name text,
      role text,
      class_sourced_id text,
      product text,
      reason text,
      PRIMARY KEY (run_id, seq)
    )`.execute(db);
  await sql`CREATE INDEX run_plan_items_section ON run_plan_items (run_id, section, seq)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS run_plan_items`.execute(db);
  await sql`ALTER TABLE users DROP COLUMN IF EXISTS sis_id`.execute(db);
  await sql`ALTER TABLE districts DROP COLUMN IF EXISTS loss_threshold_pct, DROP COLUMN IF EXISTS quarantine_threshold_min, DROP COLUMN IF EXISTS quarantine_threshold_pct`.execute(db);
}
