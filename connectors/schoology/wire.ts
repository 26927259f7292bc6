import { z } from 'zod';

// Schoology REST API v1 records, as the docs show them on the wire
// (https://developers.schoology.com/api-documentation/rest-api-v1, mirrored as
// Markdown in github.com/KTibow/schoology-docs-md). Schoology is loose with
// JSON types: the same id is a string in one list and a number in the next
// (course `id` 1407691 vs section `course_id` "1407691"; inactive users' `uid`
// is a number), flags are 1 or "1", and `total` is "3" in /users but 2 in
// /users/inactive. Ids and flags are therefore coerced to strings here, and
// only the fields we map are checked. Unknown fields are ignored.

/** An id as Schoology sends it (string or number), kept as a non-empty string. */
const Id = z.union([z.string(), z.number().int()]).transform(String).pipe(z.string().min(1));
/** A 0/1 (or 1-5) flag sent as a number or a numeric string. */
const Flag = z.union([z.number().int(), z.string().regex(/^\d+$/)]).transform(Number);
/** Optional text: absent, null and "" all mean "none". */
const OptText = z.union([z.string(), z.number()]).nullish().transform((v) => (v === null || v === undefined || v === '' ? null : String(v)));

/** `GET /roles`: `faculty` 1 for staff roles, 0 for students and parents (docs: Objects → Role). */
export const SgyRole = z.object({ id: Id, title: z.string(), faculty: Flag, role_type: Flag.optional() });

/** `GET /schools` (Realms → School). */
export const SgySchool = z.object({ id: Id, title: z.string() });

/** `GET /schools/{id}/buildings` (Realms → Building): buildings use the school fields plus `building_code`. */
export const SgyBuilding = z.object({ id: Id, title: z.string(), building_code: OptText });

/** `GET /gradingperiods` (Objects → Grading Periods): dates YYYY-MM-DD. */
export const SgyGradingPeriod = z.object({
  id: Id,
  title: z.string(),
  start: z.string().regex(/^\d{4}-\d{2}-\d{2}/),
  end: z.string().regex(/^\d{4}-\d{2}-\d{2}/),
});

/** `GET /courses` (Realms → Course): a course belongs to one building. */
export const SgyCourse = z.object({ id: Id, title: z.string(), course_code: OptText, building_id: OptText });

/** `GET /courses/{id}/sections` (Realms → Section): current sections only unless include_past=1. */
export const SgySection = z.object({
  id: Id,
  course_id: Id.optional(),
  school_id: OptText,
  course_title: OptText,
  section_title: z.string(),
  section_code: OptText,
  section_school_code: OptText,
  grading_periods: z.array(Id).default([]),
});

/**
 * `GET /sections/{id}/enrollments` (Objects → Enrollment): `admin` 1 is the
 * section's teacher; `status` 1 active, 2 expired (past course), 3 invite
 * pending, 4 request pending, 5 archived (before being fully unenrolled).
 */
export const SgyEnrollment = z.object({ id: Id.optional(), uid: Id, admin: Flag, status: Flag });

/** `GET /users` (Realms → User). `school_uid` is the SIS id; "" when the school set none. */
export const SgyUser = z.object({
  uid: Id,
  school_uid: OptText,
  building_id: OptText,
  school_id: OptText,
  additional_buildings: OptText,
  name_first: z.string(),
  name_first_preferred: OptText,
  name_last: z.string(),
  username: OptText,
  primary_email: OptText,
  role_id: Id,
});

/** `GET /users/inactive`: a short record (uid, name, school_uid), no role. */
export const SgyInactiveUser = z.object({ uid: Id, name: OptText, school_uid: OptText });

/**
 * The list envelope: the records under their collection key, `total` (a
 * string in most lists, a number in some), and `links.next` while more pages
 * remain (start/limit paging; docs: Addendum → Paginate).
 */
export const sgyPage = (key: string) =>
  z.object({
    total: z.union([z.string().regex(/^\d+$/), z.number().int()]).transform(Number).optional(),
    links: z.object({ next: z.string().optional() }).passthrough().optional(),
  }).passthrough().refine((page) => {
    const items = (page as Record<string, unknown>)[key];
    return items === undefined || items === null || Array.isArray(items);
  }, { message: `the page's "${key}" is not a list` });

export type SgyRole = z.infer<typeof SgyRole>;
export type SgyBuilding = z.infer<typeof SgyBuilding>;
export type SgySchool = z.infer<typeof SgySchool>;
export type SgyGradingPeriod = z.infer<typeof SgyGradingPeriod>;
export type SgyCourse = z.infer<typeof SgyCourse>;
export type SgySection = z.infer<typeof SgySection>;
export type SgyEnrollment = z.infer<typeof SgyEnrollment>;
export type SgyUser = z.infer<typeof SgyUser>;
export type SgyInactiveUser = z.infer<typeof SgyInactiveUser>;
