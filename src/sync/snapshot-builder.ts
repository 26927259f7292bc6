import { recordKey, type Enrollment, type QuarantinedRecord, type RecordKind, type RecordKinds, type Role, type User } from '../domain/model.js';
import { enrollmentHasEnded, enrollmentIsCurrent } from '../licenses/rules.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import type { Snapshot } from '../reconcile/types.js';
import { Interner } from './intern.js';
import { prepareBatch } from './record-prep.js';


const ROLE_RANK: Record<Role, number> = { teacher: 3, administrator: 2, student: 1 };
/** Fields that legitimately differ between one person's copies when they hold several roles. */
const PER_ROLE_FIELDS = new Set(['role', 'orgSourcedIds', 'grades', 'sisId', 'username']);

/**
 * Builds a run's snapshot from the pages a connector yields (or that were
 * staged), in order. Records are cleaned of control characters, ids are
 * interned, and a record the provider sends more than once is merged by
 * meaning, never "last copy wins":
 * - enrollments of one (user, class): the student is enrolled if any copy is
 *   current (dropped and re-added shows up as an ended and a current copy);
 * - a user listed once per role (Clever lists a teacher who is also a student
 *   under both): the account takes the role that lets them teach, with that
 *   role's schools and grades;
 * - anything else that differs between copies is a provider error: the
 *   record is quarantined as a conflict, which holds the run for review.
 */
export class SnapshotBuilder {
  private readonly snapshot: Snapshot;
  private readonly intern: (s: string) => string;
  private readonly conflicted = new Set<string>();

  /** @param asOf the run's date (YYYY-MM-DD): which enrollment copy is current. */
  constructor(complete: boolean, private readonly asOf: string, interner = new Interner()) {
    this.intern = interner.intern;
    this.snapshot = {
      complete,
      orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(), enrollments: new Map(),
      quarantined: [],
    };
  }

  add(incoming: SnapshotBatch): void {
    const { batch, quarantined } = prepareBatch(incoming);
    for (const q of quarantined) this.quarantine(q);
    if (batch.kind === 'quarantine') {
      for (const q of batch.records) this.snapshot.quarantined.push(q);
      return;
    }
    const { intern } = this;
    const target = this.snapshot[batch.kind] as Map<string, RecordKinds[RecordKind]>;
    for (const record of batch.records as RecordKinds[RecordKind][]) {
      if (batch.kind === 'enrollments') {
        const e = record as Enrollment;
        e.userSourcedId = intern(e.userSourcedId);
        e.classSourcedId = intern(e.classSourcedId);
      } else {
        const r = record as { sourcedId: string };
        r.sourcedId = intern(r.sourcedId);
      }
      const key = recordKey(batch.kind, record as never);
      if (this.conflicted.has(`${batch.kind}:${key}`)) continue;
      const earlier = target.get(key);
      if (!earlier) {
        target.set(key, record);
        continue;
      }
      const merged = this.merge(batch.kind, earlier, record);
      if (merged) target.set(key, merged);
      else {
        target.delete(key);
        this.conflicted.add(`${batch.kind}:${key}`);
        const sourcedId = batch.kind === 'enrollments' ? `${(record as Enrollment).classSourcedId}/${(record as Enrollment).userSourcedId}` : key;
        this.quarantine({ kind: batch.kind, sourcedId, conflict: true, reason: `the provider sent ${batch.kind} ${sourcedId} more than once with different content`, ...refsOf(batch.kind, record) });
      }
    }
  }

  build(): Snapshot {
    return this.snapshot;
  }

  private quarantine(q: QuarantinedRecord): void {
    this.snapshot.quarantined.push(q);
  }

  /** The one record two copies stand for, or null when they contradict each other. */
  private merge(kind: RecordKind, a: RecordKinds[RecordKind], b: RecordKinds[RecordKind]): RecordKinds[RecordKind] | null {
    if (sameContent(a, b)) return a;
    if (kind === 'enrollments') return pickEnrollment(a as Enrollment, b as Enrollment, this.asOf);
    if (kind === 'users') {
      const ua = a as User;
      const ub = b as User;
      if (ua.role === ub.role) return null;
      for (const [k, v] of Object.entries(ua)) {
        if (!PER_ROLE_FIELDS.has(k) && !sameValue(v, (ub as unknown as Record<string, unknown>)[k])) return null;
      }
      return ROLE_RANK[ua.role] >= ROLE_RANK[ub.role] ? ua : ub;
    }
    return null;
  }
}

function refsOf(kind: RecordKind, record: RecordKinds[RecordKind]): Pick<QuarantinedRecord, 'refs'> {
  if (kind === 'enrollments') return { refs: { users: [(record as Enrollment).userSourcedId], classes: [(record as Enrollment).classSourcedId] } };
  if (kind === 'users') return { refs: { users: [(record as User).sourcedId] } };
  if (kind === 'classes') return { refs: { classes: [(record as { sourcedId: string }).sourcedId] } };
  return {};
}

const sameValue = (a: unknown, b: unknown) => (Array.isArray(a) && Array.isArray(b) ? a.length === b.length && a.every((x, i) => x === b[i]) : a === b);
function sameContent(a: object, b: object): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * Of two copies of one membership, the one that counts: a current copy over
 * any other; then one not yet begun over one ended; then the later end (open
 * ended last of all). Ties break on content, so arrival order never matters.
 */
function pickEnrollment(a: Enrollment, b: Enrollment, asOf: string): Enrollment {
  const rank = (e: Enrollment) => (enrollmentIsCurrent(e, asOf) ? 2 : enrollmentHasEnded(e, asOf) ? 0 : 1);
  const end = (e: Enrollment) => e.endDate ?? '9999-12-31';
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra > rb ? a : b;
  if (end(a) !== end(b)) return end(a) > end(b) ? a : b;
  // Same standing and end: the teaching role wins, then a stable order.
  if (a.role !== b.role) return ROLE_RANK[a.role] >= ROLE_RANK[b.role] ? a : b;
  return JSON.stringify(a) <= JSON.stringify(b) ? a : b;
}
