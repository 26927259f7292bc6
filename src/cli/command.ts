import { Command } from 'commander';
import { ZodError } from 'zod';
import { closeQueue } from '../../jobs/queues.js';
import { loadConfig } from '../config.js';
import { openContext, type AppContext } from '../context.js';
import { createLogger } from '../logger.js';
import { createOutput, type Output } from './output.js';
import { UsageError } from './flags.js';

/** Exit codes: 0 ok, 1 error or FAILED run, 2 bad usage, 3 run HELD for review. */
export const EXIT = { ok: 0, error: 1, usage: 2, held: 3 } as const;

export type Action = (ctx: AppContext, out: Output, ...args: never[]) => Promise<number | void>;

/** Opens the app context for one command, maps any error to a clear message and exit code. */
export function run(action: Action, options: { migrate?: boolean } = {}) {
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

