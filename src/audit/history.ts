import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../../db/connection.js';
import { NotFoundError, requireDistrict } from '../districts/repository.js';
import { PERSON_ENTITY, PersonRoster } from './person-roster.js';

export type HistoryKind = 'account' | 'enrollment' | 'seat' | 'sign-in';

export interface HistoryEvent {
  at: string;
  runId: string | null;
  /** What started the run (cli, api, schedule, ops:remove-student, …); null for sign-ins and pruned runs. */
  trigger: string | null;
  kind: HistoryKind;
  /** account: create|update|delete|reactivate; enrollment: add|end; seat: assign|release|waitlist|unwaitlist; sign-in: sign-in|refused:<code>. */
  action: string;
  class?: string;
  product?: string;
  reason?: string;
}

export interface PersonHistory {
  districtId: string;
  user: { id: string; sourcedId: string; status: string; givenName: string; familyName: string };
  events: HistoryEvent[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the audit rows this module reads hold beyond the compact format (zod: rows may predate any of this code). */
const ReasonDetail = z.object({ reason: z.unknown().optional() }).passthrough();

interface AuditHit {
  id: string;
  at: Date;
  run_id: string | null;
  trigger: string | null;
  entity: string;
  entity_key: string;
  action: string;
  detail: unknown;
}

/** Escapes LIKE's wildcards so a sourcedId is matched literally. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Everything the audit trail holds about one person, oldest first: account
 * changes, class memberships, seats, and sign-ins. Reads both the compact
 * per-person rows and the per-membership/per-seat rows written before them
 * (db/migrations/005_audit.ts has an index for each lookup).
 */
export async function personHistory(db: Db, districtId: string, userRef: string): Promise<PersonHistory> {
  await requireDistrict(db, districtId);
  const user = await db.selectFrom('users').select(['id', 'sourced_id', 'status', 'given_name', 'family_name'])
    .where('district_id', '=', districtId)
    .where((eb) => eb.or([eb('sourced_id', '=', userRef), ...(UUID.test(userRef) ? [eb('id', '=', userRef)] : [])]))
    .executeTakeFirst();
  if (!user) throw new NotFoundError(`district '${districtId}' has no user '${userRef}' (give the account id or the provider's sourcedId)`);

  const sid = user.sourced_id;
  // Old keys are 'class/user' and 'product/user': reversed, they start with the reversed sourcedId and '/'.
  const legacyPrefix = `${likeLiteral([...sid].reverse().join(''))}/%`;
  const hits = await sql<AuditHit>`
    WITH ids AS (
      SELECT id FROM audit_log WHERE district_id = ${districtId} AND entity_key = ${sid}
        AND (entity IN ('user', ${PERSON_ENTITY})
          -- Sign-ins keyed by the provider's id are this person's only where that id is their sourcedId:
          -- Clever/ClassLink sign-ins, but not LTI (keyed by the LMS's sub) nor another tenant's identity refused here.
          OR (entity = 'sso' AND detail->>'provider' IN ('clever', 'classlink') AND action <> 'refused:wrong_district'))
      UNION
      SELECT id FROM audit_log WHERE district_id = ${districtId} AND entity IN ('enrollment', 'seat') AND reverse(entity_key) LIKE ${legacyPrefix}
      UNION
      SELECT id FROM audit_log WHERE district_id = ${districtId} AND entity = 'sso' AND detail->>'userId' = ${user.id}
    )
    SELECT a.id, a.at, a.run_id, r.trigger, a.entity, a.entity_key, a.action, a.detail
    FROM audit_log a JOIN ids USING (id) LEFT JOIN sync_runs r ON r.id = a.run_id
    ORDER BY a.at, a.id`.execute(db);

  return {
    districtId,
    user: { id: user.id, sourcedId: sid, status: user.status, givenName: user.given_name, familyName: user.family_name },
    events: hits.rows.flatMap((row) => eventsOf(row, sid)),
  };
}

function eventsOf(row: AuditHit, sourcedId: string): HistoryEvent[] {
  const base = { at: new Date(row.at).toISOString(), runId: row.run_id, trigger: row.trigger };
  const parsed = ReasonDetail.safeParse(row.detail ?? {});
  const reason = parsed.success && typeof parsed.data.reason === 'string' ? { reason: parsed.data.reason } : {};
  // The part of an old 'class/user' or 'product/user' key before the user.
  const target = row.entity_key.slice(0, row.entity_key.length - sourcedId.length - 1);
  switch (row.entity) {
    case 'user':
      return [{ ...base, kind: 'account', action: row.action, ...reason }];
    case 'enrollment':
      return [{ ...base, kind: 'enrollment', action: row.action, class: target, ...reason }];
    case 'seat':
      return [{ ...base, kind: 'seat', action: row.action, product: target, ...reason }];
    case 'sso':
      return [{ ...base, kind: 'sign-in', action: row.action, ...reason }];
    case PERSON_ENTITY:
      return rosterEvents(base, row.detail);
    default:
      return [];
  }
}

/** One compact row, back to one event per change, in the order the run applied them (ends before adds, releases before assigns). */
function rosterEvents(base: Pick<HistoryEvent, 'at' | 'runId' | 'trigger'>, detail: unknown): HistoryEvent[] {
  const parsed = PersonRoster.safeParse(detail);
  if (!parsed.success) return [{ ...base, kind: 'enrollment', action: 'unreadable', reason: `audit detail not in the expected format: ${parsed.error.issues[0]?.message ?? ''}` }];
  const { enrollments: e = {}, seats: s = {} } = parsed.data;
  return [
    ...(e.ended ?? []).map((x): HistoryEvent => ({ ...base, kind: 'enrollment', action: 'end', class: x.class, reason: x.reason })),
    ...(e.added ?? []).map((c): HistoryEvent => ({ ...base, kind: 'enrollment', action: 'add', class: c })),
    ...(s.released ?? []).map((x): HistoryEvent => ({ ...base, kind: 'seat', action: 'release', product: x.product, reason: x.reason })),
    ...(s.unwaitlisted ?? []).map((p): HistoryEvent => ({ ...base, kind: 'seat', action: 'unwaitlist', product: p })),
    ...(s.assigned ?? []).map((p): HistoryEvent => ({ ...base, kind: 'seat', action: 'assign', product: p })),
    ...(s.waitlisted ?? []).map((p): HistoryEvent => ({ ...base, kind: 'seat', action: 'waitlist', product: p })),
  ];
}
