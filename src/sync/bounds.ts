import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';

/** A district rostered before may grow, but not fourfold between two syncs. */
const GROWTH_FACTOR = 4;
/** Floor of the bound for a small district (a few hundred thousand records is still a small stage). */
const MIN_BOUND = 250_000;
/** A first sync has nothing to compare with: the largest districts (about a million students) stay well inside this. */
const FIRST_SYNC_BOUND = 25_000_000;

/**
 * The most records a run may stage before it is stopped as a runaway
 * pagination (a cursor that never ends): relative to what the district holds.
 */
export async function recordsBound(db: Db, districtId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT (SELECT count(*) FROM users WHERE district_id = ${districtId})
         + (SELECT count(*) FROM classes WHERE district_id = ${districtId})
         + (SELECT count(*) FROM enrollments WHERE district_id = ${districtId} AND ended_at IS NULL) AS n`.execute(db);
  const held = Number(rows[0]?.n ?? 0);
  return held === 0 ? FIRST_SYNC_BOUND : Math.max(held * GROWTH_FACTOR, MIN_BOUND);
}
