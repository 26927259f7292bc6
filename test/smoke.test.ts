import { createTestEnv, type TestEnv } from './helpers/context.js';
import { addCleverDistrict, startClever, syncNow } from './helpers/district.js';
import type { FakeCleverServer } from '../fixtures/clever/server.js';

let t: TestEnv;
let server: FakeCleverServer;
beforeAll(async () => {
  t = await createTestEnv();
  server = await startClever();
  t.startWorker();
});
afterAll(async () => {
  await server.stop();
  await t.close();
});

test('smoke', async () => {
  await addCleverDistrict(t.ctx, 'd1', server);
  const run = await syncNow(t.ctx, 'd1');
  console.log(run);
  expect(run.status).toBe('SUCCEEDED');
});
