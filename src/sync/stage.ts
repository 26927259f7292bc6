import { sql, type RawBuilder } from 'kysely';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { poolOf, type Db } from '../../db/connection.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import { SupersededError, type RunLease } from './runs.js';
import { prepareBatch } from './record-prep.js';
import { copyRow, copyStatement, copyText, createStageTablesSql, type StageKind } from './stage-tables.js';
import { hashText, recordHasher, type HashSet, type KeyHashLog } from './record-hash.js';
import type { Enrollment, RecordKind, RecordKinds } from '../domain/model.js';

// A run's snapshot is staged in Postgres, in typed tables of its own
// (src/sync/stage-tables.ts), so the fetch and the reconcile are separate
// steps: a worker that dies after the fetch is replaced by one that
// reconciles from the stage, and a HELD run can be approved later from exactly
// the snapshot that was held. run_stage is the stage's ledger: a row per batch.

/** A record as staged: its COPY line and its content hash (as COPY text). */
export interface StagedRow { h: string; line: string }

/** Rows of one kind of the stage, ready to COPY. */
export interface RowBatch { kind: StageKind; records: StagedRow[] }

/** A connector's batch as the stage sees it: its rows to write, and the hashes of all its rows. */
export interface HashedBatch {
  rows: RowBatch;
  /** Rows set aside while preparing it (an over-long id): staged as quarantine. */
  held: RowBatch;
  /** The content hash of every row the batch makes (the held ones too), written or found in the mirror. */
  hashes: BigUint64Array;
}

/**
 * Prepares a connector's batch for the stage (record-prep.ts), and hashes
 * each row. With the district's mirror given, a row the mirror already holds
 * is only marked seen there and not kept for writing
 * (src/sync/snapshot-mirror.ts rebuilds it); with a key log, the keys of
 * the rows kept are logged.
 */
export function hashBatch(incoming: SnapshotBatch, hash: (kind: StageKind, line: string) => bigint, mirror?: HashSet, keys?: KeyHashLog): HashedBatch {
  const { batch, quarantined } = prepareBatch(incoming);
  const hashes = new BigUint64Array(batch.records.length + quarantined.length);
  let n = 0;
  const rowsOf = (kind: StageKind, items: readonly unknown[]): RowBatch => {
    const rows: StagedRow[] = [];
    for (const item of items) {
      const line = copyRow(kind, item);
      const h = hash(kind, line);
      hashes[n++] = h;
      if (mirror?.mark(h)) continue;
      rows.push({ h: hashText(h), line });
      if (keys && kind !== 'quarantine') keys.add(hash(kind, recordKey(kind as RecordKind, item as RecordKinds[RecordKind])));
    }
    return { kind, records: rows };
  };
  return { rows: rowsOf(batch.kind, batch.records), held: rowsOf('quarantine', quarantined), hashes };
}

/**
 * Writes staged rows for the attempt holding the run, by COPY, as one batch
 * of the stage (inStageBatch: fenced by the attempt). Returns false when
 * there was nothing to write.
 */
export async function copyRows(db: Db, lease: RunLease, ...parts: RowBatch[]): Promise<boolean> {
  const records = parts.reduce((n, p) => n + p.records.length, 0);
  if (records === 0) return false;
  return inStageBatch(db, lease, { kind: parts[0]!.kind, records }, async (client, seq) => {
    for (const { kind, records: rows } of parts) {
      if (rows.length === 0) continue;
      await pipeline(Readable.from([copyText(seq, rows)]), client.query(copyFrom(copyStatement(lease.runId, kind))));
    }
    return true;
  });
}

/**
 * Stages one batch for the attempt holding the run, in a transaction that
 * first locks the run's row in share mode: a newer attempt's claim waits for
 * the batch and then drops the stage with the rest; once superseded, nothing
 * is staged. Records the mirror holds are only marked seen there
 * (hashBatch). Returns false when nothing was written (an empty batch, or
 * every record unchanged).
 */
export async function stageBatch(db: Db, lease: RunLease, incoming: SnapshotBatch, mirror?: HashSet, keys?: KeyHashLog): Promise<boolean> {
  const { rows, held } = hashBatch(incoming, await recordHasher(), mirror, keys);
  return copyRows(db, lease, rows, held);
}

/** What makes two records copies of one (src/reconcile/sql/snapshot-source.ts merges them): ids are cleaned, so no control character occurs in them. */
function recordKey(kind: RecordKind, record: RecordKinds[RecordKind]): string {
  if (kind === 'enrollments') {
    const e = record as Enrollment;
    return `${e.userSourcedId}\u001f${e.classSourcedId}`;
  }
  return (record as { sourcedId: string }).sourcedId;
}

/**
 * One batch of a run's stage, in its own transaction: the run's row is locked
 * in share mode first (a newer attempt's claim waits for the batch and then
 * drops the stage with the rest; once superseded, nothing is staged), and the
 * batch gets its ledger row in run_stage, whose seq `work` writes its rows
 * under. `records` may be left for `work` to tell (by returning it) when only
 * the writing knows. Connections as in inLeasedTransaction.
 */
