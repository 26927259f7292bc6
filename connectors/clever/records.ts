import type { z } from 'zod';
import type { QuarantinedRecord, RecordKind } from '../../src/domain/model.js';
import { readRecords, readableId } from '../http/records.js';

/**
 * Reads a page's Clever records one by one (connectors/http/records.ts). A
 * quarantined section freezes its class and the people it lists where those
 * could be read: none of them is taken as having left.
 */
export function readCleverRecords<S extends z.ZodType>(resource: string, kind: RecordKind, schema: S, raws: unknown[]): { ok: z.infer<S>[]; quarantined: QuarantinedRecord[] } {
  return readRecords(raws, schema, (o, why) => {
    const id = readableId(o.id);
    const people = kind === 'classes'
      ? [...(Array.isArray(o.students) ? o.students : []), ...(Array.isArray(o.teachers) ? o.teachers : [])].map(readableId).filter((x): x is string => x !== null)
      : [];
    const refs = kind === 'users' && id ? { users: [id] }
      : kind === 'classes' && id ? { classes: [id], ...(people.length ? { users: people } : {}) }
      : undefined;
    return { kind, sourcedId: id, reason: `${resource} record ${id ?? '(no id)'}: ${why}`, ...(refs ? { refs } : {}) };
  });
}
