import { z } from 'zod';

// Clever Data API v3.0 records (https://dev.clever.com/docs/schools, /docs/terms,
// /docs/courses, /docs/sections, /docs/users), read one by one: the page's
// envelope is checked first, then each record, so one unreadable record is
// quarantined instead of failing the page. Fields Clever marks as guaranteed are
// required, the rest optional; an empty string is a missing value (districts'
// SIS exports leave fields blank rather than absent). Unknown fields are ignored.

const blankToNull = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? null : v);
const Id = z.string().trim().min(1, 'is empty');
const OptStr = z.preprocess(blankToNull, z.string().nullish());
/** Clever grades are strings ("Kindergarten", "1" … "13", "PostGraduate"); some exports send numbers. */
const Grade = z.preprocess((v) => (typeof v === 'number' ? String(v) : blankToNull(v)), z.string().nullish());
/** A list of ids; null is an empty list. */
const IdList = z.preprocess((v) => (v === null || v === undefined ? [] : v), z.array(Id));
const NullableIdList = z.preprocess((v) => (v === null ? undefined : v), z.array(Id).optional());

export const CleverSchool = z.object({
  id: Id,
  district: Id,
  name: z.string(),
  sis_id: OptStr,
  school_number: OptStr,
  low_grade: Grade,
  high_grade: Grade,
});

export const CleverTerm = z.object({
  id: Id,
  district: Id,
  name: OptStr,
  // Documented as dates; some districts' terms arrive as date-times.
  start_date: OptStr,
  end_date: OptStr,
});

export const CleverCourse = z.object({
  id: Id,
  district: Id,
  name: OptStr,
  number: OptStr,
});

export const CleverSection = z.object({
  id: Id,
  district: Id,
  school: Id,
  name: z.string(),
  sis_id: OptStr,
  section_number: OptStr,
  course: OptStr,
  term_id: OptStr,
  grade: Grade,
  subject: OptStr,
  period: OptStr,
  teacher: OptStr,
  teachers: IdList,
  students: IdList,
});

const Credentials = z.object({ district_username: OptStr }).nullish();

const StudentRole = z.object({
  school: OptStr,
  schools: NullableIdList,
  grade: Grade,
  sis_id: OptStr,
  student_number: OptStr,
  credentials: Credentials,
});

const TeacherRole = z.object({
  school: OptStr,
  schools: NullableIdList,
  sis_id: OptStr,
  teacher_number: OptStr,
  credentials: Credentials,
});

/** https://dev.clever.com/docs/users "Schema: Users (District Admin)": no schools; the district is its scope. */
const DistrictAdminRole = z.object({
  sis_id: OptStr,
  credentials: Credentials,
}).passthrough();

export const CleverUser = z.object({
  id: Id,
  district: Id,
  email: OptStr,
  name: z.object({ first: OptStr, middle: OptStr, last: OptStr }),
  roles: z.object({
    student: StudentRole.nullish(),
    teacher: TeacherRole.nullish(),
    staff: z.object({}).passthrough().nullish(),
    district_admin: DistrictAdminRole.nullish(),
  }),
});

/** The page's envelope only: records are read one by one. */
export const cleverPageEnvelope = z.object({
  data: z.array(z.object({ data: z.unknown(), uri: z.string().optional() })),
  links: z.array(z.object({ rel: z.string(), uri: z.string() })).nullish().transform((l) => l ?? []),
});

export type CleverSchool = z.infer<typeof CleverSchool>;
export type CleverTerm = z.infer<typeof CleverTerm>;
export type CleverCourse = z.infer<typeof CleverCourse>;
export type CleverSection = z.infer<typeof CleverSection>;
export type CleverUser = z.infer<typeof CleverUser>;
