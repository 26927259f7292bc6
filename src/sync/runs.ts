import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import type { RunStatus, SyncRunRow } from '../../db/schema.js';
import { zeroCounts, type RunCounts } from '../domain/model.js';
import { NotFoundError } from '../districts/repository.js';
import { dropStages } from './stage.js';
import { cleanText } from './record-prep.js';

export type RunTrigger = 'cli' | 'api' | 'schedule' | 'webhook' | 'ops:remove-student' | 'ops:license-change' | 'sso:jit';

/** The run as the CLI and HTTP API show it (the contract's shape, plus extras). */
export interface RunView {
  id: string;
  districtId: string;
  status: RunStatus;
  dryRun: boolean;
  full: boolean;
  /** For a delta run, the start of the window it fetched. */
  deltaSince: string | null;
  trigger: string;
  approved: boolean;
  phase: string | null;
  progress: Record<string, unknown> | null;
  counts: RunCounts;
  guard: Record<string, unknown> | null;
  error: string | null;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
}

export function toRunView(row: SyncRunRow): RunView {
  return {
    id: row.id,
    districtId: row.district_id,
    status: row.status,
    dryRun: row.dry_run,
    full: row.full_snapshot,
    deltaSince: row.delta_since?.toISOString() ?? null,
    trigger: row.trigger,
    approved: row.approved,
    phase: row.phase,
    progress: row.progress,
    counts: { ...zeroCounts(), ...(row.counts ?? {}) },
    guard: row.guard,
    error: row.error,
    attempts: row.attempts,
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
    durationMs: row.started_at && row.finished_at ? row.finished_at.getTime() - row.started_at.getTime() : null,
  };
}

/**
 * The attempt that tried to write has been superseded: another worker claimed
 * the run since (its lock lapsed, say). It must change nothing more: neither
 * the stage, nor the roster, nor the run's row.
 */
export class SupersededError extends Error {
  constructor(runId: string, attempt: number) {
    super(`run ${runId}: attempt ${attempt} was superseded by a newer attempt; it stops and changes nothing`);
    this.name = 'SupersededError';
  }
}

/** Which attempt of a run is writing: every write of a run is fenced by it. */
export interface RunLease { runId: string; attempt: number }

export const isFinished = (status: RunStatus) => status === 'SUCCEEDED' || status === 'FAILED' || status === 'HELD';

/**
 * Syncs whose snapshot was applied: the district's roster as of their start.
 * Dry runs changed nothing; ops actions and sign-in (JIT) accounts read no provider.
 */
export function appliedSyncRuns(db: Db) {
  return db.selectFrom('sync_runs').where('status', '=', 'SUCCEEDED').where('dry_run', '=', false)
    .where('trigger', 'not like', 'ops:%').where('trigger', 'not like', 'sso:%');
}

/** Serialises everything one district does to its roster, across processes, for one transaction. */
export async function lockDistrict(db: Db, districtId: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext('rostersync:district'), hashtext(${districtId}))`.execute(db);
}

/**
 * Serialises a district's run bookkeeping (queueing, claiming) for one
 * transaction. A lock of its own: a trigger or a claim never waits behind a
 * long apply holding the district's roster lock.
 */
export async function lockRuns(db: Db, districtId: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext('rostersync:runs'), hashtext(${districtId}))`.execute(db);
}

/**
 * Whether no session holds the district's roster lock. When free, this
 * transaction takes it until it ends (a moment: the claim's own commit).
 */
