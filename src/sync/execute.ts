import { sql } from 'kysely';
import { createConnector } from '../../connectors/index.js';
import type { Connector } from '../../connectors/types.js';
import type { SyncRunRow } from '../../db/schema.js';
import type { AppContext } from '../context.js';
import { getDistrict, type District } from '../districts/repository.js';
import { evaluateGuards } from '../reconcile/guards.js';
import type { Snapshot } from '../reconcile/types.js';
import { planInDb, type DbPlan } from '../reconcile/sql/plan.js';
import { mergeDuplicates, snapshotInTables, stagedSnapshot } from '../reconcile/sql/snapshot-source.js';
import { applyPlan } from './apply.js';
import { appliedSyncRuns, claimRun, holdLease, lockDistrict, SupersededError, updateRun, type ClaimResult, type RunLease } from './runs.js';
import { recordPlanItems } from './plan-items.js';
import { recordsBound } from './bounds.js';
import { finishFailed } from './fail.js';
import { failureReason } from './failure-reason.js';
import { guardRecord } from './run-guard.js';
import { findMirror, keepAsMirror, loadMirrorHashes, mirrorDifference, MirrorGoneError, rebuildFromMirror, type Mirror } from './snapshot-mirror.js';
import { changedRowsHaveCopies, focusOnChanges } from '../reconcile/sql/focus.js';
import { KeyHashLog, recordHasher, type HashSet } from './record-hash.js';
import { adoptIntoMirror, forgetPageMemo, loadPageMemo, MemoMismatchError, savePageMemo, type PageMemo } from './page-memo.js';
import { applyUnchanged } from './unchanged-run.js';
import { clearStage, copyRows, countStagedPages, dropStages, hashBatch, resetStage, stageTablesExist, type RowBatch } from './stage.js';
import { BatchCoalescer } from './batch-coalescer.js';
import type { SnapshotBatch } from '../../connectors/types.js';

export interface Progress {
  phase: string;
  pages?: number;
  records?: number;
  resource?: string;
  /** Records (as mapped, one per account, class or membership) found unchanged in the district's mirror and not staged, and the others. */
  unchanged?: number;
  changed?: number;
  /** Batches whose records were taken from the mirror by the page they came from, without being read one by one (src/sync/page-memo.ts). */
  reused?: number;
}

export interface ExecuteHooks {
  onProgress?: (progress: Progress) => void | Promise<void>;
}

export type ExecuteOutcome = ClaimResult['outcome'] | 'done' | 'superseded';

const today = (d: Date) => d.toISOString().slice(0, 10);

/** Logged at the reconcile step, where a run's memory peaks. */
const memory = () => {
  const m = process.memoryUsage();
  return { heapMb: Math.round(m.heapUsed / 1048576), rssMb: Math.round(m.rss / 1048576) };
};

/**
 * One run, start to end: fetch the provider's snapshot into the stage (unless a
 * previous attempt already staged it), reconcile it against the district, and
 * either hold it or apply it, all in one transaction with the run's final row.
 */
