import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import { enrollmentKey, type Role } from '../domain/model.js';
import type { Pool, PoolScope } from '../licenses/rules.js';
import type { LocalState } from '../reconcile/types.js';
import { Interner } from './intern.js';

/** Active enrollments read per query: keeps each result set bounded for large districts. */
const ENROLLMENT_PAGE = 50000;

const active = 'active' as const;

/** Reads everything the reconciler needs to know about a district, in canonical form. */
export async function loadLocalState(db: Db, districtId: string, interner = new Interner()): Promise<LocalState> {
  const { intern } = interner;
  const state: LocalState = {
    orgs: new Map(), academicSessions: new Map(), courses: new Map(), classes: new Map(), users: new Map(),
    enrollments: new Map(), pools: [], seats: new Map(), waitlist: new Map(),
  };

  for (const s of await db.selectFrom('schools').selectAll().where('district_id', '=', districtId).execute()) {
    state.orgs.set(s.sourced_id, { retired: s.status === 'RETIRED', record: { sourcedId: s.sourced_id, name: s.name, type: 'school', identifier: s.identifier, status: active } });
  }
  for (const t of await db.selectFrom('terms').selectAll().where('district_id', '=', districtId).execute()) {
    state.academicSessions.set(t.sourced_id, { retired: t.status === 'RETIRED', record: { sourcedId: t.sourced_id, title: t.title, startDate: t.start_date, endDate: t.end_date, status: active } });
  }
  for (const c of await db.selectFrom('courses').selectAll().where('district_id', '=', districtId).execute()) {
    state.courses.set(c.sourced_id, { retired: c.status === 'RETIRED', record: { sourcedId: c.sourced_id, title: c.title, courseCode: c.course_code, status: active } });
  }
  for (const c of await db.selectFrom('classes').selectAll().where('district_id', '=', districtId).execute()) {
    state.classes.set(intern(c.sourced_id), {
      id: c.id,
      retired: c.status === 'RETIRED',
      record: {
        sourcedId: intern(c.sourced_id), title: c.title, classCode: c.class_code, courseSourcedId: c.course_sourced_id,
        schoolSourcedId: c.school_sourced_id, termSourcedIds: c.term_sourced_ids, grades: c.grades, status: active,
      },
    });
  }
  const users = await db.selectFrom('users')
    .select(['id', 'sourced_id', 'role', 'status', 'given_name', 'family_name', 'email', 'username', 'sis_id', 'grades', 'school_sourced_ids'])
    .where('district_id', '=', districtId).execute();
  for (const u of users) {
    state.users.set(intern(u.sourced_id), {
      id: u.id,
      deleted: u.status === 'DELETED',
      record: {
        sourcedId: intern(u.sourced_id), role: u.role as Role, givenName: u.given_name, familyName: u.family_name,
        email: u.email, username: u.username, sisId: u.sis_id, grades: u.grades, orgSourcedIds: u.school_sourced_ids, enabled: true, status: active,
      },
    });
  }

  // Users and classes are already in memory with their ids, so active
  // enrollments are read without joins, a keyset page at a time.
  const userSid = new Map(users.map((u) => [u.id, intern(u.sourced_id)]));
  const classSid = new Map<string, string>();
  for (const [sid, c] of state.classes) if (c.id) classSid.set(c.id, sid);
  let after = '0';
  for (;;) {
    const page = await db.selectFrom('enrollments').select(['id', 'user_id', 'class_id', 'role', 'begin_date', 'end_date'])
      .where('district_id', '=', districtId).where('ended_at', 'is', null).where('id', '>', after)
      .orderBy('id').limit(ENROLLMENT_PAGE).execute();
    for (const e of page) {
      const userSourcedId = userSid.get(e.user_id);
      const classSourcedId = classSid.get(e.class_id);
      if (!userSourcedId || !classSourcedId) throw new Error(`enrollment ${e.id} points outside district ${districtId}`);
      state.enrollments.set(enrollmentKey(userSourcedId, classSourcedId), {
        userSourcedId, classSourcedId, role: e.role as Role, beginDate: e.begin_date, endDate: e.end_date, status: active,
      });
    }
    if (page.length < ENROLLMENT_PAGE) break;
    after = page[page.length - 1]!.id;
  }

  const pools = await db.selectFrom('license_pools').select(['id', 'product', 'seats', 'scope']).where('district_id', '=', districtId).orderBy('product').execute();
  state.pools = pools.map((p): Pool => ({ id: p.id, product: p.product, seats: p.seats, scope: p.scope as PoolScope }));

  const seats = await sql<{ product: string; user_sid: string; at: number }>`
    SELECT p.product, u.sourced_id AS user_sid, (extract(epoch FROM s.assigned_at) * 1000)::float8 AS at
    FROM seat_assignments s JOIN license_pools p ON p.id = s.pool_id JOIN users u ON u.id = s.user_id
    WHERE p.district_id = ${districtId} AND s.released_at IS NULL`.execute(db);
  for (const s of seats.rows) mapOfMaps(state.seats, s.product).set(intern(s.user_sid), Number(s.at));

  const waitlist = await sql<{ product: string; user_sid: string; at: number }>`
    SELECT p.product, u.sourced_id AS user_sid, (extract(epoch FROM w.queued_at) * 1000)::float8 AS at
    FROM waitlist w JOIN license_pools p ON p.id = w.pool_id JOIN users u ON u.id = w.user_id
    WHERE p.district_id = ${districtId}`.execute(db);
  for (const w of waitlist.rows) mapOfMaps(state.waitlist, w.product).set(intern(w.user_sid), Number(w.at));

  return state;
}

function mapOfMaps<V>(outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let inner = outer.get(key);
  if (!inner) outer.set(key, (inner = new Map()));
  return inner;
}
