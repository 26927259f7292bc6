import { Command, CommanderError, Option } from 'commander';
import { SUPPORTED_PROVIDERS } from '../../connectors/index.js';
import { syncQueue } from '../../jobs/queues.js';
import { syncSchedules } from '../../jobs/scheduler.js';
import { createSyncWorker } from '../../jobs/sync-worker.js';
import { approveRun, triggerSync } from '../../jobs/trigger.js';
import { ensureDatabase, migrateToLatest } from '../../db/migrate.js';
import type { AppContext } from '../context.js';
import { listDistrictSummaries, requireDistrict, toSummary, upsertDistrict } from '../districts/repository.js';
import { rotateSecrets } from '../districts/rotate.js';
import { DistrictSettings } from '../districts/settings.js';
import { SecretBox } from '../secrets/secret-box.js';
import { listLicenses, listUsers } from '../queries.js';
import { getRun, isFinished, listRuns, toRunView, type RunView } from '../sync/runs.js';
import { removeStudent, setLicensePool } from '../sync/ops.js';
import { purgeDistrict } from '../sync/purge.js';
import { waitForRun } from '../sync/wait.js';
import { PLAN_SECTIONS, readPlan, type PlanPage } from '../sync/plan-items.js';
import { pruneHistory } from '../sync/retention.js';
import { formatRun, formatTable, type Output } from './output.js';
import { EXIT, run } from './command.js';
import { registerSsoCommands } from './sso-commands.js';
import { registerAuditCommand } from './audit-command.js';
import { PlanFlags, PruneFlags, DistrictAddFlags, DistrictId, LicenseSetFlags, LimitFlags, SyncFlags, UsageError, UsersFlags, WorkerFlags, parseFlags, resolveSecret } from './flags.js';

const runExit = (run: RunView) => (run.status === 'FAILED' ? EXIT.error : run.status === 'HELD' ? EXIT.held : EXIT.ok);

/** Waits for a run, processing it in this process if no worker is listening. */
async function waitVisibly(ctx: AppContext, out: Output, runId: string, timeoutSec?: number): Promise<RunView> {
  const workers = await syncQueue(ctx).getWorkers();
  const local = workers.length === 0 ? createSyncWorker(ctx, { concurrency: 1 }) : undefined;
  if (local) out.note('no rostersync worker is running; processing the run in this process');
  let last = '';
  const tty = process.stderr.isTTY && !out.json;
  try {
    return await waitForRun(ctx.db, runId, {
      timeoutMs: timeoutSec ? timeoutSec * 1000 : undefined,
      onUpdate: (r) => {
        if (out.json) return;
        // Once finished, the last progress report is stale: show only the outcome.
        const p = isFinished(r.status) ? null : (r.progress as { phase?: string; pages?: number; records?: number; resource?: string } | null);
        const phase = p?.phase ?? '';
        const line = `${r.status.toLowerCase()}${phase ? `: ${phase}` : ''}${p?.pages !== undefined ? ` — ${p.pages} pages, ${p.records} records${p.resource ? ` (${p.resource})` : ''}` : ''}`;
        if (line === last) return;
        last = line;
        process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      },
    });
  } finally {
    if (tty) process.stderr.write('\n');
    await local?.close();
  }
}