export async function executeRun(ctx: AppContext, runId: string, hooks: ExecuteHooks = {}): Promise<ExecuteOutcome> {
  const claim = await claimRun(ctx.db, runId, ctx.config.RUN_STALE_MS);
  if (claim.outcome !== 'claimed') return claim.outcome;
  const run = claim.run;
  const lease: RunLease = { runId, attempt: run.attempts };
  const log = ctx.logger.child({ districtId: run.district_id, runId, attempt: run.attempts });
  // Every report is a heartbeat, fenced by the attempt: a superseded attempt stops at its next one.
  // The fetch's last numbers stay in the run's progress through the apply
  // and after: how many records came, and how many were unchanged.
  let fetched: Omit<Progress, 'phase'> = {};
  const report = async (p: Progress) => {
    if (p.phase === 'fetch') fetched = { pages: p.pages, records: p.records, resource: p.resource, unchanged: p.unchanged, changed: p.changed, reused: p.reused };
    await updateRun(ctx.db, lease, { phase: p.phase, progress: { ...fetched, ...p } });
    await hooks.onProgress?.(p);
  };
  try {
    const district = await getDistrict(ctx.db, run.district_id);
    const connector = createConnector(district.settings, log);
    // The run records which kind of snapshot it reconciles: complete (absence
    // means departure) or a delta since the last applied run. Decided once, on
    // the first attempt, so a resumed run reconciles what it staged.
    let { full_snapshot: complete, delta_since: since, staged_keys_distinct: stagedKeysDistinct } = run;
    const asOf = today(run.started_at ?? new Date());
    // A stage that lost batches (Postgres restarted: its tables are unlogged) is fetched again.
    const stageIntact = run.staged_at !== null && run.staged_pages === await countStagedPages(ctx.db, runId) && await stageTablesExist(ctx.db, runId);
    if (run.staged_at && !stageIntact) {
      // An approval covers the snapshot that was reviewed, never a fresh one.
      if (run.approved) throw new Error('the held snapshot is no longer staged (Postgres was restarted, or it was staged by an older version); trigger a new sync and review it again');
      log.warn({ expected: run.staged_pages }, 'staged snapshot incomplete; fetching again');
    }
    if (!stageIntact) {
      ({ complete, since } = await chooseSnapshotKind(ctx, district.id, connector, run));
      const chosen = await ctx.db.updateTable('sync_runs').set({ full_snapshot: complete, delta_since: since })
        .where('id', '=', runId).where('attempts', '=', lease.attempt).where('status', '=', 'RUNNING').executeTakeFirst();
      if (Number(chosen.numUpdatedRows) === 0) throw new SupersededError(runId, lease.attempt);
      // Counting what the district holds takes a moment at a million students: it overlaps the first pages.
      const maxRecords = recordsBound(ctx.db, district.id);
      maxRecords.catch(() => undefined);
      const mirror = complete ? await findMirror(ctx.db, district.id, district.provider) : undefined;
      log.info({ provider: district.provider, complete, since, mirror: mirror?.runId }, 'fetching roster snapshot');
      const fetchOpts = { full: complete, since: since ?? undefined, maxRecords };
      let pages = 0;
      // Without a mirror every record is staged by the fetch, which can tell
      // whether any key came twice (with one, copies are looked for in Postgres).
      let keys = mirror ? undefined : new KeyHashLog();
      let withMirror = mirror && { mirror, log };
      for (let tries = 0; ; tries += 1) {
        try {
          pages = await fetchIntoStage(ctx, connector, lease, fetchOpts, report, district, withMirror, keys);
          break;
        } catch (err) {
          if (tries >= 2) throw err;
          if (err instanceof MirrorGoneError && withMirror) {
            log.warn({ err: err.message }, 'fetching again without the mirror');
            keys = new KeyHashLog();
            withMirror = undefined;
          } else if (err instanceof MemoMismatchError) {
            log.warn({ err: err.message }, 'fetching again without the page memo');
            await forgetPageMemo(ctx.db, district.id);
          } else {
            throw err;
          }
        }
      }
      if (pages === UNCHANGED) {
        await report({ phase: 'apply' });
        if (await applyUnchanged(ctx, district, mirror!, { lease, asOf, dryRun: run.dry_run })) {
          await adoptIntoMirror(ctx.db, district.id, runId, mirror!.runId);
          // The same message as any run's outcome (ops and tests read it), marked as the no-op it is.
          log.info({ status: 'SUCCEEDED', unchanged: true, mirror: mirror!.runId }, run.dry_run ? 'dry run: plan computed, nothing applied' : 'run applied');
          return 'done';
        }
        // Not provably a no-op (the district changed since, the day turned, or the guards speak): plan it in full.
        pages = 1;
        await rebuildFromMirror(ctx.db, lease, district.id, mirror!.runId, []);
      }
      stagedKeysDistinct = keys ? keys.allDistinct() : null;
      await sealStage(ctx, lease, pages, stagedKeysDistinct);
    } else {
      log.info({ attempt: run.attempts }, 'snapshot already staged; resuming at reconcile');
    }
    // Reported before the transaction opens: inside it, a heartbeat would need a
    // second connection (and the hook Redis) while the district's lock is held.
    await report({ phase: 'apply' });

    const outcome = await reconcileAndApply(ctx, district, { staged: true, complete }, {
      lease, asOf, dryRun: run.dry_run, approved: run.approved, createdAt: run.created_at, stagedKeysDistinct,
    });
    log.info({ counts: outcome.counts, status: outcome.status }, outcome.status === 'HELD' ? 'run held for review' : run.dry_run ? 'dry run: plan computed, nothing applied' : 'run applied');
    return 'done';
  } catch (err) {
    if (err instanceof SupersededError) {
      log.warn({ err: err.message }, 'attempt superseded; stopping without changing anything');
      return 'superseded';
    }
    const message = failureReason(err);
    log.error({ err: message }, 'run failed; nothing was applied');
    await finishFailed(ctx, lease, message, log);
    return 'done';
  }
}

