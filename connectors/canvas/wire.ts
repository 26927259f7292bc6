import { z } from 'zod';

// Canvas REST API v1 records, as instructure/canvas-lms renders them
// (lib/api/v1/{account,course,section,enrollment,user}.rb, app/controllers/
// {accounts,courses,sections,enrollments_api,users,account_reports}_controller.rb).
// Only the fields the roster needs; unknown fields are ignored.
//
// Ids: Canvas ids exceed 2^31 on hosted (sharded) instances, e.g. 170000000012345,
// and global ids can pass 2^53. We ask for `Accept: application/json+canvas-string-ids`
// so Canvas sends them as strings; a number is accepted only while it is still
// exact (a safe integer), and always kept as a decimal string, never a number.
export const CanvasId = z.union([
  z.string().regex(/^\d{1,30}$/, 'a Canvas id is a decimal string'),
  z.number().int().nonnegative().refine(Number.isSafeInteger, 'a Canvas id beyond 2^53 arrived as a JSON number and lost its exact value'),
]).transform((v) => String(v));

const OptId = CanvasId.nullish().transform((v) => v ?? null);
const OptStr = z.string().nullish().transform((v) => v ?? null);

/** GET /accounts/:id and /accounts/:id/sub_accounts?recursive=true (lib/api/v1/account.rb). */
export const CanvasAccount = z.object({
  id: CanvasId,
  name: z.string(),
  parent_account_id: OptId,
  root_account_id: OptId,
  sis_account_id: OptStr,
  workflow_state: z.string().optional(),
});

/** The `term` include on a course (include[]=term) and the enrollment_terms envelope's items. */
export const CanvasTerm = z.object({
  id: CanvasId,
  name: OptStr,
  start_at: OptStr,
  end_at: OptStr,
});

/**
 * GET /accounts/:id/courses (accounts_controller#courses_api). workflow_state is
 * rendered as 'unpublished' (created/claimed), 'available', 'completed' or 'deleted'.
 */
export const CanvasCourse = z.object({
  id: CanvasId,
  name: z.string().nullish(),
  course_code: OptStr,
  account_id: CanvasId,
  enrollment_term_id: OptId,
  workflow_state: z.string(),
  start_at: OptStr,
  end_at: OptStr,
  restrict_enrollments_to_course_dates: z.boolean().nullish(),
  term: CanvasTerm.nullish(),
});

/** GET /courses/:id/sections (lib/api/v1/section.rb). */
export const CanvasSection = z.object({
  id: CanvasId,
  name: z.string().nullish(),
  course_id: CanvasId,
  sis_section_id: OptStr,
  start_at: OptStr,
  end_at: OptStr,
  restrict_enrollments_to_section_dates: z.boolean().nullish(),
});

/**
 * GET /courses/:id/enrollments?state[]=… (enrollments_api_controller#index).
 * `type` is the base type (StudentEnrollment, …); `role` may be a custom role's name.
 */
export const CanvasEnrollment = z.object({
  id: CanvasId,
  user_id: CanvasId,
  course_id: CanvasId,
  course_section_id: CanvasId,
  type: z.string(),
  enrollment_state: z.string(),
});

/** GET /accounts/:id/users?include[]=email (users_controller#api_index, lib/api/v1/user.rb). */
export const CanvasUser = z.object({
  id: CanvasId,
  name: z.string().nullish(),
  sortable_name: z.string().nullish(),
  short_name: z.string().nullish(),
  sis_user_id: OptStr,
  login_id: OptStr,
  email: OptStr,
});

/** A page of a plain-array endpoint: the array is checked, each record separately. */
export const ArrayPage = z.array(z.unknown());
/** GET /accounts/:id/terms wraps its array (terms_api_controller#index). */
export const TermsPage = z.object({ enrollment_terms: z.array(z.unknown()) });

/**
 * The account report object (account_reports_controller, lib/api/v1/account_report.rb):
 * status created → running → compiling → complete, or error / aborted / deleted.
 */
export const CanvasReport = z.object({
  id: CanvasId,
  status: z.string(),
  progress: z.number().nullish(),
  file_url: OptStr,
  attachment: z.object({ url: z.string(), filename: z.string().nullish() }).nullish(),
});

export type CanvasAccount = z.infer<typeof CanvasAccount>;
export type CanvasTerm = z.infer<typeof CanvasTerm>;
export type CanvasCourse = z.infer<typeof CanvasCourse>;
export type CanvasSection = z.infer<typeof CanvasSection>;
export type CanvasEnrollment = z.infer<typeof CanvasEnrollment>;
export type CanvasUser = z.infer<typeof CanvasUser>;
export type CanvasReport = z.infer<typeof CanvasReport>;
