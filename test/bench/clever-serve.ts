// Runs the bench's fake Clever server (compact-clever-server.ts) on its own, as
// fixtures/clever/serve.ts runs the fixture's: same flags, same first stdout
// line. The bench (fakes.ts) starts it for 'clever' at every size:
//   npx tsx test/bench/clever-serve.ts --students 1000000 --sections 40000 --per-student 6 --schools 25 --seed 42
import { parseServeArgs } from '../../fixtures/serve-args.js';
import { CompactDistrict } from './compact-district.js';
import { CompactCleverServer } from './compact-clever-server.js';

const { spec, port, values } = parseServeArgs({ token: { type: 'string', default: 'DEMO_DISTRICT_TOKEN' } });
const started = Date.now();
const district = new CompactDistrict(spec);
const server = new CompactCleverServer(district, values.token);
const url = await server.start(port);
process.stdout.write(`${JSON.stringify({ url, token: values.token, students: district.aliveCount, teachers: district.teachers.length, sections: district.sections.length, generatedMs: Date.now() - started })}\n`);
const stop = () => void server.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
