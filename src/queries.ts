import { sql } from 'kysely';
import type { Db } from '../db/connection.js';
import type { UserStatus } from '../db/schema.js';
import { requireDistrict } from './districts/repository.js';

export interface UserView {
  id: string;
  sourcedId: string;
  role: string;
  status: UserStatus;
  givenName: string;
  familyName: string;
  email: string | null;
  username: string | null;
  /** The district SIS's id (null when the provider has none). */
  sisId: string | null;
  grades: string[];
  /** Active class memberships, as class sourcedIds. */
  classes: string[];
  /** Products the user holds a seat of. */
  products: string[];
  /** Products the user is wait-listed for. */
  waitlisted: string[];
}

export async function listUsers(db: Db, districtId: string, filter: { status?: UserStatus } = {}): Promise<UserView[]> {
  await requireDistrict(db, districtId);
  const rows = await sql<UserView>`
    SELECT u.id, u.sourced_id AS "sourcedId", u.role, u.status, u.given_name AS "givenName", u.family_name AS "familyName",
      u.email, u.username, u.sis_id AS "sisId", u.grades,
      COALESCE((SELECT array_agg(c.sourced_id ORDER BY c.sourced_id) FROM enrollments e JOIN classes c ON c.id = e.class_id
                WHERE e.user_id = u.id AND e.ended_at IS NULL), '{}') AS classes,
      COALESCE((SELECT array_agg(p.product ORDER BY p.product) FROM seat_assignments s JOIN license_pools p ON p.id = s.pool_id
                WHERE s.user_id = u.id AND s.released_at IS NULL), '{}') AS products,
      COALESCE((SELECT array_agg(p.product ORDER BY p.product) FROM waitlist w JOIN license_pools p ON p.id = w.pool_id
                WHERE w.user_id = u.id), '{}') AS waitlisted
    FROM users u
    WHERE u.district_id = ${districtId} ${filter.status ? sql`AND u.status = ${filter.status}` : sql``}
    ORDER BY u.role, u.family_name, u.given_name, u.sourced_id`.execute(db);
  return rows.rows;
}

export interface LicenseView {
  districtId: string;
  product: string;
  seats: number;
  assigned: number;
  waitlisted: number;
  scope: { schools: string[]; grades: string[]; courses: string[] };
}

/** Seats held and students waiting, per pool: of one district, or of all (for metrics). */
export async function poolUsage(db: Db, districtId?: string): Promise<LicenseView[]> {
  const rows = await sql<LicenseView>`
    SELECT p.district_id AS "districtId", p.product, p.seats, p.scope,
      (SELECT count(*)::int FROM seat_assignments s WHERE s.pool_id = p.id AND s.released_at IS NULL) AS assigned,
      (SELECT count(*)::int FROM waitlist w WHERE w.pool_id = p.id) AS waitlisted
    FROM license_pools p ${districtId === undefined ? sql`` : sql`WHERE p.district_id = ${districtId}`}
    ORDER BY p.district_id, p.product`.execute(db);
  return rows.rows;
}

export async function listLicenses(db: Db, districtId: string): Promise<LicenseView[]> {
  await requireDistrict(db, districtId);
  return poolUsage(db, districtId);
}
