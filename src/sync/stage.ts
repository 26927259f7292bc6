import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import { recordKey, type RecordKind, type RecordKinds } from '../domain/model.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import type { Snapshot } from '../reconcile/types.js';
import { Interner } from './intern.js';

// A run's snapshot is staged in Postgres under its run id, one row per provider
// page, so the fetch and the reconcile are separate steps: a worker that dies
// after the fetch is replaced by one that reconciles from the stage, and a HELD
// run can be approved later from exactly the snapshot that was held.

/** Pages read per query when loading a stage back: bounds each result set. */
const READ_PAGE = 4;

export async function stageBatch(db: Db, runId: string, batch: SnapshotBatch): Promise<void> {
  if (batch.records.length === 0) return;
  await sql`
    INSERT INTO run_stage (run_id, seq, kind, records, data)
    SELECT ${runId}::uuid, COALESCE(max(seq), 0) + 1, ${batch.kind}, ${batch.records.length}, ${JSON.stringify(batch.records)}
    FROM run_stage WHERE run_id = ${runId}::uuid`.execute(db);
}

export async function countStagedPages(db: Db, runId: string): Promise<number> {
  const row = await db.selectFrom('run_stage').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function clearStage(db: Db, runId: string): Promise<void> {
  await db.deleteFrom('run_stage').where('run_id', '=', runId).execute();
}

/**
 * Builds a snapshot from staged pages, in order: a record repeated across pages
 * keeps its last copy, and sourcedIds share one string each. The worker that
 * fetches builds it as it stages; a worker that resumes builds it from the stage.
 */
export class SnapshotBuilder {
  private readonly snapshot: Snapshot;
  private readonly intern: (s: string) => string;

  constructor(complete: boolean, interner = new Interner()) {
    this.intern = interner.intern;
    this.snapshot = {
      complete,
      orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(), enrollments: new Map(),
    };
  }

  add(batch: SnapshotBatch): void {
    const { intern } = this;
    const target = this.snapshot[batch.kind] as Map<string, RecordKinds[RecordKind]>;
    for (const record of batch.records) {
      if (batch.kind === 'enrollments') {
        const e = record as RecordKinds['enrollments'];
        e.userSourcedId = intern(e.userSourcedId);
        e.classSourcedId = intern(e.classSourcedId);
      } else {
        const r = record as { sourcedId: string };
        r.sourcedId = intern(r.sourcedId);
      }
      target.set(recordKey(batch.kind, record as never), record);
    }
  }

  build(): Snapshot {
    return this.snapshot;
  }
}

/** Reads a run's staged snapshot back, page by page. */
export async function loadSnapshot(db: Db, runId: string, builder: SnapshotBuilder): Promise<Snapshot> {
  let after = 0;
  for (;;) {
    const pages = await db.selectFrom('run_stage').select(['seq', 'kind', 'data'])
      .where('run_id', '=', runId).where('seq', '>', after).orderBy('seq').limit(READ_PAGE).execute();
    for (const page of pages) builder.add({ kind: page.kind as RecordKind, records: JSON.parse(page.data) } as SnapshotBatch);
    if (pages.length < READ_PAGE) break;
    after = pages[pages.length - 1]!.seq;
  }
  return builder.build();
}
