import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import { RECORD_KINDS, recordKey, type RecordKind, type RecordKinds } from '../domain/model.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import type { Snapshot } from '../reconcile/types.js';

// A run's snapshot is staged in Postgres under its run id, page by page, so the
// fetch and the reconcile are separate steps: a worker that dies after the
// fetch is replaced by one that reconciles from the stage, and a HELD run can be
// approved later from exactly the snapshot that was held.

const READ_PAGE = 20000;

export async function stageBatch(db: Db, runId: string, batch: SnapshotBatch): Promise<void> {
  if (batch.records.length === 0) return;
  // One row per key: a provider that repeats a record across pages keeps the last copy.
  const rows = new Map<string, unknown>();
  for (const record of batch.records) rows.set(recordKey(batch.kind, record as never), record);
  const payload = JSON.stringify([...rows].map(([key, data]) => ({ key, data })));
  await sql`
    INSERT INTO run_stage (run_id, kind, sourced_id, data)
    SELECT ${runId}::uuid, ${batch.kind}, r.key, r.data
    FROM jsonb_to_recordset(${payload}::jsonb) AS r(key text, data jsonb)
    ON CONFLICT (run_id, kind, sourced_id) DO UPDATE SET data = EXCLUDED.data`.execute(db);
}

export async function clearStage(db: Db, runId: string): Promise<void> {
  await db.deleteFrom('run_stage').where('run_id', '=', runId).execute();
}

export async function loadSnapshot(db: Db, runId: string, complete: boolean): Promise<Snapshot> {
  const snapshot: Snapshot = {
    complete,
    orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(), enrollments: new Map(),
  };
  for (const kind of RECORD_KINDS) {
    const target = snapshot[kind] as Map<string, RecordKinds[RecordKind]>;
    // Keyset pages keep each result set bounded, whatever the district's size.
    let after = '';
    for (;;) {
      const page = await db.selectFrom('run_stage').select(['sourced_id', 'data'])
        .where('run_id', '=', runId).where('kind', '=', kind).where('sourced_id', '>', after)
        .orderBy('sourced_id').limit(READ_PAGE).execute();
      for (const row of page) target.set(row.sourced_id, row.data as RecordKinds[RecordKind]);
      if (page.length < READ_PAGE) break;
      after = page[page.length - 1]!.sourced_id;
    }
  }
  return snapshot;
}
