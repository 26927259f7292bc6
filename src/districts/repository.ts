import type { Db } from '../../db/connection.js';
import type { DistrictRow } from '../../db/schema.js';
import { DEFAULT_GUARD_POLICY, type GuardPolicy } from '../reconcile/guards.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { openSecrets, sealSecrets, secretBoxFor } from './credentials.js';
import { DistrictSettings, redactSettings } from './settings.js';

export class NotFoundError extends Error {}

export interface District {
  id: string;
  provider: DistrictSettings['provider'];
  settings: DistrictSettings;
  schedule: string | null;
  guard: GuardPolicy;
  createdAt: Date;
}

/** A district as shown to people: every secret replaced, nothing opened. */
export type DistrictSummary = {
  id: string;
  provider: DistrictSettings['provider'];
  baseUrl: string;
  schedule: string | null;
  guard: GuardPolicy;
  settings: Record<string, unknown>;
};

function parseSettings(id: string, raw: unknown): DistrictSettings {
  const parsed = DistrictSettings.safeParse(raw);
  if (!parsed.success) throw new Error(`district ${id} has invalid stored settings: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function guardOf(row: DistrictRow): GuardPolicy {
  return {
    deletionThresholdPct: row.deletion_threshold_pct, deletionThresholdMin: row.deletion_threshold_min,
    lossThresholdPct: row.loss_threshold_pct, quarantineThresholdMin: row.quarantine_threshold_min, quarantineThresholdPct: row.quarantine_threshold_pct,
  };
}

function toDistrict(row: DistrictRow, box: SecretBox): District {
  const settings = parseSettings(row.id, openSecrets(row.id, row.settings, box));
  return { id: row.id, provider: settings.provider, settings, schedule: row.schedule, guard: guardOf(row), createdAt: row.created_at };
}

export function toSummary(d: Pick<District, 'id' | 'provider' | 'settings' | 'schedule' | 'guard'>): DistrictSummary {
  const settings = redactSettings(d.settings);
  return { id: d.id, provider: d.provider, baseUrl: settings.baseUrl as string, schedule: d.schedule, guard: d.guard, settings };
}

// `secrets` defaults to the box bound to `db` by openContext (see credentials.ts).
export async function getDistrict(db: Db, id: string, secrets: SecretBox = secretBoxFor(db)): Promise<District> {
  const row = await db.selectFrom('districts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new NotFoundError(`unknown district '${id}' (see \`rostersync district list\`)`);
  return toDistrict(row, secrets);
}

/**
 * Fails with NotFoundError unless the district exists, without opening its
 * secrets: reading users, runs or licenses, and purging, need no provider
 * credentials, so they keep working when a secret cannot be opened.
 */
export async function requireDistrict(db: Db, id: string): Promise<void> {
  const row = await db.selectFrom('districts').select('id').where('id', '=', id).executeTakeFirst();
  if (!row) throw new NotFoundError(`unknown district '${id}' (see \`rostersync district list\`)`);
}

export async function listDistricts(db: Db, secrets: SecretBox = secretBoxFor(db)): Promise<District[]> {
  const rows = await db.selectFrom('districts').selectAll().orderBy('id').execute();
  return rows.map((row) => toDistrict(row, secrets));
}

/**
 * Every district, redacted, without opening a single secret: listing works
 * with a wrong or missing SECRETS_KEY, and one damaged secret hides nothing.
 */
export async function listDistrictSummaries(db: Db): Promise<DistrictSummary[]> {
  const rows = await db.selectFrom('districts').selectAll().orderBy('id').execute();
  return rows.map((row) => {
    const settings = parseSettings(row.id, row.settings);
    return toSummary({ id: row.id, provider: settings.provider, settings, schedule: row.schedule, guard: guardOf(row) });
  });
}

export async function upsertDistrict(
  db: Db,
  d: { id: string; settings: DistrictSettings; schedule: string | null; guard?: Partial<GuardPolicy> },
  secrets: SecretBox = secretBoxFor(db),
): Promise<District> {
  // Checked before sealing: a sealed value always passes the schema's length checks.
  const settings = DistrictSettings.parse(d.settings);
  const values = {
    id: d.id,
    provider: settings.provider,
    settings: JSON.stringify(sealSecrets(settings, secrets)),
    schedule: d.schedule,
    deletion_threshold_pct: d.guard?.deletionThresholdPct ?? DEFAULT_GUARD_POLICY.deletionThresholdPct,
    deletion_threshold_min: d.guard?.deletionThresholdMin ?? DEFAULT_GUARD_POLICY.deletionThresholdMin,
    loss_threshold_pct: d.guard?.lossThresholdPct ?? DEFAULT_GUARD_POLICY.lossThresholdPct,
    quarantine_threshold_min: d.guard?.quarantineThresholdMin ?? DEFAULT_GUARD_POLICY.quarantineThresholdMin,
    quarantine_threshold_pct: d.guard?.quarantineThresholdPct ?? DEFAULT_GUARD_POLICY.quarantineThresholdPct,
  };
  const row = await db.insertInto('districts').values(values)
    .onConflict((oc) => oc.column('id').doUpdateSet({ ...values, updated_at: new Date() }))
    .returningAll().executeTakeFirstOrThrow();
  return toDistrict(row, secrets);
}
