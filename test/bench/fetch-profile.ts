// The fetch phase without the worker around it: the provider's fake server in its
// own process (as in the bench) and the connector alone reading it, no stage, no
// snapshot. Compared with the bench's fetch phase it splits the time between the
// provider round trips (connector + fake) and rostersync's staging.
//   npx tsx test/bench/fetch-profile.ts --provider schoology [--students 50000 --sections 2000 --per-student 6 --schools 25] [--runs 2]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createConnector } from '../../connectors/index.js';
import { createLogger } from '../../src/logger.js';
import { fakeSpec, parseProviders, requestsBetween, serverStats } from './fakes.js';

const { values } = parseArgs({
  options: {
    provider: { type: 'string', default: 'schoology' },
    students: { type: 'string', default: '50000' },
    sections: { type: 'string', default: '2000' },
    'per-student': { type: 'string', default: '6' },
    schools: { type: 'string', default: '25' },
    'page-size': { type: 'string', default: '1000' },
    runs: { type: 'string', default: '2' },
  },
});
/** CPU time a process and its descendants (tsx runs the server in a child node) have used, in ms (Linux /proc; 10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return (Number(fields[11]) + Number(fields[12])) * 10 + children.reduce((sum, c) => sum + cpuMs(c), 0);
}
const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
const shape = { students: Number(values.students), sections: values.sections!, perStudent: values['per-student']!, schools: values.schools!, pageSize: Number(values['page-size']) };

for (const provider of parseProviders(values.provider!)) {
  const spec = fakeSpec(provider, shape, (p) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url)));
  const proc = spawn(process.execPath, [tsx, ...spec.args], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const { value } = await createInterface({ input: proc.stdout })[Symbol.asyncIterator]().next();
    const { settings, control } = spec.connect(JSON.parse(String(value)));
    for (let run = 1; run <= Number(values.runs); run += 1) {
      const connector = createConnector(settings, createLogger('warn'));
      const before = await serverStats(control);
      const fakeCpu = cpuMs(proc.pid!);
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
      const cpu = { fakeServerMs: cpuMs(proc.pid!) - fakeCpu, connectorMs: Math.round((own.user + own.system) / 1000) };
      const { requests } = requestsBetween(before, await serverStats(control));
      process.stdout.write(`${JSON.stringify({ provider, run, connectorOnlyMs: ms, cpu, requests, msPerRequest: +(ms / requests).toFixed(2), batches, records })}\n`);
    }
  } finally {
    proc.kill('SIGTERM');
  }
}