/** Records per staged batch (one COPY): smaller provider pages are gathered, larger ones cut. */
const STAGE_BATCH_RECORDS = 5000;

export interface ApplyOptions {
  lease: RunLease;
  asOf: string;
  dryRun: boolean;
  /** An approved run skips the guards: someone looked at it and said yes. */
  approved: boolean;
  /** When the run was created: an approved run must still be the newest snapshot when it applies. */
  createdAt?: Date;
  /** The fetch saw each record key once: the stage has no copies to merge. */
  stagedKeysDistinct?: boolean | null;
}

/** What a run reconciles: its own staged snapshot, or a small one built in memory (ops, sign-in, tests). */
export type SnapshotSource = { staged: true; complete: boolean } | Snapshot;

/**
 * The reconcile step of a run, in one transaction under the district lock:
 * plan in Postgres from the snapshot and the district's rows, then record the
 * run as dry-run, HELD or applied, together with the changes. Nothing is
 * half-written whatever happens; the worker holds counts, never the district.
 */
export async function reconcileAndApply(ctx: AppContext, district: District, source: SnapshotSource, opts: ApplyOptions): Promise<{ status: 'SUCCEEDED' | 'HELD' } & DbPlan> {
  const { lease } = opts;
  const { runId } = lease;
  return ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, district.id);
    // An attempt that lost the run applies nothing (its final fenced update would roll everything back anyway).
    await holdLease(trx, lease);
    if (opts.approved && opts.createdAt) {
      // Checked again here, under the lock: a sync that succeeded between the
      // approval and now has a newer snapshot, which this one must not undo.
      const newer = await appliedSyncRuns(trx).select('id').where('district_id', '=', district.id).where('created_at', '>', opts.createdAt).executeTakeFirst();
      if (newer) throw new Error(`superseded by run ${newer.id}, which applied a newer snapshot after this run was approved; nothing was applied: trigger a new sync and review it`);
    }
    let t = performance.now();
    const lap = () => { const ms = Math.round(performance.now() - t); t = performance.now(); return ms; };
    const staged = 'staged' in source;
    // A staged complete snapshot: planned against the district's mirror, and kept as the next one.
    const stagedWhole = staged && source.complete;
    const tables = staged ? stagedSnapshot(runId) : await snapshotInTables(trx, source);
    // A complete snapshot completed from a quiet mirror is planned where it
    // differs from it, unless it holds copies to merge (then it is planned whole).
    const difference = stagedWhole
      ? await mirrorDifference(trx, { runId, districtId: district.id, provider: district.provider, asOf: opts.asOf }) : undefined;
    const focused = difference && !await changedRowsHaveCopies(trx, tables, difference.mirrorSeq);
    const merged = focused || (staged && opts.stagedKeysDistinct === true) ? 0 : await mergeDuplicates(trx, tables, opts.asOf);
    const focus = focused ? await focusOnChanges(trx, tables, difference) : undefined;
    const mergeMs = lap();
    const plan = await planInDb(trx, tables, { districtId: district.id, provider: district.provider, complete: source.complete, asOf: opts.asOf, focus });
    ctx.logger.info({ runId, merged, focused: focus !== undefined, mergeMs, planMs: lap(), steps: plan.timings, ...memory() }, 'plan computed');
    // How it was planned stays in the run's progress (whatever its outcome):
    // the whole snapshot, or its difference from the mirror.
    if (stagedWhole) {
      await sql`UPDATE sync_runs SET progress = COALESCE(progress, '{}'::jsonb) || jsonb_build_object('planned', ${focus ? 'difference' : 'whole'}::text)
        WHERE id = ${runId}::uuid`.execute(trx);
    }
    const verdict = opts.approved ? { held: false as const } : evaluateGuards(plan.stats, district.guard);
    const guard = await guardRecord(trx, plan.stats, verdict, tables.quarantine);
    if (opts.dryRun || verdict.held) {
      // What it would do, person by person, for `run <id> --plan`.
      await recordPlanItems(trx, runId, tables, district.id, district.provider);
    }
    if (opts.dryRun) {
      await updateRun(trx, lease, { status: 'SUCCEEDED', phase: 'done', counts: plan.counts, guard, finished: true });
      await clearStage(trx, runId);
      return { status: 'SUCCEEDED', ...plan };
    }
    if (verdict.held) {
      // The stage is kept: approving the run applies exactly this snapshot.
      await updateRun(trx, lease, { status: 'HELD', phase: 'held', counts: plan.counts, guard, error: verdict.reason, finished: true });
      return { status: 'HELD', ...plan };
    }
    const applySteps = await applyPlan(trx, { districtId: district.id, provider: district.provider, runId });
    const applyMs = lap();
    await updateRun(trx, lease, { status: 'SUCCEEDED', phase: 'done', counts: plan.counts, guard, error: null, finished: true });
    // A complete snapshot's stage is kept as the district's mirror: the next
    // full sync stages only what changed against it. Quiet (a resync of the
    // same snapshot is known to plan nothing) unless copies were merged or a
    // person approved it past the guards.
    if (stagedWhole) await keepAsMirror(trx, { districtId: district.id, provider: district.provider, runId, asOf: opts.asOf, quiet: merged === 0 && !opts.approved });
    // This run's stage and plan (unless kept), and those of older HELD runs (their snapshot is stale now).
    await dropStages(trx, sql`SELECT id FROM sync_runs WHERE ${stagedWhole ? sql`false` : sql`id = ${runId}::uuid`} OR (district_id = ${district.id} AND status = 'HELD'
        AND created_at < (SELECT created_at FROM sync_runs WHERE id = ${runId}::uuid))`);
    ctx.logger.info({ runId, applyMs, applySteps, clearMs: lap() }, 'plan applied');
    return { status: 'SUCCEEDED', ...plan };
  });
}

