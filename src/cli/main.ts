import { Command, CommanderError, Option } from 'commander';
import { ZodError } from 'zod';
import { SUPPORTED_PROVIDERS } from '../../connectors/index.js';
import { closeQueue, syncQueue } from '../../jobs/queues.js';
import { syncSchedules } from '../../jobs/scheduler.js';
import { createSyncWorker } from '../../jobs/sync-worker.js';
import { approveRun, triggerSync } from '../../jobs/trigger.js';
import { ensureDatabase, migrateToLatest } from '../../db/migrate.js';
import { loadConfig } from '../config.js';
import { openContext, type AppContext } from '../context.js';
import { createLogger } from '../logger.js';
import { getDistrict, listDistricts, upsertDistrict } from '../districts/repository.js';
import { DistrictSettings, redactSettings } from '../districts/settings.js';
import { listLicenses, listUsers } from '../queries.js';
import { getRun, isFinished, listRuns, toRunView, type RunView } from '../sync/runs.js';
import { removeStudent, setLicensePool } from '../sync/ops.js';
import { purgeDistrict } from '../sync/purge.js';
import { waitForRun } from '../sync/wait.js';
import { startHttpServer } from '../http/server.js';
import { createOutput, formatRun, formatTable, type Output } from './output.js';
import { DistrictAddFlags, DistrictId, LicenseSetFlags, LimitFlags, SyncFlags, UsageError, UsersFlags, WorkerFlags, parseFlags } from './flags.js';

/** Exit codes: 0 ok, 1 error or FAILED run, 2 bad usage, 3 run HELD for review. */
const EXIT = { ok: 0, error: 1, usage: 2, held: 3 } as const;

type Action = (ctx: AppContext, out: Output, ...args: never[]) => Promise<number | void>;

/** Opens the app context for one command, maps any error to a clear message and exit code. */
function run(action: Action, options: { migrate?: boolean } = {}) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const out = createOutput(Boolean(command.opts().json));
    let ctx: AppContext | undefined;
    let code: number = EXIT.ok;
    try {
      const config = loadConfig();
      // The CLI's own output is the result; worker chatter stays at warn unless asked for.
      const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
      ctx = await openContext({ config, logger, migrate: options.migrate });
      code = (await action(ctx, out, ...(args.slice(0, -1) as never[]))) ?? EXIT.ok;
    } catch (err) {
      code = err instanceof UsageError || err instanceof ZodError ? EXIT.usage : EXIT.error;
      report(out, err);
    } finally {
      if (ctx) {
        await closeQueue(ctx);
        await ctx.close();
      }
    }
    process.exitCode = code;
  };
}

function report(out: Output, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (out.json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
  else process.stderr.write(`error: ${message}\n`);
}

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
  const tuning = { ...(f.pageSize ? { pageSize: f.pageSize } : {}), ...(f.fullEveryHours ? { fullSnapshotEveryHours: f.fullEveryHours } : {}) };
  const credentials =
    f.provider === 'clever' || f.provider === 'canvas' ? { token: f.token ?? '' }
    : f.provider === 'classlink' && (f.clientId || f.clientSecret || f.tokenUrl) ? { clientId: f.clientId ?? '', clientSecret: f.clientSecret ?? '', tokenUrl: f.tokenUrl ?? '' }
    : { consumerKey: f.consumerKey ?? '', consumerSecret: f.consumerSecret ?? '' };
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
    .option('--token <token>', 'Clever district token or Canvas access token')
    .option('--client-id <id>', 'OAuth 2 client id (OneRoster 1.2)')
    .option('--client-secret <secret>', 'OAuth 2 client secret (OneRoster 1.2)')
    .option('--token-url <url>', 'OAuth 2 token endpoint')
    .option('--consumer-key <key>', 'OAuth 1.0a consumer key (OneRoster 1.1, Schoology)')
    .option('--consumer-secret <secret>', 'OAuth 1.0a consumer secret')
    .option('--schedule <cron>', 'sync automatically on this cron schedule')
    .option('--page-size <n>', 'records per provider page')
    .option('--full-every-hours <h>', 'classlink: take a full snapshot at least this often between deltas (default 24)')
    .option('--deletion-threshold-pct <pct>', 'hold runs deleting more than this % of active students (default 5)')
    .option('--deletion-threshold-min <n>', '…but never hold below this many deletions (default 25)')
    .addOption(json())
    .action(run(async (ctx, out, id: string, opts: Record<string, unknown>) => {
      const districtId = parseFlags(DistrictId, id);
      const flags = parseFlags(DistrictAddFlags, opts);
      const settings = settingsFromFlags(flags);
      if (!(SUPPORTED_PROVIDERS as readonly string[]).includes(settings.provider)) {
        throw new UsageError(`provider '${settings.provider}' has no connector yet (supported: ${SUPPORTED_PROVIDERS.join(', ')})`);
      }
      const saved = await upsertDistrict(ctx.db, {
        id: districtId, settings, schedule: flags.schedule ?? null,
        guard: { deletionThresholdPct: flags.deletionThresholdPct, deletionThresholdMin: flags.deletionThresholdMin },
      });
      await syncSchedules(ctx);
      const view = { id: saved.id, provider: saved.provider, schedule: saved.schedule, guard: saved.guard, settings: redactSettings(saved.settings) };
      out.result(view, () => `district ${saved.id} (${saved.provider}) saved${saved.schedule ? `, syncing on "${saved.schedule}"` : ''}`);
    }));
  district.command('list').description('list districts').addOption(json())
    .action(run(async (ctx, out) => {
      const rows = (await listDistricts(ctx.db)).map((d) => ({ id: d.id, provider: d.provider, baseUrl: d.settings.baseUrl, schedule: d.schedule, guard: d.guard, settings: redactSettings(d.settings) }));
      out.result(rows, () => formatTable(rows, ['id', 'provider', 'baseUrl', 'schedule']));
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
      await getDistrict(ctx.db, districtId);
      const runs = (await listRuns(ctx.db, districtId, limit)).map(toRunView);
      out.result(runs, () => formatTable(runs.map((r) => ({ ...r, ...r.counts })), ['id', 'status', 'trigger', 'createdAt', 'usersCreated', 'usersDeleted', 'seatsAssigned', 'seatsReleased', 'error']));
    }));

  program.command('run <runId>').description('one run: status and counts').addOption(json())
    .action(run(async (ctx, out, runId: string) => {
      const view = toRunView(await getRun(ctx.db, runId));
      out.result(view, () => formatRun(view));
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
      const worker = createSyncWorker(ctx, { concurrency });
      await syncSchedules(ctx);
      out.note(`rostersync worker started (concurrency ${concurrency}); Ctrl-C to stop`);
      await untilSignal();
      out.note('stopping: finishing the runs in progress');
      await worker.close();
    }));

  program.command('serve').description('run the HTTP server: admin API, health, metrics').addOption(json())
    .action(run(async (ctx, out) => {
      const server = await startHttpServer(ctx);
      out.note(`rostersync HTTP server listening on ${server.url}`);
      await untilSignal();
      await server.close();
    }));

  return program;
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
