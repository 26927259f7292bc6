import { recordKey, type Enrollment, type QuarantinedRecord, type RecordKind, type RecordKinds, type Role, type User } from '../domain/model.js';
import { enrollmentHasEnded, enrollmentIsCurrent } from '../licenses/rules.js';
import type { SnapshotBatch } from '../../connectors/types.js';
import type { Snapshot } from '../reconcile/types.js';
import { Interner } from './intern.js';

/**
 * Longest sourcedId accepted. Real providers use ids of 24 (Clever) to ~64
 * (OneRoster GUIDs) characters; anything near Postgres' btree row limit (~2.7 kB)
 * would fail the whole run's write, so an over-long id is refused per record.
 */
export const MAX_SOURCED_ID = 255;

// C0 and C1 control characters (NUL included: Postgres refuses it in text).
// Tabs and line breaks in a name become a space rather than vanish.
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g;
const BREAKS = /[\t\n\r]+/g;

/** A provider string fit to store and to print: no control characters, no surrounding blanks. */
export function cleanText(s: string): string {
  return s.replace(BREAKS, ' ').replace(CONTROL, '').trim();
}

const printableId = (s: string) => cleanText(s).slice(0, 64) + (s.length > 64 ? '…' : '');

function cleanRecord<T extends object>(record: T): T {
  for (const [k, v] of Object.entries(record)) {
    if (typeof v === 'string') (record as Record<string, unknown>)[k] = cleanText(v);
    else if (Array.isArray(v)) (record as Record<string, unknown>)[k] = v.map((x) => (typeof x === 'string' ? cleanText(x) : x));
  }
  return record;
}

/** The ids a record names, for the length check. */
function idsOf(kind: RecordKind, record: RecordKinds[RecordKind]): string[] {
  if (kind === 'enrollments') {
    const e = record as Enrollment;
    return [e.userSourcedId, e.classSourcedId];
  }
  return [(record as { sourcedId: string }).sourcedId];
}

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

  add(batch: SnapshotBatch): void {
    if (batch.kind === 'quarantine') {
      // Their ids and reasons echo provider text: cleaned like any record (a NUL would fail the run's jsonb write).
      for (const q of batch.records) {
        this.snapshot.quarantined.push({ ...q, sourcedId: q.sourcedId === null ? null : q.sourcedId.length > MAX_SOURCED_ID ? printableId(q.sourcedId) : cleanText(q.sourcedId), reason: cleanText(q.reason).slice(0, 500) });
      }
      return;
    }
    const { intern } = this;
    const target = this.snapshot[batch.kind] as Map<string, RecordKinds[RecordKind]>;
    for (const raw of batch.records) {
      const tooLong = idsOf(batch.kind, raw).find((id) => id.length > MAX_SOURCED_ID);
      if (tooLong !== undefined) {
        this.quarantine({ kind: batch.kind, sourcedId: printableId(tooLong), reason: `sourcedId is ${tooLong.length} characters long (at most ${MAX_SOURCED_ID})` });
        continue;
      }
      const record = cleanRecord(raw);
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
