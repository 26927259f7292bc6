// How many requests a Canvas sync costs, per path, against the fake Canvas:
//   npx tsx test/bench/canvas-requests.ts --students 50000 --sections 2000 --schools 50 --per-student 5
// Prints one JSON line per path: requests, pages, records and wall time. No database:
// the connector alone, which is where the request count is decided.
import { CanvasConnector } from '../../connectors/canvas/connector.js';
import { FakeCanvasServer } from '../../fixtures/canvas/server.js';
import { RosterDistrict } from '../../fixtures/district.js';
import { parseServeArgs } from '../../fixtures/serve-args.js';
import { createLogger } from '../../src/logger.js';

const { spec } = parseServeArgs({});
const district = new RosterDistrict(spec);
const server = new FakeCanvasServer(district, { token: 'BENCH', reportPolls: 3 });
await server.start();
const logger = createLogger('warn');
try {
  for (const path of ['report', 'rest'] as const) {
    const connector = new CanvasConnector(
      { provider: 'canvas', baseUrl: server.baseUrl, credentials: { token: 'BENCH' }, accountId: 'self', minRetryDelayMs: 50, timeoutMs: 120_000 },
      logger, { path, reportPollMs: 50 },
    );
    const before = server.requests.length;
    const started = Date.now();
    const counts: Record<string, number> = {};
    for await (const batch of connector.fetch({ full: true })) counts[batch.kind] = (counts[batch.kind] ?? 0) + batch.records.length;
    const run = connector.lastRun!;
    const byKind: Record<string, number> = {};
    for (const r of server.requests.slice(before)) {
      const kind = /\/reports\//.test(r.path) ? 'report' : /\/files\//.test(r.path) ? 'download' : (/\/(users|courses|sections|enrollments|sub_accounts)(\?|$)/.exec(r.path)?.[1] ?? 'account');
      byKind[kind] = (byKind[kind] ?? 0) + 1;
    }
    process.stdout.write(`${JSON.stringify({
      path: run.path, students: district.students.size, sections: district.sections.size, courses: counts.courses,
      requests: run.requests, serverSaw: server.requests.length - before, byKind, records: counts, ms: Date.now() - started,
    })}\n`);
  }
} finally {
  await server.stop();
}
