import type { Db } from '../../db/connection.js';
import type { DistrictRow } from '../../db/schema.js';
import type { GuardPolicy } from '../reconcile/guards.js';
import { DistrictSettings } from './settings.js';

export class NotFoundError extends Error {}

export interface District {
  id: string;
  provider: DistrictSettings['provider'];
  settings: DistrictSettings;
  schedule: string | null;
  guard: GuardPolicy;
  createdAt: Date;
}

function toDistrict(row: DistrictRow): District {
  const parsed = DistrictSettings.safeParse(row.settings);
  if (!parsed.success) throw new Error(`district ${row.id} has invalid stored settings: ${parsed.error.issues[0]?.message}`);
  return {
    id: row.id,
    provider: parsed.data.provider,
    settings: parsed.data,
    schedule: row.schedule,
    guard: { deletionThresholdPct: row.deletion_threshold_pct, deletionThresholdMin: row.deletion_threshold_min },
    createdAt: row.created_at,
  };
}

export async function getDistrict(db: Db, id: string): Promise<District> {
  const row = await db.selectFrom('districts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new NotFoundError(`unknown district '${id}' (see \`rostersync district list\`)`);
  return toDistrict(row);
}

export async function listDistricts(db: Db): Promise<District[]> {
  const rows = await db.selectFrom('districts').selectAll().orderBy('id').execute();
  return rows.map(toDistrict);
}

export async function upsertDistrict(db: Db, d: { id: string; settings: DistrictSettings; schedule: string | null; guard?: Partial<GuardPolicy> }): Promise<District> {
  const values = {
    id: d.id,
    provider: d.settings.provider,
    settings: JSON.stringify(d.settings),
    schedule: d.schedule,
    deletion_threshold_pct: d.guard?.deletionThresholdPct ?? 5,
    deletion_threshold_min: d.guard?.deletionThresholdMin ?? 25,
  };
  const row = await db.insertInto('districts').values(values)
    .onConflict((oc) => oc.column('id').doUpdateSet({ ...values, updated_at: new Date() }))
    .returningAll().executeTakeFirstOrThrow();
  return toDistrict(row);
}
