import type { PlanStats } from './types.js';

export interface GuardPolicy {
  /** Percent of the district's active students a run may delete without review. */
  deletionThresholdPct: number;
  /** …but never fewer than this many (also the floor for every other kind's loss). */
  deletionThresholdMin: number;
  /** Percent of active teachers, classes, schools or enrollments a run may remove without review. */
  lossThresholdPct: number;
  /** Records a run may quarantine without review (or this percent of the snapshot, if larger). */
  quarantineThresholdMin: number;
  quarantineThresholdPct: number;
}

export const DEFAULT_GUARD_POLICY: GuardPolicy = {
  deletionThresholdPct: 5, deletionThresholdMin: 25, lossThresholdPct: 10, quarantineThresholdMin: 10, quarantineThresholdPct: 1,
};

export type GuardVerdict = { held: false } | { held: true; reason: string; reasons: string[]; threshold?: number };

export function deletionThreshold(activeStudents: number, policy: Pick<GuardPolicy, 'deletionThresholdPct' | 'deletionThresholdMin'>): number {
  return Math.max(Math.ceil((activeStudents * policy.deletionThresholdPct) / 100), policy.deletionThresholdMin);
}

const share = (part: number, whole: number) => `${part} of ${whole} (${whole ? Math.round((part / whole) * 1000) / 10 : 0}%)`;

/**
 * A run is HELD for review, and nothing applied, when its snapshot looks
 * broken or would change too much at once: a complete snapshot missing a whole
 * kind of record (no users, teachers, schools, classes or enrollments while the
 * district has some); any run removing more than the district's share of
 * students, teachers, schools, classes or enrollments (a feed cut after its
 * first page looks exactly like that); records the provider sent twice with
 * different content; or more unreadable records than the district tolerates.
 * Every reason found is listed, not only the first.
 */
export function evaluateGuards(stats: PlanStats, policy: GuardPolicy): GuardVerdict {
  const reasons: string[] = [];
  // A delta may legitimately be empty; its tombstones can still delete en masse.
  if (stats.complete) {
    if (stats.snapshotUsers === 0) reasons.push('snapshot is empty: the provider returned no users');
    else if (stats.snapshotTeachers === 0 && stats.activeTeachersBefore > 0) reasons.push(`partial snapshot: the provider returned no teachers while ${stats.activeTeachersBefore} are active`);
    if (stats.snapshotSchools === 0 && stats.activeSchoolsBefore > 0) reasons.push(`partial snapshot: the provider returned no schools while ${stats.activeSchoolsBefore} are active`);
    if (stats.snapshotClasses === 0 && stats.activeClassesBefore > 0) reasons.push(`partial snapshot: the provider returned no classes while ${stats.activeClassesBefore} are active`);
    if (stats.snapshotEnrollments === 0 && stats.activeEnrollmentsBefore > 0) reasons.push(`partial snapshot: the provider returned no enrollments while ${stats.activeEnrollmentsBefore} are active`);
  }
  const threshold = deletionThreshold(stats.activeStudentsBefore, policy);
  if (stats.studentsDeleted > threshold) {
    reasons.push(`would delete ${stats.studentsDeleted} of ${stats.activeStudentsBefore} active students, above the district's threshold of ${threshold}`);
  }
  const losses: [string, number, number][] = [
    ['teachers', stats.teachersDeleted, stats.activeTeachersBefore],
    ['schools', stats.schoolsRetired, stats.activeSchoolsBefore],
    ['classes', stats.classesRetired, stats.activeClassesBefore],
    ['enrollments', stats.enrollmentsEnded, stats.activeEnrollmentsBefore],
  ];
  for (const [what, lost, before] of losses) {
    // The floor keeps small numbers from holding every run, but never lets a
    // kind lose half of itself unseen (a district of 8 schools losing 7).
    const limit = Math.max(Math.ceil((before * policy.lossThresholdPct) / 100), Math.min(policy.deletionThresholdMin, Math.ceil(before / 2)));
    if (lost > limit) reasons.push(`would remove ${share(lost, before)} active ${what}, above the district's threshold of ${limit}`);
  }
  if (stats.conflicts > 0) reasons.push(`the provider sent ${stats.conflicts} record(s) twice with different content (see guard.quarantined)`);
  const quarantineLimit = Math.max(Math.ceil((stats.snapshotRecords * policy.quarantineThresholdPct) / 100), policy.quarantineThresholdMin);
  if (stats.quarantined - stats.conflicts > quarantineLimit) {
    reasons.push(`${stats.quarantined - stats.conflicts} provider records could not be read, above the district's threshold of ${quarantineLimit} (see guard.quarantined)`);
  }
  if (reasons.length === 0) return { held: false };
  return {
    held: true,
    reasons,
    reason: `${reasons.join('; ')}; nothing was applied: review the plan (rostersync run <id> --plan) and approve the run to apply it`,
    ...(stats.studentsDeleted > threshold ? { threshold } : {}),
  };
}
