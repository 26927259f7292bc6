import type { z } from 'zod';
import type { QuarantinedRecord } from '../../src/domain/model.js';

// Every connector reads a page's records one by one: one bad record is
// quarantined (kept as it was, counted, named in the run's detail), never
// allowed to fail the district's whole run.

/** An id as far as it can be read from a raw record: a non-blank string or number, trimmed and cut short. */
export function readableId(v: unknown): string | null {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, 255) : null;
}

/** The first problems of a failed parse, naming the fields. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(record)'} ${i.message}`).join('; ');
}

/**
 * Splits raw records into those that fit the schema and quarantine entries for
 * the rest; `quarantine` says what of a bad record could still be read (its
 * id, the users and classes it names) given why it failed.
 */
export function readRecords<S extends z.ZodType>(
  raws: readonly unknown[],
  schema: S,
  quarantine: (raw: Record<string, unknown>, why: string) => QuarantinedRecord,
): { ok: z.infer<S>[]; quarantined: QuarantinedRecord[] } {
  const ok: z.infer<S>[] = [];
  const quarantined: QuarantinedRecord[] = [];
  for (const raw of raws) {
    const parsed = schema.safeParse(raw);
    if (parsed.success) ok.push(parsed.data);
    else quarantined.push(quarantine(raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>) : {}, describeIssues(parsed.error)));
  }
  return { ok, quarantined };
}
