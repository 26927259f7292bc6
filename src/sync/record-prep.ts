import type { Enrollment, QuarantinedRecord, RecordKind, RecordKinds } from '../domain/model.js';
import type { SnapshotBatch } from '../../connectors/types.js';

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

/** Any C0 or C1 control character (BREAKS' characters included). */
const ANY_CONTROL = /[\u0000-\u001F\u007F-\u009F]/;

/** A provider string fit to store and to print: no control characters, no surrounding blanks. */
export function cleanText(s: string): string {
  // Almost every value is clean: one test instead of two replaces (every field
  // of every record of a million-student district passes here).
  if (!ANY_CONTROL.test(s)) return s.trim();
  return s.replace(BREAKS, ' ').replace(CONTROL, '').trim();
}

export const printableId = (s: string) => cleanText(s).slice(0, 64) + (s.length > 64 ? '…' : '');

function cleanRecord<T extends object>(record: T): T {
  const r = record as Record<string, unknown>;
  for (const k in r) {
    const v = r[k];
    if (typeof v === 'string') r[k] = cleanText(v);
    else if (Array.isArray(v)) r[k] = v.map((x) => (typeof x === 'string' ? cleanText(x) : x));
  }
  return record;
}

/** The first over-long id a record names, if any (no array per record: every record passes here). */
function tooLongId(kind: RecordKind, record: RecordKinds[RecordKind]): string | undefined {
  if (kind === 'enrollments') {
    const e = record as Enrollment;
    if (e.userSourcedId.length > MAX_SOURCED_ID) return e.userSourcedId;
    return e.classSourcedId.length > MAX_SOURCED_ID ? e.classSourcedId : undefined;
  }
  const id = (record as { sourcedId: string }).sourcedId;
  return id.length > MAX_SOURCED_ID ? id : undefined;
}

/** A quarantine entry's text echoes the provider: cleaned like any record (a NUL would fail the run's writes). */
export function cleanQuarantined(q: QuarantinedRecord): QuarantinedRecord {
  return { ...q, sourcedId: q.sourcedId === null ? null : q.sourcedId.length > MAX_SOURCED_ID ? printableId(q.sourcedId) : cleanText(q.sourcedId), reason: cleanText(q.reason).slice(0, 500) };
}

/**
 * What can be decided about each record on its own, before any other is seen:
 * text cleaned of control characters, and a record naming an over-long id set
 * aside as quarantined. The staging path and the in-memory builder share it,
 * so both see the same records.
 */
export function prepareBatch(batch: SnapshotBatch): { batch: SnapshotBatch; quarantined: QuarantinedRecord[] } {
  if (batch.kind === 'quarantine') return { batch: { kind: 'quarantine', records: batch.records.map(cleanQuarantined) }, quarantined: [] };
  const kept: RecordKinds[RecordKind][] = [];
  const quarantined: QuarantinedRecord[] = [];
  for (const raw of batch.records as RecordKinds[RecordKind][]) {
    const tooLong = tooLongId(batch.kind, raw);
    if (tooLong !== undefined) {
      quarantined.push({ kind: batch.kind, sourcedId: printableId(tooLong), reason: `sourcedId is ${tooLong.length} characters long (at most ${MAX_SOURCED_ID})` });
      continue;
    }
    kept.push(cleanRecord(raw));
  }
  return { batch: { kind: batch.kind, records: kept } as SnapshotBatch, quarantined };
}
