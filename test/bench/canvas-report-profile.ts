// Where the Canvas provisioning-report path spends its time and memory, piece by
// piece (the bench only sees the whole fetch phase):
//   npx tsx test/bench/canvas-report-profile.ts [--students 50000 --sections 2000 --per-student 6 --schools 25]
// 1. the fake builds the report (fake server time, not rostersync's);
// 2. a fresh process reads it with the connector's own readReport (unzip, CSV
//    parse, row checks) and reports time and its peak RSS, with no server in it.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProvisioningReport } from '../../connectors/canvas/report.js';
import { FakeCanvasServer } from '../../fixtures/canvas/server.js';
import { RosterDistrict } from '../../fixtures/district.js';
import { parseServeArgs } from '../../fixtures/serve-args.js';

const { spec, values } = parseServeArgs({ 'read-file': { type: 'string' } });
const vm = (field: 'VmHWM' | 'VmRSS') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;
const mb = (n: number) => Math.round(n / 1048576);

if (values['read-file']) {
  // Child: only the connector's parse, as the worker runs it (same heap ceiling as the bench's worker).
  const bytes = readFileSync(values['read-file']);
  const baseRss = vm('VmRSS');
  const started = performance.now();
  // As the connector reads it: small parts whole, enrollments and users a batch at a time, nothing kept.
  const roster = ProvisioningReport.open(bytes);
  await roster.terms(); await roster.courses(); await roster.sections();
  let rows = 0;
  for await (const batch of roster.enrollments(1000)) rows += batch.length;
  for await (const batch of roster.users(1000)) rows += batch.length;
  const ms = Math.round(performance.now() - started);
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({
    readReportMs: ms, rows, zipMb: +(bytes.length / 1048576).toFixed(1),
    rssBeforeMb: Math.round(baseRss), peakRssMb: Math.round(vm('VmHWM')), afterParse: { heapMb: mb(m.heapUsed), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers), rssMb: mb(m.rss) },
  })}\n`);
} else {
  const district = new RosterDistrict({ ...spec, seed: 42 });
  const server = new FakeCanvasServer(district, { token: 'P', reportPolls: 0 });
  await server.start();
  const post = performance.now();
  const form = new URLSearchParams(['users', 'terms', 'courses', 'sections', 'enrollments', 'include_deleted'].map((p): [string, string] => [`parameters[${p}]`, 'true']));
  const created = await fetch(`${server.baseUrl}/accounts/self/reports/provisioning_csv`, { method: 'POST', headers: { Authorization: 'Bearer P', 'content-type': 'application/x-www-form-urlencoded' }, body: form }).then((r) => r.json()) as { id: string | number };
  const buildMs = Math.round(performance.now() - post);
  const status = await fetch(`${server.baseUrl}/accounts/self/reports/provisioning_csv/${created.id}`, { headers: { Authorization: 'Bearer P' } }).then((r) => r.json()) as { attachment: { url: string } };
  const t = performance.now();
  const bytes = Buffer.from((await fetch(status.attachment.url).then((r) => r.arrayBuffer())) as ArrayBuffer);
  const downloadMs = Math.round(performance.now() - t);
  await server.stop();
  const file = '/tmp/canvas-provisioning-report.zip';
  writeFileSync(file, bytes);
  process.stdout.write(`${JSON.stringify({ fakeBuildsReportMs: buildMs, downloadMs, zipMb: +(bytes.length / 1048576).toFixed(1) })}\n`);
  const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
  for (const heap of ['--max-old-space-size=384', '']) {
    const r = spawnSync(process.execPath, [...(heap ? [heap] : []), tsx, fileURLToPath(import.meta.url), '--read-file', file], { encoding: 'utf8' });
    process.stdout.write(`worker heap ${heap || 'default'}: ${r.stdout.trim()}${r.stderr ? `\n${r.stderr}` : ''}\n`);
  }
}
