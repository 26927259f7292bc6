import type { RunView } from '../sync/runs.js';

export interface Output {
  json: boolean;
  /** The command's result: JSON on stdout with --json, else the human rendering. */
  result(value: unknown, human: () => string): void;
  /** Progress and notes: stderr, never mixed into --json output. */
  note(message: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
    },
    note(message) {
      process.stderr.write(`${message}\n`);
    },
  };
}

const COUNT_LABELS: [keyof RunView['counts'], string][] = [
  ['usersCreated', 'users created'], ['usersUpdated', 'users updated'], ['usersDeleted', 'users deleted'], ['usersReactivated', 'users reactivated'],
  ['enrollmentsAdded', 'enrollments added'], ['enrollmentsEnded', 'enrollments ended'],
  ['seatsAssigned', 'seats assigned'], ['seatsReleased', 'seats released'], ['seatsWaitlisted', 'seats wait-listed'],
  ['classesCreated', 'classes created'], ['classesUpdated', 'classes updated'], ['classesRetired', 'classes retired'],
];

export function formatRun(run: RunView): string {
  const lines = [
    `run ${run.id}  district ${run.districtId}  ${run.status}${run.dryRun ? ' (dry run: nothing applied)' : ''}`,
    `  trigger ${run.trigger}, ${run.full ? 'complete snapshot' : `delta since ${run.deltaSince ?? '(none)'}`}, created ${run.createdAt}${run.durationMs !== null ? `, took ${(run.durationMs / 1000).toFixed(1)} s` : ''}`,
  ];
  if (run.error) lines.push(`  ${run.status === 'HELD' ? 'held' : 'error'}: ${run.error}`);
  if (run.status === 'HELD') lines.push(`  review the counts below, then: rostersync approve ${run.id}`);
  const width = Math.max(...COUNT_LABELS.map(([, l]) => l.length));
  for (const [key, label] of COUNT_LABELS) lines.push(`  ${label.padEnd(width)}  ${run.counts[key]}`);
  return lines.join('\n');
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/g;
/** A terminal-safe rendering: control characters shown as \uXXXX escapes. */
export const printable = (s: string) => s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function formatTable(rows: Record<string, unknown>[], columns: string[]): string {
  if (rows.length === 0) return '(none)';
  // Rows written before ingest cleaned names could still hold control characters: never print them raw.
  const cell = (v: unknown) => printable(Array.isArray(v) ? v.join(',') : v === null || v === undefined ? '' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