function settingsFromFlags(f: ReturnType<typeof DistrictAddFlags.parse>): DistrictSettings {
  if (f.fullEveryHours !== undefined && f.provider !== 'classlink') throw new UsageError('--full-every-hours applies to providers with delta syncs (classlink)');
  if (f.accountId !== undefined && f.provider !== 'canvas') throw new UsageError('--account-id applies to canvas');
  if (f.signatureMethod !== undefined && f.provider !== 'schoology') throw new UsageError('--signature-method applies to schoology');
  const tuning = {
    ...(f.pageSize ? { pageSize: f.pageSize } : {}),
    ...(f.fullEveryHours ? { fullSnapshotEveryHours: f.fullEveryHours } : {}),
    ...(f.accountId ? { accountId: f.accountId } : {}),
    ...(f.signatureMethod ? { signatureMethod: f.signatureMethod } : {}),
  };
  // Which kind of credentials is chosen by the flags alone: a ROSTERSYNC_* secret
  // left in the environment only fills in the kind the flags asked for.
  const oauth2 = f.provider === 'classlink' && Boolean(f.clientId || f.tokenUrl || f.clientSecret || f.clientSecretFile);
  const credentials =
    f.provider === 'clever' || f.provider === 'canvas' ? { token: resolveSecret({ flag: 'token', value: f.token, file: f.tokenFile, env: 'ROSTERSYNC_TOKEN' }) ?? '' }
    : oauth2 ? { clientId: f.clientId ?? '', clientSecret: resolveSecret({ flag: 'client-secret', value: f.clientSecret, file: f.clientSecretFile, env: 'ROSTERSYNC_CLIENT_SECRET' }) ?? '', tokenUrl: f.tokenUrl ?? '' }
    : { consumerKey: f.consumerKey ?? '', consumerSecret: resolveSecret({ flag: 'consumer-secret', value: f.consumerSecret, file: f.consumerSecretFile, env: 'ROSTERSYNC_CONSUMER_SECRET' }) ?? '' };
  return parseFlags(DistrictSettings, { provider: f.provider, baseUrl: f.baseUrl, credentials, ...tuning });
}

