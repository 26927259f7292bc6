// What a full Schoology snapshot costs in requests: runs the connector against
// the fake Schoology server in-process and counts requests by endpoint.
//   npx tsx test/bench/schoology-requests.ts [--students 50000 --sections 2000 --per-student 6 --schools 25] [--assume-rps 10]
// --assume-rps converts the count into wall time at a given request rate (Schoology throttles per key with 429;
// we do not know its exact limit, so the rate is an assumption you pass in, not a measurement).
import { parseArgs } from 'node:util';
import { RosterDistrict } from '../../fixtures/district.js';
import { FakeSchoologyServer } from '../../fixtures/schoology/server.js';
import { SchoologyConnector } from '../../connectors/schoology/connector.js';
import { createLogger } from '../../src/logger.js';
import { districtOptions } from './district-args.js';

const { values } = parseArgs({
  options: {
    ...districtOptions,
    'assume-rps': { type: 'string', default: '10' },
  },
});
const spec = { seed: Number(values.seed), schools: Number(values.schools), students: Number(values.students), sections: Number(values.sections), enrollmentsPerStudent: Number(values['per-student']) };
const district = new RosterDistrict(spec);
const server = new FakeSchoologyServer(district, { consumerKey: 'bench-key', consumerSecret: 'bench-secret' });
await server.start();
const connector = new SchoologyConnector(
  { provider: 'schoology', baseUrl: server.baseUrl, credentials: { consumerKey: 'bench-key', consumerSecret: 'bench-secret' }, signatureMethod: 'HMAC-SHA1' },
  createLogger('warn'),
);
const started = Date.now();
const records: Record<string, number> = {};
for await (const batch of connector.fetch({ full: true })) records[batch.kind] = (records[batch.kind] ?? 0) + batch.records.length;
const elapsedMs = Date.now() - started;
await server.stop();

const byEndpoint: Record<string, number> = {};
for (const r of server.requests) {
  const endpoint = new URL(r.path, 'http://x').pathname.replace(/\/\d+(?=\/|$)/g, '/{id}');
  byEndpoint[endpoint] = (byEndpoint[endpoint] ?? 0) + 1;
}
const total = server.requests.length;
const rps = Number(values['assume-rps']);
process.stdout.write(`${JSON.stringify({
  district: { ...spec, teachers: district.teachers.size },
  requests: total,
  byEndpoint,
  records,
  localFetchMs: elapsedMs,
  atAssumedRate: { requestsPerSecond: rps, minutes: Math.round((total / rps / 60) * 10) / 10 },
}, null, 2)}\n`);
