import { z } from 'zod';

// Clever Data API v3.0 records, as documented: fields Clever marks as guaranteed
// are required here, the rest optional/nullable. Unknown fields are ignored.
const Id = z.string().min(1);
const OptStr = z.string().nullish();

export const CleverSchool = z.object({
  id: Id,
  district: Id,
  name: z.string(),
  sis_id: OptStr,
  school_number: OptStr,
  low_grade: OptStr,
  high_grade: OptStr,
});

export const CleverTerm = z.object({
  id: Id,
  district: Id,
  name: OptStr,
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
  grade: OptStr,
  subject: OptStr,
  period: OptStr,
  teacher: OptStr,
  teachers: z.array(Id).default([]),
  students: z.array(Id).default([]),
});

const StudentRole = z.object({
  school: OptStr,
  schools: z.array(Id).nullish(),
  grade: OptStr,
  sis_id: OptStr,
  student_number: OptStr,
  credentials: z.object({ district_username: OptStr }).nullish(),
});

const StaffRole = z.object({
  school: OptStr,
  schools: z.array(Id).nullish(),
  sis_id: OptStr,
  credentials: z.object({ district_username: OptStr }).nullish(),
});

export const CleverUser = z.object({
  id: Id,
  district: Id,
  email: OptStr,
  name: z.object({ first: OptStr, middle: OptStr, last: OptStr }),
  roles: z.object({
    student: StudentRole.nullish(),
    teacher: StaffRole.nullish(),
    staff: StaffRole.nullish(),
    district_admin: z.object({}).passthrough().nullish(),
  }),
});

export const cleverPage = <T extends z.ZodType>(record: T) =>
  z.object({
    data: z.array(z.object({ data: record, uri: z.string().optional() })),
    links: z.array(z.object({ rel: z.string(), uri: z.string() })).default([]),
  });

export type CleverSchool = z.infer<typeof CleverSchool>;
export type CleverTerm = z.infer<typeof CleverTerm>;
export type CleverCourse = z.infer<typeof CleverCourse>;
export type CleverSection = z.infer<typeof CleverSection>;
export type CleverUser = z.infer<typeof CleverUser>;
