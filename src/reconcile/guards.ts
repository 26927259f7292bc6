import type { PlanStats } from './types.js';

export interface GuardPolicy {
  /** Percent of the district's active students a run may delete without review. */
  deletionThresholdPct: number;
  /** …but never fewer than this many. */
  deletionThresholdMin: number;
}

export const DEFAULT_GUARD_POLICY: GuardPolicy = { deletionThresholdPct: 5, deletionThresholdMin: 25 };

export type GuardVerdict = { held: false } | { held: true; reason: string; threshold?: number };

export function deletionThreshold(activeStudents: number, policy: GuardPolicy): number {
  return Math.max(Math.ceil((activeStudents * policy.deletionThresholdPct) / 100), policy.deletionThresholdMin);
}

/**
 * A complete snapshot that looks broken (empty, missing a whole kind of record),
 * or any run that would delete more students than the district's threshold, is
 * not applied: the run is HELD until someone approves it.
 */
export function evaluateGuards(stats: PlanStats, policy: GuardPolicy): GuardVerdict {
  // A delta may legitimately be empty; its tombstones can still delete en masse.
  if (stats.complete && stats.snapshotUsers === 0) {
    return { held: true, reason: 'snapshot is empty: the provider returned no users; nothing was applied' };
  }
  if (stats.complete && stats.snapshotClasses === 0 && stats.activeClassesBefore > 0) {
    return { held: true, reason: `partial snapshot: the provider returned no classes while ${stats.activeClassesBefore} are active; nothing was applied` };
  }
  if (stats.complete && stats.snapshotEnrollments === 0 && stats.activeEnrollmentsBefore > 0) {
    return { held: true, reason: `partial snapshot: the provider returned no enrollments while ${stats.activeEnrollmentsBefore} are active; nothing was applied` };
  }
  const threshold = deletionThreshold(stats.activeStudentsBefore, policy);
  if (stats.studentsDeleted > threshold) {
    return {
      held: true,
      threshold,
      reason: `would delete ${stats.studentsDeleted} of ${stats.activeStudentsBefore} active students, above the district's threshold of ${threshold}; approve the run to apply it`,
    };
  }
  return { held: false };
}
