import { z } from 'zod';
import type { AppContext } from '../context.js';
import { latestNrpsLaunch } from './launch.js';
import { startLtijs, stopLtijs } from './ltijs.js';

// Names and Role Provisioning Services 2.0
// (https://www.imsglobal.org/spec/lti-nrps/v2p0): the context's membership,
// fetched by ltijs' NamesAndRoles service with the tool's client-credentials
// token (a JWT client assertion signed with the tool's key; the platform checks
// it against /lti/keys). The endpoint comes from the most recent launch of the
// context that carried the NRPS claim.

export class NrpsError extends Error {}

const Member = z.object({
  user_id: z.union([z.string(), z.number()]).transform(String),
  status: z.string().optional(),
  name: z.string().optional(),
  given_name: z.string().optional(),
  family_name: z.string().optional(),
  email: z.string().optional(),
  lis_person_sourcedid: z.string().optional(),
  roles: z.array(z.string()).default([]),
}).passthrough();

const Membership = z.object({
  id: z.string().optional(),
  context: z.object({ id: z.union([z.string(), z.number()]).transform(String), title: z.string().optional() }).passthrough().optional(),
  members: z.array(Member),
});

export interface RosterMember {
  userId: string;
  name: string | null;
  roles: string[];
  status: string;
  lisPersonSourcedId: string | null;
  /** The rostered account it is, when a launch or the SIS id ties it to one; null when the roster has no such account. */
  accountId: string | null;
  sourcedId: string | null;
}

export async function fetchContextRoster(ctx: AppContext, districtId: string, contextId: string): Promise<{ districtId: string; contextId: string; title: string | null; members: RosterMember[] }> {
  const launch = await latestNrpsLaunch(ctx, districtId, contextId);
  if (!launch?.nrps_url) throw new NrpsError(`no launch of context '${contextId}' in district '${districtId}' carried a Names and Roles endpoint; launch the tool from that course first (with Names and Roles enabled in the LMS)`);
  const secret = ctx.config.SESSION_SECRET;
  if (!secret) throw new NrpsError('SESSION_SECRET must be set: it keys the LTI store that holds the tool\'s signing key');
  const lti = await startLtijs({ db: ctx.db, databaseUrl: ctx.config.DATABASE_URL, sessionSecret: secret, logger: ctx.logger });
  let raw: unknown;
  try {
    raw = await lti.NamesAndRoles.getMembers({ iss: launch.issuer, clientId: launch.client_id, platformContext: { namesRoles: { context_memberships_url: launch.nrps_url } } }, { pages: false });
  } catch (err) {
    const e = err as Error & { response?: { statusCode?: number } };
    throw new NrpsError(`the LMS refused the membership request (${e.response?.statusCode ? `HTTP ${e.response.statusCode}` : e.message}) at ${launch.nrps_url}`);
  } finally {
    await stopLtijs(lti);
  }
  const parsed = Membership.safeParse(raw);
  if (!parsed.success) throw new NrpsError(`the LMS's membership answer is not an NRPS membership container: ${parsed.error.issues[0]?.message}`);
  const members = parsed.data.members;
  // Ties from launches (sub → account) first, then the SIS id.
  const launched = await ctx.db.selectFrom('lti_launches as l').innerJoin('users as u', 'u.id', 'l.user_id')
    .select(['l.subject', 'u.id', 'u.sourced_id']).where('l.district_id', '=', districtId)
    .where('l.subject', 'in', members.length ? members.map((m) => m.user_id) : ['']).execute();
  const bySub = new Map(launched.map((r) => [r.subject, r]));
  const sisIds = members.map((m) => m.lis_person_sourcedid).filter((s): s is string => Boolean(s));
  const bySis = new Map((sisIds.length ? await ctx.db.selectFrom('users').select(['id', 'sourced_id', 'sis_id'])
    .where('district_id', '=', districtId).where('status', '=', 'ACTIVE').where('sis_id', 'in', sisIds).execute() : []).map((u) => [u.sis_id!, u]));
  return {
    districtId, contextId, title: parsed.data.context?.title ?? launch.context_title,
    members: members.map((m) => {
      const account = bySub.get(m.user_id) ?? (m.lis_person_sourcedid ? bySis.get(m.lis_person_sourcedid) : undefined);
      return {
        userId: m.user_id, name: m.name ?? ([m.given_name, m.family_name].filter(Boolean).join(' ') || null), roles: m.roles,
        status: m.status ?? 'Active', lisPersonSourcedId: m.lis_person_sourcedid ?? null, accountId: account?.id ?? null, sourcedId: account?.sourced_id ?? null,
      };
    }),
  };
}
