import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import { requireDistrict } from '../districts/repository.js';
import { lockDistrict } from './runs.js';
import { dropStages } from './stage.js';
import { forgetMirror } from './snapshot-mirror.js';

export interface PurgeResult {
  districtId: string;
  scope: 'deleted-users' | 'all-roster-data';
  users: number;
  enrollments: number;
  seats: number;
  classes: number;
}

/**
 * The only path to hard deletion (the summer data wipe). `deleted-users` erases
 * accounts already DELETED, with their enrollment and seat history;
 * `all-roster-data` erases every roster record of the district but keeps the
 * district, its settings and its license pools. Either way one audit record
 * says who was erased, how many, and when.
 */
export async function purgeDistrict(ctx: AppContext, districtId: string, scope: PurgeResult['scope']): Promise<PurgeResult> {
  await requireDistrict(ctx.db, districtId);
  return ctx.db.transaction().execute(async (trx) => {
    await lockDistrict(trx, districtId);
    const running = await trx.selectFrom('sync_runs').select('id').where('district_id', '=', districtId).where('status', 'in', ['RUNNING', 'QUEUED']).executeTakeFirst();
    if (running) throw new Error(`district ${districtId} has run ${running.id} queued or running; purge when it has finished`);
    const onlyDeleted = scope === 'deleted-users' ? sql`AND u.status = 'DELETED'` : sql``;
    const victims = sql`SELECT u.id FROM users u WHERE u.district_id = ${districtId} ${onlyDeleted}`;
    const count = async (q: ReturnType<typeof sql>) => Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM (${q}) x`.execute(trx)).rows[0]?.n ?? 0);
    const result: PurgeResult = {
      districtId,
      scope,
      users: await count(victims),
      enrollments: await count(sql`SELECT 1 FROM enrollments WHERE user_id IN (${victims})`),
      seats: await count(sql`SELECT 1 FROM seat_assignments WHERE user_id IN (${victims})`),
      classes: scope === 'all-roster-data' ? await count(sql`SELECT 1 FROM classes WHERE district_id = ${districtId}`) : 0,
    };
    // Memberships first (they carry no foreign keys: db/migrations/006), then
    // everything else naming the erased accounts, each in one set-based
    // statement: the accounts' ON DELETE CASCADE then finds nothing left, one
    // index probe per account (db/migrations/010), instead of deleting row by row.
    await sql`DELETE FROM enrollments WHERE user_id IN (${victims})`.execute(trx);
    for (const table of ['seat_assignments', 'waitlist', 'sso_sessions', 'lti_launches']) {
      await sql`DELETE FROM ${sql.table(table)} WHERE user_id IN (${victims})`.execute(trx);
    }
    await sql`DELETE FROM users u WHERE u.district_id = ${districtId} ${onlyDeleted}`.execute(trx);
    if (scope === 'all-roster-data') {
      await sql`DELETE FROM enrollments WHERE district_id = ${districtId}`.execute(trx);
      for (const table of ['classes', 'courses', 'terms', 'schools']) {
        await sql`DELETE FROM ${sql.table(table)} WHERE district_id = ${districtId}`.execute(trx);
      }
    }
    // Staged snapshots (and the district's mirror, the kept stage of its last
    // applied one) hold the very people being erased, and approving one would
    // bring them back: drop them and end the runs that held them.
    await forgetMirror(trx, districtId);
    await dropStages(trx, sql`SELECT id FROM sync_runs WHERE district_id = ${districtId}`);
    await trx.updateTable('sync_runs')
      .set({ status: 'FAILED', phase: 'failed', error: `superseded by a purge of the district's roster data at ${new Date().toISOString()}; trigger a new sync` })
      .where('district_id', '=', districtId).where('status', '=', 'HELD').execute();
    await trx.insertInto('audit_log').values({
      district_id: districtId, run_id: null, entity: 'district', entity_key: districtId, action: 'purge', detail: JSON.stringify(result),
    }).execute();
    ctx.logger.warn({ ...result }, 'district roster data purged');
    return result;
  });
}
