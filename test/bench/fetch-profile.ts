// The fetch phase without the worker around it: the provider's fake server in its
// own process (as in the bench) and the connector alone reading it, no stage, no
// snapshot. Compared with the bench's fetch phase it splits the time between the
// provider round trips (connector + fake) and rostersync's staging.
//   npx tsx test/bench/fetch-profile.ts --provider schoology [--students 50000 --sections 2000 --per-student 6 --schools 25] [--runs 2]
// The bench's "bare fetch" (issue #11) runs it against the bench's own fake server,
// already started: --attach '<the server's first stdout line>' [--server-pid PID].
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createConnector } from '../../connectors/index.js';
import { createLogger } from '../../src/logger.js';
import { fakeSpec, parseProviders, requestsBetween, serverStats } from './fakes.js';
import { startAtOption, waitForStart } from './start-at.js';

const { values } = parseArgs({
  options: {
    provider: { type: 'string', default: 'schoology' },
    students: { type: 'string', default: '50000' },
    sections: { type: 'string', default: '2000' },
    'per-student': { type: 'string', default: '6' },
    schools: { type: 'string', default: '25' },
    'page-size': { type: 'string', default: '1000' },
    runs: { type: 'string', default: '2' },
    // A fake server already running (the bench's): its first stdout line, as JSON. Only one provider then.
    attach: { type: 'string' },
    // With --attach: the server's process, to split the CPU time as without it.
    'server-pid': { type: 'string' },
    // With --runs 1: set up, then start at this instant (the bench's side-by-side run with the raw COPY).
    ...startAtOption,
  },
});
/** This process's peak (VmHWM) resident set size, in MB (Linux). */
const peakRssMb = () => Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024);
/** CPU time a process and its descendants (tsx runs the server in a child node) have used, in ms (Linux /proc; 10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return (Number(fields[11]) + Number(fields[12])) * 10 + children.reduce((sum, c) => sum + cpuMs(c), 0);
}
const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
const shape = { students: Number(values.students), sections: values.sections!, perStudent: values['per-student']!, schools: values.schools!, pageSize: Number(values['page-size']) };

const providers = parseProviders(values.provider!);
if (values.attach && providers.length !== 1) throw new Error('--attach: name exactly one --provider (the attached server\'s)');
for (const provider of providers) {
  const spec = fakeSpec(provider, shape, (p) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url)));
  const proc = values.attach ? null : spawn(process.execPath, [tsx, ...spec.args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const serverPid = proc ? proc.pid! : values['server-pid'] ? Number(values['server-pid']) : null;
  try {
    const info = proc ? String((await createInterface({ input: proc.stdout! })[Symbol.asyncIterator]().next()).value) : values.attach!;
    const { settings, control } = spec.connect(JSON.parse(info));
    for (let run = 1; run <= Number(values.runs); run += 1) {
      const connector = createConnector(settings, createLogger('warn'));
      const before = await serverStats(control);
      const fakeCpu = serverPid ? cpuMs(serverPid) : 0;
      const lateMs = run === 1 ? await waitForStart(values['start-at']) : 0;
      const ownCpu = process.cpuUsage();
      const started = performance.now();
      const records: Record<string, number> = {};
      let batches = 0;
      for await (const batch of connector.fetch({ full: true })) {
        batches += 1;
        records[batch.kind] = (records[batch.kind] ?? 0) + batch.records.length;
      }
      const ms = Math.round(performance.now() - started);
      const own = process.cpuUsage(ownCpu);
      // Where the wall time went: the fake's CPU is the provider's share, the connector's is rostersync's.
      const cpu = { fakeServerMs: serverPid ? cpuMs(serverPid) - fakeCpu : null, connectorMs: Math.round((own.user + own.system) / 1000) };
      const { requests, notOk } = requestsBetween(before, await serverStats(control));
      process.stdout.write(`${JSON.stringify({ provider, run, connectorOnlyMs: ms, lateMs, cpu, requests, notOk, msPerRequest: +(ms / requests).toFixed(2), batches, records, peakRssMb: peakRssMb() })}\n`);
    }
  } finally {
    proc?.kill('SIGTERM');
  }
}
