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

/** A provider string fit to store and to print: no control characters, no surrounding blanks. */
export function cleanText(s: string): string {
  return s.replace(BREAKS, ' ').replace(CONTROL, '').trim();
}

export const printableId = (s: string) => cleanText(s).slice(0, 64) + (s.length > 64 ? '…' : '');

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
    const tooLong = idsOf(batch.kind, raw).find((id) => id.length > MAX_SOURCED_ID);
    if (tooLong !== undefined) {
      quarantined.push({ kind: batch.kind, sourcedId: printableId(tooLong), reason: `sourcedId is ${tooLong.length} characters long (at most ${MAX_SOURCED_ID})` });
      continue;
    }
    kept.push(cleanRecord(raw));
  }
  return { batch: { kind: batch.kind, records: kept } as SnapshotBatch, quarantined };
}