/**
 * A delta when the provider offers them, a run has been applied before, and
 * the last full snapshot is recent enough; otherwise (or when asked) a full one.
 */
async function chooseSnapshotKind(ctx: AppContext, districtId: string, connector: Connector, run: SyncRunRow): Promise<{ complete: boolean; since: Date | null }> {
  if (run.full_snapshot || run.dry_run || !connector.supportsDelta) return { complete: true, since: null };
  // A purge of all roster data erased what earlier runs applied: a delta since
  // them would find almost nothing to bring back. Only runs after it count.
  const purge = await ctx.db.selectFrom('audit_log').select((eb) => eb.fn.max('at').as('at'))
    .where('district_id', '=', districtId).where('entity', '=', 'district').where('action', '=', 'purge')
    .where(sql<boolean>`detail->>'scope' = 'all-roster-data'`).executeTakeFirst();
  let applied = appliedSyncRuns(ctx.db).select(['started_at', 'full_snapshot'])
    .where('district_id', '=', districtId).where('id', '!=', run.id).orderBy('started_at', 'desc');
  if (purge?.at) applied = applied.where('started_at', '>', purge.at);
  const last = await applied.executeTakeFirst();
  const lastFull = await applied.where('full_snapshot', '=', true).executeTakeFirst();
  if (!last?.started_at || !lastFull?.started_at) return { complete: true, since: null };
  if (Date.now() - lastFull.started_at.getTime() >= connector.fullSnapshotEveryMs) return { complete: true, since: null };
  // The window starts a little before the last applied run began: changes made
  // while it was fetching are fetched again (harmless), and clock skew is covered.
  return { complete: false, since: new Date(last.started_at.getTime() - DELTA_OVERLAP_MS) };
}

const DELTA_OVERLAP_MS = 5 * 60 * 1000;

/** What fetchIntoStage returns when the snapshot is exactly the mirror's: nothing was staged. */
const UNCHANGED = -1;

/**
 * Fetches the provider's snapshot into the run's stage; returns the batches
 * staged. With the district's mirror, records it holds unchanged are not
 * staged, and the rest of the stage is rebuilt from it in Postgres; a
 * snapshot identical to the mirror stages nothing and returns UNCHANGED. A
 * complete fetch keeps what it made of each tagged page (page-memo.ts): a
 * page met again whose rows the mirror holds is not read record by record.
 */
