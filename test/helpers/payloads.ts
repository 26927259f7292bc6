import { sql } from 'kysely';
import type { Db } from '../../db/connection.js';
import { CleverReplayServer, OneRosterReplayServer, type Payload, type ReplayOptions } from '../../fixtures/payloads/server.js';
import { upsertDistrict } from '../../src/districts/repository.js';
import type { GuardPolicy } from '../../src/reconcile/guards.js';
import type { TestEnv } from './context.js';
import { createTestEnv } from './context.js';

/** District credentials are sealed at rest: tests need a key (the lead's context helper does not set one yet). */
export async function createPayloadEnv(): Promise<TestEnv> {
  process.env.SECRETS_KEY ??= Buffer.alloc(32, 7).toString('base64');
  return createTestEnv({ SECRETS_KEY: process.env.SECRETS_KEY });
}

export async function startClever(payload: Payload, options: ReplayOptions = {}): Promise<CleverReplayServer> {
  const server = new CleverReplayServer(payload, options);
  await server.start();
  return server;
}

export async function startOneRoster(version: '1.1' | '1.2', payload: Payload, options: ReplayOptions = {}): Promise<OneRosterReplayServer> {
  const server = new OneRosterReplayServer(version, payload, options);
  await server.start();
  return server;
}

const FAST = { minRetryDelayMs: 10, timeoutMs: 2000, retries: 3 };

export async function addReplayDistrict(db: Db, id: string, server: CleverReplayServer | OneRosterReplayServer, opts: { pageSize?: number; guard?: Partial<GuardPolicy> } = {}) {
  const settings = server instanceof CleverReplayServer
    ? { provider: 'clever' as const, baseUrl: server.url, credentials: { token: server.token }, pageSize: opts.pageSize ?? 100, ...FAST }
    : server.version === '1.1'
      ? { provider: 'classlink' as const, baseUrl: server.baseUrl, credentials: { consumerKey: 'ck', consumerSecret: 'cs' }, pageSize: opts.pageSize ?? 100, ...FAST }
      : { provider: 'classlink' as const, baseUrl: server.baseUrl, credentials: { clientId: 'ci', clientSecret: 'cs', tokenUrl: server.tokenUrl }, pageSize: opts.pageSize ?? 100, ...FAST };
  return upsertDistrict(db, { id, schedule: null, settings, ...(opts.guard ? { guard: opts.guard } : {}) });
}

export interface StoredUser { role: string; status: string; schools: string[]; grades: string[]; email: string | null; username: string | null; sisId: string | null; classes: string[]; products: string[] }
export interface StoredState {
  users: Record<string, StoredUser>;
  schools: Record<string, { status: string; identifier: string | null }>;
  classes: Record<string, { status: string; school: string | null; classCode: string | null; grades: string[] }>;
  /** Active memberships `class/user` → role and dates. */
  enrollments: Record<string, { role: string; beginDate: string | null; endDate: string | null }>;
  terms: Record<string, { startDate: string | null; endDate: string | null }>;
}

/** Everything a sync stores for a district, keyed by provider ids (no local ids or timestamps), to compare runs and districts. */
export async function storedState(db: Db, districtId: string): Promise<StoredState> {
  const users = await sql<{ sourced_id: string; role: string; status: string; school_sourced_ids: string[]; grades: string[]; email: string | null; username: string | null; sis_id: string | null; classes: string[]; products: string[] }>`
    SELECT u.sourced_id, u.role, u.status, u.school_sourced_ids, u.grades, u.email, u.username, u.sis_id,
      COALESCE((SELECT array_agg(c.sourced_id ORDER BY c.sourced_id) FROM enrollments e JOIN classes c ON c.id = e.class_id WHERE e.user_id = u.id AND e.ended_at IS NULL), '{}') AS classes,
      COALESCE((SELECT array_agg(p.product ORDER BY p.product) FROM seat_assignments s JOIN license_pools p ON p.id = s.pool_id WHERE s.user_id = u.id AND s.released_at IS NULL), '{}') AS products
    FROM users u WHERE u.district_id = ${districtId}`.execute(db);
  const schools = await sql<{ sourced_id: string; status: string; identifier: string | null }>`SELECT sourced_id, status, identifier FROM schools WHERE district_id = ${districtId}`.execute(db);
  const classes = await sql<{ sourced_id: string; status: string; school_sourced_id: string | null; class_code: string | null; grades: string[] }>`
    SELECT sourced_id, status, school_sourced_id, class_code, grades FROM classes WHERE district_id = ${districtId}`.execute(db);
  const enrollments = await sql<{ cls: string; usr: string; role: string; begin_date: string | null; end_date: string | null }>`
    SELECT c.sourced_id AS cls, u.sourced_id AS usr, e.role, e.begin_date::text AS begin_date, e.end_date::text AS end_date
    FROM enrollments e JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = e.user_id
    WHERE e.district_id = ${districtId} AND e.ended_at IS NULL`.execute(db);
  const terms = await sql<{ sourced_id: string; start_date: string | null; end_date: string | null }>`
    SELECT sourced_id, start_date::text AS start_date, end_date::text AS end_date FROM terms WHERE district_id = ${districtId}`.execute(db);
  const sorted = (xs: string[]) => [...xs].sort();
  return {
    users: Object.fromEntries(users.rows.map((u) => [u.sourced_id, {
      role: u.role, status: u.status, schools: sorted(u.school_sourced_ids), grades: u.grades, email: u.email, username: u.username, sisId: u.sis_id, classes: u.classes, products: u.products,
    }])),
    schools: Object.fromEntries(schools.rows.map((s) => [s.sourced_id, { status: s.status, identifier: s.identifier }])),
    classes: Object.fromEntries(classes.rows.map((c) => [c.sourced_id, { status: c.status, school: c.school_sourced_id, classCode: c.class_code, grades: c.grades }])),
    enrollments: Object.fromEntries(enrollments.rows.map((e) => [`${e.cls}/${e.usr}`, { role: e.role, beginDate: e.begin_date, endDate: e.end_date }])),
    terms: Object.fromEntries(terms.rows.map((t) => [t.sourced_id, { startDate: t.start_date, endDate: t.end_date }])),
  };
}

/** Counts that say something changed (recordsQuarantined is a finding, not a change). */
export function changes(counts: object): Record<string, number> {
  return Object.fromEntries((Object.entries(counts) as [string, number][]).filter(([k, v]) => k !== 'recordsQuarantined' && v !== 0));
}
