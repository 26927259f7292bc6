import { z } from 'zod';

// OneRoster 1.1 and 1.2 rostering records (REST/JSON binding), as the spec
// writes them. Fields the binding marks required are required here; 1.1 and
// 1.2 differences (role vs roles[], enabledUser as string vs boolean) are both
// accepted. Unknown fields are ignored.

const Ref = z.object({ sourcedId: z.string().min(1), type: z.string().optional(), href: z.string().optional() });
/** 'active' | 'tobedeleted' (1.0 servers may still send 'inactive'). */
const Status = z.string().default('active');
const OptStr = z.string().nullish();
const Grades = z.array(z.string()).nullish();

export const OrOrg = z.object({ sourcedId: z.string().min(1), status: Status, name: z.string(), type: z.string(), identifier: OptStr });
export const OrAcademicSession = z.object({ sourcedId: z.string().min(1), status: Status, title: z.string(), startDate: OptStr, endDate: OptStr, type: OptStr });
export const OrCourse = z.object({ sourcedId: z.string().min(1), status: Status, title: z.string(), courseCode: OptStr });
export const OrClass = z.object({
  sourcedId: z.string().min(1), status: Status, title: z.string(), classCode: OptStr,
  course: Ref.nullish(), school: Ref, terms: z.array(Ref).nullish(), grades: Grades,
});
export const OrUser = z.object({
  sourcedId: z.string().min(1), status: Status, username: OptStr,
  enabledUser: z.union([z.boolean(), z.enum(['true', 'false'])]).default(true),
  givenName: z.string(), familyName: z.string(), email: OptStr, identifier: OptStr,
  role: OptStr,
  roles: z.array(z.object({ roleType: z.string(), role: z.string(), org: Ref.nullish() })).nullish(),
  orgs: z.array(Ref).nullish(),
  grades: Grades,
});
export const OrEnrollment = z.object({
  sourcedId: z.string().min(1), status: Status, user: Ref, class: Ref, school: Ref.nullish(), role: z.string(),
  beginDate: OptStr, endDate: OptStr,
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

export type OrOrg = z.infer<typeof OrOrg>;
export type OrAcademicSession = z.infer<typeof OrAcademicSession>;
export type OrCourse = z.infer<typeof OrCourse>;
export type OrClass = z.infer<typeof OrClass>;
export type OrUser = z.infer<typeof OrUser>;
export type OrEnrollment = z.infer<typeof OrEnrollment>;
