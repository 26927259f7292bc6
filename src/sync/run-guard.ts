import { sql, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { GuardVerdict } from '../reconcile/guards.js';
import type { PlanStats } from '../reconcile/types.js';

/** Quarantined records listed by name in a run's detail. */
const QUARANTINE_DETAIL = 200;

/**
 * What a run records under `guard`: the numbers the guards weighed, their
 * verdict, and which records were left as they were and why (the first ones;
 * the count is in counts.recordsQuarantined).
 */
export async function guardRecord(trx: Transaction<Database>, stats: PlanStats, verdict: GuardVerdict, quarantine: RawBuilder<unknown>): Promise<Record<string, unknown>> {
  const quarantined = stats.quarantined === 0 ? [] : (await sql<{ kind: string; sourced_id: string | null; reason: string; conflict: boolean }>`
    SELECT kind, sourced_id, reason, conflict FROM ${quarantine} ORDER BY seq, sourced_id LIMIT ${QUARANTINE_DETAIL}`.execute(trx)).rows;
  return {
    ...stats,
    ...(verdict.held ? { held: true, reason: verdict.reason, reasons: verdict.reasons, threshold: verdict.threshold } : { held: false }),
    ...(quarantined.length ? { quarantined: quarantined.map((q) => ({ kind: q.kind, sourcedId: q.sourced_id, reason: q.reason, ...(q.conflict ? { conflict: true } : {}) })) } : {}),
  };
}
