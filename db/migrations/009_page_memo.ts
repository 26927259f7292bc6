import { sql, type Kysely } from 'kysely';

// Issue #11: a resync reads an unchanged provider page for the cost of
// receiving it. For each batch a complete fetch made from a page (its origin:
// the page's URL and bytes, and whatever else its mapping read;
// connectors/http/page-origin.ts), the content hashes of the rows it made.
// The next fetch that meets the same origin, with every one of those rows
// still in the district's mirror, marks them seen instead of preparing,
// writing and hashing the page's records again (src/sync/page-memo.ts).
// `run_id` is the run whose fetch last made or used the entry: when that run's
// snapshot is the district's quiet mirror, the entry's rows are known to be in
// it, and a fetch need not wait for the mirror's hashes to take the page (it
// checks them when they have loaded, and fetches again without the memo if
// one is missing). `covering` says that fetch tagged every batch it made, so
// its entries name every row of its snapshot: when they are all the
// entries a fetch meets, the snapshot is the mirror's without loading its
// hashes. A cache, and checked on every use: unlogged (a crash
// empties it with the mirror, and the next fetch prepares every page),
// rewritten by each complete fetch.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE UNLOGGED TABLE page_memo (
      district_id text NOT NULL REFERENCES districts(id) ON DELETE CASCADE,
      key bigint NOT NULL,
      run_id uuid NOT NULL,
      covering boolean NOT NULL DEFAULT false,
      hashes bytea NOT NULL,
      PRIMARY KEY (district_id, key)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS page_memo`.execute(db);
}
