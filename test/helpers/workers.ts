import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const cli = fileURLToPath(new URL('../../bin/rostersync.js', import.meta.url));

/** The fields of a worker's pino line (src/logger.ts) that tell which run it was about. */
const LogLine = z.object({ msg: z.string(), runId: z.string().optional(), level: z.number() }).loose();
export type LogLine = z.infer<typeof LogLine>;

/**
 * A real `rostersync worker` in a child process, exactly as an operator runs it
 * on another machine: it shares only Postgres and Redis (through `env`) with
 * the test. Its pino lines on stderr are kept to tell which runs it processed.
 */
export class WorkerProcess {
  readonly lines: LogLine[] = [];
  /** The last lines that were not log lines (CLI notes, a stack trace if it crashed): for diagnostics. */
  readonly other: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private partial = '';

  constructor(readonly name: string, env: Record<string, string>, concurrency = 2) {
    this.child = spawn(process.execPath, [cli, 'worker', '--concurrency', String(concurrency)], {
      // node-postgres reads PGAPPNAME: pg_stat_activity tells this process's connections apart.
      env: { ...process.env, ...env, PGAPPNAME: name },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => this.take(chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Runs this process applied: the 'run applied' line carries the run's id (src/sync/execute.ts). */
  appliedRuns(): string[] {
    return this.lines.filter((l) => l.msg === 'run applied' && l.runId).map((l) => l.runId!);
  }

  /** Lines at error level (50) or above: a worker that logged none of these handled every job cleanly. */
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level >= 50);
  }

  /** Peak resident memory of the process so far, in MB (Linux: VmHWM in /proc/<pid>/status). */
  peakRssMb(): number | null {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return match ? Math.round(Number(match[1]) / 1024) : null;
    } catch {
      return null;
    }
  }

  /** SIGTERM, as a service manager stops it: the worker finishes its runs in progress and exits. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  private take(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      // Not every line is JSON (the CLI's own notes are plain text).
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        this.other.push(raw);
        if (this.other.length > 20) this.other.shift();
        continue;
      }
      const line = LogLine.safeParse(value);
      if (line.success) this.lines.push(line.data);
    }
  }
}
