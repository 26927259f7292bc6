import { sql, type Kysely } from 'kysely';

// Issue #11: whether the fetch that staged a run's snapshot saw every record
// key once (src/sync/record-hash.ts KeyHashLog). True lets the reconcile skip
// merging copies, a grouping of the whole stage; null (an older stage, or a
// stage completed from the district's mirror) merges as before. Kept on the
// run with the stage it describes, so a resumed or approved run reads it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE sync_runs ADD COLUMN staged_keys_distinct boolean`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE sync_runs DROP COLUMN IF EXISTS staged_keys_distinct`.execute(db);
}
