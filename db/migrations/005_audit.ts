import { sql, type Kysely } from 'kysely';

// Issue #11: a person's history in one indexed lookup.
export async function up(db: Kysely<unknown>): Promise<void> {
  // 'user', 'person' (the compact per-run roster row) and Clever/ClassLink 'sso'
  // rows are keyed by the person's sourcedId: one range scan, already in time order.
  await sql`CREATE INDEX audit_log_person ON audit_log (district_id, entity_key, at)`.execute(db);
  // Rows written before the compact format: one per membership ('class/user')
  // or seat ('product/user'). Reversed, the user's sourcedId is a prefix, which a
  // text_pattern_ops index serves for LIKE 'prefix%'.
  await sql`CREATE INDEX audit_log_legacy_person ON audit_log (district_id, reverse(entity_key) text_pattern_ops) WHERE entity IN ('enrollment', 'seat')`.execute(db);
  // LTI launches are keyed by the platform's subject; their detail names our account.
  await sql`CREATE INDEX audit_log_sso_user ON audit_log (district_id, (detail->>'userId')) WHERE entity = 'sso'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of ['audit_log_person', 'audit_log_legacy_person', 'audit_log_sso_user']) {
    await sql`DROP INDEX IF EXISTS ${sql.id(name)}`.execute(db);
  }
}
