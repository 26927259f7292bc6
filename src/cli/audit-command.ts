import { Option, type Command } from 'commander';
import { z } from 'zod';
import { personHistory, type PersonHistory } from '../audit/history.js';
import { run } from './command.js';
import { DistrictId, parseFlags } from './flags.js';
import { formatTable, printable } from './output.js';

/** An account id or a provider sourcedId: anything printable, bounded like the columns it is matched against. */
// eslint-disable-next-line no-control-regex
const UserRef = z.string().min(1, 'user id is required').max(255, 'user id: at most 255 characters').regex(/^[^\u0000-\u001F\u007F]*$/, 'user id: no control characters');

function formatHistory(h: PersonHistory): string {
  const u = h.user;
  const header = `${printable(`${u.givenName} ${u.familyName}`.trim())}  sourcedId ${printable(u.sourcedId)}  account ${u.id}  ${u.status}  (district ${h.districtId})`;
  const rows = h.events.map((e) => ({
    at: e.at,
    kind: e.kind,
    action: e.action,
    what: e.class ?? e.product ?? '',
    reason: e.reason ?? '',
    trigger: e.trigger ?? '',
    run: e.runId ?? '',
  }));
  return [header, formatTable(rows, ['at', 'kind', 'action', 'what', 'reason', 'trigger', 'run'])].join('\n');
}

/** `audit <district> <userId>` (issue #11): one person's history, oldest first. */
export function registerAuditCommand(program: Command): void {
  program.command('audit <district> <userId>')
    .description("a person's history: account changes, classes, seats and sign-ins, with runs, triggers and reasons (userId: account id or sourcedId)")
    .addOption(new Option('--json', 'machine-readable output'))
    .action(run(async (ctx, out, district: string, userId: string) => {
      const history = await personHistory(ctx.db, parseFlags(DistrictId, district), parseFlags(UserRef, userId));
      out.result(history, () => formatHistory(history));
    }));
}