export async function inStageBatch<T>(
  db: Db, lease: RunLease, ledger: { kind: string; records?: number },
  work: (client: pg.PoolClient, seq: number) => Promise<T>,
  clean: (err: unknown) => boolean = () => false,
): Promise<T> {
  const { runId } = lease;
  return inLeasedTransaction(db, lease, async (client) => {
    const { rows } = await client.query<{ seq: number }>(
      `INSERT INTO run_stage (run_id, seq, kind, records, data)
       SELECT $1, COALESCE(max(seq), 0) + 1, $2, $3, NULL FROM run_stage WHERE run_id = $1 RETURNING seq`, [runId, ledger.kind, ledger.records ?? 0]);
    const seq = rows[0]!.seq;
    const result = await work(client, seq);
    if (ledger.records === undefined && typeof result === 'number') {
      await client.query('UPDATE run_stage SET records = $3 WHERE run_id = $1 AND seq = $2', [runId, seq, result]);
    }
    return result;
  }, clean);
}

/**
 * Work in a transaction of its own on a client of its own (for COPY), while
 * the attempt holds the run: its row is locked in share mode first, and once
 * superseded, nothing is done. A connection that failed mid-COPY is not
 * handed to anyone else; one that only failed a check (`clean`) is.
 */
export async function inLeasedTransaction<T>(db: Db, lease: RunLease, work: (client: pg.PoolClient) => Promise<T>, clean: (err: unknown) => boolean = () => false): Promise<T> {
  const { runId, attempt } = lease;
  const client = await poolOf(db).connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const holding = await client.query(`SELECT 1 FROM sync_runs WHERE id = $1 AND attempts = $2 AND status = 'RUNNING' FOR SHARE`, [runId, attempt]);
    if (holding.rowCount === 0) throw new SupersededError(runId, attempt);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    broken = err as Error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(broken && !(broken instanceof SupersededError) && !clean(broken) ? broken : undefined);
  }
}

export async function countStagedPages(db: Db, runId: string): Promise<number> {
  const row = await db.selectFrom('run_stage').select((eb) => eb.fn.countAll<number>().as('n')).where('run_id', '=', runId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Whether a run's stage tables exist (an older stage, in JSON pages, has none). */
export async function stageTablesExist(db: Db, runId: string): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'stage' AND c.relname LIKE ${`r${runId.replace(/-/g, '')}\\_%`}`.execute(db);
  return (rows[0]?.n ?? 0) > 0;
}

/**
 * Starts a run's stage afresh for the attempt holding it: a half-staged
 * snapshot from a dead attempt cannot be trusted to be whole. The run's row is
 * locked in share mode meanwhile, as for staging.
 */
export async function resetStage(db: Db, lease: RunLease): Promise<void> {
  const { runId, attempt } = lease;
  await db.transaction().execute(async (trx) => {
    const { rows } = await sql`SELECT 1 FROM sync_runs WHERE id = ${runId}::uuid AND attempts = ${attempt} AND status = 'RUNNING' FOR SHARE`.execute(trx);
    if (rows.length === 0) throw new SupersededError(runId, attempt);
    await sql`SELECT stage.drop_run(${runId}::uuid)`.execute(trx);
    await trx.deleteFrom('run_stage').where('run_id', '=', runId).execute();
    for (const ddl of createStageTablesSql(runId)) await ddl.execute(trx);
  });
}

/**
 * Drops a run's stage. With a lease, only while that attempt holds the run
 * (the run's row is locked in share mode meanwhile, as for staging).
 */
export async function clearStage(db: Db, runId: string, lease?: RunLease): Promise<void> {
  if (!lease) {
    await dropStages(db, sql`SELECT ${runId}::uuid`);
    return;
  }
  await db.transaction().execute(async (trx) => {
    const { rows } = await sql`SELECT 1 FROM sync_runs WHERE id = ${runId}::uuid AND attempts = ${lease.attempt} AND status = 'RUNNING' FOR SHARE`.execute(trx);
    if (rows.length === 0) throw new SupersededError(runId, lease.attempt);
    await dropStages(trx, sql`SELECT ${runId}::uuid`);
  });
}

/** Drops the staged snapshots and plans (names, emails) of the runs a query selects; returns the batches dropped. */
export async function dropStages(db: Db, runIds: RawBuilder<unknown>): Promise<number> {
  await sql`SELECT stage.drop_run(id) FROM (${runIds}) AS runs(id)`.execute(db);
  const pages = await sql`DELETE FROM run_stage WHERE run_id IN (${runIds})`.execute(db);
  await sql`DELETE FROM run_plan_items WHERE run_id IN (${runIds})`.execute(db);
  return Number(pages.numAffectedRows ?? 0);
}