export function buildProgram(): Command {
  const program = new Command('rostersync')
    .description('Keeps accounts, class memberships and license seats in step with district rosters.')
    .showHelpAfterError()
    .exitOverride();
  const json = () => new Option('--json', 'machine-readable output');

  program.command('migrate').description('create the database if needed and apply migrations').addOption(json())
    .action(run(async (ctx, out) => {
      const created = await ensureDatabase(ctx.config.DATABASE_URL);
      const applied = await migrateToLatest(ctx.db);
      out.result({ ok: true, created, applied }, () => `${created ? 'database created; ' : ''}${applied.length ? `applied ${applied.join(', ')}` : 'database is up to date'}`);
    }, { migrate: false }));

  const district = program.command('district').description('manage districts');
  district.command('add <id>').description('add or update a district')
    .requiredOption('--provider <provider>', 'clever | classlink | canvas | schoology')
    .requiredOption('--base-url <url>', "the provider's API root")
    .option('--token-file <path>', 'Clever district token or Canvas access token, read from this file (or set ROSTERSYNC_TOKEN)')
    .option('--token <token>', 'the token on the command line (visible in ps: prefer --token-file)')
    .option('--client-id <id>', 'OAuth 2 client id (OneRoster 1.2)')
    .option('--client-secret-file <path>', 'OAuth 2 client secret (OneRoster 1.2), read from this file (or set ROSTERSYNC_CLIENT_SECRET)')
    .option('--client-secret <secret>', 'the client secret on the command line (visible in ps)')
    .option('--token-url <url>', 'OAuth 2 token endpoint')
    .option('--consumer-key <key>', 'OAuth 1.0a consumer key (OneRoster 1.1, Schoology)')
    .option('--consumer-secret-file <path>', 'OAuth 1.0a consumer secret, read from this file (or set ROSTERSYNC_CONSUMER_SECRET)')
    .option('--consumer-secret <secret>', 'the consumer secret on the command line (visible in ps)')
    .option('--schedule <cron>', 'sync automatically on this cron schedule')
    .option('--page-size <n>', 'records per provider page')
    .option('--full-every-hours <h>', 'classlink: take a full snapshot at least this often between deltas (default 24)')
    .option('--account-id <id>', 'canvas: the account to roster: self (default), a number, or sis_account_id:<id>')
    .option('--signature-method <m>', 'schoology: HMAC-SHA1 (default) or PLAINTEXT')
    .option('--deletion-threshold-pct <pct>', 'hold runs deleting more than this % of active students (default 5)')
    .option('--deletion-threshold-min <n>', '…but never hold below this many deletions (default 25)')
    .option('--loss-threshold-pct <pct>', 'hold runs removing more than this % of teachers, schools, classes or enrollments (default 10)')
    .option('--quarantine-threshold-min <n>', 'hold runs with more unreadable provider records than this (default 10)…')
    .option('--quarantine-threshold-pct <pct>', '…or this % of the snapshot, if larger (default 1)')
    .addOption(json())
    .action(run(async (ctx, out, id: string, opts: Record<string, unknown>) => {
      const districtId = parseFlags(DistrictId, id);
      const flags = parseFlags(DistrictAddFlags, opts);
      const settings = settingsFromFlags(flags);
      if (!(SUPPORTED_PROVIDERS as readonly string[]).includes(settings.provider)) {
        throw new UsageError(`provider '${settings.provider}' has no connector yet (supported: ${SUPPORTED_PROVIDERS.join(', ')})`);
      }
      if (flags.token !== undefined || flags.clientSecret !== undefined || flags.consumerSecret !== undefined) {
        out.note('note: a secret on the command line is visible to other users (ps, shell history); prefer --token-file / --client-secret-file / --consumer-secret-file or ROSTERSYNC_TOKEN / ROSTERSYNC_CLIENT_SECRET / ROSTERSYNC_CONSUMER_SECRET');
      }
      const saved = await upsertDistrict(ctx.db, {
        id: districtId, settings, schedule: flags.schedule ?? null,
        guard: {
          deletionThresholdPct: flags.deletionThresholdPct, deletionThresholdMin: flags.deletionThresholdMin,
          lossThresholdPct: flags.lossThresholdPct, quarantineThresholdMin: flags.quarantineThresholdMin, quarantineThresholdPct: flags.quarantineThresholdPct,
        },
      }, SecretBox.fromConfig(ctx.config));
      await syncSchedules(ctx);
      const view = toSummary(saved);
      out.result(view, () => `district ${saved.id} (${saved.provider}) saved${saved.schedule ? `, syncing on "${saved.schedule}"` : ''}`);
    }));
  district.command('list').description('list districts (secrets are never shown)').addOption(json())
    .action(run(async (ctx, out) => {
      const rows = await listDistrictSummaries(ctx.db);
      out.result(rows, () => formatTable(rows, ['id', 'provider', 'baseUrl', 'schedule']));
    }));

  program.command('rotate-secrets').description('re-seal every stored secret with SECRETS_KEY (opening with it or SECRETS_KEY_PREVIOUS)').addOption(json())
    .action(run(async (ctx, out) => {
      const report = await rotateSecrets(ctx.db, SecretBox.fromConfig(ctx.config));
      out.result(report, () => `${report.resealed + report.sealedPlaintext} secret(s) re-sealed with key ${report.keyId} across ${report.districts} district(s) and ${report.ssoApps} sign-in app(s) (${report.sealedPlaintext} were plaintext, ${report.current} already current)`);
    }));

  program.command('license').description('manage license pools')
    .command('set <district>').description('create or resize a license pool; seats are settled at once')
    .requiredOption('--product <product>', 'product code')
    .requiredOption('--seats <n>', 'seat count')
    .option('--schools <ids>', 'limit to these school sourcedIds (comma-separated)')
    .option('--grades <grades>', 'limit to these grades (comma-separated)')
    .option('--courses <codes>', 'limit to these course codes or course sourcedIds (comma-separated)')
    .addOption(json())
    .action(run(async (ctx, out, districtId: string, opts: Record<string, unknown>) => {
      const f = parseFlags(LicenseSetFlags, opts);
      const result = await setLicensePool(ctx, districtId, { product: f.product, seats: f.seats, scope: { schools: f.schools ?? [], grades: f.grades ?? [], courses: f.courses ?? [] } });
      const pool = (await listLicenses(ctx.db, districtId)).find((p) => p.product === f.product);
      out.result({ pool, run: result }, () => `${f.product}: ${pool?.seats} seats, ${pool?.assigned} assigned, ${pool?.waitlisted} wait-listed`);
    }));

  program.command('sync <district>').description('queue a sync of a district')
    .option('--dry-run', 'compute and report the plan, apply nothing')
    .option('--full', 'force a complete snapshot where the provider also offers deltas')
    .option('--wait', 'show progress and print the run summary')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long')
    .addOption(json())
    .action(run(async (ctx, out, districtId: string, opts: Record<string, unknown>) => {
      const f = parseFlags(SyncFlags, opts);
      const { run: queued, coalesced } = await triggerSync(ctx, districtId, { trigger: 'cli', dryRun: f.dryRun, full: f.full });
      if (coalesced) out.note(`a sync of ${districtId} is already queued; joined run ${queued.id}`);
      if (!f.wait) {
        const view = toRunView(queued);
        out.result(view, () => `queued run ${view.id} (rostersync run ${view.id} to follow it)`);
        return;
      }
      const done = await waitVisibly(ctx, out, queued.id, f.timeout);
      out.result(done, () => formatRun(done));
      return runExit(done);
    }));

  program.command('runs <district>').description('recent runs of a district').option('--limit <n>', 'how many', '20').addOption(json())
    .action(run(async (ctx, out, districtId: string, opts: Record<string, unknown>) => {
      const { limit } = parseFlags(LimitFlags, opts);
      await requireDistrict(ctx.db, districtId);
      const runs = (await listRuns(ctx.db, districtId, limit)).map(toRunView);
      out.result(runs, () => formatTable(runs.map((r) => ({ ...r, ...r.counts })), ['id', 'status', 'trigger', 'createdAt', 'usersCreated', 'usersDeleted', 'seatsAssigned', 'seatsReleased', 'error']));
    }));

  program.command('run <runId>').description('one run: status and counts; --plan lists what a HELD or dry run would do, person by person')
    .option('--plan', 'show the plan: who is created, deleted, enrolled, and which seats go to whom')
    .option('--section <section>', `with --plan: ${PLAN_SECTIONS.join(' | ')}`)
    .option('--page <n>', 'with --plan: page number', '1')
    .option('--page-size <n>', 'with --plan: items per page (at most 1000)', '100')
    .addOption(json())
    .action(run(async (ctx, out, runId: string, opts: Record<string, unknown>) => {
      const f = parseFlags(PlanFlags, opts);
      if (!f.plan) {
        const view = toRunView(await getRun(ctx.db, runId));
        out.result(view, () => formatRun(view));
        return;
      }
      const plan = await readPlan(ctx.db, runId, { section: f.section, page: f.page, pageSize: f.pageSize });
      out.result(plan, () => formatPlan(plan));
    }));

  program.command('prune').description('delete old run history and audit rows (keeps each district\'s last applied run); drops expired stages')
    .option('--runs-days <n>', 'delete finished runs older than this many days', '180')
    .option('--audit-days <n>', 'delete audit rows older than this many days', '400')
    .addOption(json())
    .action(run(async (ctx, out, opts: Record<string, unknown>) => {
      const f = parseFlags(PruneFlags, opts);
      const result = await pruneHistory(ctx.db, { runsOlderThanDays: f.runsDays, auditOlderThanDays: f.auditDays, stageHours: ctx.config.STAGE_RETENTION_HOURS });
      out.result(result, () => `pruned ${result.runs} runs and ${result.auditRows} audit rows; dropped ${result.stages.runs} expired stages (${result.stages.pages} pages)`);
    }));

  program.command('approve <runId>').description('apply a HELD run').option('--no-wait', 'queue it and return').addOption(json())
    .action(run(async (ctx, out, runId: string, opts: { wait: boolean }) => {
      const approved = await approveRun(ctx, runId);
      if (!opts.wait) {
        const view = toRunView(approved);
        out.result(view, () => `run ${runId} approved and queued`);
        return;
      }
      const done = await waitVisibly(ctx, out, runId);
      out.result(done, () => formatRun(done));
      return runExit(done);
    }));

  program.command('users <district>').description("a district's users").option('--status <status>', 'ACTIVE | DELETED').addOption(json())
    .action(run(async (ctx, out, districtId: string, opts: Record<string, unknown>) => {
      const { status } = parseFlags(UsersFlags, opts);
      const users = await listUsers(ctx.db, districtId, { status });
      out.result(users, () => formatTable(users.map((u) => ({ ...u, classes: u.classes.length })), ['id', 'sourcedId', 'role', 'status', 'givenName', 'familyName', 'classes', 'products']));
    }));

  program.command('licenses <district>').description("a district's license pools").addOption(json())
    .action(run(async (ctx, out, districtId: string) => {
      const pools = await listLicenses(ctx.db, districtId);
      out.result(pools, () => formatTable(pools.map((p) => ({ ...p, ...p.scope })), ['product', 'seats', 'assigned', 'waitlisted', 'schools', 'grades', 'courses']));
    }));

  program.command('remove-student <district> <userId>').description('ops removal: same rules as a student leaving the roster').addOption(json())
    .action(run(async (ctx, out, districtId: string, userId: string) => {
      const view = await removeStudent(ctx, districtId, userId);
      out.result(view, () => formatRun(view));
    }));

  program.command('purge <district>').description('hard-delete roster data (the summer wipe); audited')
    .option('--deleted-only', 'erase only accounts already DELETED (default: all roster data; pools and settings are kept)')
    .option('--yes', 'confirm: this cannot be undone')
    .addOption(json())
    .action(run(async (ctx, out, districtId: string, opts: { deletedOnly?: boolean; yes?: boolean }) => {
      if (!opts.yes) throw new UsageError('purge erases data for good; add --yes to confirm');
      const result = await purgeDistrict(ctx, districtId, opts.deletedOnly ? 'deleted-users' : 'all-roster-data');
      out.result(result, () => `purged ${districtId}: ${result.users} users, ${result.enrollments} enrollments, ${result.seats} seat records, ${result.classes} classes`);
    }));

  program.command('worker').description('run the sync workers and the scheduler').option('--concurrency <n>', 'runs processed at once (one per district at most)', '2').addOption(json())
    .action(run(async (ctx, out, opts: Record<string, unknown>) => {
      const { concurrency } = parseFlags(WorkerFlags, opts);
      // Each run may hold two connections; past the pool, runs would wait for one and fail.
      if (concurrency !== undefined && concurrency * 2 > ctx.config.PG_POOL_MAX) {
        throw new UsageError(`--concurrency ${concurrency} needs up to ${concurrency * 2} Postgres connections; PG_POOL_MAX is ${ctx.config.PG_POOL_MAX}: raise PG_POOL_MAX (and Postgres' max_connections) or lower --concurrency`);
      }
      // maintain: keeps schedules registered (again after a Redis restart) and runs housekeeping.
      const worker = createSyncWorker(ctx, { concurrency, maintain: true });
      await syncSchedules(ctx);
      out.note(`rostersync worker started (concurrency ${concurrency}); Ctrl-C to stop`);
      await untilSignal();
      out.note('stopping: finishing the runs in progress');
      await worker.close();
    }));

  program.command('serve').description('run the HTTP server: admin API, sign-in (OpenID Connect, LTI 1.3), health, metrics').addOption(json())
    .action(run(async (ctx, out) => {
      // Loaded here, not with the CLI: the server brings ltijs and its database drivers, which a worker
      // process never uses and which cost it memory and, at a 384 MB heap, a fifth more CPU in a fetch.
      const { startHttpServer } = await import('../http/server.js');
      const server = await startHttpServer(ctx);
      out.note(`rostersync HTTP server listening on ${server.listening}`);
      await untilSignal();
      await server.close();
    }));

  registerSsoCommands(program);
  registerAuditCommand(program);
  return program;
}

function formatPlan(plan: PlanPage): string {
  const summary = Object.entries(plan.summary).map(([section, actions]) => `  ${section}: ${Object.entries(actions).map(([a, n]) => `${n} ${a}`).join(', ')}`);
  const pages = Math.max(1, Math.ceil(plan.total / plan.pageSize));
  return [
    `plan of run ${plan.runId} (${plan.status})`,
    ...(summary.length ? summary : ['  (nothing: an applied run keeps no plan, its audit rows say what happened)']),
    '',
    formatTable(plan.items.map((i) => ({ ...i })), ['section', 'action', 'sourcedId', 'name', 'role', 'classSourcedId', 'product', 'reason']),
    `page ${plan.page} of ${pages} (${plan.total} items${plan.section ? ` in ${plan.section}` : ''})`,
  ].join('\n');
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version land here too, with exit code 0.
      if (err.exitCode !== 0 && argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: err.message.replace(/^error: /, '') })}\n`);
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.usage;
      return;
    }
    throw err;
  }
}

await main(process.argv);