async function fetchIntoStage(
  ctx: AppContext, connector: Connector, lease: RunLease, opts: { full: boolean; since?: Date; maxRecords: Promise<number> },
  report: (p: Progress) => Promise<void>, district: Pick<District, 'id' | 'settings'>,
  withMirror?: { mirror: Mirror; log: AppContext['logger'] }, keys?: KeyHashLog,
): Promise<number> {
  const { runId } = lease;
  // A half-staged snapshot from a dead attempt cannot be trusted to be whole:
  // start over (fenced: a superseded attempt must not wipe a newer one's pages).
  await resetStage(ctx.db, lease);
  // The page memo and the mirror's hashes load while the first pages are
  // fetched (one waits on Postgres, the other on the provider). The hashes
  // (3 s of Postgres and 100 MB read at a million students) only when a
  // page needs them: a fetch whose every page the memo backs never does.
  let hashes: HashSet | undefined;
  let memo: PageMemo | undefined;
  let mirrorLoading: Promise<void> | undefined;
  const loadMirror = (): Promise<void> | undefined => {
    if (withMirror && !mirrorLoading) {
      const loadStarted = performance.now();
      mirrorLoading = loadMirrorHashes(ctx.db, withMirror.mirror.runId).then((set) => {
        hashes = set;
        withMirror.log.info({ mirror: withMirror.mirror.runId, records: set.size, ms: Math.round(performance.now() - loadStarted) }, 'mirror loaded');
      });
      // Never left unobserved: a failed load fails the next batch (or the end of the fetch).
      mirrorLoading.catch(() => undefined);
    }
    return mirrorLoading;
  };
  // Only a complete snapshot: a delta's pages are not the snapshot's, and
  // would drop its entries. Without a mirror no entry can be used: the memo
  // is only made. A cache: failing to read it only means reading every page.
  const memoLoading = opts.full ? loadPageMemo(ctx.db, lease, district.id, district.settings, withMirror ? { quietMirror: withMirror.mirror.quiet ? withMirror.mirror.runId : undefined } : undefined)
    .then((m) => { memo = m; }, (err: unknown) => { ctx.logger.warn({ runId, err: (err as Error).message }, 'page memo not read; reading every page'); })
    // Nothing backed: every page will need the hashes.
    .then(() => { if (!memo?.hasBacked) loadMirror(); }) : loadMirror();
  memoLoading?.catch(() => undefined);
  const hash = await recordHasher();
  const fetchStarted = performance.now();
  let last = 0;
  let staged = 0;
  let pagesStaged = 0;
  let progress: Progress = { phase: 'fetch', pages: 0, records: 0 };
  const counted = (p: Progress): Progress => (hashes ? { ...p, unchanged: hashes.matched, changed: hashes.checked - hashes.matched, reused: memo?.reused ?? 0 } : p);
  await report(progress);
  const abort = new AbortController();
  // Pages taken from the memo before the mirror's hashes loaded, checked once
  // they have: a wrong entry means fetching again without the memo.
  const settleTaken = () => {
    if (memo && hashes && !memo.settle(hashes)) {
      abort.abort();
      throw new MemoMismatchError('a page taken by the page memo names rows the mirror lacks');
    }
  };
  const coalescer = new BatchCoalescer<RowBatch>(STAGE_BATCH_RECORDS);
  // One batch is COPYed while the connector reads the next: the two wait on
  // different servers. A failed COPY is seen before the next one starts.
  let inflight: Promise<void> = Promise.resolve();
  let stageError: unknown;
  const stage = async (ready: RowBatch) => {
    await inflight;
    if (stageError !== undefined) throw stageError;
    inflight = copyRows(ctx.db, lease, ready).then((ok) => { if (ok) pagesStaged += 1; }, (err: unknown) => { stageError = err; });
  };
  const settled = async () => {
    await inflight;
    if (stageError !== undefined) throw stageError;
  };
  try {
  for await (const batch of connector.fetch({
    full: opts.full,
    since: opts.since,
    signal: abort.signal,
    onPage: (p) => { progress = { phase: 'fetch', ...p }; },
  })) {
    staged += batch.records.length;
    if (staged > await opts.maxRecords) {
      abort.abort();
      throw new Error(`the provider sent more than ${await opts.maxRecords} records, far more than this district holds; stopped before the stage filled (a pagination that never ends?). Nothing was applied`);
    }
    await memoLoading;
    // As soon as the hashes have loaded: a wrong entry costs a fetch restarted early, not a whole one.
    settleTaken();
    const key = memo && batch.origin !== undefined ? memo.key(batch.origin) : undefined;
    if (key === undefined) memo?.noteUntagged();
    // Until the mirror's hashes have loaded, a page the quiet mirror's own
    // fetch took or made is taken at once; anything else waits for them
    // (only the first batches do).
    const taken = key !== undefined && withMirror !== undefined && !hashes && memo!.takeBacked(key);
    if (!taken) await loadMirror();
    if (!taken && (key === undefined || !hashes || !memo!.reuse(key, hashes))) {
      // A staging batch's worth at a time, each while the previous one is
      // COPYed: a Clever page of sections makes 150,000 memberships, whose
      // COPY lines need not all exist at once.
      const made: BigUint64Array[] = [];
      for (let from = 0; from < batch.records.length; from += STAGE_BATCH_RECORDS) {
        const slice = { kind: batch.kind, records: batch.records.slice(from, from + STAGE_BATCH_RECORDS) } as SnapshotBatch;
        const part = hashBatch(slice, hash, hashes, keys);
        made.push(part.hashes);
        for (const rows of [part.rows, part.held]) for (const ready of coalescer.push(rows)) await stage(ready);
      }
      // A batch sharing an origin with one taken from the memo stops the fetch (it starts again without the memo).
      if (key !== undefined) await memo!.remember(key, joined(made)).catch((err: unknown) => { abort.abort(); throw err; });
    }
    if (Date.now() - last > 250) {
      last = Date.now();
      await report(counted(progress));
    }
  }
  for (const ready of coalescer.flush()) await stage(ready);
  } finally {
    // Never leave a COPY running behind a failure (its error is the one that counts, if any).
    await inflight;
  }
  await settled();
  await memoLoading;
  // Every page taken from the memo, and every page the quiet mirror's fetch
  // met taken: the snapshot is the mirror's, without loading its hashes.
  const mirrorsOwn = withMirror !== undefined && memo !== undefined && !mirrorLoading && pagesStaged === 0 && memo.tookEveryBacked();
  if (mirrorsOwn) {
    const unchanged = memo!.takenRows;
    memo!.acceptTaken();
    progress = { ...progress, unchanged, changed: 0, reused: memo!.reused };
  } else {
    await loadMirror();
    settleTaken();
    progress = counted(progress);
  }
  await report(progress);
  ctx.logger.info({ runId, ms: Math.round(performance.now() - fetchStarted), ...progress }, 'snapshot fetched');
  // A connector bug, caught: those batches were read record by record and their entries are not kept.
  if (memo?.shared) ctx.logger.warn({ runId, origins: memo.shared }, 'different batches of one fetch shared an origin; the page memo keeps none of them');
  if (memo) await savePageMemo(ctx.db, lease, district.id, memo);
  if (mirrorsOwn) return UNCHANGED;
  if (!withMirror || !hashes) return pagesStaged;
  if (pagesStaged === 0 && hashes.seenSize === hashes.size) return UNCHANGED;
  const rebuilt = performance.now();
  const copied = await rebuildFromMirror(ctx.db, lease, district.id, withMirror.mirror.runId, hashes.unseen());
  withMirror.log.info({ copied, gone: hashes.size - hashes.seenSize, ms: Math.round(performance.now() - rebuilt) }, 'stage completed from the mirror');
  return pagesStaged + 1;
}

/** Hash arrays end to end, in one. */
function joined(parts: readonly BigUint64Array[]): BigUint64Array {
  if (parts.length === 1) return parts[0]!;
  const out = new BigUint64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Checks what this attempt staged against the ledger and records the stage as whole, for a resumed attempt to trust. */
async function sealStage(ctx: AppContext, lease: RunLease, pagesStaged: number, keysDistinct: boolean | null): Promise<void> {
  // Pages lost or added by anyone else make the stage untrustworthy.
  const inTable = await countStagedPages(ctx.db, lease.runId);
  if (inTable !== pagesStaged) throw new Error(`the stage holds ${inTable} pages where this attempt staged ${pagesStaged}; fetching again on the next run`);
  await updateRun(ctx.db, lease, { phase: 'staged', stagedAt: new Date(), stagedPages: pagesStaged, stagedKeysDistinct: keysDistinct });
}

