import { z } from 'zod';
import { readRecords as readRecordsOneByOne, readableId } from '../http/records.js';
import type { QuarantinedRecord, RecordKind } from '../../src/domain/model.js';

// OneRoster 1.1 and 1.2 rostering records (REST/JSON binding), read the way
// real tenants write them. Each record is parsed on its own (a page's envelope
// first, then record by record), so one unreadable record is quarantined and
// never fails the page. Fields the binding marks required are required here;
// values real tenants send outside the spec's schema are read for what they mean:
// - 1.1 writes enabledUser as the strings "true"/"false" (1.1 User), 1.2 as a
//   boolean; SIS exports also send "TRUE", "True", "1", "0".
// - grades is a list in both versions; some servers send one string or a comma list.
// - status is required ('active' | 'tobedeleted'); a missing or null status is read
//   as active, and 1.0's 'inactive' as 'tobedeleted' ("In v1.1 the enumeration value
//   of 'inactive' was removed and so for backwards compatibility all such marked
//   objects should be interpreted as 'tobedeleted'": OneRoster 1.2 Rostering
//   Service, BaseDType.status). Any other value is not a deletion: the record is
//   quarantined.
// - An empty string is a missing value.
// Unknown fields are ignored.

/** '' and blanks are missing values, like null. */
const blankToNull = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : v);
const OptStr = z.preprocess(blankToNull, z.string().nullish());
const Id = z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().trim().min(1, 'is empty'));
const Ref = z.object({ sourcedId: Id, type: OptStr, href: OptStr });

export const Status = z.preprocess(
  (v) => (v === null || v === undefined || (typeof v === 'string' && v.trim() === '') ? 'active' : typeof v === 'string' ? v.trim().toLowerCase() : v),
  z.string().transform((s, ctx) => {
    if (s === 'active') return 'active' as const;
    if (s === 'tobedeleted' || s === 'inactive') return 'tobedeleted' as const;
    ctx.addIssue({ code: 'custom', message: `unknown status '${s.slice(0, 40)}' (not taken as a deletion)` });
    return z.NEVER;
  }),
);

const TRUE = new Set(['true', '1', 'yes', 't', 'y']);
const FALSE = new Set(['false', '0', 'no', 'f', 'n']);
/** enabledUser: absent means enabled (1.1 and 1.2 both default a listed user to enabled). */
export const EnabledUser = z.unknown().optional().transform((v, ctx) => {
  if (v === null || v === undefined || v === '') return true;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && (v === 0 || v === 1)) return v === 1;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
  }
  ctx.addIssue({ code: 'custom', message: `cannot read enabledUser ${JSON.stringify(v).slice(0, 40)} as true or false` });
  return z.NEVER;
});

/** grades: a list, one string, or a comma/semicolon list; blanks dropped, order kept. */
export const Grades = z.unknown().optional().transform((v, ctx) => {
  if (v === null || v === undefined) return [] as string[];
  const parts = typeof v === 'string' || typeof v === 'number' ? [String(v)] : Array.isArray(v) ? v : null;
  if (!parts || parts.some((p) => typeof p !== 'string' && typeof p !== 'number')) {
    ctx.addIssue({ code: 'custom', message: 'is not a list of grades' });
    return z.NEVER;
  }
  const out = parts.flatMap((p) => String(p).split(/[,;]/)).map((g) => g.trim()).filter((g) => g !== '');
  return [...new Set(out)];
});

/**
 * A date or date-time (ISO 8601). Kept as written; map.ts reads the calendar
 * date from it. A value that is no date at all fails the record.
 */
const DateLike = z.preprocess(blankToNull, z.string().regex(/^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/, 'is not an ISO 8601 date').nullish());

export const OrOrg = z.object({ sourcedId: Id, status: Status, name: z.preprocess(blankToNull, z.string().nullish()), type: z.string(), identifier: OptStr, parent: Ref.nullish() });
export const OrAcademicSession = z.object({ sourcedId: Id, status: Status, title: z.string(), startDate: DateLike, endDate: DateLike, type: OptStr });
export const OrCourse = z.object({ sourcedId: Id, status: Status, title: z.string(), courseCode: OptStr });
export const OrClass = z.object({
  sourcedId: Id, status: Status, title: z.string(), classCode: OptStr,
  course: Ref.nullish(), school: Ref, terms: z.array(Ref).nullish(), grades: Grades,
});
/** OneRoster 1.2 RoleDType: one role of a user at one org, with its own dates. */
export const OrRole = z.object({ roleType: OptStr, role: z.string(), org: Ref.nullish(), beginDate: DateLike, endDate: DateLike });
export const OrUser = z.object({
  sourcedId: Id, status: Status, username: OptStr,
  enabledUser: EnabledUser,
  givenName: z.string(), familyName: z.string(), email: OptStr, identifier: OptStr,
  role: OptStr,
  roles: z.array(OrRole).nullish(),
  orgs: z.array(Ref).nullish(),
  grades: Grades,
});
export const OrEnrollment = z.object({
  sourcedId: Id, status: Status, user: Ref, class: Ref, school: Ref.nullish(), role: z.string(),
  beginDate: DateLike, endDate: DateLike,
});

export const RESOURCES = {
  orgs: OrOrg,
  academicSessions: OrAcademicSession,
  courses: OrCourse,
  classes: OrClass,
  users: OrUser,
  enrollments: OrEnrollment,
} as const;
export type Resource = keyof typeof RESOURCES;

/** A page's envelope only: `{ "<resource>": [ … ] }`. Records are checked one by one. */
export const pageEnvelope = (resource: Resource) => z.object({ [resource]: z.array(z.unknown()) });

export type OrOrg = z.infer<typeof OrOrg>;
export type OrAcademicSession = z.infer<typeof OrAcademicSession>;
export type OrCourse = z.infer<typeof OrCourse>;
export type OrClass = z.infer<typeof OrClass>;
export type OrRole = z.infer<typeof OrRole>;
export type OrUser = z.infer<typeof OrUser>;
export type OrEnrollment = z.infer<typeof OrEnrollment>;

const KIND: Record<Resource, RecordKind> = { orgs: 'orgs', academicSessions: 'academicSessions', courses: 'courses', classes: 'classes', users: 'users', enrollments: 'enrollments' };

/**
 * Reads a page's OneRoster records one by one (connectors/http/records.ts); a
 * bad enrollment freezes the user and class it names where those could be read.
 */
export function readRecords<S extends z.ZodType>(resource: Resource, schema: S, raws: unknown[]): { ok: z.infer<S>[]; quarantined: QuarantinedRecord[] } {
  const kind = KIND[resource];
  const ref = (v: unknown) => (v !== null && typeof v === 'object' ? readableId((v as Record<string, unknown>).sourcedId) : null);
  return readRecordsOneByOne(raws, schema, (o, why) => {
    const sourcedId = readableId(o.sourcedId);
    const user = ref(o.user);
    const cls = ref(o.class);
    const refs = kind === 'users' && sourcedId ? { users: [sourcedId] }
      : kind === 'classes' && sourcedId ? { classes: [sourcedId] }
      : kind === 'enrollments' ? { ...(user ? { users: [user] } : {}), ...(cls ? { classes: [cls] } : {}) }
      : undefined;
    return { kind, sourcedId, reason: `${resource} record ${sourcedId ?? '(no sourcedId)'}: ${why}`, ...(refs ? { refs } : {}) };
  });
}
