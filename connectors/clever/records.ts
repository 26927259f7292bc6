import type { z } from 'zod';
import type { QuarantinedRecord, RecordKind } from '../../src/domain/model.js';

/** The first problems of a failed parse, naming the fields. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(record)'} ${i.message}`).join('; ');
}

const readableId = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, 255) : null);

/**
 * Reads a page's Clever records one by one: those that fit the schema, and a
 * quarantine entry (id, and for a section the class it is, and why) for each
 * that does not, so one bad record never stops the district's run. A
 * quarantined section freezes its class and the people it lists where those
 * could be read: none of them is taken as having left.
 */
export function readCleverRecords<S extends z.ZodType>(resource: string, kind: RecordKind, schema: S, raws: unknown[]): { ok: z.infer<S>[]; quarantined: QuarantinedRecord[] } {
  const ok: z.infer<S>[] = [];
  const quarantined: QuarantinedRecord[] = [];
  for (const raw of raws) {
    const parsed = schema.safeParse(raw);
    if (parsed.success) {
      ok.push(parsed.data);
      continue;
    }
    const o = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
    const id = readableId(o.id);
    const people = kind === 'classes'
      ? [...(Array.isArray(o.students) ? o.students : []), ...(Array.isArray(o.teachers) ? o.teachers : [])].map(readableId).filter((x): x is string => x !== null)
      : [];
    const refs = kind === 'users' && id ? { users: [id] }
      : kind === 'classes' && id ? { classes: [id], ...(people.length ? { users: people } : {}) }
      : undefined;
    quarantined.push({ kind, sourcedId: id, reason: `${resource} record ${id ?? '(no id)'}: ${describeIssues(parsed.error)}`, ...(refs ? { refs } : {}) });
  }
  return { ok, quarantined };
}
