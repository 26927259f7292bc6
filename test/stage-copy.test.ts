import { sql } from 'kysely';
import { upsertDistrict } from '../src/districts/repository.js';
import type { RosterClass, User } from '../src/domain/model.js';
import { executeRun } from '../src/sync/execute.js';
import { claimRun, getRun } from '../src/sync/runs.js';
import { countStagedPages, resetStage, stageBatch, stageTablesExist } from '../src/sync/stage.js';
import { stageTable } from '../src/sync/stage-tables.js';
import { migrateToLatest } from '../db/migrate.js';
import { createTestEnv, type TestEnv } from './helpers/context.js';
import { klass, student } from './helpers/roster.js';

// The typed stage (issue #11): what a provider sends goes through COPY's text
// format and comes back exactly, however awkward; a stage written by an older
// version is never approved as if it were whole.

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv();
  await upsertDistrict(t.ctx.db, { id: 'copy', schedule: null, settings: { provider: 'clever', baseUrl: 'http://127.0.0.1:9', credentials: { token: 'unused' } } });
});
afterAll(async () => {
  await t.close();
});

afterEach(async () => {
  // Whatever a test left running, so the next can claim a run of the district.
  await t.ctx.db.updateTable('sync_runs').set({ status: 'FAILED', finished_at: new Date() }).where('district_id', '=', 'copy').where('status', 'in', ['RUNNING', 'QUEUED']).execute();
});

async function claimedRun() {
  const run = await t.ctx.db.insertInto('sync_runs').values({ district_id: 'copy', trigger: 'cli', status: 'QUEUED', dry_run: false, full_snapshot: true })
    .returning('id').executeTakeFirstOrThrow();
  const claim = await claimRun(t.ctx.db, run.id, 60000);
  if (claim.outcome !== 'claimed') throw new Error('claim failed');
  return { runId: run.id, attempt: claim.run.attempts };
}

test('names, ids and lists with backslashes, quotes, braces, commas, NULL-looking text and non-Latin scripts come back from the stage exactly', async () => {
  const lease = await claimedRun();
  await resetStage(t.ctx.db, lease);
  const awkward: User[] = [
    student('s\\1', { givenName: 'Zoë \\N', familyName: 'O"Brien, {Jr}', email: null, grades: ['K', 'PK,1', '"2"', '{3}', 'a\\b', 'NULL', ''], orgSourcedIds: ['sch "1"', 'sch\\2'] }),
    student('s2', { givenName: '山田', familyName: 'عائشة', username: 'N', sisId: '\\.', grades: [], orgSourcedIds: [] }),
    // Tabs and line breaks become spaces at ingest (a tab would end the COPY field); other control characters go.
    student('s3', { givenName: 'Ana\tMaria', familyName: 'Line\nBreak\u0000', grades: ['5\t6'] }),
  ];
  const classes: RosterClass[] = [klass('c{1}', { title: 'Math, "Honors"', termSourcedIds: ['t\\1', 't,2'], grades: [] })];
  expect(await stageBatch(t.ctx.db, lease, { kind: 'users', records: awkward.map((u) => ({ ...u })) })).toBe(true);
  expect(await stageBatch(t.ctx.db, lease, { kind: 'classes', records: classes })).toBe(true);
  expect(await countStagedPages(t.ctx.db, lease.runId)).toBe(2);

  const users = (await sql<Record<string, unknown>>`
    SELECT sourced_id, given_name, family_name, email, username, sis_id, grades, school_sourced_ids, enabled, status
    FROM ${stageTable(lease.runId, 'users')} ORDER BY sourced_id COLLATE "C"`.execute(t.ctx.db)).rows;
  // (In byte order a backslash sorts after the digits.)
  expect(users).toEqual([
    { sourced_id: 's2', given_name: '山田', family_name: 'عائشة', email: 's2@x.test', username: 'N', sis_id: '\\.', grades: [], school_sourced_ids: [], enabled: true, status: 'active' },
    { sourced_id: 's3', given_name: 'Ana Maria', family_name: 'Line Break', email: 's3@x.test', username: 's3', sis_id: null, grades: ['5 6'], school_sourced_ids: ['sch1'], enabled: true, status: 'active' },
    { sourced_id: 's\\1', given_name: 'Zoë \\N', family_name: 'O"Brien, {Jr}', email: null, username: 's\\1', sis_id: null, grades: ['K', 'PK,1', '"2"', '{3}', 'a\\b', 'NULL', ''], school_sourced_ids: ['sch "1"', 'sch\\2'], enabled: true, status: 'active' },
  ]);
  const staged = (await sql<Record<string, unknown>>`SELECT sourced_id, title, term_sourced_ids, grades FROM ${stageTable(lease.runId, 'classes')}`.execute(t.ctx.db)).rows;
  expect(staged).toEqual([{ sourced_id: 'c{1}', title: 'Math, "Honors"', term_sourced_ids: ['t\\1', 't,2'], grades: [] }]);
});

test('an approved HELD run whose stage an older version wrote (JSON pages, no stage tables) is refused, and nothing changes', async () => {
  const lease = await claimedRun();
  // What a HELD run staged before migration 006 looks like: ledger rows carrying the JSON.
  await t.ctx.db.insertInto('run_stage').values({ run_id: lease.runId, seq: 1, kind: 'users', records: 1, data: JSON.stringify([student('old')]) }).execute();
  await t.ctx.db.updateTable('sync_runs').set({ status: 'QUEUED', approved: true, staged_at: new Date(), staged_pages: 1 }).where('id', '=', lease.runId).execute();
  expect(await stageTablesExist(t.ctx.db, lease.runId)).toBe(false);
  const usersBefore = await t.ctx.db.selectFrom('users').select('sourced_id').where('district_id', '=', 'copy').execute();

  await executeRun(t.ctx, lease.runId);
  const run = await getRun(t.ctx.db, lease.runId);
  expect(run).toMatchObject({ status: 'FAILED', error: expect.stringContaining('no longer staged') });
  expect(await t.ctx.db.selectFrom('users').select('sourced_id').where('district_id', '=', 'copy').execute()).toEqual(usersBefore);
});

test('opening the database while stage tables come and go never fails: an up-to-date schema is not introspected', async () => {
  // Stage tables are created and dropped by every run; other processes open
  // the database meanwhile (every CLI command migrates first). Kysely's
  // Migrator lists every table with pg_get_serial_sequence per column, which
  // fails with "relation … does not exist" on a table dropped mid-query.
  let churning = true;
  const churn = (async () => {
    for (let i = 0; churning; i += 1) {
      const tables = Array.from({ length: 20 }, (_, k) => sql.table(`stage.churn_${i % 2}_${k}`));
      for (const table of tables) await sql`CREATE UNLOGGED TABLE IF NOT EXISTS ${table} (seq integer, h bigint, a text, b text, c text)`.execute(t.ctx.db);
      await sql`DROP TABLE IF EXISTS ${sql.join(tables)}`.execute(t.ctx.db);
    }
  })();
  const failures: string[] = [];
  try {
    for (let i = 0; i < 40; i += 1) {
      await migrateToLatest(t.ctx.db).catch((err: Error) => failures.push(err.message));
    }
  } finally {
    churning = false;
    await churn;
  }
  expect(failures).toEqual([]);
});