async function districtLockFree(db: Db, districtId: string): Promise<boolean> {
  const { rows } = await sql<{ free: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext('rostersync:district'), hashtext(${districtId})) AS free`.execute(db);
  return rows[0]!.free;
}

export async function getRun(db: Db, runId: string): Promise<SyncRunRow> {
  if (!/^[0-9a-f-]{36}$/i.test(runId)) throw new NotFoundError(`'${runId}' is not a run id`);
  const row = await db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirst();
  if (!row) throw new NotFoundError(`unknown run '${runId}'`);
  return row;
}

export async function listRuns(db: Db, districtId: string, limit = 20): Promise<SyncRunRow[]> {
  return db.selectFrom('sync_runs').selectAll().where('district_id', '=', districtId).orderBy('created_at', 'desc').limit(limit).execute();
}

/**
 * A trigger while a run of the same kind is still queued joins that run instead
 * of queueing another: the queued run will fetch a fresh snapshot anyway.
 */
export async function createOrCoalesceRun(db: Db, opts: { districtId: string; trigger: RunTrigger; dryRun: boolean; full: boolean }): Promise<{ run: SyncRunRow; coalesced: boolean }> {
  return db.transaction().execute(async (trx) => {
    await lockRuns(trx, opts.districtId);
    const queued = await trx.selectFrom('sync_runs').selectAll()
      .where('district_id', '=', opts.districtId).where('status', '=', 'QUEUED')
      .where('dry_run', '=', opts.dryRun).where('approved', '=', false)
      .orderBy('created_at').executeTakeFirst();
    if (queued) {
      if (opts.full && !queued.full_snapshot) {
        const upgraded = await trx.updateTable('sync_runs').set({ full_snapshot: true }).where('id', '=', queued.id).returningAll().executeTakeFirstOrThrow();
        return { run: upgraded, coalesced: true };
      }
      return { run: queued, coalesced: true };
    }
    const run = await trx.insertInto('sync_runs').values({
      district_id: opts.districtId, trigger: opts.trigger, status: 'QUEUED', dry_run: opts.dryRun, full_snapshot: opts.full, phase: 'queued',
    }).returningAll().executeTakeFirstOrThrow();
    return { run, coalesced: false };
  });
}

export type ClaimResult = { outcome: 'claimed'; run: SyncRunRow } | { outcome: 'busy'; blockedBy: string } | { outcome: 'finished'; run: SyncRunRow };

/**
 * Moves a run to RUNNING unless another run of its district is RUNNING. A run
 * already RUNNING is re-claimed: the queue hands a job to a new worker only
 * when its previous worker stopped holding it, so the old attempt is dead.
 */
export async function claimRun(db: Db, runId: string, staleMs: number): Promise<ClaimResult> {
  return db.transaction().execute(async (trx) => {
    const run = await getRun(trx, runId);
    await lockRuns(trx, run.district_id);
    const current = await getRun(trx, runId);
    if (current.status !== 'QUEUED' && current.status !== 'RUNNING') return { outcome: 'finished', run: current };
    const other = await trx.selectFrom('sync_runs').select(['id', 'heartbeat_at'])
      .where('district_id', '=', current.district_id).where('status', '=', 'RUNNING').where('id', '!=', runId).executeTakeFirst();
    if (other) {
      const lastBeat = other.heartbeat_at?.getTime() ?? 0;
      if (Date.now() - lastBeat < staleMs) return { outcome: 'busy', blockedBy: other.id };
      // No heartbeat is sent inside the apply transaction, so a long apply (a very
      // large district, or one waiting for the district's lock) looks silent while
      // its worker is alive. A live session holding the district's roster lock
      // means the district is busy, not abandoned; a dead worker's session is
      // ended by Postgres, which frees the lock.
      if (!(await districtLockFree(trx, current.district_id))) return { outcome: 'busy', blockedBy: other.id };
      // Its worker died where nothing could record it (the database was down too,
      // say) and its job is gone: it would block the district for ever.
      // Only while still RUNNING: if its attempt commits meanwhile, its result stands.
      const abandoned = await trx.updateTable('sync_runs')
        .set({ status: 'FAILED', phase: 'failed', finished_at: new Date(), error: `abandoned: no heartbeat since ${other.heartbeat_at?.toISOString() ?? 'it started'}; run ${runId} took over` })
        .where('id', '=', other.id).where('status', '=', 'RUNNING').executeTakeFirst();
      if (Number(abandoned.numUpdatedRows) > 0) await dropStages(trx, sql`SELECT ${other.id}::uuid`);
    }
    // Conditional as well: an older attempt of this very run may commit its
    // result while we wait on the row, and that result must not be re-run or overwritten.
    const claimed = await trx.updateTable('sync_runs')
      .set({ status: 'RUNNING', started_at: current.started_at ?? new Date(), heartbeat_at: new Date(), attempts: sql`attempts + 1`, error: null })
      .where('id', '=', runId).where('status', 'in', ['QUEUED', 'RUNNING']).returningAll().executeTakeFirst();
    if (!claimed) return { outcome: 'finished', run: await getRun(trx, runId) };
    return { outcome: 'claimed', run: claimed };
  });
}

export interface RunPatch { status?: RunStatus; phase?: string; progress?: Record<string, unknown>; counts?: RunCounts; guard?: Record<string, unknown> | null; error?: string | null; stagedAt?: Date; stagedPages?: number; stagedKeysDistinct?: boolean | null; finished?: boolean }

/**
 * Writes a run's row on behalf of one attempt: only while that attempt is the
 * run's latest and the run is still RUNNING. Throws SupersededError otherwise.
 */
export async function updateRun(db: Db, lease: RunLease, patch: RunPatch): Promise<void> {
  const result = await db.updateTable('sync_runs').set(runPatch(patch))
    .where('id', '=', lease.runId).where('attempts', '=', lease.attempt).where('status', '=', 'RUNNING')
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) === 0) throw new SupersededError(lease.runId, lease.attempt);
}

/**
 * Checks, early, that the attempt still holds its run. The fence that counts
 * is the run's final fenced update inside the same transaction as the changes:
 * a newer claim either commits first (the update finds no row: everything
 * rolls back) or waits on that row until this attempt has committed.
 */
export async function holdLease(db: Db, lease: RunLease): Promise<void> {
  const row = await db.selectFrom('sync_runs').select(['attempts', 'status']).where('id', '=', lease.runId).executeTakeFirst();
  if (!row || row.attempts !== lease.attempt || row.status !== 'RUNNING') throw new SupersededError(lease.runId, lease.attempt);
}

function runPatch(patch: RunPatch) {
  return {
    ...(patch.status ? { status: patch.status } : {}),
    ...(patch.phase ? { phase: patch.phase, heartbeat_at: new Date() } : {}),
    ...(patch.progress ? { progress: JSON.stringify(patch.progress) } : {}),
    ...(patch.counts ? { counts: JSON.stringify(patch.counts) } : {}),
    ...(patch.guard !== undefined ? { guard: patch.guard === null ? null : JSON.stringify(patch.guard) } : {}),
    // Errors quote providers' answers: no control characters into the row or a terminal.
    ...(patch.error !== undefined ? { error: patch.error === null ? null : cleanText(patch.error) } : {}),
    ...(patch.stagedAt ? { staged_at: patch.stagedAt } : {}),
    ...(patch.stagedPages !== undefined ? { staged_pages: patch.stagedPages } : {}),
    ...(patch.stagedKeysDistinct !== undefined ? { staged_keys_distinct: patch.stagedKeysDistinct } : {}),
    ...(patch.finished ? { finished_at: new Date() } : {}),
  };
}
