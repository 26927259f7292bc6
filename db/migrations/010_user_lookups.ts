import { sql, type Kysely } from 'kysely';

// Issue #11: seats and wait-list entries found by their user. Both tables were
// indexed only by (pool_id, user_id), so anything that starts from a user read
// the whole table, every district's rows:
// - a purge (the summer wipe) deletes users, and each deleted user's ON DELETE
//   CASCADE scanned seat_assignments and waitlist once: measured 2.7 ms a user
//   beside 55,000 seats, so a 50,000-student district took over two minutes and
//   a million-student one would have taken most of a day, growing with the
//   square of the district;
// - a signed-in user's products (GET /sso/me) and `users <district>` (one
//   lookup per listed user) scanned them per user too.
// One index each; a seat row costs one more index entry when it is written.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX IF NOT EXISTS seat_assignments_user ON seat_assignments (user_id)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS waitlist_user ON waitlist (user_id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS seat_assignments_user`.execute(db);
  await sql`DROP INDEX IF EXISTS waitlist_user`.execute(db);
}
